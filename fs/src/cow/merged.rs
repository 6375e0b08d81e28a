//! What a copy-on-write view shows at a path: the upper entry, else the
//! lower one where no whiteout or opaque directory hides it; attributes
//! and merged listings.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use fuser::{FileAttr, FileType, INodeNo};

use super::inodes::upper_ino;
use super::upper::{is_opaque, is_whiteout, origin, split};
use super::{tree_err, CowFs};
use crate::fuse::BLOCK_SIZE;
use crate::manifest::{join_path, system_time};
use crate::tree::{NodeType, Tree};

/// Where an entry of the view lives.
pub(super) enum Node {
    /// In the upper directory.
    Upper(Metadata),
    /// In the tree only (its inode there).
    Lower(u64),
}

/// The entries of a directory: name and what it is.
pub(super) type Entries = Vec<(Vec<u8>, Found)>;

/// An entry of the view and its number.
pub(super) struct Found {
    pub ino: u64,
    pub node: Node,
}

impl Found {
    /// What it is (`tree`: the view's lower tree).
    pub fn kind(&self, tree: &Tree) -> FileType {
        match &self.node {
            Node::Upper(meta) => file_type(meta),
            Node::Lower(ino) => tree
                .attr(*ino)
                .map_or(FileType::RegularFile, |a| crate::fuse::file_type(a.kind)),
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self, tree: &Tree) -> bool {
        self.kind(tree) == FileType::Directory
    }
}

fn file_type(meta: &Metadata) -> FileType {
    let ft = meta.file_type();
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

impl CowFs {
    /// The upper entry at `rel` as the view shows it (`None`: a whiteout).
    fn upper_found(&self, rel: &[u8], meta: Metadata) -> Option<Found> {
        if is_whiteout(&meta) {
            return None;
        }
        let origin = if rel.is_empty() {
            None
        } else {
            origin(&self.upper.path(rel))
        };
        Some(Found {
            ino: upper_ino(&self.shown, rel, &meta, origin),
            node: Node::Upper(meta),
        })
    }

    /// What the view shows at `rel`.
    pub(super) fn find(&self, rel: &[u8]) -> io::Result<Option<Found>> {
        if let Some(meta) = self.upper.stat(rel)? {
            return Ok(self.upper_found(rel, meta));
        }
        let (parent, name) = split(rel);
        Ok(self.lower_child(parent, name)?.map(|ino| Found {
            ino: self.shown.swap(ino),
            node: Node::Lower(ino),
        }))
    }

    /// The tree inode of the lower entry `name` of the view's directory
    /// `parent`, when the view shows that directory's lower contents.
    pub(super) fn lower_child(&self, parent: &[u8], name: &[u8]) -> io::Result<Option<u64>> {
        let Some(dir) = self.lower_dir(parent)? else {
            return Ok(None);
        };
        Ok(self.tree.lookup(dir, name).map_err(tree_err)?.map(|a| a.ino))
    }

    /// The tree directory merged into the view's directory `rel`, if any.
    pub(super) fn lower_dir(&self, rel: &[u8]) -> io::Result<Option<u64>> {
        if rel.is_empty() {
            return Ok(Some(self.shown.root));
        }
        if let Some(meta) = self.upper.stat(rel)? {
            if !meta.is_dir() || is_opaque(&self.upper.path(rel)) {
                return Ok(None);
            }
        }
        let (parent, name) = split(rel);
        let lower = self.lower_child(parent, name)?;
        Ok(lower.filter(|&ino| self.tree.attr(ino).is_ok_and(|a| a.kind == NodeType::Dir)))
    }

    /// The entries of the upper directory `rel` (none when it has none), and
    /// the names its whiteouts hide.
    pub(super) fn upper_children(&self, rel: &[u8]) -> io::Result<(Entries, HashSet<Vec<u8>>)> {
        let mut shown = Vec::new();
        let mut hidden = HashSet::new();
        let entries = match std::fs::read_dir(self.upper.path(rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((shown, hidden)),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().as_bytes().to_vec();
            let child = join_path(rel, &name);
            match self.upper_found(&child, entry.metadata()?) {
                Some(found) => shown.push((name, found)),
                None => {
                    hidden.insert(name);
                }
            }
        }
        Ok((shown, hidden))
    }

    /// The view's directory `rel`: upper entries, then lower ones not
    /// replaced or hidden, sorted by name.
    pub(super) fn children(&self, rel: &[u8]) -> io::Result<Entries> {
        let (mut all, hidden) = self.upper_children(rel)?;
        if let Some(dir) = self.lower_dir(rel)? {
            let upper: HashSet<Vec<u8>> = all.iter().map(|(n, _)| n.clone()).collect();
            for (name, ino) in self.tree.children(dir).map_err(tree_err)? {
                if !upper.contains(&name[..]) && !hidden.contains(&name[..]) {
                    let found = Found {
                        ino: self.shown.swap(*ino),
                        node: Node::Lower(*ino),
                    };
                    all.push((name.to_vec(), found));
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// The attributes the kernel gets for `found`.
    pub(super) fn attr(&self, found: &Found) -> io::Result<FileAttr> {
        match &found.node {
            Node::Lower(ino) => {
                let mut attr = self.shown.kernel_attr(self.tree.attr(*ino).map_err(tree_err)?);
                (attr.uid, attr.gid) = self.owner;
                Ok(attr)
            }
            Node::Upper(meta) => Ok(self.upper_attr(found.ino, meta)),
        }
    }

    /// The attributes of an upper file, numbered `ino`.
    pub(super) fn upper_attr(&self, ino: u64, m: &Metadata) -> FileAttr {
        let mtime = system_time(m.mtime(), m.mtime_nsec() as u32);
        FileAttr {
            ino: INodeNo(ino),
            size: m.size(),
            blocks: m.blocks(),
            atime: system_time(m.atime(), m.atime_nsec() as u32),
            mtime,
            ctime: system_time(m.ctime(), m.ctime_nsec() as u32),
            crtime: mtime,
            kind: file_type(m),
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: m.rdev() as u32,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }
}
