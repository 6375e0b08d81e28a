//! What a view needs besides its version's shared FUSE mount: its kind, its
//! sub-path, and for an isolated view a private directory holding the
//! overlayfs upper and work directories.

use std::fmt;
use std::fs::{self, File, FileTimes};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wsfs_fs::manifest::{manifest_path, system_time, Meta, RelativePathError};
use wsfs_fs::tree::{NodeType, Tree};

use crate::mount_error::MountError;

/// How a step sees a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewKind {
    /// Writes fail with `EROFS`.
    ReadOnly,
    /// Copy-on-write: writes are private to the view and may be persisted.
    Isolated,
}

impl FromStr for ViewKind {
    type Err = MountError;
    fn from_str(s: &str) -> Result<Self, MountError> {
        match s {
            "" | "read-only" => Ok(ViewKind::ReadOnly),
            "isolated" => Ok(ViewKind::Isolated),
            other => Err(MountError::BadRequest(format!(
                "unknown view kind {other:?}: use read-only or isolated"
            ))),
        }
    }
}

impl fmt::Display for ViewKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViewKind::ReadOnly => "read-only",
            ViewKind::Isolated => "isolated",
        })
    }
}

/// A sub-path as given, checked and normalized (`a/./b/` → `a/b`; empty: the root).
pub fn parse_sub_path(text: &str) -> Result<Vec<u8>, MountError> {
    manifest_path(Path::new(text)).map_err(|e| {
        let why = match e {
            RelativePathError::ParentDir => "contains '..': give a directory inside the workspace",
            RelativePathError::Absolute => "is absolute: give it relative to the workspace root (e.g. docs)",
        };
        MountError::BadSubPath(text.to_string(), why.to_string())
    })
}

/// The inode of the directory `sub_path` in `tree`, reached without
/// following symlinks.
pub fn resolve_sub_path(tree: &Tree, sub_path: &[u8]) -> Result<u64, MountError> {
    let shown = String::from_utf8_lossy(sub_path).into_owned();
    let mut ino = wsfs_fs::tree::ROOT_INO;
    let mut walked: Vec<&[u8]> = Vec::new();
    for part in sub_path.split(|&c| c == b'/').filter(|p| !p.is_empty()) {
        walked.push(part);
        let here = String::from_utf8_lossy(&walked.join(&b'/')).into_owned();
        let attr = tree.lookup(ino, part).ok().flatten().ok_or_else(|| {
            MountError::BadSubPath(shown.clone(), format!("{here} does not exist in the workspace"))
        })?;
        match attr.kind {
            NodeType::Dir => ino = attr.ino,
            NodeType::Symlink => {
                return Err(MountError::BadSubPath(
                    shown.clone(),
                    format!("{here} is a symlink: a sub-path must be a path of directories"),
                ))
            }
            NodeType::File => {
                return Err(MountError::BadSubPath(
                    shown.clone(),
                    format!("{here} is not a directory"),
                ))
            }
        }
    }
    Ok(ino)
}

/// An isolated view's private directory: `upper/` holds its changes,
/// `work/` is overlayfs's scratch space. Removed with the view.
#[derive(Clone, Debug)]
pub struct Scratch {
    /// The directory holding both.
    pub dir: PathBuf,
}

impl Scratch {
    /// Creates a fresh scratch directory under `base`, its upper directory's
    /// root looking like the view's root (`meta`): overlayfs shows the upper
    /// root's own attributes at the view's root.
    pub fn create(base: &Path, meta: &Meta) -> Result<Scratch, MountError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = wsfs_fs::unix_time::since_epoch(SystemTime::now()).as_nanos();
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("wsfs-view-{nanos:x}-{}-{id}", std::process::id()));
        let scratch = Scratch { dir };
        let made = (|| {
            fs::create_dir_all(base)?;
            fs::create_dir(&scratch.dir)?;
            fs::set_permissions(&scratch.dir, fs::Permissions::from_mode(0o700))?;
            fs::create_dir(scratch.work())?;
            fs::create_dir(scratch.upper())?;
            copy_meta(&scratch.upper(), meta)
        })();
        made.map_err(|e| {
            scratch.remove();
            MountError::UpperDir {
                upper: base.to_path_buf(),
                why: format!("cannot create the view's directories in it ({e})"),
            }
        })?;
        Ok(scratch)
    }

    /// Where the view's changes are.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// Overlayfs's work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Deletes the directory and everything in it.
    pub fn remove(&self) {
        remove_all(&self.dir);
    }

    /// Deletes the directory without making the caller wait: it is moved into
    /// `trash` (when on the same file system) and deleted there on a thread of
    /// its own. A view's upper directory may hold thousands of files, and a
    /// detach should not wait for their unlinks. Whatever a stopped daemon
    /// left in `trash` goes when the next one starts.
    pub fn discard(&self, trash: &Path) {
        let name = self.dir.file_name().unwrap_or_default();
        let target = trash.join(name);
        let moved = fs::create_dir_all(trash).and_then(|()| fs::rename(&self.dir, &target));
        match moved {
            Ok(()) => {
                std::thread::spawn(move || remove_all(&target));
            }
            Err(_) => self.remove(),
        }
    }
}

/// Deletes `dir` and everything in it; a directory already gone is fine.
pub fn remove_all(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an isolated view's directory");
        }
    }
}

/// Whether an xattr of a manifest may be set on an upper directory:
/// `trusted.*` steers overlayfs itself (a forged `trusted.overlay.redirect`
/// could show other directories), `user.overlay.*` wsfs's own copy-on-write
/// views alike, and `security.*` the kernel's security modules
/// (capabilities, SELinux labels); whoever wrote the bucket must not reach
/// any.
fn settable_xattr(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.")
        || name.starts_with(b"security.")
        || name.starts_with(wsfs_fs::cow::OVERLAY_XATTRS))
}

/// Gives `dir` the mode, xattrs (but [`settable_xattr`]'s) and mtime of
/// `meta`, and its owner when the daemon may give files away (root).
fn copy_meta(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    if crate::sys::privileged() {
        std::os::unix::fs::chown(dir, Some(meta.uid), Some(meta.gid))?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode))?;
    for (name, value) in meta.xattrs.iter().filter(|(name, _)| settable_xattr(name)) {
        xattr::set(dir, std::ffi::OsStr::from_bytes(name), value)?;
    }
    let mtime = system_time(meta.mtime_sec, meta.mtime_nsec);
    File::open(dir)?.set_times(FileTimes::new().set_modified(mtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest's `trusted.*`, `security.*` and `user.overlay.*` xattrs
    /// never reach an upper root; `user.*` ones do.
    #[test]
    fn an_upper_root_gets_only_user_xattrs_of_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime_sec: 1,
            mtime_nsec: 0,
            xattrs: vec![
                (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
                (b"trusted.overlay.redirect".to_vec(), b"/etc".to_vec()),
                (b"user.overlay.opaque".to_vec(), b"y".to_vec()),
                (b"user.kept".to_vec(), b"1".to_vec()),
            ],
        };
        copy_meta(dir.path(), &meta).unwrap();
        let mut names: Vec<_> = xattr::list(dir.path()).unwrap().collect();
        names.retain(|n| !n.to_string_lossy().starts_with("security.selinux"));
        assert_eq!(names, ["user.kept"]);
    }

    #[test]
    fn sub_paths_are_normalized_or_refused() {
        assert_eq!(parse_sub_path("").unwrap(), b"");
        assert_eq!(parse_sub_path("./docs//api/").unwrap(), b"docs/api");
        for bad in ["../x", "a/../b", "/abs"] {
            assert!(
                matches!(parse_sub_path(bad), Err(MountError::BadSubPath(..))),
                "{bad}"
            );
        }
    }

    #[test]
    fn view_kinds_parse() {
        assert_eq!("".parse::<ViewKind>().unwrap(), ViewKind::ReadOnly);
        assert_eq!("isolated".parse::<ViewKind>().unwrap().to_string(), "isolated");
        let err = "rw".parse::<ViewKind>().unwrap_err().to_string();
        assert!(err.contains("read-only or isolated"), "{err}");
    }
}
