//! The upper directory of a copy-on-write view, in overlayfs's layout (so
//! that `persist_changes` reads it as it reads kernel overlayfs's): a
//! deleted lower entry is a whiteout (a character device 0:0), a directory
//! that replaced a deleted one is opaque (`user.overlay.opaque` = `y`).
//! Entries copied up from the lower tree also carry `user.overlay.origin`,
//! the tree inode they came from, so that they keep its number; persist
//! drops every `user.overlay.*` xattr.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The prefix of the xattrs an unprivileged overlay keeps its bookkeeping
/// in (kernel overlayfs as root uses `trusted.overlay.`).
pub const OVERLAY_XATTRS: &[u8] = b"user.overlay.";
const OPAQUE: &str = "user.overlay.opaque";
const ORIGIN: &str = "user.overlay.origin";
/// The directory of the work directory holding unlinked files still open.
pub(super) const ORPHANS: &str = "orphans";

/// Whether a user of a view may see and set the xattr `name`: `user.*`
/// but the overlay's own.
pub fn user_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") && !name.starts_with(OVERLAY_XATTRS)
}

/// Whether `meta` is a whiteout.
pub(super) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// A `/`-separated path relative to the view's root split into its parent
/// and its name (the root's parent is itself).
pub(super) fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// The upper directory, and a directory beside it for entries being made.
pub(super) struct Upper {
    root: PathBuf,
    work: PathBuf,
    next: AtomicU64,
}

impl Upper {
    /// The upper directory `root`; entries are made in `work` (same file
    /// system) and renamed into place, so that a crash never leaves half
    /// a copy in `root`. What a previous process left in `work` is removed.
    pub fn new(root: PathBuf, work: PathBuf) -> io::Result<Upper> {
        if let Ok(entries) = fs::read_dir(&work) {
            for entry in entries.flatten().filter(|e| e.file_name() != ORPHANS) {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
        fs::create_dir_all(&work)?;
        Ok(Upper {
            root,
            work,
            next: AtomicU64::new(0),
        })
    }

    /// Where `rel` is in the upper directory.
    pub fn path(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        }
    }

    /// The upper entry at `rel`, if any (whiteouts included).
    pub fn stat(&self, rel: &[u8]) -> io::Result<Option<Metadata>> {
        match fs::symlink_metadata(self.path(rel)) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Where unlinked files still open are kept.
    pub fn orphans(&self) -> PathBuf {
        self.work.join(ORPHANS)
    }

    /// A fresh path in the work directory.
    pub fn temp(&self) -> PathBuf {
        self.work
            .join(format!("new-{}", self.next.fetch_add(1, Ordering::Relaxed)))
    }

    /// Puts a whiteout at `rel` (replacing a file there in one step).
    pub fn whiteout(&self, rel: &[u8]) -> io::Result<()> {
        let temp = self.temp();
        crate::os::mknod(&temp, libc::S_IFCHR | 0o600, 0)?;
        fs::rename(&temp, self.path(rel))
    }
}

/// Whether the upper directory at `path` hides the lower one.
pub(super) fn is_opaque(path: &Path) -> bool {
    xattr::get(path, OPAQUE).ok().flatten().as_deref() == Some(b"y")
}

/// Makes the upper directory at `path` hide the lower one.
pub(super) fn set_opaque(path: &Path) -> io::Result<()> {
    xattr::set(path, OPAQUE, b"y")
}

/// The tree inode the upper entry at `path` was copied up from.
pub(super) fn origin(path: &Path) -> Option<u64> {
    let value = xattr::get(path, ORIGIN).ok().flatten()?;
    std::str::from_utf8(&value).ok()?.parse().ok()
}

/// Records that the upper entry at `path` was copied up from tree inode `ino`.
pub(super) fn set_origin(path: &Path, ino: u64) -> io::Result<()> {
    xattr::set(path, ORIGIN, ino.to_string().as_bytes())
}
