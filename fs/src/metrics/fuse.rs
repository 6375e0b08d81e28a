//! FUSE requests the mounts answered, by operation, with how long each took.

use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::per_op::{Op, PerOp};

/// A FUSE request wsfs answers (the kernel's opcode, lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseOp {
    /// `LOOKUP`.
    Lookup,
    /// `GETATTR`.
    Getattr,
    /// `READLINK`.
    Readlink,
    /// `OPEN` (answered `ENOSYS` once per mount).
    Open,
    /// `READ`.
    Read,
    /// `OPENDIR` (answered `ENOSYS` once per mount).
    Opendir,
    /// `READDIR`.
    Readdir,
    /// `READDIRPLUS`.
    Readdirplus,
    /// `STATFS`.
    Statfs,
    /// `GETXATTR`.
    Getxattr,
    /// `LISTXATTR`.
    Listxattr,
}

impl Op for FuseOp {
    const ALL: &'static [FuseOp] = &[
        FuseOp::Lookup,
        FuseOp::Getattr,
        FuseOp::Readlink,
        FuseOp::Open,
        FuseOp::Read,
        FuseOp::Opendir,
        FuseOp::Readdir,
        FuseOp::Readdirplus,
        FuseOp::Statfs,
        FuseOp::Getxattr,
        FuseOp::Listxattr,
    ];

    fn name(self) -> &'static str {
        match self {
            FuseOp::Lookup => "lookup",
            FuseOp::Getattr => "getattr",
            FuseOp::Readlink => "readlink",
            FuseOp::Open => "open",
            FuseOp::Read => "read",
            FuseOp::Opendir => "opendir",
            FuseOp::Readdir => "readdir",
            FuseOp::Readdirplus => "readdirplus",
            FuseOp::Statfs => "statfs",
            FuseOp::Getxattr => "getxattr",
            FuseOp::Listxattr => "listxattr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The FUSE requests of every mount since the store was opened.
#[derive(Debug)]
pub struct FuseMetrics {
    seconds: PerOp<Histogram, fn() -> Histogram>,
}

impl Default for FuseMetrics {
    fn default() -> Self {
        FuseMetrics {
            seconds: PerOp::new::<FuseOp>(|| Histogram::new(super::request_buckets())),
        }
    }
}

impl FuseMetrics {
    /// Counts one request of `op`, received at `started` and answered now.
    pub fn record(&self, op: FuseOp, started: Instant) {
        self.seconds.get(op).observe(started.elapsed().as_secs_f64());
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "fuse_request_duration",
            "FUSE requests the mounts answered and how long each took, by operation",
            Unit::Seconds,
            self.seconds.family(),
        );
    }
}
