//! Who is on the other end of an API connection (`SO_PEERCRED` and
//! `SO_PEERGROUPS`, read once when the connection is accepted), and what
//! such a caller may ask of the daemon.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tonic::{Request, Status};
use wsfs_fs::persist::Caller;

/// The credentials of a connected process.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
    /// Its process id (logged with a refusal).
    pub pid: i32,
}

/// Reads an integer-array socket option into `out`; returns the bytes filled.
fn sockopt<T>(fd: i32, option: libc::c_int, out: &mut [T]) -> io::Result<usize> {
    let mut len = std::mem::size_of_val(out) as libc::socklen_t;
    // SAFETY: `out` is valid for `len` bytes; the kernel writes at most that.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, option, out.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
}

impl Peer {
    /// The credentials of the process at the other end of `stream`.
    pub fn of(stream: &impl AsRawFd) -> io::Result<Peer> {
        let fd = stream.as_raw_fd();
        let mut cred = [libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        }];
        sockopt(fd, libc::SO_PEERCRED, &mut cred)?;
        let mut groups = vec![0u32; 64];
        let filled = loop {
            match sockopt(fd, libc::SO_PEERGROUPS, &mut groups) {
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) && groups.len() < 1 << 16 => {
                    groups.resize(groups.len() * 4, 0);
                }
                other => break other?,
            }
        };
        groups.truncate(filled / std::mem::size_of::<u32>());
        let [cred] = cred;
        Ok(Peer {
            uid: cred.uid,
            gid: cred.gid,
            groups,
            pid: cred.pid,
        })
    }

    /// The credentials of the caller of `request`.
    pub fn of_request<T>(request: &Request<T>) -> Result<Peer, Status> {
        request
            .extensions()
            .get::<Peer>()
            .cloned()
            .ok_or_else(|| Status::permission_denied("the caller's credentials are unknown"))
    }

    /// Whether the caller has every right on this daemon: root, or the
    /// user an ordinary user's daemon runs as (its own daemon).
    pub fn has_every_right(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        self.uid == 0 || self.uid == unsafe { libc::geteuid() }
    }

    /// Whether the caller is root or in `group` (the admin group).
    pub fn is_admin(&self, group: Option<u32>) -> bool {
        self.has_every_right() || group.is_some_and(|g| self.gid == g || self.groups.contains(&g))
    }

    /// A refusal, logged with who was refused.
    fn refuse(&self, message: String) -> Status {
        tracing::warn!(uid = self.uid, pid = self.pid, %message, "refused a request");
        Status::permission_denied(message)
    }

    /// Refuses `what` unless the caller is root or in the admin group.
    pub fn require_admin(&self, what: &str, group: Option<u32>) -> Result<(), Status> {
        if self.is_admin(group) {
            return Ok(());
        }
        Err(self.refuse(format!(
            "permission denied: {what} needs root or membership of the daemon's admin group (WSFS_ADMIN_GROUP{}); \
             uid {} is neither, and nothing was changed",
            group.map_or(" is not set".into(), |g| format!(", gid {g}")),
            self.uid
        )))
    }

    /// The credentials to read a persist's source with: none (the daemon's
    /// own) for root and the daemon's own user, the caller's for anyone else.
    pub fn caller(&self) -> Option<Caller> {
        (!self.has_every_right()).then(|| Caller {
            uid: self.uid,
            gid: self.gid,
            groups: self.groups.clone(),
        })
    }

    /// Refuses to touch a view `owner` attached unless the caller is root or that user.
    pub fn require_owner(&self, what: &str, owner: u32) -> Result<(), Status> {
        if self.has_every_right() || self.uid == owner {
            return Ok(());
        }
        Err(self.refuse(format!(
            "permission denied: {what}: the view was attached by uid {owner}, not by uid {}; only that user or root may; \
             nothing was changed",
            self.uid
        )))
    }
}

/// An accepted connection with its peer's credentials, which tonic hands
/// to every request on it (as a [`Peer`] in the request's extensions).
pub struct PeerStream {
    stream: UnixStream,
    peer: Peer,
}

impl PeerStream {
    /// Reads the peer's credentials of an accepted connection.
    pub fn new(stream: UnixStream) -> io::Result<PeerStream> {
        let peer = Peer::of(&stream)?;
        Ok(PeerStream { stream, peer })
    }
}

impl tonic::transport::server::Connected for PeerStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of a socket pair see this process's own credentials.
    #[test]
    fn a_peer_is_read_from_the_socket() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = Peer::of(&a).unwrap();
        // SAFETY: no preconditions.
        let (uid, gid, pid) = unsafe { (libc::geteuid(), libc::getegid(), libc::getpid()) };
        assert_eq!((peer.uid, peer.gid, peer.pid), (uid, gid, pid));
        let outsider = Peer {
            uid: 4242,
            gid: 4242,
            groups: vec![7],
            pid: 1,
        };
        assert!(outsider.require_admin("wsfs gc", None).is_err());
        assert!(outsider.require_admin("wsfs gc", Some(7)).is_ok());
        assert!(outsider.require_owner("detach", 4242).is_ok());
        let refused = outsider.require_owner("detach", 0).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("uid 0"), "{}", refused.message());
        assert_eq!(outsider.caller().map(|c| c.uid), Some(4242));
    }
}
