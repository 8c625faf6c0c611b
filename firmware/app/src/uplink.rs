//! The way out: an uplink trait and the bounded store-and-forward queue in front of it.

use footfall_proto::frame::MAX_FRAME_LEN;
use heapless::Deque;

/// Why an uplink did not take a frame. Either way the frame stays queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum UplinkError {
    /// Try again later (advertising set still busy, MQTT in-flight window full).
    Busy,
    /// The link is down (no Wi-Fi, broker unreachable).
    Down,
}

/// Sends one signed frame (BLE extended advertisement, GATT notification, MQTT publish, …).
pub trait Uplink {
    /// Hands `frame` to the link. `Ok` means the link owns it now.
    fn send(&mut self, frame: &[u8]) -> Result<(), UplinkError>;
}

/// One queued frame.
#[derive(Debug, Clone)]
struct Queued {
    len: u8,
    sightings: u8,
    bytes: [u8; MAX_FRAME_LEN],
}

/// A bounded FIFO of signed frames waiting for the uplink; when full, the oldest is dropped and
/// counted.
#[derive(Debug)]
pub struct FrameQueue<const Q: usize> {
    frames: Deque<Queued, Q>,
    dropped_frames: u32,
    dropped_sightings: u32,
}

impl<const Q: usize> Default for FrameQueue<Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const Q: usize> FrameQueue<Q> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            frames: Deque::new(),
            dropped_frames: 0,
            dropped_sightings: 0,
        }
    }

    /// Queues a frame carrying `sightings` sightings; evicts the oldest frame if full. Frames
    /// longer than [`MAX_FRAME_LEN`] are refused (counted as dropped).
    pub fn push(&mut self, frame: &[u8], sightings: usize) {
        let sightings = u8::try_from(sightings).unwrap_or(u8::MAX);
        let (Some(src), Ok(len)) = (
            frame.get(..MAX_FRAME_LEN.min(frame.len())),
            u8::try_from(frame.len()),
        ) else {
            self.count_drop(sightings);
            return;
        };
        if frame.len() > MAX_FRAME_LEN {
            self.count_drop(sightings);
            return;
        }
        let mut q = Queued {
            len,
            sightings,
            bytes: [0; MAX_FRAME_LEN],
        };
        if let Some(dst) = q.bytes.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
        if self.frames.is_full() {
            if let Some(old) = self.frames.pop_front() {
                self.count_drop(old.sightings);
            }
        }
        if let Err(q) = self.frames.push_back(q) {
            self.count_drop(q.sightings);
        }
    }

    fn count_drop(&mut self, sightings: u8) {
        self.dropped_frames = self.dropped_frames.saturating_add(1);
        self.dropped_sightings = self.dropped_sightings.saturating_add(u32::from(sightings));
    }

    /// The oldest frame, not yet removed.
    pub fn front(&self) -> Option<&[u8]> {
        self.frames
            .front()
            .and_then(|q| q.bytes.get(..usize::from(q.len)))
    }

    /// Removes the oldest frame (after the uplink took it).
    pub fn pop(&mut self) {
        let _ = self.frames.pop_front();
    }

    /// Offers queued frames to `uplink`, oldest first, until it refuses one or the queue is
    /// empty. Returns how many it took.
    pub fn flush<U: Uplink + ?Sized>(&mut self, uplink: &mut U) -> Result<usize, UplinkError> {
        let mut sent = 0;
        while let Some(frame) = self.front() {
            uplink.send(frame)?;
            self.pop();
            sent += 1;
        }
        Ok(sent)
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Sightings inside the waiting frames.
    pub fn queued_sightings(&self) -> u32 {
        self.frames.iter().map(|q| u32::from(q.sightings)).sum()
    }

    /// Frames evicted (or refused) since boot.
    pub fn dropped_frames(&self) -> u32 {
        self.dropped_frames
    }

    /// Sightings inside evicted frames since boot.
    pub fn dropped_sightings(&self) -> u32 {
        self.dropped_sightings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    struct Flaky {
        up: bool,
        got: std::vec::Vec<std::vec::Vec<u8>>,
    }

    impl Uplink for Flaky {
        fn send(&mut self, frame: &[u8]) -> Result<(), UplinkError> {
            if !self.up {
                return Err(UplinkError::Down);
            }
            self.got.push(frame.to_vec());
            Ok(())
        }
    }

    #[test]
    fn keeps_frames_while_down_and_evicts_oldest() {
        let mut q = FrameQueue::<2>::new();
        let mut link = Flaky {
            up: false,
            got: vec![],
        };
        q.push(&[1], 3);
        q.push(&[2, 2], 4);
        assert_eq!(q.flush(&mut link), Err(UplinkError::Down));
        assert_eq!(q.len(), 2);
        q.push(&[3], 5);
        assert_eq!((q.dropped_frames(), q.dropped_sightings()), (1, 3));
        assert_eq!(q.queued_sightings(), 9);
        link.up = true;
        assert_eq!(q.flush(&mut link), Ok(2));
        assert_eq!(link.got, vec![vec![2, 2], vec![3]]);
        assert!(q.is_empty());
    }

    #[test]
    fn refuses_oversized_frames() {
        let mut q = FrameQueue::<2>::new();
        q.push(&[0; MAX_FRAME_LEN + 1], 1);
        assert!(q.is_empty());
        assert_eq!(q.dropped_frames(), 1);
        q.push(&[0; MAX_FRAME_LEN], 1);
        assert_eq!(q.front().map(<[u8]>::len), Some(MAX_FRAME_LEN));
    }
}
