//! `wsfs attach` and `wsfs detach`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use wsfs_api::pb;
use wsfs_api::Client;

use crate::output::{bytes, emit};

/// An absolute form of `path`, resolving symlinks of the part that exists.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::env::current_dir()
        .context("cannot read the current directory")?
        .join(path);
    if let Ok(real) = abs.canonicalize() {
        return Ok(real);
    }
    match (abs.parent().and_then(|p| p.canonicalize().ok()), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(parent.join(name)),
        _ => Ok(abs),
    }
}

/// Attaches `workspace` at `mountpoint`.
pub async fn attach(client: &mut Client, workspace: &str, mountpoint: &Path, json: bool) -> Result<()> {
    let request = pb::AttachRequest {
        workspace: workspace.to_string(),
        mountpoint: absolute(mountpoint)?.display().to_string(),
    };
    let m = client.attach(request).await?.into_inner();
    emit(json, mount_json(&m), || {
        format!(
            "attached {} at {} (version {}, {} layers, {} files, {})",
            m.workspace,
            m.mountpoint,
            m.version,
            m.layers.len(),
            m.files,
            bytes(m.bytes)
        )
    });
    Ok(())
}

/// Detaches the view at `mountpoint`.
pub async fn detach(client: &mut Client, mountpoint: &Path, json: bool) -> Result<()> {
    let request = pb::DetachRequest {
        mountpoint: absolute(mountpoint)?.display().to_string(),
    };
    let reply = client.detach(request).await?.into_inner();
    emit(json, json!({ "mountpoint": reply.mountpoint }), || {
        format!("detached {}", reply.mountpoint)
    });
    Ok(())
}

/// The JSON form of a mount.
pub fn mount_json(m: &pb::MountInfo) -> serde_json::Value {
    json!({
        "mountpoint": m.mountpoint,
        "workspace": m.workspace,
        "version": m.version,
        "layers": m.layers,
        "view": m.view,
        "files": m.files,
        "bytes": m.bytes,
    })
}
