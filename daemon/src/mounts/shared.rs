//! One workspace version, shared by the views of that version: its inode
//! table, access trace and prefetch, and the FUSE mounts serving it (one
//! under the state dir for root, whose views are binds and overlays of it;
//! one per view for an ordinary user's daemon), each mounted fresh or
//! taken over from a previous daemon through the holder.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use wsfs_fs::cow::CowFs;
use wsfs_fs::fuse::{self, BackgroundSession, Filesystem, Notifier, Readers, Shown, WsfsFs};
use wsfs_fs::ids::LayerId;
use wsfs_fs::keys;
use wsfs_fs::pagecache::Pusher;
use wsfs_fs::prefetch::{decode_trace, prefetch, prefetch_order, read_trace, AccessTrace, PrefetchProgress};
use wsfs_fs::store::Store;
use wsfs_fs::tree::{ChunkSource, Tree};
use wsfs_fs::workspace::WorkspaceName;
use wsfs_holder::Link;

use crate::mount_error::MountError;
use crate::sys;
use crate::views::Scratch;

/// GETs a prefetch has in flight at once (each up to 8 MiB of frames).
const PREFETCH_THREADS: usize = 4;
/// Manifests of a layer stack fetched at once when a version is attached
/// (fewer when memory is short).
const MANIFESTS_AT_ONCE: usize = 16;
/// How many of the first files to prefetch the log names.
const PREFETCH_LOGGED: usize = 5;

/// One workspace version, as its views show it.
pub(super) struct SharedMount {
    /// Root's FUSE mount of the whole version under the state dir, which
    /// its views bind or overlay; none in an ordinary user's daemon, whose
    /// views are FUSE mounts of their own.
    pub mount: Option<FuseMount>,
    pub tree: Arc<Tree>,
    pub workspace: WorkspaceName,
    pub views: usize,
    /// Which files its readers read first.
    pub trace: Arc<AccessTrace>,
    /// Reads in flight (a prefetch waits for them).
    busy: Arc<AtomicUsize>,
    /// The prefetch of the version, once a view was attached.
    pub prefetch: Option<Prefetching>,
}

/// A version's prefetch, and the thread pushing what it fetched into the
/// page cache (of a mount showing the whole version, when there is one).
pub(super) struct Prefetching {
    pub progress: Arc<PrefetchProgress>,
    pusher: Option<Pusher>,
    /// It fetches the whole version (`attach --prefetch`), not only the traced files.
    pub whole_tree: bool,
}

impl Prefetching {
    /// Stops fetching and pushing.
    pub fn stop(self) {
        self.progress
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(pusher) = self.pusher {
            pusher.stop();
        }
    }
}

/// How a FUSE connection comes to be served.
pub(super) enum Connection {
    /// Mount it now.
    New,
    /// Serve the one a previous daemon mounted (its descriptor, from the holder).
    Adopt(OwnedFd),
}

/// A FUSE mount this daemon serves, kept by the holder (if any) under
/// `key` so that it outlives this process.
pub(super) struct FuseMount {
    pub path: PathBuf,
    key: String,
    session: BackgroundSession,
}

impl FuseMount {
    /// Serves `fs` at `path`, mounting it (named `fsname`, read-only or
    /// not) or adopting a previous daemon's connection; has the holder keep
    /// the connection under `key`.
    pub fn open(
        link: Option<&Link>,
        key: &str,
        fsname: &str,
        path: PathBuf,
        fs: impl Filesystem + 'static,
        read_only: bool,
        connection: Connection,
    ) -> Result<FuseMount, MountError> {
        let system = |e| MountError::System(path.clone(), e);
        let session = match connection {
            Connection::New => {
                let fd = sys::mount_fuse(fsname, &path, read_only).map_err(system)?;
                let kept = fd.try_clone().map_err(system)?;
                let session = fuse::serve(fs, fd).map_err(|e| {
                    let _ = sys::unmount(&path, true);
                    system(e)
                })?;
                if let Some(link) = link {
                    if let Err(e) = link.hold(key, kept.as_fd()) {
                        tracing::warn!(key, error = %e, "the holder cannot keep this mount: it will not outlive this daemon");
                    }
                }
                session
            }
            Connection::Adopt(fd) => fuse::adopt(fs, fd).map_err(system)?,
        };
        Ok(FuseMount {
            path,
            key: key.to_string(),
            session,
        })
    }

    /// Sends notifications to the kernel about this mount.
    pub fn notifier(&self) -> Notifier {
        self.session.notifier()
    }

    /// Lets go of a mount already unmounted (`lazily`: processes may still
    /// use its files, so its threads, which serve until the last user is
    /// gone, are joined off this thread) and has the holder let go of it.
    pub fn end(self, link: Option<&Link>, lazily: bool) {
        let FuseMount { path, key, session } = self;
        if let Some(link) = link {
            if let Err(e) = link.release(&key) {
                tracing::warn!(key, error = %e, "cannot tell the holder to let go of a mount");
            }
        }
        if lazily {
            std::thread::spawn(move || drop(session.join()));
        } else if let Err(e) = session.join() {
            tracing::warn!(path = %path.display(), error = %e, "FUSE session ended badly");
        }
    }

    /// Unmounts it (lazily when busy or asked) and lets go of it.
    pub fn close(self, link: Option<&Link>, lazy: bool) {
        let unmounted = sys::unmount(&self.path, lazy).or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "unmounting lazily");
            sys::unmount(&self.path, true)
        });
        self.end(link, lazy || unmounted.is_err());
    }
}

/// The name of a wsfs mount of `ws` in the mount table.
pub(super) fn fsname(ws: &WorkspaceName) -> String {
    format!("{}{ws}", sys::WSFS_SOURCE_PREFIX)
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
    // A layer twice in a row (an unchanged tree persisted again lands the
    // same layer) shows what it shows once: its manifest is fetched once.
    let mut layers = layers.to_vec();
    layers.dedup();
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
    /// A version of `ws` showing `tree`; root's serves it at `path` (under
    /// the state dir), mounted or adopted as `connection` says, kept by the
    /// holder under the version's name.
    pub fn open(
        store: &Arc<Store>,
        link: Option<&Link>,
        ws: &WorkspaceName,
        version: &str,
        mount: Option<(PathBuf, Connection)>,
        tree: Arc<Tree>,
    ) -> Result<SharedMount, MountError> {
        let mut shared = SharedMount {
            mount: None,
            trace: Arc::new(AccessTrace::new(tree.inodes())),
            busy: Arc::new(AtomicUsize::new(0)),
            tree,
            workspace: ws.clone(),
            views: 0,
            prefetch: None,
        };
        if let Some((path, connection)) = mount {
            if let Connection::New = connection {
                std::fs::create_dir_all(&path).map_err(|e| MountError::System(path.clone(), e))?;
            }
            let fs = shared.fs(store, Shown::WHOLE);
            let mount = FuseMount::open(link, version, &fsname(ws), path, fs, true, connection)?;
            shared.mount = Some(mount);
        }
        Ok(shared)
    }

    /// What the version's mounts tell the daemon: one trace and one count
    /// of reads in flight for all its views.
    fn readers(&self, store: &Store) -> Readers {
        Readers {
            trace: self.trace.clone(),
            busy: self.busy.clone(),
            metrics: store.metrics().fuse.clone(),
        }
    }

    /// A read-only file system serving this version as `shown`.
    pub fn fs(&self, store: &Arc<Store>, shown: Shown) -> WsfsFs {
        let source: Arc<dyn ChunkSource> = store.clone();
        WsfsFs::new(self.tree.clone(), shown, source, self.readers(store))
    }

    /// A copy-on-write file system serving this version as `shown`, its
    /// changes in `scratch` (which may hold an earlier daemon's).
    pub fn cow_fs(&self, store: &Arc<Store>, shown: Shown, scratch: &Scratch) -> std::io::Result<CowFs> {
        let source: Arc<dyn ChunkSource> = store.clone();
        let (upper, work) = (scratch.upper(), scratch.work());
        CowFs::new(self.tree.clone(), shown, source, upper, work, self.readers(store))
    }

    /// Starts fetching the version's files in the background: first those of
    /// the trace kept under `key` (the order readers read them last time),
    /// then (`whole_tree`) the rest; each fetched file is pushed into the
    /// page cache of a mount showing the whole version, if there is one:
    /// root's, else `whole_view`, a view's own. A prefetch running already stops.
    pub fn start_prefetch(
        &mut self,
        store: &Arc<Store>,
        key: &str,
        whole_view: Option<&FuseMount>,
        whole_tree: bool,
    ) {
        if let Some(running) = self.prefetch.take() {
            running.stop();
        }
        let progress = Arc::new(PrefetchProgress::default());
        // A prefetch of traced files only shows once there are some.
        if whole_tree {
            *progress.state.lock().unwrap() = "starting".into();
        }
        let source: Arc<dyn ChunkSource> = store.clone();
        let pusher = self.mount.as_ref().or(whole_view).map(|mount| {
            Pusher::spawn(
                mount.notifier(),
                mount.path.clone(),
                self.tree.clone(),
                source,
                self.trace.clone(),
                progress.clone(),
            )
        });
        let queue = pusher.as_ref().map(Pusher::queue);
        let (store, tree, busy, done) = (
            store.clone(),
            self.tree.clone(),
            self.busy.clone(),
            progress.clone(),
        );
        let (prefetch_key, key) = (key.to_string(), keys::trace(key));
        std::thread::spawn(move || {
            let stored = match read_trace(&store, &prefetch_key) {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot read the access trace: prefetching in tree order");
                    Default::default()
                }
            };
            let trace = decode_trace(&stored);
            let order = prefetch_order(&tree, &trace, whole_tree);
            if order.is_empty() && !whole_tree {
                // Nothing traced: no prefetch to show (its state stays empty).
                if let Some(queue) = &queue {
                    queue.finish(String::new());
                }
                return;
            }
            let first: Vec<u64> = order.iter().take(PREFETCH_LOGGED).copied().collect();
            let paths = tree.paths_of(&first.iter().copied().collect());
            let first: Vec<String> = first
                .iter()
                .filter_map(|i| paths.get(i))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            tracing::info!(key, traced = trace.len(), files = order.len(), first = %first.join(", "), "prefetching");
            if let Some(queue) = &queue {
                queue.plan(&order);
            }
            let source: &dyn ChunkSource = store.as_ref();
            let state = prefetch(&tree, source, &order, &busy, &done, PREFETCH_THREADS, &|ino| {
                if let Some(queue) = &queue {
                    queue.push(ino)
                }
            });
            let fetched = done.first_fetched().join(", ");
            tracing::info!(key, state, first = %fetched, "prefetch fetched");
            match &queue {
                Some(queue) => queue.finish(state),
                None => *done.state.lock().unwrap() = state,
            }
        });
        self.prefetch = Some(Prefetching {
            progress,
            pusher,
            whole_tree,
        });
    }

    /// Stops its prefetch, and unmounts root's FUSE mount of it (`lazy`:
    /// processes may still use files of a lazily detached view, so the
    /// mount is detached lazily too) and has the holder let go of it.
    pub fn close(self, link: Option<&Link>, lazy: bool) {
        if let Some(prefetch) = self.prefetch {
            prefetch.stop();
        }
        if let Some(mount) = self.mount {
            let path = mount.path.clone();
            mount.close(link, lazy);
            let _ = std::fs::remove_dir(&path);
        }
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
