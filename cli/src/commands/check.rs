//! `wsfs check`: verify what the workspaces reference, name what is broken.

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use wsfs_api::pb::{self, check_event::Event};
use wsfs_api::Client;

use crate::output::{bytes, emit};

/// Asks the daemon to check the remote, showing progress on a terminal;
/// prints the report, and fails when anything is broken.
pub async fn run(client: &mut Client, read_data: bool, json: bool) -> Result<()> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} checking {msg} [{bar:30}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut events = client.check(pb::CheckRequest { read_data }).await?.into_inner();
    let mut result = None;
    while let Some(event) = events.message().await? {
        match event.event {
            Some(Event::Progress(p)) => {
                if bar.message() != p.phase {
                    bar.reset();
                    bar.set_message(p.phase.clone());
                }
                bar.set_length(p.total);
                bar.set_position(p.done);
            }
            Some(Event::Result(r)) => result = Some(r),
            None => {}
        }
    }
    bar.finish_and_clear();
    let Some(reply) = result else {
        bail!("the daemon ended the check without a result: see its log");
    };
    emit(json, reply_json(&reply), || human(&reply));
    if !reply.broken.is_empty() {
        let workspaces: std::collections::BTreeSet<&String> =
            reply.broken.iter().flat_map(|b| &b.workspaces).collect();
        bail!(
            "broken objects: {}, workspaces hit: {} (listed above)",
            reply.broken.len(),
            workspaces.len()
        );
    }
    Ok(())
}

fn reply_json(r: &pb::CheckReply) -> serde_json::Value {
    let broken: Vec<_> = r
        .broken
        .iter()
        .map(|b| {
            json!({
                "key": b.key,
                "problem": b.problem,
                "detail": b.detail,
                "layers": b.layers,
                "workspaces": b.workspaces,
            })
        })
        .collect();
    json!({
        "read_data": r.read_data,
        "clean": r.broken.is_empty(),
        "workspaces": r.workspaces,
        "layers": r.layers,
        "packs": r.packs,
        "chunks": r.chunks,
        "pack_bytes_read": r.pack_bytes_read,
        "broken": broken,
        "marked": r.marked,
        "unmarked": r.unmarked,
        "forgotten": r.forgotten,
    })
}

fn human(r: &pb::CheckReply) -> String {
    let what = match r.read_data {
        true => "every chunk verified",
        false => "indexes only; --read-data verifies every chunk",
    };
    let mut lines = vec![format!(
        "checked {} workspaces: {} layers, {} packs, {} chunks ({what}; read {} of packs)",
        r.workspaces,
        r.layers,
        r.packs,
        r.chunks,
        bytes(r.pack_bytes_read)
    )];
    if r.broken.is_empty() {
        lines.push("no problems found".into());
    }
    for b in &r.broken {
        lines.push(format!("{}: {}", b.key, b.detail));
        if !(b.layers.len() == 1 && b.key.ends_with(&b.layers[0])) {
            lines.push(format!("  layers: {}", b.layers.join(", ")));
        }
        lines.push(format!("  workspaces: {}", b.workspaces.join(", ")));
    }
    for key in &r.marked {
        lines.push(format!(
            "wrote {key}: persists store the chunks of that pack anew"
        ));
    }
    for key in &r.unmarked {
        lines.push(format!("removed {key}: the pack verified whole"));
    }
    if r.forgotten > 0 {
        lines.push(format!(
            "dropped {} entries of this host's local index that pointed into broken packs",
            r.forgotten
        ));
    }
    lines.join("\n")
}
