//! Where a daemon lives: its state dir and socket, from the environment.

use std::path::PathBuf;

/// `WSFS_STATE_DIR`, else `/var/lib/wsfs` for root, else
/// `$XDG_STATE_HOME/wsfs` or `~/.local/state/wsfs`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WSFS_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/wsfs");
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("wsfs");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/state/wsfs")
}

/// `WSFS_SOCKET`, else `wsfsd.sock` in the state dir.
pub fn socket(state_dir: &std::path::Path) -> PathBuf {
    match std::env::var_os("WSFS_SOCKET").filter(|s| !s.is_empty()) {
        Some(socket) => PathBuf::from(socket),
        None => state_dir.join("wsfsd.sock"),
    }
}
