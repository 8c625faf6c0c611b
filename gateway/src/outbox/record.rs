//! The on-disk form of one outbox record: a rendered MQTT message plus what the sink needs to
//! publish it again after a restart.
//!
//! Layout (little endian), version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version (1) |
//! | 1 | class ([`Class`]) |
//! | 1 | flags: bit 0 retain |
//! | 1 | qos |
//! | 4 | configured expiry, seconds (0 = none) |
//! | 8 | event time, ms since the Unix epoch |
//! | 8 | appended at, µs since the Unix epoch (publish-latency metric) |
//! | 1 | event id length `i` |
//! | i | event id (UTF-8) |
//! | 2 | topic length `t` |
//! | t | topic (UTF-8) |
//! | rest | payload |
//!
//! Records are written by this gateway only, but the file may be damaged (disk full, bit rot):
//! decoding checks every length and returns `None` for a record it cannot read; the outbox then
//! drops that record and counts it rather than stalling delivery forever.

use crate::cloudevents::{MessageClass, OutMessage, CONTENT_TYPE};
use footfall_engine::time::Timestamp;

const VERSION: u8 = 1;
const FIXED: usize = 1 + 1 + 1 + 1 + 4 + 8 + 8 + 1 + 2;

/// The outbox's policy class of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Retained state (occupancy, node and gateway status): a newer message supersedes it, so it
    /// is the first to go when the outbox is full.
    State,
    /// Zone enter / dwell / exit / engagement.
    Event,
    /// Campaign triggers: never dropped silently.
    Trigger,
}

impl Class {
    /// The class of a rendered message.
    pub fn of(class: MessageClass) -> Self {
        match class {
            MessageClass::CampaignTrigger => Class::Trigger,
            MessageClass::Occupancy | MessageClass::NodeStatus | MessageClass::GatewayStatus => {
                Class::State
            }
            _ => Class::Event,
        }
    }

    /// Metrics label.
    pub const fn label(self) -> &'static str {
        match self {
            Class::State => "state",
            Class::Event => "event",
            Class::Trigger => "campaign_trigger",
        }
    }
}

fn class_code(c: MessageClass) -> u8 {
    MessageClass::ALL
        .iter()
        .position(|x| *x == c)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

fn class_from_code(c: u8) -> Option<MessageClass> {
    MessageClass::ALL.get(usize::from(c)).copied()
}

/// Encodes `msg`, appended at `appended_us` (µs since the Unix epoch).
pub fn encode(msg: &OutMessage, appended_us: u64) -> Vec<u8> {
    let id = msg.event_id.as_bytes();
    let id = id.get(..usize::from(u8::MAX)).unwrap_or(id);
    let topic = msg.topic.as_bytes();
    let topic = topic.get(..usize::from(u16::MAX)).unwrap_or(topic);
    let mut out = Vec::with_capacity(FIXED + id.len() + topic.len() + msg.payload.len());
    out.push(VERSION);
    out.push(class_code(msg.class));
    out.push(u8::from(msg.retain));
    out.push(msg.qos);
    out.extend_from_slice(&msg.expiry_s.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&msg.time.0.to_le_bytes());
    out.extend_from_slice(&appended_us.to_le_bytes());
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(&u16::try_from(topic.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&msg.payload);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn arr<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// Decodes a record: the message and its append time (µs since the Unix epoch).
pub fn decode(bytes: &[u8]) -> Option<(OutMessage, u64)> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return None;
    }
    let class = class_from_code(r.u8()?)?;
    let flags = r.u8()?;
    let qos = r.u8()?;
    let expiry = u32::from_le_bytes(r.arr()?);
    let time = u64::from_le_bytes(r.arr()?);
    let appended_us = u64::from_le_bytes(r.arr()?);
    let id_len = usize::from(r.u8()?);
    let id = std::str::from_utf8(r.take(id_len)?).ok()?.to_owned();
    let topic_len = usize::from(u16::from_le_bytes(r.arr()?));
    let topic = std::str::from_utf8(r.take(topic_len)?).ok()?.to_owned();
    let payload = r.0.to_vec();
    Some((
        OutMessage {
            topic,
            payload,
            qos,
            retain: flags & 1 == 1,
            expiry_s: (expiry != 0).then_some(expiry),
            content_type: CONTENT_TYPE,
            event_id: id,
            class,
            time: Timestamp(time),
        },
        appended_us,
    ))
}

/// The class of an encoded record without decoding the rest (used when rebuilding the index).
pub fn peek_class(bytes: &[u8]) -> Option<Class> {
    match bytes {
        [VERSION, c, ..] => class_from_code(*c).map(Class::of),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> OutMessage {
        OutMessage {
            topic: "footfall/v1/s/campaigns/c1".into(),
            payload: br#"{"id":"x"}"#.to_vec(),
            qos: 1,
            retain: false,
            expiry_s: Some(30),
            content_type: CONTENT_TYPE,
            event_id: "00112233445566778899aabbccddeeff".into(),
            class: MessageClass::CampaignTrigger,
            time: Timestamp(1_700_000_000_123),
        }
    }

    #[test]
    fn round_trip() {
        let m = msg();
        let enc = encode(&m, 42);
        assert_eq!(decode(&enc), Some((m, 42)));
        assert_eq!(peek_class(&enc), Some(Class::Trigger));
    }

    #[test]
    fn every_truncation_is_refused_not_panicking() {
        let enc = encode(&msg(), 42);
        let header_end = FIXED + 32 + "footfall/v1/s/campaigns/c1".len();
        for n in 0..header_end {
            assert_eq!(decode(enc.get(..n).unwrap_or(&[])), None, "prefix {n}");
        }
    }

    #[test]
    fn unknown_version_or_class_is_refused() {
        let mut enc = encode(&msg(), 1);
        enc[0] = 9;
        assert!(decode(&enc).is_none());
        let mut enc = encode(&msg(), 1);
        enc[1] = 200;
        assert!(decode(&enc).is_none());
    }
}
