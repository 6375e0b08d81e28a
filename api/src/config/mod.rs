//! Settings: every `WSFS_*` setting, resolved flag > environment > config
//! file > default, each with where its value came from. `docs/config.md`
//! lists them.

mod file;
mod registry;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::{Chosen, ConfigFile, SYSTEM_FILE};
pub use registry::{Default, Key, Kind, Setting, DEFAULT_CSI_DRIVER_NAME, SETTINGS};
pub use values::{redact_url, LogFormat};

/// The variable naming the config file (`none`: no file).
pub const CONFIG_ENV: &str = "WSFS_CONFIG";

/// Looks up an environment variable; empty counts as unset.
type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Why the settings cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error(
        "config file {} ({}) does not exist: create it, or name no file with {CONFIG_ENV}=none",
        path.display(),
        match chosen { Chosen::Flag => "--config", Chosen::Env => CONFIG_ENV, Chosen::Default => "default" }
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// Who named it.
        chosen: Chosen,
    },
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Root does not read a file someone else could have written.
    #[error(
        "config file {}: owned by uid {owner} with mode {mode:04o}, but root reads only a config file \
         that root owns and no one else may write: chown root {0} && chmod go-w {0}",
        path.display()
    )]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its mode.
        mode: u32,
    },
    /// The file is not TOML.
    #[error("config file {}, line {line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file gives a key wsfs does not know.
    #[error(
        "config file {}, line {line}: unknown key {key:?}{hint}; the keys are listed by `wsfs config` and in docs/config.md",
        path.display()
    )]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The line of the key.
        line: usize,
        /// The key.
        key: String,
        /// The closest known key, as a suggestion, or empty.
        hint: String,
    },
    /// The file gives a known key a bad value.
    #[error("config file {}, line {line}: {key} = {given}: {why}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line of the key.
        line: usize,
        /// The key.
        key: &'static str,
        /// The value as written.
        given: String,
        /// What is wrong and what is expected.
        why: String,
    },
    /// An environment variable or a flag has a bad value.
    #[error("{origin}={given:?}: {why}")]
    BadSetting {
        /// The variable or flag.
        origin: &'static str,
        /// The value given.
        given: String,
        /// What is wrong and what is expected.
        why: String,
    },
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// Its environment variable.
    Env(&'static str),
    /// A line of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
    },
    /// Its default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A setting's effective value.
#[derive(Clone, Debug)]
pub struct Value {
    /// The setting.
    pub setting: &'static Setting,
    /// Its text, checked; `None` when unset (see [`Setting::default`]).
    pub text: Option<String>,
    /// Where it came from.
    pub source: Source,
}

impl Value {
    /// The text as shown to users: a remote URL without its credentials.
    pub fn shown(&self) -> Option<String> {
        let text = self.text.as_deref()?;
        Some(if self.setting.key == Key::Remote.setting().key {
            redact_url(text)
        } else {
            text.to_string()
        })
    }
}

/// What the command line gives: the config file, and settings given by flags.
#[derive(Clone, Debug, PartialEq, Eq, std::default::Default)]
pub struct Flags {
    config: Option<PathBuf>,
    values: Vec<(Key, String)>,
}

impl Flags {
    /// Flags naming the config file (`--config`), if given.
    pub fn new(config: Option<PathBuf>) -> Flags {
        Flags {
            config,
            values: Vec::new(),
        }
    }

    /// Adds the value of the setting's flag, if given (and not empty).
    pub fn with(mut self, key: Key, value: Option<String>) -> Flags {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.values.push((key, value));
        }
        self
    }
}

/// Every setting's effective value.
#[derive(Clone, Debug)]
pub struct Settings {
    file: Option<ConfigFile>,
    values: Vec<Value>,
}

impl Settings {
    /// Resolves every setting from `flags`, the environment and the config file.
    pub fn load(flags: &Flags) -> Result<Settings, ConfigError> {
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
        };
        // SAFETY: geteuid has no preconditions.
        Settings::resolve(flags, &env, unsafe { libc::geteuid() })
    }

    /// [`Settings::load`] with the environment `env`, as user `euid`.
    fn resolve(flags: &Flags, env: &Env<'_>, euid: u32) -> Result<Settings, ConfigError> {
        let file = file::locate(flags.config.as_deref(), env, euid)?;
        let entries = match &file {
            Some(f) => file::read(f, euid)?,
            None => Vec::new(),
        };
        let mut values: Vec<Value> = Vec::with_capacity(SETTINGS.len());
        for setting in &SETTINGS {
            let flag = flags.values.iter().find(|(k, _)| k.setting().key == setting.key);
            let (text, source) = if let Some((_, text)) = flag {
                let origin = setting.flag.unwrap_or(setting.key);
                check(setting, origin, text)?;
                (Some(text.clone()), Source::Flag(origin))
            } else if let Some(text) = env(setting.env) {
                check(setting, setting.env, &text)?;
                (Some(text), Source::Env(setting.env))
            } else if let Some(entry) = entries.iter().find(|e| e.setting.key == setting.key) {
                let source = Source::File {
                    path: file.as_ref().expect("entries come from a file").path.clone(),
                    line: entry.line,
                };
                (Some(entry.text.clone()), source)
            } else {
                (default_text(setting, &values, env, euid), Source::Default)
            };
            values.push(Value {
                setting,
                text,
                source,
            });
        }
        Ok(Settings { file, values })
    }

    /// The config file read, if any.
    pub fn file(&self) -> Option<&ConfigFile> {
        self.file.as_ref()
    }

    /// What a process this one starts must get as `WSFS_CONFIG` to read the same
    /// file: its absolute path, or `none`.
    pub fn config_env_value(&self) -> PathBuf {
        self.file
            .as_ref()
            .map_or_else(|| PathBuf::from("none"), |f| f.path.clone())
    }

    /// Every setting, in [`SETTINGS`] order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// One setting.
    pub fn value(&self, key: Key) -> &Value {
        &self.values[key as usize]
    }

    /// A setting's text, `None` when unset.
    pub fn text(&self, key: Key) -> Option<&str> {
        self.value(key).text.as_deref()
    }

    /// `state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from(self.text(Key::StateDir).expect("always has a default"))
    }

    /// `socket`.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(self.text(Key::Socket).expect("always has a default"))
    }

    /// `remote`, the default computed from `state_dir` (the daemon gives its canonical path).
    pub fn remote(&self, state_dir: &Path) -> String {
        match &self.value(Key::Remote).source {
            Source::Default => default_remote(state_dir),
            _ => self.text(Key::Remote).expect("given").to_string(),
        }
    }

    /// `cache_bytes`.
    pub fn cache_bytes(&self) -> u64 {
        values::parse_bytes(self.text(Key::CacheBytes).expect("always has a default")).expect("checked")
    }

    /// `persist_threads`; `None` when unset (one per core).
    pub fn persist_threads(&self) -> Option<usize> {
        self.text(Key::PersistThreads)
            .map(|text| values::parse_threads(text).expect("checked"))
    }

    /// `remote_timeout`.
    pub fn remote_timeout(&self) -> Duration {
        values::parse_seconds(self.text(Key::RemoteTimeout).expect("always has a default")).expect("checked")
    }

    /// A group setting (`socket_group`, `admin_group`): its id, if set.
    pub fn group(&self, key: Key) -> Option<u32> {
        debug_assert_eq!(key.setting().kind, Kind::Group);
        self.text(key)
            .map(|text| values::group_id(text).expect("checked"))
    }

    /// `log_format`.
    pub fn log_format(&self) -> LogFormat {
        self.text(Key::LogFormat)
            .expect("always has a default")
            .parse()
            .expect("checked")
    }
}

/// Checks a value given by a flag or a variable.
fn check(setting: &Setting, origin: &'static str, text: &str) -> Result<(), ConfigError> {
    setting.kind.check(text).map_err(|why| ConfigError::BadSetting {
        origin,
        given: text.to_string(),
        why,
    })
}

/// The default remote of a state dir.
pub fn default_remote(state_dir: &Path) -> String {
    format!("file://{}", state_dir.join("remote").display())
}

/// The default of `setting`, given the settings before it.
fn default_text(setting: &Setting, before: &[Value], env: &Env<'_>, euid: u32) -> Option<String> {
    let state_dir = || {
        PathBuf::from(
            before[Key::StateDir as usize]
                .text
                .as_deref()
                .expect("resolved first"),
        )
    };
    match setting.default {
        Default::Value(text) => Some(text.to_string()),
        Default::Unset(_) => None,
        Default::Derived(_) if setting.key == Key::StateDir.setting().key => {
            Some(default_state_dir(env, euid).display().to_string())
        }
        Default::Derived(_) if setting.key == Key::Socket.setting().key => {
            let runtime_dir = env("XDG_RUNTIME_DIR").filter(|_| euid != 0).map(PathBuf::from);
            let socket = crate::paths::default_socket(&state_dir(), runtime_dir.as_deref());
            Some(socket.display().to_string())
        }
        Default::Derived(_) => Some(default_remote(&state_dir())),
    }
}

/// `/var/lib/wsfs` for root, else `$XDG_STATE_HOME/wsfs` or `~/.local/state/wsfs`.
fn default_state_dir(env: &Env<'_>, euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/var/lib/wsfs");
    }
    if let Some(xdg) = env("XDG_STATE_HOME") {
        return PathBuf::from(xdg).join("wsfs");
    }
    PathBuf::from(env("HOME").unwrap_or_else(|| "/tmp".into())).join(".local/state/wsfs")
}

#[cfg(test)]
mod tests;
