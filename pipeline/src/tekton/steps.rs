//! A task's steps → [`Step`]s: what each does, the workspaces it lists
//! (isolating them), its variables substituted, its paths checked.

use super::context::Pipeline;
use super::error::{known, DocPath, Fault, Problem};
use super::model;
use super::names::{check_dns_label, check_env_name, check_unique, mount_path, persist_path};
use super::vars::{substitute, Scope, VarError, Workspaces};
use super::Caller;
use crate::plan::{Action, RunAs, Step, StepWorkspace, TaskWorkspace};

/// A task's `stepTemplate.securityContext` and its place.
pub(crate) type ContextAt<'a> = Option<(&'a model::SecurityContext, DocPath)>;

/// The steps of task `task` (with param values `params`), at `at`; marks
/// the workspaces some step lists as step-isolated.
pub(crate) fn steps(
    pipeline: &Pipeline,
    task: &str,
    params: &[(String, String)],
    declared: &[model::Step],
    at: &DocPath,
    template: &ContextAt,
    workspaces: &mut [TaskWorkspace],
) -> Result<Vec<Step>, Fault> {
    if declared.is_empty() {
        return Err(Fault::invalid(
            at,
            format!("task {task} has no steps: give taskSpec.steps"),
        ));
    }
    let names: Vec<String> = declared
        .iter()
        .enumerate()
        .map(|(i, s)| s.name.clone().unwrap_or_else(|| format!("unnamed-{i}")))
        .collect();
    let place = |i: usize| at.index(i, Some(&names[i]));
    for (i, step) in declared.iter().enumerate() {
        if let Some(name) = &step.name {
            check_dns_label("step", name, &place(i).key("name"))?;
        }
    }
    check_unique(
        "step",
        names.iter().enumerate().map(|(i, n)| (n.as_str(), place(i))),
    )?;
    let mut raw = Vec::with_capacity(declared.len());
    for (i, step) in declared.iter().enumerate() {
        raw.push(raw_step(
            &names[i],
            step,
            &place(i),
            template,
            pipeline.caller,
            workspaces,
        )?);
    }
    for ws in workspaces.iter_mut() {
        ws.step_isolated = raw.iter().any(|s| s.workspaces.iter().any(|l| l.name == ws.name));
    }
    let context = pipeline.task_context(task);
    let mut steps = Vec::with_capacity(raw.len());
    for (i, step) in raw.into_iter().enumerate() {
        let scope = Scope {
            params: Some(pipeline.task_params(params)),
            workspaces: Workspaces::Step(workspaces, &step),
            context: context.clone(),
        };
        let place = place(i);
        let mut step = substituted(
            &step,
            &declared[i],
            &place,
            &scope,
            &format!("task {task}, step {}", step.name),
        )?;
        check(&mut step, &place, workspaces)?;
        steps.push(step);
    }
    Ok(steps)
}

/// A step as the file gives it (nothing substituted yet), its workspaces checked.
fn raw_step(
    name: &str,
    step: &model::Step,
    at: &DocPath,
    template: &ContextAt,
    caller: Option<Caller>,
    workspaces: &[TaskWorkspace],
) -> Result<Step, Fault> {
    let listed_at = at.key("workspaces");
    let place = |i: usize, w: &model::StepWorkspace| listed_at.index(i, Some(&w.name));
    check_unique(
        "step workspace",
        step.workspaces
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), place(i, w))),
    )?;
    let mut listed = Vec::with_capacity(step.workspaces.len());
    for (i, w) in step.workspaces.iter().enumerate() {
        let at = place(i, w);
        let ws = declared(
            workspaces,
            &w.name,
            &at.key("name"),
            "list only workspaces the task declares",
        )?;
        let mount_path = match &w.mount_path {
            Some(path) => mount_path(path)
                .map_err(|why| Fault::invalid(&at.key("mountPath"), format!("mountPath {why}")))?,
            None => ws.mount_path.clone(),
        };
        listed.push(StepWorkspace {
            name: w.name.clone(),
            mount_path,
        });
    }
    let mut env = Vec::with_capacity(step.env.len());
    for (i, var) in step.env.iter().enumerate() {
        check_env_name(&var.name, &at.key("env").index(i, None).key("name"))?;
        env.push((var.name.clone(), var.value.clone().unwrap_or_default()));
    }
    let env_place = |i: usize| at.key("env").index(i, Some(&step.env[i].name));
    check_unique(
        "environment variable",
        step.env
            .iter()
            .enumerate()
            .map(|(i, v)| (v.name.as_str(), env_place(i))),
    )?;
    Ok(Step {
        name: name.to_string(),
        image: step.image.clone(),
        action: action(step, at)?,
        working_dir: step
            .working_dir
            .clone()
            .unwrap_or_else(|| "/workspace".to_string()),
        env,
        workspaces: listed,
        run_as: run_as(
            step.security_context
                .as_ref()
                .map(|c| (c, at.key("securityContext"))),
            template,
            caller,
        )?,
    })
}

/// Who the step runs as: its `securityContext` (`own`), each field over the
/// task's `stepTemplate`'s, the ids checked (in an ordinary user's run, that
/// they are the `caller`'s).
fn run_as(own: ContextAt, template: &ContextAt, caller: Option<Caller>) -> Result<RunAs, Fault> {
    let contexts: Vec<&(&model::SecurityContext, DocPath)> = own.iter().chain(template).collect();
    let field = |get: fn(&model::SecurityContext) -> Option<i64>, key: &str, kind: &str, own: Option<u32>| {
        let Some((value, at)) = contexts
            .iter()
            .find_map(|(c, at)| get(c).map(|v| (v, at.key(key))))
        else {
            return Ok(None);
        };
        match u32::try_from(value) {
            Ok(id) if id != u32::MAX => match own.and_then(|own| Caller::refusal(key, kind, id, own)) {
                Some(refusal) => Err(Fault::invalid(&at, refusal)),
                None => Ok(Some(id)),
            },
            _ => Err(Fault::invalid(
                &at,
                format!(
                    "{key} {value} is not an id: give a number from 0 to {}",
                    u32::MAX - 1
                ),
            )),
        }
    };
    let user = field(|c| c.run_as_user, "runAsUser", "uid", caller.map(|c| c.uid))?;
    let group = field(|c| c.run_as_group, "runAsGroup", "gid", caller.map(|c| c.gid))?;
    let non_root = contexts
        .iter()
        .find_map(|(c, at)| c.run_as_non_root.map(|v| (v, at.key("runAsNonRoot"))));
    if let (Some((true, at)), Some(0)) = (&non_root, user) {
        return Err(Fault::invalid(
            at,
            "runAsNonRoot is true and runAsUser is 0 (root): give another runAsUser, or remove runAsNonRoot",
        ));
    }
    Ok(RunAs {
        user,
        group,
        non_root: non_root.is_some_and(|(v, _)| v),
    })
}

/// The task workspace `name`, or an error at `at`.
fn declared<'w>(
    workspaces: &'w [TaskWorkspace],
    name: &str,
    at: &DocPath,
    hint: &str,
) -> Result<&'w TaskWorkspace, Fault> {
    workspaces.iter().find(|w| w.name == name).ok_or_else(|| {
        let problem = Problem::Undeclared {
            what: "task workspace",
            name: name.to_string(),
            known: known(workspaces.iter().map(|w| w.name.as_str())),
            hint: format!("{hint}, or declare it in taskSpec.workspaces"),
        };
        Fault::at(at, problem)
    })
}

/// What the step does: exactly one of script, command (with args), persist, attach.
fn action(step: &model::Step, at: &DocPath) -> Result<Action, Fault> {
    let given: Vec<&str> = [
        ("script", step.script.is_some()),
        ("command", step.command.is_some()),
        ("persist", step.persist.is_some()),
        ("attach", step.attach.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    let one_of = "a step does one of: script, command (with args), persist, attach";
    if let (Some(_), None, Some(&other)) = (&step.args, &step.command, given.first()) {
        let fix = match other {
            "script" => "write the arguments into the script",
            _ => "remove them",
        };
        return Err(Fault::invalid(
            &at.key("args"),
            format!("args go with command, not {other}: {fix}"),
        ));
    }
    match (&given[..], &step.args) {
        ([], None) => Err(Fault::invalid(at, format!("the step does nothing: {one_of}"))),
        ([], Some(_)) => Err(Fault::invalid(
            &at.key("args"),
            "args without command: steps run on the host, without their image's entrypoint: give command",
        )),
        ([first, second, ..], _) => Err(Fault::invalid(
            &at.key(second),
            format!("the step gives both {first} and {second}: {one_of}"),
        )),
        (["script"], _) => match step.script.as_deref() {
            Some(script) if !script.trim().is_empty() => Ok(Action::Script(script.to_string())),
            _ => Err(Fault::invalid(
                &at.key("script"),
                "script is empty: give the commands to run",
            )),
        },
        (["command"], args) => {
            let command = step.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err(Fault::invalid(
                    &at.key("command"),
                    "command is empty: give the program to run",
                ));
            }
            Ok(Action::Command(
                command
                    .into_iter()
                    .chain(args.iter().flatten().cloned())
                    .collect(),
            ))
        }
        (["persist"], _) => {
            let persist = step.persist.as_ref().expect("given");
            Ok(Action::Persist {
                workspace: persist.workspace.clone(),
                paths: persist.paths.clone(),
            })
        }
        _ => Ok(Action::Attach {
            workspace: step.attach.as_ref().expect("given").workspace.clone(),
        }),
    }
}

/// `step` with its variables substituted (`declared` gives the fields' places).
fn substituted(
    step: &Step,
    declared: &model::Step,
    at: &DocPath,
    scope: &Scope,
    place: &str,
) -> Result<Step, Fault> {
    let field = |text: &str, at: DocPath| {
        substitute(text, scope).map_err(|e: VarError| Fault::variable(&at, place, e))
    };
    let commands = declared.command.as_ref().map_or(0, Vec::len);
    let action = match &step.action {
        Action::Script(script) => Action::Script(field(script, at.key("script"))?),
        Action::Command(words) => Action::Command(
            words
                .iter()
                .enumerate()
                .map(|(i, word)| match i.checked_sub(commands) {
                    None => field(word, at.key("command").index(i, None)),
                    Some(j) => field(word, at.key("args").index(j, None)),
                })
                .collect::<Result<_, _>>()?,
        ),
        Action::Persist { workspace, paths } => Action::Persist {
            workspace: workspace.clone(),
            paths: paths
                .iter()
                .enumerate()
                .map(|(i, p)| field(p, at.key("persist").key("paths").index(i, None)))
                .collect::<Result<_, _>>()?,
        },
        Action::Attach { workspace } => Action::Attach {
            workspace: workspace.clone(),
        },
    };
    let env = step
        .env
        .iter()
        .enumerate()
        .map(|(i, (name, value))| {
            Ok((
                name.clone(),
                field(value, at.key("env").index(i, Some(name)).key("value"))?,
            ))
        })
        .collect::<Result<_, Fault>>()?;
    Ok(Step {
        name: step.name.clone(),
        image: step
            .image
            .as_deref()
            .map(|i| field(i, at.key("image")))
            .transpose()?,
        action,
        working_dir: field(&step.working_dir, at.key("workingDir"))?,
        env,
        workspaces: step.workspaces.clone(),
        run_as: step.run_as,
    })
}

/// Checks a substituted step (at `at`): its working directory, what it
/// persists (normalizing the paths) or attaches, and that no two of its
/// workspaces share a mount path.
fn check(step: &mut Step, at: &DocPath, workspaces: &[TaskWorkspace]) -> Result<(), Fault> {
    if !step.working_dir.starts_with('/') {
        return Err(Fault::invalid(
            &at.key("workingDir"),
            format!(
                "workingDir {:?} is not absolute (after substitution; an unbound optional workspace's path \
                 is empty): give an absolute directory",
                step.working_dir
            ),
        ));
    }
    match &mut step.action {
        Action::Persist { workspace, paths } => {
            let persist_at = at.key("persist");
            let ws = bound(workspaces, workspace, &persist_at.key("workspace"), "persist")?;
            if ws.read_only {
                return Err(Fault::invalid(
                    &persist_at.key("workspace"),
                    format!(
                        "the task declares workspace {workspace} readOnly, and this step persists into it: \
                         remove readOnly, or persist into another workspace"
                    ),
                ));
            }
            if paths.is_empty() {
                return Err(Fault::invalid(
                    &persist_at,
                    "persist lists no paths: give paths relative to the step's workingDir",
                ));
            }
            for (i, path) in paths.iter_mut().enumerate() {
                *path = persist_path(path)
                    .map_err(|why| Fault::invalid(&persist_at.key("paths").index(i, None), why))?;
            }
        }
        Action::Attach { workspace } => {
            bound(
                workspaces,
                workspace,
                &at.key("attach").key("workspace"),
                "attach",
            )?;
        }
        Action::Script(_) | Action::Command(_) => {}
    }
    let mut mounted: Vec<(&str, &str)> = Vec::new();
    for ws in workspaces.iter().filter(|w| w.pipeline_workspace.is_some()) {
        let Some(path) = step.sees(ws) else { continue };
        if let Some((other, _)) = mounted.iter().find(|(_, p)| *p == path) {
            return Err(Fault::invalid(
                at,
                format!(
                    "workspaces {other} and {} are both mounted at {path} in step {}: give one of them \
                     another mountPath",
                    ws.name, step.name
                ),
            ));
        }
        mounted.push((&ws.name, path));
    }
    Ok(())
}

/// The task workspace `name`, declared and bound in this run, for `what`.
fn bound<'w>(
    workspaces: &'w [TaskWorkspace],
    name: &str,
    at: &DocPath,
    what: &str,
) -> Result<&'w TaskWorkspace, Fault> {
    let ws = declared(
        workspaces,
        name,
        at,
        &format!("{what} names a workspace the task declares"),
    )?;
    if ws.pipeline_workspace.is_none() {
        return Err(Fault::invalid(
            at,
            format!(
                "workspace {name} is optional and not bound in this run, so this step cannot {what} it: bind \
                 it (or its pipeline workspace) in the run"
            ),
        ));
    }
    Ok(ws)
}
