//! The daemon's configuration, from its settings (`wsfs_api::config`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wsfs_api::config::{Key, Settings, Source};

/// Where the daemon keeps its state and how it reaches the remote.
#[derive(Clone, Debug)]
pub struct Config {
    /// `state_dir`, canonical.
    pub state_dir: PathBuf,
    /// `socket`.
    pub socket: PathBuf,
    /// `remote`, default `file://<state dir>/remote`.
    pub remote: String,
    /// `cache_bytes`.
    pub cache_bytes: u64,
    /// `remote_timeout`.
    pub remote_timeout: Duration,
    /// `socket_group`: the group whose members may connect (socket
    /// 0660); without it only the daemon's user may (0600).
    pub socket_group: Option<u32>,
    /// `admin_group`: the group whose members may also remove
    /// workspaces, set expiries, collect garbage, check the store, restart
    /// and stop the daemon; without it only root may.
    pub admin_group: Option<u32>,
    /// `persist_threads`: a persist's threads when its request names none
    /// (0: one per core).
    pub persist_threads: usize,
}

impl Config {
    /// Creates the state dir and takes what the daemon needs from `settings`.
    pub fn new(settings: &Settings) -> Result<Config> {
        let state_dir = settings.state_dir();
        wsfs_api::paths::create_state_dir(&state_dir).with_context(|| {
            format!(
                "cannot create state dir {} ({})",
                state_dir.display(),
                origin(settings, Key::StateDir)
            )
        })?;
        let state_dir = state_dir.canonicalize()?;
        let socket = settings.socket();
        let socket_group = settings.group(Key::SocketGroup);
        if socket_group.is_some() && socket.starts_with(&state_dir) {
            bail!(
                "socket_group is set ({}) but the socket {} is inside the state dir, which only its \
                 owner may enter: set the socket (WSFS_SOCKET) to a path outside it as well (e.g. /run/wsfs/wsfsd.sock)",
                settings.value(Key::SocketGroup).source,
                socket.display()
            );
        }
        Ok(Config {
            remote: settings.remote(&state_dir),
            state_dir,
            socket,
            cache_bytes: settings.cache_bytes(),
            remote_timeout: settings.remote_timeout(),
            socket_group,
            admin_group: settings.group(Key::AdminGroup),
            persist_threads: settings.persist_threads().unwrap_or(0),
        })
    }
}

/// Where a setting came from, for errors: `WSFS_STATE_DIR` when defaulted.
pub fn origin(settings: &Settings, key: Key) -> String {
    match &settings.value(key).source {
        Source::Default => format!("the default; set {}", key.setting().env),
        source => source.to_string(),
    }
}
