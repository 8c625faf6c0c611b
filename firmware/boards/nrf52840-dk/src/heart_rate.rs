//! Heart Rate over GATT: when the scanner hears a connectable advertiser of the Heart Rate
//! service (0x180D), the node pauses scanning just long enough to connect to it, then keeps
//! scanning while a GATT client subscribes to Heart Rate Measurement (0x2A37) notifications and
//! feeds each one into the anchor (`Anchor::on_gatt_heart_rate`). One sensor at a time (the
//! controller is configured for one central link); a sensor that fails to connect is not
//! retried for [`RETRY_AFTER`].

use core::cell::{Cell, RefCell};

use embassy_futures::select::select;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};
use footfall_firmware::anchor::DefaultAnchor;
use footfall_firmware::observe::UUID_HEART_RATE;
use footfall_proto::{Advertisement, Uuid as ProtoUuid};
use trouble_host::prelude::*;

use crate::Sdc;

/// How long a sensor that failed to connect is left alone.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
const HEART_RATE_MEASUREMENT: u16 = 0x2A37;

/// A sensor to connect to.
#[derive(Clone, Copy)]
pub struct Target {
    /// As trouble-host wants it (LSB first).
    pub address: Address,
    /// Most significant byte first, as the anchor wants it.
    pub addr_msb: [u8; 6],
    /// HCI address type.
    pub addr_kind: u8,
    /// RSSI of the advertisement that found it.
    pub rssi: i8,
}

/// Shared between the scan handler, the scan/connect loop and the GATT client.
pub struct HrLink<'s> {
    target: Cell<Option<Target>>,
    busy: Cell<bool>,
    refused: Cell<Option<([u8; 6], Instant)>>,
    conn: Signal<NoopRawMutex, (Connection<'s, DefaultPacketPool>, Target)>,
}

impl<'s> HrLink<'s> {
    /// Nothing to connect to yet.
    pub const fn new() -> Self {
        Self {
            target: Cell::new(None),
            busy: Cell::new(false),
            refused: Cell::new(None),
            conn: Signal::new(),
        }
    }

    /// Called for every scan report: remembers a connectable Heart Rate sensor.
    pub fn consider(&self, connectable: bool, target: Target, data: &[u8]) {
        if !connectable || self.busy.get() || self.target.get().is_some() {
            return;
        }
        if let Some((addr, at)) = self.refused.get() {
            if addr == target.addr_msb && at.elapsed() < RETRY_AFTER {
                return;
            }
        }
        let (adv, _) = Advertisement::parse_lenient(data);
        if adv
            .service_uuids()
            .any(|u| u == ProtoUuid::Uuid16(UUID_HEART_RATE))
        {
            self.target.set(Some(target));
        }
    }

    /// Waits until there is a sensor to connect to.
    pub async fn wait_target(&self) -> Target {
        loop {
            if let Some(t) = self.target.take() {
                return t;
            }
            Timer::after(Duration::from_millis(250)).await;
        }
    }

    /// Connects to `target` (scanning must be stopped) and hands the link to the GATT client.
    pub async fn connect(&self, central: &mut Central<'s, Sdc, DefaultPacketPool>, target: Target) {
        let config = ConnectConfig {
            connect_params: Default::default(),
            scan_config: ScanConfig {
                filter_accept_list: &[target.address],
                ..Default::default()
            },
        };
        match with_timeout(Duration::from_secs(3), central.connect(&config)).await {
            Ok(Ok(conn)) => {
                self.busy.set(true);
                self.conn.signal((conn, target));
            }
            _ => self.refused.set(Some((target.addr_msb, Instant::now()))),
        }
    }

    /// The GATT client: one connected sensor at a time, forever.
    pub async fn run_client(
        &self,
        stack: &'s Stack<'s, Sdc, DefaultPacketPool>,
        anchor: &RefCell<DefaultAnchor>,
    ) {
        loop {
            let (conn, target) = self.conn.wait().await;
            if let Ok(client) = GattClient::<Sdc, DefaultPacketPool, 4>::new(stack, &conn).await {
                let _ = select(client.task(), async {
                    let Ok(services) = client
                        .services_by_uuid(&Uuid::new_short(UUID_HEART_RATE))
                        .await
                    else {
                        return;
                    };
                    let Some(service) = services.first().cloned() else {
                        return;
                    };
                    let Ok(c) = client
                        .characteristic_by_uuid::<[u8]>(
                            &service,
                            &Uuid::new_short(HEART_RATE_MEASUREMENT),
                        )
                        .await
                    else {
                        return;
                    };
                    let Ok(mut listener) = client.subscribe(&c, false).await else {
                        return;
                    };
                    loop {
                        let n = listener.next().await;
                        if let Ok(mut a) = anchor.try_borrow_mut() {
                            a.on_gatt_heart_rate(
                                target.addr_msb,
                                target.addr_kind,
                                target.rssi,
                                n.as_ref(),
                            );
                        }
                    }
                })
                .await;
            }
            // Dropping the connection disconnects.
            drop(conn);
            self.refused.set(Some((target.addr_msb, Instant::now())));
            self.busy.set(false);
        }
    }
}
