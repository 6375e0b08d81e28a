//! Where a daemon lives: the files of its state dir, creating that dir, and
//! the umask of its processes (the state dir and socket are settings: `config`).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The daemon's log in its state dir.
pub fn log_file(state_dir: &Path) -> PathBuf {
    state_dir.join("wsfsd.log")
}

/// The lock that makes one daemon per state dir, held for the daemon's life.
pub fn lock_file(state_dir: &Path) -> PathBuf {
    state_dir.join("wsfsd.lock")
}

/// Takes the lock that makes one daemon per state dir (`wsfsd.lock`,
/// exclusive, without waiting; held while the returned file is open), first
/// creating the state dir, and writes `socket` into it: a client that
/// reaches no daemon on another socket learns where this one listens
/// ([`served_socket`]).
pub fn lock_state_dir(dir: &Path, socket: &Path) -> std::io::Result<std::fs::File> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let context =
        |what: String| move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what} ({e})"));
    create_state_dir(dir).map_err(context(format!("cannot create state dir {}", dir.display())))?;
    let path = lock_file(dir);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(context(format!("cannot open {}", path.display())))?;
    // SAFETY: a valid descriptor; flock has no memory effects.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::other(format!(
            "another wsfsd already serves state dir {}{} (stop it with `wsfs shutdown`)",
            dir.display(),
            served_socket(dir).map_or(String::new(), |s| format!(" on {}", s.display()))
        )));
    }
    file.set_len(0)?;
    file.write_all(socket.as_os_str().as_encoded_bytes())?;
    Ok(file)
}

/// The socket the daemon holding the state dir's lock said it serves.
pub fn served_socket(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read(lock_file(dir)).ok()?;
    (!text.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&text)))
}

/// The daemon's socket when no setting names one: an ordinary user's in
/// `wsfs/` of its runtime dir (`$XDG_RUNTIME_DIR`, a per-login tmpfs) when
/// it has one, else (and root's) in the state dir.
pub fn default_socket(state_dir: &Path, runtime_dir: Option<&Path>) -> PathBuf {
    match runtime_dir.filter(|dir| dir.is_absolute()) {
        Some(dir) => dir.join("wsfs/wsfsd.sock"),
        None => state_dir.join("wsfsd.sock"),
    }
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
