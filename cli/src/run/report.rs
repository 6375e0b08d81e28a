//! What happened in a run: per task and step, as a table and as JSON.

use std::time::Duration;

use serde_json::{json, Value};

use crate::output::table;

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// Exit status 0 (or a layer step that did its work).
    Succeeded,
    /// A non-zero exit, a signal, or a layer step that failed: the reason.
    Failed(String),
    /// Not run: an earlier step of the task failed.
    Skipped,
}

/// One step's outcome.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// How long it ran.
    pub duration: Duration,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Every step succeeded and its changes were persisted.
    Succeeded,
    /// It failed: a Tekton-style reason (`Failed`, `WorkspaceFileMissing`, ...) and a message.
    Failed {
        /// Machine-readable reason.
        reason: String,
        /// What went wrong.
        message: String,
    },
    /// Not started: a task it runs after did not succeed.
    Skipped,
}

/// One task's outcome.
#[derive(Clone, Debug)]
pub struct TaskReport {
    /// The task's name.
    pub name: String,
    /// How it ended.
    pub status: TaskStatus,
    /// From its start to the end of its clean-up.
    pub duration: Duration,
    /// Its steps (every step, also those not run).
    pub steps: Vec<StepReport>,
}

impl TaskReport {
    /// A failed task with `reason` and `message`.
    pub fn failed(
        name: &str,
        reason: &str,
        message: String,
        duration: Duration,
        steps: Vec<StepReport>,
    ) -> Self {
        TaskReport {
            name: name.to_string(),
            status: TaskStatus::Failed {
                reason: reason.to_string(),
                message,
            },
            duration,
            steps,
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

fn step_status(s: &StepStatus) -> String {
    match s {
        StepStatus::Succeeded => "Succeeded".into(),
        StepStatus::Failed(why) => format!("Failed ({why})"),
        StepStatus::Skipped => "Skipped".into(),
    }
}

fn task_status(s: &TaskStatus) -> (&str, &str, &str) {
    match s {
        TaskStatus::Succeeded => ("Succeeded", "Succeeded", ""),
        TaskStatus::Failed { reason, message } => ("Failed", reason, message),
        TaskStatus::Skipped => (
            "Skipped",
            "RunAfterFailed",
            "a task it runs after did not succeed",
        ),
    }
}

/// The summary table: one row per step, and one per task that failed
/// before or after its steps or did not run (its message is in the log).
pub fn summary(tasks: &[TaskReport]) -> String {
    let mut rows = Vec::new();
    for task in tasks {
        for step in &task.steps {
            rows.push(vec![
                task.name.clone(),
                step.name.clone(),
                step_status(&step.status),
                seconds(step.duration),
            ]);
        }
        let (status, reason, _) = task_status(&task.status);
        let steps_tell = task.status == TaskStatus::Succeeded
            || task
                .steps
                .iter()
                .any(|s| matches!(s.status, StepStatus::Failed(_)));
        if !steps_tell {
            rows.push(vec![
                task.name.clone(),
                "-".into(),
                format!("{status} ({reason})"),
                seconds(task.duration),
            ]);
        }
    }
    table(&["TASK", "STEP", "STATUS", "DURATION"], &rows)
}

/// The JSON of a task's outcome.
pub fn task_json(task: &TaskReport) -> Value {
    let (status, reason, message) = task_status(&task.status);
    let steps: Vec<Value> = task
        .steps
        .iter()
        .map(|s| {
            let (status, reason) = match &s.status {
                StepStatus::Succeeded => ("Succeeded", ""),
                StepStatus::Failed(why) => ("Failed", why.as_str()),
                StepStatus::Skipped => ("Skipped", ""),
            };
            json!({
                "name": s.name,
                "status": status,
                "reason": reason,
                "duration_ms": s.duration.as_millis() as u64,
            })
        })
        .collect();
    json!({
        "name": task.name,
        "status": status,
        "reason": reason,
        "message": message,
        "duration_ms": task.duration.as_millis() as u64,
        "steps": steps,
    })
}
