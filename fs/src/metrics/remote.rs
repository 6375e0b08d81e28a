//! Requests to the remote object store, by operation: how many, how many
//! failed, the bytes they moved and how long they took.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::per_op::{Op, PerOp};

/// A request to the remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteOp {
    /// A whole object or a byte range of one.
    Get,
    /// A write of a whole object.
    Put,
    /// An existence check (`HEAD`).
    Head,
    /// A listing of the keys under a prefix (however many pages it takes).
    List,
    /// A deletion.
    Delete,
}

impl Op for RemoteOp {
    const ALL: &'static [RemoteOp] = &[
        RemoteOp::Get,
        RemoteOp::Put,
        RemoteOp::Head,
        RemoteOp::List,
        RemoteOp::Delete,
    ];

    fn name(self) -> &'static str {
        match self {
            RemoteOp::Get => "get",
            RemoteOp::Put => "put",
            RemoteOp::Head => "head",
            RemoteOp::List => "list",
            RemoteOp::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

type Counters = PerOp<Counter, fn() -> Counter>;

/// The remote's requests since the store was opened.
#[derive(Debug)]
pub struct RemoteMetrics {
    requests: Counters,
    errors: Counters,
    bytes: Counters,
    seconds: PerOp<Histogram, fn() -> Histogram>,
}

impl Default for RemoteMetrics {
    fn default() -> Self {
        let counters = || Counters::new::<RemoteOp>(Counter::default);
        RemoteMetrics {
            requests: counters(),
            errors: counters(),
            bytes: counters(),
            seconds: PerOp::new::<RemoteOp>(|| Histogram::new(super::request_buckets())),
        }
    }
}

impl RemoteMetrics {
    /// Counts one request of `op`, started at `started`, that `failed` (an
    /// error after its retries; "not found" is an answer, not a failure) or
    /// else moved `bytes` of object data (received by a GET, sent by a PUT).
    pub fn record(&self, op: RemoteOp, started: Instant, failed: bool, bytes: u64) {
        self.seconds.get(op).observe(started.elapsed().as_secs_f64());
        self.requests.get(op).inc();
        match failed {
            true => self.errors.get(op).inc(),
            false => self.bytes.get(op).inc_by(bytes),
        };
    }

    /// Requests of `op` so far.
    pub fn requests(&self, op: RemoteOp) -> u64 {
        self.requests.get(op).get()
    }

    /// Bytes the requests of `op` moved so far.
    pub fn bytes(&self, op: RemoteOp) -> u64 {
        self.bytes.get(op).get()
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "remote_requests",
            "Requests to the remote object store, by operation",
            self.requests.family(),
        );
        registry.register(
            "remote_request_errors",
            "Requests to the remote that failed after their retries, by operation",
            self.errors.family(),
        );
        registry.register_with_unit(
            "remote",
            "Object bytes received (get) or sent (put) by successful requests to the remote",
            Unit::Bytes,
            self.bytes.family(),
        );
        registry.register_with_unit(
            "remote_request_duration",
            "How long requests to the remote took, retries included, by operation",
            Unit::Seconds,
            self.seconds.family(),
        );
    }
}
