//! Running one task: attach its workspaces as views, check its Workspace
//! Files, run its steps one after the other, then persist the changes of its
//! isolated views (when it succeeded) or discard them.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use wsfs_api::{pb, Client};
use wsfs_pipeline::plan::{Action, Step, Task, TaskWorkspace};
use wsfs_pipeline::workspace_files::{self, FilesCheckError};

use super::namespace::{isolate, Hidden, Ids, Mount, Mounts, UserRoot};
use super::report::{StepReport, StepStatus, TaskReport, TaskStatus};
use super::trace_key;
use super::user::identity;
use crate::commands::persist;
use crate::step_user::StepUser;

/// Where steps' working directories and default mount paths live.
const WORKSPACE_ROOT: &str = "/workspace";

/// Where a script step sees its script (as in Tekton).
const SCRIPTS: &str = "/tekton/scripts";

/// A step's `PATH`.
const STEP_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every task of a run shares.
pub struct RunContext {
    /// A client of the daemon (cloned per task).
    pub client: Client,
    /// The run's directory: task directories, views, scripts.
    pub dir: PathBuf,
    /// Pipeline workspace → the wsfs workspace bound to it.
    pub bound: std::collections::HashMap<String, String>,
    /// Step logs go to stderr (stdout carries the JSON summary).
    pub json: bool,
    /// The pipeline's part of the access trace keys: each task's views
    /// keep their trace under PIPELINE/TASK/WORKSPACE, so that the next run's
    /// task fetches ahead what this one read.
    pub trace_prefix: String,
    /// Pipeline workspace → the trace keys of the task views bound to it
    /// (the keys a persist to it lays files out by).
    pub readers: std::collections::HashMap<String, Vec<String>>,
    /// `--prefetch`: each view fetches its whole workspace in the background.
    pub prefetch: bool,
    /// Directories created on the host for mount paths, removed at the end.
    pub host_dirs: Mutex<Vec<PathBuf>>,
    /// Views attached and not yet detached, for clean-up after an interrupt.
    pub attached: Mutex<BTreeSet<PathBuf>>,
    /// Process groups of the steps running now, killed on an interrupt.
    pub steps: Mutex<BTreeSet<i32>>,
    /// What steps do not see of the host (those that exist when a step starts).
    pub hidden: Vec<PathBuf>,
    /// `--step-user`: who steps run as when their `securityContext` does not say.
    pub step_user: StepUser,
    /// An ordinary user's run: the user's ids, which its steps keep, each in
    /// a user namespace of its own.
    pub user: Option<Ids>,
}

/// Prints one line of a run's, task's or step's log, prefixed with its name:
/// on stdout, or on stderr when stdout carries JSON.
pub fn say(json: bool, task: &str, step: Option<&str>, line: &str) {
    let prefix = match step {
        Some(step) => format!("[{task}/{step}]"),
        None => format!("[{task}]"),
    };
    if json {
        eprintln!("{prefix} {line}");
    } else {
        println!("{prefix} {line}");
    }
}

impl RunContext {
    /// Prints one line of a task's (and step's) log.
    pub fn say(&self, task: &str, step: Option<&str>, line: &str) {
        say(self.json, task, step, line);
    }

    /// Creates `dir` (and missing parents) on the host, remembering what it
    /// created for [`RunContext::remove_host_dirs`].
    fn create_host_dir(&self, dir: &Path) -> Result<()> {
        let created = create_dirs(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        self.host_dirs.lock().unwrap().extend(created);
        Ok(())
    }

    /// Kills every process of every running step.
    pub fn kill_steps(&self) {
        for group in self.steps.lock().unwrap().iter() {
            // SAFETY: kill has no memory effects; a group already gone is ESRCH.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }

    /// Removes the host directories created for mount paths (if still empty).
    pub fn remove_host_dirs(&self) {
        let mut dirs = std::mem::take(&mut *self.host_dirs.lock().unwrap());
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Attaches a view, recording it for clean-up.
    async fn attach(&self, client: &mut Client, request: pb::AttachRequest) -> Result<()> {
        let mountpoint = PathBuf::from(&request.mountpoint);
        client.attach(request).await.map_err(status_error)?;
        self.attached.lock().unwrap().insert(mountpoint);
        Ok(())
    }

    /// Detaches a view; with `persist_if_changed`, an isolated view with
    /// changes becomes the next layer of its workspace first.
    pub async fn detach(
        &self,
        client: &mut Client,
        mountpoint: &Path,
        persist_if_changed: bool,
    ) -> Result<pb::DetachReply> {
        let request = pb::DetachRequest {
            mountpoint: mountpoint.display().to_string(),
            persist: false,
            persist_if_changed,
        };
        let reply = client.detach(request).await.map_err(status_error)?.into_inner();
        self.attached.lock().unwrap().remove(mountpoint);
        Ok(reply)
    }
}

/// The daemon's message of a failed call, without gRPC decoration.
fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow!("{}", status.message())
}

/// A task workspace attached as a view.
struct View {
    decl: TaskWorkspace,
    /// The wsfs workspace.
    workspace: String,
    /// Where the daemon mounted it.
    path: PathBuf,
}

/// Runs `task`; never fails: every failure is in the report.
pub async fn run(ctx: &RunContext, task: &Task) -> TaskReport {
    let started = Instant::now();
    let mut client = ctx.client.clone();
    let dir = ctx.dir.join("tasks").join(&task.name);
    let mut views = Vec::new();
    let prepared = prepare(ctx, &mut client, task, &dir, &mut views).await;
    let not_run = |steps: &[Step]| -> Vec<StepReport> {
        steps
            .iter()
            .map(|s| StepReport {
                name: s.name.clone(),
                status: StepStatus::Skipped,
                duration: Default::default(),
            })
            .collect()
    };
    let (status, steps) = match prepared {
        Err((reason, message)) => (Err((reason, message)), not_run(&task.steps)),
        Ok(()) => run_steps(ctx, &mut client, task, &dir, &views).await,
    };
    let finished = finish(ctx, &mut client, task, &views, status.is_ok()).await;
    let _ = std::fs::remove_dir_all(dir.join("workspace"));
    let status = status.and(finished.map_err(|e| ("PersistFailed", format!("{e:#}"))));
    match status {
        Ok(()) => TaskReport {
            name: task.name.clone(),
            status: TaskStatus::Succeeded,
            duration: started.elapsed(),
            steps,
        },
        Err((reason, message)) => {
            ctx.say(&task.name, None, &format!("failed: {message}"));
            TaskReport::failed(&task.name, reason, message, started.elapsed(), steps)
        }
    }
}

/// Attaches the task's bound workspaces and checks their Workspace Files.
async fn prepare(
    ctx: &RunContext,
    client: &mut Client,
    task: &Task,
    dir: &Path,
    views: &mut Vec<View>,
) -> Result<(), (&'static str, String)> {
    for sub in ["workspace", "views"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
            (
                "Failed",
                format!("cannot create the task's directory {}: {e}", dir.display()),
            )
        })?;
    }
    for decl in &task.workspaces {
        let Some(workspace) = decl.pipeline_workspace.as_ref().and_then(|p| ctx.bound.get(p)) else {
            continue;
        };
        let path = dir.join("views").join(&decl.name);
        let request = pb::AttachRequest {
            workspace: workspace.clone(),
            mountpoint: path.display().to_string(),
            view: if decl.read_only { "read-only" } else { "isolated" }.to_string(),
            sub_path: decl.sub_path.clone(),
            upper_dir: String::new(),
            prefetch: ctx.prefetch,
            prefetch_key: trace_key(&ctx.trace_prefix, &task.name, &decl.name),
            no_prefetch: false,
        };
        ctx.attach(client, request).await.map_err(|e| {
            let message = format!("workspace {:?} (wsfs workspace {workspace}): {e:#}", decl.name);
            ("WorkspaceBindingFailed", message)
        })?;
        views.push(View {
            decl: decl.clone(),
            workspace: workspace.clone(),
            path,
        });
    }
    for view in views.iter().filter(|v| !v.decl.files.is_empty()) {
        let (path, decl) = (view.path.clone(), view.decl.clone());
        let checked = tokio::task::spawn_blocking(move || {
            workspace_files::check(&path, &decl.files, &decl.name, &decl.mount_path)
        })
        .await
        .map_err(|e| ("Failed", format!("checking workspace files: {e}")))?;
        match checked {
            Ok(()) => {}
            Err(e @ FilesCheckError::Missing { .. }) => return Err(("WorkspaceFileMissing", e.to_string())),
            Err(e) => return Err(("Failed", e.to_string())),
        }
    }
    Ok(())
}

/// Runs the steps in order; the first failure skips the rest.
async fn run_steps(
    ctx: &RunContext,
    client: &mut Client,
    task: &Task,
    dir: &Path,
    views: &[View],
) -> (Result<(), (&'static str, String)>, Vec<StepReport>) {
    let mut reports = Vec::new();
    let mut failure = None;
    // After `attach: {workspace: W}`, steps keeping the default working directory work in W.
    let mut attached_dir: Option<String> = None;
    for step in &task.steps {
        if failure.is_some() {
            reports.push(StepReport {
                name: step.name.clone(),
                status: StepStatus::Skipped,
                duration: Default::default(),
            });
            continue;
        }
        let started = Instant::now();
        let outcome = run_step(ctx, client, task, step, dir, views, &mut attached_dir).await;
        let status = match outcome {
            Ok(()) => StepStatus::Succeeded,
            Err(e) => {
                let why = format!("{e:#}");
                failure = Some(("Failed", format!("step {:?} failed: {why}", step.name)));
                StepStatus::Failed(why)
            }
        };
        reports.push(StepReport {
            name: step.name.clone(),
            status,
            duration: started.elapsed(),
        });
    }
    (failure.map_or(Ok(()), Err), reports)
}

/// The mounts a step sees: the task's working directory at `/workspace`,
/// then each view the step may see at its mount path.
fn step_mounts(step: &Step, dir: &Path, views: &[View]) -> Mounts {
    let mut mounts = vec![Mount {
        source: dir.join("workspace"),
        target: WORKSPACE_ROOT.to_string(),
        read_only: false,
    }];
    for view in views {
        if let Some(target) = step.sees(&view.decl) {
            mounts.push(Mount {
                source: view.path.clone(),
                target: target.to_string(),
                read_only: view.decl.read_only,
            });
        }
    }
    Mounts::new(mounts)
}

/// The view of task workspace `name`, which the step must see.
fn bound_view<'a>(task: &Task, step: &Step, views: &'a [View], name: &str) -> Result<&'a View> {
    let view = views.iter().find(|v| v.decl.name == name);
    match (view, task.workspace(name)) {
        (Some(view), _) if step.sees(&view.decl).is_some() => Ok(view),
        (Some(_), _) => {
            bail!("workspace {name:?} is isolated to other steps: list it in this step's workspaces")
        }
        (None, Some(_)) => bail!("workspace {name:?} is not bound in this run"),
        (None, None) => bail!("the task declares no workspace {name:?}"),
    }
}

async fn run_step(
    ctx: &RunContext,
    client: &mut Client,
    task: &Task,
    step: &Step,
    dir: &Path,
    views: &[View],
    attached_dir: &mut Option<String>,
) -> Result<()> {
    if let Some(image) = &step.image {
        ctx.say(
            &task.name,
            Some(&step.name),
            &format!("image {image} (not pulled: the step runs on this host)"),
        );
    }
    let mounts = step_mounts(step, dir, views);
    let workdir = match attached_dir {
        Some(attached) if step.working_dir == WORKSPACE_ROOT => attached.clone(),
        _ => step.working_dir.clone(),
    };
    match &step.action {
        Action::Persist { workspace, paths } => {
            let view = bound_view(task, step, views, workspace)?;
            let root = mounts.host_path(&workdir);
            let request = pb::PersistRequest {
                workspace: view.workspace.clone(),
                root: root.as_os_str().as_bytes().to_vec(),
                paths: paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
                expire_after_ms: 0,
                prefetch_keys: view
                    .decl
                    .pipeline_workspace
                    .as_ref()
                    .and_then(|ws| ctx.readers.get(ws))
                    .cloned()
                    .unwrap_or_default(),
                threads: 0,
            };
            let result = persist::stream(client, request, |_| {}).await.map_err(|e| {
                match e.downcast::<tonic::Status>() {
                    Ok(status) => status_error(status),
                    Err(e) => e,
                }
            })?;
            let line = format!(
                "persisted {} of {workdir} as layer {} of {} ({} files)",
                paths.join(", "),
                &result.layer[..16],
                result.workspace,
                result.files
            );
            ctx.say(&task.name, Some(&step.name), &line);
            Ok(())
        }
        Action::Attach { workspace } => {
            let view = bound_view(task, step, views, workspace)?;
            let seen = step.sees(&view.decl).expect("bound_view checked it").to_string();
            ctx.say(
                &task.name,
                Some(&step.name),
                &format!("attached {} at {seen}: later steps work there", view.workspace),
            );
            *attached_dir = Some(seen);
            Ok(())
        }
        Action::Script(_) | Action::Command(_) => {
            let status = execute(ctx, task, step, dir, &mounts, &workdir).await?;
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(0), _) => Ok(()),
                (Some(code), _) => bail!("exit code {code}"),
                (None, Some(signal)) => bail!("killed by signal {signal}"),
                (None, None) => bail!("ended with {status}"),
            }
        }
    }
}

/// Writes a step's script to a directory of its own (returned), which the
/// step sees at [`SCRIPTS`]: Tekton runs a script without `#!` with
/// `#!/bin/sh` and `set -e`.
fn script_dir(dir: &Path, step: &Step, script: &str) -> Result<PathBuf> {
    let scripts = dir.join("scripts").join(&step.name);
    std::fs::create_dir_all(&scripts).with_context(|| format!("cannot create {}", scripts.display()))?;
    std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755))?;
    let path = scripts.join(&step.name);
    let text = if script.starts_with("#!") {
        script.to_string()
    } else {
        format!("#!/bin/sh\nset -e\n{script}")
    };
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(scripts)
}

/// Runs a script or command step in its mount namespace, as its user, with
/// only its own environment, streaming its output.
async fn execute(
    ctx: &RunContext,
    task: &Task,
    step: &Step,
    dir: &Path,
    mounts: &Mounts,
    workdir: &str,
) -> Result<ExitStatus> {
    let (mut command, mounts) = match &step.action {
        Action::Script(script) => {
            let scripts = Mount {
                source: script_dir(dir, step, script)?,
                target: SCRIPTS.to_string(),
                read_only: true,
            };
            let program = Path::new(SCRIPTS).join(&step.name);
            (tokio::process::Command::new(program), mounts.with(scripts))
        }
        Action::Command(argv) => {
            let mut command = tokio::process::Command::new(&argv[0]);
            command.args(&argv[1..]);
            (command, mounts.clone())
        }
        _ => unreachable!("layer steps do not execute"),
    };
    let identity = identity(&step.run_as, ctx.step_user)?;
    command
        .env_clear()
        .env("PATH", STEP_PATH)
        .env("HOME", &identity.home)
        .envs(hostname().map(|h| ("HOSTNAME", h)))
        .envs(step.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let hidden = Hidden::new(ctx.hidden.iter().cloned());
    let root = ctx
        .user
        .map(|ids| {
            UserRoot::new(
                ids,
                ctx.dir.join("root"),
                &mounts,
                &[WORKSPACE_ROOT, SCRIPTS],
                workdir,
            )
        })
        .transpose()?;
    isolate(
        &mut command,
        &mounts,
        &hidden,
        identity.ids,
        root.as_ref(),
        workdir,
    )?;
    let created = mount_points(ctx, &mounts, dir, root.as_ref())?;
    let host_workdir = mounts.host_path(workdir);
    // Made by the step's own root, not on the host (an ordinary user's step).
    let in_own_root = root.as_ref().is_some_and(|r| r.holds(workdir)) && host_workdir == Path::new(workdir);
    let ran = async {
        let made = match in_own_root {
            true => Vec::new(),
            false => create_dirs(&host_workdir).with_context(|| {
                format!("cannot create workingDir {workdir} ({})", host_workdir.display())
            })?,
        };
        if let Some(ids) = identity.ids {
            // The step's user owns the task's working directory (as Tekton's
            // emptyDir lets any user write) and the directories made for it.
            for path in std::iter::once(dir.join("workspace")).chain(made) {
                std::os::unix::fs::chown(&path, Some(ids.uid), Some(ids.gid))
                    .with_context(|| format!("cannot give {} to user {}", path.display(), ids.uid))?;
            }
        }
        let mut child = command.spawn().with_context(|| match ctx.user {
            None => format!("cannot start step {:?}", step.name),
            Some(_) => format!(
                "cannot start step {:?} in its user and mount namespaces (a tmpfs root at {} made of the \
                 host's top-level entries, pivot_root, binds of its workspaces)",
                step.name,
                ctx.dir.join("root").display()
            ),
        })?;
        let group = child.id().map(|pid| pid as i32);
        ctx.steps.lock().unwrap().extend(group);
        let out = pump(ctx, &task.name, &step.name, child.stdout.take().expect("piped"));
        let err = pump(ctx, &task.name, &step.name, child.stderr.take().expect("piped"));
        let (status, (), ()) = tokio::join!(child.wait(), out, err);
        if let Some(group) = group {
            ctx.steps.lock().unwrap().remove(&group);
        }
        status.context("waiting for the step")
    }
    .await;
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    ran
}

/// This host's name, which steps get as `HOSTNAME`.
fn hostname() -> Option<std::ffi::OsString> {
    let mut name = [0u8; 256];
    // SAFETY: gethostname writes at most `name.len()` bytes into `name`.
    let rc = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let len = name.iter().position(|&b| b == 0)?;
    (rc == 0 && len > 0).then(|| std::ffi::OsStr::from_bytes(&name[..len]).to_os_string())
}

/// Makes sure every mount point exists: `/workspace` and `/tekton/scripts`
/// on the host (empty directories, only ever mounted over inside steps), the
/// mount paths under `/workspace` in the task's directory (returned, removed
/// after the step so that other steps do not see them), others on the host
/// (removed at the end of the run); none on the host that the `root` of an
/// ordinary user's step makes itself.
fn mount_points(
    ctx: &RunContext,
    mounts: &Mounts,
    dir: &Path,
    root: Option<&UserRoot>,
) -> Result<Vec<PathBuf>> {
    let on_host = |target: &str| !root.is_some_and(|r| r.holds(target));
    let mut created = Vec::new();
    // Kept after the run: other runs may be about to mount over them. An
    // ordinary user's step root makes its own.
    if root.is_none() {
        for dir in [WORKSPACE_ROOT, SCRIPTS] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir} on the host"))?;
        }
    }
    for mount in mounts
        .iter()
        .filter(|m| m.target != WORKSPACE_ROOT && m.target != SCRIPTS)
    {
        match Path::new(&mount.target).strip_prefix(WORKSPACE_ROOT) {
            Ok(rel) => {
                let path = dir.join("workspace").join(rel);
                created.extend(create_dirs(&path).with_context(|| {
                    format!("cannot create mountPath {} ({})", mount.target, path.display())
                })?);
            }
            Err(_) if on_host(&mount.target) => {
                ctx.create_host_dir(Path::new(&mount.target)).with_context(|| match root {
                    None => format!("mountPath {}", mount.target),
                    Some(_) => format!(
                        "mountPath {} needs a directory on the host, which only root may make there: use \
                         a path under /workspace or under a top-level directory the host lacks, or run as root",
                        mount.target
                    ),
                })?
            }
            Err(_) => {}
        }
    }
    Ok(created)
}

/// Creates `dir` and its missing parents; returns the directories created,
/// parents first.
fn create_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(dir)?;
    missing.reverse();
    Ok(missing)
}

/// Prints every line of `stream` prefixed with the task and step.
async fn pump(ctx: &RunContext, task: &str, step: &str, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        ctx.say(task, Some(step), &line);
    }
}

/// Detaches every view: a succeeded task's isolated views with changes are
/// persisted as the next layer of their workspace; everything else is
/// discarded. Returns the first failure (after trying every view).
async fn finish(
    ctx: &RunContext,
    client: &mut Client,
    task: &Task,
    views: &[View],
    succeeded: bool,
) -> Result<()> {
    let mut first_error = None;
    for view in views {
        match ctx.detach(client, &view.path, succeeded).await {
            Ok(reply) => {
                if let Some(p) = reply.persisted {
                    let line = format!(
                        "persisted the changes to workspace {:?} as layer {} of {}",
                        view.decl.name,
                        &p.layer[..16],
                        p.workspace
                    );
                    ctx.say(&task.name, None, &line);
                }
            }
            Err(e) => {
                let e = e.context(format!("workspace {:?}", view.decl.name));
                ctx.say(&task.name, None, &format!("{e:#}"));
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
