//! The gateway's own Bluetooth adapter, through btleplug (BlueZ over D-Bus on Linux).
//!
//! Two halves, in the manner of the rest of the gateway:
//!
//! * [`Scanner`] is the logic: it takes normalised advertisement events (discovery, RSSI,
//!   manufacturer data, service data) and produces [`SourceEvent`]s — sightings with the best
//!   identity the air tells (iBeacon, AltBeacon, Eddystone UID/EID via `footfall-proto`'s
//!   decoders, else the address), wearable samples (Heart Rate service data, Footfall tag
//!   sensor data) and verified node report frames carried in manufacturer data under our
//!   company id. No IO, time is an argument: unit-tested below.
//! * [`BleSource`] is the IO: btleplug's `Manager` → adapter (by name or the first) →
//!   `events()` → `start_scan(ScanFilter::default())`, a watchdog, and reconnection.
//!
//! # BlueZ and btleplug facts this relies on (btleplug 0.13.5, bluez-async 0.9)
//!
//! * btleplug's `ScanFilter` has no duplicate-data field, but its BlueZ backend always calls
//!   `SetDiscoveryFilter` with `DuplicateData = true` and `Transport = auto` before
//!   `StartDiscovery`, so BlueZ reports repeated advertisements (manufacturer/service data
//!   `PropertiesChanged` per advertisement) instead of only changes.
//! * There is no `DeviceUpdated` from the BlueZ backend: an RSSI change arrives as
//!   `RssiUpdate`, advertising data as `ManufacturerDataAdvertisement` /
//!   `ServiceDataAdvertisement`. One BlueZ `PropertiesChanged` signal carrying RSSI and data
//!   becomes several btleplug events, always in the order RSSI, manufacturer data, service
//!   data. [`Scanner`] merges such a run for one device back into **one sighting** (the run is
//!   closed by an event of another device, by a kind that cannot belong to the same signal, or
//!   [`COALESCE`] after it started), so one advertisement is not counted two or three times.
//!   BlueZ only signals an RSSI change above its own threshold; a data event without RSSI uses
//!   the last RSSI seen for the device.
//! * btleplug exposes the address type as public/random only (from BlueZ's `AddressType`
//!   property); a random address is classified static / resolvable / non-resolvable from its
//!   two most significant bits (Core spec Vol 6 Part B 1.3). Without the property: unknown.
//! * Node frames: anchors advertise the same frame several times; a repeat of a node's last
//!   accepted frame (same counter, authentic) is a duplicate, not a replay, and is dropped
//!   silently. Older counters are refused as `replayed`.
//!
//! # Company id
//!
//! Footfall manufacturer data uses company id [`DEFAULT_COMPANY_ID`] = `0xFFFF`, the value the
//! Bluetooth SIG reserves for internal use and testing; it is acceptable for development and
//! pilots, and a production fleet should use an assigned id (configure `company_id`, and the
//! firmware's `FOOTFALL_COMPANY_ID`). Under that id, a payload whose first byte is
//! [`TAG_SENSOR_KIND`] is tag sensor data (`0x54`, motion in milli-g, little-endian); anything
//! else is a node report frame (whose first byte is the frame version, 1).
//!
//! # Watchdog
//!
//! BlueZ discovery can stall silently after hours. When the adapter has reported no
//! advertisement at all for `watchdog_s`, the source stops and restarts the scan, logs it and
//! emits [`SourceEvent::ScannerRestarted`]. A store that is really empty (at night) restarts
//! the scan once per period; that is cheap, and only the first restart of a quiet spell is
//! logged at `warn`.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btleplug::api::bleuuid::uuid_from_u16;
use btleplug::api::{
    AddressType as BtAddressType, Central as _, CentralEvent, Manager as _, Peripheral as _,
    PeripheralProperties, ScanFilter,
};
use btleplug::platform::{Adapter, Manager, PeripheralId};
use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting, WearableSample,
};
use footfall_proto::altbeacon::AltBeacon;
use footfall_proto::eddystone::{self, Eddystone};
use footfall_proto::frame::{NodeId, NodeKey};
use footfall_proto::heart_rate::HeartRateMeasurement;
use footfall_proto::ibeacon::IBeacon;
use footfall_proto::Beacon;
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sink::backoff::Backoff;

use super::frame_clock::DEFAULT_MAX_DELAY_MS;
use super::frames::{
    evidence, sync_periodically, wall_clock, FrameVerifier, RateLimit, Rejection, ReplayState,
    StateError,
};
use super::{try_send_counted, Source, SourceEvent};

/// Source name (logs and metric labels).
pub const SOURCE: &str = "ble";
/// Default company id of Footfall manufacturer data: `0xFFFF`, reserved by the Bluetooth SIG
/// for testing (see the module docs).
pub const DEFAULT_COMPANY_ID: u16 = 0xFFFF;
/// First payload byte of Footfall tag sensor data (as the firmware's tag role sends it).
pub const TAG_SENSOR_KIND: u8 = 0x54;
/// How long a run of events of one device may take to count as one advertisement.
pub const COALESCE: Duration = Duration::from_millis(50);
/// Longest wait for a device's properties from BlueZ.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Heart Rate service (0x180D).
const HEART_RATE_SERVICE: u16 = 0x180D;

/// `[sources.ble]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BleConfig {
    /// Scan with the local adapter (default false: many gateways have no radio, and a
    /// missing BlueZ must be a deliberate error, not a surprise).
    pub enabled: bool,
    /// Adapter name as BlueZ names it (`hci0`); default: the first adapter.
    pub adapter: Option<String>,
    /// Restart the scan after this many seconds without any advertisement; 0 disables.
    pub watchdog_s: u64,
    /// Company id of Footfall manufacturer data (node frames, tag sensor data).
    pub company_id: u16,
    /// The node id the gateway's own adapter reports its sightings as (its position comes
    /// from the store layout like any anchor's).
    pub node_id: NodeId,
    /// Sustained node frames per second accepted from one node; 0 disables the limit.
    pub max_frames_per_s_per_node: f64,
    /// Node frames one node may send back to back.
    pub burst_frames_per_node: u32,
    /// A node frame arriving more than this many ms after its window closed (beyond the
    /// node's fastest frames) is late: accepted and counted, its sightings not fed as presence
    /// (`source::frame_clock`). `0` feeds every frame.
    pub max_frame_delay_ms: u64,
    /// Devices remembered (identity, RSSI, address type) between advertisements.
    pub max_devices: usize,
    /// First wait before reconnecting to BlueZ after the scan broke off, milliseconds.
    pub reconnect_min_ms: u64,
    /// Longest wait before reconnecting, milliseconds.
    pub reconnect_max_ms: u64,
}

impl Default for BleConfig {
    fn default() -> Self {
        let limit = RateLimit::default();
        Self {
            enabled: false,
            adapter: None,
            watchdog_s: 60,
            company_id: DEFAULT_COMPANY_ID,
            node_id: 0,
            max_frame_delay_ms: DEFAULT_MAX_DELAY_MS,
            max_frames_per_s_per_node: limit.frames_per_s,
            burst_frames_per_node: limit.burst,
            max_devices: 20_000,
            reconnect_min_ms: 1_000,
            reconnect_max_ms: 30_000,
        }
    }
}

/// Why the BLE source could not start (or resume).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BleError {
    /// No D-Bus system bus to talk to.
    #[error(
        "no Bluetooth adapter found: is bluetoothd running? (D-Bus system bus not available: \
         {0}; set DBUS_SYSTEM_BUS_ADDRESS or start dbus)"
    )]
    NoDbus(String),
    /// D-Bus is there, BlueZ is not.
    #[error(
        "no Bluetooth adapter found: is bluetoothd running? (D-Bus org.bluez not available: {0})"
    )]
    NoBluez(String),
    /// BlueZ runs but has no adapter.
    #[error(
        "no Bluetooth adapter found: bluetoothd is running but reports none (is the controller \
         attached, powered and not rfkill-blocked?)"
    )]
    NoAdapter,
    /// The configured adapter does not exist.
    #[error("Bluetooth adapter {wanted:?} not found (bluetoothd has: {available})")]
    AdapterNotFound {
        /// The configured name.
        wanted: String,
        /// What BlueZ offers.
        available: String,
    },
    /// An operation on the adapter failed.
    #[error("Bluetooth adapter {adapter}: {what} failed: {error}")]
    Adapter {
        /// Adapter name.
        adapter: String,
        /// The operation.
        what: &'static str,
        /// btleplug's error text.
        error: String,
    },
    /// The adapter's event stream ended (bluetoothd restarted or the bus went away).
    #[error("Bluetooth adapter {0}: event stream ended (bluetoothd restarted?)")]
    StreamEnded(String),
    /// The frame counter state could not be loaded.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What btleplug says about a device when it is first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceInfo {
    /// Address, most significant byte first.
    pub addr: [u8; 6],
    /// Address type, if BlueZ reported it.
    pub address_type: Option<BtAddressType>,
    /// Current RSSI.
    pub rssi: Option<i16>,
    /// Advertised TX power level.
    pub tx_power: Option<i16>,
    /// Manufacturer data by company id.
    pub manufacturer_data: HashMap<u16, Vec<u8>>,
    /// Service data by UUID.
    pub service_data: HashMap<Uuid, Vec<u8>>,
    /// Advertised service UUIDs.
    pub services: Vec<Uuid>,
}

impl From<&PeripheralProperties> for DeviceInfo {
    fn from(p: &PeripheralProperties) -> Self {
        Self {
            addr: p.address.into_inner(),
            address_type: p.address_type,
            rssi: p.rssi,
            tx_power: p.tx_power_level,
            manufacturer_data: p.manufacturer_data.clone(),
            service_data: p.service_data.clone(),
            services: p.services.clone(),
        }
    }
}

/// The engine's address type for what btleplug reports: public, or a random address
/// classified by its two most significant bits.
pub fn address_type(addr: &[u8; 6], t: Option<BtAddressType>) -> AddressType {
    match t {
        Some(BtAddressType::Public) => AddressType::Public,
        Some(BtAddressType::Random) => match addr[0] >> 6 {
            0b11 => AddressType::RandomStatic,
            0b01 => AddressType::RandomResolvable,
            0b00 => AddressType::RandomNonResolvable,
            _ => AddressType::Unknown,
        },
        None => AddressType::Unknown,
    }
}

fn clamp_dbm(v: i16) -> i8 {
    i8::try_from(v.clamp(i16::from(i8::MIN), i16::from(i8::MAX))).unwrap_or(i8::MIN)
}

/// A beacon identity with its calibrated power.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BeaconId {
    device: DeviceEvidence,
    power_dbm: Option<i8>,
    kind: DeviceKind,
}

fn beacon_id(b: &Beacon<'_>) -> Option<BeaconId> {
    let r = b.device_ref()?;
    let device = evidence(&r);
    let kind = match device {
        DeviceEvidence::TagEphemeral { .. } => DeviceKind::Tag,
        _ => DeviceKind::Unknown,
    };
    Some(BeaconId {
        device,
        power_dbm: b.power_at_1m_dbm(),
        kind,
    })
}

/// A beacon in one manufacturer data entry (company id already split off by BlueZ).
fn manufacturer_beacon(company: u16, data: &[u8], scratch: &mut Vec<u8>) -> Option<BeaconId> {
    // proto's decoders take the AD payload with the company id in front.
    scratch.clear();
    scratch.extend_from_slice(&company.to_le_bytes());
    scratch.extend_from_slice(data);
    if let Ok(b) = IBeacon::parse(scratch) {
        return beacon_id(&Beacon::IBeacon(b));
    }
    AltBeacon::parse(scratch)
        .ok()
        .and_then(|b| beacon_id(&Beacon::AltBeacon(b)))
}

#[derive(Debug, Clone)]
struct Device {
    addr: [u8; 6],
    addr_kind: AddressType,
    beacon: Option<BeaconId>,
    tx_power: Option<i8>,
    rssi: Option<i16>,
    wearable: bool,
    /// Advertises Footfall node frames: a node, not a shopper; no sightings.
    node: bool,
    last_seen: Instant,
}

impl Device {
    fn new(info: &DeviceInfo, now: Instant) -> Self {
        Self {
            addr: info.addr,
            addr_kind: address_type(&info.addr, info.address_type),
            beacon: None,
            tx_power: info.tx_power.map(clamp_dbm),
            rssi: info.rssi,
            wearable: false,
            node: false,
            last_seen: now,
        }
    }

    fn evidence(&self) -> DeviceEvidence {
        self.beacon.map_or(
            DeviceEvidence::Address {
                addr: self.addr,
                kind: self.addr_kind,
            },
            |b| b.device,
        )
    }

    fn kind(&self) -> DeviceKind {
        match self.beacon {
            Some(b) if b.kind != DeviceKind::Unknown => b.kind,
            _ if self.wearable => DeviceKind::Wearable,
            _ => DeviceKind::Unknown,
        }
    }
}

/// One normalised btleplug event about a known device.
#[derive(Debug, Clone, PartialEq)]
pub enum AdvEvent {
    /// RSSI changed (BlueZ `RSSI` property).
    Rssi(i16),
    /// Manufacturer data (BlueZ `ManufacturerData`).
    Manufacturer(HashMap<u16, Vec<u8>>),
    /// Service data (BlueZ `ServiceData`).
    Service(HashMap<Uuid, Vec<u8>>),
}

impl AdvEvent {
    /// Position within one BlueZ `PropertiesChanged` signal (bluez-async's order).
    fn rank(&self) -> u8 {
        match self {
            Self::Rssi(_) => 0,
            Self::Manufacturer(_) => 1,
            Self::Service(_) => 2,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending<K> {
    id: K,
    rank: u8,
    rssi: Option<i16>,
    since: Instant,
}

/// Counters of what the scanner dropped (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScannerStats {
    /// Sightings emitted.
    pub sightings: u64,
    /// Advertisements with no RSSI known (no sighting possible).
    pub no_rssi: u64,
    /// Repeats of a node's last accepted frame (dropped silently).
    pub duplicate_frames: u64,
    /// Devices forgotten because the table was full.
    pub evicted: u64,
}

/// The BLE normalisation logic (sans-IO; `K` is btleplug's `PeripheralId` in production).
#[derive(Debug)]
pub struct Scanner<K> {
    node: NodeId,
    company_id: u16,
    max_devices: usize,
    devices: HashMap<K, Device>,
    pending: Option<Pending<K>>,
    verifier: FrameVerifier,
    scratch: Vec<u8>,
    stats: ScannerStats,
}

impl<K: Eq + Hash + Clone> Scanner<K> {
    /// A scanner reporting as `node`, decoding frames under `company_id` with `verifier`.
    pub fn new(node: NodeId, company_id: u16, max_devices: usize, verifier: FrameVerifier) -> Self {
        Self {
            node,
            company_id,
            max_devices: max_devices.max(1),
            devices: HashMap::new(),
            pending: None,
            verifier,
            scratch: Vec::with_capacity(32),
            stats: ScannerStats::default(),
        }
    }

    /// What was dropped so far.
    pub fn stats(&self) -> ScannerStats {
        self.stats
    }

    /// Whether `id` is known (else the IO side fetches its properties and calls
    /// [`Scanner::discovered`] first).
    pub fn knows(&self, id: &K) -> bool {
        self.devices.contains_key(id)
    }

    /// When the open run must be closed even if no other event comes.
    pub fn flush_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.since + COALESCE)
    }

    /// A device appeared (or is already known to BlueZ at start): its properties count as
    /// one advertisement.
    pub fn discovered(
        &mut self,
        id: K,
        info: &DeviceInfo,
        now: Instant,
        out: &mut Vec<SourceEvent>,
    ) {
        self.close_run(out);
        self.make_room(&id);
        let fresh = Device::new(info, now);
        let hr_service = info.services.contains(&uuid_from_u16(HEART_RATE_SERVICE));
        // Rediscovery (events() re-subscribed after a reconnect) keeps what advertisements
        // taught us: beacon identity, node and wearable flags.
        let d = self
            .devices
            .entry(id.clone())
            .or_insert_with(|| fresh.clone());
        d.addr = fresh.addr;
        d.addr_kind = fresh.addr_kind;
        d.tx_power = fresh.tx_power.or(d.tx_power);
        d.rssi = fresh.rssi.or(d.rssi);
        d.last_seen = now;
        d.wearable |= hr_service;
        if !info.manufacturer_data.is_empty() {
            self.apply(
                &id,
                &AdvEvent::Manufacturer(info.manufacturer_data.clone()),
                now,
                out,
            );
        }
        if !info.service_data.is_empty() {
            self.apply(&id, &AdvEvent::Service(info.service_data.clone()), now, out);
        }
        self.pending = Some(Pending {
            id,
            rank: 2,
            rssi: info.rssi,
            since: now,
        });
        self.close_run(out);
    }

    /// An advertisement event about a device (ignored if the device is unknown).
    pub fn event(&mut self, id: K, ev: &AdvEvent, now: Instant, out: &mut Vec<SourceEvent>) {
        if !self.devices.contains_key(&id) {
            return;
        }
        let joins = self
            .pending
            .as_ref()
            .is_some_and(|p| p.id == id && p.rank < ev.rank() && now < p.since + COALESCE);
        if !joins {
            self.close_run(out);
        }
        self.apply(&id, ev, now, out);
        let rssi = match ev {
            AdvEvent::Rssi(r) => Some(*r),
            _ => None,
        };
        match &mut self.pending {
            Some(p) if joins => {
                p.rank = ev.rank();
                p.rssi = p.rssi.or(rssi);
            }
            _ => {
                self.pending = Some(Pending {
                    id,
                    rank: ev.rank(),
                    rssi,
                    since: now,
                });
            }
        }
        // Service data is the last of a signal: nothing more can join.
        if ev.rank() == 2 {
            self.close_run(out);
        }
    }

    /// Closes the open run if its time is up (call at [`Scanner::flush_deadline`]).
    pub fn tick(&mut self, now: Instant, out: &mut Vec<SourceEvent>) {
        if self.flush_deadline().is_some_and(|d| now >= d) {
            self.close_run(out);
        }
    }

    /// Closes the open run now (shutdown).
    pub fn flush(&mut self, out: &mut Vec<SourceEvent>) {
        self.close_run(out);
    }

    fn close_run(&mut self, out: &mut Vec<SourceEvent>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let Some(d) = self.devices.get(&p.id) else {
            return;
        };
        if d.node {
            return;
        }
        let Some(rssi) = p.rssi.or(d.rssi) else {
            self.stats.no_rssi += 1;
            return;
        };
        self.stats.sightings += 1;
        out.push(SourceEvent::Input {
            at: wall_clock(),
            source: SOURCE,
            input: Input::Sighting(Sighting {
                node: self.node,
                device: d.evidence(),
                kind: d.kind(),
                rssi: RssiObservation::single(clamp_dbm(rssi)),
                tx_power_dbm: d.beacon.and_then(|b| b.power_dbm).or(d.tx_power),
            }),
        });
    }

    fn make_room(&mut self, incoming: &K) {
        if self.devices.len() < self.max_devices || self.devices.contains_key(incoming) {
            return;
        }
        // Full: forget the least recently heard device. O(n), but only when the table is
        // full, which a correctly sized table reaches rarely.
        let oldest = self
            .devices
            .iter()
            .min_by_key(|(_, d)| d.last_seen)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            if self.pending.as_ref().is_some_and(|p| p.id == k) {
                self.pending = None;
            }
            self.devices.remove(&k);
            self.stats.evicted += 1;
        }
    }

    fn apply(&mut self, id: &K, ev: &AdvEvent, now: Instant, out: &mut Vec<SourceEvent>) {
        let Some(d) = self.devices.get_mut(id) else {
            return;
        };
        d.last_seen = now;
        match ev {
            AdvEvent::Rssi(r) => d.rssi = Some(*r),
            AdvEvent::Manufacturer(map) => {
                // Sorted for a deterministic order of events from one advertisement.
                let mut entries: Vec<(&u16, &Vec<u8>)> = map.iter().collect();
                entries.sort_unstable_by_key(|(c, _)| **c);
                for (&company, data) in entries {
                    if company == self.company_id {
                        self.footfall_data(id, data, now, out);
                    } else if let Some(b) = manufacturer_beacon(company, data, &mut self.scratch) {
                        if let Some(d) = self.devices.get_mut(id) {
                            d.beacon = Some(b);
                        }
                    }
                }
            }
            AdvEvent::Service(map) => {
                let mut entries: Vec<(&Uuid, &Vec<u8>)> = map.iter().collect();
                entries.sort_unstable_by_key(|(u, _)| **u);
                for (uuid, data) in entries {
                    self.service_data(id, *uuid, data, out);
                }
            }
        }
    }

    fn footfall_data(&mut self, id: &K, data: &[u8], now: Instant, out: &mut Vec<SourceEvent>) {
        if let [TAG_SENSOR_KIND, rest @ ..] = data {
            if let [lo, hi, ..] = *rest {
                if let Some(d) = self.devices.get_mut(id) {
                    d.wearable = true;
                    let device = d.evidence();
                    out.push(self.wearable(device, None, None, Some(u16::from_le_bytes([lo, hi]))));
                }
            }
            return;
        }
        match self.verifier.verify(data, now) {
            Ok(report) => {
                if let Some(d) = self.devices.get_mut(id) {
                    d.node = true;
                }
                out.extend(self.verifier.accepted_events(&report, wall_clock(), SOURCE));
            }
            Err(Rejection::Replayed {
                counter,
                last_accepted,
                node,
            }) if counter == last_accepted => {
                // The node repeats its advertisement; we already took this frame.
                if let Some(d) = self.devices.get_mut(id) {
                    d.node = true;
                }
                self.stats.duplicate_frames += 1;
                tracing::trace!(source = SOURCE, node, counter, "repeated node frame");
            }
            Err(rejection) => {
                tracing::debug!(source = SOURCE, %rejection, reason = rejection.reason(),
                    "BLE node frame refused");
                out.push(rejection.event(SOURCE));
            }
        }
    }

    fn service_data(&mut self, id: &K, uuid: Uuid, data: &[u8], out: &mut Vec<SourceEvent>) {
        if uuid == uuid_from_u16(eddystone::SERVICE_UUID) {
            if let Ok(e) = Eddystone::parse(data) {
                if let Some(b) = beacon_id(&Beacon::Eddystone(e)) {
                    if let Some(d) = self.devices.get_mut(id) {
                        d.beacon = Some(b);
                    }
                }
            }
        } else if uuid == uuid_from_u16(HEART_RATE_SERVICE) {
            // Footfall tags and many straps put a Heart Rate Measurement (0x2A37 layout) in
            // Heart Rate service data.
            let Ok(hr) = HeartRateMeasurement::parse(data) else {
                return;
            };
            let Some(d) = self.devices.get_mut(id) else {
                return;
            };
            d.wearable = true;
            let device = d.evidence();
            let rr = hr.rr_intervals().last();
            out.push(self.wearable(device, Some(hr.heart_rate_bpm), rr, None));
        }
    }

    fn wearable(
        &self,
        device: DeviceEvidence,
        heart_rate_bpm: Option<u16>,
        rr_interval: Option<u16>,
        motion_mg: Option<u16>,
    ) -> SourceEvent {
        SourceEvent::Input {
            at: wall_clock(),
            source: SOURCE,
            input: Input::Wearable(WearableSample {
                node: self.node,
                device,
                heart_rate_bpm,
                rr_interval,
                motion_mg,
            }),
        }
    }
}

/// The BLE source (see the module docs).
#[derive(Debug)]
pub struct BleSource {
    cfg: BleConfig,
    scanner: Scanner<PeripheralId>,
}

impl BleSource {
    /// A source scanning per `cfg`, verifying node frames with `keys`. Frame counters persist
    /// in `{state_dir}/frame-counters`, shared with the uplink source of the same directory.
    ///
    /// # Errors
    ///
    /// The counter file cannot be read or is corrupt.
    pub fn new(
        cfg: BleConfig,
        keys: HashMap<NodeId, NodeKey>,
        state_dir: Option<&Path>,
    ) -> Result<Self, BleError> {
        let replay = match state_dir {
            Some(dir) => ReplayState::open_shared(dir)?,
            None => Arc::new(Mutex::new(ReplayState::in_memory())),
        };
        let limit = RateLimit {
            frames_per_s: cfg.max_frames_per_s_per_node,
            burst: cfg.burst_frames_per_node,
        };
        let verifier =
            FrameVerifier::new(keys, replay, limit).with_max_frame_delay_ms(cfg.max_frame_delay_ms);
        Ok(Self::with_verifier(cfg, verifier))
    }

    /// As [`BleSource::new`] with a verifier built by the caller.
    pub fn with_verifier(cfg: BleConfig, verifier: FrameVerifier) -> Self {
        let scanner = Scanner::new(cfg.node_id, cfg.company_id, cfg.max_devices, verifier);
        Self { cfg, scanner }
    }

    /// Finds the configured adapter. Every failure names what is missing.
    ///
    /// # Errors
    ///
    /// [`BleError::NoDbus`], [`BleError::NoBluez`], [`BleError::NoAdapter`],
    /// [`BleError::AdapterNotFound`].
    pub async fn find_adapter(cfg: &BleConfig) -> Result<(Adapter, String), BleError> {
        let manager = Manager::new()
            .await
            .map_err(|e| BleError::NoDbus(e.to_string()))?;
        let adapters = manager
            .adapters()
            .await
            .map_err(|e| BleError::NoBluez(e.to_string()))?;
        let mut named = Vec::with_capacity(adapters.len());
        for a in adapters {
            let info = a.adapter_info().await.unwrap_or_default();
            // BlueZ backend: "hci0 (usb:v1D6Bp0246d0540)".
            let name = info
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            named.push((a, name));
        }
        if named.is_empty() {
            return Err(BleError::NoAdapter);
        }
        match &cfg.adapter {
            None => named.into_iter().next().ok_or(BleError::NoAdapter),
            Some(wanted) => {
                let available = named
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                named.into_iter().find(|(_, n)| n == wanted).ok_or_else(|| {
                    BleError::AdapterNotFound {
                        wanted: wanted.clone(),
                        available: if available.is_empty() {
                            "none".into()
                        } else {
                            available
                        },
                    }
                })
            }
        }
    }

    async fn run_loop(
        mut self,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        // Startup failures are fatal and named; later ones are retried.
        let (mut adapter, mut name) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            r = Self::find_adapter(&self.cfg) => r?,
        };
        let mut backoff = Backoff::new(
            Duration::from_millis(self.cfg.reconnect_min_ms.max(10)),
            Duration::from_millis(self.cfg.reconnect_max_ms),
            rand::random(),
        );
        loop {
            match self.scan(&adapter, &name, &tx, &shutdown).await {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!(source = SOURCE, adapter = %name, error = %e,
                    "BLE scan interrupted; reconnecting"),
            }
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
                match Self::find_adapter(&self.cfg).await {
                    Ok((a, n)) => {
                        (adapter, name) = (a, n);
                        break;
                    }
                    Err(e) => tracing::warn!(source = SOURCE, error = %e, "BLE reconnect failed"),
                }
            }
            backoff.reset();
        }
    }

    /// Scans until shutdown (`Ok`) or until the adapter fails (`Err`).
    async fn scan(
        &mut self,
        adapter: &Adapter,
        name: &str,
        tx: &mpsc::Sender<SourceEvent>,
        shutdown: &CancellationToken,
    ) -> Result<(), BleError> {
        let fail = |what: &'static str| {
            let adapter = name.to_owned();
            move |e: btleplug::Error| BleError::Adapter {
                adapter,
                what,
                error: e.to_string(),
            }
        };
        let mut events = adapter
            .events()
            .await
            .map_err(fail("subscribing to events"))?;
        adapter
            .start_scan(ScanFilter::default())
            .await
            .map_err(fail("starting the scan"))?;
        tracing::info!(
            source = SOURCE,
            adapter = name,
            company_id = self.cfg.company_id,
            node = self.cfg.node_id,
            "BLE scan started"
        );

        let watchdog = Duration::from_secs(self.cfg.watchdog_s);
        let check_every = (watchdog / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut check = tokio::time::interval(check_every);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop_sync = shutdown.child_token();
        let _stop_sync_on_exit = stop_sync.clone().drop_guard();
        tokio::spawn(sync_periodically(
            self.scanner.verifier.replay().clone(),
            stop_sync,
        ));
        let mut last_activity = Instant::now();
        let mut quiet_restarts = 0u32;
        let mut out = Vec::new();
        loop {
            let deadline = self.scanner.flush_deadline();
            let flush_at = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.scanner.flush(&mut out);
                    send_all(tx, &mut out);
                    // BlueZ keeps discovering for a client until it disconnects; say stop,
                    // but never hang shutdown on a stuck bus.
                    let _ = tokio::time::timeout(Duration::from_secs(2), adapter.stop_scan()).await;
                    self.scanner.verifier.sync();
                    return Ok(());
                }
                ev = events.next() => {
                    let Some(ev) = ev else {
                        self.scanner.flush(&mut out);
                        send_all(tx, &mut out);
                        return Err(BleError::StreamEnded(name.to_owned()));
                    };
                    if self.on_event(adapter, ev, &mut out).await {
                        last_activity = Instant::now();
                        quiet_restarts = 0;
                    }
                }
                () = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                    self.scanner.tick(Instant::now(), &mut out);
                }
                _ = check.tick(), if !watchdog.is_zero() => {
                    if last_activity.elapsed() >= watchdog {
                        quiet_restarts = quiet_restarts.saturating_add(1);
                        if quiet_restarts == 1 {
                            tracing::warn!(source = SOURCE, adapter = name, silent_s = watchdog.as_secs(),
                                "no advertisements: restarting the BLE scan (watchdog)");
                        } else {
                            tracing::debug!(source = SOURCE, adapter = name, quiet_restarts,
                                "still no advertisements: restarting the BLE scan (watchdog)");
                        }
                        // A stop error (e.g. discovery already stopped by a stalled bluetoothd)
                        // must not prevent the start.
                        if let Err(e) = adapter.stop_scan().await {
                            tracing::debug!(source = SOURCE, error = %e, "stop_scan before restart");
                        }
                        adapter
                            .start_scan(ScanFilter::default())
                            .await
                            .map_err(fail("restarting the scan"))?;
                        out.push(SourceEvent::ScannerRestarted {
                            source: SOURCE,
                            adapter: name.to_owned(),
                        });
                        last_activity = Instant::now();
                    }
                }
            }
            send_all(tx, &mut out);
        }
    }

    /// Handles one btleplug event; `true` if it was advertisement activity.
    async fn on_event(
        &mut self,
        adapter: &Adapter,
        ev: CentralEvent,
        out: &mut Vec<SourceEvent>,
    ) -> bool {
        let now = Instant::now();
        let (id, adv) = match ev {
            CentralEvent::DeviceDiscovered(id) | CentralEvent::DeviceUpdated(id) => {
                self.fetch(adapter, id, now, out).await;
                return true;
            }
            CentralEvent::RssiUpdate { id, rssi } => (id, AdvEvent::Rssi(rssi)),
            CentralEvent::ManufacturerDataAdvertisement {
                id,
                manufacturer_data,
            } => (id, AdvEvent::Manufacturer(manufacturer_data)),
            CentralEvent::ServiceDataAdvertisement { id, service_data } => {
                (id, AdvEvent::Service(service_data))
            }
            CentralEvent::StateUpdate(state) => {
                tracing::info!(source = SOURCE, ?state, "adapter state");
                return false;
            }
            _ => return false,
        };
        if !self.scanner.knows(&id) {
            // Seen before we subscribed, or evicted: learn its address first. The properties
            // include the current data, so this event is covered by them.
            self.fetch(adapter, id, now, out).await;
            return true;
        }
        self.scanner.event(id, &adv, now, out);
        true
    }

    async fn fetch(
        &mut self,
        adapter: &Adapter,
        id: PeripheralId,
        now: Instant,
        out: &mut Vec<SourceEvent>,
    ) {
        // Two D-Bus round trips; bounded so that a wedged bluetoothd cannot hold up shutdown
        // or the watchdog for bluez-async's long default call timeout.
        let props = tokio::time::timeout(FETCH_TIMEOUT, async {
            adapter.peripheral(&id).await?.properties().await
        })
        .await;
        match props {
            Ok(Ok(Some(p))) => self.scanner.discovered(id, &DeviceInfo::from(&p), now, out),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::debug!(source = SOURCE, peripheral = %id, error = %e,
                "device vanished before its properties were read"),
            Err(_) => tracing::debug!(source = SOURCE, peripheral = %id,
                "reading device properties timed out"),
        }
    }
}

fn send_all(tx: &mpsc::Sender<SourceEvent>, out: &mut Vec<SourceEvent>) {
    for ev in out.drain(..) {
        // A full channel is counted by try_send_counted; a radio cannot wait.
        let _ = try_send_counted(tx, ev);
    }
}

impl Source for BleSource {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        (*self).run_loop(tx, shutdown).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_proto::frame::{
        encode_frame, FrameHeader, NodeHealth, FRAME_VERSION, MAX_FRAME_LEN,
    };

    const KEY: NodeKey = NodeKey([3; 16]);
    const ADDR: [u8; 6] = [0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x01];

    fn scanner() -> Scanner<u32> {
        let v = FrameVerifier::new(
            HashMap::from([(5, KEY)]),
            Arc::new(Mutex::new(ReplayState::in_memory())),
            RateLimit::default(),
        );
        Scanner::new(1, DEFAULT_COMPANY_ID, 4, v)
    }

    fn info(addr: [u8; 6], rssi: Option<i16>) -> DeviceInfo {
        DeviceInfo {
            addr,
            address_type: Some(BtAddressType::Public),
            rssi,
            ..DeviceInfo::default()
        }
    }

    fn ibeacon_data(minor: u16) -> Vec<u8> {
        let mut v = vec![0x02, 0x15];
        v.extend_from_slice(&[0x11; 16]);
        v.extend_from_slice(&7u16.to_be_bytes());
        v.extend_from_slice(&minor.to_be_bytes());
        v.push(0xC5); // -59 dBm
        v
    }

    fn node_frame(counter: u32, key: &NodeKey) -> Vec<u8> {
        let h = FrameHeader {
            version: FRAME_VERSION,
            node_id: 5,
            counter,
            node_time_ms: 0,
        };
        let health = NodeHealth {
            uptime_s: 9,
            dropped_sightings: 0,
            dropped_frames: 0,
            queue_depth: 0,
            battery_mv: None,
        };
        let mut buf = [0u8; MAX_FRAME_LEN];
        let enc =
            encode_frame(&h, &health, &[], &[], key, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        buf[..enc.len].to_vec()
    }

    fn sightings(out: &[SourceEvent]) -> Vec<Sighting> {
        out.iter()
            .filter_map(|e| match e {
                SourceEvent::Input {
                    input: Input::Sighting(s),
                    ..
                } => Some(*s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn config_defaults() {
        let c: BleConfig = toml::from_str("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, BleConfig::default());
        assert_eq!((c.watchdog_s, c.company_id, c.enabled), (60, 0xFFFF, false));
        let c: BleConfig = toml::from_str("adapter = \"hci1\"\nwatchdog_s = 5\nnode_id = 100")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (c.adapter.as_deref(), c.watchdog_s, c.node_id),
            (Some("hci1"), 5, 100)
        );
        assert!(toml::from_str::<BleConfig>("watchdog = 5").is_err());
    }

    #[test]
    fn address_types() {
        let t = |a0: u8, k| address_type(&[a0, 0, 0, 0, 0, 0], k);
        assert_eq!(t(0x12, Some(BtAddressType::Public)), AddressType::Public);
        assert_eq!(
            t(0xC1, Some(BtAddressType::Random)),
            AddressType::RandomStatic
        );
        assert_eq!(
            t(0x41, Some(BtAddressType::Random)),
            AddressType::RandomResolvable
        );
        assert_eq!(
            t(0x01, Some(BtAddressType::Random)),
            AddressType::RandomNonResolvable
        );
        assert_eq!(t(0x81, Some(BtAddressType::Random)), AddressType::Unknown);
        assert_eq!(t(0xC1, None), AddressType::Unknown);
    }

    #[test]
    fn discovery_is_one_sighting_by_address() {
        let mut s = scanner();
        let mut out = Vec::new();
        let now = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), now, &mut out);
        let v = sightings(&out);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].node, 1);
        assert_eq!(
            v[0].device,
            DeviceEvidence::Address {
                addr: ADDR,
                kind: AddressType::Public
            }
        );
        assert_eq!(v[0].rssi, RssiObservation::single(-70));
        // No RSSI known: nothing to report.
        out.clear();
        s.discovered(2, &info(ADDR, None), now, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.stats().no_rssi, 1);
    }

    #[test]
    fn one_signal_is_one_sighting_with_the_beacon_identity() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-80)), t, &mut out);
        out.clear();
        // RSSI then manufacturer data, as bluez-async splits one PropertiesChanged.
        s.event(1, &AdvEvent::Rssi(-60), t, &mut out);
        assert!(out.is_empty(), "the run is still open");
        let md = HashMap::from([(0x004C, ibeacon_data(9))]);
        s.event(1, &AdvEvent::Manufacturer(md.clone()), t, &mut out);
        assert!(out.is_empty());
        assert!(s.flush_deadline().is_some());
        s.tick(t + COALESCE, &mut out);
        let v = sightings(&out);
        assert_eq!(v.len(), 1, "{out:?}");
        assert_eq!(
            v[0].device,
            DeviceEvidence::IBeacon {
                uuid: [0x11; 16],
                major: 7,
                minor: 9
            }
        );
        assert_eq!(v[0].rssi.mean_dbm, -60.0);
        assert_eq!(v[0].tx_power_dbm, Some(-59));

        // Data alone (RSSI unchanged, below BlueZ's threshold) is an advertisement too.
        out.clear();
        s.event(1, &AdvEvent::Manufacturer(md.clone()), t, &mut out);
        // A second data event cannot belong to the same signal: the first run closes.
        s.event(1, &AdvEvent::Manufacturer(md), t, &mut out);
        s.flush(&mut out);
        let v = sightings(&out);
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|x| x.rssi.mean_dbm == -60.0));
    }

    #[test]
    fn another_device_closes_the_run() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-80)), t, &mut out);
        s.discovered(2, &info([1, 2, 3, 4, 5, 6], Some(-80)), t, &mut out);
        out.clear();
        s.event(1, &AdvEvent::Rssi(-61), t, &mut out);
        s.event(2, &AdvEvent::Rssi(-62), t, &mut out);
        assert_eq!(sightings(&out).len(), 1);
        // Service data ends a signal at once.
        s.event(2, &AdvEvent::Service(HashMap::new()), t, &mut out);
        assert_eq!(sightings(&out).len(), 2);
        // A late event (after COALESCE) starts a new run.
        s.event(1, &AdvEvent::Rssi(-50), t, &mut out);
        s.event(
            1,
            &AdvEvent::Manufacturer(HashMap::new()),
            t + COALESCE,
            &mut out,
        );
        s.flush(&mut out);
        assert_eq!(sightings(&out).len(), 4);
        // Unknown devices are ignored (the IO side fetches their properties first).
        s.event(99, &AdvEvent::Rssi(-50), t, &mut out);
        s.flush(&mut out);
        assert_eq!(sightings(&out).len(), 4);
    }

    #[test]
    fn eddystone_and_heart_rate_service_data() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), t, &mut out);
        out.clear();
        let mut uid = vec![0x00, 0xEE]; // UID, -18 dBm at 0 m
        uid.extend_from_slice(&[0x22; 10]);
        uid.extend_from_slice(&[0x33; 6]);
        let sd = HashMap::from([
            (uuid_from_u16(0xFEAA), uid),
            // flags 0x10 (RR present), 72 bpm, RR 800 then 810.
            (
                uuid_from_u16(0x180D),
                vec![0x10, 72, 0x20, 0x03, 0x2A, 0x03],
            ),
        ]);
        s.event(1, &AdvEvent::Service(sd), t, &mut out);
        let v = sightings(&out);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].device,
            DeviceEvidence::EddystoneUid {
                namespace: [0x22; 10],
                instance: [0x33; 6]
            }
        );
        assert_eq!(v[0].kind, DeviceKind::Wearable);
        assert_eq!(v[0].tx_power_dbm, Some(-18 - 41));
        let w: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Input {
                    input: Input::Wearable(w),
                    ..
                } => Some(*w),
                _ => None,
            })
            .collect();
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].heart_rate_bpm, w[0].rr_interval),
            (Some(72), Some(810))
        );
        // Sorted by UUID: 0x180D comes before 0xFEAA, so the sample carries the address.
        assert!(matches!(w[0].device, DeviceEvidence::Address { .. }));
    }

    #[test]
    fn node_frames_verified_duplicates_dropped_forgeries_counted() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), t, &mut out);
        out.clear();
        let md = |f: Vec<u8>| AdvEvent::Manufacturer(HashMap::from([(DEFAULT_COMPANY_ID, f)]));
        s.event(1, &AdvEvent::Rssi(-65), t, &mut out);
        s.event(1, &md(node_frame(1, &KEY)), t, &mut out);
        s.flush(&mut out);
        assert!(
            matches!(out.first(), Some(SourceEvent::NodeReport { node: 5, .. })),
            "{out:?}"
        );
        assert!(out.iter().any(|e| matches!(
            e,
            SourceEvent::Input {
                input: Input::NodeAlive { node: 5 },
                ..
            }
        )));
        // The node's own advertisement is not a shopper sighting.
        assert!(sightings(&out).is_empty());
        out.clear();
        // The node repeats the frame: silently dropped.
        s.event(1, &md(node_frame(1, &KEY)), t, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(s.stats().duplicate_frames, 1);
        // A forged frame and an older one are refused and counted.
        s.event(1, &md(node_frame(2, &NodeKey([0; 16]))), t, &mut out);
        s.event(1, &md(node_frame(0, &KEY)), t, &mut out);
        s.event(1, &md(vec![1, 5, 0xFF]), t, &mut out);
        let reasons: Vec<_> = out
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Rejected { reason, node, .. } => Some((*reason, *node)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [
                ("bad_mac", Some(5)),
                ("replayed", Some(5)),
                ("truncated", None)
            ]
        );
    }

    #[test]
    fn tag_sensor_data_is_a_wearable_sample() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), t, &mut out);
        out.clear();
        let md = HashMap::from([(DEFAULT_COMPANY_ID, vec![TAG_SENSOR_KIND, 0x2C, 0x01])]);
        s.event(1, &AdvEvent::Manufacturer(md), t, &mut out);
        s.flush(&mut out);
        assert!(out.iter().any(|e| matches!(
            e,
            SourceEvent::Input {
                input: Input::Wearable(WearableSample {
                    motion_mg: Some(300),
                    ..
                }),
                ..
            }
        )));
        assert_eq!(sightings(&out)[0].kind, DeviceKind::Wearable);
    }

    #[test]
    fn rediscovery_keeps_what_advertisements_taught() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), t, &mut out);
        let md = HashMap::from([(0x004C, ibeacon_data(1))]);
        s.event(1, &AdvEvent::Manufacturer(md), t, &mut out);
        s.flush(&mut out);
        out.clear();
        s.discovered(1, &info(ADDR, Some(-66)), t, &mut out);
        let v = sightings(&out);
        assert_eq!(v.len(), 1);
        assert!(matches!(
            v[0].device,
            DeviceEvidence::IBeacon { minor: 1, .. }
        ));
        assert_eq!(v[0].rssi.mean_dbm, -66.0);
    }

    #[test]
    fn device_table_is_bounded() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        for i in 0..10u32 {
            s.discovered(
                i,
                &info([0, 0, 0, 0, 0, i as u8], Some(-70)),
                t + Duration::from_millis(u64::from(i)),
                &mut out,
            );
        }
        assert_eq!(s.devices.len(), 4);
        assert_eq!(s.stats().evicted, 6);
        assert!(s.knows(&9) && !s.knows(&0));
    }

    #[test]
    fn garbage_never_panics() {
        let mut s = scanner();
        let mut out = Vec::new();
        let t = Instant::now();
        s.discovered(1, &info(ADDR, Some(-70)), t, &mut out);
        let mut seed = 99u32;
        for len in 0..64 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8
                })
                .collect();
            for company in [0x004C, DEFAULT_COMPANY_ID, 0x0118] {
                s.event(
                    1,
                    &AdvEvent::Manufacturer(HashMap::from([(company, data.clone())])),
                    t,
                    &mut out,
                );
            }
            for u in [0xFEAA, 0x180D] {
                s.event(
                    1,
                    &AdvEvent::Service(HashMap::from([(uuid_from_u16(u), data.clone())])),
                    t,
                    &mut out,
                );
            }
            s.event(1, &AdvEvent::Rssi(i16::MIN), t, &mut out);
        }
        s.flush(&mut out);
    }
}
