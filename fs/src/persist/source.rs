//! Reading the source tree: which paths a persist covers, and their metadata.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::PersistError;
use crate::manifest::{join_path, manifest_path, path_cmp, ChunkRef, Meta, RelativePathError, Xattr};
use crate::store::db::{CachedFile, Db, FileStamp};

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
    /// A regular file the stat cache knows unchanged: its chunks.
    pub cached: Option<Vec<ChunkRef>>,
}

impl Source {
    /// The source at `abs`, whose `lstat` is `meta`. A regular file the stat
    /// cache knows unchanged takes its xattrs from there (they change its
    /// ctime); everything else has them read.
    fn new(abs: PathBuf, meta: Metadata, cache: Option<&Db>) -> Result<Source, PersistError> {
        let known = match cache {
            Some(db) if meta.is_file() => db.cached_file(abs.as_os_str().as_bytes(), &stamp_of(&meta))?,
            _ => None,
        };
        let (xattrs, cached) = match known {
            Some(CachedFile { chunks, xattrs }) => (xattrs, Some(chunks)),
            None => (xattrs_of(&abs)?, None),
        };
        let attrs = Meta {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec() as u32,
            xattrs,
        };
        Ok(Source {
            abs,
            meta,
            attrs,
            cached,
        })
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
/// `cache`: the stat cache, whose unchanged files need no xattr reads.
pub fn collect(root: &Path, paths: &[PathBuf], cache: Option<&Db>) -> Result<SourceTree, PersistError> {
    let mut tree = SourceTree::new();
    add(root, &[], &mut tree, cache)?;
    for path in paths {
        let rel = relative_path(root, path)?;
        add_ancestors(root, &rel, path, &mut tree, cache)?;
        walk(root, &rel, &mut tree, cache)?;
    }
    Ok(tree)
}

/// Collects `root` and everything below it.
pub fn collect_all(root: &Path) -> Result<SourceTree, PersistError> {
    let mut tree = SourceTree::new();
    walk(root, &[], &mut tree, None)?;
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
    manifest_path(rel).map_err(|e| match e {
        RelativePathError::ParentDir => bad_path(
            path,
            "contains '..': give paths inside --root without '..'".into(),
        ),
        RelativePathError::Absolute => bad_path(path, "is not relative to --root".into()),
    })
}

fn abs_of(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// Adds the ancestor directories of `rel`, refusing paths that go through symlinks.
fn add_ancestors(
    root: &Path,
    rel: &[u8],
    given: &Path,
    tree: &mut SourceTree,
    cache: Option<&Db>,
) -> Result<(), PersistError> {
    let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').filter(|p| !p.is_empty()).collect();
    for depth in 1..parts.len() {
        let ancestor = parts[..depth].join(&b'/');
        let abs = abs_of(root, &ancestor);
        match fs::symlink_metadata(&abs) {
            Ok(meta) if meta.is_dir() => add(root, &ancestor, tree, cache)?,
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

fn add(root: &Path, rel: &[u8], tree: &mut SourceTree, cache: Option<&Db>) -> Result<(), PersistError> {
    let abs = abs_of(root, rel);
    let meta = fs::symlink_metadata(&abs).map_err(source_err(&abs))?;
    tree.insert(TreePath(rel.to_vec()), Source::new(abs, meta, cache)?);
    Ok(())
}

/// Adds `rel` and, for a directory, everything below it (symlinks are not
/// followed). Each level of the tree is read on a few threads: a persist of
/// unchanged files is mostly these syscalls. Children are stat'ed relative to
/// their directory's handle, which spares the kernel a walk of the whole path.
fn walk(root: &Path, rel: &[u8], tree: &mut SourceTree, cache: Option<&Db>) -> Result<(), PersistError> {
    add(root, rel, tree, cache)?;
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
                .map(|dirs| scope.spawn(move || read_dirs(root, dirs, cache)))
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
fn read_dirs(root: &Path, dirs: &[Vec<u8>], cache: Option<&Db>) -> Result<Children, PersistError> {
    let mut out = Vec::new();
    for dir in dirs {
        let abs = abs_of(root, dir);
        for child in fs::read_dir(&abs).map_err(source_err(&abs))? {
            let child = child.map_err(source_err(&abs))?;
            let meta = child.metadata().map_err(source_err(&child.path()))?;
            let child_rel = join_path(dir, child.file_name().as_bytes());
            out.push((child_rel, Source::new(child.path(), meta, cache)?));
        }
    }
    Ok(out)
}

/// The extended attributes of a source path, sorted by name.
fn xattrs_of(abs: &Path) -> Result<Vec<Xattr>, PersistError> {
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
    Ok(xattrs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing;

    /// An unchanged file costs no xattr reads: the stat cache has them. Any
    /// xattr change moves the ctime, so the cache stops matching.
    #[test]
    fn the_stat_cache_answers_for_unchanged_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        xattr::set(&file, "user.real", b"1").unwrap();
        let meta = fs::symlink_metadata(&file).unwrap();
        let crate::manifest::EntryKind::File(data) = testing::file("f", &[b"x"], 0).kind else {
            unreachable!()
        };
        let chunks = data.chunks;
        let remembered = [(b"user.remembered".to_vec(), b"2".to_vec())];
        let key = file.as_os_str().as_bytes();
        db.put_cached_files([(key, &stamp_of(&meta), &chunks[..], &remembered[..])])
            .unwrap();

        let source = Source::new(file.clone(), meta, Some(&db)).unwrap();
        assert_eq!(source.cached, Some(chunks.clone()));
        assert_eq!(source.attrs.xattrs, remembered);

        xattr::set(&file, "user.real", b"changed").unwrap();
        let meta = fs::symlink_metadata(&file).unwrap();
        let source = Source::new(file, meta, Some(&db)).unwrap();
        assert_eq!(source.cached, None);
        assert_eq!(
            source.attrs.xattrs,
            [(b"user.real".to_vec(), b"changed".to_vec())]
        );
    }
}
