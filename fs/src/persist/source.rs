//! Reading the source tree: which paths a persist covers, and their metadata.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::PersistError;
use crate::manifest::{path_cmp, Meta};
use crate::store::db::FileStamp;

/// A path of the source tree relative to the root, ordered like manifest entries.
#[derive(PartialEq, Eq)]
pub struct TreePath(pub Vec<u8>);

impl Ord for TreePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        path_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for TreePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One path of the source with its metadata (not following symlinks).
pub struct Source {
    /// Absolute path.
    pub abs: PathBuf,
    /// `lstat` of it.
    pub meta: Metadata,
    /// Its ownership, permissions, mtime and extended attributes, as a layer keeps them.
    pub attrs: Meta,
}

impl Source {
    /// Reads the extended attributes of `abs`, whose `lstat` is `meta`.
    fn new(abs: PathBuf, meta: Metadata) -> Result<Source, PersistError> {
        let attrs = attrs_of(&abs, &meta)?;
        Ok(Source { abs, meta, attrs })
    }
}

/// The paths a persist covers, in manifest order.
pub type SourceTree = BTreeMap<TreePath, Source>;

pub(super) fn source_err(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Source {
        path: path.to_path_buf(),
        source,
    }
}

fn bad_path(path: &Path, why: String) -> PersistError {
    PersistError::BadPath {
        path: path.display().to_string(),
        why,
    }
}

/// Collects the root, each requested path with its ancestors, and everything
/// below requested directories.
pub fn collect(root: &Path, paths: &[PathBuf]) -> Result<SourceTree, PersistError> {
    let mut tree = SourceTree::new();
    add(root, &[], &mut tree)?;
    for path in paths {
        let rel = relative_path(root, path)?;
        add_ancestors(root, &rel, path, &mut tree)?;
        walk(root, &rel, &mut tree)?;
    }
    Ok(tree)
}

/// Collects `root` and everything below it.
pub fn collect_all(root: &Path) -> Result<SourceTree, PersistError> {
    let mut tree = SourceTree::new();
    walk(root, &[], &mut tree)?;
    Ok(tree)
}

/// Checks a requested path and makes it relative to the root.
fn relative_path(root: &Path, path: &Path) -> Result<Vec<u8>, PersistError> {
    let rel = if path.is_absolute() {
        path.strip_prefix(root).map_err(|_| {
            bad_path(
                path,
                format!("is outside --root {}: give paths inside it", root.display()),
            )
        })?
    } else {
        path
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.as_bytes()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad_path(
                    path,
                    "contains '..': give paths inside --root without '..'".into(),
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad_path(path, "is not relative to --root".into()))
            }
        }
    }
    Ok(parts.join(&b'/'))
}

fn abs_of(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// Adds the ancestor directories of `rel`, refusing paths that go through symlinks.
fn add_ancestors(root: &Path, rel: &[u8], given: &Path, tree: &mut SourceTree) -> Result<(), PersistError> {
    let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').filter(|p| !p.is_empty()).collect();
    for depth in 1..parts.len() {
        let ancestor = parts[..depth].join(&b'/');
        let abs = abs_of(root, &ancestor);
        match fs::symlink_metadata(&abs) {
            Ok(meta) if meta.is_dir() => add(root, &ancestor, tree)?,
            Ok(_) => {
                return Err(bad_path(
                    given,
                    format!(
                        "goes through {}, which is not a directory (a symlink?): name the real path",
                        abs.display()
                    ),
                ))
            }
            Err(_) => {
                return Err(bad_path(
                    given,
                    format!("does not exist under --root {}", root.display()),
                ))
            }
        }
    }
    if fs::symlink_metadata(abs_of(root, rel)).is_err() {
        return Err(bad_path(
            given,
            format!("does not exist under --root {}", root.display()),
        ));
    }
    Ok(())
}

fn add(root: &Path, rel: &[u8], tree: &mut SourceTree) -> Result<(), PersistError> {
    let abs = abs_of(root, rel);
    let meta = fs::symlink_metadata(&abs).map_err(source_err(&abs))?;
    tree.insert(TreePath(rel.to_vec()), Source::new(abs, meta)?);
    Ok(())
}

/// Adds `rel` and, for a directory, everything below it (symlinks are not
/// followed). Each level of the tree is read on a few threads: a persist of
/// unchanged files is mostly these syscalls. Children are stat'ed relative to
/// their directory's handle, which spares the kernel a walk of the whole path.
fn walk(root: &Path, rel: &[u8], tree: &mut SourceTree) -> Result<(), PersistError> {
    add(root, rel, tree)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let mut level: Vec<Vec<u8>> = Vec::new();
    if tree[&TreePath(rel.to_vec())].meta.is_dir() {
        level.push(rel.to_vec());
    }
    while !level.is_empty() {
        let share = level.len().div_ceil(threads);
        let read: Vec<Result<Children, PersistError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = level
                .chunks(share)
                .map(|dirs| scope.spawn(move || read_dirs(root, dirs)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("directory readers do not panic"))
                .collect()
        });
        level = Vec::new();
        for children in read {
            for (path, source) in children? {
                if source.meta.is_dir() {
                    level.push(path.clone());
                }
                tree.insert(TreePath(path), source);
            }
        }
    }
    Ok(())
}

/// Paths (relative to the root) and sources read from directories.
type Children = Vec<(Vec<u8>, Source)>;

/// The children of directories `dirs` (relative to `root`), with their metadata.
fn read_dirs(root: &Path, dirs: &[Vec<u8>]) -> Result<Children, PersistError> {
    let mut out = Vec::new();
    for dir in dirs {
        let abs = abs_of(root, dir);
        for child in fs::read_dir(&abs).map_err(source_err(&abs))? {
            let child = child.map_err(source_err(&abs))?;
            let meta = child.metadata().map_err(source_err(&child.path()))?;
            let mut child_rel = dir.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(child.file_name().as_bytes());
            out.push((child_rel, Source::new(child.path(), meta)?));
        }
    }
    Ok(out)
}

/// Ownership, permissions, mtime and extended attributes of a source path.
fn attrs_of(abs: &Path, m: &Metadata) -> Result<Meta, PersistError> {
    let mut xattrs = Vec::new();
    match xattr::list(abs) {
        Ok(names) => {
            for name in names {
                if let Some(value) = xattr::get(abs, &name).map_err(source_err(abs))? {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
        Err(e) => return Err(source_err(abs)(e)),
    }
    xattrs.sort();
    Ok(Meta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        xattrs,
    })
}

/// What tells an unchanged file from a changed one.
pub fn stamp_of(m: &Metadata) -> FileStamp {
    FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec() as u32),
        ctime: (m.ctime(), m.ctime_nsec() as u32),
    }
}
