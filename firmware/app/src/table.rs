//! Per-window aggregation: one entry per device, in a fixed-capacity map that counts what it
//! cannot hold.

use footfall_proto::frame::{DeviceRef, RssiStats, SightingRecord, WearableRecord};
use heapless::index_map::FnvIndexMap;

use crate::observe::{HeartRate, Observation};
use crate::scanner::AdvReport;

/// RSSI value HCI uses for "not available".
pub const RSSI_UNAVAILABLE: i8 = 127;

/// One device's aggregate over the current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    count: u16,
    min: i8,
    max: i8,
    sum: i32,
    tx_power_dbm: Option<i8>,
    heart_rate: Option<HeartRate>,
    motion_mg: Option<u16>,
}

/// What happened to one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Recorded {
    /// Added to an existing entry.
    Updated,
    /// A new device in this window.
    Inserted,
    /// The table was full and the device new: dropped (and counted).
    Dropped,
    /// The report had no RSSI; ignored.
    Ignored,
}

/// A window's aggregate: at most `N` devices (`N` a power of two, the map's requirement).
#[derive(Debug)]
pub struct SightingTable<const N: usize> {
    entries: FnvIndexMap<DeviceRef, Entry, N>,
    dropped: u32,
}

impl<const N: usize> Default for SightingTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The device a report is about: its beacon/tag identity if it carries one, else its address.
pub fn device_of(report: &AdvReport<'_>, obs: &Observation) -> DeviceRef {
    obs.identity.unwrap_or(DeviceRef::Address {
        addr: report.addr,
        kind: report.address_type(),
    })
}

/// Mean of `sum / count`, rounded half away from zero (`count > 0`).
fn rounded_mean(sum: i32, count: u16) -> i8 {
    let count = i32::from(count.max(1));
    let half = count / 2;
    let mean = if sum >= 0 {
        (sum + half) / count
    } else {
        (sum - half) / count
    };
    mean.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
}

impl<const N: usize> SightingTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self {
            entries: FnvIndexMap::new(),
            dropped: 0,
        }
    }

    /// Devices in the current window.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the window has heard nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Capacity (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Reports dropped because the table was full, since the table was made.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Adds one report (already decoded into `obs`) to the window.
    pub fn record(&mut self, report: &AdvReport<'_>, obs: &Observation) -> Recorded {
        if report.rssi == RSSI_UNAVAILABLE {
            return Recorded::Ignored;
        }
        let device = device_of(report, obs);
        let rssi = report.rssi;
        if let Some(e) = self.entries.get_mut(&device) {
            e.count = e.count.saturating_add(1);
            if e.count < u16::MAX {
                e.sum += i32::from(rssi);
            }
            e.min = e.min.min(rssi);
            e.max = e.max.max(rssi);
            e.tx_power_dbm = obs.tx_power_dbm.or(e.tx_power_dbm);
            // Wearable fields: the latest sample in the window wins.
            e.heart_rate = obs.heart_rate.or(e.heart_rate);
            e.motion_mg = obs.motion_mg.or(e.motion_mg);
            return Recorded::Updated;
        }
        let entry = Entry {
            count: 1,
            min: rssi,
            max: rssi,
            sum: i32::from(rssi),
            tx_power_dbm: obs.tx_power_dbm,
            heart_rate: obs.heart_rate,
            motion_mg: obs.motion_mg,
        };
        match self.entries.insert(device, entry) {
            Ok(_) => Recorded::Inserted,
            Err(_) => {
                self.dropped = self.dropped.saturating_add(1);
                Recorded::Dropped
            }
        }
    }

    /// The window so far: every device as a [`WindowRecord`], in first-heard order.
    pub fn records(&self) -> impl Iterator<Item = WindowRecord> + '_ {
        self.entries.iter().map(|(device, e)| {
            // The sum stops growing when the count saturates, so the mean stays right.
            let counted = if e.count == u16::MAX {
                u16::MAX - 1
            } else {
                e.count
            };
            WindowRecord {
                sighting: SightingRecord {
                    device: *device,
                    rssi: RssiStats {
                        count: e.count,
                        min: e.min,
                        max: e.max,
                        mean: rounded_mean(e.sum, counted),
                    },
                    tx_power_dbm: e.tx_power_dbm,
                },
                heart_rate: e.heart_rate,
                motion_mg: e.motion_mg,
            }
        })
    }

    /// Starts a new window (the drop counter keeps counting).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// One device's line in a closed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRecord {
    /// The sighting as the frame carries it.
    pub sighting: SightingRecord,
    /// Latest heart rate heard in the window.
    pub heart_rate: Option<HeartRate>,
    /// Latest motion magnitude heard in the window.
    pub motion_mg: Option<u16>,
}

impl WindowRecord {
    /// The wearable sample for this sighting, if any field is known, pointing at `index`.
    pub fn wearable(&self, index: u8) -> Option<WearableRecord> {
        (self.heart_rate.is_some() || self.motion_mg.is_some()).then(|| WearableRecord {
            sighting_index: index,
            heart_rate_bpm: self.heart_rate.map(|h| h.bpm),
            rr_interval: self.heart_rate.and_then(|h| h.rr_interval),
            motion_mg: self.motion_mg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observe;
    use footfall_proto::frame::AddressType;
    use proptest::prelude::*;

    fn report(last: u8, rssi: i8) -> AdvReport<'static> {
        AdvReport {
            addr: [0xC0, 0, 0, 0, 0, last],
            addr_type: 1,
            rssi,
            data: &[],
        }
    }

    #[test]
    fn aggregates_count_min_max_mean() {
        let mut t = SightingTable::<4>::new();
        for r in [-60, -70, -65] {
            let rep = report(1, r);
            t.record(&rep, &observe(rep.data));
        }
        let recs: heapless::Vec<WindowRecord, 4> = t.records().collect();
        t.clear();
        assert_eq!(recs.len(), 1);
        let s = recs[0].sighting;
        assert_eq!(
            s.device,
            DeviceRef::Address {
                addr: [0xC0, 0, 0, 0, 0, 1],
                kind: AddressType::RandomStatic
            }
        );
        assert_eq!(
            s.rssi,
            RssiStats {
                count: 3,
                min: -70,
                max: -60,
                mean: -65
            }
        );
        assert!(t.is_empty());
    }

    #[test]
    fn mean_rounds_half_away_from_zero() {
        assert_eq!(rounded_mean(-131, 2), -66);
        assert_eq!(rounded_mean(-130, 2), -65);
        assert_eq!(rounded_mean(-129, 2), -65);
        assert_eq!(rounded_mean(5, 2), 3);
        assert_eq!(rounded_mean(0, 0), 0);
    }

    #[test]
    fn full_table_drops_new_devices_but_updates_known_ones() {
        let mut t = SightingTable::<2>::new();
        let obs = Observation::default();
        assert_eq!(t.record(&report(1, -50), &obs), Recorded::Inserted);
        assert_eq!(t.record(&report(2, -50), &obs), Recorded::Inserted);
        assert_eq!(t.record(&report(3, -50), &obs), Recorded::Dropped);
        assert_eq!(t.record(&report(1, -40), &obs), Recorded::Updated);
        assert_eq!(
            t.record(&report(1, RSSI_UNAVAILABLE), &obs),
            Recorded::Ignored
        );
        assert_eq!(t.dropped(), 1);
        assert_eq!(t.len(), 2);
    }

    proptest! {
        #[test]
        fn table_never_exceeds_capacity(reports in proptest::collection::vec((0u8..40, -100i8..-20), 0..400)) {
            let mut t = SightingTable::<16>::new();
            let mut distinct = std::collections::BTreeSet::new();
            for (addr, rssi) in &reports {
                let r = report(*addr, *rssi);
                t.record(&r, &Observation::default());
                distinct.insert(*addr);
                prop_assert!(t.len() <= t.capacity());
            }
            prop_assert!(t.len() + t.dropped() as usize >= distinct.len());
            let total: u32 = t.records().map(|r| u32::from(r.sighting.rssi.count)).sum();
            prop_assert_eq!(total + t.dropped(), reports.len() as u32);
        }
    }
}
