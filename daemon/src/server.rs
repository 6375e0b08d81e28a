//! Serving the API on the daemon's Unix socket until a shutdown.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use wsfs_api::pb::wsfs_server::WsfsServer;

use crate::csi::{self, CsiConfig};
use crate::peer::PeerStream;
use crate::service::Service;
use crate::state::Daemon;

/// How long open connections may take to close once a shutdown began.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest socket path the kernel accepts (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Binds the socket (mode 0600, or 0660 for `WSFS_SOCKET_GROUP`) and the CSI endpoint if configured,
/// serves metrics on `metrics` if given, says "ready" on stdout when asked to, and serves until the
/// daemon's shutdown signal or SIGTERM/SIGINT; then detaches every view and removes the sockets.
pub async fn run(
    daemon: Arc<Daemon>,
    csi: Option<CsiConfig>,
    metrics: Option<std::net::TcpListener>,
    notify_ready: bool,
) -> Result<()> {
    let socket = daemon.config.socket.clone();
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        bail!(
            "socket path {} is longer than {MAX_SOCKET_PATH} bytes: set WSFS_SOCKET to a shorter path",
            socket.display()
        );
    }
    // The state-dir lock is held: a socket left here belongs to a dead daemon.
    let listener = crate::socket::bind(&socket, daemon.config.socket_group, "the socket")?;
    tracing::info!(socket = %socket.display(), remote = %daemon.store.remote().url(), "serving");
    let stop = daemon.shutdown.clone();
    let csi_served = match csi {
        Some(config) => {
            let listener = csi::bind(&config)?;
            let stopped = stop.clone();
            let serve = csi::serve(
                daemon.clone(),
                config,
                listener,
                async move { stopped.wait().await },
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    if let Some(listener) = metrics {
        tracing::info!(metrics_addr = %listener.local_addr()?, "serving metrics at /metrics");
        let stopped = stop.clone();
        let serve = crate::metrics::serve(listener, daemon.clone(), stopped);
        tokio::spawn(async move {
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "metrics endpoint");
            }
        });
    }
    if notify_ready {
        announce_ready()?;
    }
    if let Some(link) = &daemon.link {
        link.ready().context("telling the holder this daemon serves")?;
    }
    tokio::spawn(stop_on_signals(stop.clone()));
    let graceful = stop.clone();
    let serve = tonic::transport::Server::builder()
        .add_service(WsfsServer::new(Service::new(daemon.clone())).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(listener).map(|accepted| accepted.and_then(PeerStream::new)),
            async move { graceful.wait().await },
        );
    // A client that keeps its connection open must not keep the daemon alive.
    let served = tokio::select! {
        served = serve => served,
        () = async { stop.wait().await; tokio::time::sleep(CLOSE_GRACE).await } => Ok(()),
    };
    if daemon.shutdown.restarting() {
        tracing::info!(
            views = daemon.mounts.views().len(),
            "stopped for a restart, mounts left to the next daemon"
        );
    } else {
        let cleanup = daemon.clone();
        let detached = tokio::task::spawn_blocking(move || cleanup.mounts.detach_all()).await?;
        let _ = std::fs::remove_file(&socket);
        tracing::info!(detached, "stopped");
    }
    if let Some(csi_served) = csi_served {
        // Stopped with the API: its connections were given the same grace.
        if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, csi_served)
            .await
            .unwrap_or(Ok(Ok(())))
        {
            tracing::warn!(error = %e, "CSI service");
        }
    }
    served.context("serving the API")
}

/// Tells the starting CLI that the socket accepts connections, then lets go
/// of stdout (the CLI's pipe) so no later write can fail on it.
fn announce_ready() -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"ready\n")?;
    out.flush()?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    // SAFETY: both descriptors are valid; dup2 replaces fd 1 atomically.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

async fn stop_on_signals(stop: crate::shutdown::Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received, stopping");
    stop.trigger();
}
