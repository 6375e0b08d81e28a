//! `wsfs attach` and `wsfs detach`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use wsfs_api::pb;
use wsfs_api::Client;

use crate::args::ViewKind;
use crate::commands::persist::{result_json, result_text};
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

/// The view flags of `wsfs attach`.
pub struct ViewOptions {
    /// Read-only or isolated.
    pub kind: ViewKind,
    /// Workspace directory to show; empty: the root.
    pub sub_path: String,
    /// Where an isolated view keeps its changes.
    pub upper_dir: Option<PathBuf>,
    /// Fetch the whole workspace in the background.
    pub prefetch: bool,
    /// Where the access trace is kept (default: the workspace name).
    pub prefetch_key: Option<String>,
}

/// Attaches a view of `workspace` at `mountpoint`.
pub async fn attach(
    client: &mut Client,
    workspace: &str,
    mountpoint: &Path,
    view: &ViewOptions,
    json: bool,
) -> Result<()> {
    let upper_dir = match &view.upper_dir {
        Some(dir) => absolute(dir)?.display().to_string(),
        None => String::new(),
    };
    let request = pb::AttachRequest {
        workspace: workspace.to_string(),
        mountpoint: absolute(mountpoint)?.display().to_string(),
        view: view.kind.as_str().to_string(),
        sub_path: view.sub_path.clone(),
        upper_dir,
        prefetch: view.prefetch,
        prefetch_key: view.prefetch_key.clone().unwrap_or_default(),
    };
    let m = client.attach(request).await?.into_inner();
    emit(json, mount_json(&m), || {
        let sub_path = if m.sub_path.is_empty() {
            String::new()
        } else {
            format!(", sub-path {}", m.sub_path)
        };
        format!(
            "attached {} at {} ({} view{sub_path}; version {}, {} layers, {} files, {})",
            m.workspace,
            m.mountpoint,
            m.view,
            m.version,
            m.layers.len(),
            m.files,
            bytes(m.bytes)
        )
    });
    Ok(())
}

/// Detaches the view at `mountpoint`, persisting its changes first when asked.
pub async fn detach(client: &mut Client, mountpoint: &Path, persist: bool, json: bool) -> Result<()> {
    let request = pb::DetachRequest {
        mountpoint: absolute(mountpoint)?.display().to_string(),
        persist,
        persist_if_changed: false,
    };
    let reply = client.detach(request).await?.into_inner();
    let persisted = reply.persisted.as_ref();
    let value = json!({
        "mountpoint": reply.mountpoint,
        "persisted": persisted.map(result_json),
    });
    emit(json, value, || match persisted {
        Some(r) => format!("detached {}; {}", reply.mountpoint, result_text(r)),
        None => format!("detached {}", reply.mountpoint),
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
        "sub_path": m.sub_path,
        "upper_dir": m.upper_dir,
        "prefetch_key": m.prefetch_key,
        "prefetch": if m.prefetch_state.is_empty() { json!(null) } else { json!({
            "state": m.prefetch_state,
            "files_done": m.prefetch_files_done,
            "files_total": m.prefetch_files_total,
            "bytes_done": m.prefetch_bytes_done,
            "bytes_total": m.prefetch_bytes_total,
            "pushed_bytes": m.prefetch_pushed_bytes,
            "first_fetched": m.prefetch_first_fetched,
        }) },
    })
}
