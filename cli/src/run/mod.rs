//! `wsfs run`: executes a Tekton v1 pipeline on this host. Each task starts
//! as soon as the tasks it runs after succeeded; its workspaces are wsfs
//! views (read-only, or isolated and persisted as the next layer when the
//! task succeeds); each step runs in a mount namespace of its own (and, when
//! `wsfs run` is not root, a user namespace: see `namespace`).

mod namespace;
mod report;
mod task;
mod user;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::task::JoinSet;
use wsfs_api::{pb, Client};
use wsfs_pipeline::plan::{Plan, Source};
use wsfs_pipeline::tekton::{self, Caller, RunOptions};

use self::namespace::Ids;
use self::report::{summary, task_json, TaskReport, TaskStatus};
use self::task::RunContext;
use crate::client::Daemon;
use crate::commands::persist;
pub use crate::step_user::StepUser;

/// When the workspaces of a run killed before its clean-up (SIGKILL, a
/// crash) expire; a run that ends sets their expiry itself (`--keep`).
const ORPHAN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// What `wsfs run` was asked.
pub struct RunArgs {
    /// The pipeline file.
    pub file: PathBuf,
    /// `--workspace NAME=DIR|NAME=NS/WS`.
    pub workspaces: Vec<String>,
    /// `--param NAME=VALUE`.
    pub params: Vec<String>,
    /// `--keep`: how long the run's workspaces outlive it.
    pub keep: Duration,
    /// `--prefetch`: attach the tasks' workspaces with prefetch.
    pub prefetch: bool,
    /// `--step-user UID[:GID]`.
    pub step_user: Option<StepUser>,
    /// `--json`.
    pub json: bool,
}

/// `text` in lower-case letters, digits and `-` (anything else becomes `-`),
/// fit for workspace names and access trace keys.
/// The access trace key of the views of task `task`'s workspace `decl`.
pub(crate) fn trace_key(prefix: &str, task: &str, decl: &str) -> String {
    format!("{prefix}/{}/{}", slug(task), slug(decl))
}

/// Pipeline workspace → the trace keys of the task views bound to it, in
/// task order: a persist to it lays out first what those tasks read last run.
fn readers(plan: &Plan, prefix: &str) -> HashMap<String, Vec<String>> {
    let mut readers: HashMap<String, Vec<String>> = HashMap::new();
    for task in &plan.tasks {
        for decl in &task.workspaces {
            if let Some(ws) = &decl.pipeline_workspace {
                readers
                    .entry(ws.clone())
                    .or_default()
                    .push(trace_key(prefix, &task.name, &decl.name));
            }
        }
    }
    readers
}

pub(crate) fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.trim_matches('-').to_string()
}

/// A run's name: the file's stem (made a valid workspace namespace) and a random suffix.
fn run_name(file: &Path) -> String {
    let stem: String = slug(&file.file_stem().unwrap_or_default().to_string_lossy())
        .chars()
        .take(60)
        .collect();
    let stem = stem.trim_matches('-');
    let suffix: String = (0..5)
        .map(|_| {
            let n = rand_u8() % 36;
            char::from_digit(u32::from(n), 36).expect("below 36")
        })
        .collect();
    format!("{}-{suffix}", if stem.is_empty() { "run" } else { stem })
}

fn rand_u8() -> u8 {
    let mut byte = [0u8; 1];
    // SAFETY: writes at most one byte into a one-byte buffer (left 0 if it fails).
    unsafe { libc::getrandom(byte.as_mut_ptr().cast(), 1, 0) };
    byte[0]
}

/// Runs the pipeline; an error when it failed (the summary says where).
pub async fn run(client: Client, daemon: &Daemon, args: RunArgs) -> Result<()> {
    let state_dir = &daemon.state_dir;
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let caller = (uid != 0).then_some(Caller { uid, gid });
    if let Some(caller) = caller {
        let step_user = args.step_user.unwrap_or_default();
        let other = [
            (step_user.uid, "uid", caller.uid),
            (step_user.gid, "gid", caller.gid),
        ]
        .into_iter()
        .find_map(|(id, kind, own)| id.and_then(|id| Caller::refusal("--step-user", kind, id, own)));
        if let Some(refusal) = other {
            bail!(refusal);
        }
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let options = RunOptions {
        run_name: run_name(&args.file),
        workspaces: args
            .workspaces
            .iter()
            .map(|w| {
                tekton::parse_workspace_flag(w, &cwd).map_err(|e| anyhow::anyhow!("--workspace {w:?}: {e}"))
            })
            .collect::<Result<_>>()?,
        params: args
            .params
            .iter()
            .map(|p| tekton::parse_param_flag(p).map_err(|e| anyhow::anyhow!("--param {p:?}: {e}")))
            .collect::<Result<_>>()?,
        caller,
    };
    let plan = tekton::load(&args.file, &options)?;
    let user = caller.map(|c| Ids {
        uid: c.uid,
        gid: c.gid,
    });
    if let Some(ids) = user {
        namespace::check_user_namespaces(ids)?;
    }
    let run = options.run_name;
    let dir = state_dir.join("runs").join(&run);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut client = client;
    let say = |line: &str| task::say(args.json, &run, None, line);
    match client.remove_expired(pb::RemoveExpiredRequest {}).await {
        Ok(reply) => {
            for r in reply.into_inner().removed {
                say(&format!(
                    "removed expired workspace {} (kept by an earlier run)",
                    r.workspace
                ));
            }
        }
        Err(e) => say(&format!("cannot remove expired workspaces: {}", e.message())),
    }
    let hidden = hidden_paths(&mut client, daemon).await;
    let trace_prefix = Some(slug(&plan.name))
        .filter(|s| !s.is_empty())
        .unwrap_or("pipeline".into());
    let readers = readers(&plan, &trace_prefix);
    let (bound, owned) = match bind_workspaces(&mut client, &plan, &run, &dir, &readers, &say).await {
        Ok(bound) => bound,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let ctx = Arc::new(RunContext {
        client,
        dir,
        bound,
        json: args.json,
        trace_prefix,
        readers,
        prefetch: args.prefetch,
        host_dirs: Mutex::new(Vec::new()),
        attached: Mutex::default(),
        steps: Mutex::default(),
        hidden,
        step_user: args.step_user.unwrap_or_default(),
        user,
    });
    say(&format!("pipeline {}: {} tasks", plan.name, plan.tasks.len()));
    let reports = tokio::select! {
        reports = schedule(ctx.clone(), &plan) => Some(reports),
        () = interrupted() => None,
    };
    if reports.is_none() {
        ctx.kill_steps();
    }
    cleanup(&ctx, &owned, args.keep, &run).await;
    let Some(reports) = reports else {
        bail!("interrupted: views detached, changes of running tasks discarded");
    };
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.status != TaskStatus::Succeeded)
        .map(|r| r.name.as_str())
        .collect();
    if args.json {
        let workspaces: Vec<_> = plan
            .workspaces
            .iter()
            .filter_map(|w| ctx.bound.get(&w.name).map(|ws| (w, ws)))
            .map(|(w, ws)| json!({ "name": w.name, "workspace": ws, "kept": !owned.contains(ws) || !args.keep.is_zero() }))
            .collect();
        let out = json!({
            "pipeline": plan.name,
            "run": run,
            "status": if failed.is_empty() { "Succeeded" } else { "Failed" },
            "tasks": reports.iter().map(task_json).collect::<Vec<_>>(),
            "workspaces": workspaces,
        });
        println!("{out}");
    } else {
        println!("\n{}", summary(&reports));
    }
    if !failed.is_empty() {
        bail!(
            "pipeline {} failed: {} did not succeed",
            plan.name,
            failed.join(", ")
        );
    }
    Ok(())
}

/// What steps do not see: the state directory (this CLI's and the daemon's),
/// the daemon's socket and its remote when that is a directory.
async fn hidden_paths(client: &mut Client, daemon: &Daemon) -> Vec<PathBuf> {
    let mut paths = vec![daemon.state_dir.clone(), daemon.socket.clone()];
    if let Ok(status) = client.status(pb::StatusRequest {}).await {
        let status = status.into_inner();
        paths.push(PathBuf::from(status.state_dir));
        if let Some(dir) = status.remote.strip_prefix("file://") {
            paths.push(PathBuf::from(dir));
        }
    }
    paths
}

/// Checks the existing workspaces the run binds, then creates the run's own
/// (seeded from a directory, or empty); on failure, deletes those it created.
/// Returns pipeline workspace → wsfs workspace, and the workspaces the run
/// owns (deleted when it ends).
async fn bind_workspaces(
    client: &mut Client,
    plan: &Plan,
    run: &str,
    dir: &Path,
    readers: &HashMap<String, Vec<String>>,
    say: &impl Fn(&str),
) -> Result<(HashMap<String, String>, HashSet<String>)> {
    let mut bound = HashMap::new();
    for ws in &plan.workspaces {
        if let Some(Source::Workspace(existing)) = ws.binding.as_ref().map(|b| &b.source) {
            if let Err(status) = client
                .log(pb::LogRequest {
                    workspace: existing.clone(),
                })
                .await
            {
                bail!(
                    "pipeline workspace {:?} is bound to {existing}: {}",
                    ws.name,
                    status.message()
                );
            }
            bound.insert(ws.name.clone(), existing.clone());
        }
    }
    let mut owned = HashSet::new();
    let mut seeded = Vec::new();
    for ws in &plan.workspaces {
        let root = match ws.binding.as_ref().map(|b| &b.source) {
            Some(Source::Directory(seed)) => seed.clone(),
            Some(Source::Empty) => {
                let empty = dir.join("empty");
                std::fs::create_dir_all(&empty)?;
                empty
            }
            Some(Source::Workspace(_)) | None => continue,
        };
        let name = format!("{run}/{}", ws.name);
        let request = pb::PersistRequest {
            workspace: name.clone(),
            root: std::os::unix::ffi::OsStrExt::as_bytes(root.as_os_str()).to_vec(),
            paths: vec![b".".to_vec()],
            // A run killed before its clean-up leaves its workspaces: they expire.
            expire_after_ms: ORPHAN_EXPIRY.as_millis() as u64,
            prefetch_keys: readers.get(&ws.name).cloned().unwrap_or_default(),
            threads: 0,
        };
        match persist::stream(client, request, |_| {}).await {
            Ok(result) => seeded.push(match ws.binding.as_ref().map(|b| &b.source) {
                Some(Source::Directory(seed)) => {
                    format!(
                        "workspace {} = {name} ({} files from {})",
                        ws.name,
                        result.files,
                        seed.display()
                    )
                }
                _ => format!("workspace {} = {name} (empty)", ws.name),
            }),
            Err(e) => {
                for created in &owned {
                    let _ = client
                        .remove(pb::RemoveRequest {
                            workspace: String::clone(created),
                        })
                        .await;
                }
                return Err(e.context(format!(
                    "seeding pipeline workspace {:?} from {}",
                    ws.name,
                    root.display()
                )));
            }
        }
        owned.insert(name.clone());
        bound.insert(ws.name.clone(), name);
    }
    seeded.iter().for_each(|line| say(line));
    Ok((bound, owned))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (a CI system cancelling the job).
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Runs every task as soon as the tasks it runs after succeeded; a task
/// after one that did not succeed is skipped. Reports come in the file's order.
async fn schedule(ctx: Arc<RunContext>, plan: &Plan) -> Vec<TaskReport> {
    let mut done: HashMap<String, TaskReport> = HashMap::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut running = JoinSet::new();
    loop {
        let mut changed = true;
        while changed {
            changed = false;
            let pending: Vec<_> = plan.tasks.iter().filter(|t| !started.contains(&t.name)).collect();
            for task in pending {
                let succeeded = |name: &String| done.get(name).map(|r| r.status == TaskStatus::Succeeded);
                if task.run_after.iter().any(|d| succeeded(d) == Some(false)) {
                    let skipped = TaskReport {
                        name: task.name.clone(),
                        status: TaskStatus::Skipped,
                        duration: Duration::ZERO,
                        steps: Vec::new(),
                    };
                    ctx.say(&task.name, None, "skipped: a task it runs after did not succeed");
                    done.insert(task.name.clone(), skipped);
                    started.insert(task.name.clone());
                    changed = true;
                } else if task.run_after.iter().all(|d| succeeded(d) == Some(true)) {
                    started.insert(task.name.clone());
                    let (ctx, task) = (ctx.clone(), task.clone());
                    running.spawn(async move { task::run(&ctx, &task).await });
                    changed = true;
                }
            }
        }
        match running.join_next().await {
            Some(Ok(report)) => {
                done.insert(report.name.clone(), report);
            }
            Some(Err(e)) => panic!("a task panicked: {e}"),
            None => break,
        }
    }
    plan.tasks.iter().filter_map(|t| done.remove(&t.name)).collect()
}

/// Detaches what an interrupt left attached, deletes the run's workspaces
/// (unless kept), and removes the run's directories.
async fn cleanup(ctx: &RunContext, owned: &HashSet<String>, keep: Duration, run: &str) {
    let mut client = ctx.client.clone();
    let left: Vec<PathBuf> = ctx.attached.lock().unwrap().iter().cloned().collect();
    for view in &left {
        if let Err(e) = ctx.detach(&mut client, view, false).await {
            ctx.say(run, None, &format!("cannot detach {}: {e:#}", view.display()));
        }
    }
    let mut owned: Vec<&String> = owned.iter().collect();
    owned.sort();
    for ws in owned {
        if keep.is_zero() {
            if let Err(e) = client
                .remove(pb::RemoveRequest {
                    workspace: ws.clone(),
                })
                .await
            {
                ctx.say(
                    run,
                    None,
                    &format!("cannot remove workspace {ws}: {}", e.message()),
                );
            }
        } else {
            let request = pb::ExpireRequest {
                workspace: ws.clone(),
                after_ms: keep.as_millis() as u64,
            };
            match client.expire(request).await {
                Ok(reply) => {
                    let until = crate::output::time_ms(reply.into_inner().expires_at_ms);
                    let line = format!(
                        "kept workspace {ws} until {until}: then `wsfs rm --expired` (or the next `wsfs run`) deletes it"
                    );
                    ctx.say(run, None, &line);
                }
                Err(e) => ctx.say(
                    run,
                    None,
                    &format!("cannot set the expiry of {ws}: {}", e.message()),
                ),
            }
        }
    }
    ctx.remove_host_dirs();
    if ctx.attached.lock().unwrap().is_empty() {
        let _ = std::fs::remove_dir_all(&ctx.dir);
    }
}
