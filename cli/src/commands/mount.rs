//! `wsfs attach` and `wsfs detach`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use wsfs_api::pb;
use wsfs_api::Client;

use crate::args::ViewKind;
use crate::commands::persist::{result_json, result_text};
use crate::output::{bytes, bytes_of, emit, progress_bar};

/// How often `attach --wait` asks the daemon how far the prefetch got.
const WAIT_POLL: Duration = Duration::from_millis(100);

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
    /// Fetch nothing ahead of readers, not even the files of the trace.
    pub no_prefetch: bool,
    /// Where the access trace is kept (default: the workspace name).
    pub prefetch_key: Option<String>,
}

/// Attaches a view of `workspace` at `mountpoint`; with `wait`, returns once
/// its prefetch is done.
pub async fn attach(
    client: &mut Client,
    workspace: &str,
    mountpoint: &Path,
    view: &ViewOptions,
    wait: bool,
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
        no_prefetch: view.no_prefetch,
    };
    let mut m = client.attach(request).await?.into_inner();
    if wait {
        m = wait_for_prefetch(client, m, json).await?;
    }
    emit(json, mount_json(&m), || {
        let sub_path = if m.sub_path.is_empty() {
            String::new()
        } else {
            format!(", sub-path {}", m.sub_path)
        };
        let prefetch = if m.prefetch_state.is_empty() {
            String::new()
        } else {
            format!("; prefetch {}", prefetch_text(&m))
        };
        format!(
            "attached {} at {} ({} view{sub_path}; version {}, {} layers, {} files, {}){prefetch}",
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

/// Follows the prefetch of the view `attached` until it is done, with a
/// progress bar on a terminal; returns the view as it is then. A prefetch
/// that fails or stops is an error (the view stays attached).
async fn wait_for_prefetch(
    client: &mut Client,
    attached: pb::MountInfo,
    json: bool,
) -> Result<pb::MountInfo> {
    let bar = progress_bar(json);
    let outcome = loop {
        let status = client.status(pb::StatusRequest {}).await?.into_inner();
        let Some(m) = status
            .mounts
            .into_iter()
            .find(|m| m.mountpoint == attached.mountpoint)
        else {
            break Err(anyhow!(
                "{} was detached while its prefetch ran",
                attached.mountpoint
            ));
        };
        bar.set_length(m.prefetch_bytes_total);
        bar.set_position(m.prefetch_bytes_done);
        bar.set_message(format!(
            "prefetch {}/{} files",
            m.prefetch_files_done, m.prefetch_files_total
        ));
        match m.prefetch_state.as_str() {
            "done" => break Ok(m),
            "starting" | "running" => {}
            state => {
                break Err(anyhow!(
                "the prefetch of {} at {} ended {state:?} at {}: the view stays attached and reads fetch \
                 on demand; see wsfsd.log in the state dir",
                m.workspace,
                m.mountpoint,
                bytes_of(m.prefetch_bytes_done, m.prefetch_bytes_total)
            ))
            }
        }
        tokio::time::sleep(WAIT_POLL).await;
    };
    bar.finish_and_clear();
    outcome
}

/// The prefetch column of `wsfs status`: `—` without prefetch, the state
/// when not running, else bytes done of total.
pub fn prefetch_text(m: &pb::MountInfo) -> String {
    match m.prefetch_state.as_str() {
        "" => "—".into(),
        "running" => bytes_of(m.prefetch_bytes_done, m.prefetch_bytes_total),
        state => state.into(),
    }
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
