//! The holder's messages: one `SOCK_SEQPACKET` datagram each, carrying an
//! operation, a key (a mount's name) and at most one file descriptor
//! (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use thiserror::Error;

/// Longest key accepted.
pub const MAX_KEY: usize = 255;

/// What a message asks or says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Daemon → holder: keep this descriptor under this key (replacing any).
    Hold,
    /// Daemon → holder: close the descriptor kept under this key.
    Release,
    /// Daemon → holder: send me every descriptor kept.
    Take,
    /// Holder → daemon: one kept descriptor, in answer to [`Op::Take`].
    Held,
    /// Holder → daemon: no more descriptors follow.
    End,
    /// Daemon → holder: I serve requests now.
    Ready,
    /// Daemon → holder: I am about to exit for a restart: start the next
    /// daemon from the binaries on disk (the holder first replaces itself).
    Restart,
}

impl Op {
    fn byte(self) -> u8 {
        match self {
            Op::Hold => b'H',
            Op::Release => b'R',
            Op::Take => b'T',
            Op::Held => b'F',
            Op::End => b'E',
            Op::Ready => b'Y',
            Op::Restart => b'U',
        }
    }

    fn from_byte(b: u8) -> Option<Op> {
        [
            Op::Hold,
            Op::Release,
            Op::Take,
            Op::Held,
            Op::End,
            Op::Ready,
            Op::Restart,
        ]
        .into_iter()
        .find(|op| op.byte() == b)
    }
}

/// A message received.
#[derive(Debug)]
pub struct Message {
    /// What it asks or says.
    pub op: Op,
    /// The mount it is about (empty when none).
    pub key: String,
    /// The descriptor it carries.
    pub fd: Option<OwnedFd>,
}

/// Why a message could not be sent or received.
#[derive(Debug, Error)]
pub enum WireError {
    /// The socket failed.
    #[error("holder socket: {0}")]
    Io(#[from] io::Error),
    /// A key that is not a plain name.
    #[error("key {0:?}: a key is 1 to {MAX_KEY} letters, digits, '.', '-' or '_'")]
    BadKey(String),
    /// The peer sent something that is not a message.
    #[error("holder socket: malformed message ({0})")]
    Malformed(&'static str),
}

/// Whether `key` may name a kept descriptor.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A connected pair of sockets (close-on-exec): the holder's end and the daemon's.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for one descriptor's control message.
fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize }
}

fn iovec(buf: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }
}

/// A message header over one buffer and a control buffer; both must outlive it.
fn header(iov: &mut libc::iovec, control: &mut [u8]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    msg
}

/// Sends one message.
pub fn send(sock: BorrowedFd<'_>, op: Op, key: &str, fd: Option<BorrowedFd<'_>>) -> Result<(), WireError> {
    let mut payload = encode(op, key)?;
    let mut iov = iovec(&mut payload);
    // No control message at all without a descriptor.
    let mut control = vec![0u8; if fd.is_some() { cmsg_space() } else { 0 }];
    let msg = header(&mut iov, &mut control);
    if let Some(fd) = fd {
        // SAFETY: the control buffer has room for one descriptor's header
        // and data (CMSG_SPACE), so the first header and its data are in bounds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg` points at buffers that live until sendmsg returns.
        let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
}

/// Receives one message; `None` when the peer has closed its end.
pub fn recv(sock: BorrowedFd<'_>) -> Result<Option<Message>, WireError> {
    let mut payload = vec![0u8; 1 + MAX_KEY];
    let Some((n, fd)) = recv_with_fd(sock, &mut payload)? else {
        return Ok(None);
    };
    let (op, key) = decode(&payload[..n])?;
    Ok(Some(Message { op, key, fd }))
}

/// Receives bytes into `payload` and the descriptor sent with them, if
/// any (close-on-exec); `None` when the peer has closed its end. Any
/// socket that passes one descriptor with `SCM_RIGHTS` (the holder, or
/// `fusermount3` handing over a new FUSE connection).
pub fn recv_with_fd(
    sock: BorrowedFd<'_>,
    payload: &mut [u8],
) -> Result<Option<(usize, Option<OwnedFd>)>, WireError> {
    let mut iov = iovec(payload);
    let mut control = vec![0u8; cmsg_space()];
    let mut msg = header(&mut iov, &mut control);
    let n = loop {
        // SAFETY: `msg` points at buffers that live until recvmsg returns.
        let rc = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc >= 0 {
            break rc as usize;
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::ConnectionReset => return Ok(None),
            _ => return Err(e.into()),
        }
    };
    let fd = received_fd(&msg);
    if n == 0 {
        return Ok(None);
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(WireError::Malformed("truncated"));
    }
    Ok(Some((n, fd)))
}

/// The bytes of a message (without its descriptor).
pub fn encode(op: Op, key: &str) -> Result<Vec<u8>, WireError> {
    if !key.is_empty() && !valid_key(key) {
        return Err(WireError::BadKey(key.to_string()));
    }
    let mut payload = Vec::with_capacity(1 + key.len());
    payload.push(op.byte());
    payload.extend_from_slice(key.as_bytes());
    Ok(payload)
}

/// The operation and key of a message's bytes (a non-empty datagram).
pub fn decode(payload: &[u8]) -> Result<(Op, String), WireError> {
    let (&op, key) = payload.split_first().ok_or(WireError::Malformed("empty"))?;
    let op = Op::from_byte(op).ok_or(WireError::Malformed("unknown operation"))?;
    let key = String::from_utf8(key.to_vec()).map_err(|_| WireError::Malformed("key not UTF-8"))?;
    if !key.is_empty() && !valid_key(&key) {
        return Err(WireError::BadKey(key));
    }
    Ok((op, key))
}

/// The descriptor a received message carries, owned from now on.
fn received_fd(msg: &libc::msghdr) -> Option<OwnedFd> {
    // SAFETY: recvmsg filled `msg`; the CMSG macros walk its control buffer
    // within msg_controllen, and an SCM_RIGHTS header carries descriptors
    // that now belong to this process.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        let mut found = None;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                found = Some(OwnedFd::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_descriptor_crosses_with_its_key_and_still_reaches_the_same_file() {
        let (a, b) = pair().unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"held").unwrap();
        send(a.as_fd(), Op::Hold, "v-1.2_3", Some(file.as_fd())).unwrap();
        let got = recv(b.as_fd()).unwrap().expect("a message");
        assert_eq!(got.op, Op::Hold);
        assert_eq!(got.key, "v-1.2_3");
        let mut same = std::fs::File::from(got.fd.expect("a descriptor"));
        same.rewind().unwrap();
        let mut text = String::new();
        same.read_to_string(&mut text).unwrap();
        assert_eq!(text, "held");
    }

    #[test]
    fn messages_without_descriptor_and_the_end_of_the_peer() {
        let (a, b) = pair().unwrap();
        send(a.as_fd(), Op::Ready, "", None).unwrap();
        let got = recv(b.as_fd()).unwrap().unwrap();
        assert_eq!(
            (got.op, got.key.as_str(), got.fd.is_none()),
            (Op::Ready, "", true)
        );
        drop(a);
        assert!(recv(b.as_fd()).unwrap().is_none());
    }

    #[test]
    fn keys_that_are_not_plain_names_are_refused() {
        let (a, _b) = pair().unwrap();
        for bad in ["a/b", "a b", &"x".repeat(MAX_KEY + 1)] {
            assert!(matches!(
                send(a.as_fd(), Op::Release, bad, None),
                Err(WireError::BadKey(_))
            ));
        }
    }
}
