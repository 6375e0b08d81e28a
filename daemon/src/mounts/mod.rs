//! The mount table: one shared read-only FUSE mount per attached workspace
//! version, and the views steps see: read-only bind mounts of it, or
//! overlayfs mounts over it for isolated views. An ordinary user's daemon,
//! which may not bind or mount overlayfs, gives each view a FUSE mount of
//! its own instead (through `fusermount3`), sharing the version's inode
//! table, trace and prefetch.
//!
//! Lifecycle of a version's FUSE mount: created by the first attach of that
//! exact layer stack, under `<state dir>/mnt/<version>`; reference-counted
//! by its views; unmounted with the last detach. Its `/dev/fuse` descriptor
//! (and each own mount's) is kept by the holder too, so the mount outlives
//! this process. Each view
//! is recorded in the local database before anyone can see it ([`record`]),
//! so that the next daemon takes every view over ([`recover`]).

mod mountpoint;
mod record;
mod recover;
mod shared;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wsfs_fs::ids::LayerId;
use wsfs_fs::keys;
use wsfs_fs::persist::layout::Layout;
use wsfs_fs::persist::{persist_changes, Caller, ChangesRequest, PersistOutcome, ROOT_OVERLAY_XATTRS};
use wsfs_fs::prefetch::{AccessTrace, PrefetchProgress};
use wsfs_fs::store::Store;
use wsfs_fs::tree::Tree;
use wsfs_fs::workspace::{self, WorkspaceName};
use wsfs_holder::Link;

use self::mountpoint::{check_outside_views, mount_view, new_scratch, prepare_mountpoint, unmount_view};
use self::record::{ViewRecord, ViewState};
use self::shared::{build_tree, Connection, FuseMount, SharedMount};
use crate::mount_error::MountError;
use crate::views::{resolve_sub_path, Scratch, ViewKind};

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
    /// The user who attached it (0: root).
    owner: u32,
    /// Where it is in its life.
    state: ViewState,
    /// Where the access trace of the view's readers is kept (`--prefetch-key`,
    /// default the workspace name).
    pub prefetch_key: String,
    /// The prefetch of the view's version, if one runs.
    pub prefetch: Option<Arc<PrefetchProgress>>,
    /// It asked for the whole version to be prefetched (`--prefetch`).
    pub whole_prefetch: bool,
    /// What its requester keeps with it (the CSI publication), recorded
    /// with the view so that a new daemon has it too.
    pub note: Option<Vec<u8>>,
}

impl View {
    /// Where the view's FUSE mount shows its root.
    fn lower(&self, shared: &Path) -> PathBuf {
        if self.sub_path.is_empty() {
            shared.to_path_buf()
        } else {
            shared.join(OsStr::from_bytes(&self.sub_path))
        }
    }

    /// Whether its mount shows exactly the version's tree (the whole of it,
    /// unchanged), so that the prefetch may push the tree's pages into it:
    /// not a sub-path, and not an isolated view, whose files may differ.
    fn shows_the_tree(&self) -> bool {
        self.sub_path.is_empty() && self.scratch.is_none()
    }

    /// The view as the mount table keeps it.
    fn record(&self) -> ViewRecord {
        ViewRecord {
            state: self.state,
            workspace: self.workspace.to_string(),
            layers: self.layers.iter().map(LayerId::to_hex).collect(),
            kind: self.kind.to_string(),
            sub_path: self.sub_path.clone(),
            scratch: self
                .scratch
                .as_ref()
                .map(|s| s.dir.as_os_str().as_bytes().to_vec()),
            created: self.created,
            owner: self.owner,
            prefetch_key: self.prefetch_key.clone(),
            prefetch: self.whole_prefetch,
            note: self.note.clone(),
        }
    }
}

/// A version's FUSE mount as `status` shows it.
pub struct SharedInfo {
    /// The version.
    pub version: String,
    /// Its workspace.
    pub workspace: WorkspaceName,
    /// Where the FUSE file system is mounted (none: only its views are,
    /// each on its own, in an ordinary user's daemon).
    pub path: Option<PathBuf>,
    /// Views using it.
    pub views: usize,
}

/// What a view fetches ahead of its readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// Nothing: only what readers miss (`attach --no-prefetch`).
    Off,
    /// The files that the last readers under the view's prefetch key read,
    /// in their order (the default: nothing when no trace is kept).
    Traced,
    /// Those, then the rest of the version (`attach --prefetch`).
    WholeTree,
}

impl Prefetch {
    /// What `--prefetch` and `--no-prefetch` ask for.
    pub fn asked(whole_tree: bool, off: bool) -> Prefetch {
        match (whole_tree, off) {
            (true, _) => Prefetch::WholeTree,
            (false, true) => Prefetch::Off,
            (false, false) => Prefetch::Traced,
        }
    }
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
    /// What to fetch in the background, in the order of the trace kept
    /// under `prefetch_key`.
    pub prefetch: Prefetch,
    /// Where the access trace is read from and written to (default: the workspace name).
    pub prefetch_key: Option<&'a str>,
    /// What to record with the view (see [`View::note`]).
    pub note: Option<Vec<u8>>,
    /// Who asked, when not root: the mountpoint must be its own (or is
    /// created with its credentials), and only it or root may detach.
    pub caller: Option<&'a Caller>,
}

#[derive(Default)]
struct Table {
    shared: HashMap<String, SharedMount>,
    views: BTreeMap<PathBuf, View>,
    /// The views' own FUSE mounts (an ordinary user's daemon), by mountpoint.
    own: HashMap<PathBuf, FuseMount>,
}

impl Table {
    /// Lets go of the own FUSE mount of the view at `mountpoint`, if it has
    /// one, once it is unmounted (`lazily`: it may still be in use).
    fn end_own(&mut self, mountpoint: &Path, link: Option<&Link>, lazily: bool) {
        if let Some(mount) = self.own.remove(mountpoint) {
            mount.end(link, lazily);
        }
    }

    /// Mounts `view` (see [`mount_view`]) and keeps its own FUSE mount, if any.
    fn mount_view(
        &mut self,
        view: &View,
        store: &Arc<Store>,
        link: Option<&Link>,
        connection: Connection,
    ) -> Result<(), MountError> {
        let shared = &self.shared[&view.version];
        if let Some(own) = mount_view(view, shared, store, link, connection)? {
            self.own.insert(view.mountpoint.clone(), own);
        }
        Ok(())
    }
}

/// The daemon's mounts.
pub struct Mounts {
    store: Arc<Store>,
    /// Keeps the FUSE connections across this process's end, when one started it.
    link: Option<Arc<Link>>,
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

impl Mounts {
    /// Writes `view`'s entry in the mount table.
    fn put_record(&self, view: &View) -> Result<(), MountError> {
        let key = view.mountpoint.as_os_str().as_bytes();
        Ok(self.store.db().put_mount(key, &view.record().encode())?)
    }

    /// Removes `mountpoint`'s entry from the mount table.
    fn delete_record(&self, mountpoint: &Path) {
        if let Err(e) = self.store.db().delete_mount(mountpoint.as_os_str().as_bytes()) {
            tracing::warn!(mountpoint = %mountpoint.display(), error = %e, "cannot drop the view's record");
        }
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
            None => Arc::new(build_tree(&self.store, &layers)?),
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
        if let (Some(_), Some(caller)) = (req.upper_dir, req.caller) {
            return Err(MountError::Forbidden(format!(
                "--upper-dir is for root only (uid {} asked): drop it, and the view keeps its changes \
                 in the daemon's state dir",
                caller.uid
            )));
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
        let created = prepare_mountpoint(req.mountpoint, req.caller)?;
        let scratch = match req.kind {
            ViewKind::ReadOnly => None,
            ViewKind::Isolated => {
                let base = req.upper_dir.unwrap_or(&self.scratch_dir);
                match new_scratch(base, &tree, root_ino) {
                    Ok(scratch) => Some(scratch),
                    Err(e) => {
                        if created {
                            let _ = std::fs::remove_dir(req.mountpoint);
                        }
                        return Err(e);
                    }
                }
            }
        };
        let mut view = View {
            mountpoint: req.mountpoint.to_path_buf(),
            workspace: ws.clone(),
            layers: layers.clone(),
            version: version.clone(),
            totals: tree.totals(),
            kind: req.kind,
            sub_path: req.sub_path.clone(),
            scratch,
            created,
            owner: req.caller.map_or(0, |c| c.uid),
            state: ViewState::Mounting,
            prefetch_key: req.prefetch_key.map_or_else(|| ws.to_string(), str::to_string),
            prefetch: None,
            whole_prefetch: req.prefetch == Prefetch::WholeTree,
            note: req.note.clone(),
        };
        let attached = self.mount_new_view(&mut table, &mut view, tree, req.prefetch);
        match &attached {
            Ok(()) => tracing::info!(
                workspace = %ws,
                mountpoint = %req.mountpoint.display(),
                version = %view.version,
                view = %view.kind,
                ms = started.elapsed().as_millis() as u64,
                "attached"
            ),
            Err(_) => {
                if let Some(scratch) = &view.scratch {
                    scratch.remove();
                }
                if created {
                    let _ = std::fs::remove_dir(req.mountpoint);
                }
            }
        }
        attached.map(|()| view)
    }

    /// Records `view` as mounting, mounts it (and its version's FUSE mount
    /// if needed), then records it as attached; on failure leaves no mount
    /// and no record.
    fn mount_new_view(
        &self,
        table: &mut Table,
        view: &mut View,
        tree: Arc<Tree>,
        prefetch: Prefetch,
    ) -> Result<(), MountError> {
        self.put_record(view)?;
        let link = self.link.as_deref();
        let mounted = (|| {
            if !table.shared.contains_key(&view.version) {
                let path = crate::sys::privileged().then(|| (self.dir.join(&view.version), Connection::New));
                let ws = &view.workspace;
                let shared = SharedMount::open(&self.store, link, ws, &view.version, path, tree)?;
                table.shared.insert(view.version.clone(), shared);
            }
            table.mount_view(view, &self.store, link, Connection::New)?;
            view.state = view.state.mounted();
            self.put_record(view).inspect_err(|_| {
                let _ = crate::sys::unmount(&view.mountpoint, true);
                table.end_own(&view.mountpoint, link, true);
            })
        })();
        if let Err(e) = mounted {
            self.delete_record(&view.mountpoint);
            if table.shared.get(&view.version).is_some_and(|s| s.views == 0) {
                let shared = table.shared.remove(&view.version).expect("present");
                shared.close(link, false);
            }
            return Err(e);
        }
        let Table { shared, own, .. } = table;
        let shared = shared.get_mut(&view.version).expect("mounted above");
        shared.views += 1;
        // By default the files the last readers under the view's key read;
        // with `--prefetch`, the whole version.
        let whole_tree = prefetch == Prefetch::WholeTree;
        let started = shared.prefetch.as_ref().map(|p| p.whole_tree);
        if prefetch != Prefetch::Off && started.is_none_or(|whole| whole_tree && !whole) {
            let whole = own.get(&view.mountpoint).filter(|_| view.shows_the_tree());
            shared.start_prefetch(&self.store, &view.prefetch_key, whole, whole_tree);
        }
        view.prefetch = shared.prefetch.as_ref().map(|p| p.progress.clone());
        if view.whole_prefetch {
            // Kept, so that a new daemon prefetches again.
            let _ = self.put_record(view);
        }
        table.views.insert(view.mountpoint.clone(), view.clone());
        Ok(())
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
        let key = keys::trace(&view.prefetch_key);
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
            if !view.state.may_persist() {
                return Err(MountError::BadRequest(format!(
                    "{} is being detached: its changes are being persisted; wait for that `wsfs detach` to finish",
                    mountpoint.display()
                )));
            }
            if persist && view.scratch.is_none() {
                return Err(MountError::ReadOnlyView(mountpoint.into()));
            }
            if persist {
                // Recorded first: a daemon that dies while persisting leaves
                // the view to the next one, which mounts it again.
                view.state = ViewState::Persisting;
                if let Err(e) = self.put_record(view) {
                    view.state = ViewState::Attached;
                    return Err(e);
                }
            }
            let in_use = match unmount_view(mountpoint, force) {
                Ok(in_use) => in_use,
                Err(e) => {
                    if persist {
                        view.state = ViewState::Attached;
                        let _ = self.put_record(view);
                    }
                    return Err(e);
                }
            };
            // While its changes are persisted, the view stays in the table
            // (nothing may be attached inside it, a second detach is refused).
            let view = view.clone();
            table.end_own(mountpoint, self.link.as_deref(), in_use);
            if !persist {
                table.views.remove(mountpoint);
            }
            let shared = &table.shared[&view.version];
            (view, shared.tree.clone(), shared.trace.clone(), in_use)
        };
        self.save_trace(&view, &trace, &tree);
        let outcome = match (persist, &view.scratch) {
            (true, Some(scratch)) => {
                wsfs_fs::crash::point("detach.unmounted");
                let outcome = self.persist_view(&view, scratch, &tree)?;
                wsfs_fs::crash::point("detach.persisted");
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
        // Root's views are kernel overlayfs; an ordinary user's, wsfs's own copy-on-write.
        let overlay_xattrs = match crate::sys::privileged() {
            true => ROOT_OVERLAY_XATTRS,
            false => wsfs_fs::cow::OVERLAY_XATTRS,
        };
        // New files go in the order the view's readers read the last version.
        let layout = Layout::read(&self.store, std::slice::from_ref(&view.prefetch_key));
        let request = ChangesRequest {
            upper: &upper,
            overlay_xattrs,
            base: tree,
            base_layers: &view.layers,
            sub_path: &view.sub_path,
            workspace: &view.workspace,
            host: &self.host,
            layout: &layout,
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
        let remounted = table.mount_view(view, &self.store, self.link.as_deref(), Connection::New);
        if let Some(kept) = table.views.get_mut(&view.mountpoint) {
            kept.state = ViewState::Attached;
            if let Err(e) = self.put_record(kept) {
                tracing::warn!(mountpoint = %kept.mountpoint.display(), error = %e, "cannot record the view");
            }
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
    /// detached view (`in_use`): then it is recorded as discarded, for the
    /// next daemon to delete.
    fn forget(&self, view: &View, lazy: bool, in_use: bool) {
        if in_use {
            tracing::warn!(mountpoint = %view.mountpoint.display(), "detached lazily while in use");
            let mut discarded = view.clone();
            discarded.state = ViewState::Discarded;
            if let Err(e) = self.put_record(&discarded) {
                tracing::warn!(mountpoint = %view.mountpoint.display(), error = %e, "cannot record the view");
            }
        } else {
            self.delete_record(&view.mountpoint);
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
            let shared = table.shared.remove(version).expect("present");
            shared.close(self.link.as_deref(), lazy);
        }
    }

    /// Who attached the view at `mountpoint` (0: root), if it is one.
    pub fn owner_of(&self, mountpoint: &Path) -> Option<u32> {
        self.table.lock().unwrap().views.get(mountpoint).map(|v| v.owner)
    }

    /// Whether the view at `mountpoint` has changes to persist: an isolated
    /// view whose upper directory holds anything (or cannot be read).
    pub fn has_changes(&self, mountpoint: &Path) -> Result<bool, MountError> {
        let table = self.table.lock().unwrap();
        let view = table
            .views
            .get(mountpoint)
            .ok_or_else(|| MountError::NotMounted(mountpoint.into()))?;
        Ok(view.scratch.as_ref().is_some_and(|scratch| {
            std::fs::read_dir(scratch.upper()).map_or(true, |mut entries| entries.next().is_some())
        }))
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
                path: s.mount.as_ref().map(|m| m.path.clone()),
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
