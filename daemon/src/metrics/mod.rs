//! The Prometheus endpoint (`--metrics-addr`, `WSFS_METRICS_ADDR`): `GET
//! /metrics` answers every metric in the OpenMetrics text format, anything
//! else 404. Off unless an address is given. `docs/metrics.md` lists the metrics.

mod gauges;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;

use crate::shutdown::Shutdown;
use crate::state::Daemon;

/// The media type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Listens on `addr`, an `IP:PORT` (port 0: any free port; the bound
/// address is the listener's). An address malformed, taken or not this
/// host's is an error naming it.
pub fn bind(addr: &str) -> Result<TcpListener> {
    let addr: SocketAddr = addr.parse().map_err(|_| {
        anyhow::anyhow!(
            "the metrics address {addr:?} (--metrics-addr, WSFS_METRICS_ADDR or metrics_addr in the config file) is not an IP:PORT address: give one such as 127.0.0.1:9464 or [::1]:9464 (port 0: any free port)"
        )
    })?;
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("cannot serve metrics on {addr} (--metrics-addr, WSFS_METRICS_ADDR or metrics_addr in the config file): choose a free local address, or port 0 for any")
    })?;
    listener.set_nonblocking(true).context("the metrics listener")?;
    Ok(listener)
}

/// The registry of every metric of `daemon`, names prefixed `wsfs_`.
fn registry(daemon: &Arc<Daemon>) -> Registry {
    let mut registry = Registry::with_prefix("wsfs");
    daemon.store.metrics().register(&mut registry);
    registry.register_collector(Box::new(gauges::Gauges::of(daemon)));
    registry
}

/// Serves `listener` until `stop`.
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>, stop: Shutdown) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener).context("the metrics listener")?;
    let registry = Arc::new(registry(&daemon));
    drop(daemon);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.wait() => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: let connections close first.
                tracing::warn!(error = %e, "cannot accept a metrics connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answer = respond(&request, &registry);
                async move { Ok::<_, Infallible>(answer) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}

/// The answer to one HTTP request.
fn respond(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        response
    };
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        return answer(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at GET /metrics\n".into(),
        );
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => answer(StatusCode::OK, OPENMETRICS, text),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("cannot encode the metrics: {e}\n"),
        ),
    }
}
