//! The daemon's shared state: the store, the mount table, the stop signal.

use std::sync::Arc;

use wsfs_fs::store::Store;

use crate::config::Config;
use crate::mounts::Mounts;
use crate::shutdown::Shutdown;

/// Everything a request handler may touch. The store and the mount table do
/// their own locking; the handlers only hold an `Arc<Daemon>`.
pub struct Daemon {
    /// How the daemon was configured.
    pub config: Config,
    /// The store of the state dir.
    pub store: Arc<Store>,
    /// The mounts.
    pub mounts: Mounts,
    /// Stops the server.
    pub shutdown: Shutdown,
    /// This host's name, recorded with each persist.
    pub host: String,
    /// The holder that keeps the mounts across this process's end, if one started it.
    pub link: Option<Arc<wsfs_holder::Link>>,
    /// Where the Prometheus endpoint listens (`--metrics-addr`), if it does.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The host name, for workspace records.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
