//! Prefetched files pushed into the kernel's page cache (`FUSE_NOTIFY_STORE`),
//! so that readers find them there and their reads never reach the daemon.
//!
//! Why: every FUSE request is a round trip between the reader's CPU and a
//! daemon thread's; on a VM whose idle vCPUs halt, each costs two cross-CPU
//! wake-ups, about 60 µs (MEASUREMENTS.md), and a cold walk of a prefetched
//! tree paid one READ per file. A pushed file costs its reader nothing more
//! than a warm one.
//!
//! The kernel takes pages only for inodes it knows, so before a file is
//! pushed its directory is listed through the mount (READDIRPLUS brings in
//! every entry). Pushing stops at a byte budget, half the memory available
//! when it starts: the pages are clean, and the kernel evicts them as any
//! others (a reader of an evicted page reads through the daemon again).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::{INodeNo, Notifier};

use crate::prefetch::{AccessTrace, Progress};
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

/// A thread pushing the files it is given into the page cache of one mount.
pub struct Pusher {
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What the pushing thread works with.
struct Work {
    notifier: Notifier,
    /// Where the mount's root is, for listing directories.
    root: PathBuf,
    tree: Arc<Tree>,
    source: Arc<dyn ChunkSource>,
    /// A pushed file counts as read when it is pushed: its readers' reads
    /// no longer reach the daemon.
    trace: Arc<AccessTrace>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
}

impl Pusher {
    /// Starts the thread for the mount of `tree` at `root`, reading file
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
        let stop = Arc::new(AtomicBool::new(false));
        let work = Work {
            notifier,
            root,
            tree,
            source,
            trace,
            progress,
            stop: stop.clone(),
        };
        let thread = std::thread::spawn(move || work.run(rx, budget()));
        Pusher { tx, stop, thread }
    }

    /// A handle for the prefetch: files (inodes) to push, then its end.
    pub fn queue(&self) -> Queue {
        Queue(self.tx.clone())
    }

    /// Drops what is queued and waits for the thread (before the mount goes:
    /// it may be listing a directory of it).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

/// Where a prefetch hands over its files.
pub struct Queue(Sender<Msg>);

impl Queue {
    /// Queues file `ino`, all of whose frames are cached.
    pub fn push(&self, ino: u64) {
        let _ = self.0.send(Msg::Push(ino));
    }

    /// Reports `state` as the prefetch's once every file queued is pushed:
    /// "done" then means readers read from memory.
    pub fn finish(&self, state: String) {
        let _ = self.0.send(Msg::Finish(state));
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

impl Work {
    fn run(self, rx: Receiver<Msg>, mut room: u64) {
        let parents = self.tree.parents();
        let dirs: HashSet<u64> = parents.iter().copied().filter(|&d| d != 0).collect();
        let dir_paths = self.tree.paths_of(&dirs);
        let mut listed = HashSet::new();
        let mut refused = false;
        while let Ok(msg) = rx.recv() {
            let ino = match msg {
                Msg::Stop => return,
                Msg::Finish(state) => {
                    let pushed = self.progress.pushed_bytes.load(Ordering::Relaxed);
                    tracing::info!(state, pushed_bytes = pushed, "prefetch ended");
                    *self.progress.state.lock().unwrap() = state;
                    continue;
                }
                Msg::Push(_) if refused || self.stop.load(Ordering::Relaxed) => continue,
                Msg::Push(ino) => ino,
            };
            let Ok(attr) = self.tree.attr(ino) else { continue };
            if attr.kind != NodeType::File || attr.size == 0 || attr.size > room {
                continue;
            }
            let dir = parents.get(ino as usize).copied().unwrap_or(0);
            if listed.insert(dir) {
                self.list(&dir_paths, dir);
            }
            match self.push(ino, attr.size) {
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

    /// Lists directory `dir` through the mount, so that the kernel knows its entries.
    fn list(&self, dir_paths: &HashMap<u64, Vec<u8>>, dir: u64) {
        let path = match dir_paths.get(&dir) {
            Some(path) => self.root.join(OsStr::from_bytes(path)),
            None => self.root.clone(),
        };
        match std::fs::read_dir(&path) {
            Ok(entries) => entries.for_each(drop),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot list"),
        }
    }

    /// Hands file `ino`'s bytes to the kernel; returns how many. A chunk
    /// that cannot be read ends the file early (its reader will read the
    /// rest through the daemon); only the kernel refusing pages is an error.
    fn push(&self, ino: u64, size: u64) -> std::io::Result<u64> {
        let mut offset = 0;
        while offset < size {
            let bytes = match self.tree.read(ino, offset, PIECE, self.source.as_ref()) {
                Ok(bytes) if !bytes.is_empty() => bytes,
                _ => break,
            };
            self.notifier.store(INodeNo(ino), offset, &bytes)?;
            offset += bytes.len() as u64;
        }
        Ok(offset)
    }
}
