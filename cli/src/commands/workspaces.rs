//! `wsfs log`, `wsfs ls` and `wsfs rm`: what the remote holds.

use anyhow::Result;
use serde_json::json;
use wsfs_api::pb;
use wsfs_api::Client;

use crate::output::{bytes, emit, table, time_ms};

/// Prints the layers of `workspace`, oldest first.
pub async fn log(client: &mut Client, workspace: &str, json: bool) -> Result<()> {
    let reply = client
        .log(pb::LogRequest {
            workspace: workspace.to_string(),
        })
        .await?
        .into_inner();
    let layers: Vec<_> = reply
        .layers
        .iter()
        .map(|l| {
            json!({
                "layer": l.layer,
                "persisted_at": time_ms(l.persisted_at_ms),
                "host": l.host,
                "files": l.files,
                "bytes": l.bytes,
            })
        })
        .collect();
    emit(
        json,
        json!({ "workspace": reply.workspace, "layers": layers }),
        || {
            let rows: Vec<Vec<String>> = reply
                .layers
                .iter()
                .map(|l| {
                    vec![
                        l.layer[..16].to_string(),
                        time_ms(l.persisted_at_ms),
                        l.host.clone(),
                        l.files.to_string(),
                        bytes(l.bytes),
                    ]
                })
                .collect();
            table(&["LAYER", "PERSISTED", "HOST", "FILES", "SIZE"], &rows)
        },
    );
    Ok(())
}

/// Prints the workspaces, optionally of one namespace.
pub async fn ls(client: &mut Client, namespace: Option<&str>, json: bool) -> Result<()> {
    let reply = client
        .list(pb::ListRequest {
            namespace: namespace.unwrap_or_default().to_string(),
        })
        .await?
        .into_inner();
    let found: Vec<_> = reply
        .workspaces
        .iter()
        .map(|w| json!({ "workspace": w.workspace, "layers": w.layers }))
        .collect();
    emit(json, json!({ "workspaces": found }), || {
        let rows: Vec<Vec<String>> = reply
            .workspaces
            .iter()
            .map(|w| vec![w.workspace.clone(), w.layers.to_string()])
            .collect();
        table(&["WORKSPACE", "LAYERS"], &rows)
    });
    Ok(())
}

/// Deletes `workspace` (its layers stay in the store until garbage collection).
pub async fn rm(client: &mut Client, workspace: &str, json: bool) -> Result<()> {
    let reply = client
        .remove(pb::RemoveRequest {
            workspace: workspace.to_string(),
        })
        .await?
        .into_inner();
    emit(
        json,
        json!({ "workspace": reply.workspace, "layers": reply.layers }),
        || format!("removed {} ({} layers)", reply.workspace, reply.layers),
    );
    Ok(())
}

/// Deletes every workspace whose expiry has passed.
pub async fn rm_expired(client: &mut Client, json: bool) -> Result<()> {
    let reply = client
        .remove_expired(pb::RemoveExpiredRequest {})
        .await?
        .into_inner();
    let removed: Vec<_> = reply
        .removed
        .iter()
        .map(|r| json!({ "workspace": r.workspace, "layers": r.layers }))
        .collect();
    emit(json, json!({ "removed": removed }), || {
        let rows: Vec<Vec<String>> = reply
            .removed
            .iter()
            .map(|r| vec![r.workspace.clone(), r.layers.to_string()])
            .collect();
        format!(
            "removed {} expired workspaces\n{}",
            rows.len(),
            table(&["WORKSPACE", "LAYERS"], &rows)
        )
    });
    Ok(())
}
