//! Which frames one GET brings: the frame a reader missed and, when the
//! pack's recent misses were close together, its neighbours in the pack.
//!
//! A tree walk reads files in an order close to (not always the same as) the
//! order the persist packed them in, so its misses land near each other in a
//! pack; a job reading a few scattered files misses far apart. Each pack keeps
//! a window: a miss within twice the window of the pack's previous miss
//! doubles it (to at least two frames, at most [`MAX_WINDOW`]), a miss farther
//! away closes it. A GET then takes the frames next to the missed one that
//! are neither cached nor being fetched, up to the window's bytes: first in
//! the direction the reader went (forward after a forward step), then the
//! other way. So a walk that visits a directory's subdirectories last to
//! first (a stack-based walker), stepping back to where the cached frames
//! begin, still gets whole windows, and a sparse reader fetches single
//! frames as before.

use std::sync::Mutex;

use super::lru::Lru;
use crate::ids::PackId;
use crate::pack::Frame;

/// The first window after two close misses.
const FIRST_WINDOW: u64 = 512 * 1024;
/// The largest window: one GET of this many compressed bytes at most.
pub const MAX_WINDOW: u64 = 8 * 1024 * 1024;
/// Bytes between two frames that a GET may fetch and throw away to bring
/// both in one request (frames no tree here references, e.g. garbage).
pub const MAX_GAP: u64 = 64 * 1024;
/// Packs whose window is remembered (the least recently missed are dropped).
const PACKS_REMEMBERED: u64 = 1024;

/// The frames one GET fetches: `frames` of a pack around `missed`, from the
/// first's offset to the last's end (gaps of at most [`MAX_GAP`] between
/// them), at most `window.bytes` (but `missed` at least), first on the side
/// `window.forward` names.
pub fn span_around(
    frames: &[Frame],
    missed: Frame,
    window: Window,
    mut free: impl FnMut(&Frame) -> bool,
) -> Vec<Frame> {
    let Ok(at) = frames.binary_search_by_key(&missed.offset, |f| f.offset) else {
        return vec![missed];
    };
    let (mut first, mut last) = (at, at);
    for forward in [window.forward, !window.forward] {
        loop {
            // The span with one more frame on this side, the frame, and its neighbour in the span.
            let (f, l, added, near) = match forward {
                true if last + 1 < frames.len() => (first, last + 1, frames[last + 1], frames[last]),
                false if first > 0 => (first - 1, last, frames[first - 1], frames[first]),
                _ => break,
            };
            let gap = added
                .offset
                .max(near.offset)
                .saturating_sub(added.end().min(near.end()));
            if frames[l].end() - frames[f].offset > window.bytes || gap > MAX_GAP || !free(&added) {
                break;
            }
            (first, last) = (f, l);
        }
    }
    frames[first..=last].to_vec()
}

/// How much a GET may take around a missed frame, and which way first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Compressed bytes at most (0: the missed frame alone).
    pub bytes: u64,
    /// The reader went forward: take the frames after the missed one first.
    pub forward: bool,
}

/// The read-ahead window of each pack: its last missed frame, and the window.
#[derive(Default)]
pub struct Windows {
    packs: Mutex<Lru<PackId, (Frame, u64)>>,
}

impl Windows {
    /// Notes a miss of `frame` of `pack`; returns the window to fetch around it.
    pub fn on_miss(&self, pack: PackId, frame: Frame) -> Window {
        let mut packs = self.packs.lock().unwrap();
        let last = packs.get(&pack).copied();
        let window = match last {
            Some((last, window)) => {
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
        Window {
            bytes: window,
            forward: last.is_none_or(|(last, _)| frame.offset >= last.offset),
        }
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
            w.on_miss(p, at(5_000_000, 100_000)).bytes,
            0,
            "a first miss fetches its frame alone"
        );
        assert_eq!(
            w.on_miss(p, at(5_100_000, 100_000)),
            Window {
                bytes: FIRST_WINDOW,
                forward: true
            }
        );
        assert_eq!(
            w.on_miss(p, at(4_900_000, 100_000)),
            Window {
                bytes: 2 * FIRST_WINDOW,
                forward: false
            },
            "backwards counts too, and says so"
        );
        let mut last = 0;
        for i in 0..10 {
            last = w.on_miss(p, at(4_000_000 - i * 100_000, 100_000)).bytes;
        }
        assert_eq!(last, MAX_WINDOW);
        assert_eq!(
            w.on_miss(p, at(60_000_000, 100_000)).bytes,
            0,
            "a far miss closes it"
        );
        assert_eq!(
            w.on_miss(PackId::of(b"q"), at(4_000_000, 100_000)).bytes,
            0,
            "per pack"
        );
        // Frames larger than the first window (incompressible data) are close
        // when they follow each other.
        let q = PackId::of(b"r");
        assert_eq!(w.on_miss(q, at(0, 1_100_000)).bytes, 0);
        assert_eq!(
            w.on_miss(q, at(1_100_000, 1_100_000)).bytes,
            2_200_000,
            "at least two such frames"
        );
    }

    #[test]
    fn spans_take_free_neighbours_the_way_the_reader_went_first() {
        let all = frames(50);
        let missed = all[12];
        let window = |bytes, forward| Window { bytes, forward };
        let span = |w, free: &dyn Fn(&Frame) -> bool| {
            let span = span_around(&all, missed, w, free);
            (span[0].offset, span.last().unwrap().end())
        };
        assert_eq!(span_around(&all, missed, window(0, true), |_| true), [missed]);
        // Window 1 MB, reading forward: the 10 frames from the missed one on.
        assert_eq!(span(window(1_000_000, true), &|_| true), (1_200_000, 2_200_000));
        // Reading backward: the 10 frames up to it.
        assert_eq!(span(window(1_000_000, false), &|_| true), (300_000, 1_300_000));
        // Forward, but two frames on, the frames are cached (a walker stepping
        // back to an earlier directory): the rest of the window goes backward.
        let cached_after = |f: &Frame| f.offset < 1_500_000;
        assert_eq!(span(window(1_000_000, true), &cached_after), (500_000, 1_500_000));
        // At the pack's start: what is left goes forward.
        let span = span_around(&all, all[1], window(1_000_000, false), |_| true);
        assert_eq!((span[0].offset, span.len()), (0, 10));
        // A frame unknown to the index is fetched alone.
        let odd = Frame {
            offset: 123,
            len: 5,
            plain_len: 9,
        };
        assert_eq!(span_around(&all, odd, window(MAX_WINDOW, true), |_| true), [odd]);
    }
}
