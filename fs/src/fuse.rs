//! The FUSE adapter: translates kernel requests into [`Tree`] calls and replies.
//!
//! Everything is immutable, so the kernel may cache entries, attributes,
//! directory listings and pages for long. `open` answers `ENOSYS`: the
//! kernel then stops sending OPEN/RELEASE and keeps page cache across opens,
//! which makes warm reads as fast as native ones (bench/README.md: a warm full
//! read of the bench's corpus at 0.86-1.08x the native one).

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Generation, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyXattr, Request, Session, SessionACL,
};

use crate::manifest::system_time;
use crate::metrics::{FuseMetrics, FuseOp};
use crate::prefetch::AccessTrace;
use crate::tree::{Attr, ChunkSource, NodeType, Tree, TreeError, ROOT_INO};

pub use fuser::{BackgroundSession, Filesystem, Notifier};

/// Entries and attributes never change while a mount lives.
pub(crate) const TTL: Duration = Duration::from_secs(24 * 3600);
/// Preferred I/O size reported in `st_blksize`.
pub(crate) const BLOCK_SIZE: u32 = 128 * 1024;
/// Threads serving requests: reads may wait on the remote, so more than one.
const THREADS: usize = 8;

/// The attributes sent with a negative lookup reply (node id 0).
pub(crate) const NEGATIVE: Attr = Attr {
    ino: 0,
    kind: NodeType::File,
    size: 0,
    perm: 0,
    uid: 0,
    gid: 0,
    mtime_sec: 0,
    mtime_nsec: 0,
    nlink: 0,
};

/// What a mount shows of its tree, and as whose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    /// The tree's inode shown as the mount's root (a view's sub-path).
    pub root: u64,
    /// Every entry shown as owned by this uid and gid instead of the
    /// recorded ones (a mount of an ordinary user's daemon, which cannot
    /// give files to others: its user may then read and change them all).
    pub owner: Option<(u32, u32)>,
}

impl Shown {
    /// The whole tree, with its recorded owners.
    pub const WHOLE: Shown = Shown {
        root: ROOT_INO,
        owner: None,
    };

    /// The inode number the kernel knows for the tree's `ino`, and the
    /// tree's inode for the kernel's: the shown root and the tree's root
    /// trade numbers (the kernel's root is always 1, and the tree's root is
    /// never reached from below a sub-path).
    pub fn swap(&self, ino: u64) -> u64 {
        match ino {
            ROOT_INO => self.root,
            i if i == self.root => ROOT_INO,
            i => i,
        }
    }

    /// The attributes the kernel gets for the tree's `attr`.
    pub fn kernel_attr(&self, attr: &Attr) -> FileAttr {
        let mut out = file_attr(attr);
        out.ino = INodeNo(self.swap(attr.ino));
        if let Some((uid, gid)) = self.owner {
            (out.uid, out.gid) = (uid, gid);
        }
        out
    }
}

/// What a mount's requests tell the daemon: which files its readers read
/// first (the access trace), how many reads are in flight (a prefetch waits
/// for them), and each request's latency.
#[derive(Clone)]
pub struct Readers {
    /// First-read order of the tree's inodes.
    pub trace: Arc<AccessTrace>,
    /// Reads of the tree in flight.
    pub busy: Arc<AtomicUsize>,
    /// Requests by operation.
    pub metrics: Arc<FuseMetrics>,
}

impl Readers {
    /// Runs `read`, a read of the tree's inode `ino`, recorded in the trace
    /// and counted in flight meanwhile.
    pub(crate) fn read<T>(&self, ino: u64, read: impl FnOnce() -> T) -> T {
        self.trace.record(ino);
        self.busy.fetch_add(1, Ordering::Relaxed);
        let done = read();
        self.busy.fetch_sub(1, Ordering::Relaxed);
        done
    }
}

/// A read-only filesystem serving one [`Tree`].
pub struct WsfsFs {
    tree: Arc<Tree>,
    shown: Shown,
    source: Arc<dyn ChunkSource>,
    readers: Readers,
}

impl WsfsFs {
    /// Serves `tree` as `shown`, reading chunks from `source`, telling
    /// `readers` what its requests do.
    pub fn new(tree: Arc<Tree>, shown: Shown, source: Arc<dyn ChunkSource>, readers: Readers) -> Self {
        WsfsFs {
            tree,
            shown,
            source,
            readers,
        }
    }

    /// Times a request of `op` until the returned guard is dropped (after the reply).
    fn timed(&self, op: FuseOp) -> Timed<'_> {
        Timed::start(&self.readers.metrics, op)
    }
}

/// A request being answered; counted when dropped.
pub(crate) struct Timed<'a> {
    metrics: &'a FuseMetrics,
    op: FuseOp,
    started: Instant,
}

impl<'a> Timed<'a> {
    /// Starts timing a request of `op`.
    pub(crate) fn start(metrics: &'a FuseMetrics, op: FuseOp) -> Self {
        Timed {
            metrics,
            op,
            started: Instant::now(),
        }
    }
}

impl Drop for Timed<'_> {
    fn drop(&mut self) {
        self.metrics.record(self.op, self.started);
    }
}

/// The session options of every wsfs mount. Threads share one `/dev/fuse`
/// descriptor (no `clone_fd`): a request a thread has read stays on that
/// descriptor, which the holder keeps open, so a daemon that dies with
/// requests unanswered leaves them to its successor ([`adopt`]).
fn config() -> Config {
    let mut config = Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(THREADS);
    config.clone_fd = false;
    config
}

/// Serves `fs` on `fd`, a `/dev/fuse` descriptor just mounted (it answers
/// the kernel's INIT first). The caller mounted it, and unmounts it: a
/// fuser-made mount would unmount its path when its session is dropped,
/// which could hit a newer mount at the same path.
pub fn serve<FS: Filesystem>(fs: FS, fd: OwnedFd) -> io::Result<BackgroundSession> {
    Session::from_fd(fs, fd, SessionACL::All, config())?.spawn()
}

/// Serves `fs` on a connection an earlier process mounted and initialised
/// (`fd`, from the holder), after asking the kernel to send again the
/// requests that process read but did not answer (Linux 6.9 and later;
/// on older kernels those readers wait for good, which is logged).
pub fn adopt<FS: Filesystem>(fs: FS, fd: OwnedFd) -> io::Result<BackgroundSession> {
    let session = Session::from_initialized_fd(fs, fd, SessionACL::All, config());
    if let Err(e) = session.notifier().resend() {
        tracing::warn!(error = %e, "this kernel cannot resend requests (FUSE_NOTIFY_RESEND, Linux 6.9): reads in flight when the previous daemon stopped stay unanswered");
    }
    session.spawn()
}

pub(crate) fn errno(e: &TreeError) -> Errno {
    match e {
        TreeError::NoInode(_) => Errno::ENOENT,
        TreeError::WrongKind(_, NodeType::Dir) => Errno::EISDIR,
        TreeError::WrongKind(..) => Errno::EINVAL,
        TreeError::Store(_) => Errno::EIO,
    }
}

pub(crate) fn file_type(kind: NodeType) -> FileType {
    match kind {
        NodeType::Dir => FileType::Directory,
        NodeType::File => FileType::RegularFile,
        NodeType::Symlink => FileType::Symlink,
    }
}

pub(crate) fn file_attr(a: &Attr) -> FileAttr {
    let mtime = system_time(a.mtime_sec, a.mtime_nsec);
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// The entries of a directory listing: `.`, `..`, then the children.
fn listing(tree: &Tree, ino: u64) -> Result<Vec<(u64, &[u8])>, TreeError> {
    let children = tree.children(ino)?;
    let mut out = Vec::with_capacity(children.len() + 2);
    out.push((ino, &b"."[..]));
    out.push((ino, &b".."[..]));
    out.extend(children.iter().map(|(name, child)| (*child, &name[..])));
    Ok(out)
}

/// A listxattr answer: each name followed by a NUL.
pub(crate) fn xattr_names<'a>(names: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(name);
        out.push(0);
    }
    out
}

/// Replies to an xattr request: its size when `size` is 0, else the bytes.
pub(crate) fn reply_xattr(reply: ReplyXattr, size: u32, bytes: &[u8]) {
    if size == 0 {
        reply.size(bytes.len() as u32);
    } else if (size as usize) < bytes.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(bytes);
    }
}

/// What every wsfs mount asks of the kernel at INIT: 1 MiB read-ahead;
/// listings carrying each entry's attributes (READDIRPLUS on every
/// listing, not only the first: a walk then reads each file without a
/// LOOKUP first); parallel lookups in one directory; symlink targets in
/// the page cache. Capabilities the kernel lacks are left out.
pub(crate) fn negotiate(config: &mut KernelConfig) {
    if let Err(max) = config.set_max_readahead(1 << 20) {
        let _ = config.set_max_readahead(max);
    }
    for wanted in [
        InitFlags::FUSE_DO_READDIRPLUS,
        InitFlags::FUSE_PARALLEL_DIROPS,
        InitFlags::FUSE_CACHE_SYMLINKS,
    ] {
        let _ = config.add_capabilities(wanted);
    }
}

impl Filesystem for WsfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        negotiate(config);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let _timed = self.timed(FuseOp::Lookup);
        match self.tree.lookup(self.shown.swap(parent.0), name.as_bytes()) {
            Ok(Some(attr)) => reply.entry(&TTL, &self.shown.kernel_attr(attr), Generation(0)),
            // Node id 0: a negative entry the kernel caches for TTL (build
            // tools probe many paths that do not exist).
            Ok(None) => reply.entry(&TTL, &file_attr(&NEGATIVE), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let _timed = self.timed(FuseOp::Getattr);
        match self.tree.attr(self.shown.swap(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &self.shown.kernel_attr(attr)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let _timed = self.timed(FuseOp::Readlink);
        match self.tree.read_link(self.shown.swap(ino.0)) {
            Ok(target) => reply.data(target),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _timed = self.timed(FuseOp::Open);
        // No per-open state: reads are located by inode alone.
        reply.error(Errno::ENOSYS);
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
        let tree_ino = self.shown.swap(ino.0);
        let read = self.readers.read(tree_ino, || {
            self.tree.read(tree_ino, offset, size, self.source.as_ref())
        });
        match read {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let _timed = self.timed(FuseOp::Opendir);
        // As for files: the kernel stops sending OPENDIR/RELEASEDIR (two round
        // trips per directory) and caches listings as with FOPEN_CACHE_DIR.
        reply.error(Errno::ENOSYS);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let _timed = self.timed(FuseOp::Readdir);
        let entries = match listing(&self.tree, self.shown.swap(ino.0)) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(&e)),
        };
        for (i, (child, name)) in entries.iter().enumerate().skip(offset as usize) {
            let kind = self.tree.attr(*child).map(|a| a.kind).unwrap_or(NodeType::Dir);
            if reply.add(
                INodeNo(self.shown.swap(*child)),
                i as u64 + 1,
                file_type(kind),
                OsStr::from_bytes(name),
            ) {
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
        let entries = match listing(&self.tree, self.shown.swap(ino.0)) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(&e)),
        };
        for (i, (child, name)) in entries.iter().enumerate().skip(offset as usize) {
            let Ok(attr) = self.tree.attr(*child) else {
                continue;
            };
            if reply.add(
                INodeNo(self.shown.swap(*child)),
                i as u64 + 1,
                OsStr::from_bytes(name),
                &TTL,
                &self.shown.kernel_attr(attr),
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
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
        // Not a terminal, nor anything else with ioctls: answered without
        // a warning (the kernel forwards every one, and Python's open() asks
        // each file whether it is a tty).
        reply.error(Errno::ENOTTY);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let _timed = self.timed(FuseOp::Statfs);
        let (_, bytes) = self.tree.totals();
        let blocks = bytes.div_ceil(u64::from(BLOCK_SIZE));
        reply.statfs(blocks, 0, 0, self.tree.inodes(), 0, BLOCK_SIZE, 255, BLOCK_SIZE);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _timed = self.timed(FuseOp::Getxattr);
        match self.tree.xattrs(self.shown.swap(ino.0)) {
            Ok(xattrs) => match xattrs.iter().find(|(n, _)| n[..] == *name.as_bytes()) {
                Some((_, value)) => reply_xattr(reply, size, value),
                None => reply.error(Errno::ENODATA),
            },
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _timed = self.timed(FuseOp::Listxattr);
        match self.tree.xattrs(self.shown.swap(ino.0)) {
            Ok(xattrs) => reply_xattr(reply, size, &xattr_names(xattrs.iter().map(|(n, _)| &n[..]))),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{entry, file, layer};
    use crate::manifest::EntryKind;

    #[test]
    fn listings_give_dot_and_dot_dot_then_the_children_by_name() {
        let tree = Tree::build(&[layer(vec![
            file("a", &[b"a"], 0),
            entry("b", EntryKind::Dir { opaque: false }),
            file("b/z", &[b"z"], 0),
        ])]);
        let b = tree.resolve(b"b").unwrap().unwrap();
        let a = tree.resolve(b"a").unwrap().unwrap();
        let root = listing(&tree, ROOT_INO).unwrap();
        assert_eq!(
            root,
            [(ROOT_INO, &b"."[..]), (ROOT_INO, b".."), (a, b"a"), (b, b"b")]
        );
        let names: Vec<&[u8]> = listing(&tree, b).unwrap().into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, [&b"."[..], b"..", b"z"]);
        assert!(matches!(listing(&tree, a), Err(TreeError::WrongKind(..))));
    }

    #[test]
    fn a_sub_path_root_and_the_tree_root_trade_numbers_and_nothing_else_moves() {
        let shown = Shown { root: 7, owner: None };
        assert_eq!(shown.swap(ROOT_INO), 7);
        assert_eq!(shown.swap(7), ROOT_INO);
        assert_eq!(shown.swap(0), 0, "a negative entry stays negative");
        for ino in [2, 6, 8, 1 << 40] {
            assert_eq!(shown.swap(ino), ino);
        }
        assert_eq!(Shown::WHOLE.swap(ROOT_INO), ROOT_INO);
    }
}
