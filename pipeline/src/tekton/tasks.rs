//! A pipeline task → a [`Task`]: its params, and its workspaces with what
//! the pipeline task binds to them.

use super::bindings::files;
use super::context::Pipeline;
use super::error::{known, DocPath, Fault, Problem};
use super::model::{PipelineTask, TaskSpec, TaskWorkspaceBinding, TaskWorkspaceDeclaration};
use super::names::{check_dns_label, check_unique, join_sub_paths, mount_path, sub_path};
use super::params::task_params;
use super::steps::steps;
use super::vars::{substitute, Scope, Workspaces};
use crate::plan::{PipelineWorkspace, Task, TaskWorkspace};
use crate::workspace_files::WorkspaceFile;

/// Task `t` of `pipeline`, at `at`.
pub(crate) fn task(pipeline: &Pipeline, t: &PipelineTask, at: &DocPath) -> Result<Task, Fault> {
    let Some(spec) = &t.task_spec else {
        return Err(Fault::invalid(
            at,
            format!(
                "task {} has no taskSpec: embed the task's spec as taskSpec",
                t.name
            ),
        ));
    };
    let spec_at = at.key("taskSpec");
    let context = pipeline.task_context(&t.name);
    let defaults = Scope {
        params: None,
        workspaces: Workspaces::None,
        context,
    };
    let params = task_params(
        &t.name,
        &spec.params,
        &spec_at.key("params"),
        &t.params,
        &at.key("params"),
        &pipeline.pipeline_task_scope(),
        &defaults,
    )?;
    let mut workspaces = task_workspaces(pipeline, t, spec, at)?;
    let steps = steps(
        pipeline,
        &t.name,
        &params,
        &spec.steps,
        &spec_at.key("steps"),
        &spec.step_template.as_ref().and_then(|t| {
            let at = spec_at.key("stepTemplate").key("securityContext");
            t.security_context.as_ref().map(|c| (c, at))
        }),
        &mut workspaces,
    )?;
    let mut run_after: Vec<String> = Vec::new();
    for name in &t.run_after {
        if !run_after.contains(name) {
            run_after.push(name.clone());
        }
    }
    Ok(Task {
        name: t.name.clone(),
        run_after,
        workspaces,
        steps,
    })
}

/// The workspaces task `t` declares, resolved through its bindings.
fn task_workspaces(
    pipeline: &Pipeline,
    t: &PipelineTask,
    spec: &TaskSpec,
    at: &DocPath,
) -> Result<Vec<TaskWorkspace>, Fault> {
    let declared_at = at.key("taskSpec").key("workspaces");
    let place = |i: usize, w: &TaskWorkspaceDeclaration| declared_at.index(i, Some(&w.name));
    for (i, ws) in spec.workspaces.iter().enumerate() {
        check_dns_label("workspace", &ws.name, &place(i, ws).key("name"))?;
    }
    check_unique(
        "workspace",
        spec.workspaces
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), place(i, w))),
    )?;
    let bindings = check_bindings(pipeline, t, spec, &at.key("workspaces"))?;
    let mut workspaces = Vec::with_capacity(spec.workspaces.len());
    for (i, ws) in spec.workspaces.iter().enumerate() {
        let at = place(i, ws);
        let mount = match &ws.mount_path {
            Some(path) => mount_path(path)
                .map_err(|why| Fault::invalid(&at.key("mountPath"), format!("mountPath {why}")))?,
            None => format!("/workspace/{}", ws.name),
        };
        let declared_files = files(&ws.files, &at.key("files"))?;
        let bound = bindings.iter().find(|(b, _, _)| b.name == ws.name);
        let (pipeline_workspace, sub_path, files) = match bound {
            Some((_, pw, sub)) => match &pw.binding {
                Some(binding) => (
                    Some(pw.name.clone()),
                    join_sub_paths(&binding.sub_path, sub),
                    remap(declared_files, &binding.files),
                ),
                None if ws.optional => (None, String::new(), declared_files),
                None => {
                    return Err(Fault::at(
                        &at,
                        Problem::Unbound(format!(
                            "task workspace {:?} is required, and pipeline workspace {1:?} bound to it is \
                             optional and not bound in this run: bind {1} (--workspace {1}=DIR or \
                             {1}=NS/WS), or declare {0:?} optional",
                            ws.name, pw.name
                        )),
                    ))
                }
            },
            None if ws.optional => (None, String::new(), declared_files),
            None => {
                return Err(Fault::at(
                    &at,
                    Problem::Unbound(format!(
                        "task workspace {:?} is required and pipeline task {} binds nothing to it: add \
                         {{name: {0}, workspace: <a pipeline workspace>}} to the pipeline task's \
                         workspaces, or declare it optional",
                        ws.name, t.name
                    )),
                ))
            }
        };
        workspaces.push(TaskWorkspace {
            name: ws.name.clone(),
            pipeline_workspace,
            sub_path,
            read_only: ws.read_only,
            optional: ws.optional,
            mount_path: mount,
            files,
            step_isolated: false,
        });
    }
    Ok(workspaces)
}

/// The pipeline task's workspace bindings (at `at`), checked: each once,
/// naming a task workspace and a pipeline workspace (default: its own
/// name); with the pipeline workspace and the substituted, normalized subPath.
fn check_bindings<'t, 'p>(
    pipeline: &'p Pipeline,
    t: &'t PipelineTask,
    spec: &TaskSpec,
    at: &DocPath,
) -> Result<Vec<(&'t TaskWorkspaceBinding, &'p PipelineWorkspace, String)>, Fault> {
    let place = |i: usize, b: &TaskWorkspaceBinding| at.index(i, Some(&b.name));
    check_unique(
        "workspace binding",
        t.workspaces
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.as_str(), place(i, b))),
    )?;
    let scope = pipeline.pipeline_task_scope();
    let mut checked = Vec::with_capacity(t.workspaces.len());
    for (i, binding) in t.workspaces.iter().enumerate() {
        let at = place(i, binding);
        if !spec.workspaces.iter().any(|w| w.name == binding.name) {
            return Err(Fault::at(
                &at.key("name"),
                Problem::Undeclared {
                    what: "task workspace",
                    name: binding.name.clone(),
                    known: known(spec.workspaces.iter().map(|w| w.name.as_str())),
                    hint: "bind only workspaces the taskSpec declares, or declare it in taskSpec.workspaces"
                        .into(),
                },
            ));
        }
        let pw = binding.workspace.as_ref().unwrap_or(&binding.name);
        let Some(found) = pipeline.workspaces.iter().find(|w| &w.name == pw) else {
            let field = if binding.workspace.is_some() {
                "workspace"
            } else {
                "name"
            };
            return Err(Fault::at(
                &at.key(field),
                Problem::Undeclared {
                    what: "pipeline workspace",
                    name: pw.clone(),
                    known: known(pipeline.workspaces.iter().map(|w| w.name.as_str())),
                    hint: "declare it in the pipeline's workspaces, or bind one it declares".into(),
                },
            ));
        };
        let sub = match &binding.sub_path {
            Some(text) => {
                let at = at.key("subPath");
                let place = format!("task {}, workspace {}", t.name, binding.name);
                let text = substitute(text, &scope).map_err(|e| Fault::variable(&at, place, e))?;
                sub_path(&text).map_err(|why| Fault::invalid(&at, format!("subPath {why}")))?
            }
            None => String::new(),
        };
        checked.push((binding, found, sub));
    }
    Ok(checked)
}

/// Declared files with the paths the run's binding gives them (by name).
fn remap(declared: Vec<WorkspaceFile>, remaps: &[WorkspaceFile]) -> Vec<WorkspaceFile> {
    let remapped = |f: WorkspaceFile| remaps.iter().find(|r| r.name == f.name).cloned().unwrap_or(f);
    declared.into_iter().map(remapped).collect()
}
