//! Reading trees the way a build does, the same code through a mount and natively.

use std::fs::File;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Buffer size of every read call (FUSE's usual maximum read).
const BUF: usize = 128 * 1024;

/// What a read covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// Regular files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Walks `root` depth-first, each directory's entries in readdir order and
/// a subdirectory as soon as it is listed (as `find`, `tar c` and `cp -r`
/// do; symlinks not followed), and reads every regular file to its end.
pub fn read_tree(root: &Path) -> Result<Read> {
    let mut total = Read::default();
    let mut buf = vec![0; BUF];
    walk(root, &mut |path| {
        total.bytes += read_file(path, &mut buf)?;
        total.files += 1;
        Ok(())
    })?;
    Ok(total)
}

/// Walks `root` like [`read_tree`] but only stats each file (what an
/// unchanged re-persist must at least do); returns the number of files.
pub fn stat_tree(root: &Path) -> Result<u64> {
    let mut files = 0;
    walk(root, &mut |path| {
        std::fs::symlink_metadata(path)?;
        files += 1;
        Ok(())
    })?;
    Ok(files)
}

/// Calls `file` with each regular file below `dir`, in the order
/// [`read_tree`] describes.
fn walk(dir: &Path, file: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), file)?;
        } else if kind.is_file() {
            file(&entry.path())?;
        }
    }
    Ok(())
}

/// Reads the files `paths` (relative to `root`) to their ends.
pub fn read_files<'a>(root: &Path, paths: impl IntoIterator<Item = &'a Path>) -> Result<Read> {
    let mut total = Read::default();
    let mut buf = vec![0; BUF];
    for path in paths {
        total.bytes += read_file(&root.join(path), &mut buf)?;
        total.files += 1;
    }
    Ok(total)
}

/// Opens `path` and reads its first byte.
pub fn first_byte(path: &Path) -> Result<()> {
    let mut byte = [0];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut byte))
        .with_context(|| format!("cannot read {}", path.display()))?;
    anyhow::ensure!(n == 1, "{} is empty", path.display());
    Ok(())
}

fn read_file(path: &Path, buf: &mut [u8]) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = 0;
    loop {
        match file.read(buf) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}
