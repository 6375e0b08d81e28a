//! A pipeline of one producer task and [`CONSUMERS`] consumer tasks that run
//! in parallel after it, executed by `wsfs run`, with the tree handed over
//! two ways:
//!
//! - by a wsfs layer: the producer's `persist:` step makes the tree (its
//!   working directory) a layer of the pipeline's workspace, and each
//!   consumer sees that workspace as a read-only view;
//! - by a tar.zst, as layer-based CI does: the producer runs
//!   `tar -c . | zstd -3 -T0 > ARCHIVE`, each consumer
//!   `zstd -d < ARCHIVE | tar -x` into a fresh directory of its own (the
//!   archive stays on local disk: no upload, no download).
//!
//! Then each consumer runs the same reader (this executable with
//! `--read-tree`): every file, or a 5% sample of its own. The tar.zst
//! pipeline also runs as the same scripts in a plain shell, which shows what
//! the executor itself costs. Each `wsfs run` gets a fresh state dir (a fresh
//! daemon, a cold cache) and a fresh remote.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

use crate::corpus::Tree;
use crate::host::field;
use crate::measure::{dir_bytes, new_dir, sample, Config, Outcome, SAMPLE_PERCENT};
use crate::peers;
use crate::read::{self, Read};
use crate::report::{bytes, time, Row, Samples, Target};

/// Consumer tasks, all run after the producer.
const CONSUMERS: usize = 8;

/// What each consumer reads.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reads {
    /// Every file.
    All,
    /// Its own random `SAMPLE_PERCENT`% of the files.
    Sample,
}

/// How the producer's tree reaches the consumers.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HandOver {
    /// A layer and read-only views, in `wsfs run`.
    Wsfs,
    /// A tar.zst, in `wsfs run`.
    Tar,
    /// A tar.zst, the same scripts in a plain shell.
    Shell,
}

impl Reads {
    fn name(self) -> &'static str {
        match self {
            Reads::All => "all",
            Reads::Sample => "sample",
        }
    }

    fn label(self) -> String {
        match self {
            Reads::All => "every file".into(),
            Reads::Sample => format!("{SAMPLE_PERCENT}% each"),
        }
    }
}

impl HandOver {
    fn name(self) -> &'static str {
        match self {
            HandOver::Wsfs => "wsfs",
            HandOver::Tar => "tar",
            HandOver::Shell => "shell",
        }
    }

    fn label(self) -> &'static str {
        match self {
            HandOver::Wsfs => "wsfs",
            HandOver::Tar => "tar.zst in `wsfs run`",
            HandOver::Shell => "tar.zst in bash",
        }
    }
}

/// The measurements of one hand-over and one read pattern, one sample per run.
#[derive(Default)]
struct Measured {
    /// The whole pipeline.
    wall: Samples,
    /// The producer task.
    producer: Samples,
    /// The slowest consumer task.
    consumer: Samples,
    /// The rest: the executor's own work (daemon start, binding workspaces,
    /// attaching and detaching views, scheduling, clean-up).
    rest: Samples,
}

/// What every run shares.
struct Setup<'a> {
    tree: &'a Tree,
    /// This executable: the consumers' reader.
    reader: PathBuf,
    /// Per consumer: the file listing its sample (NUL-separated paths).
    lists: Vec<PathBuf>,
    /// Per consumer: what reading its sample covers.
    samples: Vec<Read>,
}

impl Setup<'_> {
    /// What consumer `k` (0-based) must report.
    fn expected(&self, reads: Reads, k: usize) -> Read {
        match reads {
            Reads::All => Read {
                files: self.tree.files.len() as u64,
                bytes: self.tree.bytes,
            },
            Reads::Sample => self.samples[k],
        }
    }

    /// The script of consumer `k`: extraction of `archive` (tar.zst
    /// hand-over) into its working directory, then the read.
    fn consumer_script(&self, reads: Reads, k: usize, archive: Option<&Path>) -> String {
        let mut lines = Vec::new();
        if let Some(archive) = archive {
            lines.push(format!("zstd -d -q < {} | tar -x", quote(archive)));
        }
        let mut read = format!("{} --read-tree .", quote(&self.reader));
        if reads == Reads::Sample {
            read += &format!(" --read-list {}", quote(&self.lists[k]));
        }
        lines.push(read);
        script(&lines)
    }
}

/// What one pipeline run left to report.
struct Ran {
    wall: Duration,
    producer: Duration,
    consumer: Duration,
    /// `wsfs status` right after a wsfs hand-over.
    status: Option<Value>,
}

/// Runs the pipeline measurements (`cfg.runs` runs; in each, the order of
/// the hand-overs rotates) and adds their rows, details and facts (as
/// `facts.pipeline`) to `outcome`.
pub fn suite(cfg: &Config, tree: &Tree, outcome: &mut Outcome) -> Result<()> {
    let dir = cfg.fresh_dir("pipeline")?;
    let picked: Vec<_> = (0..CONSUMERS)
        .map(|k| sample(tree, cfg.seed + 1000 + k as u64))
        .collect();
    let mut lists = Vec::new();
    for (k, files) in picked.iter().enumerate() {
        let list = dir.join(format!("sample-{}.list", k + 1));
        let mut text = Vec::new();
        for f in files {
            text.extend_from_slice(f.path.as_os_str().as_bytes());
            text.push(0);
        }
        fs::write(&list, text).with_context(|| format!("cannot write {}", list.display()))?;
        lists.push(list);
    }
    let s = Setup {
        tree,
        reader: std::env::current_exe()?,
        lists,
        samples: picked
            .iter()
            .map(|files| Read {
                files: files.len() as u64,
                bytes: files.iter().map(|f| f.size).sum(),
            })
            .collect(),
    };
    let mut measured: BTreeMap<(HandOver, Reads), Measured> = BTreeMap::new();
    let mut status: BTreeMap<Reads, Value> = BTreeMap::new();
    let (mut stored, mut archive_bytes) = (0, 0);
    for run in 0..cfg.runs {
        for (reads, mut order) in [
            (Reads::All, vec![HandOver::Wsfs, HandOver::Tar, HandOver::Shell]),
            (Reads::Sample, vec![HandOver::Wsfs, HandOver::Tar]),
        ] {
            let n = order.len();
            order.rotate_left(run % n);
            for hand in order {
                cfg.progress_run(
                    &format!(
                        "pipeline: {} hand-over, consumers read {}",
                        hand.name(),
                        reads.name()
                    ),
                    run,
                );
                let run_dir = cfg.fresh_dir(&format!("pipeline-{}", hand.name()))?;
                let ran = match hand {
                    HandOver::Shell => in_shell(cfg, &s, reads, &run_dir)?,
                    _ => in_wsfs_run(cfg, &s, hand, reads, &run_dir)?,
                };
                if let Some(value) = ran.status {
                    status.insert(reads, value);
                    stored = dir_bytes(&run_dir.join("remote"))?;
                }
                if hand == HandOver::Tar {
                    archive_bytes = fs::metadata(run_dir.join("tree.tar.zst"))?.len();
                }
                let m = measured.entry((hand, reads)).or_default();
                m.wall.0.push(ran.wall);
                m.producer.0.push(ran.producer);
                m.consumer.0.push(ran.consumer);
                m.rest
                    .0
                    .push(ran.wall.saturating_sub(ran.producer + ran.consumer));
            }
        }
    }
    let seen = Seen {
        measured,
        status,
        stored,
        archive_bytes,
    };
    outcome.rows.extend(rows(&s, &seen));
    outcome.details.extend(details(&s, &seen)?);
    outcome.facts["pipeline"] = facts(&s, &seen);
    Ok(())
}

/// Everything the runs measured and saw.
struct Seen {
    measured: BTreeMap<(HandOver, Reads), Measured>,
    /// The last wsfs run's `wsfs status`, per read pattern.
    status: BTreeMap<Reads, Value>,
    /// Size of the last wsfs run's remote.
    stored: u64,
    archive_bytes: u64,
}

impl Seen {
    fn get(&self, hand: HandOver, reads: Reads) -> &Measured {
        &self.measured[&(hand, reads)]
    }
}

/// One `wsfs run` of the pipeline with hand-over `hand`, on a fresh host,
/// in the new directory `dir`.
fn in_wsfs_run(cfg: &Config, s: &Setup, hand: HandOver, reads: Reads, dir: &Path) -> Result<Ran> {
    let archive = dir.join("tree.tar.zst");
    let root = s.tree.root.display().to_string();
    let (producer, consumers): (Step, Vec<Step>) = if hand == HandOver::Wsfs {
        let consumers = (0..CONSUMERS)
            .map(|k| Step::script("$(workspaces.in.path)", s.consumer_script(reads, k, None)))
            .collect();
        (Step::persist(&root), consumers)
    } else {
        let consumers = (0..CONSUMERS)
            .map(|k| {
                let dest = dir.join(format!("consumer-{}", k + 1)).display().to_string();
                Step::script(&dest, s.consumer_script(reads, k, Some(&archive)))
            })
            .collect();
        (Step::script(&root, producer_script(&archive)), consumers)
    };
    let file = dir.join(format!("{}-{}.yaml", hand.name(), reads.name()));
    fs::write(
        &file,
        pipeline_yaml(hand == HandOver::Wsfs, &producer, &consumers),
    )?;
    let host = cfg.host(&dir.join("remote"))?;
    warm_and_sync(cfg, s)?;
    let start = Instant::now();
    let (summary, log) = host.cli_with_log(&[OsStr::new("run"), file.as_os_str()])?;
    let wall = start.elapsed();
    let status = if hand == HandOver::Wsfs {
        Some(host.status()?)
    } else {
        None
    };
    drop(host);
    ensure!(summary["status"] == "Succeeded", "{}: {summary}", file.display());
    let task_ms = |name: &str| -> Result<Duration> {
        let task = summary["tasks"]
            .as_array()
            .and_then(|tasks| tasks.iter().find(|t| t["name"] == name))
            .with_context(|| format!("{}: no task {name} in {summary}", file.display()))?;
        Ok(Duration::from_millis(field(task, "duration_ms")?))
    };
    let mut consumer = Duration::ZERO;
    for k in 0..CONSUMERS {
        let name = format!("consumer-{}", k + 1);
        consumer = consumer.max(task_ms(&name)?);
        let prefix = format!("[{name}/read] ");
        let said = log.lines().find_map(|line| line.strip_prefix(&prefix));
        check_read(said, s.expected(reads, k), &name, &file)?;
    }
    Ok(Ran {
        wall,
        producer: task_ms("producer")?,
        consumer,
        status,
    })
}

/// The tar.zst pipeline's scripts in a plain shell: the producer, then the
/// consumers in parallel, in the new directory `dir`.
fn in_shell(cfg: &Config, s: &Setup, reads: Reads, dir: &Path) -> Result<Ran> {
    let archive = dir.join("tree.tar.zst");
    let dests = (0..CONSUMERS)
        .map(|k| new_dir(&dir.join(format!("consumer-{}", k + 1))))
        .collect::<Result<Vec<_>>>()?;
    warm_and_sync(cfg, s)?;
    let start = Instant::now();
    let produced = bash(&producer_script(&archive), &s.tree.root)?.wait_with_output()?;
    ensure!(
        produced.status.success(),
        "the producer failed: {}",
        produced.status
    );
    let producer = start.elapsed();
    let children = dests
        .iter()
        .enumerate()
        .map(|(k, dest)| bash(&s.consumer_script(reads, k, Some(&archive)), dest))
        .collect::<Result<Vec<_>>>()?;
    let outputs = children
        .into_iter()
        .map(|child| child.wait_with_output())
        .collect::<std::io::Result<Vec<_>>>()?;
    let wall = start.elapsed();
    for (k, out) in outputs.iter().enumerate() {
        let name = format!("consumer-{}", k + 1);
        ensure!(out.status.success(), "{name} failed: {}", out.status);
        let said = String::from_utf8_lossy(&out.stdout);
        check_read(said.lines().next(), s.expected(reads, k), &name, dir)?;
    }
    Ok(Ran {
        wall,
        producer,
        consumer: wall - producer,
        status: None,
    })
}

/// Starts `bash -c SCRIPT` in `dir`, its stdout piped.
fn bash(script: &str, dir: &Path) -> Result<Child> {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run bash")
}

/// Before a timed pipeline: the tree, the binaries and the reader in the page
/// cache (the producers read the tree from there), then `sync`, so that the
/// previous run's writeback does not land on this one.
fn warm_and_sync(cfg: &Config, s: &Setup) -> Result<()> {
    read::read_tree(&s.tree.root)?;
    read::read_files(Path::new("/"), cfg.bins.paths())?;
    read::read_files(Path::new("/"), [s.reader.as_path()])?;
    peers::sync();
    Ok(())
}

/// Fails unless a consumer `said` what it must have read.
fn check_read(said: Option<&str>, expected: Read, consumer: &str, at: &Path) -> Result<()> {
    let want = read_line(expected);
    ensure!(
        said == Some(want.as_str()),
        "{consumer} ({}) said {said:?}, expected {want:?}",
        at.display()
    );
    Ok(())
}

/// What a consumer prints.
fn read_line(read: Read) -> String {
    format!("read {} files, {} bytes", read.files, read.bytes)
}

/// The consumers' reader (`wsfs-bench --read-tree ROOT [--read-list LIST]`):
/// reads every file below `root`, or the files `list` names, to their ends,
/// and prints what it read.
pub fn read_and_print(root: &Path, list: Option<&Path>) -> Result<()> {
    let read = match list {
        None => read::read_tree(root)?,
        Some(list) => {
            let text = fs::read(list).with_context(|| format!("cannot read {}", list.display()))?;
            let paths = text
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| Path::new(OsStr::from_bytes(p)));
            read::read_files(root, paths)?
        }
    };
    println!("{}", read_line(read));
    Ok(())
}

/// The tar.zst producer: packs its working directory.
fn producer_script(archive: &Path) -> String {
    script(&[format!("tar -c . | zstd -3 -T0 -q > {}", quote(archive))])
}

/// A bash script that fails on the first failing command of any pipe.
fn script(lines: &[String]) -> String {
    format!("#!/bin/bash\nset -euo pipefail\n{}\n", lines.join("\n"))
}

/// `path` single-quoted for the shell.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// The one step of a task.
struct Step {
    working_dir: String,
    /// `None`: a `persist:` step of the whole working directory to the task
    /// workspace `out`.
    script: Option<String>,
}

impl Step {
    fn persist(working_dir: &str) -> Step {
        Step {
            working_dir: working_dir.into(),
            script: None,
        }
    }

    fn script(working_dir: &str, script: String) -> Step {
        Step {
            working_dir: working_dir.into(),
            script: Some(script),
        }
    }
}

/// A `kind: Pipeline` file: task `producer`, then tasks `consumer-1`, ...
/// after it. With `workspace`, the pipeline workspace `shared` is the
/// producer's `out` and each consumer's `in` (read-only).
fn pipeline_yaml(workspace: bool, producer: &Step, consumers: &[Step]) -> String {
    let mut yaml =
        String::from("apiVersion: tekton.dev/v1\nkind: Pipeline\nmetadata:\n  name: bench-pipeline\nspec:\n");
    if workspace {
        yaml += "  workspaces:\n    - name: shared\n";
    }
    yaml += "  tasks:\n";
    let uses = |name: &str, read_only: bool| workspace.then(|| (name.to_string(), read_only));
    yaml += &task_yaml("producer", None, uses("out", false), "produce", producer);
    for (k, step) in consumers.iter().enumerate() {
        let name = format!("consumer-{}", k + 1);
        yaml += &task_yaml(&name, Some("producer"), uses("in", true), "read", step);
    }
    yaml
}

/// One pipeline task with an embedded one-step `taskSpec`; `workspace`: the
/// task workspace bound to `shared`, and whether it is read-only.
fn task_yaml(
    name: &str,
    after: Option<&str>,
    workspace: Option<(String, bool)>,
    step_name: &str,
    step: &Step,
) -> String {
    let mut yaml = format!("    - name: {name}\n");
    if let Some(after) = after {
        yaml += &format!("      runAfter: [{after}]\n");
    }
    if let Some((ws, _)) = &workspace {
        yaml += &format!("      workspaces:\n        - name: {ws}\n          workspace: shared\n");
    }
    yaml += "      taskSpec:\n";
    if let Some((ws, read_only)) = &workspace {
        yaml += &format!("        workspaces:\n          - name: {ws}\n            readOnly: {read_only}\n");
    }
    // A JSON string is a YAML double-quoted scalar.
    let working_dir = serde_json::to_string(&step.working_dir).expect("a string");
    yaml +=
        &format!("        steps:\n          - name: {step_name}\n            workingDir: {working_dir}\n");
    match &step.script {
        None => yaml += "            persist:\n              workspace: out\n              paths: [.]\n",
        Some(script) => {
            yaml += "            script: |\n";
            for line in script.lines() {
                yaml += &format!("              {line}\n");
            }
        }
    }
    yaml
}

/// The table's rows.
fn rows(s: &Setup, seen: &Seen) -> Vec<Row> {
    let wall = |hand, reads| &seen.get(hand, reads).wall;
    let tar_how = "same pipeline, tar.zst hand-over: tar -c | zstd -3 -T0, each consumer zstd -d | tar -x";
    vec![
        Row::times(
            format!(
                "pipeline: 1 producer + {CONSUMERS} parallel consumers, each reading all {} files (`wsfs run`, \
                 wall time)",
                s.tree.files.len()
            ),
            wall(HandOver::Wsfs, Reads::All),
            wall(HandOver::Tar, Reads::All),
            tar_how,
            Target::None,
        ),
        Row::times(
            format!(
                "pipeline: each consumer reading its own {SAMPLE_PERCENT}% ({} files)",
                s.samples[0].files
            ),
            wall(HandOver::Wsfs, Reads::Sample),
            wall(HandOver::Tar, Reads::Sample),
            &format!("{tar_how} (all of it)"),
            Target::None,
        ),
        Row::times(
            "pipeline, all files, vs the tar.zst hand-over without an executor",
            wall(HandOver::Wsfs, Reads::All),
            wall(HandOver::Shell, Reads::All),
            "the same scripts in bash: producer, then the consumers in parallel",
            Target::None,
        ),
        Row::times(
            "the executor's cost: the tar.zst pipeline in `wsfs run` (in the wsfs column) vs in bash",
            wall(HandOver::Tar, Reads::All),
            wall(HandOver::Shell, Reads::All),
            "the same scripts in bash",
            Target::None,
        ),
    ]
}

/// Breakdowns and evidence, one line each.
fn details(s: &Setup, seen: &Seen) -> Result<Vec<String>> {
    let cases = [
        (HandOver::Wsfs, Reads::All),
        (HandOver::Tar, Reads::All),
        (HandOver::Shell, Reads::All),
        (HandOver::Wsfs, Reads::Sample),
        (HandOver::Tar, Reads::Sample),
    ];
    let mut lines = vec![
        "pipeline, per run (the order of the hand-overs rotates from run to run): wall = producer task (wsfs: the \
         `persist:` step; tar.zst: tar -c | zstd -3 -T0) + slowest consumer task (bash: from the producer's end to \
         the last consumer's) + the rest (`wsfs run`'s own work: daemon start, binding the workspaces, views, \
         scheduling, clean-up)"
            .to_string(),
    ];
    for (hand, reads) in cases {
        let m = seen.get(hand, reads);
        lines.push(format!(
            "pipeline, {}, {}: wall {} = producer {} + consumer {} + rest {} (medians: producer {}, \
             consumer {})",
            hand.label(),
            reads.label(),
            m.wall.runs(),
            m.producer.runs(),
            m.consumer.runs(),
            m.rest.runs(),
            time(m.producer.median()),
            time(m.consumer.median()),
        ));
    }
    let fetched = |reads: Reads| -> Result<String> {
        let st = &seen.status[&reads];
        Ok(format!(
            "{} in {} GETs ({} chunk reads from the local caches, {} not)",
            bytes(field(st, "remote_bytes_fetched")?),
            field(st, "remote_get_requests")?,
            field(st, "cache_hits")?,
            field(st, "cache_misses")?,
        ))
    };
    let stored = &seen.status[&Reads::All];
    let sample_bytes: Vec<u64> = s.samples.iter().map(|r| r.bytes).collect();
    lines.extend([
        format!(
            "pipeline, one daemon serves the {CONSUMERS} consumers (last runs): they fetched {} (every file) and \
             {} ({SAMPLE_PERCENT}% each); the run stored {} in {} PUTs (remote dir {}) vs a tar.zst of {}",
            fetched(Reads::All)?,
            fetched(Reads::Sample)?,
            bytes(field(stored, "remote_bytes_stored")?),
            field(stored, "remote_put_requests")?,
            bytes(seen.stored),
            bytes(seen.archive_bytes),
        ),
        format!(
            "pipeline, checked: every consumer printed the file and byte counts it had to read ({} files, {} each; \
             {SAMPLE_PERCENT}%: {} files, {}-{} each); the tar.zst hand-over extracts {} per run ({CONSUMERS} copies), kept until \
             the bench ends",
            s.tree.files.len(),
            bytes(s.tree.bytes),
            s.samples[0].files,
            bytes(sample_bytes.iter().copied().min().unwrap_or(0)),
            bytes(sample_bytes.iter().copied().max().unwrap_or(0)),
            bytes(s.tree.bytes * CONSUMERS as u64),
        ),
    ]);
    Ok(lines)
}

/// The side facts for `--json`.
fn facts(s: &Setup, seen: &Seen) -> Value {
    let ms = |samples: &Samples| {
        samples
            .0
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect::<Vec<_>>()
    };
    let runs: serde_json::Map<String, Value> = seen
        .measured
        .iter()
        .map(|(&(hand, reads), m)| {
            (
                format!("{}_{}", hand.name(), reads.name()),
                json!({
                    "wall_ms": ms(&m.wall),
                    "producer_ms": ms(&m.producer),
                    "slowest_consumer_ms": ms(&m.consumer),
                    "rest_ms": ms(&m.rest),
                }),
            )
        })
        .collect();
    json!({
        "consumers": CONSUMERS,
        "sample_files": s.samples.iter().map(|r| r.files).collect::<Vec<_>>(),
        "sample_bytes": s.samples.iter().map(|r| r.bytes).collect::<Vec<_>>(),
        "runs": runs,
        "wsfs_status_all": seen.status.get(&Reads::All),
        "wsfs_status_sample": seen.status.get(&Reads::Sample),
        "remote_bytes": seen.stored,
        "tar_zst_bytes": seen.archive_bytes,
    })
}
