//! The daemon's configuration, from `WSFS_*` environment variables.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Default byte budget of the chunk cache.
const DEFAULT_CACHE_BYTES: u64 = 10 << 30;
/// Default bound on how long one remote request keeps retrying.
const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon keeps its state and how it reaches the remote.
#[derive(Clone, Debug)]
pub struct Config {
    /// `WSFS_STATE_DIR`.
    pub state_dir: PathBuf,
    /// `WSFS_SOCKET`.
    pub socket: PathBuf,
    /// `WSFS_REMOTE`, default `file://<state dir>/remote`.
    pub remote: String,
    /// `WSFS_CACHE_BYTES`.
    pub cache_bytes: u64,
    /// `WSFS_REMOTE_TIMEOUT`.
    pub remote_timeout: Duration,
    /// `WSFS_SOCKET_GROUP`: the group whose members may connect (socket
    /// 0660); without it only the daemon's user may (0600).
    pub socket_group: Option<u32>,
    /// `WSFS_ADMIN_GROUP`: the group whose members may also remove
    /// workspaces, set expiries, collect garbage, check the store, restart
    /// and stop the daemon; without it only root may.
    pub admin_group: Option<u32>,
}

impl Config {
    /// Reads the environment; a malformed value is an error naming the variable.
    pub fn from_env() -> Result<Config> {
        let state_dir = wsfs_api::paths::state_dir();
        wsfs_api::paths::create_state_dir(&state_dir)
            .with_context(|| format!("cannot create state dir {} (WSFS_STATE_DIR)", state_dir.display()))?;
        let state_dir = state_dir.canonicalize()?;
        let socket = wsfs_api::paths::socket(&state_dir);
        let remote = match std::env::var("WSFS_REMOTE") {
            Ok(url) if !url.is_empty() => url,
            _ => format!("file://{}", state_dir.join("remote").display()),
        };
        let cache_bytes = match std::env::var("WSFS_CACHE_BYTES") {
            Ok(text) if !text.is_empty() => parse_bytes(&text).with_context(|| {
                format!("WSFS_CACHE_BYTES={text:?}: expected a size such as 10G, 512M or 1048576")
            })?,
            _ => DEFAULT_CACHE_BYTES,
        };
        let remote_timeout = match std::env::var("WSFS_REMOTE_TIMEOUT") {
            Ok(text) if !text.is_empty() => text
                .trim_end_matches('s')
                .parse()
                .map(Duration::from_secs)
                .with_context(|| {
                    format!("WSFS_REMOTE_TIMEOUT={text:?}: expected seconds such as 30 or 30s")
                })?,
            _ => DEFAULT_REMOTE_TIMEOUT,
        };
        let socket_group = group_var("WSFS_SOCKET_GROUP")?;
        if socket_group.is_some() && socket.starts_with(&state_dir) {
            bail!(
                "WSFS_SOCKET_GROUP is set but the socket {} is inside the state dir, which only its \
                 owner may enter: set WSFS_SOCKET to a path outside it as well (e.g. /run/wsfs/wsfsd.sock)",
                socket.display()
            );
        }
        Ok(Config {
            state_dir,
            socket,
            remote,
            cache_bytes,
            remote_timeout,
            socket_group,
            admin_group: group_var("WSFS_ADMIN_GROUP")?,
        })
    }
}

/// A group named by the variable `var` (a name or a numeric id), if set.
fn group_var(var: &str) -> Result<Option<u32>> {
    match std::env::var(var) {
        Ok(text) if !text.is_empty() => group_id(&text)
            .map(Some)
            .with_context(|| format!("{var}={text:?}: expected a group name or id from /etc/group")),
        _ => Ok(None),
    }
}

/// The id of group `text` (a name or a number).
fn group_id(text: &str) -> Result<u32> {
    if let Ok(gid) = text.parse() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(text)?;
    // SAFETY: a plain C struct, all zeroes valid; getgrnam_r fills it.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives its use.
    let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut group, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        bail!("no such group");
    }
    Ok(group.gr_gid)
}

/// Parses `1048576`, `512K`, `64M`, `10G`, `1T` (binary multiples; `KiB`, `MB`... accepted too).
fn parse_bytes(text: &str) -> Result<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse()?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => bail!("unknown unit {other:?}"),
    };
    number.checked_mul(1 << shift).context("too large")
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("4M").unwrap(), 4 << 20);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5X").is_err());
    }

    #[test]
    fn groups_by_name_or_id() {
        assert_eq!(super::group_id("0").unwrap(), 0);
        assert_eq!(super::group_id("root").unwrap(), 0);
        assert!(super::group_id("no-such-group-here").is_err());
    }
}
