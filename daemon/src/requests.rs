//! The checks of the API's request fields that need nothing but the request:
//! names, keys and paths as clients send them. Free of side effects and of
//! the rest of the daemon (only `wsfs_fs`'s formats and `tonic`), so that
//! `fuzz/` builds this file on its own and feeds it arbitrary messages.

use std::path::PathBuf;

use tonic::Status;
use wsfs_fs::workspace::{WorkspaceName, WorkspaceNameError};

/// A workspace name as a request gives it.
pub fn workspace_name(text: &str) -> Result<WorkspaceName, Status> {
    text.parse()
        .map_err(|e: WorkspaceNameError| Status::invalid_argument(e.to_string()))
}

/// A namespace to list (empty: every namespace): the first part of a workspace name.
pub fn namespace(text: &str) -> Result<Option<&str>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    workspace_name(&format!("{text}/x"))?;
    Ok(Some(text))
}

/// A `--prefetch-key`: 1-256 letters, digits, `.`, `_`, `-` and `/`, with no
/// empty, `.` or `..` component.
pub fn prefetch_key(key: &str) -> Result<&str, Status> {
    let valid = key.len() <= 256
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if valid {
        Ok(key)
    } else {
        Err(Status::invalid_argument(format!(
            "--prefetch-key {key:?}: use 1-256 letters, digits, '.', '_', '-' and '/' (e.g. build-cache/linux)"
        )))
    }
}

/// An absolute path (`what` names the field in the error).
pub fn absolute(text: &str, what: &str) -> Result<PathBuf, Status> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(Status::invalid_argument(format!(
            "{what} {text:?} must be an absolute path"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keys_and_paths_as_clients_send_them() {
        assert_eq!(
            workspace_name("run-42/build").unwrap().to_string(),
            "run-42/build"
        );
        assert!(workspace_name("run-42").is_err());
        assert_eq!(namespace("").unwrap(), None);
        assert_eq!(namespace("run-42").unwrap(), Some("run-42"));
        assert!(namespace("a/b").is_err());
        assert_eq!(prefetch_key("build-cache/linux").unwrap(), "build-cache/linux");
        for bad in ["", "a//b", "a/../b", "./a", "a b", &"k".repeat(257)] {
            assert!(prefetch_key(bad).is_err(), "{bad:?}");
        }
        assert!(absolute("/mnt/ws", "mountpoint").is_ok());
        let err = absolute("mnt", "mountpoint").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
