//! Descriptors of the upper files the kernel has open. Handles are always
//! 0 (a next daemon would not know ours): a file is found by its inode, its
//! descriptors opened on demand and kept until its last release, so that a
//! file unlinked while open still reads and writes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The descriptors of one inode, and how many opens use them.
#[derive(Default)]
struct Open {
    opens: u32,
    read: Option<Arc<File>>,
    write: Option<Arc<File>>,
}

/// Open upper files by inode.
#[derive(Default)]
pub(super) struct Files {
    open: Mutex<HashMap<u64, Open>>,
}

impl Files {
    /// One more open of `ino`.
    pub fn opened(&self, ino: u64) {
        self.open.lock().unwrap().entry(ino).or_default().opens += 1;
    }

    /// One open of `ino` fewer (one of an earlier process's too); the
    /// descriptors go with the last.
    pub fn released(&self, ino: u64) {
        let mut open = self.open.lock().unwrap();
        if let Some(o) = open.get_mut(&ino) {
            o.opens = o.opens.saturating_sub(1);
            if o.opens == 0 {
                open.remove(&ino);
            }
        }
    }

    /// A descriptor of `ino` for reading or writing, kept from before or
    /// opened now at `path` (in the upper directory).
    pub fn get(
        &self,
        ino: u64,
        write: bool,
        path: impl FnOnce() -> io::Result<std::path::PathBuf>,
    ) -> io::Result<Arc<File>> {
        if let Some(file) = self.cached(ino, write) {
            return Ok(file);
        }
        let file = Arc::new(open(&path()?, write)?);
        let mut open = self.open.lock().unwrap();
        let slot = open.entry(ino).or_default();
        let kept = if write { &mut slot.write } else { &mut slot.read };
        Ok(kept.get_or_insert(file).clone())
    }

    /// The descriptor kept for `ino`, if any.
    pub fn cached(&self, ino: u64, write: bool) -> Option<Arc<File>> {
        let open = self.open.lock().unwrap();
        let o = open.get(&ino)?;
        if write { &o.write } else { &o.read }.clone()
    }

    /// Any descriptor kept for `ino` (for the attributes of a file unlinked while open).
    pub fn any(&self, ino: u64) -> Option<Arc<File>> {
        self.cached(ino, false).or_else(|| self.cached(ino, true))
    }
}

fn open(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new().read(!write).write(write).open(path)
}
