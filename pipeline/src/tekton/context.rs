//! The pipeline as every task sees it: its names, param values and
//! workspaces, and the variables they give a task's fields.

use super::vars::{Scope, Workspaces};
use super::Caller;
use crate::plan::PipelineWorkspace;

/// The pipeline as every task sees it: names, param values, bindings.
pub(crate) struct Pipeline<'a> {
    /// `$(context.pipeline.name)`.
    pub(crate) name: &'a str,
    /// `$(context.pipelineRun.name)`.
    pub(crate) run_name: &'a str,
    /// The params' values.
    pub(crate) params: Vec<(String, String)>,
    /// The workspaces with their bindings.
    pub(crate) workspaces: Vec<PipelineWorkspace>,
    /// The user of an ordinary user's run, the only one steps can run as.
    pub(crate) caller: Option<Caller>,
}

/// The context variables of the whole run.
pub(crate) fn run_context(run_name: &str, pipeline: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pipelineRun.name", run_name.to_string()),
        ("pipeline.name", pipeline.to_string()),
    ]
}

impl Pipeline<'_> {
    fn params(&self) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// Variables of a pipeline task's fields (param values, subPaths).
    pub(crate) fn pipeline_task_scope(&self) -> Scope<'_> {
        let mut context = run_context(self.run_name, self.name);
        context.push(("pipelineTask.retries", "0".into()));
        Scope {
            params: Some(self.params()),
            workspaces: Workspaces::Pipeline(&self.workspaces),
            context,
        }
    }

    /// Context variables inside task `task`'s spec (wsfs run never retries).
    pub(crate) fn task_context(&self, task: &str) -> Vec<(&'static str, String)> {
        let mut context = run_context(self.run_name, self.name);
        let task_run = format!("{}-{task}", self.run_name);
        context.extend([
            ("pipelineTask.retries", "0".to_string()),
            ("task.name", task_run.clone()),
            ("taskRun.name", task_run),
            ("task.retry-count", "0".to_string()),
        ]);
        context
    }

    /// Params inside a task: its own, then the pipeline's (which Tekton
    /// propagates into embedded specs).
    pub(crate) fn task_params<'s>(&'s self, own: &'s [(String, String)]) -> Vec<(&'s str, &'s str)> {
        let own = own.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        own.chain(self.params()).collect()
    }
}
