//! File contents: reads of lower files from the tree, of upper ones from
//! disk; writes to upper files (copied up first). Each request opens the
//! upper file anew: no descriptor outlives it, so nothing is left for a
//! next daemon to lack.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::inodes::UPPER_ONLY;
use super::merged::Node;
use super::{errno, tree_err, CowFs};

/// Where the bytes of a file are.
enum Bytes {
    /// An upper file (in the upper directory, or unlinked and kept).
    Upper(PathBuf),
    /// A lower file: the tree's inode.
    Lower(u64),
}

/// Opens the upper file at `path` to read or write, even when its mode
/// denies the daemon (its owner) that: the kernel checked the access when
/// the file was opened, maybe before a chmod (`cp` of a read-only file
/// creates it read-only, then writes).
pub(super) fn open_upper(path: &Path, write: bool) -> io::Result<File> {
    let open = || OpenOptions::new().read(!write).write(write).open(path);
    match open() {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let mode = fs::symlink_metadata(path)?.permissions().mode();
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o600))?;
            let opened = open();
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            opened
        }
        opened => opened,
    }
}

impl CowFs {
    /// Where the bytes of inode `ino` are: at its last known path when the
    /// entry there is still `ino`; else kept as an orphan (unlinked, or
    /// replaced by a rename, while open); else, for a lower file deleted
    /// from the view, in the tree, whose bytes never change.
    fn bytes_of(&self, ino: u64) -> io::Result<Bytes> {
        let found = self.path_of(ino).and_then(|rel| Ok((self.existing(&rel)?, rel)));
        match found {
            Ok((found, rel)) if found.ino == ino => Ok(match found.node {
                Node::Lower(tree_ino) => Bytes::Lower(tree_ino),
                Node::Upper(_) => Bytes::Upper(self.upper.path(&rel)),
            }),
            Ok(_) => self.gone(ino, errno(libc::ENOENT)),
            Err(e) => self.gone(ino, e),
        }
    }

    /// The bytes of inode `ino`, no longer at any path of the view
    /// (`error` when they are nowhere).
    fn gone(&self, ino: u64, error: io::Error) -> io::Result<Bytes> {
        match self.orphans.path(ino) {
            Some(orphan) => Ok(Bytes::Upper(orphan)),
            None if ino & UPPER_ONLY == 0 => Ok(Bytes::Lower(self.shown.swap(ino))),
            None => Err(error),
        }
    }

    /// The upper file of inode `ino`, copied up first if it is a lower one
    /// still at its path (a lower file deleted from the view, or replaced,
    /// takes no writes: `ESTALE`).
    pub(super) fn upper_file(&self, ino: u64) -> io::Result<PathBuf> {
        if let Some(orphan) = self.orphans.path(ino) {
            return Ok(orphan);
        }
        let rel = self.path_of(ino)?;
        let _changing = self.changing.lock().unwrap();
        if self.existing(&rel)?.ino != ino {
            return Err(errno(libc::ESTALE));
        }
        self.copy_up(&rel, true)?;
        Ok(self.upper.path(&rel))
    }

    /// Up to `size` bytes of inode `ino` from `offset`.
    pub(super) fn read_file(&self, ino: u64, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let path = match self.bytes_of(ino)? {
            Bytes::Lower(tree_ino) => {
                return self
                    .readers
                    .read(tree_ino, || {
                        self.tree.read(tree_ino, offset, size, self.source.as_ref())
                    })
                    .map_err(tree_err)
            }
            Bytes::Upper(path) => path,
        };
        let file = open_upper(&path, false)?;
        let mut bytes = vec![0; size as usize];
        let mut done = 0;
        while done < bytes.len() {
            match file.read_at(&mut bytes[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        bytes.truncate(done);
        Ok(bytes)
    }

    /// Writes `data` at `offset` of inode `ino`.
    pub(super) fn write_file(&self, ino: u64, offset: u64, data: &[u8]) -> io::Result<u32> {
        open_upper(&self.upper_file(ino)?, true)?.write_all_at(data, offset)?;
        Ok(data.len() as u32)
    }

    /// Flushes inode `ino`'s upper file to disk (a lower file is durable).
    pub(super) fn sync_file(&self, ino: u64, datasync: bool) -> io::Result<()> {
        match self.bytes_of(ino)? {
            Bytes::Lower(_) => Ok(()),
            Bytes::Upper(path) => {
                let file = open_upper(&path, false).or_else(|_| open_upper(&path, true))?;
                match datasync {
                    true => file.sync_data(),
                    false => file.sync_all(),
                }
            }
        }
    }
}
