//! Prefetch: which files a mount's readers read first (the access trace),
//! kept in the remote by a key, and fetching a whole tree in that order in
//! the background, a few MiB of consecutive frames per GET, while readers'
//! own misses go first.
//!
//! A trace is `traces/<key>`: the paths (from the workspace root) in
//! first-read order, in the format of [`crate::markers::trace`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::StoreError;
use crate::ids::PackId;
use crate::keys;
use crate::markers::trace;
use crate::pack::Frame;
use crate::store::cache::FrameKey;
use crate::store::readahead::{MAX_GAP, MAX_WINDOW};
use crate::store::Store;
use crate::tree::{ChunkSource, Tree};
use crate::workers;

/// How long prefetch waits, when it yields to readers.
const YIELD: Duration = Duration::from_millis(2);
/// Prefetch yields while this many reads of the mount's readers are in
/// flight: a busy mount's readers get the remote first, while one reader
/// walking the tree (one read at a time) does not stop the prefetch that
/// would serve it.
pub(crate) const YIELD_AT_READS: usize = 4;

/// The order in which a mount's inodes were first read; lock-free, so that
/// recording costs a read one atomic load once the inode was seen.
pub struct AccessTrace {
    next: AtomicU32,
    first_read: Vec<AtomicU32>,
}

impl AccessTrace {
    /// A trace of a tree with `inodes` inodes.
    pub fn new(inodes: u64) -> Self {
        AccessTrace {
            next: AtomicU32::new(1),
            first_read: (0..=inodes).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Notes a read of `ino`.
    pub fn record(&self, ino: u64) {
        if let Some(slot) = self.first_read.get(ino as usize) {
            if slot.load(Ordering::Relaxed) == 0 {
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                let _ = slot.compare_exchange(0, seq, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Whether `ino` was read (or pushed) already.
    pub fn was_read(&self, ino: u64) -> bool {
        self.first_read
            .get(ino as usize)
            .is_some_and(|seq| seq.load(Ordering::Relaxed) != 0)
    }

    /// The inodes read so far, in first-read order.
    pub fn order(&self) -> Vec<u64> {
        let mut read: Vec<(u32, u64)> = self
            .first_read
            .iter()
            .enumerate()
            .filter_map(|(ino, seq)| match seq.load(Ordering::Relaxed) {
                0 => None,
                seq => Some((seq, ino as u64)),
            })
            .collect();
        read.sort_unstable();
        read.into_iter().map(|(_, ino)| ino).collect()
    }

    /// The trace as stored: the paths of the inodes read, in order.
    pub fn encode(&self, tree: &Tree) -> Option<Vec<u8>> {
        let order = self.order();
        if order.is_empty() {
            return None;
        }
        let paths = tree.paths_of(&order.iter().copied().collect());
        Some(trace::encode(
            order.iter().filter_map(|ino| paths.get(ino)).map(Vec::as_slice),
        ))
    }
}

pub use crate::markers::trace::decode as decode_trace;

/// The most bytes of a stored trace that are read (the paths of a few million files).
pub const MAX_TRACE_LEN: u64 = 256 << 20;

/// The stored access trace kept under `key` (empty when none is kept; see
/// [`decode_trace`]).
pub fn read_trace(store: &Store, key: &str) -> Result<bytes::Bytes, StoreError> {
    Ok(store
        .remote()
        .get(&keys::trace(key), MAX_TRACE_LEN)?
        .unwrap_or_default())
}

/// The order to prefetch a tree's files in: those of `trace` first, in its
/// order, then (`rest`) every other file in tree order.
pub fn prefetch_order(tree: &Tree, trace: &[&[u8]], rest: bool) -> Vec<u64> {
    let mut seen = HashSet::new();
    let traced = trace
        .iter()
        .filter_map(|path| tree.resolve(path).ok().flatten())
        .filter(|&ino| tree.file_chunks(ino).is_ok());
    let mut order: Vec<u64> = traced.filter(|&ino| seen.insert(ino)).collect();
    if rest {
        order.extend(tree.file_inodes().filter(|ino| !seen.contains(ino)));
    }
    order
}

/// A prefetch's progress, shared with whoever reports it.
#[derive(Debug, Default)]
pub struct PrefetchProgress {
    /// Files to fetch.
    pub files_total: AtomicU64,
    /// Files fetched.
    pub files_done: AtomicU64,
    /// Bytes to fetch (plain file bytes).
    pub bytes_total: AtomicU64,
    /// Bytes fetched.
    pub bytes_done: AtomicU64,
    /// Bytes of fetched files handed to the kernel's page cache (see
    /// [`crate::pagecache`]).
    pub pushed_bytes: AtomicU64,
    /// Asked to stop (the mount is going away).
    pub stop: AtomicBool,
    /// `running`, `done`, `stopped` or `failed: <why>`.
    pub state: Mutex<String>,
    /// The files each of the first GETs fetched frames of (by the GET's
    /// place in the prefetch's order), for [`PrefetchProgress::first_fetched`].
    fetched_by: Mutex<Vec<(usize, Vec<String>)>>,
}

/// How many files [`PrefetchProgress::first_fetched`] names at most.
pub const FIRST_FETCHED: usize = 16;

impl PrefetchProgress {
    /// The paths of the first files ([`FIRST_FETCHED`] at most) whose
    /// frames the prefetch fetched, in the order of its GETs (which take
    /// the files' frames in the prefetch's order).
    pub fn first_fetched(&self) -> Vec<String> {
        let mut gets = self.fetched_by.lock().unwrap().clone();
        gets.sort_by_key(|(get, _)| *get);
        let mut seen = HashSet::new();
        let mut first: Vec<String> = gets
            .into_iter()
            .flat_map(|(_, files)| files)
            .filter(|path| seen.insert(path.clone()))
            .collect();
        first.truncate(FIRST_FETCHED);
        first
    }
}

/// The most the first GET of a prefetch takes (but at least two frames);
/// each next one may take twice as much, up to [`MAX_WINDOW`]. Starting small keeps the first GETs from
/// filling the link while the view's first reads wait for their frames.
pub(crate) const FIRST_SPAN: u64 = 256 * 1024;

/// Consecutive frames of one pack, fetched by one GET.
type Span = (PackId, Vec<Frame>);

/// The frames of the files in `order`, as GETs: each frame once, in the
/// order of the first file that needs it, each GET taking the frames that
/// follow in its pack, needed and not taken yet (from [`FIRST_SPAN`] bytes,
/// doubling, up to [`MAX_WINDOW`]). Returns the
/// spans and, for each frame, the files (indexes in `order`) that need it.
fn plan_spans(tree: &Tree, order: &[u64]) -> (Vec<Span>, HashMap<FrameKey, Vec<usize>>) {
    let mut needed_by: HashMap<FrameKey, Vec<usize>> = HashMap::new();
    let mut first_need = Vec::new();
    for (i, &ino) in order.iter().enumerate() {
        for chunk in tree.file_chunks(ino).unwrap_or_default() {
            let files = needed_by
                .entry((chunk.loc.pack, chunk.loc.frame_offset))
                .or_default();
            if files.is_empty() {
                first_need.push((chunk.loc.pack, Frame::of(&chunk.loc)));
            }
            if files.last() != Some(&i) {
                files.push(i);
            }
        }
    }
    let mut taken = HashSet::new();
    let mut spans = Vec::new();
    for (pack, frame) in first_need {
        if taken.contains(&(pack, frame.offset)) {
            continue;
        }
        let frames = tree.frames().frames(&pack);
        let at = frames.partition_point(|f| f.offset < frame.offset);
        let cap = (FIRST_SPAN << spans.len().min(8)).min(MAX_WINDOW);
        let mut span = vec![frame];
        taken.insert((pack, frame.offset));
        for next in frames.get(at + 1..).unwrap_or_default() {
            let last = span.last().expect("not empty");
            if taken.contains(&(pack, next.offset))
                || !needed_by.contains_key(&(pack, next.offset))
                || next.offset.saturating_sub(last.end()) > MAX_GAP
                || (span.len() >= 2 && next.end() - span[0].offset > cap)
            {
                break;
            }
            taken.insert((pack, next.offset));
            span.push(*next);
        }
        spans.push((pack, span));
    }
    (spans, needed_by)
}

/// The paths of the files (at most [`FIRST_FETCHED`] each) that each of the
/// first [`FIRST_FETCHED`] GETs fetches frames of, in the order of its frames.
fn files_of_first_gets(
    tree: &Tree,
    order: &[u64],
    spans: &[Span],
    needed_by: &HashMap<FrameKey, Vec<usize>>,
) -> Vec<Vec<String>> {
    let files: Vec<Vec<u64>> = spans
        .iter()
        .take(FIRST_FETCHED)
        .map(|(pack, frames)| {
            let mut files: Vec<usize> = Vec::new();
            for frame in frames {
                for &i in needed_by
                    .get(&(*pack, frame.offset))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if files.len() < FIRST_FETCHED && !files.contains(&i) {
                        files.push(i);
                    }
                }
            }
            files.into_iter().map(|i| order[i]).collect()
        })
        .collect();
    let paths = tree.paths_of(&files.iter().flatten().copied().collect());
    files
        .iter()
        .map(|inos| {
            inos.iter()
                .filter_map(|ino| paths.get(ino))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .collect()
}

/// Fetches the frames of the files in `order` into the cache, in that order,
/// coalesced into GETs of up to [`MAX_WINDOW`] bytes, `threads` GETs at a
/// time, waiting while many reads of the mount's readers are in flight
/// (`busy`), until done, stopped, or a GET fails. Each file whose frames
/// are all in the cache is handed to `ready`. Returns the state it ended in:
/// `done`, `stopped` or `failed: <why>`.
pub fn prefetch(
    tree: &Tree,
    source: &dyn ChunkSource,
    order: &[u64],
    busy: &AtomicUsize,
    progress: &PrefetchProgress,
    threads: usize,
    ready: &(dyn Fn(u64) + Sync),
) -> String {
    let sizes: Vec<u64> = order
        .iter()
        .map(|&ino| tree.attr(ino).map(|a| a.size).unwrap_or(0))
        .collect();
    progress.files_total.store(order.len() as u64, Ordering::Relaxed);
    progress.bytes_total.store(sizes.iter().sum(), Ordering::Relaxed);
    *progress.state.lock().unwrap() = "running".into();
    let (spans, needed_by) = plan_spans(tree, order);
    // Frames each file still waits for; a file is done when it reaches 0.
    let waiting: Vec<AtomicUsize> = order.iter().map(|_| AtomicUsize::new(0)).collect();
    for &i in needed_by.values().flatten() {
        waiting[i].fetch_add(1, Ordering::Relaxed);
    }
    let named = files_of_first_gets(tree, order, &spans, &needed_by);
    let file_done = |i: usize| {
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        progress.bytes_done.fetch_add(sizes[i], Ordering::Relaxed);
        ready(order[i]);
    };
    (0..order.len())
        .filter(|&i| waiting[i].load(Ordering::Relaxed) == 0)
        .for_each(file_done);
    let fetch_span = |&(get, (pack, frames)): &(usize, &Span)| -> Result<(), String> {
        while busy.load(Ordering::Relaxed) >= YIELD_AT_READS && !progress.stop.load(Ordering::Relaxed) {
            std::thread::sleep(YIELD);
        }
        if progress.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        source.fetch_frames(*pack, frames).map_err(|e| e.to_string())?;
        if let Some(files) = named.get(get) {
            progress.fetched_by.lock().unwrap().push((get, files.clone()));
        }
        for frame in frames {
            for &i in needed_by
                .get(&(*pack, frame.offset))
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if waiting[i].fetch_sub(1, Ordering::Relaxed) == 1 {
                    file_done(i);
                }
            }
        }
        Ok(())
    };
    let gets: Vec<(usize, &Span)> = spans.iter().enumerate().collect();
    match workers::for_each(&gets, threads, fetch_span) {
        Err(why) => format!("failed: {why}"),
        Ok(()) if progress.stop.load(Ordering::Relaxed) => "stopped".into(),
        Ok(()) => "done".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{file, layer};
    use crate::manifest::EntryKind;

    /// Four files, each alone in one of four consecutive frames of one pack.
    fn four_frames() -> Tree {
        let entries = (0..4u64)
            .map(|i| {
                let mut entry = file(&format!("f{i}"), &[&[i as u8; 100]], 0);
                let EntryKind::File(data) = &mut entry.kind else {
                    unreachable!()
                };
                let loc = &mut data.chunks[0].loc;
                (loc.frame_offset, loc.frame_len, loc.frame_plain_len) = (i * 50, 50, 100);
                entry
            })
            .collect();
        Tree::build(&[layer(entries)])
    }

    /// A prefetch of traced files alone takes their frames and none of the
    /// frames in between, though one GET could span them; the whole tree's
    /// prefetch takes all four frames in one GET.
    #[test]
    fn a_prefetch_of_two_files_fetches_their_frames_alone() {
        let tree = four_frames();
        let traced = prefetch_order(&tree, &[b"f2", b"f0"], false);
        let (spans, _) = plan_spans(&tree, &traced);
        let offsets: Vec<Vec<u64>> = spans
            .iter()
            .map(|(_, f)| f.iter().map(|f| f.offset).collect())
            .collect();
        assert_eq!(offsets, [vec![100], vec![0]]);
        let whole = prefetch_order(&tree, &[b"f2", b"f0"], true);
        assert_eq!(whole.len(), 4);
        let (spans, _) = plan_spans(&tree, &prefetch_order(&tree, &[], true));
        let offsets: Vec<Vec<u64>> = spans
            .iter()
            .map(|(_, f)| f.iter().map(|f| f.offset).collect())
            .collect();
        assert_eq!(offsets, [vec![0, 50, 100, 150]]);
    }

    #[test]
    fn traces_keep_first_read_order_and_round_trip() {
        let trace = AccessTrace::new(10);
        for ino in [7, 3, 7, 9, 3] {
            trace.record(ino);
        }
        trace.record(99);
        assert_eq!(trace.order(), [7, 3, 9]);
    }
}
