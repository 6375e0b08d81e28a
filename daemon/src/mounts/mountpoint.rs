//! Mounting and unmounting a view at its mountpoint: checks of the
//! mountpoint; as root, bind mounts for read-only views and overlayfs for
//! isolated ones; in an ordinary user's daemon, a FUSE mount of the view's
//! own.
//!
//! A mountpoint is opened once, without following a symlink at its end,
//! checked through that descriptor (a directory, owned by the view's owner),
//! and mounted on through `/proc/self/fd`: a directory swapped for a symlink
//! after the checks is never followed, so a user cannot have a view mounted
//! over a directory it does not own.

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wsfs_fs::error::StoreError;
use wsfs_fs::fuse::Shown;
use wsfs_fs::os::as_caller;
use wsfs_fs::persist::Caller;
use wsfs_fs::store::Store;
use wsfs_fs::tree::Tree;
use wsfs_holder::Link;

use super::shared::{fsname, Connection, FuseMount, SharedMount};
use super::{Table, View};
use crate::mount_error::MountError;
use crate::sys::{self, OverlayDirs};
use crate::views::{resolve_sub_path, Scratch};

/// Refuses a path inside one of the views: wsfs does not stack views.
pub(super) fn check_outside_views(table: &Table, path: &Path, what: &str) -> Result<(), MountError> {
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

/// Mounts `view` at its mountpoint. As root, over its version's FUSE
/// mount: a read-only bind of its part, or overlayfs with its changes in
/// its scratch directory. In an ordinary user's daemon (no such mount), a
/// FUSE mount of its own, returned: it is new or, as `connection` says,
/// the one a previous daemon served.
pub(super) fn mount_view(
    view: &View,
    shared: &SharedMount,
    store: &Arc<Store>,
    link: Option<&Link>,
    connection: Connection,
) -> Result<Option<FuseMount>, MountError> {
    let Some(mount) = &shared.mount else {
        return own_mount(view, shared, store, link, connection).map(Some);
    };
    let target = Opened::open(&view.mountpoint, view.owner)?;
    match &view.scratch {
        None => sys::bind_read_only(&view.lower(&mount.path), &target.fd)
            .map_err(|e| MountError::System(view.mountpoint.clone(), e))?,
        Some(scratch) => mount_isolated(view, &mount.path, scratch, &target)?,
    }
    Ok(None)
}

/// The FUSE mount of a view of an ordinary user's daemon: its part of the
/// version, every entry shown as the user's (it may read them all, and
/// could not give a file to anyone else); an isolated view's is
/// read-write, copy-on-write into its scratch directory ([`wsfs_fs::cow`]).
fn own_mount(
    view: &View,
    shared: &SharedMount,
    store: &Arc<Store>,
    link: Option<&Link>,
    connection: Connection,
) -> Result<FuseMount, MountError> {
    let shown = Shown {
        root: resolve_sub_path(&shared.tree, &view.sub_path)?,
        // SAFETY: geteuid and getegid have no preconditions.
        owner: Some(unsafe { (libc::geteuid(), libc::getegid()) }),
    };
    let key = view_key(&view.mountpoint);
    let (path, name) = (view.mountpoint.clone(), fsname(&view.workspace));
    match &view.scratch {
        None => FuseMount::open(link, &key, &name, path, shared.fs(store, shown), true, connection),
        Some(scratch) => {
            let fs = shared
                .cow_fs(store, shown, scratch)
                .map_err(|e| MountError::UpperDir {
                    upper: scratch.upper(),
                    why: format!("cannot serve the view's changes from it ({e})"),
                })?;
            FuseMount::open(link, &key, &name, path, fs, false, connection)
        }
    }
}

/// The holder's key for the FUSE mount of the view at `mountpoint`.
pub(super) fn view_key(mountpoint: &Path) -> String {
    let hash = blake3::hash(mountpoint.as_os_str().as_bytes());
    format!("view-{}", &hash.to_hex()[..16])
}

/// A mountpoint opened with `O_PATH | O_NOFOLLOW | O_DIRECTORY`.
struct Opened {
    fd: OwnedFd,
    meta: std::fs::Metadata,
}

impl Opened {
    /// Opens the directory at `path`, which must belong to `owner` unless that is root.
    fn open(path: &Path, owner: u32) -> Result<Opened, MountError> {
        let bad = |why: String| MountError::BadMountpoint(path.into(), why);
        let fd = wsfs_fs::os::open_dir(path, false).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => {
                bad("is not a directory (a symlink?): give an empty directory".into())
            }
            _ => bad(e.to_string()),
        })?;
        let opened = Opened {
            meta: std::fs::metadata(wsfs_fs::os::fd_path(&fd)).map_err(|e| bad(e.to_string()))?,
            fd,
        };
        if owner != 0 && opened.meta.uid() != owner {
            return Err(MountError::Forbidden(format!(
                "mountpoint {} belongs to uid {}, not to uid {owner} who asked: attach on a directory of \
                 your own",
                path.display(),
                opened.meta.uid()
            )));
        }
        Ok(opened)
    }

    /// The path that reaches exactly this directory.
    fn path(&self) -> PathBuf {
        wsfs_fs::os::fd_path(&self.fd)
    }
}

/// A new isolated view's scratch directory under `base`, its upper root
/// looking like the view's root (inode `root_ino` of `tree`).
pub(super) fn new_scratch(base: &Path, tree: &Tree, root_ino: u64) -> Result<Scratch, MountError> {
    let meta = tree
        .entry(root_ino, Vec::new())
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .meta;
    Scratch::create(base, &meta)
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
fn mount_isolated(view: &View, shared: &Path, scratch: &Scratch, target: &Opened) -> Result<(), MountError> {
    let (lower, upper, work) = (view.lower(shared), scratch.upper(), scratch.work());
    let dirs = OverlayDirs {
        lower: &lower,
        upper: &upper,
        work: &work,
    };
    let source = format!("{}{}", sys::WSFS_SOURCE_PREFIX, view.workspace);
    sys::mount_overlay(&source, &dirs, &target.path()).map_err(|error| {
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
pub(super) fn unmount_view(mountpoint: &Path, force: bool) -> Result<bool, MountError> {
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

/// Checks that `mountpoint` is an empty directory, of `caller`'s when one
/// is given, creating it when missing (with `caller`'s credentials: where
/// it could not create it, neither can the daemon); returns whether it was created.
pub(super) fn prepare_mountpoint(mountpoint: &Path, caller: Option<&Caller>) -> Result<bool, MountError> {
    let bad = |why: &str| MountError::BadMountpoint(mountpoint.into(), why.to_string());
    let created = match std::fs::symlink_metadata(mountpoint) {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            as_caller(caller, || std::fs::create_dir_all(mountpoint))
                .and_then(|created| created)
                .map_err(|e| bad(&format!("cannot create it: {e}")))?;
            true
        }
        Err(e) => return Err(bad(&e.to_string())),
    };
    let checked = (|| {
        let opened = Opened::open(mountpoint, caller.map_or(0, |c| c.uid))?;
        let mut entries = std::fs::read_dir(opened.path()).map_err(|e| bad(&e.to_string()))?;
        if entries.next().is_some() {
            return Err(bad(
                "is not empty: give an empty directory (nothing is mounted over files)",
            ));
        }
        if sys::mounts().is_ok_and(|all| all.iter().any(|m| m.point == mountpoint)) {
            return Err(bad("is already a mount point"));
        }
        Ok(())
    })();
    if checked.is_err() && created {
        let _ = std::fs::remove_dir(mountpoint);
    }
    checked.map(|()| created)
}
