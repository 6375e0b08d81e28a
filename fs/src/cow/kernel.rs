//! The kernel's requests to a copy-on-write view, translated into the
//! view's operations and replied to.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::edit::{New, SetAttr};
use super::merged::{Found, Node};
use super::upper::user_xattr;
use super::{tree_err, CowFs};
use crate::fuse::{file_attr, negotiate, reply_xattr, xattr_names, Filesystem, Timed, NEGATIVE, TTL};
use crate::metrics::FuseOp;

/// A listing's entry: number, name, and what it is (none for `.` and `..`).
type Listed = (u64, Vec<u8>, Option<Found>);

/// The errno the kernel gets for `e`.
fn kernel_errno(e: io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    })
}

fn reply_entry(reply: ReplyEntry, made: io::Result<fuser::FileAttr>) {
    match made {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(kernel_errno(e)),
    }
}

fn reply_data(reply: ReplyData, read: io::Result<Vec<u8>>) {
    match read {
        Ok(bytes) => reply.data(&bytes),
        Err(e) => reply.error(kernel_errno(e)),
    }
}

fn reply_empty(reply: ReplyEmpty, done: io::Result<()>) {
    match done {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(kernel_errno(e)),
    }
}

impl CowFs {
    fn timed(&self, op: FuseOp) -> Timed<'_> {
        Timed::start(&self.readers.metrics, op)
    }

    /// Makes `what` as `name` in directory `parent`.
    fn make_in(
        &self,
        parent: INodeNo,
        name: &OsStr,
        what: New<'_>,
        mode: u32,
        umask: u32,
    ) -> io::Result<fuser::FileAttr> {
        let rel = self.child_path(parent.0, name)?;
        self.make(&rel, what, mode & !umask)
    }

    /// The listing of directory `ino` from `offset` on: `.`, `..`, then the children.
    fn listing(&self, ino: u64) -> io::Result<Vec<Listed>> {
        let rel = self.path_of(ino)?;
        let children = self.children(&rel)?;
        let mut inodes = self.inodes.lock().unwrap();
        let mut out = vec![(ino, b".".to_vec(), None), (ino, b"..".to_vec(), None)];
        for (name, found) in children {
            inodes.insert(found.ino, &crate::manifest::join_path(&rel, &name));
            out.push((found.ino, name, Some(found)));
        }
        Ok(out)
    }

    pub(super) fn xattrs_of(&self, ino: u64) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rel = self.path_of(ino)?;
        let all = match self.existing(&rel)?.node {
            Node::Lower(tree_ino) => self.tree.xattrs(tree_ino).map_err(tree_err)?.to_vec(),
            Node::Upper(_) => {
                let path = self.upper.path(&rel);
                let mut all = Vec::new();
                for name in xattr::list(&path)? {
                    if let Some(value) = xattr::get(&path, &name)? {
                        all.push((name.as_bytes().to_vec(), value));
                    }
                }
                all
            }
        };
        Ok(all.into_iter().filter(|(name, _)| user_xattr(name)).collect())
    }
}

impl Filesystem for CowFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        negotiate(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _timed = self.timed(FuseOp::Lookup);
        let found = self
            .child_path(parent.0, name)
            .and_then(|rel| self.lookup_path(&rel));
        match found {
            Ok(Some(found)) => reply_entry(reply, self.attr(&found)),
            // Node id 0: a negative entry the kernel caches. Names appear
            // only through this mount, and the kernel knows when.
            Ok(None) => reply.entry(&TTL, &file_attr(&NEGATIVE), Generation(0)),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _timed = self.timed(FuseOp::Getattr);
        match self.attr_of(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: time(atime),
            mtime: time(mtime),
        };
        match self
            .path_of(ino.0)
            .and_then(|rel| self.set_attr(ino.0, &rel, &set))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _timed = self.timed(FuseOp::Readlink);
        let target = self
            .path_of(ino.0)
            .and_then(|rel| match self.existing(&rel)?.node {
                Node::Lower(tree_ino) => self
                    .tree
                    .read_link(tree_ino)
                    .map(<[u8]>::to_vec)
                    .map_err(tree_err),
                Node::Upper(_) => Ok(std::fs::read_link(self.upper.path(&rel))?
                    .into_os_string()
                    .into_vec()),
            });
        reply_data(reply, target);
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let what = match mode & libc::S_IFMT {
            libc::S_IFREG => New::File,
            libc::S_IFIFO => New::Fifo,
            _ => return reply.error(Errno::EPERM),
        };
        reply_entry(reply, self.make_in(parent, name, what, mode, umask));
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        reply_entry(reply, self.make_in(parent, name, New::Dir, mode, umask));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.child_path(parent.0, name)
                .and_then(|rel| self.remove(&rel, false)),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(
            reply,
            self.child_path(parent.0, name)
                .and_then(|rel| self.remove(&rel, true)),
        );
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        reply_entry(
            reply,
            self.make_in(parent, link_name, New::Symlink(target), 0o777, 0),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let renamed = self.child_path(parent.0, name).and_then(|from| {
            let to = self.child_path(newparent.0, newname)?;
            self.rename(&from, &to, flags.contains(RenameFlags::RENAME_NOREPLACE))
        });
        reply_empty(reply, renamed);
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.make_in(newparent, newname, New::Link(ino.0), 0, 0));
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _timed = self.timed(FuseOp::Open);
        // The kernel stops sending OPEN and RELEASE, and keeps pages across
        // opens (every change goes through this mount): files are copied up
        // at their first change, found by inode.
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.make_in(parent, name, New::File, mode, umask) {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let _timed = self.timed(FuseOp::Read);
        reply_data(reply, self.read_file(ino.0, offset, size));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.write_file(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes are in the upper file when they are answered: nothing to
        // flush, and the kernel stops sending FLUSH at each close.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        reply_empty(reply, self.sync_file(ino.0, datasync));
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Not a terminal, nor anything else with ioctls (the kernel forwards
        // every one; Python's open() asks each file whether it is a tty).
        reply.error(Errno::ENOTTY);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        self.orphans.forget(ino.0);
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _timed = self.timed(FuseOp::Opendir);
        // As for files: no OPENDIR/RELEASEDIR round trips, and the kernel
        // caches listings, which it drops itself at every change of the
        // directory (all of them go through this mount).
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let _timed = self.timed(FuseOp::Readdir);
        let entries = match self.listing(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(kernel_errno(e)),
        };
        for (i, (child, name, found)) in entries.iter().enumerate().skip(offset as usize) {
            let kind = found
                .as_ref()
                .map_or(fuser::FileType::Directory, |f| f.kind(&self.tree));
            if reply.add(INodeNo(*child), i as u64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let _timed = self.timed(FuseOp::Readdirplus);
        let entries = match self.listing(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(kernel_errno(e)),
        };
        for (i, (child, name, found)) in entries.iter().enumerate().skip(offset as usize) {
            let attr = match found {
                Some(found) => self.attr(found),
                None => self.attr_of(*child),
            };
            let Ok(attr) = attr else { continue };
            if reply.add(
                INodeNo(*child),
                i as u64 + 1,
                OsStr::from_bytes(name),
                &TTL,
                &attr,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _timed = self.timed(FuseOp::Statfs);
        match crate::os::statvfs(&self.upper.path(b"")) {
            Ok([blocks, bfree, bavail, files, ffree, bsize, namelen]) => reply.statfs(
                blocks,
                bfree,
                bavail,
                files,
                ffree,
                bsize as u32,
                namelen as u32,
                bsize as u32,
            ),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let set = self
            .path_of(ino.0)
            .and_then(|rel| self.change_xattr(&rel, name, Some(value), flags));
        reply_empty(reply, set);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _timed = self.timed(FuseOp::Getxattr);
        match self.xattrs_of(ino.0) {
            Ok(all) => match all.iter().find(|(n, _)| n[..] == *name.as_bytes()) {
                Some((_, value)) => reply_xattr(reply, size, value),
                None => reply.error(Errno::ENODATA),
            },
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _timed = self.timed(FuseOp::Listxattr);
        match self.xattrs_of(ino.0) {
            Ok(all) => reply_xattr(reply, size, &xattr_names(all.iter().map(|(n, _)| &n[..]))),
            Err(e) => reply.error(kernel_errno(e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let removed = self
            .path_of(ino.0)
            .and_then(|rel| self.change_xattr(&rel, name, None, 0));
        reply_empty(reply, removed);
    }
}
