//! Footfall Wi-Fi anchor node on the ESP32-C3.
//!
//! - BLE: esp-radio's controller under trouble-host; scans continuously and feeds every report
//!   into the chip-agnostic anchor role (`footfall_firmware::anchor`).
//! - Every window the role signs report frames (frame counter persisted in flash through
//!   `footfall_firmware::counter_log` over esp-storage).
//! - Wi-Fi (esp-radio, coexisting with BLE) + embassy-net (DHCP, DNS, TCP); frames are published
//!   with QoS 1 to `footfall/v1/{store}/nodes/{node}/uplink` by the minimal MQTT 3.1.1 client in
//!   `footfall_firmware::mqtt`. A frame leaves the store-and-forward queue only when the broker's
//!   PUBACK for it arrives; while Wi-Fi or the broker is down the queue keeps the newest frames.
//!
//! Heap: the application allocates nothing; esp-radio's Wi-Fi/BLE driver needs `esp-alloc`.
//! Logs: `log` over esp-println (serial/USB-JTAG; `espflash flash --monitor` shows them).
#![no_std]
#![no_main]

mod config;
mod uplink;

use core::cell::RefCell;

use bt_hci::param::LeAdvReportsIter;
use embassy_executor::Spawner;
use embassy_futures::join::join3;
use embassy_net::{Runner, StackResources};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::{Duration, Instant, Timer};
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_radio::ble::controller::BleConnector;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, WifiController,
};
use esp_storage::FlashStorage;
use footfall_firmware::anchor::{AnchorConfig, DefaultAnchor};
use footfall_firmware::counter::{CounterError, CounterStore, DEFAULT_BLOCK};
use footfall_firmware::counter_log::FlashCounterLog;
use footfall_firmware::scanner::AdvReport;
use footfall_proto::frame::NodeKey;
use log::{info, warn};
use static_cell::StaticCell;
use trouble_host::prelude::*;
use {esp_alloc as _, esp_backtrace as _};

use crate::config::provision;

esp_bootloader_esp_idf::esp_app_desc!();

/// The anchor, shared by the BLE event handler, the window timer and the uplink.
pub type SharedAnchor = Mutex<CriticalSectionRawMutex, RefCell<DefaultAnchor>>;
/// The frame-counter store: two 4 KiB sectors at the end of the default `nvs` partition
/// (0x9000..0xF000 in the esp-idf default partition table; this firmware does not use NVS).
pub type CounterFlash = FlashCounterLog<FlashStorage<'static>>;
const COUNTER_LOG_OFFSET: u32 = 0xD000;

pub(crate) fn now_ms() -> u64 {
    Instant::now().as_millis()
}

/// Feeds BLE scan reports into the anchor.
struct ScanFeed<'a> {
    anchor: &'a SharedAnchor,
}

impl EventHandler for ScanFeed<'_> {
    fn on_adv_reports(&self, mut reports: LeAdvReportsIter<'_>) {
        self.anchor.lock(|a| {
            let Ok(mut anchor) = a.try_borrow_mut() else {
                return;
            };
            while let Some(Ok(r)) = reports.next() {
                // HCI carries the address least significant byte first.
                let mut addr = [0u8; 6];
                for (dst, src) in addr.iter_mut().zip(r.addr.raw().iter().rev()) {
                    *dst = *src;
                }
                anchor.on_report(&AdvReport {
                    addr,
                    addr_type: r.addr_kind.as_raw(),
                    rssi: r.rssi,
                    data: r.data,
                });
            }
        });
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    esp_println::logger::init_logger_from_env();
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // For esp-radio's driver only (Wi-Fi + BLE coexistence needs ~100 KiB).
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 48 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    info!("footfall anchor (esp32c3): node {}", provision::NODE_ID);
    if provision::DEV_IDENTITY {
        warn!("!!! DEVELOPMENT IDENTITY: public dev node key; rebuild with FOOTFALL_NODE_ID / FOOTFALL_NODE_KEY (footfall keys new-node) before deploying !!!");
    }

    // Frame counter + anchor.
    static STORE: StaticCell<RefCell<CounterFlash>> = StaticCell::new();
    let store = STORE.init(RefCell::new(FlashCounterLog::open(
        FlashStorage::new(peripherals.FLASH),
        COUNTER_LOG_OFFSET,
    )));
    let cfg = AnchorConfig {
        node_id: provision::NODE_ID,
        key: NodeKey(provision::NODE_KEY),
        window_ms: AnchorConfig::DEFAULT_WINDOW_MS,
        counter_block: DEFAULT_BLOCK,
    };
    let anchor = match boot_anchor(cfg, store) {
        Ok(a) => a,
        Err(e) => {
            // Without a durable counter block no frame may be signed: stop here, loudly.
            loop {
                warn!(
                    "frame counter unavailable ({:?}): check the flash / re-provision",
                    e
                );
                Timer::after(Duration::from_secs(10)).await;
            }
        }
    };

    // Wi-Fi + network stack.
    let mut station = StationConfig::default();
    match config::WIFI_SSID.try_into() {
        Ok(ssid) => station = station.with_ssid(ssid),
        Err(_) => warn!("FOOTFALL_WIFI_SSID is too long (max 32 bytes)"),
    }
    if !config::WIFI_PASSWORD.is_empty() {
        match config::WIFI_PASSWORD.try_into() {
            Ok(pass) => {
                station =
                    station.with_authentication(AuthenticationMethodConfig::Wpa2Personal(pass))
            }
            Err(_) => warn!("FOOTFALL_WIFI_PASSWORD is too long (max 64 bytes)"),
        }
    }
    let wifi_interface = Interface::station();
    let controller = match WifiController::new(
        peripherals.WIFI,
        ControllerConfig::default().with_initial_config(WifiConfig::Station(station)),
    ) {
        Ok(c) => Some(c),
        Err(e) => {
            warn!("Wi-Fi init failed: {e:?}; frames stay queued (BLE scanning continues)");
            None
        }
    };
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    static NET_RESOURCES: StaticCell<StackResources<3>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        wifi_interface,
        embassy_net::Config::dhcpv4(Default::default()),
        NET_RESOURCES.init(StackResources::new()),
        seed,
    );
    if let Some(controller) = controller {
        spawner.spawn(wifi_task(controller).unwrap_or_else(|_| unreachable_spawn()));
    }
    spawner.spawn(net_task(runner).unwrap_or_else(|_| unreachable_spawn()));
    spawner.spawn(uplink::mqtt_task(stack, anchor).unwrap_or_else(|_| unreachable_spawn()));

    // BLE.
    let connector = match BleConnector::new(peripherals.BT, Default::default()) {
        Ok(c) => c,
        Err(e) => loop {
            warn!("BLE init failed: {e:?}");
            Timer::after(Duration::from_secs(10)).await;
        },
    };
    let controller: ExternalController<_, 20> = ExternalController::new(connector);
    static RESOURCES: StaticCell<HostResources<DefaultPacketPool, 1, 1>> = StaticCell::new();
    let resources = RESOURCES.init(HostResources::new());
    // Static random address from the factory MAC (LSB first on the wire, top two bits set).
    let mut addr = [0u8; 6];
    for (dst, src) in addr
        .iter_mut()
        .zip(esp_hal::efuse::base_mac_address().as_bytes().iter().rev())
    {
        *dst = *src;
    }
    addr[5] |= 0xC0;
    let ble = trouble_host::new(controller, resources)
        .set_random_address(Address::random(addr))
        .build();
    let mut central = ble.central();
    let mut runner = ble.runner();
    let feed = ScanFeed { anchor };

    join3(
        async {
            loop {
                if let Err(e) = runner.run_with_handler(&feed).await {
                    warn!("BLE host runner stopped: {e:?}; restarting");
                    Timer::after(Duration::from_millis(100)).await;
                }
            }
        },
        scan(&mut central),
        windows(anchor, store),
    )
    .await;
}

/// Task spawning fails only if the task is already running; each is spawned once, so this is
/// never reached. It logs and parks instead of panicking.
/// Boots the anchor straight into its static. A plain function, not inline in `main`: a
/// `DefaultAnchor` (~21 KiB) held by value in an async fn is kept in that task's future, so it
/// would sit in static RAM twice.
fn boot_anchor(
    cfg: AnchorConfig,
    store: &RefCell<CounterFlash>,
) -> Result<&'static SharedAnchor, CounterError<<CounterFlash as CounterStore>::Error>> {
    static ANCHOR: StaticCell<SharedAnchor> = StaticCell::new();
    let anchor = DefaultAnchor::new(cfg, &mut *store.borrow_mut(), now_ms())?;
    Ok(ANCHOR.init(Mutex::new(RefCell::new(anchor))))
}

fn unreachable_spawn<T>() -> T {
    warn!("task spawned twice: halting");
    loop {
        core::hint::spin_loop();
    }
}

/// Closes report windows on time (the role signs frames into its queue).
async fn windows(anchor: &SharedAnchor, store: &RefCell<CounterFlash>) {
    loop {
        let deadline = anchor.lock(|a| a.borrow().poll_timeout());
        Timer::at(Instant::from_millis(deadline)).await;
        let now = now_ms();
        anchor.lock(|a| {
            let (Ok(mut a), Ok(mut store)) = (a.try_borrow_mut(), store.try_borrow_mut()) else {
                return;
            };
            if let Some(s) = a.handle_timeout(now, &mut *store) {
                info!(
                    "window: {} devices, {} frames, queue {}",
                    s.devices,
                    s.frames,
                    a.queue().len()
                );
            }
        });
    }
}

/// Scans forever (passive, 100 % duty cycle; Wi-Fi coexistence arbitrates the radio).
async fn scan(
    central: &mut Central<'_, ExternalController<BleConnector<'static>, 20>, DefaultPacketPool>,
) {
    let mut scanner = Scanner::new(central);
    let config = ScanConfig {
        active: false,
        interval: Duration::from_millis(100),
        window: Duration::from_millis(100),
        ..Default::default()
    };
    loop {
        match scanner.scan(&config).await {
            Ok(_session) => loop {
                Timer::after(Duration::from_secs(3600)).await;
            },
            Err(e) => {
                warn!("scan start failed: {e:?}; retrying");
                Timer::after(Duration::from_secs(1)).await;
            }
        }
    }
}

#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) {
    loop {
        match controller.connect_async().await {
            Ok(_) => {
                info!("Wi-Fi connected to {}", config::WIFI_SSID);
                let _ = controller.wait_for_disconnect_async().await;
                warn!("Wi-Fi disconnected");
            }
            Err(e) => warn!("Wi-Fi connect failed: {e:?}"),
        }
        Timer::after(Duration::from_secs(5)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) {
    runner.run().await
}
