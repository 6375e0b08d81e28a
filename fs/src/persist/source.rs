//! Reading the source tree: which paths a persist covers, and their metadata.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::PersistError;
use crate::manifest::{join_path, manifest_path, path_cmp, ChunkRef, Meta, RelativePathError, Xattr};
use crate::os::{self, Caller};
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
    /// cache knows unchanged (`known`, see [`cached`]) takes its xattrs from
    /// there (they change its ctime); everything else has them read.
    /// `at` reaches the same file for reading its xattrs (through its
    /// directory's handle during the walk).
    fn new(
        abs: PathBuf,
        at: &Path,
        meta: Metadata,
        known: Option<CachedFile>,
    ) -> Result<Source, PersistError> {
        let (xattrs, cached) = match known {
            Some(CachedFile { chunks, xattrs }) => (xattrs, Some(chunks)),
            None => (xattrs_of(at, &abs)?, None),
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

/// The directory a persist reads, opened once; its files are opened beneath
/// that handle, with the credentials of whoever asked for the persist.
pub struct SourceRoot {
    dir: PathBuf,
    fd: std::os::fd::OwnedFd,
    caller: Option<Caller>,
}

impl SourceRoot {
    /// Opens `dir` (canonical) as `caller` (the daemon itself when `None`).
    pub fn open(dir: &Path, caller: Option<&Caller>) -> Result<SourceRoot, PersistError> {
        let fd = os::as_caller(caller, || os::open_dir(dir, true))
            .and_then(|opened| opened)
            .map_err(source_err(dir))?;
        Ok(SourceRoot {
            dir: dir.to_path_buf(),
            fd,
            caller: caller.cloned(),
        })
    }

    /// Runs `f` with the caller's file-system credentials on this thread
    /// (and on the threads it starts).
    pub fn as_caller<T>(&self, f: impl FnOnce() -> T) -> Result<T, PersistError> {
        os::as_caller(self.caller.as_ref(), f).map_err(source_err(&self.dir))
    }

    /// Opens the regular file at `abs` (below the root) that the walk saw
    /// as `stamp`: through no symlink, never outside the root, as the
    /// caller. Anything else there now (another file, a symlink, a FIFO, a
    /// device) is an error naming the path: no other bytes are ever read.
    pub fn open_file(&self, abs: &Path, stamp: &FileStamp) -> Result<fs::File, PersistError> {
        let replaced = || PersistError::Replaced {
            path: abs.to_path_buf(),
        };
        let rel = abs.strip_prefix(&self.dir).map_err(|_| replaced())?;
        let file = match self.as_caller(|| os::open_beneath(&self.fd, rel.as_os_str().as_bytes()))? {
            Ok(file) => file,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV | libc::ENXIO)) => {
                return Err(replaced())
            }
            Err(e) => return Err(source_err(abs)(e)),
        };
        match os::same_file(&file, stamp.dev, stamp.ino) {
            Ok(true) => Ok(file),
            Ok(false) => Err(replaced()),
            Err(e) => Err(source_err(abs)(e)),
        }
    }
}

/// What the stat cache knows of the source at `abs`, whose `lstat` is
/// `meta`, when it is a regular file unchanged since it was remembered.
/// (RocksDB's batched `multi_get`, a directory at a time, was measured no
/// faster: the stat cache is mostly in its memtable.)
fn cached(cache: Option<&Db>, abs: &Path, meta: &Metadata) -> Result<Option<CachedFile>, PersistError> {
    match cache {
        Some(db) if meta.is_file() => Ok(db.cached_file(abs.as_os_str().as_bytes(), &stamp_of(meta))?),
        _ => Ok(None),
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
/// Directories are listed through handles opened beneath `source`'s root,
/// on `threads` threads.
pub fn collect(
    source: &SourceRoot,
    paths: &[PathBuf],
    cache: Option<&Db>,
    threads: usize,
) -> Result<SourceTree, PersistError> {
    let root = source.dir.as_path();
    let mut tree = SourceTree::new();
    add(root, &[], &mut tree, cache)?;
    for path in paths {
        let rel = relative_path(root, path)?;
        add_ancestors(root, &rel, path, &mut tree, cache)?;
        walk(source, &rel, &mut tree, cache, threads)?;
    }
    Ok(tree)
}

/// Collects `root` and everything below it.
pub fn collect_all(root: &Path) -> Result<SourceTree, PersistError> {
    let mut tree = SourceTree::new();
    walk(
        &SourceRoot::open(root, None)?,
        &[],
        &mut tree,
        None,
        super::threads_or_cores(0),
    )?;
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
    let known = cached(cache, &abs, &meta)?;
    tree.insert(
        TreePath(rel.to_vec()),
        Source::new(abs.clone(), &abs, meta, known)?,
    );
    Ok(())
}

/// Adds `rel` and, for a directory, everything below it (symlinks are not
/// followed). Each level of the tree is read on `threads` threads: a persist
/// of unchanged files is mostly these syscalls. Children are stat'ed relative
/// to their directory's handle, which spares the kernel a walk of the whole path.
fn walk(
    source: &SourceRoot,
    rel: &[u8],
    tree: &mut SourceTree,
    cache: Option<&Db>,
    threads: usize,
) -> Result<(), PersistError> {
    add(&source.dir, rel, tree, cache)?;
    let threads = threads.max(1);
    let mut level: Vec<Vec<u8>> = Vec::new();
    if tree[&TreePath(rel.to_vec())].meta.is_dir() {
        level.push(rel.to_vec());
    }
    while !level.is_empty() {
        // Each thread takes the next directory not yet taken: one large
        // directory does not hold up the others' share.
        let next = AtomicUsize::new(0);
        let read: Vec<Result<Children, PersistError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(level.len()))
                .map(|_| {
                    let (level, next) = (&level, &next);
                    scope.spawn(move || {
                        let mut children = Vec::new();
                        loop {
                            let Some(dir) = level.get(next.fetch_add(1, Ordering::Relaxed)) else {
                                return Ok(children);
                            };
                            read_dir(source, dir, cache, &mut children)?;
                        }
                    })
                })
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

/// Adds the children of directory `dir` (relative to the root), with their
/// metadata, to `out`. The directory is opened beneath the root through no
/// symlink and listed through that handle, so a directory swapped for a
/// symlink during the walk is an error, never a listing of somewhere else.
fn read_dir(
    source: &SourceRoot,
    dir: &[u8],
    cache: Option<&Db>,
    out: &mut Children,
) -> Result<(), PersistError> {
    let abs = abs_of(&source.dir, dir);
    let handle = match os::open_dir_beneath(&source.fd, dir) {
        Ok(handle) => handle,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR)) => {
            return Err(PersistError::Replaced { path: abs });
        }
        Err(e) => return Err(source_err(&abs)(e)),
    };
    let listed = os::fd_path(&handle);
    for child in fs::read_dir(&listed).map_err(source_err(&abs))? {
        let child = child.map_err(source_err(&abs))?;
        let rel = join_path(dir, child.file_name().as_bytes());
        let child_abs = abs_of(&source.dir, &rel);
        let meta = child.metadata().map_err(source_err(&child_abs))?;
        let known = cached(cache, &child_abs, &meta)?;
        out.push((rel, Source::new(child_abs, &child.path(), meta, known)?));
    }
    Ok(())
}

/// The extended attributes of the source path reached at `at`, sorted by
/// name; errors name it `named`.
fn xattrs_of(at: &Path, named: &Path) -> Result<Vec<Xattr>, PersistError> {
    let mut xattrs = Vec::new();
    match xattr::list(at) {
        Ok(names) => {
            for name in names {
                if let Some(value) = xattr::get(at, &name).map_err(source_err(named))? {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
        Err(e) => return Err(source_err(named)(e)),
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

    /// Between the walk and the read, the file is swapped for a symlink to
    /// a secret, a FIFO, a device, another file, or its directory for a
    /// symlink: each time the open is an error naming the file, at once
    /// (no hang on the FIFO), and nothing of what is there now is read; a
    /// directory swapped for a symlink is not listed either.
    #[test]
    fn a_file_replaced_after_the_walk_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let (root, secret) = (dir.path().join("root"), dir.path().join("secret"));
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(&secret, b"not to be stored").unwrap();
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        type Swap<'a> = Box<dyn Fn(&Path) + 'a>;
        let swaps: Vec<(&str, Swap)> = vec![
            (
                "symlink",
                Box::new(|f: &Path| std::os::unix::fs::symlink(&secret, f).unwrap()),
            ),
            // SAFETY: a valid path.
            (
                "fifo",
                Box::new(move |f: &Path| assert_eq!(unsafe { libc::mkfifo(c(f).as_ptr(), 0o644) }, 0)),
            ),
            // SAFETY: a valid path; the device number of /dev/zero.
            (
                "device",
                Box::new(move |f: &Path| {
                    assert_eq!(
                        unsafe { libc::mknod(c(f).as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) },
                        0
                    )
                }),
            ),
            (
                "other file",
                Box::new(|f: &Path| fs::write(f, b"other bytes").unwrap()),
            ),
        ];
        for (what, swap) in swaps {
            let file = root.join("sub/f");
            fs::write(&file, b"walked").unwrap();
            let tree = collect_all(&root).unwrap();
            let stamp = stamp_of(&tree[&TreePath(b"sub/f".to_vec())].meta);
            // Made beside it, then moved over it: a new inode, as a swap has.
            let new = root.join("sub/f.new");
            swap(&new);
            fs::rename(&new, &file).unwrap();
            let source = SourceRoot::open(&root, None).unwrap();
            match source.open_file(&file, &stamp) {
                Err(PersistError::Replaced { path }) => assert_eq!(path, file, "{what}"),
                other => panic!("{what}: {:?}", other.map(|_| "opened")),
            }
            fs::remove_file(&file).unwrap();
        }
        // The file's directory swapped for a symlink to a directory holding a file of that name.
        let file = root.join("sub/f");
        fs::write(&file, b"walked").unwrap();
        let tree = collect_all(&root).unwrap();
        let stamp = stamp_of(&tree[&TreePath(b"sub/f".to_vec())].meta);
        fs::rename(root.join("sub"), dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), root.join("sub")).unwrap();
        let source = SourceRoot::open(&root, None).unwrap();
        assert!(matches!(
            source.open_file(&file, &stamp),
            Err(PersistError::Replaced { .. })
        ));
        // Nor is a directory listed through a symlink swapped in for it.
        match read_dir(&source, b"sub", None, &mut Vec::new()) {
            Err(PersistError::Replaced { path }) => assert_eq!(path, root.join("sub")),
            other => panic!("listed {other:?}"),
        }
    }

    /// A caller's credentials decide what a persist may read: a file only
    /// root may read is refused to another user, and readable to root.
    #[test]
    fn files_are_opened_with_the_callers_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let file = root.join("root-only");
        fs::write(&file, b"secret").unwrap();
        fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let stamp = stamp_of(&fs::symlink_metadata(&file).unwrap());
        let user = Caller {
            uid: 4242,
            gid: 4242,
            groups: vec![],
        };
        let as_user = SourceRoot::open(&root, Some(&user)).unwrap();
        match as_user.open_file(&file, &stamp) {
            Err(PersistError::Source { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied)
            }
            other => panic!("{:?}", other.map(|_| "opened")),
        }
        // The thread is root again afterwards.
        let as_root = SourceRoot::open(&root, None).unwrap();
        assert!(as_root.open_file(&file, &stamp).is_ok());
    }

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

        let known = cached(Some(&db), &file, &meta).unwrap();
        let source = Source::new(file.clone(), &file, meta, known).unwrap();
        assert_eq!(source.cached, Some(chunks.clone()));
        assert_eq!(source.attrs.xattrs, remembered);

        xattr::set(&file, "user.real", b"changed").unwrap();
        let meta = fs::symlink_metadata(&file).unwrap();
        let known = cached(Some(&db), &file, &meta).unwrap();
        let source = Source::new(file.clone(), &file, meta, known).unwrap();
        assert_eq!(source.cached, None);
        assert_eq!(
            source.attrs.xattrs,
            [(b"user.real".to_vec(), b"changed".to_vec())]
        );
    }
}
