//! What the daemon holds now, read at each scrape: the frame cache's size,
//! the mounts and views, and the prefetches of the attached versions.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use wsfs_fs::prefetch::PrefetchProgress;

use crate::state::Daemon;
use crate::views::ViewKind;

/// The states of a prefetch, as its `state` starts (`failed: <why>` is `failed`).
const PREFETCH_STATES: [&str; 5] = ["starting", "running", "done", "stopped", "failed"];

/// The gauges of one daemon (none once it is gone).
#[derive(Debug)]
pub struct Gauges {
    daemon: Weak<Daemon>,
}

impl Gauges {
    /// The gauges of `daemon`.
    pub fn of(daemon: &Arc<Daemon>) -> Gauges {
        Gauges {
            daemon: Arc::downgrade(daemon),
        }
    }
}

/// Writes one unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> std::fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

/// Writes one gauge family labelled `label`, one value per label value.
fn gauges(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    label: &str,
    values: impl IntoIterator<Item = (String, u64)>,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in values {
        ConstGauge::new(n).encode(family.encode_family(&[(label, value.as_str())])?)?;
    }
    Ok(())
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let Some(daemon) = self.daemon.upgrade() else {
            return Ok(());
        };
        let cache = daemon.store.frame_cache();
        let bytes = Some(&Unit::Bytes);
        gauge(
            &mut encoder,
            "cache",
            "Bytes the on-disk frame cache holds.",
            bytes,
            cache.bytes(),
        )?;
        gauge(
            &mut encoder,
            "cache_budget",
            "Byte budget of the on-disk frame cache.",
            bytes,
            cache.budget(),
        )?;
        let mounts = daemon.mounts.shared().len() as u64;
        gauge(
            &mut encoder,
            "mounts",
            "FUSE mounts, one per attached workspace version.",
            None,
            mounts,
        )?;
        let views = daemon.mounts.views();
        let kinds = [ViewKind::ReadOnly, ViewKind::Isolated].map(|kind| {
            let n = views.iter().filter(|v| v.kind == kind).count() as u64;
            (kind.to_string(), n)
        });
        gauges(&mut encoder, ("views", "Views attached, by kind."), "kind", kinds)?;

        // One prefetch per version, whichever of its views asked for it.
        let mut seen = HashSet::new();
        let prefetches: Vec<&Arc<PrefetchProgress>> = views
            .iter()
            .filter_map(|v| v.prefetch.as_ref())
            .filter(|p| seen.insert(Arc::as_ptr(p)))
            .collect();
        let states: Vec<String> = prefetches
            .iter()
            .map(|p| p.state.lock().unwrap().clone())
            .collect();
        let by_state = PREFETCH_STATES.map(|state| {
            let n = states
                .iter()
                .filter(|s| s.split(':').next() == Some(state))
                .count() as u64;
            (state.to_string(), n)
        });
        let help = "Prefetches of the attached versions, by state.";
        gauges(&mut encoder, ("prefetches", help), "state", by_state)?;
        let sum = |of: fn(&PrefetchProgress) -> u64| prefetches.iter().map(|p| of(p)).sum::<u64>();
        for (name, help, unit, value) in [
            (
                "prefetch_planned_files",
                "Files the prefetches of the attached versions fetch in all.",
                None,
                sum(|p| p.files_total.load(Relaxed)),
            ),
            (
                "prefetch_done_files",
                "Files the prefetches of the attached versions fetched.",
                None,
                sum(|p| p.files_done.load(Relaxed)),
            ),
            (
                "prefetch_planned",
                "File bytes the prefetches of the attached versions fetch in all.",
                bytes,
                sum(|p| p.bytes_total.load(Relaxed)),
            ),
            (
                "prefetch_done",
                "File bytes the prefetches of the attached versions fetched.",
                bytes,
                sum(|p| p.bytes_done.load(Relaxed)),
            ),
            (
                "prefetch_pushed",
                "Fetched file bytes handed to the kernel's page cache.",
                bytes,
                sum(|p| p.pushed_bytes.load(Relaxed)),
            ),
        ] {
            gauge(&mut encoder, name, help, unit, value)?;
        }
        Ok(())
    }
}
