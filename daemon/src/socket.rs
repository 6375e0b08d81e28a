//! Listening sockets created with their final owner and mode: bound inside
//! a private directory, given their mode there, then renamed into place, so
//! that nobody can connect through a wider mode for even a moment.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use tokio::net::UnixListener;

/// Binds a socket at `path`: mode 0600, or 0660 with group `group`.
/// Replaces a socket a dead daemon left; refuses to replace anything else.
/// A parent directory it creates is 0700, or 0750 with group `group`.
pub fn bind(path: &Path, group: Option<u32>, what: &str) -> Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{what} {} names no file", path.display()))?;
    if !parent.exists() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(parent, None, Some(gid))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o750))?;
        }
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => bail!(
            "{what} {} exists and is not a socket: remove it or choose another path",
            path.display()
        ),
        _ => {}
    }
    let private = parent.join(format!(".{}.{}.bind", name.to_string_lossy(), std::process::id()));
    let _ = fs::remove_dir_all(&private);
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
        .create(&private)
        .with_context(|| format!("cannot create {}", private.display()))?;
    let bound = bind_in(&private.join("socket"), path, group);
    let _ = fs::remove_dir_all(&private);
    bound.with_context(|| format!("cannot listen on {what} {}", path.display()))
}

/// Binds at `temporary` (in a private directory), sets the final mode and
/// group, and moves the socket to `path`.
fn bind_in(temporary: &Path, path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    let listener = std::os::unix::net::UnixListener::bind(temporary)?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(temporary, None, Some(gid))?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    fs::set_permissions(temporary, fs::Permissions::from_mode(mode))?;
    fs::rename(temporary, path)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_is_bound_with_its_final_mode_over_a_stale_one_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/d.sock");
        drop(bind(&path, None, "the socket").unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A stale socket is replaced; with a group, the mode is 0660.
        let _listener = bind(&path, Some(0), "the socket").unwrap();
        assert_eq!(mode(&path), 0o660);
        let names: Vec<_> = fs::read_dir(dir.path().join("run")).unwrap().collect();
        assert_eq!(names.len(), 1, "no private directory is left behind");
        let file = dir.path().join("file");
        fs::write(&file, b"keep").unwrap();
        let refused = bind(&file, None, "the socket").unwrap_err();
        assert!(format!("{refused:#}").contains("not a socket"), "{refused:#}");
        assert_eq!(fs::read(&file).unwrap(), b"keep");
    }
}
