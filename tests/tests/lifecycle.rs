//! Mounts and the daemon come and go cleanly: `detach` and `shutdown`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::tree::write_file;
use wsfs_tests::{mounts, process, Host};

fn mountpoints(status: &Value) -> BTreeSet<PathBuf> {
    array_of(status, "mounts")
        .iter()
        .map(|m| PathBuf::from(str_of(m, "mountpoint")))
        .collect()
}

fn persist_small(a: &Host, workspace: &str) {
    let src = a.path(format!("src-{}", workspace.replace('/', "-")));
    write_file(&src.join("hello.txt"), b"hello\n").unwrap();
    a.persist(workspace, &src, &["hello.txt"]);
}

/// A step is done with a workspace and detaches it: the mount is gone from
/// the mount table and from `status`; the other mount stays.
#[test]
fn detach_removes_the_mount() {
    let a = Host::new();
    persist_small(&a, "life/ws");
    let (m1, m2) = (a.path("m1"), a.path("m2"));
    a.attach("life/ws", &m1);
    a.attach("life/ws", &m2);
    assert!(mounts::is_mounted(&m1) && mounts::is_mounted(&m2));
    assert_eq!(mountpoints(&a.status()), BTreeSet::from([m1.clone(), m2.clone()]));

    let d = a.detach(&m1);
    assert_eq!(PathBuf::from(str_of(&d, "mountpoint")), m1, "detach JSON: {d}");
    assert!(
        !mounts::is_mounted(&m1),
        "{m1:?} still in /proc/self/mountinfo after detach"
    );
    assert!(mounts::is_mounted(&m2), "detaching {m1:?} unmounted {m2:?}");
    assert_eq!(std::fs::read(m2.join("hello.txt")).unwrap(), b"hello\n");
    assert_eq!(mountpoints(&a.status()), BTreeSet::from([m2.clone()]));
    a.detach(&m2);
    assert!(!mounts::is_mounted(&m2));
    assert!(mountpoints(&a.status()).is_empty());
}

/// At the end of a pipeline the runner calls `wsfs shutdown` with mounts still
/// attached: every mount is gone, the daemon exits, and the next command
/// starts a fresh daemon (new pid, zero counters, no mounts).
#[test]
fn shutdown_unmounts_everything_and_stops_the_daemon() {
    let a = Host::new();
    persist_small(&a, "life/one");
    persist_small(&a, "life/two");
    let (m1, m2, m3) = (a.path("m1"), a.path("m2"), a.path("m3"));
    a.attach("life/one", &m1);
    a.attach("life/one", &m2);
    a.attach("life/two", &m3);
    assert_eq!(std::fs::read(m1.join("hello.txt")).unwrap(), b"hello\n");
    let s = a.status();
    assert_eq!(mountpoints(&s).len(), 3, "{s}");
    let pid = u64_of(&s, "pid") as i32;
    assert!(
        process::is_alive(pid),
        "status reports pid {pid}, which does not exist"
    );

    a.shutdown();
    assert!(
        process::wait_for_exit(pid, Duration::from_secs(30)),
        "daemon {pid} still running 30 s after `wsfs shutdown` returned"
    );
    for m in [&m1, &m2, &m3] {
        assert!(!mounts::is_mounted(m), "{m:?} still mounted after shutdown");
    }
    assert_eq!(
        mounts::mounts_under(a.test_dir()),
        Vec::<PathBuf>::new(),
        "mounts left under the test dir after shutdown"
    );

    let s = a.status();
    assert_ne!(
        u64_of(&s, "pid") as i32,
        pid,
        "status after shutdown answered from the old daemon"
    );
    for counter in [
        "remote_get_requests",
        "remote_bytes_fetched",
        "cache_hits",
        "cache_misses",
    ] {
        assert_eq!(u64_of(&s, counter), 0, "fresh daemon, {counter}: {s}");
    }
    assert!(mountpoints(&s).is_empty(), "a fresh daemon reports mounts: {s}");
    a.shutdown();
    a.shutdown(); // no daemon running: still exit 0
}
