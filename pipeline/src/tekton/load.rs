//! A parsed pipeline spec and the run's bindings and params → a [`Plan`].

use super::bindings::{pipeline_workspaces, RunBindings};
use super::context::{run_context, Pipeline};
use super::error::{DocPath, Fault, Problem};
use super::graph::check_run_after;
use super::model::{ParamValue, PipelineSpec};
use super::names::{check_dns_label, check_unique};
use super::params::pipeline_params;
use super::tasks::task;
use super::vars::{Scope, Workspaces};
use super::RunOptions;
use crate::plan::Plan;

/// What a PipelineRun adds to its pipeline spec.
pub(crate) struct Run<'a> {
    /// `spec.params`.
    pub(crate) params: &'a [ParamValue],
    /// `spec.workspaces`.
    pub(crate) bindings: RunBindings<'a>,
    /// `spec`.
    pub(crate) at: DocPath,
}

/// The plan of pipeline `spec` (at `at`), named `name`, with the run's bindings and params.
pub(crate) fn plan(
    name: &str,
    spec: &PipelineSpec,
    at: &DocPath,
    run: Option<Run>,
    options: &RunOptions,
) -> Result<Plan, Fault> {
    let values = Scope {
        params: None,
        workspaces: Workspaces::None,
        context: run_context(&options.run_name, name),
    };
    let run_params = run.as_ref().map(|r| (r.params, r.at.key("params")));
    let params = pipeline_params(
        &spec.params,
        &at.key("params"),
        run_params,
        &options.params,
        &values,
    )?;
    let params_scope = Scope {
        params: Some(params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()),
        ..values
    };
    let no_run = RunBindings {
        bindings: None,
        at: DocPath::root(),
    };
    let bindings = run.as_ref().map_or(&no_run, |r| &r.bindings);
    let workspaces = pipeline_workspaces(
        &spec.workspaces,
        &at.key("workspaces"),
        bindings,
        &options.workspaces,
        &params_scope,
    )?;
    let pipeline = Pipeline {
        name,
        run_name: &options.run_name,
        params,
        workspaces,
        caller: options.caller,
    };
    let tasks_at = at.key("tasks");
    if spec.tasks.is_empty() {
        return Err(Fault::at(
            at,
            Problem::Missing("the pipeline has no tasks: give spec.tasks"),
        ));
    }
    let place = |i: usize| tasks_at.index(i, Some(&spec.tasks[i].name));
    for (i, t) in spec.tasks.iter().enumerate() {
        check_dns_label("task", &t.name, &place(i).key("name"))?;
    }
    check_unique(
        "task",
        spec.tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), place(i))),
    )?;
    check_run_after(&spec.tasks, &tasks_at)?;
    let tasks = spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| task(&pipeline, t, &place(i)))
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        name: name.to_string(),
        workspaces: pipeline.workspaces,
        tasks,
    })
}
