//! Processes: running a command with a time limit, waiting for any pid to
//! exit (pidfd, no polling loops), finding the daemons a test started.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// A pidfd for `pid` (Linux >= 5.3).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the returned fd is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until the pidfd is readable (the process exited) or `timeout` passes.
fn poll_pidfd(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r > 0 {
            return true;
        }
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Waits until process `pid` has exited; `true` if it did (or never existed)
/// within `timeout`.
pub fn wait_for_exit(pid: i32, timeout: Duration) -> bool {
    match pidfd_open(pid) {
        Ok(fd) => poll_pidfd(&fd, timeout),
        Err(e) => e.raw_os_error() == Some(libc::ESRCH),
    }
}

/// Whether process `pid` exists (not yet reaped).
pub fn is_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Sends SIGKILL to `pid` and waits up to `timeout` for it to exit.
pub fn kill_and_wait(pid: i32, timeout: Duration) -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for_exit(pid, timeout)
}

/// Runs `cmd` to completion; if it takes longer than `timeout`, kills it and
/// returns `None`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let mut child = cmd.spawn()?;
    match pidfd_open(child.id() as i32) {
        Ok(fd) => {
            if poll_pidfd(&fd, timeout) {
                child.wait().map(Some)
            } else {
                child.kill().ok();
                child.wait()?;
                Ok(None)
            }
        }
        Err(_) => child.wait().map(Some),
    }
}

/// Pids of processes (other than this one) whose command line or environment
/// holds `needle` as a whole item or as the value of `NAME=needle`/`--flag=needle`.
/// Used to find the daemons started for one state dir, so cleanup can end
/// exactly those.
pub fn processes_mentioning(needle: &Path) -> Vec<i32> {
    let needle = needle.as_os_str().as_bytes();
    let mut suffix = b"=".to_vec();
    suffix.extend_from_slice(needle);
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let hit = ["cmdline", "environ"].iter().any(|f| {
            fs::read(entry.path().join(f)).is_ok_and(|data| {
                data.split(|b| *b == 0)
                    .any(|item| item == needle || item.ends_with(&suffix))
            })
        });
        if hit {
            out.push(pid);
        }
    }
    out
}
