//! wsfsd: the wsfs daemon. Owns the store of one state dir, its mounts and
//! the API socket. Usually started by the `wsfs` CLI; see `wsfsd --help`.

mod config;
mod csi;
mod metrics;
mod mount_error;
mod mounts;
mod peer;
mod requests;
mod server;
mod service;
mod shutdown;
mod socket;
mod state;
mod sys;
mod views;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use wsfs_fs::store::{Store, StoreConfig};

use crate::config::Config;
use crate::csi::CsiConfig;
use crate::mounts::Mounts;
use crate::shutdown::Shutdown;
use crate::state::{host_name, Daemon};

/// The wsfs daemon: serves workspaces to the `wsfs` CLI over a Unix socket,
/// and with --csi-endpoint to kubelet as a CSI node plugin.
///
/// Configured by WSFS_STATE_DIR, WSFS_SOCKET, WSFS_SOCKET_GROUP,
/// WSFS_ADMIN_GROUP, WSFS_REMOTE, WSFS_CACHE_BYTES, WSFS_REMOTE_TIMEOUT and
/// WSFS_LOG (a tracing filter, default "info").
/// Logs go to wsfsd.log in the state dir.
#[derive(Parser)]
#[command(version = wsfs_build_id::VERSION)]
struct Args {
    /// Print "ready" on stdout once the sockets accept connections.
    #[arg(long)]
    notify_ready: bool,
    /// Also serve the CSI Identity and Node services on this Unix socket
    /// (e.g. unix:///csi/csi.sock), for kubelet's ephemeral inline volumes.
    #[arg(long, env = "WSFS_CSI_ENDPOINT", value_name = "ENDPOINT")]
    csi_endpoint: Option<String>,
    /// The CSI driver name pods give as `csi.driver`.
    #[arg(long, env = "WSFS_CSI_DRIVER_NAME", value_name = "NAME", default_value = csi::DEFAULT_DRIVER_NAME)]
    csi_driver_name: String,
    /// This node's CSI node id (in Kubernetes: spec.nodeName) [default: the host name].
    #[arg(long, env = "WSFS_NODE_ID", value_name = "NAME")]
    node_id: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464;
    /// port 0: any free port, shown by `wsfs status`). Off by default.
    #[arg(long, env = "WSFS_METRICS_ADDR", value_name = "ADDR")]
    metrics_addr: Option<String>,
}

fn main() {
    let args = Args::parse();
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("wsfsd: error: {e:#}");
            1
        }
    };
    // Everything is written and closed by now. Leave without running C++
    // static destructors: a thread still inside RocksDB (a FUSE session
    // thread ending) would abort on its torn-down statics ("pthread lock:
    // Invalid argument"), and the holder would take the stopped daemon for
    // a crashed one and start it again.
    // SAFETY: _exit ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

fn run(args: Args) -> Result<()> {
    wsfs_api::paths::private_umask();
    let config = Config::from_env()?;
    let host = host_name();
    let csi = match args.csi_endpoint.as_deref().filter(|e| !e.is_empty()) {
        Some(endpoint) => {
            let node_id = args.node_id.as_deref().filter(|n| !n.is_empty()).unwrap_or(&host);
            Some(CsiConfig::new(endpoint, &args.csi_driver_name, node_id)?)
        }
        None => None,
    };
    // Before anything is taken over: an address in use stops the start here.
    let metrics = match args.metrics_addr.as_deref().filter(|a| !a.is_empty()) {
        Some(addr) => Some(metrics::bind(addr)?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    // Under a holder, the holder holds the state dir's lock for its daemons.
    let link = wsfs_holder::Link::from_env()
        .context("the holder's socket")?
        .map(Arc::new);
    let _lock = match link {
        Some(_) => None,
        None => Some(lock_state_dir(&config)?),
    };
    init_logging(&config)?;
    wsfs_fs::crash::arm(&config.state_dir);
    let store = Store::open(&StoreConfig {
        state_dir: config.state_dir.clone(),
        remote_url: config.remote.clone(),
        cache_bytes: config.cache_bytes,
        remote_timeout: config.remote_timeout,
    })?;
    let store = Arc::new(store);
    let held = match &link {
        Some(link) => link
            .take_all()
            .context("taking the mounts over from the holder")?,
        None => Vec::new(),
    };
    let mounts = Mounts::recover(store.clone(), &config.state_dir, host.clone(), link.clone(), held)?;
    prune_local_caches(&store, &mounts, config.cache_bytes);
    let daemon = Arc::new(Daemon {
        config,
        store,
        mounts,
        shutdown: Shutdown::new(),
        host,
        link,
        metrics_addr,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let served = runtime.block_on(server::run(daemon.clone(), csi, metrics, args.notify_ready));
    if served.is_ok() && daemon.shutdown.restarting() {
        // The mounts stay: the next daemon serves them. Nothing is dropped
        // (a FUSE session unmounts when dropped); RocksDB's log has every write.
        tracing::info!("exiting for a restart: the holder starts the next daemon");
        std::process::exit(0);
    }
    // The store owns a runtime of its own: drop it here, outside any async context.
    drop(runtime);
    let holders = Arc::strong_count(&daemon.store);
    drop(daemon);
    if holders > 1 {
        tracing::warn!(holders, "the store was still in use when the daemon stopped");
    }
    served
}

/// Keeps the local database from growing for ever, in the background: the
/// stat cache forgets source files that are gone, and cached manifests other
/// than those of the views attached are dropped beyond an eighth of the
/// frame cache's budget (at least 256 MiB); they are fetched again if needed.
fn prune_local_caches(store: &Arc<Store>, mounts: &Mounts, cache_bytes: u64) {
    let keep: std::collections::HashSet<_> = mounts.views().into_iter().flat_map(|v| v.layers).collect();
    let budget = (cache_bytes / 8).max(256 << 20);
    let store = store.clone();
    std::thread::spawn(move || {
        let gone = |path: &std::path::Path| {
            std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        };
        match (
            store.db().prune_files(gone),
            store.db().prune_manifests(budget, &keep),
        ) {
            (Ok(files), Ok(manifests)) => tracing::info!(files, manifests, "pruned the local database"),
            (files, manifests) => {
                let error = files.err().or(manifests.err()).expect("one failed");
                tracing::warn!(error = %error, "cannot prune the local database");
            }
        }
    });
}

/// One daemon per state dir: an exclusive lock on `wsfsd.lock`, held for life.
fn lock_state_dir(config: &Config) -> Result<std::fs::File> {
    let path = config.state_dir.join("wsfsd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: a valid descriptor; flock has no memory effects.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "another wsfsd already serves state dir {} (stop it with `wsfs shutdown`)",
            config.state_dir.display()
        );
    }
    Ok(file)
}

fn init_logging(config: &Config) -> Result<()> {
    let path = config.state_dir.join("wsfsd.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log {}", path.display()))?;
    let filter = EnvFilter::try_from_env("WSFS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .init();
    Ok(())
}
