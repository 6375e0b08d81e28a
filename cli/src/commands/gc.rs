//! `wsfs gc`: collect the remote's garbage, or trim the local frame cache.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};
use wsfs_api::pb;
use wsfs_api::Client;

use crate::output::{bytes, emit, table, time_ms};

/// Asks the daemon to collect garbage and prints what was (or would be) done.
pub async fn run(client: &mut Client, request: pb::GcRequest, json: bool) -> Result<()> {
    let cache = request.cache;
    let reply = client.gc(request).await?.into_inner();
    if cache {
        print_cache(&reply, json);
    } else {
        print_remote(&reply, json);
    }
    Ok(())
}

fn print_cache(reply: &pb::GcReply, json: bool) {
    let value = json!({
        "dry_run": reply.dry_run,
        "cache_freed_bytes": reply.cache_freed_bytes,
        "cache_bytes": reply.cache_bytes,
    });
    let verb = if reply.dry_run { "would free" } else { "freed" };
    emit(json, value, || {
        format!(
            "frame cache: {verb} {}, {} cached now",
            bytes(reply.cache_freed_bytes),
            bytes(reply.cache_bytes)
        )
    });
}

fn total(objects: &[pb::GcObject]) -> u64 {
    objects.iter().map(|o| o.bytes).sum()
}

/// Bytes of the rewritten packs, and of their referenced frames (copied).
fn repacked_totals(reply: &pb::GcReply) -> (u64, u64) {
    let packs = &reply.repacked;
    (
        packs.iter().map(|r| r.bytes).sum(),
        packs.iter().map(|r| r.live_bytes).sum(),
    )
}

fn objects_json(objects: &[pb::GcObject], with_time: bool) -> Vec<Value> {
    objects
        .iter()
        .map(|o| match with_time {
            true => {
                json!({ "key": o.key, "bytes": o.bytes, "deletable_after": time_ms(o.deletable_after_ms) })
            }
            false => json!({ "key": o.key, "bytes": o.bytes }),
        })
        .collect()
}

/// The latest time from which a run may delete `objects` (None when empty).
fn deletable_after(objects: &[pb::GcObject]) -> Option<String> {
    objects.iter().map(|o| o.deletable_after_ms).max().map(time_ms)
}

fn print_remote(reply: &pb::GcReply, json: bool) {
    let expired: Vec<_> = reply
        .expired
        .iter()
        .map(|r| json!({ "workspace": r.workspace, "layers": r.layers }))
        .collect();
    let repacked: Vec<_> = reply
        .repacked
        .iter()
        .map(|r| json!({ "key": r.key, "bytes": r.bytes, "live_bytes": r.live_bytes, "into": r.into }))
        .collect();
    let value = json!({
        "dry_run": reply.dry_run,
        "grace_ms": reply.grace_ms,
        "expired": expired,
        "deleted": objects_json(&reply.deleted, false),
        "deleted_bytes": total(&reply.deleted),
        "condemned": objects_json(&reply.condemned, true),
        "condemned_bytes": total(&reply.condemned),
        "pending": objects_json(&reply.pending, true),
        "pending_bytes": total(&reply.pending),
        "uncondemned": reply.uncondemned,
        "repacked": repacked,
        "repacked_bytes": repacked_totals(reply).0,
        "repacked_live_bytes": repacked_totals(reply).1,
        "trace_max_age_ms": reply.trace_max_age_ms,
        "traces_deleted": objects_json(&reply.traces_deleted, false),
        "live_layers": reply.live_layers,
        "live_packs": reply.live_packs,
    });
    emit(json, value, || human(reply))
}

fn human(reply: &pb::GcReply) -> String {
    let (delete, condemn) = match reply.dry_run {
        true => ("would delete", "would condemn"),
        false => ("deleted", "condemned"),
    };
    let mut lines = vec![format!(
        "{delete} {} expired workspaces{}",
        reply.expired.len(),
        reply
            .expired
            .iter()
            .map(|r| format!(" {}", r.workspace))
            .collect::<String>()
    )];
    lines.push(format!(
        "{delete} {} objects ({})",
        reply.deleted.len(),
        bytes(total(&reply.deleted))
    ));
    let mut line = format!(
        "{condemn} {} objects ({})",
        reply.condemned.len(),
        bytes(total(&reply.condemned))
    );
    if let Some(after) = deletable_after(&reply.condemned) {
        line += &format!(": deleted by a gc run after {after} if still unreferenced");
    }
    lines.push(line);
    if let Some(after) = deletable_after(&reply.pending) {
        lines.push(format!(
            "{} objects ({}) condemned earlier: deletable by runs after {after}",
            reply.pending.len(),
            bytes(total(&reply.pending))
        ));
    }
    if !reply.repacked.is_empty() {
        let verb = match reply.dry_run {
            true => "would rewrite",
            false => "rewrote (and condemned)",
        };
        lines.push(format!(
            "{verb} {} mostly garbage packs ({}), copying {} of referenced frames into new packs",
            reply.repacked.len(),
            bytes(repacked_totals(reply).0),
            bytes(repacked_totals(reply).1),
        ));
    }
    if !reply.traces_deleted.is_empty() {
        lines.push(format!(
            "{delete} {} access traces not written for {}",
            reply.traces_deleted.len(),
            humantime::format_duration(Duration::from_millis(reply.trace_max_age_ms))
        ));
    }
    let rows: Vec<Vec<String>> = [
        (delete, &reply.deleted),
        (condemn, &reply.condemned),
        (delete, &reply.traces_deleted),
    ]
    .into_iter()
    .flat_map(|(action, objects)| {
        objects
            .iter()
            .map(move |o| vec![action.to_string(), o.key.clone(), bytes(o.bytes)])
    })
    .collect();
    if !rows.is_empty() {
        lines.push(table(&["ACTION", "OBJECT", "SIZE"], &rows));
    }
    lines.join("\n")
}
