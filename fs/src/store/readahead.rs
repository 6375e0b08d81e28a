//! Which frames one GET brings: the frame a reader missed and, when the
//! pack's recent misses were close together, its neighbours in the pack.
//!
//! A tree walk reads files in an order close to (not always the same as) the
//! order the persist packed them in, so its misses land near each other in a
//! pack; a job reading a few scattered files misses far apart. Each pack keeps
//! a window: a miss within twice the window of the pack's previous miss
//! doubles it (to at least two frames, at most [`MAX_WINDOW`]), a miss farther
//! away closes it. A GET
//! then takes every frame of the aligned window around the missed one that
//! is neither cached nor being fetched, so forward and backward walks are
//! both served, and a sparse reader fetches single frames as before.

use std::collections::HashMap;
use std::sync::Mutex;

use super::lru::Lru;
use crate::ids::PackId;
use crate::manifest::{ChunkLocation, ChunkRef};

/// The first window after two close misses.
const FIRST_WINDOW: u64 = 512 * 1024;
/// The largest window: one GET of this many compressed bytes at most.
pub const MAX_WINDOW: u64 = 8 * 1024 * 1024;
/// Bytes between two frames that a GET may fetch and throw away to bring
/// both in one request (frames no tree here references, e.g. garbage).
pub const MAX_GAP: u64 = 64 * 1024;
/// Packs whose window is remembered (the least recently missed are dropped).
const PACKS_REMEMBERED: u64 = 1024;

/// A frame of a pack: where it is and how large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// Byte offset in the pack.
    pub offset: u64,
    /// Compressed length.
    pub len: u32,
    /// Decompressed length.
    pub plain_len: u32,
}

impl Frame {
    /// The frame holding a chunk.
    pub fn of(loc: &ChunkLocation) -> Frame {
        Frame {
            offset: loc.frame_offset,
            len: loc.frame_len,
            plain_len: loc.frame_plain_len,
        }
    }

    /// The offset just past the frame.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The frames of each pack that a tree's chunks use, in pack order.
#[derive(Debug, Default)]
pub struct FrameIndex {
    packs: HashMap<PackId, Vec<Frame>>,
}

impl FrameIndex {
    /// The frames of `chunks`.
    pub fn of<'a>(chunks: impl IntoIterator<Item = &'a ChunkRef>) -> FrameIndex {
        let mut packs: HashMap<PackId, Vec<Frame>> = HashMap::new();
        for chunk in chunks {
            packs
                .entry(chunk.loc.pack)
                .or_default()
                .push(Frame::of(&chunk.loc));
        }
        for frames in packs.values_mut() {
            frames.sort_unstable();
            frames.dedup_by_key(|f| f.offset);
        }
        FrameIndex { packs }
    }

    /// The frames of `pack`, in pack order.
    pub fn frames(&self, pack: &PackId) -> &[Frame] {
        self.packs.get(pack).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The frames one GET fetches: `frames` of a pack, from the first's offset to
/// the last's end (gaps of at most [`MAX_GAP`] between them).
pub fn span_around(
    frames: &[Frame],
    missed: Frame,
    window: u64,
    mut free: impl FnMut(&Frame) -> bool,
) -> Vec<Frame> {
    let Ok(at) = frames.binary_search_by_key(&missed.offset, |f| f.offset) else {
        return vec![missed];
    };
    if window == 0 {
        return vec![missed];
    }
    let start = missed.offset / window * window;
    let end = start + window;
    let fits = |f: &Frame, next: &Frame| next.offset.saturating_sub(f.end()) <= MAX_GAP;
    let mut first = at;
    while first > 0 && frames[first - 1].offset >= start && fits(&frames[first - 1], &frames[first]) {
        if !free(&frames[first - 1]) {
            break;
        }
        first -= 1;
    }
    let mut last = at;
    while last + 1 < frames.len() && frames[last + 1].end() <= end && fits(&frames[last], &frames[last + 1]) {
        if !free(&frames[last + 1]) {
            break;
        }
        last += 1;
    }
    frames[first..=last].to_vec()
}

/// The read-ahead window of each pack: its last missed frame, and the window.
#[derive(Default)]
pub struct Windows {
    packs: Mutex<Lru<PackId, (Frame, u64)>>,
}

impl Windows {
    /// Notes a miss of `frame` of `pack`; returns the window to fetch around
    /// it (0: the frame alone).
    pub fn on_miss(&self, pack: PackId, frame: Frame) -> u64 {
        let mut packs = self.packs.lock().unwrap();
        let window = match packs.get(&pack) {
            Some(&(last, window)) => {
                let reach = 2 * window.max(FIRST_WINDOW);
                let close = frame.offset + reach >= last.offset && frame.offset <= last.end() + reach;
                if close {
                    (window.max(frame.len.into()) * 2).clamp(FIRST_WINDOW, MAX_WINDOW)
                } else {
                    0
                }
            }
            None => 0,
        };
        packs.insert(pack, 1, (frame, window));
        if packs.total() > PACKS_REMEMBERED {
            packs.pop_oldest();
        }
        window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: u64) -> Vec<Frame> {
        (0..n)
            .map(|i| Frame {
                offset: i * 100_000,
                len: 100_000,
                plain_len: 400_000,
            })
            .collect()
    }

    #[test]
    fn close_misses_open_the_window_far_ones_close_it() {
        let w = Windows::default();
        let p = PackId::of(b"p");
        let at = |offset: u64, len: u32| Frame {
            offset,
            len,
            plain_len: len,
        };
        assert_eq!(
            w.on_miss(p, at(5_000_000, 100_000)),
            0,
            "a first miss fetches its frame alone"
        );
        assert_eq!(w.on_miss(p, at(5_100_000, 100_000)), FIRST_WINDOW);
        assert_eq!(
            w.on_miss(p, at(4_900_000, 100_000)),
            2 * FIRST_WINDOW,
            "backwards counts too"
        );
        let mut last = 0;
        for i in 0..10 {
            last = w.on_miss(p, at(4_000_000 - i * 100_000, 100_000));
        }
        assert_eq!(last, MAX_WINDOW);
        assert_eq!(w.on_miss(p, at(60_000_000, 100_000)), 0, "a far miss closes it");
        assert_eq!(w.on_miss(PackId::of(b"q"), at(4_000_000, 100_000)), 0, "per pack");
        // Frames larger than the first window (incompressible data) are close
        // when they follow each other.
        let q = PackId::of(b"r");
        assert_eq!(w.on_miss(q, at(0, 1_100_000)), 0);
        assert_eq!(
            w.on_miss(q, at(1_100_000, 1_100_000)),
            2_200_000,
            "at least two such frames"
        );
    }

    #[test]
    fn spans_take_free_neighbours_within_the_aligned_window() {
        let all = frames(50);
        let missed = all[12];
        assert_eq!(span_around(&all, missed, 0, |_| true), [missed]);
        // Window 1 MB: frames whose offsets are in [1_000_000, 2_000_000).
        let span = span_around(&all, missed, 1_000_000, |_| true);
        assert_eq!(span.first().unwrap().offset, 1_000_000);
        assert_eq!(span.last().unwrap().end(), 2_000_000);
        // A cached (not free) frame ends the span on that side.
        let span = span_around(&all, missed, 1_000_000, |f| f.offset != 1_500_000);
        assert_eq!(
            (span[0].offset, span.last().unwrap().offset),
            (1_000_000, 1_400_000)
        );
        // A frame unknown to the index is fetched alone.
        let odd = Frame {
            offset: 123,
            len: 5,
            plain_len: 9,
        };
        assert_eq!(span_around(&all, odd, MAX_WINDOW, |_| true), [odd]);
    }
}
