//! The frame counter's high-water mark in internal flash, written through the MPSL's
//! timeslot-synchronised flash driver (direct NVMC access would stall the radio).
//!
//! Layout: the two 4 KiB pages of the `STORAGE` region (memory.x) hold an append-only log of
//! little-endian `u32` marks; erased words read `0xFFFF_FFFF`. Marks only grow, so the current
//! mark is the largest word in either page. When a page is full the *other* page is erased and
//! the log continues there; the full page still holds the previous (smaller but valid) mark
//! until the first write lands, so a power cut at any point leaves a mark no smaller than the
//! last durable one.
//!
//! Durability vs. the sync [`CounterStore`] trait: `store` records the new mark in RAM; the
//! board awaits [`FlashCounterStore::persist`] before it puts any frame on the air. A frame
//! signed with a counter from a not-yet-durable block never leaves the node, so a reboot that
//! reissues such a counter cannot produce two different frames with one counter on the air.

use embedded_storage_async::nor_flash::NorFlash;
use footfall_firmware::counter::CounterStore;
use nrf_sdc::mpsl::Flash;

const PAGE_SIZE: u32 = 4096;
const WORDS: u32 = PAGE_SIZE / 4;
const ERASED: u32 = 0xFFFF_FFFF;

extern "C" {
    static __footfall_storage_start: u32;
}

fn storage_start() -> u32 {
    // Only the address of the linker symbol is taken, never its value.
    core::ptr::addr_of!(__footfall_storage_start) as u32
}

/// Where the next mark goes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    page: u32,
    word: u32,
}

/// The flash-backed counter store.
pub struct FlashCounterStore {
    durable: Option<u32>,
    pending: Option<u32>,
    next: Slot,
}

impl FlashCounterStore {
    /// Reads both pages (a plain memory-mapped read; safe while the MPSL runs).
    pub fn load(flash: &mut Flash<'_>) -> Self {
        let base = storage_start();
        let mut best: Option<(u32, Slot)> = None;
        for page in 0..2 {
            for word in 0..WORDS {
                let mut b = [0u8; 4];
                if flash
                    .read(base + page * PAGE_SIZE + word * 4, &mut b)
                    .is_err()
                {
                    continue;
                }
                let v = u32::from_le_bytes(b);
                if v != ERASED && best.is_none_or(|(m, _)| v > m) {
                    best = Some((v, Slot { page, word }));
                }
            }
        }
        let (durable, next) = match best {
            Some((v, at)) => (
                Some(v),
                Slot {
                    page: at.page,
                    word: at.word + 1,
                },
            ),
            None => (None, Slot { page: 0, word: 0 }),
        };
        Self {
            durable,
            pending: None,
            next,
        }
    }

    /// Whether every mark handed to `store` is in flash.
    pub fn is_durable(&self) -> bool {
        self.pending.is_none()
    }

    /// Writes the pending mark, if any.
    pub async fn persist(
        &mut self,
        flash: &mut Flash<'_>,
    ) -> Result<(), nrf_sdc::mpsl::FlashError> {
        let Some(mark) = self.pending else {
            return Ok(());
        };
        let base = storage_start();
        if self.next.word >= WORDS {
            let page = 1 - self.next.page;
            let from = base + page * PAGE_SIZE;
            flash.erase(from, from + PAGE_SIZE).await?;
            self.next = Slot { page, word: 0 };
        }
        let at = base + self.next.page * PAGE_SIZE + self.next.word * 4;
        // Advance first: a failed write may leave a half-programmed word behind. Programming
        // only clears bits, so such a word reads as a value >= the intended mark: safe (the
        // counter skips ahead), never smaller than the last durable mark.
        self.next.word += 1;
        NorFlash::write(flash, at, &mark.to_le_bytes()).await?;
        self.durable = Some(mark);
        self.pending = None;
        Ok(())
    }
}

impl CounterStore for FlashCounterStore {
    type Error = core::convert::Infallible;

    fn load(&mut self) -> Result<Option<u32>, Self::Error> {
        Ok(self.pending.or(self.durable))
    }

    fn store(&mut self, high_water: u32) -> Result<(), Self::Error> {
        self.pending = Some(high_water);
        Ok(())
    }
}
