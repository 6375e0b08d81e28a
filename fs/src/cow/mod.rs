//! Copy-on-write views for a daemon without root: a FUSE file system
//! showing a version's tree (the lower layer, read-only) merged with an
//! upper directory on local disk that takes every change, as kernel
//! overlayfs would, and in its layout ([`upper`]), so that
//! `persist_changes` turns it into a diff layer alike. Kernel overlayfs
//! needs root (or a user namespace, invisible to the user's shell), and
//! fuse-overlayfs stacks a second FUSE file system (ARCHITECTURE.md, "Views
//! of an ordinary user's daemon").
//!
//! No state lives only in this process: inode numbers are derived from the
//! tree and the upper directory ([`inodes`]), and `open` answers `ENOSYS`
//! (files are found by inode; no handles, no OPEN or RELEASE round trips;
//! unlinked files kept for their readers in [`orphans`]), so the next
//! daemon serves the same connection over the same upper directory.

mod copy_up;
mod data;
mod edit;
mod inodes;
mod kernel;
mod merged;
mod orphans;
#[cfg(test)]
mod tests;
mod upper;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub use self::upper::{user_xattr, OVERLAY_XATTRS};
use crate::fuse::{Readers, Shown};
use crate::tree::{ChunkSource, Tree, TreeError};

/// A copy-on-write view: `tree` as `shown`, changes in an upper directory.
pub struct CowFs {
    tree: Arc<Tree>,
    shown: Shown,
    /// Whose every entry is (the daemon's user, or `shown`'s owner).
    owner: (u32, u32),
    source: Arc<dyn ChunkSource>,
    upper: upper::Upper,
    inodes: Mutex<inodes::Inodes>,
    /// The paths of the tree's inodes below the view's root, for a process
    /// asked about inodes an earlier one made the kernel learn.
    lower_paths: OnceLock<HashMap<u64, Vec<u8>>>,
    orphans: orphans::Orphans,
    /// Held by every change of the upper directory's names.
    changing: Mutex<()>,
    readers: Readers,
}

impl CowFs {
    /// Serves `tree` as `shown` with its changes in `upper` (a directory
    /// whose root looks like the view's root; `work`, on the same file
    /// system, holds entries being made), reading chunks from `source`,
    /// telling `readers` what its requests do (reads of lower files are
    /// traced and counted as the read-only views' are). `upper` may hold
    /// the changes of an earlier process serving the view.
    pub fn new(
        tree: Arc<Tree>,
        shown: Shown,
        source: Arc<dyn ChunkSource>,
        upper: PathBuf,
        work: PathBuf,
        readers: Readers,
    ) -> io::Result<CowFs> {
        // SAFETY: geteuid and getegid have no preconditions.
        let owner = shown
            .owner
            .unwrap_or_else(|| unsafe { (libc::geteuid(), libc::getegid()) });
        let upper = upper::Upper::new(upper, work)?;
        let fs = CowFs {
            tree,
            shown,
            owner,
            source,
            orphans: orphans::Orphans::new(upper.orphans())?,
            upper,
            inodes: Mutex::new(inodes::Inodes::new()),
            lower_paths: OnceLock::new(),
            changing: Mutex::new(()),
            readers,
        };
        fs.index_upper(Vec::new())?;
        Ok(fs)
    }

    /// Learns the number of every entry below `rel` in the upper directory.
    fn index_upper(&self, rel: Vec<u8>) -> io::Result<()> {
        for (name, found) in self.upper_children(&rel)?.0 {
            let child = crate::manifest::join_path(&rel, &name);
            self.inodes.lock().unwrap().insert(found.ino, &child);
            if found.is_dir(&self.tree) {
                self.index_upper(child)?;
            }
        }
        Ok(())
    }

    /// Where inode `ino` is (relative to the view's root).
    fn path_of(&self, ino: u64) -> io::Result<Vec<u8>> {
        if let Some(path) = self.inodes.lock().unwrap().path(ino) {
            return Ok(path);
        }
        let lower = self
            .lower_paths
            .get_or_init(|| self.tree.paths_below(self.shown.root));
        lower
            .get(&self.shown.swap(ino))
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }
}

/// A tree error as the errno the kernel gets.
fn tree_err(e: TreeError) -> io::Error {
    io::Error::from_raw_os_error(crate::fuse::errno(&e).code())
}

/// An errno as an error.
fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}
