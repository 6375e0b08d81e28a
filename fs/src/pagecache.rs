//! Prefetched files pushed into the kernel's page cache (`FUSE_NOTIFY_STORE`),
//! so that readers find them there and their reads never reach the daemon.
//!
//! Why: every FUSE request is a round trip between the reader's CPU and a
//! daemon thread's; on a VM whose idle vCPUs halt, each costs two cross-CPU
//! wake-ups, about 60 µs (MEASUREMENTS.md), and a cold walk of a prefetched
//! tree paid one READ per file. A pushed file costs its reader nothing more
//! than a warm one.
//!
//! The kernel takes pages only for inodes it knows, so a file's directory is
//! listed through the mount (READDIRPLUS brings in every entry) before the
//! file is pushed: a lister thread goes through the directories in the
//! prefetch's order from the start, while the frames are still being
//! fetched, and the pusher lists a directory itself only when it gets there
//! first. Files that no longer fit a byte budget, half the memory available
//! when pushing starts, are skipped: the pages are clean, and the kernel
//! evicts them as any others (a reader of an evicted page reads through the
//! daemon again).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{INodeNo, Notifier};

use crate::error::StoreError;
use crate::ids::PackId;
use crate::manifest::ChunkRef;
use crate::prefetch::{AccessTrace, Progress};
use crate::store::readahead::{Frame, FrameIndex};
use crate::tree::{ChunkSource, NodeType, Tree};

/// Bytes read from the caches and handed to the kernel per notification.
const PIECE: u32 = 1 << 20;

enum Msg {
    Push(u64),
    /// The prefetch ended in this state: report it once what was queued
    /// before is pushed.
    Finish(String),
    Stop,
}

/// Threads pushing the files they are given into the page cache of one
/// mount, and listing their directories ahead.
pub struct Pusher {
    tx: Sender<Msg>,
    plan: Sender<Vec<u64>>,
    stop: Arc<AtomicBool>,
    threads: [JoinHandle<()>; 2],
}

/// What both threads work with.
struct Shared {
    /// Where the mount's root is, for listing directories.
    root: PathBuf,
    tree: Arc<Tree>,
    /// Built by whichever thread needs it first.
    dirs: OnceLock<Dirs>,
    stop: Arc<AtomicBool>,
}

/// The directories of the tree, and which were listed.
struct Dirs {
    /// A directory holding each inode (see [`Tree::parents`]).
    parents: Vec<u64>,
    paths: HashMap<u64, Vec<u8>>,
    /// Per inode: [`UNLISTED`], [`LISTING`] or [`LISTED`].
    state: Vec<AtomicU8>,
}

const UNLISTED: u8 = 0;
const LISTING: u8 = 1;
const LISTED: u8 = 2;

/// What the pushing thread works with.
struct Work {
    shared: Arc<Shared>,
    notifier: Notifier,
    source: Arc<dyn ChunkSource>,
    /// A pushed file counts as read when it is pushed: its readers' reads
    /// no longer reach the daemon.
    trace: Arc<AccessTrace>,
    progress: Arc<Progress>,
}

impl Pusher {
    /// Starts the threads for the mount of `tree` at `root`, reading file
    /// bytes from `source`; pushed bytes are counted in `progress`.
    pub fn spawn(
        notifier: Notifier,
        root: PathBuf,
        tree: Arc<Tree>,
        source: Arc<dyn ChunkSource>,
        trace: Arc<AccessTrace>,
        progress: Arc<Progress>,
    ) -> Pusher {
        let (tx, rx) = channel();
        let (plan, planned) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            root,
            tree,
            dirs: OnceLock::new(),
            stop: stop.clone(),
        });
        let work = Work {
            shared: shared.clone(),
            notifier,
            source,
            trace,
            progress,
        };
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .expect("spawn a page cache thread")
        };
        let threads = [
            spawn("wsfs-push", Box::new(move || work.run(rx, budget()))),
            spawn("wsfs-list", Box::new(move || shared.list_ahead(planned))),
        ];
        Pusher {
            tx,
            plan,
            stop,
            threads,
        }
    }

    /// A handle for the prefetch: its order, files (inodes) to push, then its end.
    pub fn queue(&self) -> Queue {
        Queue {
            tx: self.tx.clone(),
            plan: self.plan.clone(),
        }
    }

    /// Drops what is queued and waits for the threads (before the mount
    /// goes: they may be listing a directory of it).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
        // Not waiting for the prefetch (it may be fetching) to send its order.
        let _ = self.plan.send(Vec::new());
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Where a prefetch hands over its files.
pub struct Queue {
    tx: Sender<Msg>,
    plan: Sender<Vec<u64>>,
}

impl Queue {
    /// The files the prefetch will push, in its order: their directories
    /// are listed in that order from now on.
    pub fn plan(&self, order: &[u64]) {
        let _ = self.plan.send(order.to_vec());
    }

    /// Queues file `ino`, all of whose frames are cached.
    pub fn push(&self, ino: u64) {
        let _ = self.tx.send(Msg::Push(ino));
    }

    /// Reports `state` as the prefetch's once every file queued is pushed:
    /// "done" then means readers read from memory.
    pub fn finish(&self, state: String) {
        let _ = self.tx.send(Msg::Finish(state));
    }
}

/// A source whose chunks pass through: pushing a view must not flush the
/// memory cache its readers use.
struct Passing<'a>(&'a dyn ChunkSource);

impl ChunkSource for Passing<'_> {
    fn chunk(&self, chunk: &ChunkRef, frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.0.chunk_passing(chunk, frames)
    }

    fn fetch_frames(&self, pack: PackId, frames: &[Frame]) -> Result<(), StoreError> {
        self.0.fetch_frames(pack, frames)
    }
}

/// Half of `MemAvailable` now (0 when it cannot be read: nothing is pushed).
fn budget() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024 / 2)
}

impl Shared {
    fn dirs(&self) -> &Dirs {
        self.dirs.get_or_init(|| {
            let parents = self.tree.parents();
            let dirs: HashSet<u64> = parents.iter().copied().filter(|&d| d != 0).collect();
            Dirs {
                paths: self.tree.paths_of(&dirs),
                state: (0..parents.len()).map(|_| AtomicU8::new(UNLISTED)).collect(),
                parents,
            }
        })
    }

    /// The lister thread: the directories of the prefetch's order, in it
    /// (an empty order from [`Pusher::stop`] ends it before one came).
    fn list_ahead(&self, planned: Receiver<Vec<u64>>) {
        for ino in planned.recv().unwrap_or_default() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            self.list_dir_of(ino, false);
        }
    }

    /// Lists the directory holding `ino` through the mount, so that the
    /// kernel knows its entries, unless it was listed; unless `waiting`,
    /// also unless another thread is listing it.
    fn list_dir_of(&self, ino: u64, waiting: bool) {
        let dirs = self.dirs();
        let dir = dirs.parents.get(ino as usize).copied().unwrap_or(0);
        let Some(state) = dirs.state.get(dir as usize) else {
            return;
        };
        match state.compare_exchange(UNLISTED, LISTING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            // Listed again rather than waited for: the pages must not come first.
            Err(LISTING) if waiting => {}
            Err(_) => return,
        }
        let path = match dirs.paths.get(&dir) {
            Some(path) => self.root.join(OsStr::from_bytes(path)),
            None => self.root.clone(),
        };
        match std::fs::read_dir(&path) {
            Ok(entries) => entries.for_each(drop),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot list"),
        }
        state.store(LISTED, Ordering::Release);
    }
}

impl Work {
    fn run(self, rx: Receiver<Msg>, mut room: u64) {
        let mut refused = false;
        // Time spent listing directories and pushing files, for the log.
        let (mut listing, mut pushing) = (Duration::ZERO, Duration::ZERO);
        while let Ok(msg) = rx.recv() {
            let ino = match msg {
                Msg::Stop => return,
                Msg::Finish(state) => {
                    let pushed = self.progress.pushed_bytes.load(Ordering::Relaxed);
                    tracing::info!(
                        state,
                        pushed_bytes = pushed,
                        listing_ms = listing.as_millis() as u64,
                        pushing_ms = pushing.as_millis() as u64,
                        "prefetch ended"
                    );
                    *self.progress.state.lock().unwrap() = state;
                    continue;
                }
                Msg::Push(_) if refused || self.shared.stop.load(Ordering::Relaxed) => continue,
                Msg::Push(ino) => ino,
            };
            let Ok(attr) = self.shared.tree.attr(ino) else {
                continue;
            };
            if attr.kind != NodeType::File || attr.size == 0 || attr.size > room {
                continue;
            }
            let started = Instant::now();
            self.shared.list_dir_of(ino, true);
            listing += started.elapsed();
            let started = Instant::now();
            let pushed = self.push(ino, attr.size);
            pushing += started.elapsed();
            match pushed {
                Ok(pushed) => {
                    room -= pushed;
                    self.progress.pushed_bytes.fetch_add(pushed, Ordering::Relaxed);
                    if pushed == attr.size {
                        self.trace.record(ino);
                    }
                }
                Err(e) => {
                    tracing::warn!(ino, error = %e, "the kernel refused pages: no more prefetched files are pushed");
                    refused = true;
                }
            }
        }
    }

    /// Hands file `ino`'s bytes to the kernel; returns how many. A chunk
    /// that cannot be read ends the file early (its reader will read the
    /// rest through the daemon); only the kernel refusing pages is an error.
    fn push(&self, ino: u64, size: u64) -> std::io::Result<u64> {
        let mut offset = 0;
        while offset < size && !self.shared.stop.load(Ordering::Relaxed) {
            let bytes = match self
                .shared
                .tree
                .read(ino, offset, PIECE, &Passing(self.source.as_ref()))
            {
                Ok(bytes) if !bytes.is_empty() => bytes,
                _ => break,
            };
            self.notifier.store(INodeNo(ino), offset, &bytes)?;
            offset += bytes.len() as u64;
        }
        Ok(offset)
    }
}
