//! `runAfter`: every name a task of the pipeline, and no cycle.

use super::error::{known, DocPath, Fault, Problem};
use super::model::PipelineTask;

/// Checks the `runAfter` of `tasks` (declared at `at`).
pub(crate) fn check_run_after(tasks: &[PipelineTask], at: &DocPath) -> Result<(), Fault> {
    let place = |i: usize| at.index(i, Some(&tasks[i].name)).key("runAfter");
    let mut edges = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let mut after = Vec::new();
        for (j, name) in task.run_after.iter().enumerate() {
            let Some(k) = tasks.iter().position(|t| &t.name == name) else {
                let problem = Problem::Undeclared {
                    what: "task",
                    name: name.clone(),
                    known: known(tasks.iter().map(|t| t.name.as_str())),
                    hint: "runAfter names tasks of this pipeline".into(),
                };
                return Err(Fault::at(&place(i).index(j, None), problem));
            };
            after.push(k);
        }
        edges.push(after);
    }
    let mut state = vec![State::New; tasks.len()];
    let mut path = Vec::new();
    for i in 0..tasks.len() {
        if let Some(cycle) = find_cycle(i, &edges, &mut state, &mut path) {
            let names: Vec<&str> = cycle.iter().map(|&k| tasks[k].name.as_str()).collect();
            let text = format!("{} (each runs after the next)", names.join(" -> "));
            return Err(Fault::at(&place(cycle[0]), Problem::Cycle(text)));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Open,
    Done,
}

/// A cycle reachable from `i`, as task indices with the first repeated at the end.
fn find_cycle(
    i: usize,
    edges: &[Vec<usize>],
    state: &mut [State],
    path: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    match state[i] {
        State::Done => return None,
        State::Open => {
            let start = path
                .iter()
                .position(|&k| k == i)
                .expect("an open task is on the path");
            let mut cycle = path[start..].to_vec();
            cycle.push(i);
            return Some(cycle);
        }
        State::New => {}
    }
    state[i] = State::Open;
    path.push(i);
    for &k in &edges[i] {
        if let Some(cycle) = find_cycle(k, edges, state, path) {
            return Some(cycle);
        }
    }
    path.pop();
    state[i] = State::Done;
    None
}
