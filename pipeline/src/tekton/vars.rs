//! Tekton variables: `$(params.x)`, `$(workspaces.w.path)`, `$(context.…)`.
//! Only `$(...)` whose first segment is a Tekton namespace is a variable;
//! anything else (`$(date)`, `$((1+2))`) is shell and stays as it is.

use crate::plan::{PipelineWorkspace, Step, TaskWorkspace};

/// The first segments that make `$(...)` a Tekton variable.
const NAMESPACES: [&str; 8] = [
    "params",
    "workspaces",
    "context",
    "tasks",
    "results",
    "steps",
    "step",
    "credentials",
];

/// Tekton context variables that need Kubernetes.
const KUBERNETES_ONLY: [&str; 4] = [
    "pipelineRun.namespace",
    "pipelineRun.uid",
    "taskRun.namespace",
    "taskRun.uid",
];

/// A variable that cannot be substituted: the variable (without `$(` `)`)
/// and why, with what exists.
pub(crate) type VarError = (String, String);

/// What variables can see at one place of the file.
pub(crate) struct Scope<'a> {
    /// Params by name, innermost first (a task's own, then the pipeline's,
    /// which Tekton propagates into embedded specs); `None`: no params here.
    pub(crate) params: Option<Vec<(&'a str, &'a str)>>,
    /// The workspaces in sight.
    pub(crate) workspaces: Workspaces<'a>,
    /// `context.*` variables (`pipelineRun.name`, ...) and their values.
    pub(crate) context: Vec<(&'static str, String)>,
}

/// The workspaces a variable can name.
pub(crate) enum Workspaces<'a> {
    /// None (param values).
    None,
    /// The pipeline's: `$(workspaces.<ws>.bound)` in pipeline task params.
    Pipeline(&'a [PipelineWorkspace]),
    /// A task's, as one step sees them.
    Step(&'a [TaskWorkspace], &'a Step),
}

/// `text` with every variable substituted.
pub(crate) fn substitute(text: &str, scope: &Scope) -> Result<String, VarError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let head = &after[..after.find(['.', '[', ')']).unwrap_or(after.len())];
        if !NAMESPACES.contains(&head) {
            out.push_str("$(");
            rest = after;
            continue;
        }
        let Some(end) = after.find(')') else {
            let why = "is not closed: end it with ')'".to_string();
            return Err((after.lines().next().unwrap_or_default().to_string(), why));
        };
        let body = &after[..end];
        out.push_str(
            &scope
                .resolve(head, &body[head.len()..])
                .map_err(|why| (body.to_string(), why))?,
        );
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Scope<'_> {
    /// The value of variable `head` + `rest` (`params` + `.name`).
    fn resolve(&self, head: &str, rest: &str) -> Result<String, String> {
        match head {
            "params" => self.param(rest),
            "workspaces" => match rest.strip_prefix('.').and_then(|r| r.split_once('.')) {
                Some((name, attribute)) => self.workspace(name, attribute),
                None => Err("expected $(workspaces.<workspace>.path) (or .bound, .files.<file>.path)".into()),
            },
            "context" => self.context(rest.strip_prefix('.').unwrap_or(rest)),
            "tasks" | "results" | "steps" | "step" => Err(
                "results, statuses and exit codes of tasks and steps are not supported by wsfs run: pass \
                 data through a workspace"
                    .into(),
            ),
            _ => Err("Tekton credentials are not supported by wsfs run".into()),
        }
    }

    fn param(&self, rest: &str) -> Result<String, String> {
        let name = match rest.as_bytes() {
            [b'.', ..] => &rest[1..],
            [b'[', q @ (b'"' | b'\''), .., q2, b']'] if q == q2 => &rest[2..rest.len() - 2],
            _ => return Err("expected $(params.<name>) or $(params[\"<name>\"])".into()),
        };
        let Some(params) = &self.params else {
            return Err("params cannot be used here: give the value itself".into());
        };
        if let Some((_, value)) = params.iter().find(|(n, _)| *n == name) {
            return Ok(value.to_string());
        }
        let why = if name.contains('[') || rest.ends_with("[*]") {
            "array and object params are not supported by wsfs run: use string params"
        } else {
            "no such param"
        };
        let mut names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        Err(format!("{why} ({})", super::error::known(names)))
    }

    fn workspace(&self, name: &str, attribute: &str) -> Result<String, String> {
        let (all, step) = match self.workspaces {
            Workspaces::None => return Err("workspaces cannot be used here".into()),
            Workspaces::Pipeline(all) => {
                let Some(ws) = all.iter().find(|w| w.name == name) else {
                    return Err(format!(
                        "no such pipeline workspace ({})",
                        known(all.iter().map(|w| &w.name))
                    ));
                };
                return match attribute {
                    "bound" => Ok(ws.binding.is_some().to_string()),
                    _ => Err("a pipeline has only $(workspaces.<workspace>.bound)".into()),
                };
            }
            Workspaces::Step(all, step) => (all, step),
        };
        let Some(ws) = all.iter().find(|w| w.name == name) else {
            return Err(format!(
                "the task has no such workspace ({})",
                known(all.iter().map(|w| &w.name))
            ));
        };
        let bound = ws.pipeline_workspace.is_some();
        let seen = || match step.sees(ws) {
            Some(path) => Ok(path),
            None => Err(format!(
                "step {} does not see workspace {name}: it is isolated to the steps listing it in their \
                 workspaces: list it in this step's workspaces",
                step.name
            )),
        };
        match attribute {
            "bound" => Ok(bound.to_string()),
            "path" if !bound => Ok(String::new()),
            "path" => seen().map(str::to_string),
            _ => match attribute
                .strip_prefix("files.")
                .and_then(|f| f.strip_suffix(".path"))
            {
                Some(file) => match ws.files.iter().find(|f| f.name == file) {
                    Some(_) if !bound => Ok(String::new()),
                    Some(f) => Ok(format!("{}{}", seen()?, f.path)),
                    None => Err(format!(
                        "workspace {name} declares no such file ({})",
                        known(ws.files.iter().map(|f| &f.name))
                    )),
                },
                None => Err(format!(
                    "unknown workspace variable: wsfs run has $(workspaces.{name}.path), .bound and \
                     .files.<file>.path"
                )),
            },
        }
    }

    fn context(&self, name: &str) -> Result<String, String> {
        if let Some((_, value)) = self.context.iter().find(|(n, _)| *n == name) {
            return Ok(value.clone());
        }
        let available: Vec<String> = self.context.iter().map(|(n, _)| format!("context.{n}")).collect();
        let why = if KUBERNETES_ONLY.contains(&name) {
            "not available: wsfs run has no Kubernetes namespaces or uids"
        } else {
            "no such context variable here"
        };
        Err(format!("{why} (available: {})", available.join(", ")))
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    super::error::known(names.map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Binding, RunAs, Source, StepWorkspace};
    use crate::workspace_files::WorkspaceFile;

    fn task_workspace(name: &str, bound: bool, isolated: bool) -> TaskWorkspace {
        TaskWorkspace {
            name: name.into(),
            pipeline_workspace: bound.then(|| name.to_string()),
            sub_path: String::new(),
            read_only: false,
            optional: !bound,
            mount_path: format!("/workspace/{name}"),
            files: vec![WorkspaceFile::new("key", Some("/k/id")).unwrap()],
            step_isolated: isolated,
        }
    }

    fn step(listed: &[(&str, &str)]) -> Step {
        Step {
            name: "s".into(),
            image: None,
            action: Action::Script(String::new()),
            working_dir: "/workspace".into(),
            env: vec![],
            workspaces: listed
                .iter()
                .map(|(n, p)| StepWorkspace {
                    name: n.to_string(),
                    mount_path: p.to_string(),
                })
                .collect(),
            run_as: RunAs::default(),
        }
    }

    #[test]
    fn substitutes_params_workspaces_and_context() {
        let workspaces = [
            task_workspace("src", true, false),
            task_workspace("opt", false, false),
            task_workspace("iso", true, true),
        ];
        let step = step(&[("iso", "/i")]);
        let scope = Scope {
            params: Some(vec![("x", "task"), ("y", "why"), ("x", "pipeline")]),
            workspaces: Workspaces::Step(&workspaces, &step),
            context: vec![("pipelineRun.name", "run-1".into())],
        };
        let text = "$(params.x) $(params[\"y\"]) $(params['x']) $(workspaces.src.path) \
                    [$(workspaces.opt.path)] $(workspaces.opt.bound) $(workspaces.iso.files.key.path) \
                    $(context.pipelineRun.name) $(date) $((1+2)) $(cat $(params.y)) $( params.x)";
        assert_eq!(
            substitute(text, &scope).unwrap(),
            "task why task /workspace/src [] false /i/k/id run-1 $(date) $((1+2)) $(cat why) $( params.x)"
        );
    }

    #[test]
    fn names_what_exists_when_a_variable_is_unknown() {
        let workspaces = [
            task_workspace("src", true, false),
            task_workspace("iso", true, true),
        ];
        let step = step(&[]);
        let scope = Scope {
            params: Some(vec![("b", "1"), ("a", "2")]),
            workspaces: Workspaces::Step(&workspaces, &step),
            context: vec![("pipelineRun.name", "r".into())],
        };
        let error = |text: &str| substitute(text, &scope).unwrap_err();
        assert_eq!(
            error("echo $(params.c)"),
            ("params.c".into(), "no such param (declared: a, b)".into())
        );
        assert!(error("$(params.a[*])")
            .1
            .contains("array and object params are not supported"));
        assert!(error("$(workspaces.nope.path)").1.contains("declared: src, iso"));
        assert!(error("$(workspaces.src.files.other.path)")
            .1
            .contains("declared: key"));
        assert!(error("$(workspaces.iso.path)")
            .1
            .contains("list it in this step's workspaces"));
        assert!(error("$(tasks.a.results.b)")
            .1
            .contains("not supported by wsfs run"));
        assert!(error("$(context.pipelineRun.uid)").1.contains("no Kubernetes"));
        assert!(error("$(context.nope)")
            .1
            .contains("available: context.pipelineRun.name"));
        assert_eq!(error("$(params.a").1, "is not closed: end it with ')'");
    }

    #[test]
    fn pipeline_scope_sees_bound_only() {
        let workspaces = [PipelineWorkspace {
            name: "src".into(),
            optional: true,
            binding: Some(Binding {
                source: Source::Empty,
                sub_path: String::new(),
                files: vec![],
            }),
        }];
        let scope = Scope {
            params: None,
            workspaces: Workspaces::Pipeline(&workspaces),
            context: vec![],
        };
        assert_eq!(substitute("$(workspaces.src.bound)", &scope).unwrap(), "true");
        assert!(substitute("$(workspaces.src.path)", &scope).is_err());
        assert!(substitute("$(params.x)", &scope)
            .unwrap_err()
            .1
            .contains("cannot be used here"));
    }
}
