//! Kernel mount calls and `/proc` readings the mount table needs.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn check_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Bind-mounts `source` on the directory `target` (an `O_PATH` descriptor),
/// read-only, `nosuid` and `nodev` from the moment it is visible: the new
/// mount API clones the tree, sets its flags, then moves it into place.
pub fn bind_read_only(source: &Path, target: &OwnedFd) -> io::Result<()> {
    let source = c_path(source)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint;
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let tree =
        check_fd(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags) })?;
    // SAFETY: a plain C struct; all zeroes is valid (nothing to change).
    let mut attr: libc::mount_attr = unsafe { std::mem::zeroed() };
    attr.attr_set = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    // SAFETY: valid descriptor, empty path and attribute struct of the given size.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    } as libc::c_int)?;
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: two valid descriptors and empty paths.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    } as libc::c_int)
}

/// Escapes a path for an overlayfs option, where `,`, `:` and `\\` are special.
fn overlay_escape(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The directories of an overlayfs mount.
pub struct OverlayDirs<'a> {
    /// Read-only lower directory (a wsfs mount, or a directory of one).
    pub lower: &'a Path,
    /// Where changes go.
    pub upper: &'a Path,
    /// Overlayfs scratch space, on the upper's file system.
    pub work: &'a Path,
}

/// Mounts overlayfs at `target`, named `source` in the mount table. Renames
/// of lower directories and metadata-only changes are recorded in the upper
/// directory (`redirect_dir`, `metacopy`) instead of copying data up.
pub fn mount_overlay(source: &str, dirs: &OverlayDirs<'_>, target: &Path) -> io::Result<()> {
    let mut data = b"lowerdir=".to_vec();
    data.extend(overlay_escape(dirs.lower));
    data.extend_from_slice(b",upperdir=");
    data.extend(overlay_escape(dirs.upper));
    data.extend_from_slice(b",workdir=");
    data.extend(overlay_escape(dirs.work));
    data.extend_from_slice(b",redirect_dir=on,metacopy=on,index=off");
    let data = CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let source = CString::new(source).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let target = c_path(target)?;
    // SAFETY: valid NUL-terminated strings; overlay takes its options as a string.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    })
}

/// The type of the file system `path` is on (the mount with the longest
/// matching mount point), when the mount table says.
pub fn fs_type_of(path: &Path) -> Option<String> {
    mounts()
        .ok()?
        .into_iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .map(|m| m.fstype)
}

/// `statvfs(2)` of the file system at `path`.
pub fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    let path = c_path(path)?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: valid NUL-terminated path and a buffer of the right type.
    check(unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) })?;
    // SAFETY: statvfs filled the buffer on success.
    Ok(unsafe { stats.assume_init() })
}

/// Whether this process may mount and unmount by itself (root), or must
/// ask `fusermount3` (an ordinary user's daemon: FUSE mounts only).
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Mounts a new FUSE connection named `fsname` at `mountpoint`, `nosuid`
/// and `nodev`; returns its `/dev/fuse` descriptor. Root mounts it with
/// `mount(2)`, for every user (`allow_other`, with the kernel checking
/// permissions); an ordinary user through `fusermount3`, for itself.
pub fn mount_fuse(fsname: &str, mountpoint: &Path, read_only: bool) -> io::Result<OwnedFd> {
    if !privileged() {
        return crate::fusermount::mount(fsname, mountpoint, read_only);
    }
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?;
    let fd = OwnedFd::from(device);
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let data = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other",
        fd.as_raw_fd()
    );
    let data = CString::new(data).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let source = CString::new(fsname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let target = c_path(mountpoint)?;
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV;
    if read_only {
        flags |= libc::MS_RDONLY;
    }
    // SAFETY: valid NUL-terminated strings; FUSE takes its options as a string.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"fuse.wsfs".as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    })?;
    Ok(fd)
}

/// Unmounts `target`; `lazy` detaches it even while busy. An ordinary
/// user's daemon unmounts only its FUSE mounts, through `fusermount3`.
pub fn unmount(target: &Path, lazy: bool) -> io::Result<()> {
    if !privileged() {
        return crate::fusermount::unmount(target, lazy);
    }
    let target = c_path(target)?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: valid NUL-terminated path.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })
}

/// One mount of this mount namespace.
pub struct Mounted {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its file system type (`fuse` or `fuse.wsfs` for wsfs mounts and their
    /// binds, `overlay` for isolated views).
    pub fstype: String,
    /// Its source (`wsfs:<workspace>` for wsfs mounts and their binds).
    pub source: String,
}

impl Mounted {
    /// A wsfs FUSE mount, a bind of one, or an isolated view's overlay.
    pub fn is_wsfs(&self) -> bool {
        (self.fstype.starts_with("fuse") || self.fstype == "overlay")
            && self.source.starts_with(WSFS_SOURCE_PREFIX)
    }
}

/// The mounts of this mount namespace, from `/proc/self/mountinfo`.
pub fn mounts() -> io::Result<Vec<Mounted>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<Mounted> {
    let point = line.split(' ').nth(4)?;
    // Optional fields end with " - ", then the type and the source.
    let mut tail = line.split(" - ").nth(1)?.split(' ');
    let (fstype, source) = (tail.next()?, tail.next()?);
    Some(Mounted {
        point: PathBuf::from(unescape(point)),
        fstype: fstype.to_string(),
        source: unescape(source).to_string_lossy().into_owned(),
    })
}

/// True when a wsfs mount (or a bind of one) is mounted at `point`.
pub fn is_wsfs_mount(point: &Path) -> bool {
    mounts().is_ok_and(|all| all.iter().any(|m| m.point == point && m.is_wsfs()))
}

/// How the source of every wsfs mount begins (the FUSE `fsname`).
pub const WSFS_SOURCE_PREFIX: &str = "wsfs:";

/// Undoes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape(field: &str) -> std::ffi::OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            out.push((bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_os_string()
}

/// Processes whose working directory, root or open files lie under `path`,
/// as `pid (command)`: what keeps a mount busy.
pub fn holders(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc_dir in procs.flatten() {
        let Some(pid) = proc_dir.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let base = proc_dir.path();
        let mut links: Vec<PathBuf> = vec![base.join("cwd"), base.join("root")];
        if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
            links.extend(fds.flatten().map(|fd| fd.path()));
        }
        let holds = links
            .iter()
            .filter_map(|l| std::fs::read_link(l).ok())
            .any(|target| target.starts_with(path));
        if holds {
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            out.push(format!("{pid} ({})", comm.trim()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsfs_mounts_are_told_by_their_source() {
        let view = "43 27 0:39 / /tmp/a\\040b ro,nosuid shared:1 - fuse wsfs:run-42/build ro,user_id=0";
        let m = parse_mountinfo_line(view).unwrap();
        assert_eq!(m.point, Path::new("/tmp/a b"));
        assert!(m.is_wsfs());
        let other = "44 27 0:40 / /tmp/c rw - fuse sshfs#host: rw";
        assert!(!parse_mountinfo_line(other).unwrap().is_wsfs());
    }

    #[test]
    fn overlay_options_escape_separators() {
        assert_eq!(
            overlay_escape(Path::new("/a,b:c\\d")),
            b"/a\\,b\\:c\\\\d".to_vec()
        );
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/mnt/a\040b"), std::ffi::OsString::from("/mnt/a b"));
        assert_eq!(unescape(r"/x\\"), std::ffi::OsString::from(r"/x\\"));
    }

    #[test]
    fn this_process_holds_its_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        let me = format!("{} ", std::process::id());
        assert!(holders(&cwd).iter().any(|h| h.starts_with(&me)));
        assert!(mounts().unwrap().iter().any(|m| m.point == Path::new("/")));
        assert!(!is_wsfs_mount(Path::new("/")));
    }
}
