//! The anchor as a standards beacon: iBeacon and Eddystone UID + TLM advertising payloads, and
//! a pure scheduler that interleaves them with report-frame advertisements.

use heapless::Vec;

use crate::observe::UUID_EDDYSTONE;

/// Legacy advertising data budget.
pub const LEGACY_ADV_LEN: usize = 31;

/// A legacy advertising payload.
pub type AdvData = Vec<u8, LEGACY_ADV_LEN>;

/// The payload did not fit in 31 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TooLong;

/// Builds AD structures into a legacy payload.
#[derive(Debug, Default, Clone)]
pub struct AdBuilder {
    data: AdvData,
}

impl AdBuilder {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts with the LE General Discoverable + BR/EDR Not Supported flags (`02 01 06`).
    pub fn with_flags() -> Self {
        let mut b = Self::new();
        // Three bytes always fit in 31.
        let _ = b.push(0x01, &[0x06]);
        b
    }

    /// Appends one AD structure.
    pub fn push(&mut self, ty: u8, data: &[u8]) -> Result<&mut Self, TooLong> {
        let len = u8::try_from(data.len() + 1).map_err(|_| TooLong)?;
        if self.data.len() + 1 + usize::from(len) > LEGACY_ADV_LEN {
            return Err(TooLong);
        }
        self.data.push(len).map_err(|_| TooLong)?;
        self.data.push(ty).map_err(|_| TooLong)?;
        self.data.extend_from_slice(data).map_err(|_| TooLong)?;
        Ok(self)
    }

    /// Appends 16-bit-UUID service data (`16 uuid_lo uuid_hi data…`).
    pub fn service_data16(&mut self, uuid: u16, data: &[u8]) -> Result<&mut Self, TooLong> {
        let mut body = Vec::<u8, 29>::new();
        body.extend_from_slice(&uuid.to_le_bytes())
            .map_err(|_| TooLong)?;
        body.extend_from_slice(data).map_err(|_| TooLong)?;
        self.push(0x16, &body)
    }

    /// Appends manufacturer data (`FF company_lo company_hi data…`).
    pub fn manufacturer(&mut self, company: u16, data: &[u8]) -> Result<&mut Self, TooLong> {
        let mut body = Vec::<u8, 29>::new();
        body.extend_from_slice(&company.to_le_bytes())
            .map_err(|_| TooLong)?;
        body.extend_from_slice(data).map_err(|_| TooLong)?;
        self.push(0xFF, &body)
    }

    /// The payload.
    pub fn finish(self) -> AdvData {
        self.data
    }
}

/// This anchor's beacon identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeaconIds {
    /// iBeacon proximity UUID (as sent, big-endian).
    pub ibeacon_uuid: [u8; 16],
    /// iBeacon major (e.g. the store).
    pub major: u16,
    /// iBeacon minor (e.g. the anchor).
    pub minor: u16,
    /// iBeacon measured power: RSSI at 1 m, dBm.
    pub measured_power_1m: i8,
    /// Eddystone namespace (10 bytes).
    pub namespace: [u8; 10],
    /// Eddystone instance (6 bytes).
    pub instance: [u8; 6],
    /// Eddystone calibrated TX power at 0 m, dBm.
    pub tx_power_0m: i8,
}

/// iBeacon: flags + Apple manufacturer data `02 15 uuid major minor power` (30 bytes).
pub fn ibeacon(uuid: &[u8; 16], major: u16, minor: u16, measured_power_1m: i8) -> AdvData {
    let mut body = [0u8; 23];
    let [t0, t1, rest @ ..] = &mut body;
    (*t0, *t1) = (0x02, 0x15);
    let (u, rest) = rest.split_at_mut(16);
    u.copy_from_slice(uuid);
    let [ma0, ma1, mi0, mi1, p] = rest else {
        return AdvData::new();
    };
    [*ma0, *ma1] = major.to_be_bytes();
    [*mi0, *mi1] = minor.to_be_bytes();
    *p = measured_power_1m as u8;
    let mut b = AdBuilder::with_flags();
    match b.manufacturer(0x004C, &body) {
        Ok(_) => b.finish(),
        Err(TooLong) => AdvData::new(),
    }
}

/// Eddystone-UID: flags, service UUID list `FEAA`, service data `00 tx ns[10] inst[6] 00 00`.
pub fn eddystone_uid(namespace: &[u8; 10], instance: &[u8; 6], tx_power_0m: i8) -> AdvData {
    let mut frame = [0u8; 20];
    let [ty, tx, rest @ ..] = &mut frame;
    (*ty, *tx) = (0x00, tx_power_0m as u8);
    let (ns, rest) = rest.split_at_mut(10);
    ns.copy_from_slice(namespace);
    if let Some(inst) = rest.get_mut(..6) {
        inst.copy_from_slice(instance);
    }
    eddystone(&frame)
}

/// Telemetry carried by an Eddystone-TLM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Telemetry {
    /// Battery voltage, mV (0 = not supported, per the spec).
    pub battery_mv: u16,
    /// Temperature, °C in 8.8 fixed point (`0x8000` = not supported).
    pub temperature_8_8: i16,
    /// Advertising PDUs sent since boot.
    pub adv_count: u32,
    /// Time since boot, 0.1 s.
    pub uptime_ds: u32,
}

/// Eddystone-TLM (unencrypted, version 0): `20 00 vbatt temp adv_cnt sec_cnt`, big-endian.
pub fn eddystone_tlm(t: &Telemetry) -> AdvData {
    let mut frame = [0u8; 14];
    let parts: [&[u8]; 5] = [
        &[0x20, 0x00],
        &t.battery_mv.to_be_bytes(),
        &t.temperature_8_8.to_be_bytes(),
        &t.adv_count.to_be_bytes(),
        &t.uptime_ds.to_be_bytes(),
    ];
    let mut at = 0;
    for p in parts {
        if let Some(dst) = frame.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p);
        }
        at += p.len();
    }
    eddystone(&frame)
}

fn eddystone(frame: &[u8]) -> AdvData {
    let mut b = AdBuilder::with_flags();
    let built = b
        .push(0x03, &UUID_EDDYSTONE.to_le_bytes())
        .and_then(|b| b.service_data16(UUID_EDDYSTONE, frame));
    match built {
        Ok(_) => b.finish(),
        Err(TooLong) => AdvData::new(),
    }
}

/// What to put on the air in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Slot {
    /// The iBeacon payload.
    IBeacon,
    /// The Eddystone-UID payload.
    EddystoneUid,
    /// A fresh Eddystone-TLM payload.
    EddystoneTlm,
    /// The oldest queued report frame (extended advertisement / notification).
    Report,
}

/// Advertising schedule settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Time between slots, ms. Beacons get every other slot, so each beacon format is on the
    /// air about every `4 × slot_ms`.
    pub slot_ms: u32,
    /// Every `tlm_every`-th beacon slot sends TLM instead of UID/iBeacon (0 = never).
    pub tlm_every: u8,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        // 50 ms slots: iBeacon and UID each ~every 200 ms (Apple recommends ≤ 100 ms advertising
        // interval for ranging; tighten slot_ms where ranging latency matters), TLM every ~2 s.
        Self {
            slot_ms: 50,
            tlm_every: 10,
        }
    }
}

/// Pure advertising scheduler: even slots are beacons (iBeacon, UID alternating; TLM every
/// `tlm_every`-th), odd slots go to a pending report frame, or to the next beacon if none waits.
#[derive(Debug, Clone)]
pub struct AdvScheduler {
    cfg: ScheduleConfig,
    next_at: u64,
    slot: u32,
    beacons: u32,
}

impl AdvScheduler {
    /// Starts the schedule at `now_ms`.
    pub fn new(cfg: ScheduleConfig, now_ms: u64) -> Self {
        Self {
            cfg,
            next_at: now_ms,
            slot: 0,
            beacons: 0,
        }
    }

    /// When the next slot starts.
    pub fn poll_timeout(&self) -> u64 {
        self.next_at
    }

    /// The slot due at `now_ms` (or `None` before it is due). `report_pending`: a report frame
    /// waits in the anchor's queue.
    pub fn handle_timeout(&mut self, now_ms: u64, report_pending: bool) -> Option<Slot> {
        if now_ms < self.next_at {
            return None;
        }
        let step = u64::from(self.cfg.slot_ms.max(1));
        self.next_at = self
            .next_at
            .saturating_add(step)
            .max(now_ms.saturating_add(1));
        let report_slot = self.slot % 2 == 1;
        self.slot = self.slot.wrapping_add(1);
        if report_slot && report_pending {
            return Some(Slot::Report);
        }
        let n = self.beacons;
        self.beacons = self.beacons.wrapping_add(1);
        let tlm = self.cfg.tlm_every;
        Some(if tlm > 0 && n % u32::from(tlm) == u32::from(tlm) - 1 {
            Slot::EddystoneTlm
        } else if n & 1 == 0 {
            Slot::IBeacon
        } else {
            Slot::EddystoneUid
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observe;
    use footfall_proto::frame::DeviceRef;

    #[test]
    fn ibeacon_round_trips_through_the_observer() {
        let adv = ibeacon(&[0xAB; 16], 1, 2, -59);
        assert_eq!(adv.len(), 30);
        assert_eq!(
            &adv[..9],
            &[0x02, 0x01, 0x06, 0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15]
        );
        let obs = observe(&adv);
        assert_eq!(
            obs.identity,
            Some(DeviceRef::IBeacon {
                uuid: [0xAB; 16],
                major: 1,
                minor: 2
            })
        );
        assert_eq!(obs.tx_power_dbm, Some(-59));
    }

    #[test]
    fn eddystone_uid_round_trips() {
        let adv = eddystone_uid(&[1; 10], &[2; 6], -20);
        assert_eq!(adv.len(), 31);
        assert_eq!(
            observe(&adv).identity,
            Some(DeviceRef::EddystoneUid {
                namespace: [1; 10],
                instance: [2; 6]
            })
        );
    }

    #[test]
    fn tlm_layout() {
        let adv = eddystone_tlm(&Telemetry {
            battery_mv: 3000,
            temperature_8_8: 0x1880,
            adv_count: 0x0102_0304,
            uptime_ds: 10,
        });
        assert_eq!(
            &adv[7..],
            &[0x11, 0x16, 0xAA, 0xFE, 0x20, 0x00, 0x0B, 0xB8, 0x18, 0x80, 1, 2, 3, 4, 0, 0, 0, 10]
        );
        assert_eq!(observe(&adv).identity, None);
    }

    #[test]
    fn builder_refuses_overflow() {
        let mut b = AdBuilder::with_flags();
        assert!(b.push(0xFF, &[0; 26]).is_ok());
        assert_eq!(b.push(0x09, &[]).err(), Some(TooLong));
        assert_eq!(b.finish().len(), 31);
    }

    #[test]
    fn schedule_interleaves_reports_and_beacons() {
        let mut s = AdvScheduler::new(
            ScheduleConfig {
                slot_ms: 10,
                tlm_every: 3,
            },
            0,
        );
        assert_eq!(s.handle_timeout(0, true), Some(Slot::IBeacon));
        assert_eq!(s.handle_timeout(5, true), None);
        assert_eq!(s.poll_timeout(), 10);
        let slots: std::vec::Vec<_> = (1..=6)
            .map(|i| s.handle_timeout(i * 10, i < 4).unwrap())
            .collect();
        assert_eq!(
            slots,
            [
                Slot::Report,
                Slot::EddystoneUid,
                Slot::Report,
                Slot::EddystoneTlm,
                Slot::EddystoneUid,
                Slot::IBeacon
            ]
        );
    }
}
