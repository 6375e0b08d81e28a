//! FUSE mounts of an ordinary user's daemon, made and unmade by
//! `fusermount3`, the setuid helper of the `fuse3` package: an ordinary
//! user may not call `mount(2)`, and `/dev/fuse` need not even be open to
//! it. `fusermount3` opens `/dev/fuse`, mounts it on a directory the user
//! may write, and hands the descriptor back over the socket that
//! `_FUSE_COMMFD` names (`SCM_RIGHTS`). Such mounts are always `nosuid`
//! and `nodev`, and only their user reaches them (no `allow_other`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The helper, found on `PATH`.
const FUSERMOUNT: &str = "fusermount3";

/// Mounts a new FUSE connection named `fsname` on `mountpoint`; returns
/// its `/dev/fuse` descriptor.
pub fn mount(fsname: &str, mountpoint: &Path, read_only: bool) -> io::Result<OwnedFd> {
    let (ours, theirs) = wsfs_holder::wire::pair()?;
    let options = format!(
        "{},nosuid,nodev,default_permissions,subtype=wsfs,fsname={}",
        if read_only { "ro" } else { "rw" },
        escape(fsname)
    );
    let mut command = Command::new(FUSERMOUNT);
    command
        .arg("-o")
        .arg(options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let inherited = theirs.as_raw_fd();
    // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec on
    // the socket the child is to inherit.
    unsafe {
        command.pre_exec(move || match libc::fcntl(inherited, libc::F_SETFD, 0) {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        });
    }
    let child = command.spawn().map_err(|e| missing_helper(e, "mount"))?;
    drop(theirs);
    let mut byte = [0u8; 1];
    let received = wsfs_holder::wire::recv_with_fd(ours.as_fd(), &mut byte);
    let output = child.wait_with_output()?;
    match received {
        Ok(Some((_, Some(fd)))) if output.status.success() => Ok(fd),
        _ => Err(failed("mount", mountpoint, &output)),
    }
}

/// Unmounts the FUSE mount at `mountpoint`; `lazy` detaches it even while
/// busy. A busy mount is `EBUSY`, a path where nothing is mounted `EINVAL`,
/// as `umount2(2)` says.
pub fn unmount(mountpoint: &Path, lazy: bool) -> io::Result<()> {
    let mut command = Command::new(FUSERMOUNT);
    command
        .arg(if lazy { "-uz" } else { "-u" })
        .arg("--")
        .arg(mountpoint);
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| missing_helper(e, "unmount"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    // fusermount3 says what umount2(2) said, as strerror words.
    let errno = if said.contains("Device or resource busy") {
        Some(libc::EBUSY)
    } else if said.contains("not found in") || said.contains("not mounted") {
        Some(libc::EINVAL)
    } else {
        None
    };
    match errno {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => Err(failed("unmount", mountpoint, &output)),
    }
}

/// `fsname` as a `fusermount3` option value: `,` and `\` escaped.
fn escape(fsname: &str) -> String {
    let mut out = String::with_capacity(fsname.len());
    for c in fsname.chars() {
        if matches!(c, ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn missing_helper(e: io::Error, what: &str) -> io::Error {
    if e.kind() == io::ErrorKind::NotFound {
        io::Error::other(format!(
            "cannot {what} without root: {FUSERMOUNT} is not installed (Debian and Ubuntu: apt-get install fuse3)"
        ))
    } else {
        io::Error::other(format!("cannot run {FUSERMOUNT}: {e}"))
    }
}

fn failed(what: &str, mountpoint: &Path, output: &std::process::Output) -> io::Error {
    let said = String::from_utf8_lossy(&output.stderr);
    // fusermount3 opens the device as the user: udev makes it 0666 on a
    // desktop or laptop, but a machine without udev may leave it 0600.
    let hint = if said.contains("/dev/fuse: Permission denied") {
        ": /dev/fuse must be open to every user, as udev makes it (ask root to `chmod 0666 /dev/fuse`)"
    } else {
        ""
    };
    io::Error::other(format!(
        "{FUSERMOUNT} could not {what} {} ({}): {}{hint}",
        mountpoint.display(),
        output.status,
        said.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_and_backslashes_are_escaped_in_the_fsname() {
        assert_eq!(escape("wsfs:a,b\\c"), "wsfs:a\\,b\\\\c");
        assert_eq!(escape("wsfs:me/proj"), "wsfs:me/proj");
    }
}
