//! Counters of the store and the mounts, as atomics readable at any time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters since the store was opened.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Metrics`] at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    /// GET requests sent to the remote (whole objects and ranges).
    remote_get_requests,
    /// Bytes received from the remote.
    remote_bytes_fetched,
    /// Frames of packs received from the remote: more than GETs when GETs
    /// were coalesced (read-ahead, prefetch).
    remote_frames_fetched,
    /// PUT requests sent to the remote.
    remote_put_requests,
    /// Bytes sent to the remote.
    remote_bytes_stored,
    /// Chunk reads served from the local caches (memory or disk).
    cache_hits,
    /// Chunk reads that had to go to the remote.
    cache_misses,
    /// Chunk reads that failed (remote error or digest mismatch): each an EIO.
    read_errors,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}
