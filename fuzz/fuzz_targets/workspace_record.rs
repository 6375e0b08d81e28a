//! Workspace records (`workspaces/<ns>/<name>/<nanos>-<random>-<layer>`):
//! the record's body, and the workspace and layer its listed key names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::keys::{record_layer, workspace_in};
use wsfs_fs::workspace::{LayerRecord, WorkspaceName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(record) = LayerRecord::decode(text) {
        assert_eq!(LayerRecord::decode(&record.encode()).as_ref(), Some(&record));
    }
    if let Some(ws) = workspace_in(text) {
        assert_eq!(ws.to_string().parse::<WorkspaceName>().ok(), Some(ws));
    }
    let _ = record_layer(text);
});
