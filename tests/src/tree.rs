//! Deterministic source trees: the same seed and [`TreeSpec`] give the same
//! names, bytes and metadata (for one version of `rand`).
//!
//! Generation is fast (a cheap PRNG, big files written in 1 MiB blocks) so a
//! test can afford thousands of files plus a 50 MiB file. Symlink owners and
//! non-root uids/gids need root; every test in this crate runs as root.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};

use crate::MIB;

/// What to generate. Start from [`TreeSpec::plain`] or [`TreeSpec::everything`]
/// and adjust fields.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    /// Seed of every random choice (names, sizes, bytes, metadata).
    pub seed: u64,
    /// Number of "bulk" regular files spread over the bulk directories.
    pub files: usize,
    /// Number of bulk directories (nested at random under four top-level ones).
    pub dirs: usize,
    /// Maximum nesting depth of bulk directories (1 = all at the top level).
    pub max_depth: usize,
    /// Upper bound of a bulk file's size; sizes are skewed small (3/4 < 4 KiB,
    /// 1% up to 1 MiB; about 17 KiB on average).
    pub max_file_bytes: u64,
    /// One big file `big/large.bin` of this size: mostly pseudo-random,
    /// every 8th MiB repetitive, some MiB blocks repeated (dedup material).
    pub big_file_bytes: Option<u64>,
    /// Empty files and empty (also nested) directories.
    pub empty: bool,
    /// Symlinks under `links/`: relative, absolute, dangling, to dirs, to links, long.
    pub symlinks: bool,
    /// Hard links under `hardlinks/`: several names per inode, also across dirs.
    pub hard_links: bool,
    /// `user.*` xattrs on some files and dirs, plus an `xattrs/` dir of edge cases.
    pub xattrs: bool,
    /// `odd names/`: spaces, UTF-8, a leading dash, a newline, a tab, 254 bytes...
    pub odd_names: bool,
    /// `modes/`: setuid, setgid, sticky, 0o600, 0o000, read-only dirs, executables.
    pub modes: bool,
    /// Non-root uid/gid on some files, a dir and a symlink.
    pub owners: bool,
    /// Explicit atime/mtime with nanoseconds on every entry (incl. the root).
    pub mtimes: bool,
}

impl TreeSpec {
    /// Regular files in nested directories (plus `README.md`), explicit mtimes,
    /// no other extras.
    pub fn plain(seed: u64, files: usize) -> TreeSpec {
        TreeSpec {
            seed,
            files,
            dirs: files / 20 + 4,
            max_depth: 5,
            max_file_bytes: MIB,
            big_file_bytes: None,
            empty: false,
            symlinks: false,
            hard_links: false,
            xattrs: false,
            odd_names: false,
            modes: false,
            owners: false,
            mtimes: true,
        }
    }

    /// Everything at once: 3000 bulk files, a 50 MiB (+ an odd tail) big file,
    /// and every option enabled.
    pub fn everything(seed: u64) -> TreeSpec {
        TreeSpec {
            dirs: 150,
            max_depth: 6,
            big_file_bytes: Some(50 * MIB + 123_457),
            empty: true,
            symlinks: true,
            hard_links: true,
            xattrs: true,
            odd_names: true,
            modes: true,
            owners: true,
            ..TreeSpec::plain(seed, 3000)
        }
    }

    /// The same spec with a big file of `bytes`.
    pub fn with_big_file(mut self, bytes: u64) -> TreeSpec {
        self.big_file_bytes = Some(bytes);
        self
    }
}

/// One name of a regular file in a generated tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the tree's root.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// What [`generate`] made.
#[derive(Clone, Debug)]
pub struct Tree {
    /// Absolute root directory.
    pub root: PathBuf,
    /// Every name of every regular file (hard links: every name), sorted by path.
    pub files: Vec<FileEntry>,
    /// The big file, relative to the root.
    pub big_file: Option<PathBuf>,
    /// Groups of relative paths naming one inode each.
    pub hard_links: Vec<Vec<PathBuf>>,
}

impl Tree {
    /// Names directly under the root, sorted: the arguments of a `persist`
    /// of the whole tree (none starts with `-`).
    pub fn top_level(&self) -> Vec<OsString> {
        let mut names: Vec<OsString> = fs::read_dir(&self.root)
            .expect("read tree root")
            .map(|e| e.expect("read tree root entry").file_name())
            .collect();
        names.sort();
        names
    }

    /// Regular-file names (a hard-linked inode counts once per name).
    pub fn file_names(&self) -> u64 {
        self.files.len() as u64
    }

    /// Total size over all regular-file names.
    pub fn name_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Distinct regular-file inodes (a hard-linked inode counts once).
    pub fn distinct_files(&self) -> u64 {
        let extra: usize = self.hard_links.iter().map(|g| g.len() - 1).sum();
        self.file_names() - extra as u64
    }

    /// Total size over distinct regular-file inodes.
    pub fn distinct_bytes(&self) -> u64 {
        let extra: u64 = self
            .hard_links
            .iter()
            .map(|g| (g.len() as u64 - 1) * self.size_of(&g[0]))
            .sum();
        self.name_bytes() - extra
    }

    /// Size of the regular file at `path` (relative).
    pub fn size_of(&self, path: &Path) -> u64 {
        self.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path:?} is not a regular file of the tree"))
            .size
    }

    /// Regular files of 1..=`max` bytes that are not hard-linked.
    pub fn small_files(&self, max: u64) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(move |f| {
            f.size > 0 && f.size <= max && !self.hard_links.iter().flatten().any(|p| *p == f.path)
        })
    }
}

/// Writes `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("create {parent:?}"))?;
    }
    fs::write(path, data).with_context(|| format!("write {path:?}"))
}

/// `len` pseudo-random (incompressible) bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut buf);
    buf
}

/// Sets atime and mtime of `path` (not following symlinks) to `sec`.`nsec`.
pub fn set_mtime(path: &Path, sec: i64, nsec: i64) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let t = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let times = [t, t];
    // SAFETY: `c` is a valid NUL-terminated path and `times` has two entries.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("utimensat {path:?}"));
    }
    Ok(())
}

/// Generates the tree described by `spec` under `root` (created if missing;
/// it should be empty).
pub fn generate(root: &Path, spec: &TreeSpec) -> Result<Tree> {
    fs::create_dir_all(root).with_context(|| format!("create {root:?}"))?;
    let mut g = Gen {
        root: root.to_path_buf(),
        rng: SmallRng::seed_from_u64(spec.seed),
        pool: text_pool(spec.seed),
        recent: Vec::new(),
        files: BTreeMap::new(),
        hard_links: Vec::new(),
        big_file: None,
    };
    let readme = g.text(2000);
    g.file(Path::new("README.md"), &readme)?;
    let dirs = g.bulk_dirs(spec)?;
    g.bulk_files(spec, &dirs)?;
    if let Some(bytes) = spec.big_file_bytes {
        g.big_file(bytes)?;
    }
    if spec.empty {
        g.empties(&dirs)?;
    }
    if spec.symlinks {
        g.symlinks(&dirs)?;
    }
    if spec.hard_links {
        g.hard_links(spec, &dirs)?;
    }
    if spec.odd_names {
        g.odd_names()?;
    }
    // Owners before modes: chown clears setuid/setgid bits.
    if spec.owners {
        g.owners(&dirs)?;
    }
    if spec.modes {
        g.modes(spec)?;
    }
    if spec.xattrs {
        g.xattrs(&dirs)?;
    }
    if spec.mtimes {
        g.mtimes()?;
    }
    Ok(Tree {
        root: root.to_path_buf(),
        files: g
            .files
            .into_iter()
            .map(|(path, size)| FileEntry { path, size })
            .collect(),
        big_file: g.big_file,
        hard_links: g.hard_links,
    })
}

/// 256 KiB of word salad: compressible, not trivially so.
fn text_pool(seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn",
        "let",
        "mut",
        "struct",
        "impl",
        "return",
        "match",
        "Some",
        "None",
        "Ok",
        "Err",
        "self",
        "pub",
        "use",
        "crate",
        "workspace",
        "layer",
        "chunk",
        "pack",
        "mount",
        "the",
        "a",
        "of",
        "to",
        "and",
        "in",
        "is",
        "for",
        "with",
        "on",
        "that",
        "by",
        "0x1f",
        "42",
        "{",
        "}",
        "(",
        ")",
        ";",
        "=>",
        "//",
        "\n",
        "\n    ",
        "::",
        "<T>",
        "&str",
        "Vec<u8>",
    ];
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_7e47);
    let mut out = Vec::with_capacity(256 * 1024 + 16);
    while out.len() < 256 * 1024 {
        out.extend_from_slice(WORDS.choose(&mut rng).unwrap().as_bytes());
        out.push(b' ');
    }
    out
}

struct Gen {
    root: PathBuf,
    rng: SmallRng,
    pool: Vec<u8>,
    /// Recent small contents, reused for duplicate files (dedup material).
    recent: Vec<Vec<u8>>,
    /// Regular-file names and sizes.
    files: BTreeMap<PathBuf, u64>,
    hard_links: Vec<Vec<PathBuf>>,
    big_file: Option<PathBuf>,
}

impl Gen {
    fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    fn dir(&self, rel: &Path) -> Result<()> {
        let p = self.abs(rel);
        fs::create_dir_all(&p).with_context(|| format!("create {p:?}"))
    }

    fn file(&mut self, rel: &Path, data: &[u8]) -> Result<()> {
        write_file(&self.abs(rel), data)?;
        self.files.insert(rel.to_path_buf(), data.len() as u64);
        Ok(())
    }

    fn link(&self, target: impl AsRef<OsStr>, rel: &Path) -> Result<()> {
        let p = self.abs(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink(target.as_ref(), &p).with_context(|| format!("symlink {p:?}"))
    }

    fn chmod(&self, rel: &Path, mode: u32) -> Result<()> {
        let p = self.abs(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {p:?}"))
    }

    fn chown(&self, rel: &Path, uid: u32, gid: u32) -> Result<()> {
        let p = self.abs(rel);
        lchown(&p, Some(uid), Some(gid)).with_context(|| format!("chown {p:?}"))
    }

    fn setxattr(&self, rel: &Path, name: &str, value: &[u8]) -> Result<()> {
        let p = self.abs(rel);
        xattr::set(&p, name, value).with_context(|| format!("setxattr {name} on {p:?}"))
    }

    fn text(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let start = self.rng.random_range(0..self.pool.len() - 4096);
            let n = self.rng.random_range(64..4096).min(len - out.len());
            out.extend_from_slice(&self.pool[start..start + n]);
        }
        out
    }

    fn random(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.rng.fill_bytes(&mut buf);
        buf
    }

    fn bulk_dirs(&mut self, spec: &TreeSpec) -> Result<Vec<PathBuf>> {
        let mut dirs: Vec<(PathBuf, usize)> = Vec::new();
        for i in 0..spec.dirs {
            let name = format!("dir-{i:03}");
            let (path, depth) = if i < 4 || spec.max_depth <= 1 {
                (PathBuf::from(name), 1)
            } else {
                let deep_enough: Vec<&(PathBuf, usize)> =
                    dirs.iter().filter(|(_, d)| *d < spec.max_depth).collect();
                let (parent, d) = deep_enough.choose(&mut self.rng).unwrap();
                (parent.join(name), d + 1)
            };
            self.dir(&path)?;
            dirs.push((path, depth));
        }
        Ok(dirs.into_iter().map(|(p, _)| p).collect())
    }

    fn bulk_files(&mut self, spec: &TreeSpec, dirs: &[PathBuf]) -> Result<()> {
        const EXTS: &[&str] = &["rs", "txt", "o", "json", "bin", "d", "rlib"];
        for i in 0..spec.files {
            let dir = dirs.choose(&mut self.rng).cloned().unwrap_or_default();
            let ext = EXTS.choose(&mut self.rng).unwrap();
            let path = dir.join(format!("file-{i:05}.{ext}"));
            let r: f64 = self.rng.random();
            let size = if r < 0.75 {
                self.rng.random_range(1..4096)
            } else if r < 0.95 {
                self.rng.random_range(4096..32 * 1024)
            } else if r < 0.99 {
                self.rng.random_range(32 * 1024..256 * 1024)
            } else {
                self.rng.random_range(256 * 1024..MIB.max(256 * 1024 + 1))
            }
            .min(spec.max_file_bytes) as usize;
            let kind: f64 = self.rng.random();
            let data = if kind < 0.05 && !self.recent.is_empty() {
                self.recent.choose(&mut self.rng).unwrap().clone()
            } else if kind < 0.55 {
                self.text(size)
            } else {
                self.random(size)
            };
            if data.len() <= 64 * 1024 {
                if self.recent.len() >= 32 {
                    let k = self.rng.random_range(0..self.recent.len());
                    self.recent[k] = data.clone();
                } else {
                    self.recent.push(data.clone());
                }
            }
            self.file(&path, &data)?;
            if spec.modes && self.rng.random_bool(0.03) {
                self.chmod(&path, 0o755)?;
            }
        }
        Ok(())
    }

    fn big_file(&mut self, bytes: u64) -> Result<()> {
        let rel = PathBuf::from("big/large.bin");
        self.dir(Path::new("big"))?;
        let p = self.abs(&rel);
        let mut f = fs::File::create(&p).with_context(|| format!("create {p:?}"))?;
        let mut block = vec![0u8; MIB as usize];
        let mut first = Vec::new();
        let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut left = bytes;
        let mut i = 0u64;
        while left > 0 {
            match i % 8 {
                3 => block.chunks_mut(4096).for_each(|c| c.copy_from_slice(&pattern)),
                6 if !first.is_empty() => block.copy_from_slice(&first),
                _ => self.rng.fill_bytes(&mut block),
            }
            if i == 0 {
                first = block.clone();
            }
            let n = left.min(MIB) as usize;
            f.write_all(&block[..n])?;
            left -= n as u64;
            i += 1;
        }
        self.files.insert(rel.clone(), bytes);
        self.big_file = Some(rel);
        Ok(())
    }

    fn empties(&mut self, dirs: &[PathBuf]) -> Result<()> {
        self.file(Path::new("empty/empty-file"), b"")?;
        self.file(Path::new("empty/.hidden-empty"), b"")?;
        self.dir(Path::new("empty/empty-dir"))?;
        self.dir(Path::new("empty/nested/a/b/c"))?;
        self.dir(Path::new("empty-top-dir"))?;
        for d in dirs.iter().take(5) {
            self.file(&d.join("zero-length"), b"")?;
        }
        Ok(())
    }

    fn symlinks(&mut self, dirs: &[PathBuf]) -> Result<()> {
        let some_file = self
            .files
            .keys()
            .find(|p| p.starts_with("dir-"))
            .cloned()
            .unwrap_or_else(|| PathBuf::from("README.md"));
        let some_dir = dirs.last().cloned().unwrap_or_else(|| PathBuf::from("."));
        let l = Path::new("links");
        self.dir(l)?;
        self.link(Path::new("..").join(&some_file), &l.join("to-file"))?;
        self.link(Path::new("..").join(&some_dir), &l.join("to-dir"))?;
        self.link("/etc/hostname", &l.join("absolute"))?;
        self.link("/nonexistent/wsfs/target", &l.join("absolute-dangling"))?;
        self.link("no such target", &l.join("dangling"))?;
        self.link("to-file", &l.join("to-link"))?;
        self.link(".", &l.join("dot"))?;
        self.link("ziel/ünïcødé target", &l.join("utf8-ünï"))?;
        self.link("seg-0123/".repeat(111), &l.join("long-target"))?;
        if let Some(d) = dirs.get(5) {
            self.link("../..", &d.join("link-up"))?;
        }
        Ok(())
    }

    fn hard_links(&mut self, spec: &TreeSpec, dirs: &[PathBuf]) -> Result<()> {
        let h = PathBuf::from("hardlinks");
        let original = h.join("original");
        let data = self.random(20_000);
        self.file(&original, &data)?;
        let cross = dirs
            .first()
            .map(|d| d.join("cross-dir-link"))
            .unwrap_or_else(|| PathBuf::from("cross-dir-link"));
        let group = vec![
            original.clone(),
            h.join("same-dir-link"),
            cross,
            h.join("sub/deeper-link"),
        ];
        self.hard_link_group(group)?;
        let pair = self.text(3000);
        self.file(&h.join("pair-a"), &pair)?;
        self.hard_link_group(vec![h.join("pair-a"), PathBuf::from("other-hl/pair-b")])?;
        self.file(&h.join("empty-a"), b"")?;
        self.hard_link_group(vec![h.join("empty-a"), h.join("empty-b")])?;
        if spec.modes {
            self.chmod(&original, 0o750)?;
        }
        if spec.xattrs {
            self.setxattr(&original, "user.linked", b"one inode, four names")?;
        }
        Ok(())
    }

    /// Links every later name of `group` to its first (existing) name.
    fn hard_link_group(&mut self, group: Vec<PathBuf>) -> Result<()> {
        let first = self.abs(&group[0]);
        let size = self.files[&group[0]];
        for name in &group[1..] {
            let p = self.abs(name);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::hard_link(&first, &p).with_context(|| format!("link {p:?}"))?;
            self.files.insert(name.clone(), size);
        }
        self.hard_links.push(group);
        Ok(())
    }

    fn odd_names(&mut self) -> Result<()> {
        let o = PathBuf::from("odd names");
        let long = format!("{}.txt", "n".repeat(250));
        let names: Vec<&str> = vec![
            "with space.txt",
            "  leading spaces",
            "trailing space ",
            "ünïcødé-файл-文件.txt",
            "emoji-🦀.rs",
            "-leading-dash",
            "--double-dash",
            "new\nline",
            "tab\tin name",
            "back\\slash",
            "quote'single\"double",
            "star*question?",
            "percent%20",
            "semi;colon&amp",
            "ends-with-dot.",
            "..dots",
            ".hidden",
            &long,
        ];
        for name in names {
            let data = self.text(100 + name.len());
            self.file(&o.join(name), &data)?;
        }
        self.file(&o.join("dir with spaces/inner file.txt"), b"inner\n")?;
        self.file(&o.join("каталог/файл.txt"), "содержимое\n".as_bytes())?;
        self.file(&o.join("-dash-dir/x"), b"x\n")?;
        Ok(())
    }

    fn owners(&mut self, dirs: &[PathBuf]) -> Result<()> {
        const OWNERS: &[(u32, u32)] = &[(1000, 1000), (12345, 54321), (65534, 65534)];
        let names: Vec<PathBuf> = self.files.keys().cloned().collect();
        for name in names {
            if self.rng.random_bool(0.10) {
                let (u, g) = *OWNERS.choose(&mut self.rng).unwrap();
                self.chown(&name, u, g)?;
            }
        }
        if let Some(d) = dirs.get(1) {
            self.chown(d, 2000, 3000)?;
        }
        if self.abs(Path::new("links/to-file")).symlink_metadata().is_ok() {
            self.chown(Path::new("links/to-file"), 4000, 4001)?;
        }
        Ok(())
    }

    fn modes(&mut self, spec: &TreeSpec) -> Result<()> {
        let m = PathBuf::from("modes");
        let files: &[(&str, u32)] = &[
            ("setuid", 0o4755),
            ("setgid", 0o2755),
            ("all-special-bits", 0o7755),
            ("private", 0o600),
            ("readonly", 0o444),
            ("no-permissions", 0o000),
            ("group-read", 0o640),
            ("group-write", 0o664),
        ];
        for (name, mode) in files {
            let rel = m.join(name);
            let data = self.text(300);
            self.file(&rel, &data)?;
            if spec.owners && *name == "setuid" {
                self.chown(&rel, 1000, 1000)?;
            }
            self.chmod(&rel, *mode)?;
        }
        self.file(&m.join("exec.sh"), b"#!/bin/sh\necho hello from wsfs\n")?;
        self.chmod(&m.join("exec.sh"), 0o755)?;
        let dirs: &[(&str, u32)] = &[
            ("sticky-dir", 0o1777),
            ("private-dir", 0o700),
            ("setgid-dir", 0o2775),
            ("readonly-dir", 0o555),
        ];
        for (name, mode) in dirs {
            let rel = m.join(name);
            let data = self.text(200);
            self.file(&rel.join("inside"), &data)?;
            self.chmod(&rel, *mode)?;
        }
        Ok(())
    }

    fn xattrs(&mut self, dirs: &[PathBuf]) -> Result<()> {
        let names: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with("dir-"))
            .cloned()
            .collect();
        for name in names {
            if self.rng.random_bool(0.05) {
                let sum = format!("{:016x}", self.rng.random::<u64>());
                self.setxattr(&name, "user.checksum", sum.as_bytes())?;
                self.setxattr(&name, "user.mime_type", b"text/plain")?;
            }
        }
        if let Some(d) = dirs.get(2) {
            self.setxattr(d, "user.dir.note", b"a directory with an xattr")?;
        }
        let x = PathBuf::from("xattrs");
        self.file(&x.join("many"), b"many xattrs\n")?;
        for i in 0..12 {
            self.setxattr(
                &x.join("many"),
                &format!("user.k{i:02}"),
                format!("v{i}").as_bytes(),
            )?;
        }
        self.file(&x.join("empty-value"), b"empty xattr value\n")?;
        self.setxattr(&x.join("empty-value"), "user.empty", b"")?;
        self.file(&x.join("binary"), b"binary xattr value\n")?;
        let bin = self.random(256);
        self.setxattr(&x.join("binary"), "user.bin", &bin)?;
        self.file(&x.join("large"), b"large xattr value\n")?;
        let large = self.text(2000);
        self.setxattr(&x.join("large"), "user.large", &large)?;
        self.dir(&x.join("dir-with-xattr"))?;
        self.setxattr(&x.join("dir-with-xattr"), "user.a", b"b")?;
        Ok(())
    }

    /// Sets a distinct mtime (with nanoseconds) on every entry, root included.
    /// Runs last: creating entries changes their parent's mtime.
    fn mtimes(&mut self) -> Result<()> {
        let mut all = vec![PathBuf::new()];
        walk(&self.root, Path::new(""), &mut all)?;
        for rel in all {
            let sec = 1_500_000_000 + self.rng.random_range(0..200_000_000i64);
            let nsec = self.rng.random_range(0..1_000_000_000i64);
            set_mtime(&self.abs(&rel), sec, nsec)?;
        }
        Ok(())
    }
}

/// Appends every path under `root.join(rel)` (relative to `root`, sorted,
/// parents before children) to `out`; does not follow symlinks.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<OsString> = fs::read_dir(&dir)
        .with_context(|| format!("read {dir:?}"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let child = rel.join(&name);
        let is_dir = root.join(&child).symlink_metadata()?.is_dir();
        out.push(child.clone());
        if is_dir {
            walk(root, &child, out)?;
        }
    }
    Ok(())
}
