//! The monotonic frame counter, persisted in blocks so a reboot never reuses a value.
//!
//! The store holds a *high-water mark* `H`: no counter `>= H` has ever been issued. On boot the node
//! reads `H`, persists `H + BLOCK` *before* issuing anything, and then hands out `H, H+1, …` until it
//! reaches the reserved limit, where it persists the next block first. A crash anywhere loses at most
//! one block of unused values and never repeats one: every issued counter is below a mark that was
//! durably written before it was issued. Flash wear is one write per `BLOCK` frames.

use core::fmt;

/// Persistent storage for the frame counter's high-water mark (flash page, NVS key, FRAM word).
pub trait CounterStore {
    /// Storage failure.
    type Error: fmt::Debug;
    /// The stored high-water mark, or `None` for a node that never sent a frame.
    fn load(&mut self) -> Result<Option<u32>, Self::Error>;
    /// Persists a new high-water mark. Must be durable when it returns `Ok`.
    fn store(&mut self, high_water: u32) -> Result<(), Self::Error>;
}

/// Why no counter could be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CounterError<E> {
    /// The store failed to load or persist the high-water mark; nothing was issued.
    Store(E),
    /// The 32-bit counter space is used up; the node needs a new key (and a reset counter).
    Exhausted,
}

/// Default reservation block: one flash write per 256 frames (≈ 21 min at one frame per 5 s).
pub const DEFAULT_BLOCK: u32 = 256;

/// Issues strictly increasing frame counters backed by a [`CounterStore`].
#[derive(Debug, Clone)]
pub struct FrameCounter {
    next: u32,
    reserved_until: u32,
    block: u32,
}

impl FrameCounter {
    /// Boots the counter: reads the high-water mark and reserves the first block.
    ///
    /// Counters start at 1 on a fresh node (0 is never issued, so a gateway may use 0 as "none").
    pub fn boot<S: CounterStore>(
        store: &mut S,
        block: u32,
    ) -> Result<Self, CounterError<S::Error>> {
        let block = block.max(1);
        let high_water = store
            .load()
            .map_err(CounterError::Store)?
            .unwrap_or(1)
            .max(1);
        let reserved_until = high_water
            .checked_add(block)
            .ok_or(CounterError::Exhausted)?;
        store.store(reserved_until).map_err(CounterError::Store)?;
        Ok(Self {
            next: high_water,
            reserved_until,
            block,
        })
    }

    /// Issues the next counter, persisting a new block first when the current one is used up.
    pub fn next<S: CounterStore>(&mut self, store: &mut S) -> Result<u32, CounterError<S::Error>> {
        if self.next == u32::MAX {
            return Err(CounterError::Exhausted);
        }
        if self.next >= self.reserved_until {
            let limit = self.reserved_until.saturating_add(self.block);
            store.store(limit).map_err(CounterError::Store)?;
            self.reserved_until = limit;
        }
        let counter = self.next;
        self.next += 1;
        Ok(counter)
    }

    /// The counter the next call to [`next`](Self::next) would issue.
    pub fn peek(&self) -> u32 {
        self.next
    }
}

/// A counter store in RAM, for tests and for the QEMU run (which has no flash to wear).
#[derive(Debug, Default, Clone)]
pub struct RamCounterStore {
    /// The persisted high-water mark.
    pub high_water: Option<u32>,
    /// Number of successful `store` calls (flash writes on a real board).
    pub writes: u32,
    /// When set, the next `store` fails (fault injection for tests).
    pub fail_next_store: bool,
}

/// The RAM store's injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InjectedFault;

impl CounterStore for RamCounterStore {
    type Error = InjectedFault;
    fn load(&mut self) -> Result<Option<u32>, InjectedFault> {
        Ok(self.high_water)
    }
    fn store(&mut self, high_water: u32) -> Result<(), InjectedFault> {
        if core::mem::take(&mut self.fail_next_store) {
            return Err(InjectedFault);
        }
        self.high_water = Some(high_water);
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_node_starts_at_one_and_reserves_a_block() {
        let mut store = RamCounterStore::default();
        let mut c = FrameCounter::boot(&mut store, 4).unwrap();
        assert_eq!(store.high_water, Some(5));
        assert_eq!(c.next(&mut store).unwrap(), 1);
        assert_eq!(store.writes, 1);
    }

    #[test]
    fn crossing_a_block_persists_before_issuing() {
        let mut store = RamCounterStore::default();
        let mut c = FrameCounter::boot(&mut store, 2).unwrap();
        assert_eq!(c.next(&mut store).unwrap(), 1);
        assert_eq!(c.next(&mut store).unwrap(), 2);
        store.fail_next_store = true;
        assert_eq!(c.next(&mut store), Err(CounterError::Store(InjectedFault)));
        assert_eq!(c.next(&mut store).unwrap(), 3);
        assert_eq!(store.high_water, Some(5));
    }

    #[test]
    fn reboot_skips_the_unused_rest_of_the_block() {
        let mut store = RamCounterStore::default();
        let mut c = FrameCounter::boot(&mut store, 10).unwrap();
        assert_eq!(c.next(&mut store).unwrap(), 1);
        let mut c = FrameCounter::boot(&mut store, 10).unwrap();
        assert_eq!(c.next(&mut store).unwrap(), 11);
    }

    #[test]
    fn boot_fails_cleanly_when_the_store_fails() {
        let mut store = RamCounterStore {
            fail_next_store: true,
            ..Default::default()
        };
        assert!(matches!(
            FrameCounter::boot(&mut store, 8),
            Err(CounterError::Store(InjectedFault))
        ));
    }

    #[test]
    fn exhaustion_is_an_error_not_a_wrap() {
        let mut store = RamCounterStore {
            high_water: Some(u32::MAX - 1),
            ..Default::default()
        };
        assert_eq!(
            FrameCounter::boot(&mut store, 8).err(),
            Some(CounterError::Exhausted)
        );
        let mut c = FrameCounter {
            next: u32::MAX - 1,
            reserved_until: u32::MAX,
            block: 8,
        };
        assert_eq!(c.next(&mut store).unwrap(), u32::MAX - 1);
        assert_eq!(c.next(&mut store), Err(CounterError::Exhausted));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Next,
        Reboot,
        FailNextStore,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![8 => Just(Op::Next), 1 => Just(Op::Reboot), 1 => Just(Op::FailNextStore)]
    }

    proptest! {
        /// Counters strictly increase across any mix of issues, reboots and store failures.
        #[test]
        fn counters_strictly_increase_across_reboots(block in 1u32..16, ops in proptest::collection::vec(op(), 1..300)) {
            let mut store = RamCounterStore::default();
            let mut counter = None;
            let mut last: Option<u32> = None;
            for op in ops {
                match op {
                    Op::FailNextStore => store.fail_next_store = true,
                    Op::Reboot => counter = None,
                    Op::Next => {
                        if counter.is_none() {
                            counter = FrameCounter::boot(&mut store, block).ok();
                        }
                        if let Some(c) = counter.as_mut() {
                            if let Ok(v) = c.next(&mut store) {
                                prop_assert!(last.is_none_or(|l| v > l), "counter {v} after {last:?}");
                                prop_assert!(store.high_water.is_some_and(|h| v < h));
                                last = Some(v);
                            }
                        }
                    }
                }
            }
        }
    }
}
