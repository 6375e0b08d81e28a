//! Where a daemon lives: the files of its state dir, creating that dir, and
//! the umask of its processes (the state dir and socket are settings: `config`).

use std::path::{Path, PathBuf};

/// The daemon's log in its state dir.
pub fn log_file(state_dir: &Path) -> PathBuf {
    state_dir.join("wsfsd.log")
}

/// The lock that makes one daemon per state dir, held for the daemon's life.
pub fn lock_file(state_dir: &Path) -> PathBuf {
    state_dir.join("wsfsd.lock")
}

/// The daemon's socket when no setting names one.
pub fn default_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("wsfsd.sock")
}

/// Creates the state dir (and missing parents) with mode 0700 and makes an
/// existing one 0700: it holds the frame cache, whose plaintext chunks come
/// from files of every mode. Someone else's state dir is an error saying whose, and what to do.
pub fn create_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(dir)?.uid();
    if me != 0 && owner != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {owner}, not to you (uid {me}): to use that user's daemon, set \
                 WSFS_SOCKET to the socket it offers; else give WSFS_STATE_DIR a directory of your own"
            ),
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// What the daemon and its holder create is theirs alone (files 0600,
/// directories 0700) unless they say otherwise: set before anything is created.
pub fn private_umask() {
    // SAFETY: umask has no preconditions and cannot fail.
    unsafe { libc::umask(0o077) };
}
