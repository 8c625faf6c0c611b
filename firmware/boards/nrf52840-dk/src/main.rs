//! Footfall anchor node on the nRF52840-DK.
//!
//! embassy-nrf + trouble-host over Nordic's SoftDevice Controller (nrf-sdc / nrf-mpsl):
//!
//! - scans continuously (extended scanning, so BLE 5 advertisers are heard too) and feeds every
//!   report into the chip-agnostic anchor role (`footfall_firmware::anchor`);
//! - every window the role signs report frames; they go on the air as non-connectable
//!   extended advertisements carrying manufacturer data `FF FF | frame` (company 0xFFFF), only
//!   after the frame counter's reservation is durable in flash;
//! - in between, the anchor is a standards beacon: iBeacon and Eddystone UID + TLM, on the
//!   slot schedule of `footfall_firmware::beacon::AdvScheduler`.
//!
//! Logs: defmt over RTT (`probe-rs run` prints them). Panics: panic-probe.
#![no_std]
#![no_main]

mod counter_flash;
mod heart_rate;

use core::cell::RefCell;

use bt_hci::param::{LeAdvReportsIter, LeExtAdvReportsIter};
use defmt::{info, unwrap, warn};
use embassy_executor::Spawner;
use embassy_futures::join::join4;
use embassy_futures::select::select;
use embassy_nrf::mode::Async;
use embassy_nrf::peripherals::RNG;
use embassy_nrf::{bind_interrupts, rng};
use embassy_time::{Duration, Instant, Timer};
use footfall_firmware::anchor::{AnchorConfig, DefaultAnchor};
use footfall_firmware::beacon::{
    eddystone_tlm, eddystone_uid, ibeacon, AdvData, AdvScheduler, ScheduleConfig, Slot, Telemetry,
};
use footfall_firmware::observe::FOOTFALL_COMPANY_ID;
use footfall_firmware::scanner::AdvReport;
use footfall_proto::frame::{NodeKey, MAX_FRAME_LEN};
use nrf_sdc::mpsl::{Flash, MultiprotocolServiceLayer};
use nrf_sdc::{self as sdc, mpsl, SoftdeviceController};
use static_cell::StaticCell;
use trouble_host::prelude::*;
use {defmt_rtt as _, panic_probe as _};

use crate::counter_flash::FlashCounterStore;
use crate::heart_rate::{HrLink, Target};

/// Identity baked in by build.rs from FOOTFALL_NODE_ID / FOOTFALL_NODE_KEY.
mod provision {
    include!(concat!(env!("OUT_DIR"), "/provision.rs"));
}

/// Proximity UUID of Footfall anchors (iBeacon); major = 1, minor = node id.
const IBEACON_UUID: [u8; 16] = [
    0xF0, 0x07, 0xFA, 0x11, 0x00, 0x00, 0x4E, 0x0D, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];
/// Eddystone namespace of Footfall anchors; instance = `00 00 00 00 | node id (BE)`.
const EDDYSTONE_NAMESPACE: [u8; 10] = [0xF0, 0x07, 0xFA, 0x11, 0x4E, 0x0D, 0x00, 0x00, 0x00, 0x01];
/// Each report frame is sent in this many advertising events (the gateway drops repeats by
/// counter).
const REPORT_EVENTS: u8 = 3;
/// Manufacturer AD structure around a frame: length, type, company id, frame.
const REPORT_AD_LEN: usize = 4 + MAX_FRAME_LEN;

bind_interrupts!(struct Irqs {
    RNG => rng::InterruptHandler<RNG>;
    EGU0_SWI0 => mpsl::LowPrioInterruptHandler;
    CLOCK_POWER => mpsl::ClockInterruptHandler;
    RADIO => mpsl::HighPrioInterruptHandler;
    TIMER0 => mpsl::HighPrioInterruptHandler;
    RTC0 => mpsl::HighPrioInterruptHandler;
});

type Sdc = SoftdeviceController<'static>;

#[embassy_executor::task]
async fn mpsl_task(mpsl: &'static MultiprotocolServiceLayer<'static>) -> ! {
    mpsl.run().await
}

fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Feeds scan reports into the anchor. Runs inside the host runner (same task as the
/// advertiser, so the `RefCell` is never borrowed across an `.await`).
struct ScanFeed<'a, 's> {
    anchor: &'a RefCell<DefaultAnchor>,
    hr: &'a HrLink<'s>,
}

impl ScanFeed<'_, '_> {
    fn feed(&self, addr: &[u8], addr_kind: u8, rssi: i8, data: &[u8]) -> [u8; 6] {
        // HCI carries the address least significant byte first.
        let mut msb_first = [0u8; 6];
        for (dst, src) in msb_first.iter_mut().zip(addr.iter().rev()) {
            *dst = *src;
        }
        let report = AdvReport {
            addr: msb_first,
            addr_type: addr_kind,
            rssi,
            data,
        };
        if let Ok(mut anchor) = self.anchor.try_borrow_mut() {
            anchor.on_report(&report);
        }
        msb_first
    }
}

impl EventHandler for ScanFeed<'_, '_> {
    fn on_adv_reports(&self, mut reports: LeAdvReportsIter<'_>) {
        while let Some(Ok(r)) = reports.next() {
            self.feed(r.addr.raw(), r.addr_kind.as_raw(), r.rssi, r.data);
        }
    }

    fn on_ext_adv_reports(&self, mut reports: LeExtAdvReportsIter<'_>) {
        while let Some(Ok(r)) = reports.next() {
            let addr_msb = self.feed(r.addr.raw(), r.addr_kind.as_raw(), r.rssi, r.data);
            let target = Target {
                address: Address {
                    kind: r.addr_kind,
                    addr: r.addr,
                },
                addr_msb,
                addr_kind: r.addr_kind.as_raw(),
                rssi: r.rssi,
            };
            self.hr.consider(r.event_kind.connectable(), target, r.data);
        }
    }
}

fn build_sdc<'d, const N: usize>(
    p: sdc::Peripherals<'d>,
    rng: &'d mut rng::Rng<'static, Async>,
    mpsl: &'d MultiprotocolServiceLayer,
    mem: &'d mut sdc::Mem<N>,
) -> Result<SoftdeviceController<'d>, sdc::Error> {
    sdc::Builder::new()?
        .support_scan()
        .support_ext_scan()
        .support_adv()
        .support_ext_adv()
        .support_central()
        .support_ext_central()
        .central_count(1)?
        .adv_count(1)?
        .adv_buffer_cfg(REPORT_AD_LEN as u16)?
        .build(p, rng, mpsl, mem)
}

/// Static random address from the chip's FICR device address (top two bits set).
fn device_address() -> Address {
    let ficr = embassy_nrf::pac::FICR;
    let lo = ficr.deviceaddr(0).read().to_le_bytes();
    let hi = ficr.deviceaddr(1).read().to_le_bytes();
    Address::random([lo[0], lo[1], lo[2], lo[3], hi[0], hi[1] | 0xC0])
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_nrf::init(Default::default());
    info!("footfall anchor: node {}", provision::NODE_ID);
    if provision::DEV_IDENTITY {
        warn!("!!! DEVELOPMENT IDENTITY: this image uses the public dev node key. Rebuild with FOOTFALL_NODE_ID / FOOTFALL_NODE_KEY (footfall keys new-node) before deploying !!!");
    }

    let mpsl_p =
        mpsl::Peripherals::new(p.RTC0, p.TIMER0, p.TEMP, p.PPI_CH19, p.PPI_CH30, p.PPI_CH31);
    let lfclk_cfg = mpsl::raw::mpsl_clock_lfclk_cfg_t {
        source: mpsl::raw::MPSL_CLOCK_LF_SRC_RC as u8,
        rc_ctiv: mpsl::raw::MPSL_RECOMMENDED_RC_CTIV as u8,
        rc_temp_ctiv: mpsl::raw::MPSL_RECOMMENDED_RC_TEMP_CTIV as u8,
        accuracy_ppm: mpsl::raw::MPSL_DEFAULT_CLOCK_ACCURACY_PPM as u16,
        skip_wait_lfclk_started: mpsl::raw::MPSL_DEFAULT_SKIP_WAIT_LFCLK_STARTED != 0,
    };
    static MPSL: StaticCell<MultiprotocolServiceLayer> = StaticCell::new();
    let mpsl = MPSL.init(unwrap!(MultiprotocolServiceLayer::new(
        mpsl_p, Irqs, lfclk_cfg
    )));
    spawner.spawn(unwrap!(mpsl_task(mpsl)));

    let sdc_p = sdc::Peripherals::new(
        p.PPI_CH17, p.PPI_CH18, p.PPI_CH20, p.PPI_CH21, p.PPI_CH22, p.PPI_CH23, p.PPI_CH24,
        p.PPI_CH25, p.PPI_CH26, p.PPI_CH27, p.PPI_CH28, p.PPI_CH29,
    );
    static RNG_CELL: StaticCell<rng::Rng<'static, Async>> = StaticCell::new();
    let rng = RNG_CELL.init(rng::Rng::new(p.RNG, Irqs));
    static SDC_MEM: StaticCell<sdc::Mem<8192>> = StaticCell::new();
    let sdc_mem = SDC_MEM.init(sdc::Mem::new());
    let sdc: Sdc = unwrap!(build_sdc(sdc_p, rng, mpsl, sdc_mem));

    let mut flash = Flash::take(mpsl, p.NVMC);
    let mut store = FlashCounterStore::load(&mut flash);
    let cfg = AnchorConfig {
        node_id: provision::NODE_ID,
        key: NodeKey(provision::NODE_KEY),
        window_ms: AnchorConfig::DEFAULT_WINDOW_MS,
        counter_block: footfall_firmware::counter::DEFAULT_BLOCK,
    };
    static ANCHOR: StaticCell<RefCell<DefaultAnchor>> = StaticCell::new();
    let Ok(anchor) = DefaultAnchor::new(cfg, &mut store, now_ms()) else {
        defmt::panic!("frame counter space exhausted: re-provision this node with a new key");
    };
    let anchor = &*ANCHOR.init(RefCell::new(anchor));

    // One connection (a Heart Rate sensor), two L2CAP channels (signalling + ATT).
    static RESOURCES: StaticCell<HostResources<DefaultPacketPool, 1, 2>> = StaticCell::new();
    let resources = RESOURCES.init(HostResources::new());
    static STACK: StaticCell<Stack<'static, Sdc, DefaultPacketPool>> = StaticCell::new();
    let stack: &'static _ = STACK.init(
        trouble_host::new(sdc, resources)
            .set_random_address(device_address())
            .build(),
    );
    static HR: StaticCell<HrLink<'static>> = StaticCell::new();
    let hr: &'static HrLink<'static> = HR.init(HrLink::new());
    let mut central = stack.central();
    let mut peripheral = stack.peripheral();
    let mut runner = stack.runner();
    let feed = ScanFeed { anchor, hr };

    join4(
        async {
            loop {
                if let Err(e) = runner.run_with_handler(&feed).await {
                    warn!(
                        "host runner stopped: {:?}; restarting",
                        defmt::Debug2Format(&e)
                    );
                    Timer::after(Duration::from_millis(100)).await;
                }
            }
        },
        scan(&mut central, hr),
        advertise(&mut peripheral, anchor, &mut store, &mut flash),
        hr.run_client(stack, anchor),
    )
    .await;
}

/// Scans forever: 100 % duty cycle on 1M PHY (the controller interleaves our advertising),
/// pausing only to connect to a Heart Rate sensor the scan found.
async fn scan(central: &mut Central<'static, Sdc, DefaultPacketPool>, hr: &HrLink<'static>) {
    let config = ScanConfig {
        active: false,
        phys: PhySet::M1,
        interval: Duration::from_millis(60),
        window: Duration::from_millis(60),
        ..Default::default()
    };
    loop {
        let target = {
            let mut scanner = Scanner::new(central);
            match scanner.scan_ext(&config).await {
                // Reports arrive through `ScanFeed` while the session lives.
                Ok(_session) => hr.wait_target().await,
                Err(e) => {
                    warn!("scan start failed: {:?}; retrying", defmt::Debug2Format(&e));
                    Timer::after(Duration::from_secs(1)).await;
                    continue;
                }
            }
        };
        info!("connecting to a Heart Rate sensor");
        hr.connect(central, target).await;
    }
}

/// Closes windows, persists counter reservations, and puts beacons and report frames on air.
async fn advertise(
    peripheral: &mut Peripheral<'_, Sdc, DefaultPacketPool>,
    anchor: &RefCell<DefaultAnchor>,
    store: &mut FlashCounterStore,
    flash: &mut Flash<'_>,
) {
    let ids = (provision::NODE_ID).to_be_bytes();
    let instance = [0, 0, 0, 0, ids[0], ids[1]];
    let beacon_ibeacon = ibeacon(&IBEACON_UUID, 1, provision::NODE_ID, -59);
    let beacon_uid = eddystone_uid(&EDDYSTONE_NAMESPACE, &instance, -21);
    let mut sched = AdvScheduler::new(ScheduleConfig::default(), now_ms());
    let mut adv_count: u32 = 0;
    let mut report_ad = [0u8; REPORT_AD_LEN];

    loop {
        let deadline = sched.poll_timeout().min(anchor.borrow().poll_timeout());
        Timer::at(Instant::from_millis(deadline)).await;
        let now = now_ms();
        if let Ok(mut a) = anchor.try_borrow_mut() {
            if let Some(s) = a.handle_timeout(now, store) {
                info!(
                    "window: {} devices, {} frames, queue {}",
                    s.devices,
                    s.frames,
                    a.queue().len()
                );
            }
        }
        // A frame is only put on the air once its counter's reservation is durable.
        if !store.is_durable() {
            if let Err(e) = store.persist(flash).await {
                warn!("counter persist failed: {:?}", e);
            }
        }
        let pending = store.is_durable() && anchor.borrow().peek_frame().is_some();
        let Some(slot) = sched.handle_timeout(now, pending) else {
            continue;
        };
        let tlm: AdvData;
        let mut params = AdvertisementParameters {
            interval_min: Duration::from_millis(20),
            interval_max: Duration::from_millis(30),
            max_events: Some(1),
            ..Default::default()
        };
        let data = match slot {
            Slot::IBeacon => Advertisement::NonconnectableNonscannableUndirected {
                adv_data: &beacon_ibeacon,
            },
            Slot::EddystoneUid => Advertisement::NonconnectableNonscannableUndirected {
                adv_data: &beacon_uid,
            },
            Slot::EddystoneTlm => {
                tlm = eddystone_tlm(&Telemetry {
                    battery_mv: 0,
                    temperature_8_8: i16::MIN,
                    adv_count,
                    uptime_ds: u32::try_from(now / 100).unwrap_or(u32::MAX),
                });
                Advertisement::NonconnectableNonscannableUndirected { adv_data: &tlm }
            }
            Slot::Report => {
                let len = {
                    let a = anchor.borrow();
                    let Some(frame) = a.peek_frame() else {
                        continue;
                    };
                    let ad_len = frame.len() + 3;
                    report_ad[0] = ad_len as u8;
                    report_ad[1] = 0xFF;
                    report_ad[2..4].copy_from_slice(&FOOTFALL_COMPANY_ID.to_le_bytes());
                    report_ad[4..4 + frame.len()].copy_from_slice(frame);
                    4 + frame.len()
                };
                params.max_events = Some(REPORT_EVENTS);
                Advertisement::ExtNonconnectableNonscannableUndirected {
                    adv_data: &report_ad[..len],
                    anonymous: false,
                }
            }
        };
        let sets = [AdvertisementSet {
            params,
            data,
            address: None,
        }];
        let mut handles = AdvertisementSet::handles(&sets);
        match peripheral.advertise_ext(&sets, &mut handles).await {
            Ok(advertiser) => {
                // Ends when the controller has sent `max_events` events.
                let _ = select(
                    advertiser.accept(),
                    Timer::after(Duration::from_millis(250)),
                )
                .await;
                adv_count = adv_count.wrapping_add(1);
                if slot == Slot::Report {
                    anchor.borrow_mut().frame_sent();
                }
            }
            Err(e) => warn!("advertise failed: {:?}", defmt::Debug2Format(&e)),
        }
    }
}
