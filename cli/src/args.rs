//! Command-line flags of `wsfs`: the clap definition alone, which
//! `build.rs` also compiles to write the man pages and shell completions.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// Persist build outputs as workspace layers; attach them as lazy FUSE mounts.
///
/// The CLI talks to a local daemon (wsfsd), started automatically. `wsfs help
/// COMMAND` details a command, `wsfs config` shows the settings and where each
/// comes from; `man wsfs` and docs/cli-contract.md describe every command.
#[derive(Parser)]
#[command(
    name = "wsfs",
    version = wsfs_build_id::VERSION,
    propagate_version = true,
    after_long_help = environment_help()
)]
pub struct Cli {
    /// Read settings from this TOML file (`none`: no file) instead of the
    /// default one [env: WSFS_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The environment variables of `wsfs`, with what they set, as `wsfs
/// --help` and the ENVIRONMENT section of `man wsfs` list them.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "WSFS_CONFIG",
        "the config file, `none` for no file [default: /etc/wsfs/config.toml for root, \
         else $XDG_CONFIG_HOME/wsfs/config.toml]",
    ),
    (
        "WSFS_*",
        "every setting (state dir, socket, remote, cache budget, ...) has a variable, which \
         wins over the config file: `wsfs config` lists them with their values and sources, \
         docs/config.md describes them",
    ),
];

/// The ENVIRONMENT table as help text.
fn environment_help() -> String {
    let width = ENVIRONMENT.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let lines: Vec<String> = ENVIRONMENT
        .iter()
        .map(|(name, what)| format!("  {name:<width$}  {what}"))
        .collect();
    format!("Environment:\n{}", lines.join("\n"))
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
        /// The workspace expires this long after the persist (e.g. 7d, 12h):
        /// then `wsfs rm --expired` deletes it.
        #[arg(long, value_name = "DURATION")]
        expire_after: Option<humantime::Duration>,
        /// Pack first the files that the last readers of this key's access
        /// trace read, in their read order, so that the next step reading
        /// them fetches a few frames (repeatable; default: the workspace
        /// name, where `attach` keeps its trace unless given --prefetch-key).
        #[arg(long, value_name = "KEY")]
        prefetch_key: Vec<String>,
        /// Threads that walk, read, chunk and compress the files (default: the
        /// daemon's persist_threads, one per core unless set). The layer is the
        /// same whatever the number.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        #[command(flatten)]
        output: Output,
    },
    /// Attach a view of a workspace at a mountpoint.
    ///
    /// Data is fetched on first read; the files that the last readers under
    /// the view's prefetch key read are fetched ahead of readers, in the
    /// order they were read, and with --prefetch the whole workspace.
    Attach {
        /// The workspace, NAMESPACE/NAME.
        #[arg(long, short = 'w')]
        workspace: String,
        /// An empty directory (created when missing).
        mountpoint: PathBuf,
        /// read-only: writes fail (EROFS). isolated: copy-on-write, the
        /// step's changes are private to the view until `detach --persist`.
        #[arg(long, value_enum, default_value_t = ViewKind::ReadOnly)]
        view: ViewKind,
        /// Show only this directory of the workspace (relative to its root).
        #[arg(long, value_name = "PATH")]
        sub_path: Option<String>,
        /// Isolated views: keep the view's changes under this directory
        /// (default: the state dir). Must be on a local disk file system.
        #[arg(long, value_name = "DIR")]
        upper_dir: Option<PathBuf>,
        /// Fetch the whole workspace in the background (progress in `wsfs
        /// status`): first the files its readers read first last time (the
        /// access trace kept when a view is detached), then the rest. Reads
        /// that miss still go first.
        #[arg(long)]
        prefetch: bool,
        /// Fetch nothing ahead of readers, not even the files the last
        /// readers read (by default they are fetched in the background).
        #[arg(long, conflicts_with = "prefetch")]
        no_prefetch: bool,
        /// Wait until the prefetch is done (a progress bar on a terminal);
        /// exit non-zero if it fails or stops.
        #[arg(long, requires = "prefetch")]
        wait: bool,
        /// Keep and use the access trace under this key instead of the
        /// workspace name: attaches of different workspaces read alike (e.g.
        /// each run's build output) can share one (e.g. build/linux).
        #[arg(long, value_name = "KEY")]
        prefetch_key: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Detach a view, optionally persisting an isolated view's changes.
    ///
    /// With --persist, an isolated view's changes first become the next
    /// layer of its workspace; without it they are discarded.
    Detach {
        /// The mountpoint given to attach.
        mountpoint: PathBuf,
        /// Persist the changes of an isolated view as a new layer (without
        /// it, they are discarded).
        #[arg(long)]
        persist: bool,
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
    /// Delete a workspace, or every expired one.
    ///
    /// With --expired, deletes every workspace whose expiry has passed (e.g.
    /// runs kept with `wsfs run --keep`). Attaching a deleted workspace fails
    /// from now on; views attached before keep working.
    Rm {
        /// The workspace, NAMESPACE/NAME.
        #[arg(required_unless_present = "expired", conflicts_with = "expired")]
        workspace: Option<String>,
        /// Delete every expired workspace instead.
        #[arg(long)]
        expired: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Collect the remote's garbage (or empty the local cache with --cache).
    ///
    /// Deletes expired workspaces, then the layers and packs no workspace
    /// references. Deleting takes two runs: a run condemns unreferenced
    /// objects older than --grace, and a run at least --grace later deletes
    /// those still unreferenced, so a persist running meanwhile never loses
    /// its chunks. Run it periodically (e.g.
    /// hourly from cron). Access traces (`traces/`) no mount wrote for
    /// --trace-max-age are deleted too.
    Gc {
        /// Only list what would be deleted and condemned, with bytes; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How long a condemned object waits before a run may delete it, and
        /// how old an unreferenced object must be to be condemned (at least
        /// 15s) [default: 1h].
        #[arg(long, value_name = "DURATION")]
        grace: Option<humantime::Duration>,
        /// Delete the access traces (the order `attach --prefetch` fetches
        /// in) that no mount has written for this long [default: 30days].
        #[arg(long, value_name = "DURATION")]
        trace_max_age: Option<humantime::Duration>,
        /// Empty this host's local frame cache instead (reads fetch again);
        /// the remote is left alone.
        #[arg(long, conflicts_with_all = ["grace", "trace_max_age"])]
        cache: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Verify the remote's workspaces, layers and packs.
    ///
    /// Every workspace's layers must exist and decode, every pack they
    /// reference must exist and its index list their chunks; with
    /// --read-data, every chunk is fetched and checked against its id. Names
    /// each broken object with the layers and workspaces it hits, and exits
    /// non-zero when anything is broken. A pack found corrupt is marked in
    /// the remote (`corrupt/<pack id>`): no persist reuses its chunks again.
    Check {
        /// Fetch every referenced pack whole and verify every chunk (reads
        /// all the data the workspaces reference).
        #[arg(long)]
        read_data: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Run a Tekton v1 pipeline on this host, its workspaces as wsfs views.
    ///
    /// FILE is a Pipeline or PipelineRun. Each task runs as soon as the
    /// tasks it runs after succeeded, its workspaces as wsfs views, each step
    /// in a mount namespace that shows only the workspaces it may see (and,
    /// without root, in a user namespace, as you). See docs/pipeline.md.
    Run {
        /// The pipeline file (YAML, apiVersion tekton.dev/v1).
        file: PathBuf,
        /// Binds pipeline workspace NAME: to a local directory (a new
        /// workspace of the run, seeded from it) or to an existing workspace NS/NAME.
        #[arg(long = "workspace", short = 'w', value_name = "NAME=DIR|NAME=NS/WS")]
        workspaces: Vec<String>,
        /// Sets pipeline parameter NAME.
        #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Keep the run's own workspaces after it ends, for inspection (e.g. 1h);
        /// 0 deletes them when it ends.
        #[arg(long, value_name = "DURATION", default_value = "0")]
        keep: humantime::Duration,
        /// Prefetch each task's whole workspaces in the background, first the
        /// files the same task read first in the last run. Without it, those
        /// files alone are fetched ahead (access trace
        /// PIPELINE/TASK/WORKSPACE, as `attach --prefetch-key`).
        #[arg(long)]
        prefetch: bool,
        /// Run steps as this user (and group), numeric ids, unless their
        /// securityContext gives runAsUser (runAsGroup); without it, steps
        /// run as root. Without root, steps run as you, and no other user is
        /// taken.
        #[arg(long, value_name = "UID[:GID]")]
        step_user: Option<crate::step_user::StepUser>,
        #[command(flatten)]
        output: Output,
    },
    /// Show the daemon's mounts and counters.
    Status {
        #[command(flatten)]
        output: Output,
    },
    /// Detach everything and stop the daemon.
    Shutdown {
        #[command(flatten)]
        output: Output,
    },
    /// Show every setting's effective value and where it came from.
    ///
    /// With KEY (a key of the config file, e.g. `socket`, or its variable,
    /// `WSFS_SOCKET`), print that setting's value alone, empty when unset: for
    /// scripts.
    Config {
        /// Print only this setting's value.
        key: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Manage the daemon itself.
    Daemon {
        #[command(subcommand)]
        action: DaemonAction,
    },
    /// Write the man pages or shell completions into a directory (packaging).
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[arg(value_enum)]
        what: Generated,
        /// The directory (created when missing).
        dir: PathBuf,
    },
}

/// What `wsfs generate` writes.
#[derive(Clone, Copy, ValueEnum)]
pub enum Generated {
    /// wsfs.1 and one page per command (wsfs-attach.1, ...).
    Man,
    /// wsfs.bash, _wsfs (zsh) and wsfs.fish.
    Completions,
}

/// What `wsfs daemon` does.
#[derive(Subcommand)]
pub enum DaemonAction {
    /// Hand every mount to a new daemon started from the binaries on disk.
    ///
    /// For an upgrade: readers wait a moment, no read fails, isolated views
    /// keep their changes.
    Restart {
        #[command(flatten)]
        output: Output,
    },
}

/// How a step sees an attached workspace.
#[derive(Clone, Copy, ValueEnum)]
pub enum ViewKind {
    /// Writes fail.
    ReadOnly,
    /// Copy-on-write, private to the view.
    Isolated,
}

impl ViewKind {
    /// The name the daemon API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ViewKind::ReadOnly => "read-only",
            ViewKind::Isolated => "isolated",
        }
    }
}
