//! Prefetched files pushed into the kernel's page cache (`FUSE_NOTIFY_STORE`),
//! so that readers find them there and their reads never reach the daemon.
//!
//! Why: every FUSE request is a round trip between the reader's CPU and a
//! daemon thread's; on a VM whose idle vCPUs halt, each costs two cross-CPU
//! wake-ups (bench/README.md, "Where a cold read's time went": a walk's
//! 34,000 requests took 1.67 s, 0.82 s with reader and daemon on one CPU),
//! and a cold walk of a prefetched tree paid one READ per file. A pushed file costs its reader nothing more
//! than a warm one.
//!
//! The kernel takes pages only for inodes it knows (it answers a push to an
//! inode it forgot with nothing), so the pusher holds each file open by path
//! (`O_PATH`: no FUSE OPEN) while pushing it. That path walk costs a LOOKUP
//! per file unless the file's directory was listed (READDIRPLUS brings in
//! every entry at once): a lister thread goes through the directories in the
//! prefetch's order from the start, while the frames are still being
//! fetched, and the pusher lists a directory itself when it gets there
//! first. Files that no longer fit a byte budget, half the memory this
//! process may still fill when pushing starts ([`crate::memory`]), are
//! skipped, and the lister skips their directories alike: the pages are
//! clean, and the kernel evicts them as any others (a reader of an evicted
//! page reads through the daemon again). A file a reader read before its
//! turn is not pushed: its reader has the pages it read, and reads the rest
//! through the daemon.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{INodeNo, Notifier};

use crate::error::StoreError;
use crate::ids::PackId;
use crate::manifest::ChunkRef;
use crate::pack::{Frame, FrameIndex};
use crate::prefetch::{AccessTrace, PrefetchProgress};
use crate::tree::{Attr, ChunkSource, NodeType, Tree};

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
    progress: Arc<PrefetchProgress>,
    stop: Arc<AtomicBool>,
    threads: [JoinHandle<()>; 2],
}

/// What both threads work with.
struct PushTarget {
    /// Where the mount's root is, for listing directories and opening files.
    root: PathBuf,
    tree: Arc<Tree>,
    /// Built by whichever thread needs it first.
    dirs: OnceLock<Dirs>,
    /// Bytes of files to push at most (see [`budget`]).
    budget: u64,
    stop: Arc<AtomicBool>,
}

/// The directories of the tree, and which were listed.
struct Dirs {
    /// A directory holding each inode (see [`Tree::parents`]).
    parents: Vec<u64>,
    /// A path of each directory and regular file.
    paths: HashMap<u64, Vec<u8>>,
    /// Per inode: whether a thread took (or is done with) listing it.
    taken: Vec<AtomicBool>,
}

/// What the pushing thread works with.
struct Work {
    shared: Arc<PushTarget>,
    notifier: Notifier,
    source: Arc<dyn ChunkSource>,
    /// A pushed file counts as read when it is pushed: its readers' reads
    /// no longer reach the daemon.
    trace: Arc<AccessTrace>,
    progress: Arc<PrefetchProgress>,
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
        progress: Arc<PrefetchProgress>,
    ) -> Pusher {
        let (tx, rx) = channel();
        let (plan, planned) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(PushTarget {
            root,
            tree,
            dirs: OnceLock::new(),
            budget: budget(),
            stop: stop.clone(),
        });
        let work = Work {
            shared: shared.clone(),
            notifier,
            source,
            trace,
            progress: progress.clone(),
        };
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .expect("spawn a page cache thread")
        };
        let threads = [
            spawn("wsfs-push", Box::new(move || work.run(rx))),
            spawn("wsfs-list", Box::new(move || shared.list_ahead(planned))),
        ];
        Pusher {
            tx,
            plan,
            progress,
            stop,
            threads,
        }
    }

    /// A handle for the prefetch: its order, files (inodes) to push, then its end.
    pub fn queue(&self) -> Queue {
        Queue {
            tx: self.tx.clone(),
            plan: self.plan.clone(),
            progress: self.progress.clone(),
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
    progress: Arc<PrefetchProgress>,
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
        // The pusher is gone only if it panicked: then nothing is pushed.
        if self.tx.send(Msg::Finish(state.clone())).is_err() {
            *self.progress.state.lock().unwrap() = state;
        }
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

/// Half the memory this process may still fill now (0 when unknown:
/// nothing is pushed).
fn budget() -> u64 {
    crate::memory::available() / 2
}

/// Whether a file of `size` bytes is one to push, taking its room from `room`.
fn fits(size: u64, room: &mut u64) -> bool {
    let fits = size > 0 && size <= *room;
    if fits {
        *room -= size;
    }
    fits
}

/// Whether the pusher pushes the inode of `attr`: a regular file no reader
/// read before its turn (its reader has the pages it read, and reads the
/// rest through the daemon), that [`fits`] the room left.
fn to_push(attr: &Attr, trace: &AccessTrace, room: &mut u64) -> bool {
    attr.kind == NodeType::File && !trace.was_read(attr.ino) && fits(attr.size, room)
}

impl PushTarget {
    fn dirs(&self) -> &Dirs {
        self.dirs.get_or_init(|| {
            let parents = self.tree.parents();
            let mut named: HashSet<u64> = parents.iter().copied().filter(|&d| d != 0).collect();
            named.extend(self.tree.file_inodes());
            Dirs {
                paths: self.tree.paths_of(&named),
                taken: (0..parents.len()).map(|_| AtomicBool::new(false)).collect(),
                parents,
            }
        })
    }

    /// The lister thread: the directories of the files to push in the
    /// prefetch's order, in it (an empty order from [`Pusher::stop`] ends it
    /// before one came).
    fn list_ahead(&self, planned: Receiver<Vec<u64>>) {
        let mut room = self.budget;
        for ino in planned.recv().unwrap_or_default() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let size = self.tree.attr(ino).map_or(0, |a| a.size);
            if fits(size, &mut room) {
                self.list_dir_of(ino);
            }
        }
    }

    /// Where `ino` is in the mount.
    fn path(&self, ino: u64) -> PathBuf {
        match self.dirs().paths.get(&ino) {
            Some(path) => self.root.join(OsStr::from_bytes(path)),
            None => self.root.clone(),
        }
    }

    /// Lists the directory holding `ino` through the mount, so that the
    /// kernel knows its entries, unless it was listed or is being listed.
    fn list_dir_of(&self, ino: u64) {
        let dirs = self.dirs();
        let dir = dirs.parents.get(ino as usize).copied().unwrap_or(0);
        let Some(taken) = dirs.taken.get(dir as usize) else {
            return;
        };
        if taken.swap(true, Ordering::Relaxed) {
            return;
        }
        let path = self.path(dir);
        match std::fs::read_dir(&path) {
            Ok(entries) => entries.for_each(drop),
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot list"),
        }
    }

    /// File `ino` held open by path without opening it in the daemon
    /// (`O_PATH`), so that the kernel keeps its inode; `None` when it cannot
    /// be opened or the path leads to another inode.
    fn pin(&self, ino: u64) -> Option<File> {
        let path = self.path(ino);
        let pinned = crate::os::hold_inode(&path);
        match pinned.and_then(|f| f.metadata().map(|m| (f, m.ino()))) {
            Ok((file, found)) if found == ino => Some(file),
            Ok((_, found)) => {
                tracing::debug!(path = %path.display(), ino, found, "another inode at the path: not pushed");
                None
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot open: not pushed");
                None
            }
        }
    }
}

/// Marks the prefetch failed if the pushing thread panics, so that its
/// state does not stay `running`.
struct FailOnPanic(Arc<PrefetchProgress>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            *self.0.state.lock().unwrap() = "failed: the page cache pusher stopped (see wsfsd.log)".into();
        }
    }
}

impl Work {
    fn run(self, rx: Receiver<Msg>) {
        let _failed = FailOnPanic(self.progress.clone());
        let mut room = self.shared.budget;
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
            // Its reader got there first (the pages it read are cached already):
            // it takes nothing from the budget.
            if !to_push(attr, &self.trace, &mut room) {
                continue;
            }
            let started = Instant::now();
            self.shared.list_dir_of(ino);
            listing += started.elapsed();
            let started = Instant::now();
            let pushed = self.push(ino, attr.size);
            pushing += started.elapsed();
            match pushed {
                Ok(pushed) => {
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

    /// Hands file `ino`'s bytes to the kernel; returns how many. A file
    /// that cannot be held open is skipped, a chunk that cannot be read ends
    /// the file early (its reader reads the rest through the daemon); only
    /// the kernel refusing pages is an error.
    fn push(&self, ino: u64, size: u64) -> std::io::Result<u64> {
        let Some(_pinned) = self.shared.pin(ino) else {
            return Ok(0);
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{entry, file, layer};
    use crate::manifest::EntryKind;

    #[test]
    fn files_are_pushed_in_order_while_they_fit_the_budget() {
        let mut room = 10;
        let pushed: Vec<bool> = [4, 7, 3, 0, 3, 1]
            .iter()
            .map(|&size| fits(size, &mut room))
            .collect();
        assert_eq!(
            pushed,
            [true, false, true, false, true, false],
            "a file too big for what is left is skipped, smaller ones after it still go; empty files never"
        );
        assert_eq!(room, 0);
        let mut none = 0;
        assert!(
            !fits(1, &mut none),
            "no budget (memory unknown): nothing is pushed"
        );
    }

    #[test]
    fn files_read_before_their_turn_are_not_pushed_and_take_no_room() {
        let link = EntryKind::Symlink {
            target: b"read".to_vec(),
        };
        let tree = Tree::build(&[layer(vec![
            file("read", &[b"12345"], 0),
            entry("s", link),
            file("unread", &[b"6789"], 0),
        ])]);
        let ino = |path: &[u8]| tree.resolve(path).unwrap().unwrap();
        let trace = AccessTrace::new(tree.inodes());
        trace.record(ino(b"read"));
        // Room for both files: only having been read keeps one from being pushed.
        let mut room = 9;
        let attr = |path: &[u8]| *tree.attr(ino(path)).unwrap();
        assert!(
            !to_push(&attr(b"read"), &trace, &mut room),
            "a reader read it first"
        );
        assert!(!to_push(&attr(b""), &trace, &mut room), "a directory");
        assert!(!to_push(&attr(b"s"), &trace, &mut room), "a symlink");
        assert_eq!(room, 9, "what is not pushed takes no room");
        assert!(to_push(&attr(b"unread"), &trace, &mut room));
        assert_eq!(room, 5);
    }
}
