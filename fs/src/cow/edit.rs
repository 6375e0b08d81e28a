//! Changes to a copy-on-write view, each made in the upper directory:
//! new entries, deletions (whiteouts where lower entries were), renames,
//! attributes and xattrs (after a copy-up).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use fuser::FileAttr;

use super::merged::{Found, Node};
use super::upper::{is_whiteout, set_opaque, split, user_xattr};
use super::{errno, CowFs};
use crate::manifest::join_path;

/// What to make at a new name.
pub(super) enum New<'a> {
    /// A regular file (opened for the caller when `open` says so).
    File,
    /// A directory.
    Dir,
    /// A FIFO.
    Fifo,
    /// A symlink to this target.
    Symlink(&'a Path),
    /// Another name of the view's inode with this number.
    Link(u64),
}

/// The attribute changes of a `setattr`.
#[derive(Default)]
pub(super) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
}

impl CowFs {
    /// The view's path of `name` in directory `parent` (an inode).
    pub(super) fn child_path(&self, parent: u64, name: &OsStr) -> io::Result<Vec<u8>> {
        Ok(join_path(&self.path_of(parent)?, name.as_bytes()))
    }

    /// Looks up `rel`, remembering its number.
    pub(super) fn lookup_path(&self, rel: &[u8]) -> io::Result<Option<Found>> {
        let found = self.find(rel)?;
        if let Some(f) = &found {
            self.inodes.lock().unwrap().insert(f.ino, rel);
        }
        Ok(found)
    }

    /// What the view shows at `rel`, which must exist.
    pub(super) fn existing(&self, rel: &[u8]) -> io::Result<Found> {
        self.lookup_path(rel)?.ok_or_else(|| errno(libc::ENOENT))
    }

    /// Makes `what` at `rel` with permissions `mode`; returns its attributes.
    pub(super) fn make(&self, rel: &[u8], what: New<'_>, mode: u32) -> io::Result<FileAttr> {
        let _changing = self.changing.lock().unwrap();
        if self.find(rel)?.is_some() {
            return Err(errno(libc::EEXIST));
        }
        let (parent, _) = split(rel);
        self.copy_up(parent, true)?;
        let path = self.upper.path(rel);
        let replaced_whiteout = match self.upper.stat(rel)? {
            Some(meta) if is_whiteout(&meta) => {
                fs::remove_file(&path)?;
                true
            }
            _ => false,
        };
        let perm = fs::Permissions::from_mode(mode & 0o7777);
        match what {
            New::File => {
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                file.set_permissions(perm)?;
            }
            New::Dir => {
                fs::create_dir(&path)?;
                fs::set_permissions(&path, perm)?;
                if replaced_whiteout {
                    // The deleted lower directory's entries stay deleted.
                    set_opaque(&path)?;
                }
            }
            New::Fifo => crate::os::mknod(&path, libc::S_IFIFO | (mode & 0o7777), 0)?,
            New::Symlink(target) => std::os::unix::fs::symlink(target, &path)?,
            New::Link(ino) => {
                let from = self.path_of(ino)?;
                if self.find(&from)?.is_some_and(|f| f.is_dir(&self.tree)) {
                    return Err(errno(libc::EPERM));
                }
                self.copy_up(&from, true)?;
                fs::hard_link(self.upper.path(&from), &path)?;
            }
        }
        let found = self.existing(rel)?;
        self.attr(&found)
    }

    /// Removes the entry at `rel` (`dir`: a directory, which must show nothing).
    pub(super) fn remove(&self, rel: &[u8], dir: bool) -> io::Result<()> {
        let _changing = self.changing.lock().unwrap();
        let found = self.find(rel)?.ok_or_else(|| errno(libc::ENOENT))?;
        match (dir, found.is_dir(&self.tree)) {
            (true, false) => return Err(errno(libc::ENOTDIR)),
            (false, true) => return Err(errno(libc::EISDIR)),
            (true, true) => self.empty_dir(rel)?,
            (false, false) => {}
        }
        let path = self.upper.path(rel);
        match &found.node {
            Node::Upper(_) if dir => fs::remove_dir(&path)?,
            // Its last name: kept for whoever still has it open.
            Node::Upper(meta) if meta.is_file() && meta.nlink() == 1 => {
                self.orphans.adopt(found.ino, &path)?
            }
            Node::Upper(_) => fs::remove_file(&path)?,
            Node::Lower(_) => {}
        }
        let (parent, name) = split(rel);
        if self.lower_child(parent, name)?.is_some() {
            self.copy_up(parent, true)?;
            self.upper.whiteout(rel)?;
        }
        Ok(())
    }

    /// Checks that the view's directory `rel` shows nothing, and empties its
    /// upper directory (of whiteouts: nothing else can be left).
    fn empty_dir(&self, rel: &[u8]) -> io::Result<()> {
        if !self.children(rel)?.is_empty() {
            return Err(errno(libc::ENOTEMPTY));
        }
        if let Ok(entries) = fs::read_dir(self.upper.path(rel)) {
            for entry in entries {
                fs::remove_file(entry?.path())?;
            }
        }
        Ok(())
    }

    /// Renames `from` to `to`, replacing what `to` shows unless `noreplace`.
    /// A directory with lower entries is not moved (`EXDEV`, as overlayfs
    /// without `redirect_dir` answers: `mv` then copies it).
    pub(super) fn rename(&self, from: &[u8], to: &[u8], noreplace: bool) -> io::Result<()> {
        let _changing = self.changing.lock().unwrap();
        let source = self.find(from)?.ok_or_else(|| errno(libc::ENOENT))?;
        let is_dir = source.is_dir(&self.tree);
        let target = self.find(to)?;
        if let Some(target) = &target {
            if noreplace {
                return Err(errno(libc::EEXIST));
            }
            match (is_dir, target.is_dir(&self.tree)) {
                (true, false) => return Err(errno(libc::ENOTDIR)),
                (false, true) => return Err(errno(libc::EISDIR)),
                (true, true) => self.empty_dir(to)?,
                (false, false) => {}
            }
        }
        if is_dir && self.lower_dir(from)?.is_some() {
            return Err(errno(libc::EXDEV));
        }
        let ((from_parent, from_name), (to_parent, to_name)) = (split(from), split(to));
        let lower_from = self.lower_child(from_parent, from_name)?.is_some();
        let lower_to = self.lower_child(to_parent, to_name)?.is_some();
        self.copy_up(from, true)?;
        self.copy_up(to_parent, true)?;
        if let Some(Found {
            ino,
            node: Node::Upper(meta),
        }) = &target
        {
            // The replaced file's last name: kept for whoever has it open.
            if meta.is_file() && meta.nlink() == 1 {
                self.orphans.adopt(*ino, &self.upper.path(to))?;
            }
        }
        fs::rename(self.upper.path(from), self.upper.path(to))?;
        if is_dir && lower_to {
            set_opaque(&self.upper.path(to))?;
        }
        if lower_from {
            self.upper.whiteout(from)?;
        }
        self.inodes.lock().unwrap().moved(from, to);
        Ok(())
    }

    /// Changes the attributes of inode `ino` (at `rel`).
    pub(super) fn set_attr(&self, ino: u64, rel: &[u8], set: &SetAttr) -> io::Result<FileAttr> {
        // Nobody's but the user's: the daemon could not give files away.
        if set.uid.is_some_and(|uid| uid != self.owner.0) || set.gid.is_some_and(|gid| gid != self.owner.1) {
            return Err(errno(libc::EPERM));
        }
        if set.mode.is_some() || set.size.is_some() || set.atime.is_some() || set.mtime.is_some() {
            let _changing = self.changing.lock().unwrap();
            let meta = self.copy_up(rel, set.size != Some(0))?;
            let path = self.upper.path(rel);
            if let Some(mode) = set.mode.filter(|_| !meta.is_symlink()) {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))?;
            }
            if let Some(size) = set.size {
                super::data::open_upper(&path, true)?.set_len(size)?;
            }
            if set.atime.is_some() || set.mtime.is_some() {
                crate::os::set_times(&path, set.atime, set.mtime)?;
            }
        }
        self.attr_of(ino)
    }

    /// The attributes of inode `ino`.
    pub(super) fn attr_of(&self, ino: u64) -> io::Result<FileAttr> {
        let found = self.path_of(ino).and_then(|rel| self.existing(&rel));
        match (found, self.orphans.path(ino)) {
            (Ok(found), _) => self.attr(&found),
            // Unlinked, maybe still open.
            (Err(_), Some(orphan)) => Ok(self.upper_attr(ino, &fs::symlink_metadata(orphan)?)),
            (Err(e), None) => Err(e),
        }
    }

    /// Sets (`Some`) or removes the user xattr `name` of the entry at `rel`;
    /// `flags` as setxattr(2)'s.
    pub(super) fn change_xattr(
        &self,
        rel: &[u8],
        name: &OsStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> io::Result<()> {
        if !user_xattr(name.as_bytes()) {
            return Err(errno(if name.as_bytes().starts_with(b"user.") {
                libc::EPERM
            } else {
                libc::ENOTSUP
            }));
        }
        let _changing = self.changing.lock().unwrap();
        self.copy_up(rel, true)?;
        let path = self.upper.path(rel);
        let exists = xattr::get(&path, name)?.is_some();
        match value {
            Some(_) if exists && flags & libc::XATTR_CREATE != 0 => Err(errno(libc::EEXIST)),
            Some(_) if !exists && flags & libc::XATTR_REPLACE != 0 => Err(errno(libc::ENODATA)),
            Some(value) => xattr::set(&path, name, value),
            None => xattr::remove(&path, name),
        }
    }
}
