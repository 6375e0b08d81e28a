//! Trees to measure: scanning one, and building the default corpus by copying
//! real source files from cargo's unpacked registry.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A regular file of a tree.
pub struct FileEntry {
    /// Path relative to the tree root.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
}

/// What a tree holds, in sorted walk order.
pub struct Tree {
    /// The tree's root directory.
    pub root: PathBuf,
    /// Every regular file.
    pub files: Vec<FileEntry>,
    /// Sum of the regular files' sizes.
    pub bytes: u64,
    /// Number of directories below the root.
    pub dirs: u64,
    /// Number of symlinks.
    pub symlinks: u64,
}

impl Tree {
    /// Walks `root` (without following symlinks).
    pub fn scan(root: &Path) -> Result<Tree> {
        let root = root
            .canonicalize()
            .with_context(|| format!("no tree at {}", root.display()))?;
        let mut tree = Tree {
            root: root.clone(),
            files: Vec::new(),
            bytes: 0,
            dirs: 0,
            symlinks: 0,
        };
        visit(&root, Path::new(""), &mut |rel, kind, size| {
            match kind {
                Kind::Dir => tree.dirs += 1,
                Kind::Symlink => tree.symlinks += 1,
                Kind::File => {
                    tree.bytes += size;
                    tree.files.push(FileEntry {
                        path: rel.to_path_buf(),
                        size,
                    });
                }
            }
            Ok(true)
        })?;
        if tree.files.is_empty() {
            bail!("{} holds no regular files", root.display());
        }
        Ok(tree)
    }

    /// The file whose first byte the attach measurement waits for: the
    /// middle non-empty file in walk order (usually a few directories deep).
    pub fn probe(&self) -> &FileEntry {
        let non_empty: Vec<&FileEntry> = self.files.iter().filter(|f| f.size > 0).collect();
        non_empty
            .get(non_empty.len() / 2)
            .copied()
            .unwrap_or(&self.files[0])
    }
}

/// The default corpus of at most `files` files under `cache`, built once by
/// copying whole crates (in name order) from `$CARGO_HOME/registry/src/*/`.
pub fn default_corpus(cache: &Path, files: usize) -> Result<PathBuf> {
    let dest = cache.join(format!("files-{files}"));
    if dest.is_dir() {
        return Ok(dest);
    }
    let partial = cache.join(format!("files-{files}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let crates = registry_crates()?;
    eprintln!(
        "building the corpus {} from {} crates ...",
        dest.display(),
        crates.len()
    );
    let mut copied = 0;
    for krate in &crates {
        if copied >= files {
            break;
        }
        let name = krate.file_name().expect("a crate dir has a name");
        let top = partial.join(name);
        visit(krate, Path::new(""), &mut |rel, kind, _| {
            if copied >= files {
                return Ok(false);
            }
            let (from, to) = (krate.join(rel), top.join(rel));
            match kind {
                Kind::Dir => fs::create_dir_all(&to)?,
                Kind::Symlink => std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?,
                Kind::File => {
                    fs::create_dir_all(to.parent().expect("a file has a parent"))?;
                    fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
                    copied += 1;
                }
            }
            Ok(true)
        })?;
    }
    if copied < files {
        eprintln!("note: the registry holds only {copied} files (asked for {files})");
    }
    fs::rename(&partial, &dest).with_context(|| format!("cannot create {}", dest.display()))?;
    Ok(dest)
}

/// Crate source directories of every registry index, sorted by crate name.
fn registry_crates() -> Result<Vec<PathBuf>> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = cargo_home.join("registry/src");
    let mut crates = Vec::new();
    for index in
        sorted_entries(&src).with_context(|| format!("no cargo registry sources in {}", src.display()))?
    {
        if index.file_type()?.is_dir() {
            for krate in sorted_entries(&index.path())? {
                if krate.file_type()?.is_dir() {
                    crates.push(krate.path());
                }
            }
        }
    }
    crates.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if crates.is_empty() {
        bail!("no crates in {}: pass --tree DIR", src.display());
    }
    Ok(crates)
}

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// Calls `f(relative path, kind, size)` for everything below `dir`, in sorted
/// order, parents first; stops early when `f` returns false. Skips other kinds.
fn visit(dir: &Path, rel: &Path, f: &mut dyn FnMut(&Path, Kind, u64) -> Result<bool>) -> Result<bool> {
    for entry in sorted_entries(dir)? {
        let meta = entry.metadata()?;
        let kind = match meta.file_type() {
            t if t.is_dir() => Kind::Dir,
            t if t.is_file() => Kind::File,
            t if t.is_symlink() => Kind::Symlink,
            _ => continue,
        };
        let path = rel.join(entry.file_name());
        if !f(&path, kind, meta.len())? {
            return Ok(false);
        }
        if matches!(kind, Kind::Dir) && !visit(&entry.path(), &path, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn sorted_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}
