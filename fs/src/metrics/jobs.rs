//! Persists and garbage collection runs: how long they took, how many
//! failed, and the bytes they handled.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::gc::GcReport;
use crate::persist::PersistOutcome;

/// Runs of one kind of job: durations of those that succeeded, and failures.
#[derive(Debug)]
struct Runs {
    seconds: Histogram,
    failures: Counter,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            seconds: Histogram::new(super::job_buckets()),
            failures: Counter::default(),
        }
    }
}

impl Runs {
    /// Counts a run started at `started` that ended now, `ok` or not.
    fn finish(&self, started: Instant, ok: bool) {
        match ok {
            true => self.seconds.observe(started.elapsed().as_secs_f64()),
            false => {
                self.failures.inc();
            }
        }
    }

    /// Registers `<job>_duration_seconds` and `<job>_failures_total`, for
    /// runs called `runs` in their help.
    fn register(&self, registry: &mut Registry, job: &str, runs: &str) {
        registry.register_with_unit(
            format!("{job}_duration"),
            format!("How long {runs} took, of those that succeeded"),
            Unit::Seconds,
            self.seconds.clone(),
        );
        registry.register(
            format!("{job}_failures"),
            format!("The {runs} that failed"),
            self.failures.clone(),
        );
    }
}

/// Persists (of source trees and of isolated views' changes).
#[derive(Debug, Default)]
pub struct PersistMetrics {
    runs: Runs,
    files: Counter,
    bytes: Counter,
    new_bytes: Counter,
    stored_bytes: Counter,
}

impl PersistMetrics {
    /// Counts a persist started at `started` that ended now with `outcome`.
    pub fn record<E>(&self, started: Instant, outcome: &Result<PersistOutcome, E>) {
        self.runs.finish(started, outcome.is_ok());
        if let Ok(o) = outcome {
            self.files.inc_by(o.files);
            self.bytes.inc_by(o.bytes);
            self.new_bytes.inc_by(o.new_bytes);
            self.stored_bytes.inc_by(o.stored_bytes);
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        self.runs.register(registry, "persist", "persists");
        registry.register(
            "persist_files",
            "Regular files in the layers persisted",
            self.files.clone(),
        );
        registry.register_with_unit(
            "persist",
            "Size of the regular files in the layers persisted",
            Unit::Bytes,
            self.bytes.clone(),
        );
        registry.register_with_unit(
            "persist_new",
            "Plain bytes of chunks the store did not have before a persist",
            Unit::Bytes,
            self.new_bytes.clone(),
        );
        registry.register_with_unit(
            "persist_stored",
            "Compressed bytes persists uploaded (packs and manifests)",
            Unit::Bytes,
            self.stored_bytes.clone(),
        );
    }
}

/// Garbage collection runs of the remote (dry runs included).
#[derive(Debug, Default)]
pub struct GcMetrics {
    runs: Runs,
    deleted_bytes: Counter,
    condemned_bytes: Counter,
}

impl GcMetrics {
    /// Counts a run started at `started` that ended now with `report`; a
    /// dry run deletes and condemns nothing.
    pub fn record<E>(&self, started: Instant, dry_run: bool, report: &Result<GcReport, E>) {
        self.runs.finish(started, report.is_ok());
        if let (Ok(r), false) = (report, dry_run) {
            self.deleted_bytes.inc_by(r.deleted.iter().map(|f| f.bytes).sum());
            self.condemned_bytes
                .inc_by(r.condemned.iter().map(|f| f.bytes).sum());
        }
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        self.runs.register(registry, "gc", "garbage collection runs");
        registry.register_with_unit(
            "gc_deleted",
            "Bytes of remote objects garbage collection deleted",
            Unit::Bytes,
            self.deleted_bytes.clone(),
        );
        registry.register_with_unit(
            "gc_condemned",
            "Bytes of remote objects garbage collection condemned (deleted by a run a grace period later)",
            Unit::Bytes,
            self.condemned_bytes.clone(),
        );
    }
}
