//! The bounded device table: a slab of fixed-size device records, pre-allocated to
//! `limits.max_devices`, indexed by an open-addressing hash index (linear probing,
//! backward-shift deletion, load ≤ 1/2). Nothing here allocates after construction.

use crate::filter::FilterState;
use crate::input::DeviceKind;

/// Links (nodes hearing a device) tracked per device.
pub(crate) const MAX_LINKS: usize = 6;
/// "No node" in a link, "no zone" in a session.
pub(crate) const NONE16: u16 = u16::MAX;
/// The candidate meaning "confidently outside every zone".
pub(crate) const OUTSIDE: u16 = u16::MAX - 1;
/// An empty index entry. A used one is `tag << SLOT_BITS | slot`.
const EMPTY: u32 = u32::MAX;
/// Index entries keep the slot in their low bits (`max_devices` ≤ 4 M needs 22) and eight
/// bits of the fingerprint above it, so a probe past another device's entry does not have to
/// load that device's record (a cache miss per step with 100 k devices) to see it is not ours.
const SLOT_BITS: u32 = 24;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;

/// One (device, node) link, 15 bytes: the node and the time are kept as bytes (alignment 1, like
/// the [`FilterState`]), so six links take 90 bytes instead of the 96 of a padded struct.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    /// Node index, or `NONE16`: a `u16`'s native-endian bytes.
    node: [u8; 2],
    /// Last heard, wrapping milliseconds (see [`wrap`]): a `u32`'s native-endian bytes.
    seen: [u8; 4],
    pub(crate) filter: FilterState,
}

impl Link {
    pub(crate) const EMPTY: Link = Link::new(NONE16, 0);

    /// A link to `node` last heard at `seen` (wrapping ms), without a sample yet.
    pub(crate) const fn new(node: u16, seen: u32) -> Self {
        Self {
            node: node.to_ne_bytes(),
            seen: seen.to_ne_bytes(),
            filter: FilterState::Empty,
        }
    }
    /// Node index, or `NONE16`.
    pub(crate) const fn node(&self) -> u16 {
        u16::from_ne_bytes(self.node)
    }
    /// Last heard, wrapping milliseconds.
    pub(crate) const fn seen(&self) -> u32 {
        u32::from_ne_bytes(self.seen)
    }
    pub(crate) fn set_seen(&mut self, seen: u32) {
        self.seen = seen.to_ne_bytes();
    }
}

/// A device's timer deadline in six bytes: milliseconds below 2^48 − 1, or none (read back as
/// `u64::MAX`). The engine's deadlines are clamped below 2^42 (they are packed into timer-heap
/// entries), so every one of them reads back exactly; anything from 2^48 − 1 up reads as none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline([u16; 3]);

impl Deadline {
    const NONE_BITS: u64 = (1 << 48) - 1;
    /// No deadline.
    pub(crate) const NONE: Deadline = Deadline::new(u64::MAX);

    pub(crate) const fn new(ms: u64) -> Self {
        let v = if ms < Self::NONE_BITS {
            ms
        } else {
            Self::NONE_BITS
        };
        Self([v as u16, (v >> 16) as u16, (v >> 32) as u16])
    }
    /// The deadline, ms, or `u64::MAX` for none.
    pub(crate) const fn get(self) -> u64 {
        let [lo, mid, hi] = self.0;
        let v = lo as u64 | (mid as u64) << 16 | (hi as u64) << 32;
        if v == Self::NONE_BITS {
            u64::MAX
        } else {
            v
        }
    }
}

/// Milliseconds truncated to 32 bits. Differences are taken with `wrapping_sub`; they are
/// valid for spans below 24 days, and a device silent for `device_stale_s` (≤ 7 days) is
/// evicted long before.
pub(crate) fn wrap(ms: u64) -> u32 {
    ms as u32
}

/// Age in ms of a wrapping timestamp.
pub(crate) fn age(now: u64, then: u32) -> u32 {
    wrap(now).wrapping_sub(then)
}

/// Flags of a device.
pub(crate) mod flag {
    /// The person id belongs to an opted-in (campaign) identity.
    pub(crate) const OPTED_IN: u8 = 1;
    /// The person id must be recomputed (salt rotated).
    pub(crate) const PERSON_STALE: u8 = 2;
    /// A presence session is open in `zone`.
    pub(crate) const SESSION: u8 = 4;
    /// An engagement level is known.
    pub(crate) const LEVEL_KNOWN: u8 = 8;
}

/// One tracked device: 176 bytes (x86-64). Target: ≤ 256 bytes including its share of the
/// index and timer heap.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub(crate) fp: u64,
    /// Deadline currently in the timer heap, or none.
    pub(crate) timer_at: Deadline,
    /// First in-zone evidence of the open session, ms (a full timestamp: a session may stay
    /// open for any length of time, e.g. an opted-in tag parked in a zone).
    pub(crate) session_first: u64,
    /// Campaigns already handled in this session (bit = campaign index).
    pub(crate) fired: u64,
    pub(crate) person: [u8; 16],
    pub(crate) links: [Link; MAX_LINKS],
    pub(crate) last_seen: u32,
    pub(crate) last_eval: u32,
    pub(crate) last_in_zone: u32,
    /// Time of the first evaluation supporting the candidate.
    pub(crate) cand_since: u32,
    pub(crate) baseline: f32,
    pub(crate) conf: f32,
    /// Evidence (metre-seconds) that the device has left its session's zone for `cand`.
    pub(crate) score: f32,
    pub(crate) zone: u16,
    pub(crate) cand: u16,
    pub(crate) cand_bits: u16,
    pub(crate) kind: DeviceKind,
    pub(crate) flags: u8,
    /// `LocateMethod` of the last in-zone evaluation, as u8.
    pub(crate) method: u8,
    /// Dwell milestones already emitted.
    pub(crate) milestones: u8,
    pub(crate) hr_samples: u8,
    /// `EngagementLevel` as u8.
    pub(crate) level: u8,
}

impl Device {
    pub(crate) fn new(
        fp: u64,
        person: [u8; 16],
        now: u64,
        kind: DeviceKind,
        opted_in: bool,
    ) -> Self {
        Self {
            fp,
            timer_at: Deadline::NONE,
            session_first: 0,
            fired: 0,
            person,
            links: [Link::EMPTY; MAX_LINKS],
            last_seen: wrap(now),
            last_eval: wrap(now),
            last_in_zone: wrap(now),
            cand_since: wrap(now),
            baseline: 0.0,
            conf: 0.0,
            score: 0.0,
            zone: NONE16,
            cand: NONE16,
            cand_bits: 0,
            kind,
            flags: if opted_in { flag::OPTED_IN } else { 0 },
            method: 0,
            milestones: 0,
            hr_samples: 0,
            level: 0,
        }
    }
    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// The device table.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Vec<Device>,
    /// Slot is live.
    live: Vec<bool>,
    free: Vec<u32>,
    /// Open-addressing index of tagged slots (see [`SLOT_BITS`]).
    index: Vec<u32>,
    mask: usize,
    cap: usize,
    len: usize,
}

impl Table {
    /// A table for `cap` devices (at most 2^24 − 2: the slot must fit an index entry).
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, SLOT_MASK as usize - 1);
        let index_len = (cap * 2).next_power_of_two();
        Self {
            slots: Vec::with_capacity(cap),
            live: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            index: vec![EMPTY; index_len],
            mask: index_len - 1,
            cap,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.cap
    }
    /// Number of slots ever used (live or free).
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }
    /// Index bytes per device slot (for memory accounting).
    pub(crate) fn index_bytes(&self) -> usize {
        self.index.len() * core::mem::size_of::<u32>()
    }

    fn home(&self, fp: u64) -> usize {
        // The fingerprint is already a keyed hash: use its high bits.
        ((fp >> 32) ^ fp) as usize & self.mask
    }

    fn entry(fp: u64, slot: u32) -> u32 {
        ((fp >> 56) as u32) << SLOT_BITS | slot
    }

    pub(crate) fn find(&self, fp: u64) -> Option<u32> {
        let tag = Self::entry(fp, 0);
        let mut i = self.home(fp);
        loop {
            let e = *self.index.get(i)?;
            if e == EMPTY {
                return None;
            }
            let s = e & SLOT_MASK;
            if e & !SLOT_MASK == tag && self.slots.get(s as usize).is_some_and(|d| d.fp == fp) {
                return Some(s);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Inserts a device whose fingerprint is not present. A full table hands the device back
    /// (heapless style); the record is moved either way, so the large `Err` costs nothing extra.
    #[allow(clippy::result_large_err)]
    pub(crate) fn insert(&mut self, dev: Device) -> Result<u32, Device> {
        if self.is_full() {
            return Err(dev);
        }
        let fp = dev.fp;
        let slot = if let Some(s) = self.free.pop() {
            match (
                self.slots.get_mut(s as usize),
                self.live.get_mut(s as usize),
            ) {
                (Some(d), Some(l)) => {
                    *d = dev;
                    *l = true;
                }
                _ => return Err(dev),
            }
            s
        } else {
            let s = self.slots.len() as u32;
            self.slots.push(dev);
            self.live.push(true);
            s
        };
        let mut i = self.home(fp);
        while let Some(e) = self.index.get_mut(i) {
            if *e == EMPTY {
                *e = Self::entry(fp, slot);
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.len += 1;
        Ok(slot)
    }

    /// Removes the device in `slot`.
    pub(crate) fn remove(&mut self, slot: u32) {
        let Some(fp) = self.get(slot).map(|d| d.fp) else {
            return;
        };
        // Find its index entry.
        let mut i = self.home(fp);
        loop {
            match self.index.get(i) {
                Some(&e) if e != EMPTY && e & SLOT_MASK == slot => break,
                Some(&EMPTY) | None => return,
                Some(_) => i = (i + 1) & self.mask,
            }
        }
        // Backward-shift deletion keeps probe sequences intact without tombstones.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = match self.index.get(j) {
                Some(&e) if e != EMPTY => e,
                _ => break,
            };
            let home = self
                .slots
                .get((e & SLOT_MASK) as usize)
                .map_or(j, |d| self.home(d.fp));
            // Move s into the hole if its home is not in (hole, j] cyclically.
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = e;
                }
                hole = j;
            }
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = EMPTY;
        }
        if let Some(l) = self.live.get_mut(slot as usize) {
            *l = false;
        }
        self.free.push(slot);
        self.len -= 1;
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Device> {
        if *self.live.get(slot as usize)? {
            self.slots.get(slot as usize)
        } else {
            None
        }
    }
    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Device> {
        if *self.live.get(slot as usize)? {
            self.slots.get_mut(slot as usize)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(fp: u64) -> Device {
        Device::new(fp, [0; 16], 0, DeviceKind::Unknown, false)
    }

    #[test]
    fn device_record_stays_within_its_budget() {
        // The record itself; index, free list and timer-heap shares add ~30 bytes (≤ 256 total).
        assert!(
            core::mem::size_of::<Device>() <= 176,
            "{}",
            core::mem::size_of::<Device>()
        );
    }

    #[test]
    fn links_are_unpadded() {
        assert_eq!(core::mem::size_of::<Link>(), 15);
        assert_eq!(core::mem::align_of::<Link>(), 1);
        let mut l = Link::new(0xbeef, 0xdead_cafe);
        assert_eq!((l.node(), l.seen()), (0xbeef, 0xdead_cafe));
        l.set_seen(7);
        assert_eq!((l.node(), l.seen()), (0xbeef, 7));
        assert_eq!(Link::EMPTY.node(), NONE16);
    }

    #[test]
    fn deadlines_read_back_exactly() {
        assert_eq!(core::mem::size_of::<Deadline>(), 6);
        assert_eq!(Deadline::NONE.get(), u64::MAX);
        for ms in [
            0,
            1,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            1 << 32,
            1_700_000_000_000,
            (1 << 42) - 1,
        ] {
            assert_eq!(Deadline::new(ms).get(), ms);
        }
        assert_eq!(Deadline::new((1 << 48) - 2).get(), (1 << 48) - 2);
        assert_eq!(Deadline::new((1 << 48) - 1), Deadline::NONE);
    }

    #[test]
    fn insert_find_remove_with_collisions() {
        let mut t = Table::new(64);
        // Fingerprints that share a home bucket, half of them also an index tag (top byte).
        let fps: Vec<u64> = (0..40u64)
            .map(|i| (i % 2) << 57 | i << 40 | (i << 8))
            .collect();
        let mut slots = Vec::new();
        for &fp in &fps {
            slots.push(t.insert(dev(fp)).map_err(|_| ()).unwrap_or(u32::MAX));
        }
        for (fp, s) in fps.iter().zip(&slots) {
            assert_eq!(t.find(*fp), Some(*s));
        }
        for (i, (fp, s)) in fps.iter().zip(&slots).enumerate() {
            if i % 3 == 0 {
                t.remove(*s);
                assert_eq!(t.find(*fp), None);
            }
        }
        for (i, (fp, s)) in fps.iter().zip(&slots).enumerate() {
            if i % 3 != 0 {
                assert_eq!(t.find(*fp), Some(*s), "lost {i}");
            }
        }
    }

    #[test]
    fn full_table_hands_the_device_back() {
        let mut t = Table::new(2);
        assert!(t.insert(dev(1)).is_ok());
        assert!(t.insert(dev(2)).is_ok());
        assert!(t.is_full());
        assert!(matches!(t.insert(dev(3)), Err(d) if d.fp == 3));
    }

    #[test]
    fn record_size_is_reported() {
        // Kept honest in docs/benchmarks.md; fail loudly if it balloons.
        assert!(
            core::mem::size_of::<Device>() <= 224,
            "{}",
            core::mem::size_of::<Device>()
        );
    }
}
