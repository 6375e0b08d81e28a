//! The daemon's counters and histograms: Prometheus metric families,
//! created once and updated with atomics (histograms: a short lock each),
//! readable at any time. `wsfs status` reads [`Metrics::snapshot`]; a
//! registry given to [`Metrics::register`] serves the same values.
//!
//! Labels come from fixed sets ([`RemoteOp`], [`FuseOp`]): never a path, a
//! key or a workspace name, so the number of series stays bounded.

mod fuse;
mod jobs;
mod per_op;
mod remote;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

pub use fuse::{FuseMetrics, FuseOp};
pub use jobs::{GcMetrics, PersistMetrics};
pub use per_op::Op;
pub use remote::{RemoteMetrics, RemoteOp};

/// Every metric of the store, its remote and its mounts, since the store was opened.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests to the remote, by operation.
    pub remote: Arc<RemoteMetrics>,
    /// FUSE requests of every mount, by operation.
    pub fuse: Arc<FuseMetrics>,
    /// Persists (new layers).
    pub persist: PersistMetrics,
    /// Garbage collection runs.
    pub gc: GcMetrics,
    /// Frames of packs received from the remote: more than GETs when GETs
    /// were coalesced (read-ahead, prefetch).
    pub remote_frames_fetched: Counter,
    /// Chunk reads served from the local caches (memory or disk).
    pub cache_hits: Counter,
    /// Chunk reads that had to go to the remote.
    pub cache_misses: Counter,
    /// Chunk reads that failed (remote error or digest mismatch): each an EIO.
    pub read_errors: Counter,
}

/// The counters `wsfs status` shows, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// GET requests sent to the remote (whole objects and ranges).
    pub remote_get_requests: u64,
    /// Bytes received from the remote by GETs.
    pub remote_bytes_fetched: u64,
    /// See [`Metrics::remote_frames_fetched`].
    pub remote_frames_fetched: u64,
    /// PUT requests sent to the remote.
    pub remote_put_requests: u64,
    /// Bytes the remote accepted in PUTs.
    pub remote_bytes_stored: u64,
    /// See [`Metrics::cache_hits`].
    pub cache_hits: u64,
    /// See [`Metrics::cache_misses`].
    pub cache_misses: u64,
    /// See [`Metrics::read_errors`].
    pub read_errors: u64,
}

impl Metrics {
    /// Reads the counters `wsfs status` shows.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            remote_get_requests: self.remote.requests(RemoteOp::Get),
            remote_bytes_fetched: self.remote.bytes(RemoteOp::Get),
            remote_frames_fetched: self.remote_frames_fetched.get(),
            remote_put_requests: self.remote.requests(RemoteOp::Put),
            remote_bytes_stored: self.remote.bytes(RemoteOp::Put),
            cache_hits: self.cache_hits.get(),
            cache_misses: self.cache_misses.get(),
            read_errors: self.read_errors.get(),
        }
    }

    /// Adds every family to `registry` (names relative to its prefix, `wsfs`).
    pub fn register(&self, registry: &mut Registry) {
        self.remote.register(registry);
        self.fuse.register(registry);
        self.persist.register(registry);
        self.gc.register(registry);
        registry.register(
            "remote_frames_fetched",
            "Frames of packs received from the remote (more than GETs when GETs were coalesced)",
            self.remote_frames_fetched.clone(),
        );
        registry.register(
            "cache_hits",
            "Chunk reads served from the local caches (memory or disk)",
            self.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Chunk reads that had to go to the remote",
            self.cache_misses.clone(),
        );
        registry.register(
            "read_errors",
            "Chunk reads that failed (remote error or digest mismatch), each an EIO",
            self.read_errors.clone(),
        );
    }
}

/// Buckets (seconds) of a request that takes from microseconds to seconds.
fn request_buckets() -> Vec<f64> {
    vec![
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
}

/// Buckets (seconds) of a job that takes from milliseconds to an hour.
fn job_buckets() -> Vec<f64> {
    vec![
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_registry_read_the_same_counters() {
        let metrics = Metrics::default();
        metrics
            .remote
            .record(RemoteOp::Get, std::time::Instant::now(), false, 100);
        metrics
            .remote
            .record(RemoteOp::Put, std::time::Instant::now(), false, 7);
        metrics.cache_hits.inc_by(3);
        let s = metrics.snapshot();
        assert_eq!(
            (
                s.remote_get_requests,
                s.remote_bytes_fetched,
                s.remote_put_requests,
                s.remote_bytes_stored
            ),
            (1, 100, 1, 7)
        );
        let mut registry = Registry::with_prefix("wsfs");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("wsfs_remote_requests_total{op=\"get\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("wsfs_remote_bytes_total{op=\"get\"} 100\n"),
            "{text}"
        );
        assert!(text.contains("wsfs_cache_hits_total 3\n"), "{text}");
        assert!(text.contains("wsfs_remote_frames_fetched_total 0\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
