//! Recording lines → engine [`Input`]s.

use crate::record::{AddrType, KindHint, SightingRecord};
use footfall_engine::input::{
    AddressType, DeviceEvidence, DeviceKind, Input, RssiObservation, Sighting, WearableSample,
};
use footfall_engine::time::Timestamp;

/// The engine inputs one sighting line stands for: a [`Input::Sighting`], followed by an
/// [`Input::Wearable`] when the line carries wearable fields.
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    items: [Option<Input>; 2],
    next: usize,
}

impl Iterator for Inputs {
    type Item = Input;
    fn next(&mut self) -> Option<Input> {
        while let Some(slot) = self.items.get_mut(self.next) {
            self.next += 1;
            if let Some(i) = slot.take() {
                return Some(i);
            }
        }
        None
    }
}

/// The identity evidence of a line, best first: iBeacon, AltBeacon, Eddystone-UID, ephemeral
/// id, address, short hash. `None` when the line has none (the reader rejects such lines).
pub fn evidence(s: &SightingRecord) -> Option<DeviceEvidence> {
    if let Some(b) = s.ibeacon {
        return Some(DeviceEvidence::IBeacon {
            uuid: b.uuid.0,
            major: b.major,
            minor: b.minor,
        });
    }
    if let Some(id) = s.altbeacon {
        return Some(DeviceEvidence::AltBeacon { id: id.0 });
    }
    if let Some(e) = s.eddystone_uid {
        return Some(DeviceEvidence::EddystoneUid {
            namespace: e.namespace.0,
            instance: e.instance.0,
        });
    }
    if let Some(eid) = s.eid {
        return Some(DeviceEvidence::TagEphemeral { eid: eid.0 });
    }
    if let Some(a) = s.addr {
        return Some(DeviceEvidence::Address {
            addr: a.0,
            kind: address_type(s.addr_type.unwrap_or(AddrType::Unknown)),
        });
    }
    s.short_hash.map(DeviceEvidence::ShortHash)
}

/// The engine's address type for a recorded one.
pub fn address_type(t: AddrType) -> AddressType {
    match t {
        AddrType::Public => AddressType::Public,
        AddrType::RandomStatic => AddressType::RandomStatic,
        AddrType::RandomResolvable => AddressType::RandomResolvable,
        AddrType::RandomNonResolvable => AddressType::RandomNonResolvable,
        AddrType::Unknown => AddressType::Unknown,
    }
}

/// The engine's device kind for a recorded hint.
pub fn device_kind(k: Option<KindHint>) -> DeviceKind {
    match k {
        Some(KindHint::Phone) => DeviceKind::Phone,
        Some(KindHint::Wearable) => DeviceKind::Wearable,
        Some(KindHint::Tag) => DeviceKind::Tag,
        Some(KindHint::Beacon) => DeviceKind::Beacon,
        Some(KindHint::Unknown) | None => DeviceKind::Unknown,
    }
}

/// The time and engine inputs of a sighting line. Lines without identity yield no inputs.
pub fn to_inputs(s: &SightingRecord) -> (Timestamp, Inputs) {
    let mut items = [None, None];
    if let Some(device) = evidence(s) {
        let rssi = match s.stats {
            Some(st) if st.n > 0 => RssiObservation {
                count: st.n,
                min_dbm: st.min,
                max_dbm: st.max,
                mean_dbm: st.mean,
            },
            _ => RssiObservation::single(s.rssi),
        };
        items[0] = Some(Input::Sighting(Sighting {
            node: s.node,
            device,
            kind: device_kind(s.kind),
            rssi,
            tx_power_dbm: s.tx_power,
        }));
        if let Some(hr) = s.hr {
            items[1] = Some(Input::Wearable(WearableSample {
                node: s.node,
                device,
                heart_rate_bpm: hr.bpm,
                rr_interval: hr.rr,
                motion_mg: hr.motion_mg,
            }));
        }
    }
    (Timestamp(s.t), Inputs { items, next: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Addr, HexBytes, IBeaconFields, WearableFields};

    fn base() -> SightingRecord {
        SightingRecord {
            t: 10,
            node: 1,
            addr: Some(Addr([0xc0, 0, 0, 0, 0, 1])),
            addr_type: Some(AddrType::RandomStatic),
            kind: Some(KindHint::Wearable),
            rssi: -70,
            stats: None,
            tx_power: None,
            ibeacon: None,
            altbeacon: None,
            eddystone_uid: None,
            eid: None,
            short_hash: None,
            hr: None,
            adv: None,
        }
    }

    #[test]
    fn wearable_line_gives_sighting_then_sample() {
        let mut s = base();
        s.hr = Some(WearableFields {
            bpm: Some(90),
            rr: None,
            motion_mg: Some(120),
        });
        let (t, inputs) = to_inputs(&s);
        let v: Vec<Input> = inputs.collect();
        assert_eq!(t, Timestamp(10));
        assert_eq!(v.len(), 2);
        assert!(matches!(
            v[0],
            Input::Sighting(Sighting {
                node: 1,
                kind: DeviceKind::Wearable,
                ..
            })
        ));
        assert!(matches!(
            v[1],
            Input::Wearable(WearableSample {
                heart_rate_bpm: Some(90),
                ..
            })
        ));
    }

    #[test]
    fn beacon_beats_address() {
        let mut s = base();
        s.ibeacon = Some(IBeaconFields {
            uuid: HexBytes([7; 16]),
            major: 1,
            minor: 2,
        });
        assert!(matches!(
            evidence(&s),
            Some(DeviceEvidence::IBeacon {
                major: 1,
                minor: 2,
                ..
            })
        ));
        s.ibeacon = None;
        assert!(matches!(
            evidence(&s),
            Some(DeviceEvidence::Address {
                kind: AddressType::RandomStatic,
                ..
            })
        ));
    }
}
