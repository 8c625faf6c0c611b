//! Raw advertising payloads (AD structures, Core Specification Supplement part A) for simulated
//! devices, written as hex into sighting records when `raw_adv` is on. Layouts follow the
//! public iBeacon, Eddystone-UID and Heart Rate Measurement (0x2A37) definitions.

/// AD type: Flags.
const AD_FLAGS: u8 = 0x01;
/// AD type: complete list of 16-bit service UUIDs.
const AD_UUID16_COMPLETE: u8 = 0x03;
/// AD type: service data, 16-bit UUID.
const AD_SERVICE_DATA16: u8 = 0x16;
/// AD type: manufacturer specific data.
const AD_MANUFACTURER: u8 = 0xff;
/// Flags: LE general discoverable, BR/EDR not supported.
const FLAGS_LE_ONLY: u8 = 0x06;
/// Heart Rate service.
const UUID_HEART_RATE: [u8; 2] = 0x180du16.to_le_bytes();
/// Eddystone service.
const UUID_EDDYSTONE: [u8; 2] = 0xfeaau16.to_le_bytes();
/// Apple's company id (iBeacon is carried in Apple manufacturer data).
const COMPANY_APPLE: [u8; 2] = 0x004cu16.to_le_bytes();
/// The company id reserved for testing: used for the simulated phones' opaque payloads.
const COMPANY_TEST: [u8; 2] = 0xffffu16.to_le_bytes();

fn ad(out: &mut Vec<u8>, ad_type: u8, data: &[u8]) {
    // Every structure built here is far below 255 bytes.
    out.push((data.len() + 1) as u8);
    out.push(ad_type);
    out.extend_from_slice(data);
}

/// A phone's advertisement: flags and 4 opaque manufacturer bytes.
pub(crate) fn phone(opaque: [u8; 4]) -> String {
    let mut out = Vec::with_capacity(12);
    ad(&mut out, AD_FLAGS, &[FLAGS_LE_ONLY]);
    let mut data = COMPANY_TEST.to_vec();
    data.extend_from_slice(&opaque);
    ad(&mut out, AD_MANUFACTURER, &data);
    hex::encode(out)
}

/// An iBeacon advertisement.
pub(crate) fn ibeacon(uuid: [u8; 16], major: u16, minor: u16, measured_power: i8) -> String {
    let mut out = Vec::with_capacity(30);
    ad(&mut out, AD_FLAGS, &[FLAGS_LE_ONLY]);
    let mut data = COMPANY_APPLE.to_vec();
    data.extend_from_slice(&[0x02, 0x15]);
    data.extend_from_slice(&uuid);
    data.extend_from_slice(&major.to_be_bytes());
    data.extend_from_slice(&minor.to_be_bytes());
    data.push(measured_power as u8);
    ad(&mut out, AD_MANUFACTURER, &data);
    hex::encode(out)
}

/// An Eddystone-UID advertisement.
pub(crate) fn eddystone_uid(namespace: [u8; 10], instance: [u8; 6], tx_at_0m: i8) -> String {
    let mut out = Vec::with_capacity(31);
    ad(&mut out, AD_FLAGS, &[FLAGS_LE_ONLY]);
    ad(&mut out, AD_UUID16_COMPLETE, &UUID_EDDYSTONE);
    let mut data = UUID_EDDYSTONE.to_vec();
    data.push(0x00); // frame type UID
    data.push(tx_at_0m as u8);
    data.extend_from_slice(&namespace);
    data.extend_from_slice(&instance);
    data.extend_from_slice(&[0, 0]); // reserved
    ad(&mut out, AD_SERVICE_DATA16, &data);
    hex::encode(out)
}

/// A heart-rate wearable's advertisement: Heart Rate service UUID and a Heart Rate Measurement
/// in service data (8-bit value, RR interval when present).
pub(crate) fn heart_rate(bpm: u8, rr: Option<u16>) -> String {
    let mut out = Vec::with_capacity(16);
    ad(&mut out, AD_FLAGS, &[FLAGS_LE_ONLY]);
    ad(&mut out, AD_UUID16_COMPLETE, &UUID_HEART_RATE);
    let mut data = UUID_HEART_RATE.to_vec();
    match rr {
        Some(rr) => {
            data.push(0x10); // flags: u8 format, RR interval present
            data.push(bpm);
            data.extend_from_slice(&rr.to_le_bytes());
        }
        None => {
            data.push(0x00);
            data.push(bpm);
        }
    }
    ad(&mut out, AD_SERVICE_DATA16, &data);
    hex::encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibeacon_layout() {
        let h = ibeacon([0xab; 16], 0x0102, 0x0304, -59);
        let b = hex::decode(h).unwrap();
        assert_eq!(&b[..3], &[2, 1, 6]);
        assert_eq!(&b[3..9], &[0x1a, 0xff, 0x4c, 0x00, 0x02, 0x15]);
        assert_eq!(&b[25..29], &[1, 2, 3, 4]);
        assert_eq!(b[29] as i8, -59);
        assert_eq!(b.len(), 30);
    }

    #[test]
    fn heart_rate_layout() {
        let b = hex::decode(heart_rate(72, Some(850))).unwrap();
        assert_eq!(&b[3..7], &[3, 3, 0x0d, 0x18]);
        assert_eq!(&b[7..], &[7, 0x16, 0x0d, 0x18, 0x10, 72, 0x52, 0x03]);
    }

    #[test]
    fn eddystone_layout() {
        let b = hex::decode(eddystone_uid([1; 10], [2; 6], -20)).unwrap();
        assert_eq!(b[7], 0x17);
        assert_eq!(b.len(), 7 + 24);
    }
}
