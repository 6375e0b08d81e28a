//! A pipeline ready to run: what `wsfs run` executes. Produced from a Tekton
//! file by the loader; every name is resolved and every variable substituted,
//! so the executor makes no decision the file could get wrong.

use std::path::PathBuf;

use crate::workspace_files::WorkspaceFile;

/// A pipeline with its run's bindings and parameters applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `metadata.name` of the Pipeline or PipelineRun (or the file's stem).
    pub name: String,
    /// The pipeline's workspaces.
    pub workspaces: Vec<PipelineWorkspace>,
    /// The tasks, in the file's order; `run_after` forms an acyclic graph.
    pub tasks: Vec<Task>,
}

/// A workspace the pipeline declares, and what the run binds to it.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineWorkspace {
    /// Its name in the pipeline.
    pub name: String,
    /// Declared `optional`.
    pub optional: bool,
    /// The run's binding; `None` only for an optional workspace left unbound.
    pub binding: Option<Binding>,
}

/// What a run binds to a pipeline workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// Where its first contents come from.
    pub source: Source,
    /// The binding's `subPath` (normalized, no leading `/`; empty: the root).
    pub sub_path: String,
    /// The binding's `files`: declared names mapped to other paths (`/a/b`).
    pub files: Vec<WorkspaceFile>,
}

/// Where a bound workspace's contents come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A new, empty workspace of the run (`emptyDir`, `volumeClaimTemplate`).
    Empty,
    /// A new workspace of the run, seeded from a local directory (persisted as its first layer).
    Directory(PathBuf),
    /// An existing wsfs workspace `NS/NAME`: read from, and persisted to, directly.
    Workspace(String),
}

/// A pipeline task with its embedded task spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Its name in the pipeline.
    pub name: String,
    /// Names of the tasks that must succeed before it starts.
    pub run_after: Vec<String>,
    /// The workspaces the task declares, with what the pipeline binds to them.
    pub workspaces: Vec<TaskWorkspace>,
    /// The steps, run one after the other; the first failure fails the task.
    pub steps: Vec<Step>,
}

/// A workspace a task declares.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskWorkspace {
    /// Its name in the task.
    pub name: String,
    /// The pipeline workspace bound to it; `None` when optional and unbound.
    pub pipeline_workspace: Option<String>,
    /// The run binding's subPath joined with the pipeline task binding's
    /// (normalized; empty: the workspace root).
    pub sub_path: String,
    /// Declared `readOnly`: a read-only view. Otherwise the task gets an
    /// isolated view whose changes become the next layer when it succeeds.
    pub read_only: bool,
    /// Declared `optional`.
    pub optional: bool,
    /// Where steps see it (absolute; default `/workspace/<name>`).
    pub mount_path: String,
    /// Declared `files`, their paths remapped by the run binding's `files`.
    pub files: Vec<WorkspaceFile>,
    /// Some step lists it in its `workspaces`: only those steps see it.
    pub step_isolated: bool,
}

/// One step of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its name (Tekton's default `unnamed-<index>` when the file gives none).
    pub name: String,
    /// The declared `image`: shown, not pulled.
    pub image: Option<String>,
    /// What it does.
    pub action: Action,
    /// Its working directory (absolute; default `/workspace`).
    pub working_dir: String,
    /// `env` (`name`, `value`), substituted.
    pub env: Vec<(String, String)>,
    /// Workspaces it lists (which makes them isolated to the steps listing them).
    pub workspaces: Vec<StepWorkspace>,
    /// Its `securityContext` (over its task's `stepTemplate`'s).
    pub run_as: RunAs,
}

/// Who a step runs as: `securityContext.runAsUser`, `runAsGroup` and
/// `runAsNonRoot` of the step, each field over its task's `stepTemplate`'s.
/// What is not given comes from `wsfs run --step-user`, else the user of
/// `wsfs run`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunAs {
    /// `runAsUser`: the user id.
    pub user: Option<u32>,
    /// `runAsGroup`: the group id.
    pub group: Option<u32>,
    /// `runAsNonRoot: true`: the step fails to start rather than run as user 0.
    pub non_root: bool,
}

/// A workspace a step lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepWorkspace {
    /// The task workspace's name.
    pub name: String,
    /// Where this step sees it (the step's `mountPath`, else the task's).
    pub mount_path: String,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `script`, substituted: run with `sh` (or its `#!` interpreter).
    Script(String),
    /// `command` + `args`, substituted: executed directly.
    Command(Vec<String>),
    /// `persist`: paths relative to the working directory become a new layer
    /// of the task workspace named.
    Persist {
        /// The task workspace.
        workspace: String,
        /// Paths relative to the step's working directory (no globs).
        paths: Vec<String>,
    },
    /// `attach`: the task workspace named appears in the working directory
    /// of this and later steps (no download, no unpack).
    Attach {
        /// The task workspace.
        workspace: String,
    },
}

impl Task {
    /// The task workspace named `name`.
    pub fn workspace(&self, name: &str) -> Option<&TaskWorkspace> {
        self.workspaces.iter().find(|w| w.name == name)
    }
}

impl Step {
    /// Where this step sees task workspace `ws`, if it sees it at all.
    pub fn sees<'a>(&'a self, ws: &'a TaskWorkspace) -> Option<&'a str> {
        match self.workspaces.iter().find(|s| s.name == ws.name) {
            Some(listed) => Some(&listed.mount_path),
            None if ws.step_isolated => None,
            None => Some(&ws.mount_path),
        }
    }
}
