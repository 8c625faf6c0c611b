//! `footfall run --record FILE`: live sightings written in the sim crate's recording format,
//! so a day in a real store can be replayed (`footfall replay`) and evaluated.
//!
//! PRIVACY: a recording holds what the radios heard — raw advertiser addresses and beacon ids.
//! It never leaves the gateway by itself; treat the file like the raw radio log it is.
//! Sightings only: wearable samples and node-alive inputs are not recorded.

use std::io::Write;

use footfall_engine::input::{AddressType, DeviceEvidence, DeviceKind, Input};
use footfall_engine::time::Timestamp;
use footfall_sim::record::{
    Addr, AddrType, EddystoneUidFields, HexBytes, IBeaconFields, KindHint, Record, RssiStats,
    SightingRecord,
};
use tokio::sync::mpsc;

/// One input as a recording line; `None` for inputs the format does not carry.
pub fn to_record(at: Timestamp, input: &Input) -> Option<SightingRecord> {
    let Input::Sighting(s) = input else {
        return None;
    };
    let mut r = SightingRecord {
        t: at.0,
        node: s.node,
        addr: None,
        addr_type: None,
        kind: Some(match s.kind {
            DeviceKind::Phone => KindHint::Phone,
            DeviceKind::Wearable => KindHint::Wearable,
            DeviceKind::Tag => KindHint::Tag,
            DeviceKind::Beacon => KindHint::Beacon,
            _ => KindHint::Unknown,
        }),
        rssi: s.rssi.mean_dbm.round().clamp(-128.0, 127.0) as i8,
        stats: (s.rssi.count > 1).then_some(RssiStats {
            n: s.rssi.count,
            min: s.rssi.min_dbm,
            max: s.rssi.max_dbm,
            mean: s.rssi.mean_dbm,
        }),
        tx_power: s.tx_power_dbm,
        ibeacon: None,
        altbeacon: None,
        eddystone_uid: None,
        eid: None,
        short_hash: None,
        hr: None,
        adv: None,
    };
    match s.device {
        DeviceEvidence::IBeacon { uuid, major, minor } => {
            r.ibeacon = Some(IBeaconFields {
                uuid: HexBytes(uuid),
                major,
                minor,
            });
        }
        DeviceEvidence::AltBeacon { id } => r.altbeacon = Some(HexBytes(id)),
        DeviceEvidence::EddystoneUid {
            namespace,
            instance,
        } => {
            r.eddystone_uid = Some(EddystoneUidFields {
                namespace: HexBytes(namespace),
                instance: HexBytes(instance),
            });
        }
        DeviceEvidence::TagEphemeral { eid } => r.eid = Some(HexBytes(eid)),
        DeviceEvidence::Address { addr, kind } => {
            r.addr = Some(Addr(addr));
            r.addr_type = Some(match kind {
                AddressType::Public => AddrType::Public,
                AddressType::RandomStatic => AddrType::RandomStatic,
                AddressType::RandomResolvable => AddrType::RandomResolvable,
                AddressType::RandomNonResolvable => AddrType::RandomNonResolvable,
                _ => AddrType::Unknown,
            });
        }
        DeviceEvidence::ShortHash(h) => r.short_hash = Some(h),
        _ => return None,
    }
    Some(r)
}

/// Writes `(time, input)` pairs from `rx` to `out` as a recording of `store`, on the blocking
/// pool, until `rx` closes. Returns the lines written.
pub async fn run(
    mut rx: mpsc::Receiver<(Timestamp, Input)>,
    out: Box<dyn Write + Send>,
    store: String,
) -> std::io::Result<u64> {
    tokio::task::spawn_blocking(move || {
        let mut header = footfall_sim::Header::new(store);
        header.generator = Some(format!("footfall-gateway {}", env!("CARGO_PKG_VERSION")));
        let mut rec = footfall_sim::Recorder::new(std::io::BufWriter::new(out), &header)?;
        while let Some((at, input)) = rx.blocking_recv() {
            if let Some(line) = to_record(at, &input) {
                rec.write(&Record::Sighting(line))?;
            }
        }
        let n = rec.lines();
        let mut w = rec.finish()?;
        w.flush()?;
        Ok(n)
    })
    .await
    .map_err(|e| std::io::Error::other(format!("recorder task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_engine::input::{RssiObservation, Sighting};

    #[test]
    fn sighting_round_trips_through_the_recording_format() {
        let input = Input::Sighting(Sighting {
            node: 3,
            device: DeviceEvidence::IBeacon {
                uuid: [7; 16],
                major: 1,
                minor: 2,
            },
            kind: DeviceKind::Phone,
            rssi: RssiObservation::single(-61),
            tx_power_dbm: Some(-59),
        });
        let rec = to_record(Timestamp(1234), &input).unwrap_or_else(|| panic!("not recorded"));
        let (t, mut back) = footfall_sim::to_inputs(&rec);
        assert_eq!(t, Timestamp(1234));
        assert_eq!(back.next(), Some(input));
        assert!(to_record(Timestamp(1), &Input::NodeAlive { node: 1 }).is_none());
    }
}
