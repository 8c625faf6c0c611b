//! Identity and pseudonyms: from the identity material a sighting carries to a stable device
//! key, a table fingerprint, and the [`PersonId`] events carry.
//!
//! Evidence, best first: a beacon id (iBeacon / AltBeacon / Eddystone-UID), a tag ephemeral id
//! resolved against configured tag keys, a resolvable private address resolved with configured
//! IRKs (Bluetooth `ah`, in `footfall_proto::rpa`), else the address itself. The canonical key
//! bytes are domain-separated by a leading tag so that two kinds of evidence never collide.
//! Raw addresses and keys stay here: only keyed hashes of them leave.

use crate::config::{parse_hex, parse_hex_var, PrivacyConfig};
use crate::crypto::{Fingerprinter, Kdf, Prf, Prp};
use crate::event::PersonId;
use crate::input::{AddressType, DeviceEvidence};

/// Longest canonical key: tag byte + 20-byte beacon id.
const KEY_LEN: usize = 24;

/// RPA resolution cache size (direct-mapped). RPAs rotate every ~15 min, so a few thousand
/// entries cover a store.
const RPA_CACHE: usize = 4096;

/// A device's canonical key: never leaves the engine, never stored (only its keyed hashes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeviceKey {
    bytes: [u8; KEY_LEN],
    len: u8,
    /// Opted in: gets a stable campaign id.
    pub(crate) opted_in: bool,
}

impl DeviceKey {
    fn new(tag: u8, parts: &[&[u8]], opted_in: bool) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        let mut len = 1usize;
        bytes[0] = tag;
        for p in parts {
            for b in p.iter() {
                if let Some(slot) = bytes.get_mut(len) {
                    *slot = *b;
                    len += 1;
                }
            }
        }
        Self {
            bytes,
            len: len as u8,
            opted_in,
        }
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }
}

#[derive(Clone, Copy)]
struct RpaEntry {
    addr: [u8; 6],
    /// Index into the IRK list, or `u16::MAX` for "resolves to none".
    irk: u16,
    valid: bool,
}

/// Resolves evidence to keys and keys to person ids.
pub(crate) struct Identity {
    fingerprint: Fingerprinter,
    kdf: Kdf,
    campaign: Prf,
    salt: Prf,
    salt_period: u64,
    salt_rotation_ms: u64,
    event_ids: Prp,
    /// Opted-in beacon ids, sorted.
    beacons: Vec<heapless::Vec<u8, 20>>,
    irks: Vec<[u8; 16]>,
    rpa_cache: Vec<RpaEntry>,
    tag_keys: Vec<[u8; 16]>,
    tag_rotation_exponent: u8,
    tag_rotation_ms: u64,
    /// (eid, tag index) for counters c-1, c, c+1, sorted by eid.
    tag_eids: Vec<([u8; 8], u16)>,
    tag_counter: Option<u64>,
    /// RPA resolutions that missed the cache (each costs one AES per IRK).
    pub(crate) rpa_resolutions: u64,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys never reach logs.
        f.debug_struct("Identity")
            .field("salt_period", &self.salt_period)
            .field("opted_in_beacons", &self.beacons.len())
            .field("irks", &self.irks.len())
            .field("tag_keys", &self.tag_keys.len())
            .finish_non_exhaustive()
    }
}

/// The Footfall tag ephemeral id for time counter `counter` at rotation exponent `k`: the one
/// construction in `footfall_proto::tag_eid`, which the tag firmware uses too.
pub fn tag_eid(key: &[u8; 16], k: u8, counter: u32) -> [u8; 8] {
    footfall_proto::tag_eid::eid_for_counter(key, k, counter)
}

impl Identity {
    /// Builds from a validated config (invalid entries are skipped; `validate` reports them).
    pub(crate) fn new(cfg: &PrivacyConfig) -> Self {
        let kdf = Kdf::new(cfg.secret.as_deref().and_then(parse_hex::<32>));
        let mut beacons: Vec<heapless::Vec<u8, 20>> = cfg
            .opted_in_beacons
            .iter()
            .filter_map(|b| parse_hex_var(b))
            .collect();
        beacons.sort();
        beacons.dedup();
        let tag_keys: Vec<[u8; 16]> = cfg
            .tag_keys
            .iter()
            .filter_map(|k| parse_hex::<16>(k))
            .collect();
        let irks: Vec<[u8; 16]> = cfg
            .opted_in_irks
            .iter()
            .filter_map(|k| parse_hex::<16>(k))
            .collect();
        let mut id = Self {
            fingerprint: Fingerprinter::new(kdf.derive(b"footfall/fingerprint", b"")),
            campaign: Prf::new(kdf.derive(b"footfall/campaign", b"")),
            salt: Prf::new(kdf.derive(b"footfall/salt", &0u64.to_be_bytes())),
            salt_period: 0,
            salt_rotation_ms: cfg.salt_rotation_s.max(1).saturating_mul(1000),
            event_ids: Prp::new(kdf.derive(b"footfall/event-id", b"")),
            kdf,
            beacons,
            rpa_cache: if irks.is_empty() {
                Vec::new()
            } else {
                vec![
                    RpaEntry {
                        addr: [0; 6],
                        irk: u16::MAX,
                        valid: false
                    };
                    RPA_CACHE
                ]
            },
            irks,
            tag_eids: Vec::with_capacity(tag_keys.len() * 3),
            tag_keys,
            tag_rotation_exponent: cfg
                .tag_rotation_exponent
                .min(footfall_proto::tag_eid::MAX_ROTATION_EXPONENT),
            tag_rotation_ms: 1000u64
                << cfg
                    .tag_rotation_exponent
                    .min(footfall_proto::tag_eid::MAX_ROTATION_EXPONENT),
            tag_counter: None,
            rpa_resolutions: 0,
        };
        id.set_period(0);
        id
    }

    /// The salt period containing `now_ms`.
    pub(crate) fn period_of(&self, now_ms: u64) -> u64 {
        now_ms / self.salt_rotation_ms
    }

    /// The current salt period.
    pub(crate) fn period(&self) -> u64 {
        self.salt_period
    }

    /// Switches to salt period `period` (derives its salt).
    pub(crate) fn set_period(&mut self, period: u64) {
        self.salt_period = period;
        self.salt = Prf::new(self.kdf.derive(b"footfall/salt", &period.to_be_bytes()));
    }

    /// Start of the next tag counter after `now_ms`.
    #[cfg(test)]
    pub(crate) fn next_tag_counter_ms(&self, now_ms: u64) -> Option<u64> {
        if self.tag_keys.is_empty() {
            return None;
        }
        Some((now_ms / self.tag_rotation_ms + 1).saturating_mul(self.tag_rotation_ms))
    }

    /// Rebuilds the tag EID table if the time counter moved (accepts one counter of skew).
    pub(crate) fn refresh_tags(&mut self, now_ms: u64) {
        if self.tag_keys.is_empty() {
            return;
        }
        let counter = now_ms / self.tag_rotation_ms;
        if self.tag_counter == Some(counter) {
            return;
        }
        self.tag_counter = Some(counter);
        self.tag_eids.clear();
        for (i, key) in self.tag_keys.iter().enumerate() {
            for c in [
                counter.saturating_sub(1),
                counter,
                counter.saturating_add(1),
            ] {
                // Counters are 32-bit on the tag; the truncation is the protocol.
                self.tag_eids
                    .push((tag_eid(key, self.tag_rotation_exponent, c as u32), i as u16));
            }
        }
        self.tag_eids.sort_unstable();
    }

    /// The event id of sequence number `seq`.
    pub(crate) fn event_id(&self, seq: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&seq.to_be_bytes());
        b[8..].copy_from_slice(b"FFEVENT1");
        self.event_ids.encrypt(b)
    }

    fn beacon_opted_in(&self, id: &[u8]) -> bool {
        self.beacons
            .binary_search_by(|b| b.as_slice().cmp(id))
            .is_ok()
    }

    fn resolve_irk(&mut self, addr: &[u8; 6]) -> Option<u16> {
        if self.irks.is_empty() {
            return None;
        }
        let slot = (self.fingerprint.hash(addr) as usize) & (RPA_CACHE - 1);
        if let Some(e) = self.rpa_cache.get(slot) {
            if e.valid && e.addr == *addr {
                return (e.irk != u16::MAX).then_some(e.irk);
            }
        }
        self.rpa_resolutions += 1;
        let found = self
            .irks
            .iter()
            .position(|irk| footfall_proto::rpa::resolve_rpa(irk, addr))
            .map(|i| i as u16);
        if let Some(e) = self.rpa_cache.get_mut(slot) {
            *e = RpaEntry {
                addr: *addr,
                irk: found.unwrap_or(u16::MAX),
                valid: true,
            };
        }
        found
    }

    /// The canonical key for `evidence`, resolving RPAs and tag EIDs.
    pub(crate) fn key(&mut self, evidence: &DeviceEvidence) -> DeviceKey {
        match *evidence {
            DeviceEvidence::IBeacon { uuid, major, minor } => {
                let mut id = [0u8; 20];
                id[..16].copy_from_slice(&uuid);
                id[16..18].copy_from_slice(&major.to_be_bytes());
                id[18..].copy_from_slice(&minor.to_be_bytes());
                DeviceKey::new(1, &[&id], self.beacon_opted_in(&id))
            }
            DeviceEvidence::AltBeacon { id } => {
                DeviceKey::new(2, &[&id], self.beacon_opted_in(&id))
            }
            DeviceEvidence::EddystoneUid {
                namespace,
                instance,
            } => {
                let mut id = [0u8; 16];
                id[..10].copy_from_slice(&namespace);
                id[10..].copy_from_slice(&instance);
                DeviceKey::new(3, &[&id], self.beacon_opted_in(&id))
            }
            DeviceEvidence::TagEphemeral { eid } => {
                match self.tag_eids.binary_search_by(|(e, _)| e.cmp(&eid)) {
                    Ok(pos) => {
                        let idx = self.tag_eids.get(pos).map_or(0, |(_, i)| *i);
                        let key = self
                            .tag_keys
                            .get(usize::from(idx))
                            .copied()
                            .unwrap_or_default();
                        DeviceKey::new(4, &[&key], true)
                    }
                    // An unknown tag: its EID rotates, so it is tracked per EID and pseudonymous.
                    Err(_) => DeviceKey::new(8, &[&eid], false),
                }
            }
            DeviceEvidence::Address { addr, kind } => {
                if matches!(kind, AddressType::RandomResolvable | AddressType::Unknown) {
                    if let Some(i) = self.resolve_irk(&addr) {
                        let irk = self.irks.get(usize::from(i)).copied().unwrap_or_default();
                        return DeviceKey::new(5, &[&irk], true);
                    }
                }
                let k = match kind {
                    AddressType::Public => 0,
                    AddressType::RandomStatic => 1,
                    AddressType::RandomResolvable => 2,
                    AddressType::RandomNonResolvable => 3,
                    _ => 4,
                };
                DeviceKey::new(6, &[&addr, &[k]], false)
            }
            DeviceEvidence::ShortHash(h) => DeviceKey::new(7, &[&h.to_be_bytes()], false),
        }
    }

    /// The device table fingerprint of a key.
    pub(crate) fn fingerprint(&self, key: &DeviceKey) -> u64 {
        self.fingerprint.hash(key.as_bytes())
    }

    /// A keyed hash for arbitrary bytes (table indexes).
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        self.fingerprint.hash(bytes)
    }

    /// The person id for a key in salt period `period` (which need not be the current one).
    pub(crate) fn person_at(&self, key: &DeviceKey, period: u64) -> PersonId {
        if key.opted_in || period == self.salt_period {
            return self.person(key);
        }
        let salt = Prf::new(self.kdf.derive(b"footfall/salt", &period.to_be_bytes()));
        PersonId::Pseudonym(salt.eval(key.as_bytes()))
    }

    /// The person id for a key in the current salt period.
    pub(crate) fn person(&self, key: &DeviceKey) -> PersonId {
        if key.opted_in {
            PersonId::Campaign(self.campaign.eval(key.as_bytes()))
        } else {
            PersonId::Pseudonym(self.salt.eval(key.as_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PrivacyConfig {
        PrivacyConfig {
            secret: Some("11".repeat(32)),
            ..PrivacyConfig::default()
        }
    }

    fn addr(a: [u8; 6]) -> DeviceEvidence {
        DeviceEvidence::Address {
            addr: a,
            kind: AddressType::Public,
        }
    }

    #[test]
    fn pseudonym_is_stable_within_a_period_and_unlinkable_across() {
        let mut id = Identity::new(&cfg());
        let k = id.key(&addr([1, 2, 3, 4, 5, 6]));
        let p1 = id.person(&k);
        assert_eq!(p1, id.person(&k));
        assert!(matches!(p1, PersonId::Pseudonym(_)));
        id.set_period(1);
        let p2 = id.person(&k);
        assert_ne!(p1, p2);
        // A different secret gives a different pseudonym for the same device and period.
        let mut other = Identity::new(&PrivacyConfig {
            secret: Some("22".repeat(32)),
            ..cfg()
        });
        other.set_period(1);
        assert_ne!(other.person(&other.clone_key(&k)), p2);
    }

    impl Identity {
        fn clone_key(&self, k: &DeviceKey) -> DeviceKey {
            *k
        }
    }

    #[test]
    fn evidence_kinds_are_domain_separated() {
        let mut id = Identity::new(&cfg());
        let a = id.key(&DeviceEvidence::ShortHash(0x0102_0304));
        let b = id.key(&DeviceEvidence::TagEphemeral {
            eid: [1, 2, 3, 4, 0, 0, 0, 0],
        });
        assert_ne!(id.fingerprint(&a), id.fingerprint(&b));
    }

    #[test]
    fn opted_in_beacon_gets_stable_campaign_id() {
        let uuid = [0xab; 16];
        let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect::<String>() + "00010002";
        let mut id = Identity::new(&PrivacyConfig {
            opted_in_beacons: vec![hex],
            ..cfg()
        });
        let k = id.key(&DeviceEvidence::IBeacon {
            uuid,
            major: 1,
            minor: 2,
        });
        assert!(k.opted_in);
        let p = id.person(&k);
        id.set_period(9);
        assert_eq!(p, id.person(&k));
        assert!(p.to_string().starts_with("c-"));
        let other = id.key(&DeviceEvidence::IBeacon {
            uuid,
            major: 1,
            minor: 3,
        });
        assert!(!other.opted_in);
    }

    #[test]
    fn rpa_resolves_to_the_irk_identity_across_address_rotation() {
        let irk = [0x5a; 16];
        let mut id = Identity::new(&PrivacyConfig {
            opted_in_irks: vec!["5a".repeat(16)],
            ..cfg()
        });
        let mk = |prand: [u8; 3]| {
            let h = footfall_proto::rpa::ah(&irk, &prand);
            DeviceEvidence::Address {
                addr: [prand[0], prand[1], prand[2], h[0], h[1], h[2]],
                kind: AddressType::RandomResolvable,
            }
        };
        let k1 = id.key(&mk([0x41, 0x22, 0x33]));
        let k2 = id.key(&mk([0x7f, 0x00, 0x01]));
        assert!(k1.opted_in);
        assert_eq!(k1, k2);
        // Cached: a repeat costs no resolution.
        let before = id.rpa_resolutions;
        let _ = id.key(&mk([0x41, 0x22, 0x33]));
        assert_eq!(id.rpa_resolutions, before);
        // A non-matching RPA stays an address key.
        let stranger = id.key(&DeviceEvidence::Address {
            addr: [0x41, 0x22, 0x33, 0, 0, 0],
            kind: AddressType::RandomResolvable,
        });
        assert!(!stranger.opted_in);
    }

    #[test]
    fn tag_eids_resolve_over_a_window_of_counters() {
        let key = [0x33; 16];
        let mut id = Identity::new(&PrivacyConfig {
            tag_keys: vec!["33".repeat(16)],
            tag_rotation_exponent: 6, // a new id every 64 s
            ..cfg()
        });
        let now = 640_000u64; // 640 s: counter 10
        id.refresh_tags(now);
        for c in [9u32, 10, 11] {
            let k = id.key(&DeviceEvidence::TagEphemeral {
                eid: tag_eid(&key, 6, c),
            });
            assert!(k.opted_in, "counter {c}");
        }
        // What a tag advertises at 640 s, computed the way the firmware does.
        let advertised = footfall_proto::tag_eid::eid_at(&key, 6, 640);
        assert!(
            id.key(&DeviceEvidence::TagEphemeral { eid: advertised })
                .opted_in
        );
        let stale = id.key(&DeviceEvidence::TagEphemeral {
            eid: tag_eid(&key, 6, 7),
        });
        assert!(!stale.opted_in);
        assert_eq!(id.next_tag_counter_ms(now), Some(704_000));
    }
}
