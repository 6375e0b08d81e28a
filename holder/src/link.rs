//! The daemon's end of its holder's socket.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::wire::{self, Op, WireError};
use crate::LINK_FD_ENV;

/// The daemon's connection to the holder that started it.
#[derive(Debug)]
pub struct Link {
    sock: Mutex<OwnedFd>,
}

impl Link {
    /// The link the holder gave this process (its descriptor named by
    /// `WSFS_HOLDER_FD`), or `None` when no holder started it. The variable
    /// is removed so that child processes do not see it, and the descriptor
    /// is made close-on-exec.
    pub fn from_env() -> Result<Option<Link>, WireError> {
        let Some(text) = std::env::var_os(LINK_FD_ENV) else {
            return Ok(None);
        };
        std::env::remove_var(LINK_FD_ENV);
        let fd: RawFd = text
            .to_str()
            .and_then(|t| t.parse().ok())
            .filter(|fd| *fd > 2)
            .ok_or(WireError::Malformed("WSFS_HOLDER_FD is not a descriptor number"))?;
        // SAFETY: fcntl on an arbitrary number only reads its flags or fails.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(WireError::Io(std::io::Error::last_os_error()));
        }
        // SAFETY: the holder passed this descriptor to this process for it to own.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Some(Link {
            sock: Mutex::new(sock),
        }))
    }

    /// Every descriptor the holder keeps, by key: the mounts of the daemon
    /// before this one.
    pub fn take_all(&self) -> Result<Vec<(String, OwnedFd)>, WireError> {
        let sock = self.sock.lock().unwrap();
        wire::send(sock.as_fd(), Op::Take, "", None)?;
        let mut held = Vec::new();
        loop {
            match wire::recv(sock.as_fd())? {
                Some(m) if m.op == Op::End => return Ok(held),
                Some(m) if m.op == Op::Held => {
                    let fd =
                        m.fd.ok_or(WireError::Malformed("a held entry without descriptor"))?;
                    held.push((m.key, fd));
                }
                Some(_) => return Err(WireError::Malformed("unexpected answer to take")),
                None => return Err(WireError::Malformed("the holder closed the socket")),
            }
        }
    }

    /// Has the holder keep a duplicate of `fd` under `key`.
    pub fn hold(&self, key: &str, fd: BorrowedFd<'_>) -> Result<(), WireError> {
        self.send(Op::Hold, key, Some(fd))
    }

    /// Has the holder close what it keeps under `key`.
    pub fn release(&self, key: &str) -> Result<(), WireError> {
        self.send(Op::Release, key, None)
    }

    /// Tells the holder that this daemon serves requests.
    pub fn ready(&self) -> Result<(), WireError> {
        self.send(Op::Ready, "", None)
    }

    /// Tells the holder that this daemon exits to be replaced by the
    /// binaries on disk.
    pub fn restart(&self) -> Result<(), WireError> {
        self.send(Op::Restart, "", None)
    }

    /// The holder's process id (this process's parent).
    pub fn holder_pid(&self) -> u32 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() as u32 }
    }

    fn send(&self, op: Op, key: &str, fd: Option<BorrowedFd<'_>>) -> Result<(), WireError> {
        let sock = self.sock.lock().unwrap();
        wire::send(sock.as_fd(), op, key, fd)
    }
}
