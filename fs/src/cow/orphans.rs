//! Upper files unlinked while the kernel may still have them open. `open`
//! answers `ENOSYS` (no OPEN or RELEASE round trips; no per-open state a
//! next daemon would lack), so this process never knows which files are
//! open: an unlinked upper file is moved aside instead, under the work
//! directory where persist never looks, and deleted when the kernel
//! forgets its inode (after its last close).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Unlinked upper files by inode.
pub(super) struct Orphans {
    dir: PathBuf,
    files: Mutex<HashMap<u64, PathBuf>>,
}

impl Orphans {
    /// Orphans in `dir`, with those an earlier process left there (named by inode).
    pub fn new(dir: PathBuf) -> io::Result<Orphans> {
        fs::create_dir_all(&dir)?;
        let mut files = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            match entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                Some(ino) => {
                    files.insert(ino, entry.path());
                }
                None => fs::remove_file(entry.path())?,
            }
        }
        Ok(Orphans {
            dir,
            files: Mutex::new(files),
        })
    }

    /// Moves the upper file at `path`, inode `ino`, aside.
    pub fn adopt(&self, ino: u64, path: &Path) -> io::Result<()> {
        let kept = self.dir.join(ino.to_string());
        fs::rename(path, &kept)?;
        self.files.lock().unwrap().insert(ino, kept);
        Ok(())
    }

    /// Where the unlinked file `ino` is, if it is one.
    pub fn path(&self, ino: u64) -> Option<PathBuf> {
        self.files.lock().unwrap().get(&ino).cloned()
    }

    /// The kernel forgot `ino`: nobody can reach it any more.
    pub fn forget(&self, ino: u64) {
        if let Some(path) = self.files.lock().unwrap().remove(&ino) {
            let _ = fs::remove_file(path);
        }
    }
}
