//! Crashes and restarts under load: how long readers wait when `wsfsd` is
//! killed (SIGKILL) until the holder's next daemon answers, and whether
//! `wsfs daemon restart` fails any read.
//!
//! Readers read files of the tree through a view with `O_DIRECT` (every
//! read a request to the daemon, none served by the page cache), each read
//! checked against the file's hash (`wsfs_tests::read::Readers`). The
//! baseline is the same readers' median time per file with nothing killed.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde_json::json;

use crate::corpus::Tree;
use crate::host::{field, Host};
use crate::measure::{pick, Config, Outcome};
use crate::report::{time, Qty, Row, Samples, Target};
use wsfs_tests::read::Readers;

/// Files the readers go over (a random sample of the tree).
const FILES: usize = 2_000;
/// Readers while the daemon is killed, and while it restarts.
const KILL_READERS: usize = 4;
const RESTART_READERS: usize = 16;
/// Reads to see before disturbing the daemon, and after.
const WARM_READS: u64 = 200;
/// Longer than any start of a daemon: a reader waiting longer hung.
const PATIENCE: Duration = Duration::from_secs(120);

/// The takeover rows: kill → first answered read, and failed reads during restarts.
pub fn suite(cfg: &Config, tree: &Tree, outcome: &mut Outcome) -> Result<()> {
    let dir = cfg.fresh_dir("takeover")?;
    let host = cfg.host(&dir.join("remote"))?;
    cfg.progress("takeover: persist the tree, attach it");
    host.persist("bench/takeover", &tree.root)?;
    let view = host.attach("bench/takeover")?;
    let files: Vec<_> = pick(tree, FILES, cfg.seed)
        .into_iter()
        .map(|i| {
            let rel = &tree.files[i].path;
            let hash = wsfs_tests::compare::hash_file(&tree.root.join(rel))?;
            Ok((view.join(rel), hash))
        })
        .collect::<Result<_>>()?;
    let (mut per_read, mut outage) = (Samples::default(), Samples::default());
    let (mut failed, mut reads, mut stall) = (0u64, 0u64, Samples::default());
    for run in 0..cfg.runs {
        cfg.progress_run("takeover: kill -9 wsfsd under 4 readers", run);
        let readers = Readers::start(KILL_READERS, files.clone());
        let started = Instant::now();
        ensure!(
            readers.wait_for_reads(WARM_READS, PATIENCE),
            "the readers did not get going"
        );
        per_read
            .0
            .push(started.elapsed() * KILL_READERS as u32 / WARM_READS as u32);
        let daemon = field(&host.status()?, "pid")? as i32;
        let killed = Instant::now();
        ensure!(
            wsfs_tests::process::kill_and_wait(daemon, Duration::from_secs(30)),
            "wsfsd {daemon} did not die"
        );
        // Each reader may hold a reply of the killed daemon not yet counted:
        // one read more than the readers is one the next daemon answered.
        let next = readers.reads() + KILL_READERS as u64 + 1;
        ensure!(
            readers.wait_for_reads(next, PATIENCE),
            "no read was answered after the kill"
        );
        outage.0.push(killed.elapsed());
        let report = readers.stop(PATIENCE);
        ensure!(
            report.failures.is_empty(),
            "reads failed after a kill: {:?}",
            report.failures
        );

        cfg.progress_run("takeover: wsfs daemon restart under 16 readers", run);
        let readers = Readers::start(RESTART_READERS, files.clone());
        ensure!(
            readers.wait_for_reads(WARM_READS, PATIENCE),
            "the readers did not get going"
        );
        host.cli(&["daemon", "restart"])?;
        let before = readers.reads();
        ensure!(
            readers.wait_for_reads(before + WARM_READS, PATIENCE),
            "reads did not go on after the restart"
        );
        let report = readers.stop(PATIENCE);
        failed += report.failures.len() as u64;
        reads += report.reads;
        stall.0.push(report.longest);
    }
    restarted_is_alive(&host)?;
    outcome.rows.push(Row::new(
        "kill -9 wsfsd → first read answered (4 O_DIRECT readers)",
        Qty::Time(outage.clone()),
        Qty::Time(per_read.clone()),
        "one file's read, nothing killed",
        Target::Within(1.0),
    ));
    outcome.rows.push(Row::new(
        "failed reads during `wsfs daemon restart` (16 O_DIRECT readers)",
        Qty::Count(failed),
        Qty::Count(reads),
        "reads checked",
        Target::Zero,
    ));
    outcome.details.push(format!(
        "takeover: kill -9 → first answered read {} (runs {}); the longest single read during a restart took {}",
        time(outage.median()),
        outage.runs(),
        time(stall.median()),
    ));
    outcome.facts["takeover"] = json!({
        "kill_to_first_read_ms": outage.0.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
        "restart_failed_reads": failed,
        "restart_reads": reads,
        "restart_longest_read_ms": stall.0.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
    });
    Ok(())
}

/// The view still answers after the last restart.
fn restarted_is_alive(host: &Host) -> Result<()> {
    let status = host.status()?;
    ensure!(
        status["mounts"].as_array().is_some_and(|m| m.len() == 1),
        "the view is gone after the restarts: {status}"
    );
    Ok(())
}
