//! The decisions of the example trigger consumer, apart from its IO so they can be tested alone:
//! what a trigger is, when it expires, and which ids were already handled.
//!
//! See `src/main.rs` for the MQTT and HTTP side and `docs/mqtt.md` for the contract.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

/// The CloudEvents `type` of a campaign trigger.
pub const TRIGGER_TYPE: &str = "footfall.campaign.trigger";

/// The parts of a trigger the consumer acts on. The payload itself is forwarded unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// CloudEvents `source`: which gateway.
    pub source: String,
    /// CloudEvents `id`: unique per source, stable across redelivery.
    pub id: String,
    /// `data.expires_at`, when the campaign expires.
    pub expires_at: Option<SystemTime>,
}

/// Why a message is not a trigger we can handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

#[derive(serde::Deserialize)]
struct Envelope {
    source: String,
    id: String,
    #[serde(rename = "type")]
    ty: String,
    data: Data,
}

#[derive(serde::Deserialize)]
struct Data {
    #[serde(default)]
    expires_at: Option<String>,
}

/// Reads the fields the consumer needs; ignores everything else (new optional fields may appear
/// within `footfall/v1`).
pub fn parse_trigger(payload: &[u8]) -> Result<Trigger, Invalid> {
    let env: Envelope =
        serde_json::from_slice(payload).map_err(|e| Invalid(format!("not a CloudEvent: {e}")))?;
    if env.ty != TRIGGER_TYPE {
        return Err(Invalid(format!("type {:?} is not {TRIGGER_TYPE}", env.ty)));
    }
    if env.id.is_empty() || env.source.is_empty() {
        return Err(Invalid("empty id or source".into()));
    }
    let expires_at = match env.data.expires_at {
        None => None,
        Some(s) => Some(
            humantime::parse_rfc3339(&s).map_err(|e| Invalid(format!("expires_at {s:?}: {e}")))?,
        ),
    };
    Ok(Trigger {
        source: env.source,
        id: env.id,
        expires_at,
    })
}

/// The instant after which the trigger must not be acted on: the earlier of the MQTT 5 message
/// expiry the broker forwarded (the *remaining* interval at delivery) and `data.expires_at`.
pub fn deadline(
    received: SystemTime,
    expiry_interval_s: Option<u32>,
    expires_at: Option<SystemTime>,
) -> Option<SystemTime> {
    let from_mqtt = expiry_interval_s.map(|s| received + Duration::from_secs(u64::from(s)));
    match (from_mqtt, expires_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Ids handled recently, each forgotten `ttl` after it was added. Bounded by time, not count:
/// size `ttl` above the longest redelivery delay you expect (a gateway or broker outage).
#[derive(Debug)]
pub struct SeenIds {
    ttl: Duration,
    until: HashMap<(String, String), Instant>,
    order: VecDeque<((String, String), Instant)>,
}

impl SeenIds {
    /// An empty set.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            until: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// True if (`source`, `id`) was added less than `ttl` before `now`.
    pub fn contains(&mut self, source: &str, id: &str, now: Instant) -> bool {
        self.expire(now);
        self.until.contains_key(&(source.to_owned(), id.to_owned()))
    }

    /// Remembers (`source`, `id`) until `now + ttl`.
    pub fn insert(&mut self, source: &str, id: &str, now: Instant) {
        self.expire(now);
        let key = (source.to_owned(), id.to_owned());
        let until = now + self.ttl;
        self.until.insert(key.clone(), until);
        self.order.push_back((key, until));
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.until.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, until)) = self.order.front() {
            if *until > now {
                break;
            }
            // A key re-inserted later has a later `until` in the map: keep it.
            if self.until.get(key) == Some(until) {
                self.until.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger_json(expires_at: Option<&str>) -> Vec<u8> {
        let mut data = serde_json::json!({"store": "s", "campaign": "c", "seq": 1});
        if let Some(e) = expires_at {
            data["expires_at"] = e.into();
        }
        serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0", "id": "00ff", "source": "/footfall/s/gateway/g",
            "type": TRIGGER_TYPE, "time": "2026-11-18T11:06:40.123Z", "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn parses_triggers_and_rejects_other_types() {
        let t = parse_trigger(&trigger_json(Some("2026-11-18T11:08:40.123Z"))).unwrap();
        assert_eq!(t.id, "00ff");
        assert_eq!(t.source, "/footfall/s/gateway/g");
        let expected = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_120_123);
        assert_eq!(t.expires_at, Some(expected));
        assert_eq!(parse_trigger(&trigger_json(None)).unwrap().expires_at, None);
        assert!(parse_trigger(b"{").is_err());
        assert!(parse_trigger(&trigger_json(Some("tomorrow"))).is_err());
        let enter = br#"{"id":"1","source":"s","type":"footfall.zone.enter","data":{}}"#;
        assert!(parse_trigger(enter).is_err());
    }

    #[test]
    fn deadline_is_the_earlier_of_both() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(deadline(t0, None, None), None);
        assert_eq!(deadline(t0, Some(5), None), Some(at(1005)));
        assert_eq!(deadline(t0, None, Some(at(1100))), Some(at(1100)));
        assert_eq!(deadline(t0, Some(500), Some(at(1100))), Some(at(1100)));
        assert_eq!(deadline(t0, Some(5), Some(at(1100))), Some(at(1005)));
    }

    #[test]
    fn seen_ids_forget_after_ttl() {
        let t0 = Instant::now();
        let mut seen = SeenIds::new(Duration::from_secs(10));
        seen.insert("s", "a", t0);
        seen.insert("s", "b", t0 + Duration::from_secs(5));
        assert!(seen.contains("s", "a", t0 + Duration::from_secs(9)));
        assert!(!seen.contains("t", "a", t0 + Duration::from_secs(9)));
        assert!(!seen.contains("s", "a", t0 + Duration::from_secs(10)));
        assert!(seen.contains("s", "b", t0 + Duration::from_secs(10)));
        // Re-inserting extends the memory.
        seen.insert("s", "b", t0 + Duration::from_secs(12));
        assert!(seen.contains("s", "b", t0 + Duration::from_secs(20)));
        assert_eq!(seen.len(), 1);
        assert!(!seen.contains("s", "b", t0 + Duration::from_secs(22)));
        assert!(seen.is_empty());
    }
}
