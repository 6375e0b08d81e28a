//! One workspace version's FUSE mount, shared by the views of that version:
//! mounted fresh, or taken over from a previous daemon through the holder.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use wsfs_fs::fuse::{self, BackgroundSession, WsfsFs};
use wsfs_fs::ids::LayerId;
use wsfs_fs::pagecache::Pusher;
use wsfs_fs::prefetch::{decode_trace, prefetch, prefetch_order, trace_key, AccessTrace, PrefetchProgress};
use wsfs_fs::store::Store;
use wsfs_fs::tree::{ChunkSource, Tree};
use wsfs_fs::workspace::WorkspaceName;
use wsfs_holder::Link;

use crate::mount_error::MountError;
use crate::sys;

/// GETs a prefetch has in flight at once (each up to 8 MiB of frames).
const PREFETCH_THREADS: usize = 4;
/// Manifests of a layer stack fetched at once when a version is attached
/// (fewer when memory is short).
const MANIFESTS_AT_ONCE: usize = 16;
/// How many of the first files to prefetch the log names.
const PREFETCH_LOGGED: usize = 5;
/// Largest access trace read (the paths of a few million files).
const MAX_TRACE_LEN: u64 = 256 << 20;

/// One workspace version's FUSE mount.
pub(super) struct SharedMount {
    pub path: PathBuf,
    session: BackgroundSession,
    pub tree: Arc<Tree>,
    pub workspace: WorkspaceName,
    pub views: usize,
    /// Which files its readers read first.
    pub trace: Arc<AccessTrace>,
    /// Reads in flight (a prefetch waits for them).
    busy: Arc<AtomicUsize>,
    /// The prefetch of the whole version, once a view asked for one.
    pub prefetch: Option<Prefetching>,
}

/// A version's prefetch, and the thread pushing what it fetched into the
/// page cache.
pub(super) struct Prefetching {
    pub progress: Arc<PrefetchProgress>,
    pusher: Pusher,
}

/// How a version's FUSE connection comes to be served.
pub(super) enum Connection {
    /// Mount it now.
    New,
    /// Serve the one a previous daemon mounted (its descriptor, from the holder).
    Adopt(OwnedFd),
}

/// Fetches the manifests of `layers` and merges them into an inode table:
/// the same stack always gives the same inode numbers.
pub(super) fn build_tree(store: &Store, layers: &[LayerId]) -> Result<Tree, MountError> {
    let started = Instant::now();
    // One round trip for a stack of layers, not one per layer; but no more
    // at once than half of the memory left could hold at their largest
    // (the object and its decoded body).
    let largest = 2 * wsfs_fs::manifest::MAX_OBJECT_LEN;
    let at_once = (wsfs_fs::memory::available() / 2 / largest).clamp(1, MANIFESTS_AT_ONCE as u64) as usize;
    let mut manifests = Vec::with_capacity(layers.len());
    for group in layers.chunks(at_once) {
        let fetched: Vec<_> = std::thread::scope(|scope| {
            let fetching: Vec<_> = group.iter().map(|l| scope.spawn(|| store.manifest(l))).collect();
            fetching
                .into_iter()
                .map(|f| f.join().expect("a manifest fetch panicked"))
                .collect()
        });
        for manifest in fetched {
            manifests.push(manifest?);
        }
    }
    let fetched = started.elapsed();
    let tree = Tree::build(&manifests);
    tracing::info!(
        manifests_ms = fetched.as_millis() as u64,
        tree_ms = (started.elapsed() - fetched).as_millis() as u64,
        inodes = tree.inodes(),
        "built tree"
    );
    Ok(tree)
}

impl SharedMount {
    /// Serves the FUSE file system of one workspace version at `path`,
    /// mounting it or adopting a previous daemon's connection, and has the
    /// holder (if any) keep its connection under the version's name.
    pub fn open(
        store: &Arc<Store>,
        link: Option<&Link>,
        ws: &WorkspaceName,
        version: &str,
        path: PathBuf,
        tree: Arc<Tree>,
        connection: Connection,
    ) -> Result<SharedMount, MountError> {
        let source: Arc<dyn ChunkSource> = store.clone();
        let trace = Arc::new(AccessTrace::new(tree.inodes()));
        let busy = Arc::new(AtomicUsize::new(0));
        let fs = WsfsFs::new(
            tree.clone(),
            source,
            trace.clone(),
            busy.clone(),
            store.metrics().fuse.clone(),
        );
        let system = |e| MountError::System(path.clone(), e);
        let session = match connection {
            Connection::New => {
                std::fs::create_dir_all(&path).map_err(system)?;
                let fsname = format!("{}{ws}", sys::WSFS_SOURCE_PREFIX);
                let (session, fd) = fuse::mount(fs, &path, &fsname).map_err(system)?;
                if let Some(link) = link {
                    if let Err(e) = link.hold(version, fd.as_fd()) {
                        tracing::warn!(version, error = %e, "the holder cannot keep this mount: it will not outlive this daemon");
                    }
                }
                session
            }
            Connection::Adopt(fd) => fuse::adopt(fs, fd).map_err(system)?,
        };
        Ok(SharedMount {
            path,
            session,
            tree,
            workspace: ws.clone(),
            views: 0,
            trace,
            busy,
            prefetch: None,
        })
    }

    /// Starts fetching the version's files in the background: first those of
    /// the trace kept under `key` (the order readers read them last time),
    /// then the rest; each fetched file is pushed into the page cache.
    pub fn start_prefetch(&mut self, store: &Arc<Store>, key: &str) {
        let progress = Arc::new(PrefetchProgress::default());
        *progress.state.lock().unwrap() = "starting".into();
        let source: Arc<dyn ChunkSource> = store.clone();
        let pusher = Pusher::spawn(
            self.session.notifier(),
            self.path.clone(),
            self.tree.clone(),
            source,
            self.trace.clone(),
            progress.clone(),
        );
        let queue = pusher.queue();
        let (store, tree, busy, done) = (
            store.clone(),
            self.tree.clone(),
            self.busy.clone(),
            progress.clone(),
        );
        let key = trace_key(key);
        std::thread::spawn(move || {
            let stored = match store.remote().get(&key, MAX_TRACE_LEN) {
                Ok(stored) => stored.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot read the access trace: prefetching in tree order");
                    Default::default()
                }
            };
            let trace = decode_trace(&stored);
            let order = prefetch_order(&tree, &trace);
            let first: Vec<u64> = order.iter().take(PREFETCH_LOGGED).copied().collect();
            let paths = tree.paths_of(&first.iter().copied().collect());
            let first: Vec<String> = first
                .iter()
                .filter_map(|i| paths.get(i))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            tracing::info!(key, traced = trace.len(), files = order.len(), first = %first.join(", "), "prefetching");
            queue.plan(&order);
            let source: &dyn ChunkSource = store.as_ref();
            let state = prefetch(&tree, source, &order, &busy, &done, PREFETCH_THREADS, &|ino| {
                queue.push(ino)
            });
            let fetched = done.first_fetched().join(", ");
            tracing::info!(key, state, first = %fetched, "prefetch fetched");
            queue.finish(state);
        });
        self.prefetch = Some(Prefetching { progress, pusher });
    }

    /// Unmounts the version's FUSE mount and has the holder let go of it.
    /// `lazy`: processes may still use files of a lazily detached view, so
    /// the mount is detached lazily too and its threads, which serve until
    /// the last user is gone, are joined off this thread.
    pub fn close(self, link: Option<&Link>, version: &str, lazy: bool) {
        let SharedMount {
            path,
            session,
            prefetch,
            ..
        } = self;
        if let Some(Prefetching { progress, pusher }) = prefetch {
            progress.stop.store(true, std::sync::atomic::Ordering::Relaxed);
            pusher.stop();
        }
        let unmounted = sys::unmount(&path, lazy).or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "unmounting lazily");
            sys::unmount(&path, true)
        });
        if let Some(link) = link {
            if let Err(e) = link.release(version) {
                tracing::warn!(version, error = %e, "cannot tell the holder to let go of a mount");
            }
        }
        match unmounted {
            Ok(()) if !lazy => {
                if let Err(e) = session.join() {
                    tracing::warn!(path = %path.display(), error = %e, "FUSE session ended badly");
                }
            }
            _ => {
                std::thread::spawn(move || drop(session.join()));
            }
        }
        let _ = std::fs::remove_dir(&path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn architecture_quotes_the_prefetch_concurrency() {
        let doc = include_str!("../../../ARCHITECTURE.md");
        let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let phrase = format!("{} GETs at a time", super::PREFETCH_THREADS);
        assert!(
            doc.contains(&phrase),
            "ARCHITECTURE.md does not say {phrase:?}: update it or the code"
        );
    }
}
