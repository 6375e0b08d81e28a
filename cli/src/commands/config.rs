//! `wsfs config`: every setting's effective value and where it came from.

use anyhow::{bail, Result};
use serde_json::json;
use wsfs_api::config::{Settings, Source, Value};

use crate::output::{emit, table};

/// Prints the settings this CLI (and a daemon it starts) resolves: the
/// config file and a table, or with `json` one object, `{"file","settings"}`.
pub fn show(settings: &Settings, json: bool) {
    let values = settings.values();
    let value = json!({
        "file": settings.file().map(|f| f.path.display().to_string()),
        "settings": values.iter().map(value_json).collect::<Vec<_>>(),
    });
    emit(json, value, || {
        let file = match settings.file() {
            Some(file) => format!("config file: {}", file.path.display()),
            None => "config file: none".to_string(),
        };
        let rows: Vec<Vec<String>> = values
            .iter()
            .map(|v| {
                let shown = match (v.shown(), &v.source) {
                    (Some(text), _) => text,
                    (None, Source::Default) => v.setting.default.to_string(),
                    (None, _) => String::new(),
                };
                vec![v.setting.key.to_string(), shown, v.source.to_string()]
            })
            .collect();
        format!("{file}\n{}", table(&["KEY", "VALUE", "SOURCE"], &rows))
    });
}

/// One setting as `wsfs config --json` shows it.
fn value_json(v: &Value) -> serde_json::Value {
    json!({
        "key": v.setting.key,
        "env": v.setting.env,
        "value": v.shown(),
        "source": v.source.to_string(),
        "default": v.setting.default.to_string(),
        "description": v.setting.description,
    })
}

/// Prints the value of the setting `key` (a file key or its `WSFS_`
/// variable) alone, empty when unset, for scripts; with `json`, its object.
pub fn get(settings: &Settings, key: &str, json: bool) -> Result<()> {
    let Some(value) = settings
        .values()
        .iter()
        .find(|v| v.setting.key == key || v.setting.env == key)
    else {
        bail!("unknown setting {key:?}: `wsfs config` lists every key");
    };
    emit(json, value_json(value), || value.shown().unwrap_or_default());
    Ok(())
}
