//! The Linux-only system calls of this crate (a port to another system
//! replaces this module, `docs/macos.md`): those persist relies on to read a
//! source tree safely (acting with a caller's credentials, opening a path
//! beneath a root without following symlinks), and holding a file's inode
//! without opening it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Who asked for a persist, when not the daemon itself: source files are
/// read with these credentials, so the caller gets only what it could read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

/// While alive, the calling thread's file-system credentials are a caller's;
/// dropping it restores the process's own. Threads the calling thread
/// starts meanwhile begin with the caller's credentials too.
pub struct AsCaller {
    groups: Vec<libc::gid_t>,
}

fn syscall_result(rc: libc::c_long) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sets this thread's supplementary groups only (the libc wrapper would set
/// every thread's).
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live slice.
    syscall_result(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
}

/// Sets this thread's file-system user and group ids; checks that they took
/// (the calls return the old id, never an error).
fn set_thread_fs_ids(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setfsgid and setfsuid have no memory effects.
    unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsuid, uid);
        let now_gid = libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32;
        let now_uid = libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32;
        if (now_uid, now_gid) != (uid, gid) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}

impl Caller {
    /// Takes on the caller's file-system credentials on this thread.
    pub fn enter(&self) -> io::Result<AsCaller> {
        // SAFETY: getgroups with a null buffer only counts; then fills `groups`.
        let groups = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut groups = vec![0; n.max(0) as usize];
            let n = libc::getgroups(n, groups.as_mut_ptr());
            groups.truncate(n.max(0) as usize);
            groups
        };
        let restore = AsCaller { groups };
        set_thread_groups(&self.groups)?;
        set_thread_fs_ids(self.uid, self.gid)?;
        Ok(restore)
    }
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        // SAFETY: geteuid and getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let restored = set_thread_fs_ids(uid, gid).and_then(|()| set_thread_groups(&self.groups));
        // A thread left with a caller's credentials would act for it later.
        restored.expect("restoring the daemon's own credentials");
    }
}

/// Runs `f` with `caller`'s file-system credentials on this thread (with
/// the process's own when `None`).
pub fn as_caller<T>(caller: Option<&Caller>, f: impl FnOnce() -> T) -> io::Result<T> {
    let _as = caller.map(Caller::enter).transpose()?;
    Ok(f())
}

/// Opens the directory `dir` as a handle (`O_PATH`): to resolve paths
/// beneath, or to mount on. `follow`: a symlink at the end of `dir` is
/// followed, else refused (`ELOOP`).
pub fn open_dir(dir: &Path, follow: bool) -> io::Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes())?;
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | nofollow;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned on success.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2` of `rel` beneath `root` with `flags`: no symlink or magic
/// link anywhere in the path, never outside `root`.
fn openat2_beneath(root: &OwnedFd, rel: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = CString::new(if rel.is_empty() { &b"."[..] } else { rel })?;
    // SAFETY: a plain C struct; all zeroes is valid (no flags).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid path and `how` for the call's duration.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens the file `rel` beneath `root` for reading (see [`openat2_beneath`]),
/// without blocking on a FIFO that was swapped in.
pub fn open_beneath(root: &OwnedFd, rel: &[u8]) -> io::Result<File> {
    let file = File::from(openat2_beneath(root, rel, libc::O_RDONLY | libc::O_NONBLOCK)?);
    // Reads wait for data again (O_NONBLOCK only kept the open from blocking).
    // SAFETY: a valid descriptor; F_SETFL has no memory effects.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_RDONLY) };
    Ok(file)
}

/// Opens the directory `rel` beneath `root` (see [`openat2_beneath`]), as a
/// handle to list and to resolve its entries through.
pub fn open_dir_beneath(root: &OwnedFd, rel: &[u8]) -> io::Result<OwnedFd> {
    openat2_beneath(root, rel, libc::O_PATH | libc::O_DIRECTORY)
}

/// The file at `path` (a symlink itself, not followed) held without being
/// opened for I/O (`O_PATH`): a FUSE file system gets no OPEN, yet the
/// kernel keeps the inode while the file is held.
pub fn hold_inode(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
}

/// The path that reaches exactly what `fd` is open on, and entries below it
/// (`/proc/self/fd/N`).
pub fn fd_path(fd: &OwnedFd) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether an open file is the regular file with device `dev` and inode
/// `ino` (as the walk's `lstat` saw it).
pub fn same_file(file: &File, dev: u64, ino: u64) -> io::Result<bool> {
    let meta = file.metadata()?;
    Ok(meta.is_file() && meta.dev() == dev && meta.ino() == ino)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `mknod(2)`: a FIFO, a socket, or (`S_IFCHR`, device 0) an overlay whiteout,
/// which an ordinary user may make too.
pub fn mknod(path: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: a valid NUL-terminated path.
    syscall_result(unsafe { libc::mknod(path.as_ptr(), mode, rdev) }.into())
}

/// Sets the access and modification times of `path` (a symlink itself, not
/// its target); `None` leaves one as it is.
pub fn set_times(
    path: &Path,
    atime: Option<std::time::SystemTime>,
    mtime: Option<std::time::SystemTime>,
) -> io::Result<()> {
    let spec = |t: Option<std::time::SystemTime>| match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(t) => {
            let since = crate::unix_time::since_epoch(t);
            libc::timespec {
                tv_sec: since.as_secs() as libc::time_t,
                tv_nsec: since.subsec_nanos().into(),
            }
        }
    };
    let times = [spec(atime), spec(mtime)];
    let path = c_path(path)?;
    // SAFETY: a valid path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    syscall_result(rc.into())
}

/// What `statvfs(2)` says of the file system holding `path`: blocks,
/// free blocks, blocks free to users, inodes, free inodes, block size,
/// longest name.
pub fn statvfs(path: &Path) -> io::Result<[u64; 7]> {
    let path = c_path(path)?;
    // SAFETY: a plain C struct, filled by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path and a struct to fill.
    syscall_result(unsafe { libc::statvfs(path.as_ptr(), &mut st) }.into())?;
    Ok([
        st.f_blocks,
        st.f_bfree,
        st.f_bavail,
        st.f_files,
        st.f_ffree,
        st.f_bsize,
        st.f_namemax,
    ])
}
