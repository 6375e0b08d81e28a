//! wsfs on a real S3 server (Garage, single node, started per test): hosts
//! sharing one bucket, many persists at once, and an outage in the middle of
//! reading, as a fleet of build hosts sees them.

use std::collections::BTreeSet;
use std::fs;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use wsfs_tests::compare::{assert_same_tree, drop_page_cache, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::read::read_direct;
use wsfs_tests::s3::S3Server;
use wsfs_tests::tree::{generate, random_bytes, write_file, TreeSpec};
use wsfs_tests::{Host, HostConfig};

/// Host `name` of a test, on `server`'s bucket under `prefix`.
fn s3_host(first: Option<&Host>, server: &S3Server, prefix: &str, name: &str) -> Host {
    let config = HostConfig::named(name).s3(server, prefix);
    match first {
        Some(host) => host.peer(config),
        None => Host::with_config(config),
    }
}

/// Asserts that `secret` appears in none of a host's daemon log and `texts`.
fn assert_secret_kept(host: &Host, secret: &str, texts: &[&str]) {
    let log = fs::read_to_string(host.state_dir().join("wsfsd.log")).unwrap_or_default();
    assert!(
        !log.contains(secret),
        "the secret key is in {}'s daemon log",
        host.name()
    );
    for text in texts {
        assert!(!text.contains(secret), "the secret key was printed: {text}");
    }
}

/// A build host persists its output to the bucket; a test host attaches the
/// workspace and sees the same tree, fetched from the bucket; the secret key
/// shows in no output and no log.
#[test]
fn a_workspace_persisted_on_one_host_attaches_on_another_through_s3() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let a = s3_host(None, &server, "fleet", "a");
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::everything(3)).unwrap();
    let persisted = a.persist("run-1/build", &src, &tree.top_level());
    let b = s3_host(Some(&a), &server, "fleet", "b");
    let mnt = b.path("mnt");
    let attached = b.attach("run-1/build", &mnt);
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let status = b.status();
    assert_eq!(str_of(&status, "remote"), "s3://wsfs/fleet", "{status}");
    assert!(u64_of(&status, "remote_get_requests") > 0, "{status}");
    let texts = [persisted.to_string(), attached.to_string(), status.to_string()];
    for host in [&a, &b] {
        assert_secret_kept(
            host,
            server.secret_key(),
            &texts.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
}

/// Eight hosts persist to one workspace at the same moment: all eight
/// layers land (the record layout needs no compare-and-swap, which Garage
/// does not honour), and a new host sees every host's file.
#[test]
fn eight_hosts_persisting_to_one_workspace_at_once_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let first = s3_host(None, &server, "many", "h0");
    let mut hosts: Vec<Host> = (1..8)
        .map(|i| s3_host(Some(&first), &server, "many", &format!("h{i}")))
        .collect();
    hosts.insert(0, first);
    for (i, host) in hosts.iter().enumerate() {
        write_file(
            &host.path(format!("out/host-{i}.txt")),
            format!("from host {i}\n").as_bytes(),
        )
        .unwrap();
        host.status(); // daemons up first: the persists themselves overlap
    }
    let barrier = Barrier::new(hosts.len());
    std::thread::scope(|scope| {
        for (i, host) in hosts.iter().enumerate() {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                host.persist("shared/ws", &host.path("out"), &[format!("host-{i}.txt")]);
            });
        }
    });
    let log = hosts[0].log("shared/ws");
    let layers: BTreeSet<&str> = array_of(&log, "layers")
        .iter()
        .map(|l| str_of(l, "layer"))
        .collect();
    assert_eq!(layers.len(), 8, "expected 8 distinct layers: {log}");
    let reader = s3_host(Some(&hosts[0]), &server, "many", "reader");
    let mnt = reader.path("mnt");
    reader.attach("shared/ws", &mnt);
    for i in 0..8 {
        let text = fs::read_to_string(mnt.join(format!("host-{i}.txt"))).unwrap();
        assert_eq!(text, format!("from host {i}\n"));
    }
}

/// How long a remote request of the outage test keeps retrying (`WSFS_REMOTE_TIMEOUT`).
const OUTAGE_BOUND: Duration = Duration::from_secs(2);

/// The bucket goes away while a test host reads the workspace: a read that
/// needs it fails with EIO once the retry bound (`WSFS_REMOTE_TIMEOUT`) is
/// over, not sooner and not much later; `status` says the remote is down and why; what the host
/// has cached is still served; a persist fails with an error naming the
/// remote and leaves no layer behind. When the server is back, reads and
/// persists work again without a remount, and `status` says it is up.
#[test]
fn an_outage_fails_reads_with_eio_then_everything_works_again_without_remount() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(dir.path());
    let a = s3_host(None, &server, "outage", "a");
    let src = a.path("src");
    let (first, second) = (random_bytes(1, 3 << 20), random_bytes(2, 3 << 20));
    write_file(&src.join("first.bin"), &first).unwrap();
    write_file(&src.join("second.bin"), &second).unwrap();
    // One layer (so one pack) each: reading the first never brings the second along.
    a.persist("run-2/out", &src, &["first.bin"]);
    a.persist("run-2/out", &src, &["second.bin"]);
    let b = a.peer(
        HostConfig::named("b")
            .s3(&server, "outage")
            .env("WSFS_REMOTE_TIMEOUT", &OUTAGE_BOUND.as_secs().to_string()),
    );
    let mnt = b.path("mnt");
    b.attach("run-2/out", &mnt);
    assert_eq!(fs::read(mnt.join("first.bin")).unwrap(), first);

    server.stop();
    drop_page_cache(&mnt.join("first.bin")).unwrap();
    assert_eq!(
        fs::read(mnt.join("first.bin")).unwrap(),
        first,
        "cached chunks must still be served"
    );
    let started = Instant::now();
    let err = fs::read(mnt.join("second.bin")).unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The request kept retrying (each retry waits at least 100 ms, and it
    // gives up after 10 retries or once the bound is over), and gave up
    // soon after the bound: one last backoff late at most.
    assert!(
        waited >= OUTAGE_BOUND / 2,
        "a read failed after {waited:?} with the remote down: it did not retry for WSFS_REMOTE_TIMEOUT={OUTAGE_BOUND:?}"
    );
    assert!(
        waited < OUTAGE_BOUND * 5,
        "a read took {waited:?} to fail with the remote down, WSFS_REMOTE_TIMEOUT={OUTAGE_BOUND:?}"
    );
    let down = b.status();
    assert_eq!(str_of(&down, "remote_state"), "down", "{down}");
    assert!(
        str_of(&down, "remote_error").contains("s3://wsfs/outage"),
        "{down}"
    );
    write_file(&src.join("third.bin"), b"made during the outage").unwrap();
    let failed = a.fails([
        "persist",
        "--workspace",
        "run-2/out",
        "--root",
        src.to_str().unwrap(),
        "third.bin",
    ]);
    assert!(
        failed.contains("s3://wsfs/outage"),
        "the error does not name the remote:\n{failed}"
    );
    assert_secret_kept(&a, server.secret_key(), &[&failed]);

    server.resume();
    assert_eq!(fs::read(mnt.join("second.bin")).unwrap(), second);
    let up = b.status();
    assert_eq!(str_of(&up, "remote_state"), "up", "{up}");
    assert_secret_kept(&b, server.secret_key(), &[&down.to_string()]);
    assert_eq!(b.layer_count("run-2/out"), 2, "the failed persist left a layer");
    a.persist("run-2/out", &src, &["third.bin"]);
    assert_eq!(b.layer_count("run-2/out"), 3);
    let again = b.path("again");
    b.attach("run-2/out", &again);
    assert_eq!(
        fs::read(again.join("third.bin")).unwrap(),
        b"made during the outage"
    );
}

/// Sixteen test processes read one large file at once on a fresh host,
/// past the page cache: the host fetches from the bucket exactly what a
/// single reader's host fetches (each frame once: concurrent readers of a
/// chunk share one fetch), and every reader gets the right bytes.
#[test]
fn sixteen_concurrent_readers_of_one_file_fetch_each_chunk_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(dir.path());
    let a = s3_host(None, &server, "single-flight", "a");
    let data = random_bytes(16, 24 << 20);
    write_file(&a.path("src/big.bin"), &data).unwrap();
    a.persist("run-3/big", &a.path("src"), &["big.bin"]);

    let fetched = |host: &Host, readers: usize| {
        let mnt = host.path("mnt");
        // Readers alone: no prefetch of what the other host's readers read.
        host.attach_view("run-3/big", &mnt, &["--no-prefetch"]);
        let barrier = Barrier::new(readers);
        std::thread::scope(|scope| {
            for _ in 0..readers {
                scope.spawn(|| {
                    barrier.wait();
                    assert!(
                        read_direct(&mnt.join("big.bin")).unwrap() == data,
                        "a reader got wrong bytes"
                    );
                });
            }
        });
        let status = host.status();
        let remote = (
            u64_of(&status, "remote_get_requests"),
            u64_of(&status, "remote_bytes_fetched"),
        );
        (remote, u64_of(&status, "cache_hits"))
    };
    let one = fetched(&s3_host(Some(&a), &server, "single-flight", "one"), 1);
    let sixteen = fetched(&s3_host(Some(&a), &server, "single-flight", "sixteen"), 16);
    assert!(
        one.0 .1 >= 24 << 20,
        "a reader's host fetched only {} bytes",
        one.0 .1
    );
    assert!(
        sixteen.1 > one.1,
        "the readers' reads did not all reach the daemon: {sixteen:?} vs {one:?}"
    );
    assert_eq!(sixteen.0, one.0, "(GETs, bytes) with 16 readers vs 1");
}
