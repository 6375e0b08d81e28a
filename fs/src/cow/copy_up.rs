//! Copy-up: bringing a lower entry (and the directories above it) into the
//! upper directory before its first change, with its mode, mtime and user
//! xattrs, its bytes read through the view's chunk source.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use super::upper::{set_origin, split, user_xattr};
use super::{errno, tree_err, CowFs};
use crate::manifest::system_time;
use crate::tree::NodeType;

/// Bytes read from the tree at once while copying a file up.
const COPY_PIECE: u32 = 1 << 20;

impl CowFs {
    /// The upper entry at `rel`, copied up from the lower tree first if
    /// needed (with its bytes unless `content` is false: it is about to be
    /// truncated). The caller holds `changing`.
    pub(super) fn copy_up(&self, rel: &[u8], content: bool) -> io::Result<Metadata> {
        if let Some(meta) = self.upper.stat(rel)? {
            return Ok(meta);
        }
        if rel.is_empty() {
            // The upper root itself is gone (a cleaner emptied /tmp?).
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the view's upper directory {} is gone",
                    self.upper.path(rel).display()
                ),
            ));
        }
        let (parent, name) = split(rel);
        self.copy_up(parent, true)?;
        let ino = self
            .lower_child(parent, name)?
            .ok_or_else(|| errno(libc::ENOENT))?;
        let temp = self.upper.temp();
        let made = self.copy_into(ino, &temp, content);
        let placed = made.and_then(|()| {
            // The parent's mtime stays: the view's directory did not change.
            let parent_path = self.upper.path(parent);
            let parent_mtime = fs::symlink_metadata(&parent_path)?.modified()?;
            fs::rename(&temp, self.upper.path(rel))?;
            crate::os::set_times(&parent_path, None, Some(parent_mtime))
        });
        if let Err(e) = placed {
            let _ = fs::remove_dir(&temp).or_else(|_| fs::remove_file(&temp));
            return Err(e);
        }
        self.upper.stat(rel)?.ok_or_else(|| errno(libc::ENOENT))
    }

    /// Makes at `path` a copy of tree inode `ino`.
    fn copy_into(&self, ino: u64, path: &std::path::Path, content: bool) -> io::Result<()> {
        let attr = *self.tree.attr(ino).map_err(tree_err)?;
        match attr.kind {
            NodeType::Dir => fs::create_dir(path)?,
            NodeType::Symlink => {
                let target = self.tree.read_link(ino).map_err(tree_err)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(target), path)?;
            }
            NodeType::File => {
                let mut file = File::create_new(path)?;
                let mut offset = 0;
                while content && offset < attr.size {
                    let bytes = self
                        .tree
                        .read(ino, offset, COPY_PIECE, self.source.as_ref())
                        .map_err(tree_err)?;
                    if bytes.is_empty() {
                        break;
                    }
                    file.write_all(&bytes)?;
                    offset += bytes.len() as u64;
                }
            }
        }
        // A symlink has no mode of its own and takes no user xattrs: it is
        // numbered as an upper entry from now on.
        if attr.kind != NodeType::Symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(u32::from(attr.perm)))?;
            for (name, value) in self.tree.xattrs(ino).map_err(tree_err)? {
                if user_xattr(name) {
                    xattr::set(path, OsStr::from_bytes(name), value)?;
                }
            }
            set_origin(path, ino)?;
        }
        crate::os::set_times(path, None, Some(system_time(attr.mtime_sec, attr.mtime_nsec)))
    }
}
