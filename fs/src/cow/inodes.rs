//! Inode numbers of a copy-on-write view, the same for every process that
//! serves it (the kernel keeps them across a daemon restart): a lower entry
//! has its tree's number (a copied-up one too, recorded in its origin
//! xattr), an entry only the upper directory has is [`UPPER_ONLY`] plus its
//! `st_ino` there. Which path each number stands for is known from the
//! requests that made the kernel learn it, and, in a new process, from an
//! index of the upper directory and the tree.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use crate::fuse::Shown;
use crate::tree::ROOT_INO;

/// Set in the numbers of entries only the upper directory has (tree inodes
/// are small and dense).
pub(super) const UPPER_ONLY: u64 = 1 << 63;

/// The kernel's number for the upper entry at `rel` (`origin`: the tree
/// inode it was copied up from).
pub(super) fn upper_ino(shown: &Shown, rel: &[u8], meta: &std::fs::Metadata, origin: Option<u64>) -> u64 {
    if rel.is_empty() {
        return ROOT_INO;
    }
    match origin {
        Some(tree_ino) => shown.swap(tree_ino),
        None => UPPER_ONLY | meta.ino(),
    }
}

/// The path (relative to the view's root) of each inode the kernel knows.
pub(super) struct Inodes {
    paths: HashMap<u64, Vec<u8>>,
}

impl Inodes {
    /// Knows the root only.
    pub fn new() -> Inodes {
        Inodes {
            paths: HashMap::from([(ROOT_INO, Vec::new())]),
        }
    }

    /// Remembers that `ino` is at `rel`.
    pub fn insert(&mut self, ino: u64, rel: &[u8]) {
        if self.paths.get(&ino).is_none_or(|p| p != rel) {
            self.paths.insert(ino, rel.to_vec());
        }
    }

    /// Where `ino` is, if known.
    pub fn path(&self, ino: u64) -> Option<Vec<u8>> {
        self.paths.get(&ino).cloned()
    }

    /// `from` (and everything below it) is now at `to`.
    pub fn moved(&mut self, from: &[u8], to: &[u8]) {
        for path in self.paths.values_mut() {
            let below = path.len() > from.len() && path.starts_with(from) && path[from.len()] == b'/';
            if path[..] == *from || below {
                let mut moved = to.to_vec();
                moved.extend_from_slice(&path[from.len()..]);
                *path = moved;
            }
        }
    }
}
