//! Access traces (`traces/<key>`) no mount has written for a while: a
//! prefetch key used by no pipeline any more (a renamed task, a deleted
//! branch) would otherwise keep its trace for ever. A trace is only an
//! order to fetch in, so deleting one at once is safe: the next reader of
//! its key prefetches in tree order and writes a new one.

use std::time::{Duration, SystemTime};

use crate::error::StoreError;
use crate::keys::TRACES;
use crate::store::Store;
use crate::unix_time::millis;
use crate::workers;

use super::{Found, CONCURRENCY};

/// How long a trace stays after it was last written, unless told otherwise.
pub const DEFAULT_TRACE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Deletes (a dry run only lists) the traces last written more than
/// `max_age` before `now`, by the remote's clock; returns them.
pub fn prune(
    store: &Store,
    max_age: Duration,
    now: SystemTime,
    dry_run: bool,
) -> Result<Vec<Found>, StoreError> {
    let stale: Vec<Found> = store
        .remote()
        .list(TRACES)?
        .into_iter()
        .filter(|t| t.last_modified + max_age <= now)
        .map(|t| Found {
            deletable_after_ms: millis(t.last_modified + max_age),
            key: t.key,
            bytes: t.size,
        })
        .collect();
    if !dry_run {
        workers::for_each(&stale, CONCURRENCY, |t| store.remote().delete(&t.key))?;
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::trace;
    use crate::store::testing::{remote_dir, store_in};

    /// A trace last written two days ago goes with a one-day limit; one
    /// written now stays; a dry run lists the same and deletes nothing.
    #[test]
    fn traces_not_written_for_the_limit_go_and_fresh_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        for key in ["ci/old", "ci/new"] {
            store
                .remote()
                .put(&trace(key), b"wsfs-trace 1\n"[..].into())
                .unwrap();
        }
        let old = remote_dir(dir.path()).join(trace("ci/old"));
        let two_days = Duration::from_secs(2 * 24 * 3600);
        let file = std::fs::File::options().write(true).open(&old).unwrap();
        file.set_modified(SystemTime::now() - two_days).unwrap();
        let day = Duration::from_secs(24 * 3600);
        let keys = |found: Vec<Found>| found.into_iter().map(|f| f.key).collect::<Vec<_>>();

        let dry = prune(&store, day, SystemTime::now(), true).unwrap();
        assert_eq!(keys(dry), [trace("ci/old")]);
        assert!(old.exists(), "a dry run deletes nothing");
        let done = prune(&store, day, SystemTime::now(), false).unwrap();
        assert_eq!(keys(done), [trace("ci/old")]);
        assert!(!old.exists());
        let listed: Vec<String> = store
            .remote()
            .list(TRACES)
            .unwrap()
            .into_iter()
            .map(|t| t.key)
            .collect();
        assert_eq!(listed, [trace("ci/new")]);
    }
}
