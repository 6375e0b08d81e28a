//! Command-line flags of `wsfs`.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// wsfs: persist build outputs as layers of a workspace, and attach a
/// workspace in later steps as a lazily fetched FUSE mount.
///
/// The CLI talks to a local daemon (wsfsd), started automatically. Environment:
/// WSFS_STATE_DIR (state dir), WSFS_SOCKET (daemon socket), WSFS_REMOTE (object
/// store URL, default a directory in the state dir), WSFS_CACHE_BYTES (chunk
/// cache budget, e.g. 10G), WSFS_REMOTE_TIMEOUT (seconds a remote request may
/// retry). The last three are read when the daemon starts.
#[derive(Parser)]
#[command(name = "wsfs", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output flags shared by every command.
#[derive(ClapArgs, Clone, Copy)]
pub struct Output {
    /// Print one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The verbs.
#[derive(Subcommand)]
pub enum Command {
    /// Persist paths as a new layer of a workspace.
    Persist {
        /// The workspace, NAMESPACE/NAME (e.g. run-42/build).
        #[arg(long, short = 'w')]
        workspace: String,
        /// Directory the paths are relative to.
        #[arg(long, default_value = ".")]
        root: PathBuf,
        /// Files and directories to persist, relative to --root.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
    /// Attach a workspace at a mountpoint (read-only; data is fetched on first read).
    Attach {
        /// The workspace, NAMESPACE/NAME.
        #[arg(long, short = 'w')]
        workspace: String,
        /// An empty directory (created when missing).
        mountpoint: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Detach a workspace from a mountpoint.
    Detach {
        /// The mountpoint given to attach.
        mountpoint: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// List the layers of a workspace, oldest first.
    Log {
        /// The workspace, NAMESPACE/NAME.
        workspace: String,
        #[command(flatten)]
        output: Output,
    },
    /// List workspaces, optionally of one namespace.
    Ls {
        /// Only this namespace.
        namespace: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Show the daemon's counters and mounts.
    Status {
        #[command(flatten)]
        output: Output,
    },
    /// Detach everything and stop the daemon.
    Shutdown {
        #[command(flatten)]
        output: Output,
    },
}
