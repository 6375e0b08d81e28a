//! Workspace Files: entries a consumer of a workspace declares it needs
//! (Tekton's `files` of a workspace), and the check that a view provides
//! them, with the message users of Tekton know.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use thiserror::Error;

/// A file a workspace must provide: its declared name and its path in the
/// workspace, normalized to `/a/b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceFile {
    /// The declared name (`private-key`).
    pub name: String,
    /// Where it must be, from the workspace root (`/id_ecdsa`).
    pub path: String,
}

/// A declaration that cannot be checked.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FileSpecError {
    /// A name that is empty or holds `/`, `=` or `,`.
    #[error("workspace file name {0:?} is not valid: give a non-empty name without '/', '=' or ','")]
    BadName(String),
    /// A path that leaves the workspace or names its root.
    #[error("workspace file {name:?}: path {path:?} {why}")]
    BadPath {
        /// The file's name.
        name: String,
        /// The path given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two declarations with one name.
    #[error("workspace file {0:?} is declared twice")]
    Duplicate(String),
}

/// Why a view does not pass the check.
#[derive(Debug, Error)]
pub enum FilesCheckError {
    /// A declared file is missing (the Tekton message, word for word).
    #[error(
        "Workspace file missing: workspace \"{workspace}\" does not provide file \"{file}\": expected path \"{expected}\"."
    )]
    Missing {
        /// The workspace as the user named it.
        workspace: String,
        /// The declared name.
        file: String,
        /// Where it was expected, as the user sees the path.
        expected: String,
    },
    /// The view could not be looked at (an I/O error, not an absence).
    #[error("checking workspace file {file:?} at {path}: {error}")]
    Io {
        /// The declared name.
        file: String,
        /// The path looked up.
        path: String,
        /// Why.
        error: io::Error,
    },
}

impl WorkspaceFile {
    /// A declaration; `path` defaults to `/<name>`, and must stay inside the workspace.
    pub fn new(name: &str, path: Option<&str>) -> Result<WorkspaceFile, FileSpecError> {
        if name.is_empty() || name.contains(['/', '=', ',']) {
            return Err(FileSpecError::BadName(name.to_string()));
        }
        let given = path.unwrap_or(name);
        let bad = |why| FileSpecError::BadPath {
            name: name.to_string(),
            path: given.to_string(),
            why,
        };
        let mut parts = Vec::new();
        for part in given.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(bad("leaves the workspace: remove the '..'")),
                p if p.contains('\0') => return Err(bad("holds a NUL byte")),
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(bad("names the workspace root: give a path inside the workspace"));
        }
        Ok(WorkspaceFile {
            name: name.to_string(),
            path: format!("/{}", parts.join("/")),
        })
    }
}

/// Parses `private-key=/id_ecdsa,known_hosts`: comma-separated names, each
/// with an optional `=path` (default `/<name>`); spaces around items are ignored.
pub fn parse_list(text: &str) -> Result<Vec<WorkspaceFile>, FileSpecError> {
    let mut files: Vec<WorkspaceFile> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let file = match item.split_once('=') {
            Some((name, path)) => WorkspaceFile::new(name.trim(), Some(path.trim()))?,
            None => WorkspaceFile::new(item, None)?,
        };
        if files.iter().any(|f| f.name == file.name) {
            return Err(FileSpecError::Duplicate(file.name));
        }
        files.push(file);
    }
    Ok(files)
}

/// Checks that every one of `files` exists (as any kind of entry) in the view
/// mounted at `root`. `workspace` and `shown_root` (where the consumer sees
/// the view, "" for the view's root) only shape the message. Symlinks in the
/// path are followed only while they stay inside the view.
pub fn check(
    root: &Path,
    files: &[WorkspaceFile],
    workspace: &str,
    shown_root: &str,
) -> Result<(), FilesCheckError> {
    let io_error = |file: &WorkspaceFile, error| FilesCheckError::Io {
        file: file.name.clone(),
        path: format!("{}{}", root.display(), file.path),
        error,
    };
    let Some(first) = files.first() else {
        return Ok(());
    };
    let dir = open_path(root).map_err(|e| io_error(first, e))?;
    for file in files {
        match lookup_beneath(&dir, root, &file.path) {
            Ok(true) => {}
            Ok(false) => {
                return Err(FilesCheckError::Missing {
                    workspace: workspace.to_string(),
                    file: file.name.clone(),
                    expected: format!("{}{}", shown_root.trim_end_matches('/'), file.path),
                })
            }
            Err(e) => return Err(io_error(file, e)),
        }
    }
    Ok(())
}

/// An `O_PATH` descriptor of a directory.
fn open_path(dir: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path; the returned descriptor is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `path` (absolute within the view) names an entry under `dir`,
/// without following the last component and without leaving `dir`.
fn lookup_beneath(dir: &OwnedFd, root: &Path, path: &str) -> io::Result<bool> {
    let relative = CString::new(path.trim_start_matches('/')).map_err(io::Error::other)?;
    // SAFETY: open_how is plain integers; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid descriptor, NUL-terminated path and an open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            relative.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor was just opened; closing it is all we do with it.
        drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP) => Ok(false),
        // Kernels before 5.6: a plain lstat (symlinks on the way are followed).
        Some(libc::ENOSYS) => match std::fs::symlink_metadata(root.join(relative.to_str().unwrap_or(""))) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        _ => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_paths() {
        let files = parse_list(" private-key=/id_ecdsa , known_hosts,dir=a/./b/ ").unwrap();
        let got: Vec<(&str, &str)> = files.iter().map(|f| (f.name.as_str(), f.path.as_str())).collect();
        assert_eq!(
            got,
            [
                ("private-key", "/id_ecdsa"),
                ("known_hosts", "/known_hosts"),
                ("dir", "/a/b")
            ]
        );
        assert!(parse_list("").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_declarations() {
        assert!(matches!(parse_list("a=../x"), Err(FileSpecError::BadPath { .. })));
        assert!(matches!(parse_list("a=/"), Err(FileSpecError::BadPath { .. })));
        assert_eq!(parse_list("=x"), Err(FileSpecError::BadName(String::new())));
        assert_eq!(parse_list("a,a=/b"), Err(FileSpecError::Duplicate("a".into())));
    }

    #[test]
    fn finds_entries_of_any_kind_and_names_the_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("id_ecdsa"), b"key").unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let present = parse_list("k=/id_ecdsa,d,dangling").unwrap();
        check(root, &present, "config", "/workspace/config").unwrap();

        let missing = parse_list("k=/id_ecdsa,private-key=/escape/passwd").unwrap();
        let message = check(root, &missing, "config", "/workspace/config/")
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "Workspace file missing: workspace \"config\" does not provide file \"private-key\": \
             expected path \"/workspace/config/escape/passwd\"."
        );
        let bare = check(root, &parse_list("x").unwrap(), "run-1/src", "")
            .unwrap_err()
            .to_string();
        assert!(bare.ends_with("expected path \"/x\"."), "{bare}");
    }
}
