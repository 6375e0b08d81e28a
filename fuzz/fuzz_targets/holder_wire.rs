//! The holder's messages (daemon ↔ holder, one `SOCK_SEQPACKET` datagram
//! each): decoded from bytes, and received as a datagram through a real
//! socket pair.
#![no_main]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wsfs_holder::wire;

fn sockets() -> &'static (OwnedFd, OwnedFd) {
    static PAIR: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();
    PAIR.get_or_init(|| wire::pair().expect("a socket pair"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok((op, key)) = wire::decode(data) {
        assert_eq!(wire::encode(op, &key).unwrap(), data);
    }
    if data.is_empty() {
        // An empty datagram reads as the peer's end.
        return;
    }
    let (a, b) = sockets();
    // SAFETY: `data` is valid for its length; the socket is ours.
    let sent = unsafe {
        libc::send(
            a.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if sent < 0 {
        return;
    }
    match wire::recv(b.as_fd()) {
        Ok(Some(m)) => {
            assert!(m.fd.is_none());
            assert_eq!(wire::decode(data).ok(), Some((m.op, m.key)));
        }
        Ok(None) => panic!("the peer is open"),
        Err(_) => assert!(data.len() > 1 + wire::MAX_KEY || wire::decode(data).is_err()),
    }
});
