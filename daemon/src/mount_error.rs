//! Why a mount operation failed.

use std::path::PathBuf;

use thiserror::Error;
use wsfs_fs::error::StoreError;
use wsfs_fs::persist::PersistError;
use wsfs_fs::workspace::WorkspaceName;

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
    /// The caller may not do this (see `peer`).
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// A mount or unmount call failed.
    #[error("{0}: {1}")]
    System(PathBuf, std::io::Error),
    /// The store failed (remote unreachable, corrupt manifest...).
    #[error(transparent)]
    Store(#[from] StoreError),
}
