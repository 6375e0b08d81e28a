//! Recursive comparison of two trees, returning readable differences.
//!
//! Compares, for every path (never following symlinks): entry type, permission
//! bits (incl. setuid/setgid/sticky), uid, gid, mtime (seconds and
//! nanoseconds, directories too), `user.*` xattrs, file size, link count and
//! content (BLAKE3), symlink targets, and hard-link structure (paths sharing an
//! inode on one side must share one on the other, and no others).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One difference between the expected and the actual tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Path relative to the compared roots (empty for the roots themselves).
    pub path: PathBuf,
    /// What differs, with both values.
    pub what: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.path, self.what)
    }
}

/// What [`compare_trees`] looks at; everything by default.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Compare the roots' own metadata (mode, owner, mtime, xattrs). Off when
    /// the actual root is synthesized, e.g. the root of a mount of named paths.
    pub root_metadata: bool,
    /// Hash and compare file contents.
    pub content: bool,
    /// Compare `st_nlink` of regular files.
    pub nlink: bool,
    /// Compare directory mtimes.
    pub dir_mtimes: bool,
    /// Compare owners (uid and gid): an ordinary user's views show every
    /// entry as that user's.
    pub owners: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            root_metadata: true,
            content: true,
            nlink: true,
            dir_mtimes: true,
            owners: true,
        }
    }
}

impl CompareOptions {
    /// Everything except the roots' own metadata.
    pub fn ignoring_root() -> Self {
        CompareOptions {
            root_metadata: false,
            ..Default::default()
        }
    }
}

/// Compares `actual` against `expected` recursively; an empty result means equal.
pub fn compare_trees(expected: &Path, actual: &Path, opts: &CompareOptions) -> Vec<Difference> {
    let mut cx = Cx {
        expected,
        actual,
        opts,
        diffs: Vec::new(),
        inodes: [BTreeMap::new(), BTreeMap::new()],
    };
    cx.entry(Path::new(""));
    cx.hard_links();
    cx.diffs
}

/// Panics with a readable list if `actual` differs from `expected`.
pub fn assert_same_tree(expected: &Path, actual: &Path, opts: &CompareOptions) {
    let diffs = compare_trees(expected, actual, opts);
    if !diffs.is_empty() {
        panic!(
            "{actual:?} differs from {expected:?} in {} ways:\n{}",
            diffs.len(),
            format_differences(&diffs, 60)
        );
    }
}

/// The first `max` differences, one a line, and a count of the rest.
pub fn format_differences(diffs: &[Difference], max: usize) -> String {
    let mut out: Vec<String> = diffs.iter().take(max).map(|d| format!("  {d}")).collect();
    if diffs.len() > max {
        out.push(format!("  ... and {} more", diffs.len() - max));
    }
    out.join("\n")
}

/// BLAKE3 of a file's content.
pub fn hash_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    h.update_reader(File::open(path)?)?;
    Ok(h.finalize())
}

/// Every path under `root`, relative to it, sorted; does not follow symlinks.
pub fn list_paths(root: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for name in sorted_names(&root.join(rel))? {
            let child = rel.join(name);
            out.push(child.clone());
            if root.join(&child).symlink_metadata()?.is_dir() {
                walk(root, &child, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

/// Reads `count` random ranges (1..=`max_len` bytes, plus the last byte) of
/// both files with `pread` and compares them; `Err` names the first mismatch.
pub fn compare_random_ranges(
    expected: &Path,
    actual: &Path,
    seed: u64,
    count: usize,
    max_len: u64,
) -> Result<(), String> {
    let e = File::open(expected).map_err(|err| format!("open {expected:?}: {err}"))?;
    let a = File::open(actual).map_err(|err| format!("open {actual:?}: {err}"))?;
    let size = e.metadata().map_err(|err| err.to_string())?.len();
    if size == 0 {
        return Ok(());
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ranges: Vec<(u64, u64)> = (0..count)
        .map(|_| {
            let off = rng.random_range(0..size);
            (off, rng.random_range(1..=max_len).min(size - off))
        })
        .collect();
    ranges.push((size - 1, 1));
    let (mut eb, mut ab) = (Vec::new(), Vec::new());
    for (off, len) in ranges {
        eb.resize(len as usize, 0);
        ab.resize(len as usize, 0);
        e.read_exact_at(&mut eb, off)
            .map_err(|err| format!("read {expected:?} at {off}: {err}"))?;
        a.read_exact_at(&mut ab, off)
            .map_err(|err| format!("read {actual:?} at {off}+{len}: {err}"))?;
        if eb != ab {
            let first = eb.iter().zip(&ab).position(|(x, y)| x != y).unwrap_or(0);
            return Err(format!(
                "{actual:?}: bytes {off}..{} differ from {expected:?} (first at {})",
                off + len,
                off + first as u64
            ));
        }
    }
    Ok(())
}

/// Asks the kernel to drop cached pages of `path` (a file, or every file
/// under a directory), so the next read goes to the filesystem again.
pub fn drop_page_cache(path: &Path) -> io::Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.is_dir() {
        for name in sorted_names(path)? {
            drop_page_cache(&path.join(name))?;
        }
    } else if meta.is_file() {
        let f = File::open(path)?;
        // SAFETY: plain syscall on an open fd.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    Ok(())
}

/// The `user.*` xattrs of `path` (not following symlinks).
pub fn user_xattrs(path: &Path) -> io::Result<BTreeMap<OsString, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for name in xattr::list(path)? {
        if name.as_encoded_bytes().starts_with(b"user.") {
            let value = xattr::get(path, &name)?.unwrap_or_default();
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn sorted_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

fn kind(m: &Metadata) -> Kind {
    let t = m.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

struct Cx<'a> {
    expected: &'a Path,
    actual: &'a Path,
    opts: &'a CompareOptions,
    diffs: Vec<Difference>,
    /// Per side: (dev, ino) -> names of regular files.
    inodes: [BTreeMap<(u64, u64), Vec<PathBuf>>; 2],
}

impl Cx<'_> {
    fn diff(&mut self, rel: &Path, what: String) {
        self.diffs.push(Difference {
            path: rel.to_path_buf(),
            what,
        });
    }

    fn entry(&mut self, rel: &Path) {
        // `join("")` would add a trailing slash, which fails on a file root.
        let (ep, ap) = if rel.as_os_str().is_empty() {
            (self.expected.to_path_buf(), self.actual.to_path_buf())
        } else {
            (self.expected.join(rel), self.actual.join(rel))
        };
        let em = match ep.symlink_metadata() {
            Ok(m) => m,
            Err(e) => return self.diff(rel, format!("cannot stat expected: {e}")),
        };
        let am = match ap.symlink_metadata() {
            Ok(m) => m,
            Err(e) => return self.diff(rel, format!("cannot stat actual: {e}")),
        };
        let (ek, ak) = (kind(&em), kind(&am));
        if ek != ak {
            return self.diff(rel, format!("type: expected {ek:?}, got {ak:?}"));
        }
        let is_root = rel.as_os_str().is_empty();
        if !is_root || self.opts.root_metadata {
            self.metadata(rel, ek, &em, &am, &ep, &ap);
        }
        match ek {
            Kind::File => self.file(rel, &em, &am, &ep, &ap),
            Kind::Symlink => match (fs::read_link(&ep), fs::read_link(&ap)) {
                (Ok(et), Ok(at)) if et == at => {}
                (Ok(et), Ok(at)) => self.diff(rel, format!("symlink target: expected {et:?}, got {at:?}")),
                (e, a) => self.diff(rel, format!("readlink: expected {e:?}, got {a:?}")),
            },
            Kind::Dir => self.dir(rel, &ep, &ap),
            Kind::Other => {}
        }
    }

    fn metadata(&mut self, rel: &Path, k: Kind, em: &Metadata, am: &Metadata, ep: &Path, ap: &Path) {
        if k != Kind::Symlink && em.mode() & 0o7777 != am.mode() & 0o7777 {
            self.diff(
                rel,
                format!(
                    "mode: expected {:04o}, got {:04o}",
                    em.mode() & 0o7777,
                    am.mode() & 0o7777
                ),
            );
        }
        if self.opts.owners && em.uid() != am.uid() {
            self.diff(rel, format!("uid: expected {}, got {}", em.uid(), am.uid()));
        }
        if self.opts.owners && em.gid() != am.gid() {
            self.diff(rel, format!("gid: expected {}, got {}", em.gid(), am.gid()));
        }
        let (et, at) = ((em.mtime(), em.mtime_nsec()), (am.mtime(), am.mtime_nsec()));
        if et != at && (k != Kind::Dir || self.opts.dir_mtimes) {
            self.diff(
                rel,
                format!("mtime: expected {}.{:09}, got {}.{:09}", et.0, et.1, at.0, at.1),
            );
        }
        if k != Kind::Symlink {
            match (user_xattrs(ep), user_xattrs(ap)) {
                (Ok(ex), Ok(ax)) if ex == ax => {}
                (Ok(ex), Ok(ax)) => self.diff(rel, format!("user xattrs: expected {ex:?}, got {ax:?}")),
                (e, a) => self.diff(rel, format!("listxattr: expected {e:?}, got {a:?}")),
            }
        }
    }

    fn file(&mut self, rel: &Path, em: &Metadata, am: &Metadata, ep: &Path, ap: &Path) {
        self.inodes[0]
            .entry((em.dev(), em.ino()))
            .or_default()
            .push(rel.to_path_buf());
        self.inodes[1]
            .entry((am.dev(), am.ino()))
            .or_default()
            .push(rel.to_path_buf());
        if self.opts.nlink && em.nlink() != am.nlink() {
            self.diff(rel, format!("nlink: expected {}, got {}", em.nlink(), am.nlink()));
        }
        if em.len() != am.len() {
            return self.diff(rel, format!("size: expected {}, got {}", em.len(), am.len()));
        }
        if self.opts.content {
            match (hash_file(ep), hash_file(ap)) {
                (Ok(eh), Ok(ah)) if eh == ah => {}
                (Ok(eh), Ok(ah)) => self.diff(rel, format!("content: expected blake3 {eh}, got {ah}")),
                (Err(e), _) => self.diff(rel, format!("cannot read expected: {e}")),
                (_, Err(e)) => self.diff(rel, format!("cannot read actual: {e}")),
            }
        }
    }

    fn dir(&mut self, rel: &Path, ep: &Path, ap: &Path) {
        let en = match sorted_names(ep) {
            Ok(n) => n,
            Err(e) => return self.diff(rel, format!("readdir expected: {e}")),
        };
        let an = match sorted_names(ap) {
            Ok(n) => n,
            Err(e) => return self.diff(rel, format!("readdir actual: {e}")),
        };
        let (es, as_): (BTreeSet<_>, BTreeSet<_>) = (en.iter().collect(), an.iter().collect());
        for name in es.union(&as_) {
            let child = rel.join(name);
            match (es.contains(name), as_.contains(name)) {
                (true, true) => self.entry(&child),
                (true, false) => self.diff(&child, "missing from actual".into()),
                _ => self.diff(&child, "unexpected in actual".into()),
            }
        }
    }

    /// Every name's group of same-inode names must be equal on both sides.
    fn hard_links(&mut self) {
        let groups = |side: &BTreeMap<(u64, u64), Vec<PathBuf>>| {
            let mut by_path: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
            for names in side.values() {
                let mut sorted = names.clone();
                sorted.sort();
                for n in names {
                    by_path.insert(n.clone(), sorted.clone());
                }
            }
            by_path
        };
        let (eg, ag) = (groups(&self.inodes[0]), groups(&self.inodes[1]));
        let mut reported = BTreeSet::new();
        for (path, e) in &eg {
            let a = &ag[path];
            if e != a && !reported.contains(path) {
                reported.extend(e.iter().cloned());
                reported.extend(a.iter().cloned());
                self.diff(
                    path,
                    format!("hard links: expected one inode for {e:?}, got one inode for {a:?}"),
                );
            }
        }
    }
}
