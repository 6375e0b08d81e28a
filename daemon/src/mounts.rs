//! The mount table: one shared read-only FUSE mount per attached workspace
//! version, and the views steps see: read-only bind mounts of it, or
//! overlayfs mounts over it for isolated views.
//!
//! Lifecycle of a version's FUSE mount: created by the first attach of that
//! exact layer stack, under `<state dir>/mnt/<version>`; reference-counted
//! by its views; unmounted with the last detach. Views are recorded in the
//! local database so that a restarted daemon can clear what a dead one left.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use thiserror::Error;
use wsfs_fs::error::StoreError;
use wsfs_fs::fuse::BackgroundSession;
use wsfs_fs::fuse::{mount, WsfsFs};
use wsfs_fs::ids::LayerId;
use wsfs_fs::pagecache::Pusher;
use wsfs_fs::persist::{persist_changes, ChangesRequest, PersistError, PersistOutcome};
use wsfs_fs::prefetch::{decode_trace, prefetch, prefetch_order, trace_key, AccessTrace, Progress};
use wsfs_fs::store::Store;
use wsfs_fs::tree::Tree;
use wsfs_fs::workspace::{self, WorkspaceName};

use crate::sys::{self, OverlayDirs};
use crate::views::{self, resolve_sub_path, Scratch, ViewKind};

/// GETs a prefetch has in flight at once (each up to 8 MiB of frames).
const PREFETCH_THREADS: usize = 4;
/// Manifests of a layer stack fetched at once when a version is attached.
const MANIFESTS_AT_ONCE: usize = 16;
/// How many of the first files to prefetch the log names.
const PREFETCH_LOGGED: usize = 5;

/// Why a mount operation failed; each names the path or workspace.
#[derive(Debug, Error)]
pub enum MountError {
    /// A mountpoint that cannot be used.
    #[error("mountpoint {0}: {1}")]
    BadMountpoint(PathBuf, String),
    /// A request that makes no sense as given.
    #[error("{0}")]
    BadRequest(String),
    /// A sub-path that is not a directory of the workspace.
    #[error("sub-path {0:?}: {1}")]
    BadSubPath(String, String),
    /// The workspace has no layer.
    #[error("workspace {0} does not exist: persist to it first (`wsfs ls` lists workspaces)")]
    NoWorkspace(WorkspaceName),
    /// A path that is not one of this daemon's views.
    #[error("{0} is not a wsfs mount (`wsfs status` lists the mounts)")]
    NotMounted(PathBuf),
    /// Persisting a view that cannot change.
    #[error(
        "{0} is a read-only view: it has no changes to persist (attach with --view isolated to persist \
         a step's changes); nothing was detached"
    )]
    ReadOnlyView(PathBuf),
    /// Processes keep the view busy.
    #[error("{0} is busy: used by {1}; stop them or leave the directory, then detach again")]
    Busy(PathBuf, String),
    /// An isolated view cannot keep its changes in this directory.
    #[error(
        "upper dir {upper}: {why}; give --upper-dir a writable directory on a local disk file system \
         such as ext4, xfs, btrfs or tmpfs"
    )]
    UpperDir {
        /// The directory.
        upper: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// Persisting an isolated view's changes failed; the view is kept.
    #[error("persisting the changes of {mountpoint} failed: {error}; {kept}")]
    Persist {
        /// The view.
        mountpoint: PathBuf,
        /// Why.
        error: Box<PersistError>,
        /// Where the changes are now.
        kept: String,
    },
    /// A mount or unmount call failed.
    #[error("{0}: {1}")]
    System(PathBuf, std::io::Error),
    /// The store failed (remote unreachable, corrupt manifest...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One workspace version's FUSE mount.
struct Shared {
    path: PathBuf,
    session: BackgroundSession,
    tree: Arc<Tree>,
    workspace: WorkspaceName,
    views: usize,
    /// Which files its readers read first.
    trace: Arc<AccessTrace>,
    /// Reads in flight (a prefetch waits for them).
    busy: Arc<AtomicUsize>,
    /// The prefetch of the whole version, once a view asked for one.
    prefetch: Option<Prefetching>,
}

/// A version's prefetch, and the thread pushing what it fetched into the
/// page cache.
struct Prefetching {
    progress: Arc<Progress>,
    pusher: Pusher,
}

/// A view: where a step sees a workspace.
#[derive(Clone, Debug)]
pub struct View {
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The workspace.
    pub workspace: WorkspaceName,
    /// The exact layer stack shown.
    pub layers: Vec<LayerId>,
    /// Short name of the layer stack.
    pub version: String,
    /// Regular files and bytes of the version.
    pub totals: (u64, u64),
    /// Read-only or isolated.
    pub kind: ViewKind,
    /// The workspace directory shown at the mountpoint (empty: the root).
    pub sub_path: Vec<u8>,
    /// An isolated view's private directory.
    pub scratch: Option<Scratch>,
    /// The mountpoint was created by attach (and is removed by detach).
    created: bool,
    /// `detach --persist` is writing its changes: unmounted, not yet gone.
    pub detaching: bool,
    /// Where the access trace of the view's readers is kept (`--prefetch-key`,
    /// default the workspace name).
    pub prefetch_key: String,
    /// The prefetch of the view's version, if one was asked for.
    pub prefetch: Option<Arc<Progress>>,
}

impl View {
    /// Where the view's FUSE mount shows its root.
    fn lower(&self, shared: &Path) -> PathBuf {
        if self.sub_path.is_empty() {
            shared.to_path_buf()
        } else {
            shared.join(std::ffi::OsStr::from_bytes(&self.sub_path))
        }
    }
}

/// A version's FUSE mount as `status` shows it.
pub struct SharedInfo {
    /// The version.
    pub version: String,
    /// Its workspace.
    pub workspace: WorkspaceName,
    /// Where the FUSE file system is mounted.
    pub path: PathBuf,
    /// Views using it.
    pub views: usize,
}

/// What to attach, and how.
pub struct AttachRequest<'a> {
    /// The workspace.
    pub workspace: &'a WorkspaceName,
    /// An empty directory, or a path to create.
    pub mountpoint: &'a Path,
    /// Read-only or isolated.
    pub kind: ViewKind,
    /// The workspace directory to show (normalized; empty: the root).
    pub sub_path: Vec<u8>,
    /// Where an isolated view keeps its changes (default: the state dir).
    pub upper_dir: Option<&'a Path>,
    /// Fetch the whole version in the background, in the order of the trace
    /// kept under `prefetch_key`.
    pub prefetch: bool,
    /// Where the access trace is read from and written to (default: the workspace name).
    pub prefetch_key: Option<&'a str>,
}

#[derive(Default)]
struct Table {
    shared: HashMap<String, Shared>,
    views: BTreeMap<PathBuf, View>,
}

/// The daemon's mounts.
pub struct Mounts {
    store: Arc<Store>,
    /// Where versions' FUSE mounts go.
    dir: PathBuf,
    /// Where isolated views keep their changes unless told otherwise.
    scratch_dir: PathBuf,
    /// Where discarded views' directories are deleted in the background.
    trash_dir: PathBuf,
    /// This host's name, for workspace records.
    host: String,
    table: Mutex<Table>,
}

/// How a view is recorded in the local database: whether attach created
/// the mountpoint, then an isolated view's private directory.
fn mount_record(view: &View) -> Vec<u8> {
    let mut record = vec![if view.created { b'1' } else { b'0' }];
    if let Some(scratch) = &view.scratch {
        record.extend_from_slice(scratch.dir.as_os_str().as_encoded_bytes());
    }
    record
}

impl Mounts {
    /// A table with no mounts, after clearing what a previous daemon left behind.
    pub fn recover(store: Arc<Store>, state_dir: &Path, host: String) -> Result<Mounts, StoreError> {
        let dir = state_dir.join("mnt");
        let scratch_dir = state_dir.join("views");
        for (key, value) in store.db().mounts()? {
            let mountpoint = PathBuf::from(std::ffi::OsStr::from_bytes(&key));
            // Only what is still a wsfs mount: the path may hold something else by now.
            if sys::is_wsfs_mount(&mountpoint) {
                tracing::info!(mountpoint = %mountpoint.display(), "clearing a view left by a previous daemon");
                let _ = sys::unmount(&mountpoint, true);
            }
            if value.first() == Some(&b'1') {
                let _ = std::fs::remove_dir(&mountpoint);
            }
            if value.len() > 1 {
                let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&value[1..]));
                Scratch { dir }.remove();
            }
            store.db().delete_mount(&key)?;
        }
        if let Ok(mounts) = sys::mounts() {
            for m in mounts.iter().filter(|m| m.point.starts_with(&dir) && m.is_wsfs()) {
                let _ = sys::unmount(&m.point, true);
            }
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        views::remove_all(&scratch_dir);
        let trash_dir = state_dir.join("trash");
        if let Ok(entries) = std::fs::read_dir(&trash_dir) {
            let left: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            std::thread::spawn(move || left.iter().for_each(|dir| views::remove_all(dir)));
        }
        Ok(Mounts {
            store,
            dir,
            scratch_dir,
            trash_dir,
            host,
            table: Mutex::new(Table::default()),
        })
    }

    /// Attaches a view of `req.workspace` at `req.mountpoint`.
    pub fn attach(&self, req: &AttachRequest<'_>) -> Result<View, MountError> {
        let started = Instant::now();
        let ws = req.workspace;
        if req.kind == ViewKind::ReadOnly && req.upper_dir.is_some() {
            return Err(MountError::BadRequest(
                "--upper-dir is only for isolated views: add --view isolated, or drop --upper-dir".into(),
            ));
        }
        // The remote and the tree are dealt with outside the table lock, so a
        // slow remote never stalls `status`, `detach` or other attaches.
        let layers = workspace::layers(&self.store, ws)?;
        if layers.is_empty() {
            return Err(MountError::NoWorkspace(ws.clone()));
        }
        let version = workspace::version(&layers);
        let mounted = self
            .table
            .lock()
            .unwrap()
            .shared
            .get(&version)
            .map(|s| s.tree.clone());
        let tree = match mounted {
            Some(tree) => tree,
            None => Arc::new(self.build_tree(&layers)?),
        };
        let root_ino = resolve_sub_path(&tree, &req.sub_path)?;
        let mut table = self.table.lock().unwrap();
        check_outside_views(&table, req.mountpoint, "mountpoint")?;
        if req.mountpoint.starts_with(&self.dir) || req.mountpoint.starts_with(&self.scratch_dir) {
            return Err(MountError::BadMountpoint(
                req.mountpoint.into(),
                "is inside the daemon's state dir: choose a directory outside it".into(),
            ));
        }
        if let Some(upper) = req.upper_dir {
            check_outside_views(&table, upper, "--upper-dir")?;
            if !upper.is_dir() {
                return Err(MountError::UpperDir {
                    upper: upper.into(),
                    why: "is not an existing directory".into(),
                });
            }
            if upper.starts_with(req.mountpoint) {
                return Err(MountError::BadRequest(format!(
                    "--upper-dir {} is inside the mountpoint: choose a directory outside it",
                    upper.display()
                )));
            }
        }
        let created = prepare_mountpoint(req.mountpoint)?;
        let mut attach = || -> Result<View, MountError> {
            if !table.shared.contains_key(&version) {
                let shared = self.mount_version(ws, &version, tree.clone())?;
                table.shared.insert(version.clone(), shared);
            }
            let shared = table.shared.get_mut(&version).expect("inserted above");
            let mut view = View {
                mountpoint: req.mountpoint.to_path_buf(),
                workspace: ws.clone(),
                layers: layers.clone(),
                version: version.clone(),
                totals: tree.totals(),
                kind: req.kind,
                sub_path: req.sub_path.clone(),
                scratch: None,
                created,
                detaching: false,
                prefetch_key: req.prefetch_key.map_or_else(|| ws.to_string(), str::to_string),
                prefetch: None,
            };
            let mounted = match req.kind {
                ViewKind::ReadOnly => sys::bind_read_only(&view.lower(&shared.path), req.mountpoint)
                    .map_err(|e| MountError::System(req.mountpoint.into(), e)),
                ViewKind::Isolated => {
                    let base = req.upper_dir.unwrap_or(&self.scratch_dir);
                    mount_new_isolated(&mut view, &shared.path, base, &tree, root_ino)
                }
            };
            let recorded = mounted.and_then(|()| {
                let key = req.mountpoint.as_os_str().as_encoded_bytes();
                self.store.db().put_mount(key, &mount_record(&view)).map_err(|e| {
                    let _ = sys::unmount(req.mountpoint, true);
                    if let Some(scratch) = &view.scratch {
                        scratch.remove();
                    }
                    MountError::from(e)
                })
            });
            if let Err(e) = recorded {
                if shared.views == 0 {
                    close_shared(table.shared.remove(&version).expect("present"), false);
                }
                return Err(e);
            }
            shared.views += 1;
            if req.prefetch && shared.prefetch.is_none() {
                shared.prefetch = Some(self.start_prefetch(shared, &view.prefetch_key));
            }
            view.prefetch = shared.prefetch.as_ref().map(|p| p.progress.clone());
            table.views.insert(req.mountpoint.to_path_buf(), view.clone());
            Ok(view)
        };
        let attached = attach();
        match &attached {
            Ok(view) => tracing::info!(
                workspace = %ws,
                mountpoint = %req.mountpoint.display(),
                version = %view.version,
                view = %view.kind,
                ms = started.elapsed().as_millis() as u64,
                "attached"
            ),
            Err(_) if created => {
                let _ = std::fs::remove_dir(req.mountpoint);
            }
            Err(_) => {}
        }
        attached
    }

    /// Fetches the manifests of `layers` and merges them into an inode table.
    fn build_tree(&self, layers: &[LayerId]) -> Result<Tree, MountError> {
        let started = Instant::now();
        // One round trip for a stack of layers, not one per layer.
        let mut manifests = Vec::with_capacity(layers.len());
        for group in layers.chunks(MANIFESTS_AT_ONCE) {
            let fetched: Vec<_> = std::thread::scope(|scope| {
                let fetching: Vec<_> = group
                    .iter()
                    .map(|l| scope.spawn(|| self.store.manifest(l)))
                    .collect();
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

    /// Mounts the FUSE file system of one workspace version.
    fn mount_version(
        &self,
        ws: &WorkspaceName,
        version: &str,
        tree: Arc<Tree>,
    ) -> Result<Shared, MountError> {
        let path = self.dir.join(version);
        std::fs::create_dir_all(&path).map_err(|e| MountError::System(path.clone(), e))?;
        let source: Arc<dyn wsfs_fs::tree::ChunkSource> = self.store.clone();
        let fsname = format!("{}{ws}", sys::WSFS_SOURCE_PREFIX);
        let trace = Arc::new(AccessTrace::new(tree.inodes()));
        let busy = Arc::new(AtomicUsize::new(0));
        let fs = WsfsFs::new(tree.clone(), source, trace.clone(), busy.clone());
        let session = mount(fs, &path, &fsname).map_err(|e| MountError::System(path.clone(), e))?;
        Ok(Shared {
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

    /// Starts fetching a version's files in the background: first those of
    /// the trace kept under `key` (the order readers read them last time),
    /// then the rest; each fetched file is pushed into the page cache.
    fn start_prefetch(&self, shared: &Shared, key: &str) -> Prefetching {
        let progress = Arc::new(Progress::default());
        *progress.state.lock().unwrap() = "starting".into();
        let source: Arc<dyn wsfs_fs::tree::ChunkSource> = self.store.clone();
        let pusher = Pusher::spawn(
            shared.session.notifier(),
            shared.path.clone(),
            shared.tree.clone(),
            source,
            shared.trace.clone(),
            progress.clone(),
        );
        let queue = pusher.queue();
        let (store, tree, busy, done) = (
            self.store.clone(),
            shared.tree.clone(),
            shared.busy.clone(),
            progress.clone(),
        );
        let key = trace_key(key);
        std::thread::spawn(move || {
            let stored = match store.remote().get(&key) {
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
            let source: &dyn wsfs_fs::tree::ChunkSource = store.as_ref();
            let state = prefetch(&tree, source, &order, &busy, &done, PREFETCH_THREADS, &|ino| {
                queue.push(ino)
            });
            tracing::info!(key, state, "prefetch fetched");
            queue.finish(state);
        });
        Prefetching { progress, pusher }
    }

    /// Keeps the access trace of `view`'s version under the view's prefetch
    /// key, for the next `attach --prefetch` (nothing when nothing was read).
    fn save_trace(&self, view: &View, shared_trace: &AccessTrace, tree: &Tree) {
        // A remote known to be down would hold up detach (and shutdown) for nothing.
        if self.store.remote().health().down_since.is_some() {
            return;
        }
        let Some(bytes) = shared_trace.encode(tree) else {
            return;
        };
        let key = trace_key(&view.prefetch_key);
        match self.store.remote().put(&key, bytes.into()) {
            Ok(()) => tracing::info!(key, "kept the access trace"),
            Err(e) => tracing::warn!(key, error = %e, "cannot keep the access trace"),
        }
    }

    /// Detaches the view at `mountpoint`. `persist`: first turn an isolated
    /// view's changes into a layer of its workspace (returned with it) (when that fails, the view
    /// stays attached with its changes). `force`: detach lazily even when busy.
    pub fn detach(
        &self,
        mountpoint: &Path,
        persist: bool,
        force: bool,
    ) -> Result<Option<(WorkspaceName, PersistOutcome)>, MountError> {
        let (view, tree, trace, in_use) = {
            let mut table = self.table.lock().unwrap();
            let Some(view) = table.views.get_mut(mountpoint) else {
                return Err(MountError::NotMounted(mountpoint.into()));
            };
            if view.detaching {
                return Err(MountError::BadRequest(format!(
                    "{} is being detached: its changes are being persisted; wait for that `wsfs detach` to finish",
                    mountpoint.display()
                )));
            }
            if persist && view.scratch.is_none() {
                return Err(MountError::ReadOnlyView(mountpoint.into()));
            }
            let in_use = unmount_view(mountpoint, force)?;
            // While its changes are persisted, the view stays in the table
            // (nothing may be attached inside it, a second detach is refused).
            view.detaching = persist;
            let view = view.clone();
            if !persist {
                table.views.remove(mountpoint);
            }
            let shared = &table.shared[&view.version];
            (view, shared.tree.clone(), shared.trace.clone(), in_use)
        };
        self.save_trace(&view, &trace, &tree);
        let outcome = match (persist, &view.scratch) {
            (true, Some(scratch)) => {
                let outcome = self.persist_view(&view, scratch, &tree)?;
                self.table.lock().unwrap().views.remove(mountpoint);
                Some((view.workspace.clone(), outcome))
            }
            _ => None,
        };
        self.forget(&view, force, in_use);
        tracing::info!(mountpoint = %mountpoint.display(), persisted = outcome.is_some(), "detached");
        Ok(outcome)
    }

    /// Persists an unmounted isolated view's changes; on failure mounts it again.
    fn persist_view(
        &self,
        view: &View,
        scratch: &Scratch,
        tree: &Tree,
    ) -> Result<PersistOutcome, MountError> {
        let upper = scratch.upper();
        let request = ChangesRequest {
            upper: &upper,
            base: tree,
            base_layers: &view.layers,
            sub_path: &view.sub_path,
            workspace: &view.workspace,
            host: &self.host,
        };
        let error = match persist_changes(&self.store, &request, &mut |_| {}) {
            Ok(outcome) => {
                tracing::info!(
                    mountpoint = %view.mountpoint.display(),
                    workspace = %view.workspace,
                    layer = %outcome.layer,
                    files = outcome.files,
                    deleted = outcome.deleted,
                    overrode = outcome.overrode.len(),
                    "persisted an isolated view"
                );
                return Ok(outcome);
            }
            Err(e) => e,
        };
        tracing::warn!(mountpoint = %view.mountpoint.display(), error = %error, "persisting a view failed");
        let mut table = self.table.lock().unwrap();
        let remounted = mount_isolated(view, &table.shared[&view.version].path, scratch);
        if let Some(kept) = table.views.get_mut(&view.mountpoint) {
            kept.detaching = false;
        }
        let kept = match remounted {
            Ok(()) => "the view is still attached with its changes: fix the cause and run `wsfs detach --persist` \
                       again, or `wsfs detach` to discard them"
                .to_string(),
            // Still in the table and the mount record: a later `detach
            // --persist` persists the upper directory without the mount.
            Err(e) => format!(
                "the view could not be mounted again ({e}), but its changes are kept in {}: fix the cause and \
                 run `wsfs detach --persist` again, or `wsfs detach` to discard them",
                upper.display()
            ),
        };
        Err(MountError::Persist {
            mountpoint: view.mountpoint.clone(),
            error: Box::new(error),
            kept,
        })
    }

    /// Forgets an unmounted view: its record, scratch directory, created
    /// mountpoint, and its share of the version's FUSE mount. `lazy` (at
    /// shutdown): the daemon is about to stop, so the scratch directory is
    /// deleted before this returns, unless processes still use the lazily
    /// detached view (`in_use`): then it is left for the next daemon to delete.
    fn forget(&self, view: &View, lazy: bool, in_use: bool) {
        let key = view.mountpoint.as_os_str().as_encoded_bytes();
        if in_use {
            tracing::warn!(mountpoint = %view.mountpoint.display(), "detached lazily while in use");
        } else if let Err(e) = self.store.db().delete_mount(key) {
            tracing::warn!(mountpoint = %view.mountpoint.display(), error = %e, "cannot drop the view's record");
        }
        match &view.scratch {
            Some(_) if in_use => {}
            Some(scratch) if lazy => scratch.remove(),
            Some(scratch) => scratch.discard(&self.trash_dir),
            None => {}
        }
        if view.created && !in_use {
            let _ = std::fs::remove_dir(&view.mountpoint);
        }
        self.release(&view.version, lazy);
    }

    /// Drops one view's share of a version's FUSE mount; the last unmounts it.
    fn release(&self, version: &str, lazy: bool) {
        let mut table = self.table.lock().unwrap();
        let last = table.shared.get_mut(version).map(|s| {
            s.views -= 1;
            s.views == 0
        });
        if last == Some(true) {
            close_shared(table.shared.remove(version).expect("present"), lazy);
        }
    }

    /// Every view, by mountpoint.
    pub fn views(&self) -> Vec<View> {
        self.table.lock().unwrap().views.values().cloned().collect()
    }

    /// Every version's FUSE mount.
    pub fn shared(&self) -> Vec<SharedInfo> {
        let table = self.table.lock().unwrap();
        let mut out: Vec<SharedInfo> = table
            .shared
            .iter()
            .map(|(version, s)| SharedInfo {
                version: version.clone(),
                workspace: s.workspace.clone(),
                path: s.path.clone(),
                views: s.views,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Detaches everything (lazily where busy; isolated views' changes are
    /// discarded); returns how many views there were.
    pub fn detach_all(&self) -> usize {
        let views = self.views();
        for view in &views {
            if view.scratch.is_some() {
                tracing::warn!(mountpoint = %view.mountpoint.display(), "discarding the changes of an isolated view");
            }
            if let Err(e) = self.detach(&view.mountpoint, false, true) {
                tracing::error!(mountpoint = %view.mountpoint.display(), error = %e, "cannot detach");
            }
        }
        views.len()
    }
}

/// Refuses a path inside one of the views: wsfs does not stack views.
fn check_outside_views(table: &Table, path: &Path, what: &str) -> Result<(), MountError> {
    match table.views.keys().find(|v| path.starts_with(v)) {
        Some(view) if view == path => Err(MountError::BadRequest(format!(
            "{what} {} is already a wsfs view: `wsfs detach` it first",
            path.display()
        ))),
        Some(view) => Err(MountError::BadRequest(format!(
            "{what} {} is inside the wsfs view {}: choose a directory outside every view",
            path.display(),
            view.display()
        ))),
        None => Ok(()),
    }
}

/// Creates an isolated view's scratch directory under `base` and mounts the
/// view; sets `view.scratch` on success, leaves nothing behind on failure.
fn mount_new_isolated(
    view: &mut View,
    shared: &Path,
    base: &Path,
    tree: &Tree,
    root_ino: u64,
) -> Result<(), MountError> {
    let meta = tree
        .entry(root_ino, Vec::new())
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .meta;
    let scratch = Scratch::create(base, &meta)?;
    match mount_isolated(view, shared, &scratch) {
        Ok(()) => {
            view.scratch = Some(scratch);
            Ok(())
        }
        Err(e) => {
            scratch.remove();
            Err(e)
        }
    }
}

/// File system types overlayfs refuses as upper directory.
fn refused_upper(fstype: &str) -> bool {
    [
        "fuse", "overlay", "nfs", "cifs", "smb", "9p", "ceph", "squashfs", "iso9660", "erofs",
    ]
    .iter()
    .any(|t| fstype.starts_with(t))
}

/// Mounts an isolated view: overlayfs over the view's part of the version's
/// FUSE mount (at `shared`), changes going to `scratch`.
fn mount_isolated(view: &View, shared: &Path, scratch: &Scratch) -> Result<(), MountError> {
    let (lower, upper, work) = (view.lower(shared), scratch.upper(), scratch.work());
    let dirs = OverlayDirs {
        lower: &lower,
        upper: &upper,
        work: &work,
    };
    let source = format!("{}{}", sys::WSFS_SOURCE_PREFIX, view.workspace);
    sys::mount_overlay(&source, &dirs, &view.mountpoint).map_err(|error| {
        let fstype = sys::fs_type_of(&upper).unwrap_or_else(|| "unknown".into());
        if error.raw_os_error() == Some(libc::EPERM) {
            let why =
                format!("overlayfs mount refused ({error}): wsfsd must run as root to mount isolated views");
            MountError::System(view.mountpoint.clone(), std::io::Error::other(why))
        } else if refused_upper(&fstype) {
            let why = format!("overlayfs refuses upper dirs on {fstype} file systems ({error})");
            MountError::UpperDir { upper, why }
        } else {
            let why = format!("overlayfs mount failed ({error}); `dmesg | grep overlayfs` tells why");
            MountError::System(view.mountpoint.clone(), std::io::Error::other(why))
        }
    })
}

/// Unmounts a view's mountpoint, naming what holds it when busy. `force`:
/// a busy view is detached lazily instead; returns whether that happened.
fn unmount_view(mountpoint: &Path, force: bool) -> Result<bool, MountError> {
    match sys::unmount(mountpoint, false) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && force => {
            sys::unmount(mountpoint, true).map_err(|e| MountError::System(mountpoint.into(), e))?;
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let holders = sys::holders(mountpoint);
            let who = if holders.is_empty() {
                "another process".to_string()
            } else {
                holders.join(", ")
            };
            Err(MountError::Busy(mountpoint.into(), who))
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(mountpoint = %mountpoint.display(), "view was already unmounted");
            Ok(false)
        }
        Err(e) => Err(MountError::System(mountpoint.into(), e)),
    }
}

/// Checks that `mountpoint` is an empty directory, creating it when missing;
/// returns whether it was created.
fn prepare_mountpoint(mountpoint: &Path) -> Result<bool, MountError> {
    let bad = |why: &str| MountError::BadMountpoint(mountpoint.into(), why.to_string());
    match std::fs::symlink_metadata(mountpoint) {
        Ok(meta) if !meta.is_dir() => Err(bad("is not a directory: give an empty directory")),
        Ok(_) => {
            let mut entries = std::fs::read_dir(mountpoint).map_err(|e| bad(&e.to_string()))?;
            if entries.next().is_some() {
                return Err(bad(
                    "is not empty: give an empty directory (nothing is mounted over files)",
                ));
            }
            if sys::mounts().is_ok_and(|all| all.iter().any(|m| m.point == mountpoint)) {
                return Err(bad("is already a mount point"));
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(mountpoint).map_err(|e| bad(&format!("cannot create it: {e}")))?;
            Ok(true)
        }
        Err(e) => Err(bad(&e.to_string())),
    }
}

/// Unmounts a version's FUSE mount. `lazy`: processes may still use files of
/// a lazily detached view, so the mount is detached lazily too and its
/// threads, which serve until the last user is gone, are joined off this thread.
fn close_shared(shared: Shared, lazy: bool) {
    let Shared {
        path,
        session,
        prefetch,
        ..
    } = shared;
    if let Some(Prefetching { progress, pusher }) = prefetch {
        progress.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        pusher.stop();
    }
    if lazy {
        let _ = sys::unmount(&path, true);
        std::thread::spawn(move || drop(session));
    } else if let Err(e) = session.umount_and_join() {
        tracing::warn!(path = %path.display(), error = %e, "unmounting lazily");
        let _ = sys::unmount(&path, true);
    }
    let _ = std::fs::remove_dir(&path);
}
