//! `wsfs config`: every setting's effective value and where it came from.

use serde_json::json;
use wsfs_api::config::{Settings, Source};

use crate::output::{emit, table};

/// Prints the settings this CLI (and a daemon it starts) resolves: the
/// config file and a table, or with `json` one object, `{"file","settings"}`.
pub fn show(settings: &Settings, json: bool) {
    let values = settings.values();
    let value = json!({
        "file": settings.file().map(|f| f.path.display().to_string()),
        "settings": values
            .iter()
            .map(|v| json!({
                "key": v.setting.key,
                "env": v.setting.env,
                "value": v.shown(),
                "source": v.source.to_string(),
                "default": v.setting.default.to_string(),
                "description": v.setting.description,
            }))
            .collect::<Vec<_>>(),
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
