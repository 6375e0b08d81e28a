//! The registry: every setting wsfs reads, its file key, environment
//! variable, meaning, default and kind of value.

use super::values;

/// What a setting's value is, and so how its text is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any non-empty text.
    Text,
    /// A path.
    Path,
    /// A byte size: `10G`, `512M`, `1048576` (an integer in the file).
    Size,
    /// Seconds: `30`, `30s` (an integer in the file).
    Seconds,
    /// A group name or numeric id (an integer in the file).
    Group,
    /// `text` or `json`.
    LogFormat,
    /// An `IP:PORT` address to listen on.
    ListenAddr,
    /// A count of threads, 1 to 1024.
    Threads,
}

impl Kind {
    /// Checks `text` with the parser the setting's reader uses; the error says what is expected.
    pub fn check(self, text: &str) -> Result<(), String> {
        let ok = match self {
            Kind::Text | Kind::Path => Ok(()),
            Kind::Size => values::parse_bytes(text).map(drop),
            Kind::Seconds => values::parse_seconds(text).map(drop),
            Kind::Group => values::group_id(text).map(drop),
            Kind::LogFormat => text.parse::<values::LogFormat>().map(drop),
            Kind::ListenAddr => text
                .parse::<std::net::SocketAddr>()
                .map(drop)
                .map_err(|_| format!("{text:?} is not an IP:PORT address")),
            Kind::Threads => values::parse_threads(text).map(drop),
        };
        ok.map_err(|why| format!("{why}: expected {}", self.expected()))
    }

    /// What a valid value looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a non-empty string",
            Kind::Path => "a path",
            Kind::Size => "a size such as 10G, 512M or 1048576",
            Kind::Seconds => "seconds such as 30 or \"30s\"",
            Kind::Group => "a group name or id from /etc/group",
            Kind::LogFormat => "\"text\" or \"json\"",
            Kind::ListenAddr => "an IP:PORT address such as 127.0.0.1:9464 (port 0: any free port)",
            Kind::Threads => "a whole number from 1 to 1024",
        }
    }

    /// Whether the config file may give an integer rather than a string.
    pub fn takes_integer(self) -> bool {
        matches!(self, Kind::Size | Kind::Seconds | Kind::Group | Kind::Threads)
    }
}

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// Its key in the config file (the variable's name lowercased, without `WSFS_`).
    pub key: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// The `wsfsd` flag that also sets it, if any.
    pub flag: Option<&'static str>,
    /// What it sets, in one line.
    pub description: &'static str,
    /// Its default.
    pub default: Default,
    /// Its kind of value.
    pub kind: Kind,
}

/// A setting's default.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    /// This value.
    Value(&'static str),
    /// A value computed from the user or other settings, described.
    Derived(&'static str),
    /// No value: the described behaviour (which may compute one where it is used).
    Unset(&'static str),
}

impl std::fmt::Display for Default {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Default::Value(text) | Default::Derived(text) => f.write_str(text),
            Default::Unset(text) => write!(f, "unset: {text}"),
        }
    }
}

/// Names a setting of [`SETTINGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// `state_dir`.
    StateDir,
    /// `socket`.
    Socket,
    /// `remote`.
    Remote,
    /// `cache_bytes`.
    CacheBytes,
    /// `remote_timeout`.
    RemoteTimeout,
    /// `socket_group`.
    SocketGroup,
    /// `admin_group`.
    AdminGroup,
    /// `log`.
    Log,
    /// `log_format`.
    LogFormat,
    /// `daemon`.
    Daemon,
    /// `csi_endpoint`.
    CsiEndpoint,
    /// `csi_driver_name`.
    CsiDriverName,
    /// `node_id`.
    NodeId,
    /// `metrics_addr`.
    MetricsAddr,
    /// `persist_threads`.
    PersistThreads,
}

impl Key {
    /// The setting this key names.
    pub fn setting(self) -> &'static Setting {
        &SETTINGS[self as usize]
    }
}

/// The CSI driver name unless configured otherwise.
pub const DEFAULT_CSI_DRIVER_NAME: &str = "csi.wsfs.dev";

/// Every setting, in [`Key`] order.
pub static SETTINGS: [Setting; 15] = [
    Setting {
        key: "state_dir",
        env: "WSFS_STATE_DIR",
        flag: None,
        description: "the daemon's directory: database, chunk cache, socket, wsfsd.log",
        default: Default::Derived("/var/lib/wsfs for root, else $XDG_STATE_HOME/wsfs (~/.local/state/wsfs)"),
        kind: Kind::Path,
    },
    Setting {
        key: "socket",
        env: "WSFS_SOCKET",
        flag: None,
        description: "the daemon's API socket",
        default: Default::Derived("$XDG_RUNTIME_DIR/wsfs/wsfsd.sock for an ordinary user with a runtime dir, else wsfsd.sock in the state dir"),
        kind: Kind::Path,
    },
    Setting {
        key: "remote",
        env: "WSFS_REMOTE",
        flag: None,
        description: "the object store URL (file://, s3://, gs://, az://, memory:)",
        default: Default::Derived("file://<state dir>/remote"),
        kind: Kind::Text,
    },
    Setting {
        key: "cache_bytes",
        env: "WSFS_CACHE_BYTES",
        flag: None,
        description: "byte budget of the local chunk cache",
        default: Default::Value("10G"),
        kind: Kind::Size,
    },
    Setting {
        key: "remote_timeout",
        env: "WSFS_REMOTE_TIMEOUT",
        flag: None,
        description: "how long one remote request may keep retrying",
        default: Default::Value("30s"),
        kind: Kind::Seconds,
    },
    Setting {
        key: "socket_group",
        env: "WSFS_SOCKET_GROUP",
        flag: None,
        description: "the group whose members may use the daemon (socket mode 0660)",
        default: Default::Unset("only the daemon's user, socket mode 0600"),
        kind: Kind::Group,
    },
    Setting {
        key: "admin_group",
        env: "WSFS_ADMIN_GROUP",
        flag: None,
        description: "the group whose members may also rm, expire, gc, check, restart and stop",
        default: Default::Unset("only root"),
        kind: Kind::Group,
    },
    Setting {
        key: "log",
        env: "WSFS_LOG",
        flag: None,
        description: "the daemon's log filter (tracing directives, e.g. info,wsfs_fs=debug)",
        default: Default::Value("info"),
        kind: Kind::Text,
    },
    Setting {
        key: "log_format",
        env: "WSFS_LOG_FORMAT",
        flag: None,
        description: "the daemon's log lines: text, or json (one JSON object a line)",
        default: Default::Value("text"),
        kind: Kind::LogFormat,
    },
    Setting {
        key: "daemon",
        env: "WSFS_DAEMON",
        flag: None,
        description: "the wsfsd binary the CLI's holder starts (wsfs-holder is looked for next to it)",
        default: Default::Unset("wsfsd next to the binary, else on PATH"),
        kind: Kind::Path,
    },
    Setting {
        key: "csi_endpoint",
        env: "WSFS_CSI_ENDPOINT",
        flag: Some("--csi-endpoint"),
        description: "also serve the CSI node plugin on this Unix socket (unix:///csi/csi.sock)",
        default: Default::Unset("no CSI"),
        kind: Kind::Text,
    },
    Setting {
        key: "csi_driver_name",
        env: "WSFS_CSI_DRIVER_NAME",
        flag: Some("--csi-driver-name"),
        description: "the CSI driver name pods give as csi.driver",
        default: Default::Value(DEFAULT_CSI_DRIVER_NAME),
        kind: Kind::Text,
    },
    Setting {
        key: "node_id",
        env: "WSFS_NODE_ID",
        flag: Some("--node-id"),
        description: "this node's CSI node id (in Kubernetes: spec.nodeName)",
        default: Default::Unset("the host name"),
        kind: Kind::Text,
    },
    Setting {
        key: "metrics_addr",
        env: "WSFS_METRICS_ADDR",
        flag: Some("--metrics-addr"),
        description: "serve the daemon's Prometheus metrics over HTTP on this IP:PORT (docs/metrics.md)",
        default: Default::Unset("no metrics endpoint"),
        kind: Kind::ListenAddr,
    },
    Setting {
        key: "persist_threads",
        env: "WSFS_PERSIST_THREADS",
        flag: None,
        description: "threads a persist walks, reads, chunks and compresses on, unless `wsfs persist --threads` says",
        default: Default::Unset("one per core"),
        kind: Kind::Threads,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_settings_and_keys_are_their_variables_lowercased() {
        let keys = [
            Key::StateDir,
            Key::Socket,
            Key::Remote,
            Key::CacheBytes,
            Key::RemoteTimeout,
            Key::SocketGroup,
            Key::AdminGroup,
            Key::Log,
            Key::LogFormat,
            Key::Daemon,
            Key::CsiEndpoint,
            Key::CsiDriverName,
            Key::NodeId,
            Key::MetricsAddr,
            Key::PersistThreads,
        ];
        assert_eq!(keys.len(), SETTINGS.len());
        for (i, key) in keys.into_iter().enumerate() {
            assert!(std::ptr::eq(key.setting(), &SETTINGS[i]));
            let setting = key.setting();
            assert_eq!(format!("{key:?}").to_lowercase(), setting.key.replace('_', ""));
            assert_eq!(setting.env, format!("WSFS_{}", setting.key.to_uppercase()));
        }
    }
}
