//! The mount table: one shared read-only FUSE mount per attached workspace
//! version, and the views (read-only bind mounts) that steps see.
//!
//! Lifecycle of a version's FUSE mount: created by the first attach of that
//! exact layer stack, under `<state dir>/mnt/<version>`; reference-counted
//! by its views; unmounted with the last detach. Views are recorded in the
//! local database so that a restarted daemon can clear what a dead one left.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use thiserror::Error;
use wsfs_fs::error::StoreError;
use wsfs_fs::fuse::BackgroundSession;
use wsfs_fs::fuse::{mount, WsfsFs};
use wsfs_fs::ids::LayerId;
use wsfs_fs::store::Store;
use wsfs_fs::tree::Tree;
use wsfs_fs::workspace::{self, WorkspaceName};

use crate::sys;

/// Why a mount operation failed; each names the path or workspace.
#[derive(Debug, Error)]
pub enum MountError {
    /// A mountpoint that cannot be used.
    #[error("mountpoint {0}: {1}")]
    BadMountpoint(PathBuf, String),
    /// The workspace has no layer.
    #[error("workspace {0} does not exist: persist to it first (`wsfs ls` lists workspaces)")]
    NoWorkspace(WorkspaceName),
    /// A path that is not one of this daemon's views.
    #[error("{0} is not a wsfs mount (`wsfs status` lists the mounts)")]
    NotMounted(PathBuf),
    /// Processes keep the view busy.
    #[error("{0} is busy: used by {1}; stop them or leave the directory, then detach again")]
    Busy(PathBuf, String),
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
    views: usize,
    /// Regular files and bytes of the version.
    totals: (u64, u64),
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
    /// Regular files and bytes in the view.
    pub totals: (u64, u64),
    /// The mountpoint was created by attach (and is removed by detach).
    created: bool,
}

#[derive(Default)]
struct Table {
    shared: HashMap<String, Shared>,
    views: BTreeMap<PathBuf, View>,
}

/// The daemon's mounts.
pub struct Mounts {
    store: Arc<Store>,
    dir: PathBuf,
    table: Mutex<Table>,
}

impl Mounts {
    /// A table with no mounts, after clearing what a previous daemon left behind.
    pub fn recover(store: Arc<Store>, state_dir: &Path) -> Result<Mounts, StoreError> {
        let dir = state_dir.join("mnt");
        for (key, value) in store.db().mounts()? {
            let mountpoint = PathBuf::from(String::from_utf8_lossy(&key).into_owned());
            // Only what is still a wsfs mount: the path may hold something else by now.
            if sys::is_wsfs_mount(&mountpoint) {
                tracing::info!(mountpoint = %mountpoint.display(), "clearing a view left by a previous daemon");
                let _ = sys::unmount(&mountpoint, true);
            }
            if value.first() == Some(&b'1') {
                let _ = std::fs::remove_dir(&mountpoint);
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
        Ok(Mounts {
            store,
            dir,
            table: Mutex::new(Table::default()),
        })
    }

    /// Attaches `ws` read-only at `mountpoint` (an empty directory, created if missing).
    pub fn attach(&self, ws: &WorkspaceName, mountpoint: &Path) -> Result<View, MountError> {
        let started = Instant::now();
        // The remote and the tree are dealt with outside the table lock, so a
        // slow remote never stalls `status`, `detach` or other attaches.
        let layers = workspace::layers(&self.store, ws)?;
        if layers.is_empty() {
            return Err(MountError::NoWorkspace(ws.clone()));
        }
        let version = workspace::version(&layers);
        let mounted = self.table.lock().unwrap().shared.contains_key(&version);
        let mut tree = if mounted {
            None
        } else {
            Some(self.build_tree(&layers)?)
        };
        let mut table = self.table.lock().unwrap();
        if table.views.contains_key(mountpoint) {
            return Err(MountError::BadMountpoint(
                mountpoint.into(),
                "is already a wsfs mount".into(),
            ));
        }
        let created = prepare_mountpoint(mountpoint)?;
        let mut attach = || -> Result<View, MountError> {
            if !table.shared.contains_key(&version) {
                // Its last view may have gone while the tree was being built.
                let tree = match tree.take() {
                    Some(tree) => tree,
                    None => self.build_tree(&layers)?,
                };
                let shared = self.mount_version(ws, &version, tree)?;
                table.shared.insert(version.clone(), shared);
            }
            let shared = table.shared.get_mut(&version).expect("inserted above");
            if let Err(e) = sys::bind_read_only(&shared.path, mountpoint) {
                if shared.views == 0 {
                    close_shared(table.shared.remove(&version).expect("present"), false);
                }
                return Err(MountError::System(mountpoint.into(), e));
            }
            shared.views += 1;
            let view = View {
                mountpoint: mountpoint.to_path_buf(),
                workspace: ws.clone(),
                layers: layers.clone(),
                version: version.clone(),
                totals: shared.totals,
                created,
            };
            let record: &[u8] = if created { b"1" } else { b"0" };
            self.store
                .db()
                .put_mount(mountpoint.as_os_str().as_encoded_bytes(), record)?;
            table.views.insert(mountpoint.to_path_buf(), view.clone());
            Ok(view)
        };
        let attached = attach();
        match &attached {
            Ok(view) => tracing::info!(
                workspace = %ws,
                mountpoint = %mountpoint.display(),
                version = %view.version,
                ms = started.elapsed().as_millis() as u64,
                "attached"
            ),
            Err(_) if created => {
                let _ = std::fs::remove_dir(mountpoint);
            }
            Err(_) => {}
        }
        attached
    }

    /// Fetches the manifests of `layers` and merges them into an inode table.
    fn build_tree(&self, layers: &[LayerId]) -> Result<Tree, MountError> {
        let started = Instant::now();
        let manifests = layers
            .iter()
            .map(|l| self.store.manifest(l))
            .collect::<Result<Vec<_>, _>>()?;
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
    fn mount_version(&self, ws: &WorkspaceName, version: &str, tree: Tree) -> Result<Shared, MountError> {
        let path = self.dir.join(version);
        std::fs::create_dir_all(&path).map_err(|e| MountError::System(path.clone(), e))?;
        let totals = tree.totals();
        let source: Arc<dyn wsfs_fs::tree::ChunkSource> = self.store.clone();
        let fsname = format!("{}{ws}", sys::WSFS_SOURCE_PREFIX);
        let session = mount(WsfsFs::new(Arc::new(tree), source), &path, &fsname)
            .map_err(|e| MountError::System(path.clone(), e))?;
        Ok(Shared {
            path,
            session,
            views: 0,
            totals,
        })
    }

    /// Detaches the view at `mountpoint`; `force` detaches it lazily even when busy.
    pub fn detach(&self, mountpoint: &Path, force: bool) -> Result<(), MountError> {
        let mut table = self.table.lock().unwrap();
        let Some(view) = table.views.get(mountpoint).cloned() else {
            return Err(MountError::NotMounted(mountpoint.into()));
        };
        match sys::unmount(mountpoint, force) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let holders = sys::holders(mountpoint);
                let who = if holders.is_empty() {
                    "another process".to_string()
                } else {
                    holders.join(", ")
                };
                return Err(MountError::Busy(mountpoint.into(), who));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(mountpoint = %mountpoint.display(), "view was already unmounted");
            }
            Err(e) => return Err(MountError::System(mountpoint.into(), e)),
        }
        table.views.remove(mountpoint);
        self.store
            .db()
            .delete_mount(mountpoint.as_os_str().as_encoded_bytes())?;
        if view.created {
            let _ = std::fs::remove_dir(mountpoint);
        }
        let last = table.shared.get_mut(&view.version).map(|s| {
            s.views -= 1;
            s.views == 0
        });
        if last == Some(true) {
            close_shared(table.shared.remove(&view.version).expect("present"), force);
        }
        tracing::info!(mountpoint = %mountpoint.display(), "detached");
        Ok(())
    }

    /// Every view, by mountpoint.
    pub fn views(&self) -> Vec<View> {
        self.table.lock().unwrap().views.values().cloned().collect()
    }

    /// Detaches everything (lazily where busy); returns how many views there were.
    pub fn detach_all(&self) -> usize {
        let views = self.views();
        for view in &views {
            if let Err(e) = self.detach(&view.mountpoint, true) {
                tracing::error!(mountpoint = %view.mountpoint.display(), error = %e, "cannot detach");
            }
        }
        views.len()
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
    let Shared { path, session, .. } = shared;
    if lazy {
        let _ = sys::unmount(&path, true);
        std::thread::spawn(move || drop(session));
    } else if let Err(e) = session.umount_and_join() {
        tracing::warn!(path = %path.display(), error = %e, "unmounting lazily");
        let _ = sys::unmount(&path, true);
    }
    let _ = std::fs::remove_dir(&path);
}
