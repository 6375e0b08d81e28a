//! wsfsd: the wsfs daemon. Owns the store of one state dir, its mounts and
//! the API socket. Usually started by the `wsfs` CLI; see `wsfsd --help`.

mod args;
mod config;
mod csi;
mod fusermount;
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

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;
use wsfs_api::config::{Flags, Key, LogFormat, Settings, Source, SETTINGS};
use wsfs_fs::store::{Store, StoreConfig};

use crate::args::Args;
use crate::config::Config;
use crate::csi::CsiConfig;
use crate::mounts::Mounts;
use crate::shutdown::Shutdown;
use crate::state::{host_name, Daemon};

impl Args {
    /// The settings the flags give; the environment, the config file and
    /// defaults give the others.
    fn flags(&self) -> Flags {
        Flags::new(self.config.clone())
            .with(Key::CsiEndpoint, self.csi_endpoint.clone())
            .with(Key::CsiDriverName, self.csi_driver_name.clone())
            .with(Key::NodeId, self.node_id.clone())
            .with(Key::MetricsAddr, self.metrics_addr.clone())
    }
}

/// Every setting, for `--help`: its variable, config file key, meaning and default.
fn settings_help() -> String {
    let mut text = String::from(
        "Settings (a flag, else the environment variable, else the config file key, else the default):\n",
    );
    for s in &SETTINGS {
        text += &format!(
            "  {} ({}): {} [default: {}]\n",
            s.env, s.key, s.description, s.default
        );
    }
    text
}

fn main() {
    let matches = Args::command().after_help(settings_help()).get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
    let settings = Settings::load(&args.flags())?;
    let config = Config::new(&settings)?;
    let host = host_name();
    let csi = match settings.text(Key::CsiEndpoint) {
        Some(endpoint) => {
            let driver_name = settings.text(Key::CsiDriverName).expect("has a default");
            let node_id = settings.text(Key::NodeId).unwrap_or(&host);
            Some(CsiConfig::new(endpoint, driver_name, node_id)?)
        }
        None => None,
    };
    // Before anything is taken over: an address in use stops the start here.
    let metrics = match settings.text(Key::MetricsAddr) {
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
        None => Some(wsfs_api::paths::lock_state_dir(
            &config.state_dir,
            &config.socket,
        )?),
    };
    init_logging(&config, &settings)?;
    log_settings(&settings);
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

/// Logs the config file and every setting not left at its default, with its source.
fn log_settings(settings: &Settings) {
    let file = settings.file().map(|f| f.path.display().to_string());
    tracing::info!(file = file.as_deref().unwrap_or("none"), "config file");
    for value in settings.values().iter().filter(|v| v.source != Source::Default) {
        let shown = value.shown().unwrap_or_default();
        tracing::info!(key = value.setting.key, value = %shown, source = %value.source, "setting");
    }
}

/// Logs to `wsfsd.log` in the state dir, filtered by `log`, as text or JSON lines (`log_format`).
fn init_logging(config: &Config, settings: &Settings) -> Result<()> {
    let path = wsfs_api::paths::log_file(&config.state_dir);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open log {}", path.display()))?;
    let directives = settings.text(Key::Log).expect("has a default");
    let filter = EnvFilter::try_new(directives).with_context(|| {
        format!(
            "log = {directives:?} ({}): expected tracing directives such as info or info,wsfs_fs=debug",
            crate::config::origin(settings, Key::Log)
        )
    })?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file));
    match settings.log_format() {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    Ok(())
}
