//! The config file: which one, whether a root process may trust it, and
//! its settings with the line each is on.

use std::path::{Path, PathBuf};

use super::registry::{Setting, SETTINGS};
use super::{ConfigError, Env};

/// The config file root reads when none is named.
pub const SYSTEM_FILE: &str = "/etc/wsfs/config.toml";

/// How the config file was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chosen {
    /// `--config PATH`.
    Flag,
    /// `WSFS_CONFIG=PATH`.
    Env,
    /// The default location for this user.
    Default,
}

/// The config file in use.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// Its path (absolute when named by a flag or `WSFS_CONFIG`, as the daemon
    /// started by the CLI reads it from another directory).
    pub path: PathBuf,
    /// How it was chosen.
    pub chosen: Chosen,
}

/// One setting the file gives.
pub(super) struct Entry {
    pub setting: &'static Setting,
    pub text: String,
    pub line: usize,
}

/// The file named by `flag`, else by `WSFS_CONFIG`, else the default one if
/// it exists; `none` names no file. A named file must exist.
pub(super) fn locate(
    flag: Option<&Path>,
    env: &Env<'_>,
    euid: u32,
) -> Result<Option<ConfigFile>, ConfigError> {
    let named = match flag {
        Some(path) => Some((path.to_path_buf(), Chosen::Flag)),
        None => env("WSFS_CONFIG").map(|path| (PathBuf::from(path), Chosen::Env)),
    };
    let Some((path, chosen)) = named else {
        let path = default_path(env, euid);
        return Ok(path.exists().then_some(ConfigFile {
            path,
            chosen: Chosen::Default,
        }));
    };
    if path.as_os_str() == "none" {
        return Ok(None);
    }
    let path = std::path::absolute(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    if !path.exists() {
        return Err(ConfigError::Missing { path, chosen });
    }
    Ok(Some(ConfigFile { path, chosen }))
}

/// `/etc/wsfs/config.toml` for root, else `$XDG_CONFIG_HOME/wsfs/config.toml`
/// (default `~/.config/wsfs/config.toml`).
fn default_path(env: &Env<'_>, euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from(SYSTEM_FILE);
    }
    match env("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir).join("wsfs/config.toml"),
        None => PathBuf::from(env("HOME").unwrap_or_else(|| "/".into())).join(".config/wsfs/config.toml"),
    }
}

/// Reads `file`; for root, only if root owns it and no one else may write it.
pub(super) fn read(file: &ConfigFile, euid: u32) -> Result<Vec<Entry>, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let path = &file.path;
    let io_error = |source| ConfigError::Read {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if euid == 0 && (meta.uid() != 0 || meta.mode() & 0o022 != 0) {
        return Err(ConfigError::Untrusted {
            path: path.clone(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io_error)?;
    parse(path, &text)
}

/// The settings of a config file's text: top-level `key = value` lines,
/// each a known key with a string (or, where it makes sense, an integer).
pub(super) fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let line_of = |offset: Option<std::ops::Range<usize>>| {
        offset.map_or(0, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        })
    };
    let doc = toml_edit::Document::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line_of(e.span()),
        message: e.message().trim().to_string(),
    })?;
    let mut entries = Vec::new();
    for (key, item) in doc.iter() {
        let line = line_of(doc.key(key).and_then(|k| k.span()));
        let Some(setting) = SETTINGS.iter().find(|s| s.key == key) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                line,
                key: key.to_string(),
                hint: closest_key(key)
                    .map(|k| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_default(),
            });
        };
        let bad = |given: String, why: String| ConfigError::BadValue {
            path: path.to_path_buf(),
            line,
            key: setting.key,
            given,
            why,
        };
        let value = item.as_value();
        let text = match (value.and_then(|v| v.as_str()), value.and_then(|v| v.as_integer())) {
            (Some(text), _) => text.to_string(),
            (None, Some(n)) if setting.kind.takes_integer() => n.to_string(),
            _ => {
                let given = item
                    .span()
                    .and_then(|span| text.get(span))
                    .map_or_else(|| item.type_name().to_string(), |raw| raw.trim().to_string());
                let wanted = if setting.kind.takes_integer() {
                    "a string or an integer"
                } else {
                    "a string"
                };
                return Err(bad(
                    given,
                    format!("expected {wanted}: {}", setting.kind.expected()),
                ));
            }
        };
        if text.is_empty() {
            return Err(bad(
                "\"\"".into(),
                format!("empty: expected {}", setting.kind.expected()),
            ));
        }
        setting
            .kind
            .check(&text)
            .map_err(|why| bad(format!("{text:?}"), why))?;
        entries.push(Entry { setting, text, line });
    }
    Ok(entries)
}

/// The known key closest to a misspelt one, if one is close.
fn closest_key(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .map(|s| (strsim::damerau_levenshtein(key, s.key), s.key))
        .filter(|&(distance, _)| distance <= 3)
        .min()
        .map(|(_, k)| k)
}
