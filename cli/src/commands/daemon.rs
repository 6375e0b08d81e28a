//! `wsfs status`, `wsfs shutdown` and `wsfs daemon restart`: the daemon itself.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use wsfs_api::pb;

use crate::client::Daemon;
use crate::commands::mount::{mount_json, prefetch_text};
use crate::output::{bytes, emit, table, time_ms};

/// Prints counters and mounts (starting the daemon if needed).
pub async fn status(daemon: &Daemon, json: bool) -> Result<()> {
    let mut client = daemon.connect_or_start().await?;
    let s = client.status(pb::StatusRequest {}).await?.into_inner();
    let value = json!({
        "pid": s.pid,
        "holder_pid": s.holder_pid,
        "version": s.version,
        "state_dir": s.state_dir,
        "remote": s.remote,
        "remote_get_requests": s.remote_get_requests,
        "remote_bytes_fetched": s.remote_bytes_fetched,
        "remote_frames_fetched": s.remote_frames_fetched,
        "remote_put_requests": s.remote_put_requests,
        "remote_bytes_stored": s.remote_bytes_stored,
        "remote_state": if s.remote_down { "down" } else { "up" },
        "remote_down_since": if s.remote_down { json!(time_ms(s.remote_down_since_ms)) } else { json!(null) },
        "remote_error": s.remote_error,
        "cache_hits": s.cache_hits,
        "cache_misses": s.cache_misses,
        "cache_bytes": s.cache_bytes,
        "cache_budget_bytes": s.cache_budget_bytes,
        "read_errors": s.read_errors,
        "metrics_addr": if s.metrics_addr.is_empty() { json!(null) } else { json!(s.metrics_addr) },
        "mounts": s.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        "shared_mounts": s.shared_mounts.iter().map(|m| json!({
            "version": m.version,
            "workspace": m.workspace,
            "path": m.path,
            "views": m.views,
        })).collect::<Vec<_>>(),
    });
    emit(json, value, || status_text(&s));
    Ok(())
}

/// `wsfs status` as text: a table of the views, then the daemon's counters.
fn status_text(s: &pb::StatusReply) -> String {
    let mut text = if s.mounts.is_empty() {
        "no views attached".to_string()
    } else {
        let rows: Vec<Vec<String>> = s
            .mounts
            .iter()
            .map(|m| {
                vec![
                    m.mountpoint.clone(),
                    m.workspace.clone(),
                    m.view.clone(),
                    m.version.clone(),
                    m.layers.len().to_string(),
                    if m.sub_path.is_empty() {
                        "/".into()
                    } else {
                        m.sub_path.clone()
                    },
                    prefetch_text(m),
                ]
            })
            .collect();
        let header = [
            "MOUNTPOINT",
            "WORKSPACE",
            "VIEW",
            "VERSION",
            "LAYERS",
            "SUB-PATH",
            "PREFETCH",
        ];
        // An ordinary user's daemon mounts each view on its own.
        let versions = s.shared_mounts.len();
        let how = match s.shared_mounts.iter().all(|m| !m.path.is_empty()) {
            true => format!("share {versions} FUSE mounts"),
            false => format!("of {versions} versions, each its own FUSE mount"),
        };
        format!("{}\n{} views {how}", table(&header, &rows), s.mounts.len())
    };
    text.push_str(&format!(
        "\n\ndaemon {} (pid {}), state dir {}\nremote {}: {} GETs ({} frames), {} fetched; {} PUTs, {} stored\n\
         cache: {} of {} used, {} hits, {} misses, {} read errors",
        s.version,
        s.pid,
        s.state_dir,
        s.remote,
        s.remote_get_requests,
        s.remote_frames_fetched,
        bytes(s.remote_bytes_fetched),
        s.remote_put_requests,
        bytes(s.remote_bytes_stored),
        bytes(s.cache_bytes),
        bytes(s.cache_budget_bytes),
        s.cache_hits,
        s.cache_misses,
        s.read_errors,
    ));
    if s.remote_down {
        text.push_str(&format!(
            "\nremote DOWN since {}: {}",
            time_ms(s.remote_down_since_ms),
            s.remote_error
        ));
    }
    text
}

/// Detaches everything and stops the daemon; fine when none runs.
pub async fn shutdown(daemon: &Daemon, json: bool) -> Result<()> {
    let Some(mut client) = daemon.connect_running().await else {
        emit(json, json!({ "running": false, "unmounted": 0 }), || {
            format!("no daemon running for {}", daemon.state_dir.display())
        });
        return Ok(());
    };
    let reply = client.shutdown(pb::ShutdownRequest {}).await?.into_inner();
    // Close the connection before waiting, so the daemon need not wait for it.
    drop(client);
    let stopping = daemon.clone();
    tokio::task::spawn_blocking(move || stopping.wait_stopped()).await??;
    emit(
        json,
        json!({ "running": true, "unmounted": reply.unmounted }),
        || format!("daemon stopped; {} views detached", reply.unmounted),
    );
    Ok(())
}

/// How long `daemon restart` waits for the next daemon to answer.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// Hands every mount to a new daemon and waits until it answers.
pub async fn restart(daemon: &Daemon, json: bool) -> Result<()> {
    let Some(mut client) = daemon.connect_running().await else {
        bail!(
            "no daemon running for {}: nothing to restart (the next wsfs command starts one)",
            daemon.state_dir.display()
        );
    };
    let started = Instant::now();
    let reply = client.restart(pb::RestartRequest {}).await?.into_inner();
    drop(client);
    // The next daemon answers on the same socket, with another pid.
    let next = loop {
        if let Some(mut client) = daemon.connect_running().await {
            if let Ok(status) = client.status(pb::StatusRequest {}).await {
                let status = status.into_inner();
                if status.pid != reply.pid {
                    break status;
                }
            }
        }
        if started.elapsed() > RESTART_TIMEOUT {
            bail!(
                "the next daemon did not answer within {}s: see {}",
                RESTART_TIMEOUT.as_secs(),
                wsfs_api::paths::log_file(&daemon.state_dir).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ms = started.elapsed().as_millis() as u64;
    let value = json!({
        "old_pid": reply.pid,
        "pid": next.pid,
        "version": next.version,
        "views": next.mounts.len(),
        "ms": ms,
    });
    emit(json, value, || {
        format!(
            "daemon restarted (pid {} → {}, version {}): {} of {} views taken over in {ms} ms",
            reply.pid,
            next.pid,
            next.version,
            next.mounts.len(),
            reply.views
        )
    });
    Ok(())
}
