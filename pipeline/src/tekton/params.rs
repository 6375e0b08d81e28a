//! Params: the pipeline's (defaults, the PipelineRun's values, `--param`
//! flags) and each task's (defaults, values passed by the pipeline task).

use super::error::{known, DocPath, Fault, Problem};
use super::model::{ParamSpec, ParamValue};
use super::names::{check_param_name, check_unique};
use super::vars::{substitute, Scope};

/// Checks declarations: valid names, each once.
fn check_declarations(declared: &[ParamSpec], at: &DocPath) -> Result<(), Fault> {
    let place = |i: usize, p: &ParamSpec| at.index(i, Some(&p.name));
    for (i, param) in declared.iter().enumerate() {
        check_param_name(&param.name, &place(i, param).key("name"))?;
    }
    check_unique(
        "param",
        declared
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), place(i, p))),
    )
}

/// Checks values given by name (at `at`): each once, each declared.
fn check_values(given: &[ParamValue], at: &DocPath, declared: &[ParamSpec], hint: &str) -> Result<(), Fault> {
    let place = |i: usize, p: &ParamValue| at.index(i, Some(&p.name));
    check_unique(
        "param",
        given
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), place(i, p))),
    )?;
    for (i, param) in given.iter().enumerate() {
        if !declared.iter().any(|d| d.name == param.name) {
            let problem = undeclared(&param.name, declared, hint);
            return Err(Fault::at(&place(i, param).key("name"), problem));
        }
    }
    Ok(())
}

fn undeclared(name: &str, declared: &[ParamSpec], hint: &str) -> Problem {
    Problem::Undeclared {
        what: "param",
        name: name.to_string(),
        known: known(declared.iter().map(|d| d.name.as_str())),
        hint: hint.to_string(),
    }
}

/// The value of each declared param, in declaration order: the value given
/// (already substituted), else its default substituted with `defaults`, else
/// the error `missing` makes.
fn resolve(
    declared: &[ParamSpec],
    at: &DocPath,
    given: impl Fn(&str) -> Option<String>,
    defaults: &Scope,
    place: &str,
    missing: impl Fn(&str) -> String,
) -> Result<Vec<(String, String)>, Fault> {
    let mut values = Vec::with_capacity(declared.len());
    for (i, param) in declared.iter().enumerate() {
        let at = at.index(i, Some(&param.name));
        let value = match (given(&param.name), &param.default) {
            (Some(value), _) => value,
            (None, Some(default)) => substitute(default, defaults).map_err(|e| {
                Fault::variable(&at.key("default"), format!("{place}, param {}", param.name), e)
            })?,
            (None, None) => return Err(Fault::invalid(&at, missing(&param.name))),
        };
        values.push((param.name.clone(), value));
    }
    Ok(values)
}

/// The pipeline's params: defaults, overridden by the PipelineRun's
/// `spec.params` (at `run_at`), overridden by `--param` flags (taken as they
/// are). Values from the file are substituted with `scope` (context only).
pub(crate) fn pipeline_params(
    declared: &[ParamSpec],
    at: &DocPath,
    run: Option<(&[ParamValue], DocPath)>,
    flags: &[(String, String)],
    scope: &Scope,
) -> Result<Vec<(String, String)>, Fault> {
    check_declarations(declared, at)?;
    let (run_values, run_at) = run.unwrap_or((&[], DocPath::root()));
    check_values(
        run_values,
        &run_at,
        declared,
        "give only params the pipeline declares in spec.pipelineSpec.params",
    )?;
    let mut seen = Vec::new();
    for (name, _) in flags {
        if seen.contains(&name) {
            let what = "--param";
            return Err(Fault::outside(Problem::Duplicate {
                what,
                name: name.clone(),
            }));
        }
        seen.push(name);
        if !declared.iter().any(|d| &d.name == name) {
            let hint = "--param names a param of the pipeline";
            return Err(Fault::outside(undeclared(name, declared, hint)));
        }
    }
    let mut from_run = Vec::new();
    for (i, param) in run_values.iter().enumerate() {
        let at = run_at.index(i, Some(&param.name)).key("value");
        let value = substitute(&param.value, scope)
            .map_err(|e| Fault::variable(&at, format!("param {}", param.name), e))?;
        from_run.push((param.name.as_str(), value));
    }
    let given = |name: &str| {
        let flag = flags.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        flag.or_else(|| from_run.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()))
    };
    let missing = |name: &str| {
        format!("pipeline param {name:?} has no default and no value: pass --param {name}=VALUE, or give it a default")
    };
    resolve(declared, at, given, scope, "the pipeline", missing)
}

/// A task's params: the values its pipeline task passes (at `passed_at`,
/// substituted with `pipeline`), else the defaults (substituted with `defaults`).
pub(crate) fn task_params(
    task: &str,
    declared: &[ParamSpec],
    at: &DocPath,
    passed: &[ParamValue],
    passed_at: &DocPath,
    pipeline: &Scope,
    defaults: &Scope,
) -> Result<Vec<(String, String)>, Fault> {
    check_declarations(declared, at)?;
    check_values(
        passed,
        passed_at,
        declared,
        "pass only params the task declares in taskSpec.params, or declare it there",
    )?;
    let mut values = Vec::new();
    for (i, param) in passed.iter().enumerate() {
        let at = passed_at.index(i, Some(&param.name)).key("value");
        let value = substitute(&param.value, pipeline)
            .map_err(|e| Fault::variable(&at, format!("task {task}, param {}", param.name), e))?;
        values.push((param.name.as_str(), value));
    }
    let given = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let missing = |name: &str| {
        format!(
            "param {name:?} of task {task} has no default and the pipeline task passes no value: add \
             {{name: {name}, value: ...}} to the pipeline task's params, or give it a default"
        )
    };
    resolve(declared, at, given, defaults, &format!("task {task}"), missing)
}
