//! wsfs-pipeline: Tekton semantics for wsfs.
//!
//! # Layout
//! - [`plan`]: a pipeline ready to run: tasks with their `runAfter`, steps with
//!   every variable substituted, workspaces with their bindings and views.
//! - [`workspace_files`]: declared Workspace Files and the check that a view
//!   provides them, with Tekton's message (also used by the CSI plugin).
//! - [`tekton`]: the loader: a Tekton v1 Pipeline or PipelineRun file → a [`plan::Plan`].
//!
//! The library does no mounting and runs nothing: `wsfs run` executes a plan.

pub mod plan;
pub mod tekton;
pub mod workspace_files;
