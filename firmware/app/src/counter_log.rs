//! A [`CounterStore`] over any embedded-storage NOR flash: an append-only log of marks in two
//! erase sectors (wear: one word per counter block; one erase per `sector_size / 4` blocks).
//!
//! Marks only grow, so the current mark is the largest programmed word in either sector. When
//! the active sector is full the *other* sector is erased and the log continues there; until the
//! first write lands the full sector still holds the previous mark, so a power cut at any point
//! leaves a mark no smaller than the last durable one. A torn word write only clears some of the
//! bits that were to be cleared, so it reads as a value ≥ the intended mark: the counter skips
//! ahead, it never goes back.

use embedded_storage::nor_flash::NorFlash;

use crate::counter::CounterStore;

const ERASED: u32 = 0xFFFF_FFFF;

/// The flash log. `base` is the offset of the first of two consecutive erase sectors.
#[derive(Debug)]
pub struct FlashCounterLog<F> {
    flash: F,
    base: u32,
    sector: u32,
    next: (u32, u32),
    mark: Option<u32>,
}

impl<F: NorFlash> FlashCounterLog<F> {
    /// Opens the log at `base` (two sectors of `F::ERASE_SIZE` bytes each) and finds the mark.
    pub fn open(mut flash: F, base: u32) -> Self {
        let sector = F::ERASE_SIZE as u32;
        let words = sector / 4;
        let mut best: Option<(u32, (u32, u32))> = None;
        for s in 0..2 {
            for w in 0..words {
                let mut b = [0u8; 4];
                if flash.read(base + s * sector + w * 4, &mut b).is_err() {
                    continue;
                }
                let v = u32::from_le_bytes(b);
                if v != ERASED && best.is_none_or(|(m, _)| v > m) {
                    best = Some((v, (s, w)));
                }
            }
        }
        let (mark, next) = match best {
            Some((v, (s, w))) => (Some(v), (s, w + 1)),
            None => (None, (0, 0)),
        };
        Self {
            flash,
            base,
            sector,
            next,
            mark,
        }
    }

    /// Gives the flash back.
    pub fn release(self) -> F {
        self.flash
    }
}

impl<F: NorFlash> CounterStore for FlashCounterLog<F> {
    type Error = F::Error;

    fn load(&mut self) -> Result<Option<u32>, F::Error> {
        Ok(self.mark)
    }

    fn store(&mut self, high_water: u32) -> Result<(), F::Error> {
        let words = self.sector / 4;
        if self.next.1 >= words {
            let s = 1 - self.next.0;
            let from = self.base + s * self.sector;
            self.flash.erase(from, from + self.sector)?;
            self.next = (s, 0);
        }
        let at = self.base + self.next.0 * self.sector + self.next.1 * 4;
        self.next.1 += 1;
        self.flash.write(at, &high_water.to_le_bytes())?;
        self.mark = Some(high_water);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::FrameCounter;
    use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};

    /// 2 × 64-byte sectors of simulated NOR flash (programming only clears bits).
    #[derive(Debug, Clone)]
    struct Nor {
        mem: [u8; 128],
        erases: u32,
    }

    #[derive(Debug)]
    struct E;
    impl NorFlashError for E {
        fn kind(&self) -> NorFlashErrorKind {
            NorFlashErrorKind::OutOfBounds
        }
    }
    impl ErrorType for Nor {
        type Error = E;
    }
    impl ReadNorFlash for Nor {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), E> {
            let o = offset as usize;
            bytes.copy_from_slice(self.mem.get(o..o + bytes.len()).ok_or(E)?);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.mem.len()
        }
    }
    impl NorFlash for Nor {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 64;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), E> {
            self.mem
                .get_mut(from as usize..to as usize)
                .ok_or(E)?
                .fill(0xFF);
            self.erases += 1;
            Ok(())
        }
        fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), E> {
            let o = offset as usize;
            for (m, b) in self
                .mem
                .get_mut(o..o + bytes.len())
                .ok_or(E)?
                .iter_mut()
                .zip(bytes)
            {
                *m &= *b;
            }
            Ok(())
        }
    }

    #[test]
    fn counters_survive_reboots_and_sector_swaps() {
        let mut flash = Nor {
            mem: [0xFF; 128],
            erases: 0,
        };
        let mut last = 0;
        for _reboot in 0..40 {
            let mut log = FlashCounterLog::open(flash, 0);
            let mut c = FrameCounter::boot(&mut log, 3).unwrap();
            for _ in 0..5 {
                let v = c.next(&mut log).unwrap();
                assert!(v > last, "{v} after {last}");
                last = v;
            }
            flash = log.release();
        }
        assert!(
            flash.erases >= 4,
            "the log wrapped: {} erases",
            flash.erases
        );
    }

    #[test]
    fn fresh_flash_has_no_mark() {
        let mut log = FlashCounterLog::open(
            Nor {
                mem: [0xFF; 128],
                erases: 0,
            },
            0,
        );
        assert_eq!(log.load().unwrap(), None);
        log.store(9).unwrap();
        let mut log = FlashCounterLog::open(log.release(), 0);
        assert_eq!(log.load().unwrap(), Some(9));
    }
}
