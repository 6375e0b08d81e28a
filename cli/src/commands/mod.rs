//! One module per group of verbs.

pub mod check;
pub mod config;
pub mod daemon;
pub mod gc;
pub mod generate;
pub mod mount;
pub mod persist;
pub mod workspaces;
