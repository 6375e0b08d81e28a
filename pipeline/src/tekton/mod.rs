//! The Tekton v1 loader: one `kind: Pipeline` (tasks with embedded
//! `taskSpec`s) or `kind: PipelineRun` (with an embedded `pipelineSpec` and
//! its own bindings) → a [`Plan`], every name resolved and every variable
//! substituted. A Tekton field wsfs does not implement is an error naming it.
//!
//! - `model`: the fields read, as serde types; `yaml`: the document, and
//!   positions of places in it.
//! - `load`: the plan: `params`, `bindings`, `graph` (`runAfter`), `tasks`,
//!   `steps`, with `context` (the pipeline as every task sees it); `vars`: `$(...)` variables; `names`: names and paths.
//! - `flags`: `--workspace` and `--param`; `error`: [`LoadError`].

mod bindings;
mod context;
mod error;
mod flags;
mod graph;
mod load;
mod model;
mod names;
mod params;
mod steps;
mod tasks;
mod vars;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::Path;

use self::error::Fault;
pub use self::error::{DocPath, LoadError, Position, Problem, Segment};
pub use self::flags::{parse_param_flag, parse_workspace_flag};
use self::model::{Header, Kind, PipelineDocument, PipelineRunDocument};
use self::yaml::Document;
use crate::plan::{Plan, Source};

/// What the command line adds to the file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run's name: `$(context.pipelineRun.name)`.
    pub run_name: String,
    /// `--workspace` flags: sources of the run's bindings, by pipeline workspace.
    pub workspaces: Vec<(String, Source)>,
    /// `--param` flags: values of pipeline params, winning over the file's.
    pub params: Vec<(String, String)>,
    /// `Some` when `wsfs run` is not root: its user, the only one its steps
    /// can run as (a `runAsUser` or `runAsGroup` naming another is refused).
    pub caller: Option<Caller>,
}

/// The user and group of an ordinary user's `wsfs run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

impl Caller {
    /// Why `field` (`runAsUser`, `--step-user`, ...) cannot give `id` (a
    /// `kind`, `uid` or `gid`) when the caller's is `own`; `None` when it is the caller's.
    pub fn refusal(field: &str, kind: &str, id: u32, own: u32) -> Option<String> {
        (id != own).then(|| {
            format!(
                "{field} {id} is not the {kind} running wsfs run ({own}): without root, steps run as the user \
                 of wsfs run only (another {kind} would need subordinate ids and allow_other): remove \
                 {field}, or run wsfs run as root"
            )
        })
    }
}

/// Reads the Tekton file at `path` and makes the plan of its run with `options`.
///
/// An optional task workspace left unbound (not bound by its pipeline task,
/// or bound to an optional pipeline workspace the run leaves unbound) has
/// `pipeline_workspace: None`.
pub fn load(path: &Path, options: &RunOptions) -> Result<Plan, LoadError> {
    let fail = |position, fault: Fault| LoadError {
        file: path.to_path_buf(),
        position,
        at: fault.at,
        problem: fault.problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(None, Fault::outside(Problem::Read(e))))?;
    let document = Document::single(&text).map_err(|(p, f)| fail(p, f))?;
    let header: Header = document.parse().map_err(|(p, f)| fail(p, f))?;
    let missing = |what| {
        let root = DocPath::root();
        fail(document.position(&root), Fault::at(&root, Problem::Missing(what)))
    };
    let kind = match (header.api_version, header.kind) {
        (None, _) => return Err(missing("no apiVersion: add apiVersion: tekton.dev/v1")),
        (_, None) => return Err(missing("no kind: add kind: Pipeline or kind: PipelineRun")),
        (Some(_), Some(kind)) => kind,
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let spec = DocPath::root().key("spec");
    let planned = match kind {
        Kind::Pipeline => {
            let doc: PipelineDocument = document.parse().map_err(|(p, f)| fail(p, f))?;
            let name = doc.metadata.name.unwrap_or(stem);
            load::plan(&name, &doc.spec, &spec, None, options)
        }
        Kind::PipelineRun => {
            let doc: PipelineRunDocument = document.parse().map_err(|(p, f)| fail(p, f))?;
            let name = doc.metadata.name.unwrap_or(stem);
            match &doc.spec.pipeline_spec {
                None => Err(Fault::at(
                    &spec,
                    Problem::Missing(
                        "the PipelineRun has no pipelineSpec: embed the pipeline as spec.pipelineSpec",
                    ),
                )),
                Some(pipeline) => {
                    let run = load::Run {
                        params: &doc.spec.params,
                        bindings: bindings::RunBindings {
                            bindings: Some(&doc.spec.workspaces),
                            at: spec.key("workspaces"),
                        },
                        at: spec.clone(),
                    };
                    load::plan(&name, pipeline, &spec.key("pipelineSpec"), Some(run), options)
                }
            }
        }
    };
    planned.map_err(|fault| {
        let position = fault.at.as_ref().and_then(|at| document.position(at));
        fail(position, fault)
    })
}
