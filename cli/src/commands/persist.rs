//! `wsfs persist`: stream the paths to the daemon, show progress, print the layer.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use wsfs_api::pb::{self, persist_event::Event};
use wsfs_api::Client;

use crate::output::{bytes, emit, progress_bar, time_ms};

/// What `wsfs persist` was asked.
pub struct Request<'a> {
    /// `--workspace`.
    pub workspace: &'a str,
    /// `--root`.
    pub root: &'a Path,
    /// The paths, relative to the root.
    pub paths: &'a [PathBuf],
    /// `--expire-after`.
    pub expire_after: Option<Duration>,
    /// `--prefetch-key`.
    pub prefetch_keys: &'a [String],
    /// `--threads`.
    pub threads: Option<u32>,
}

/// Persists the request's paths as a new layer of its workspace.
pub async fn run(client: &mut Client, req: &Request<'_>, json: bool) -> Result<()> {
    let root = std::env::current_dir()
        .context("cannot read the current directory")?
        .join(req.root);
    let request = pb::PersistRequest {
        workspace: req.workspace.to_string(),
        root: root.as_os_str().as_bytes().to_vec(),
        paths: req
            .paths
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect(),
        expire_after_ms: req.expire_after.map_or(0, |d| (d.as_millis() as u64).max(1)),
        prefetch_keys: req.prefetch_keys.to_vec(),
        threads: req.threads.unwrap_or(0),
    };
    let bar = progress_bar(json);
    let result = stream(client, request, |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("{}/{} files", p.files_done, p.files_total));
    })
    .await;
    bar.finish_and_clear();
    print_result(&result?, json);
    Ok(())
}

/// Sends a persist request and follows its events: `progress` sees each
/// progress report; returns the result.
pub async fn stream(
    client: &mut Client,
    request: pb::PersistRequest,
    mut progress: impl FnMut(&pb::Progress),
) -> Result<pb::PersistResult> {
    let mut events = client.persist(request).await?.into_inner();
    while let Some(event) = events.message().await? {
        match event.event {
            Some(Event::Progress(p)) => progress(&p),
            Some(Event::Result(r)) => return Ok(r),
            None => {}
        }
    }
    bail!("the daemon ended the persist without a result: see its log")
}

fn print_result(r: &pb::PersistResult, json: bool) {
    emit(json, result_json(r), || result_text(r));
}

/// How many overridden paths the text output names.
const OVERRODE_SHOWN: usize = 20;

/// The JSON form of a persist's result.
pub fn result_json(r: &pb::PersistResult) -> serde_json::Value {
    json!({
        "workspace": r.workspace,
        "layer": r.layer,
        "files": r.files,
        "bytes": r.bytes,
        "new_bytes": r.new_bytes,
        "stored_bytes": r.stored_bytes,
        "deleted": r.deleted,
        "skipped": r.skipped,
        "overrode": r.overrode,
        "expires_at": (r.expires_at_ms > 0).then(|| time_ms(r.expires_at_ms)),
    })
}

/// The text form of a persist's result.
pub fn result_text(r: &pb::PersistResult) -> String {
    let mut text = format!(
        "persisted layer {} to {}: {} files, {}, {} new, {} stored",
        r.layer,
        r.workspace,
        r.files,
        bytes(r.bytes),
        bytes(r.new_bytes),
        bytes(r.stored_bytes)
    );
    if r.deleted > 0 {
        text.push_str(&format!(", {} deleted", r.deleted));
    }
    if r.expires_at_ms > 0 {
        text.push_str(&format!(
            "; the workspace expires at {}",
            time_ms(r.expires_at_ms)
        ));
    }
    for path in &r.skipped {
        text.push_str(&format!(
            "\nskipped {path}: not a regular file, directory or symlink"
        ));
    }
    if !r.overrode.is_empty() {
        text.push_str(&format!(
            "\noverrode {} paths that other persists changed meanwhile (this layer landed later, so it wins):",
            r.overrode.len()
        ));
        for path in r.overrode.iter().take(OVERRODE_SHOWN) {
            text.push_str(&format!("\n  {path}"));
        }
        if r.overrode.len() > OVERRODE_SHOWN {
            text.push_str(&format!(
                "\n  ... and {} more (--json lists all)",
                r.overrode.len() - OVERRODE_SHOWN
            ));
        }
    }
    text
}
