//! Data arrives lazily: attaching fetches (almost) nothing, reading fetches
//! what it touches, a small cache still serves right bytes, and two attaches of
//! one version share what was fetched.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, compare_random_ranges, drop_page_cache, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::read::read_direct;
use wsfs_tests::tree::{generate, TreeSpec};
use wsfs_tests::{Host, HostConfig, MIB};

fn mountpoints(status: &Value) -> BTreeSet<PathBuf> {
    array_of(status, "mounts")
        .iter()
        .map(|m| PathBuf::from(str_of(m, "mountpoint")))
        .collect()
}

fn read_same(src: &Path, mnt: &Path, rel: &Path) {
    let want = fs::read(src.join(rel)).unwrap();
    let got = fs::read(mnt.join(rel)).unwrap_or_else(|e| panic!("read {:?}: {e}", mnt.join(rel)));
    assert!(
        got == want,
        "{rel:?} read through {mnt:?} differs from the source"
    );
}

/// A job on a fresh host attaches a large layer and reads one small file: only
/// a small fraction of the layer is fetched from the remote, and the read
/// itself is what fetched it. Reading everything afterwards fetches the rest.
#[test]
fn reading_one_small_file_of_a_large_layer_fetches_a_small_fraction() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(5, 2000).with_big_file(50 * MIB)).unwrap();
    let p = a.persist("lazy/big", &src, &tree.top_level());
    let stored = u64_of(&p, "stored_bytes");
    assert!(
        stored >= 30 * MIB,
        "> 37 MiB of random data stored in {stored} bytes: {p}"
    );

    let b = a.peer_named("b");
    let mnt = a.path("mnt");
    b.attach("lazy/big", &mnt);
    let attached = b.status();
    let small = tree.small_files(16 * 1024).next().unwrap().path.clone();
    read_same(&src, &mnt, &small);
    let one = b.status();
    eprintln!("layer stored {stored} bytes; after attach: {attached}; after one read: {one}");

    let (gets, fetched) = (
        u64_of(&one, "remote_get_requests"),
        u64_of(&one, "remote_bytes_fetched"),
    );
    assert!(
        gets > 0 && fetched > 0,
        "a cold read fetched nothing from the remote: {one}"
    );
    assert!(
        fetched > u64_of(&attached, "remote_bytes_fetched"),
        "reading {small:?} on a cold cache fetched nothing: attach was not lazy? after attach: \
         {attached}, after read: {one}"
    );
    assert!(
        fetched * 20 < stored,
        "reading one small file fetched {fetched} bytes, >= 5% of the layer's {stored} stored bytes"
    );
    assert!(
        u64_of(&one, "cache_misses") > 0,
        "a cold read had no cache miss: {one}"
    );

    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let all = b.status();
    eprintln!("after reading everything: {all}");
    let fetched_all = u64_of(&all, "remote_bytes_fetched");
    assert!(
        fetched_all > fetched && fetched_all >= stored / 2,
        "reading every file fetched {fetched_all} bytes (layer stored {stored}, one file {fetched})"
    );
}

/// A host with a chunk cache (4 MiB) far smaller than the layer (> 96 MiB,
/// more than the cache and the daemon's 64 MiB of chunks in memory
/// together) reads everything twice, with concurrent readers: every byte is
/// right both times, the cache stays within its budget, and the second
/// round fetches again what the caches had to let go.
#[test]
fn a_cache_smaller_than_the_data_still_serves_every_byte_right() {
    let budget = 4 * MIB;
    let big_size = 96 * MIB;
    let a = Host::with_config(HostConfig::named("a").cache_bytes(budget));
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(6, 300).with_big_file(big_size)).unwrap();
    a.persist("small/cache", &src, &tree.top_level());
    let s = a.status();
    assert_eq!(
        u64_of(&s, "cache_budget_bytes"),
        budget,
        "WSFS_CACHE_BYTES not applied: {s}"
    );
    assert!(
        u64_of(&s, "cache_bytes") <= budget,
        "persist overfilled the cache: {s}"
    );

    let b = a.peer(HostConfig::named("b").cache_bytes(budget));
    let mnt = a.path("mnt");
    b.attach("small/cache", &mnt);
    let big = tree.big_file.clone().unwrap();
    let mut fetched_by_round = Vec::new();
    for round in 0..2u64 {
        let before = b.status();
        thread::scope(|s| {
            s.spawn(|| compare_random_ranges(&src.join(&big), &mnt.join(&big), round, 300, 600_000).unwrap());
            s.spawn(|| assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root()));
        });
        // Make the second round read through the daemon again, not the page cache.
        drop_page_cache(&mnt).unwrap();
        let s = b.status();
        assert_eq!(u64_of(&s, "cache_budget_bytes"), budget);
        assert!(
            u64_of(&s, "cache_bytes") <= budget,
            "round {round}: cache holds {} bytes, budget {budget}: {s}",
            u64_of(&s, "cache_bytes")
        );
        let grown = |counter| u64_of(&s, counter) - u64_of(&before, counter);
        fetched_by_round.push((grown("remote_get_requests"), grown("remote_bytes_fetched")));
    }
    eprintln!("(GETs, bytes fetched) by round with a {budget}-byte cache: {fetched_by_round:?}");
    let [(_, first), (again_gets, again)] = fetched_by_round[..] else {
        unreachable!("two rounds")
    };
    assert!(
        first >= big_size,
        "reading {big_size} bytes of random data fetched {first}"
    );
    // At most the frame cache and the chunks in memory (64 MiB) can serve
    // the second round: the rest is fetched again.
    assert!(
        again_gets > 0 && again >= big_size - 64 * MIB - budget,
        "the second round fetched {again} bytes in {again_gets} GETs: the caches held more than their budgets"
    );
}

/// Two steps on one host attach the same workspace version at two
/// mountpoints: what the first step's read fetched serves the second step
/// without another remote request, and `status` lists both mounts.
#[test]
fn two_attaches_of_one_version_share_fetched_data() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(8, 200).with_big_file(6 * MIB)).unwrap();
    a.persist("shared/ws", &src, &tree.top_level());

    let b = a.peer_named("b");
    let (m1, m2) = (a.path("step-1"), a.path("step-2"));
    let v1 = b.attach("shared/ws", &m1);
    let v2 = b.attach("shared/ws", &m2);
    assert_eq!(
        v1["version"], v2["version"],
        "same workspace, same version: {v1} {v2}"
    );
    let s = b.status();
    assert!(
        mountpoints(&s).is_superset(&BTreeSet::from([m1.clone(), m2.clone()])),
        "status does not list both mounts: {s}"
    );
    for m in array_of(&s, "mounts") {
        assert_eq!(str_of(m, "workspace"), "shared/ws");
        assert_eq!(m["version"], v1["version"], "{m}");
    }

    let big = tree.big_file.clone().unwrap();
    let before = b.status();
    read_same(&src, &m1, &big);
    let after_first = b.status();
    assert!(
        u64_of(&after_first, "remote_get_requests") > u64_of(&before, "remote_get_requests"),
        "a cold read through {m1:?} made no remote request: {after_first}"
    );
    read_same(&src, &m2, &big);
    let after_second = b.status();
    eprintln!("before: {before}\nafter m1: {after_first}\nafter m2: {after_second}");
    for counter in ["remote_get_requests", "remote_bytes_fetched"] {
        assert_eq!(
            u64_of(&after_second, counter),
            u64_of(&after_first, counter),
            "reading through the second mount went to the remote again ({counter})"
        );
    }
}

/// GETs, frames and bytes a host fetched so far, and its chunk reads
/// served from its cache.
fn fetched(host: &Host) -> [u64; 4] {
    let s = host.status();
    [
        "remote_get_requests",
        "remote_frames_fetched",
        "remote_bytes_fetched",
        "cache_hits",
    ]
    .map(|c| u64_of(&s, c))
}

/// A job on a fresh host reads one large file from start to end: read-ahead
/// brings several frames per GET. Sixteen jobs on another fresh host read it
/// at the same moment, past the page cache (`O_DIRECT`, so that every
/// reader's reads reach the daemon): every frame is fetched once, so that
/// host fetches exactly the frames and bytes the single job's host did.
#[test]
fn readers_of_one_file_get_coalesced_gets_and_each_frame_once() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(11, 4).with_big_file(24 * MIB)).unwrap();
    let stored = u64_of(&a.persist("lazy/shared", &src, &tree.top_level()), "stored_bytes");
    let big = tree.big_file.clone().expect("the spec asks for a big file");
    let want = fs::read(src.join(&big)).unwrap();

    let alone = a.peer_named("alone");
    let mnt_alone = a.path("mnt-alone");
    alone.attach("lazy/shared", &mnt_alone);
    let before = fetched(&alone);
    assert!(fs::read(mnt_alone.join(&big)).unwrap() == want);
    let [gets, frames, bytes, alone_hits] = std::array::from_fn(|i| fetched(&alone)[i] - before[i]);
    assert!(frames > 16, "a 24 MiB file spans many frames, got {frames}");
    assert!(
        gets * 2 < frames,
        "reading a file from start to end took {gets} GETs for {frames} frames: GETs were not coalesced"
    );

    let crowd = a.peer_named("crowd");
    let mnt_crowd = a.path("mnt-crowd");
    crowd.attach("lazy/shared", &mnt_crowd);
    let before = fetched(&crowd);
    let barrier = std::sync::Barrier::new(16);
    thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                barrier.wait();
                assert!(
                    read_direct(&mnt_crowd.join(&big)).unwrap() == want,
                    "a concurrent reader got wrong bytes"
                );
            });
        }
    });
    let [_, crowd_frames, crowd_bytes, crowd_hits] = std::array::from_fn(|i| fetched(&crowd)[i] - before[i]);
    eprintln!("one reader: {frames} frames, {alone_hits} cache hits; 16 readers: {crowd_frames} frames, {crowd_hits} cache hits");
    assert!(
        crowd_hits > 4 * alone_hits.max(frames),
        "16 readers past the page cache made {crowd_hits} cache hits, one reader {alone_hits}: \
         their reads did not all reach the daemon, so they did not share its fetches"
    );
    assert!(
        crowd_bytes <= stored,
        "16 concurrent readers fetched {crowd_bytes} bytes of a layer stored in {stored}: a frame was fetched twice"
    );
    assert_eq!(
        (crowd_frames, crowd_bytes),
        (frames, bytes),
        "16 concurrent readers must fetch each frame once, as one reader does"
    );
}

/// A job on a fresh host reads a large file backwards, one MiB at a time
/// from its end (as tools that look for a trailer do): every read returns the
/// file's bytes although read-ahead brings frames before the missed one.
#[test]
fn a_file_read_backwards_reads_back() {
    use std::os::unix::fs::FileExt;
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(12, 4).with_big_file(24 * MIB)).unwrap();
    a.persist("lazy/backwards", &src, &tree.top_level());
    let big = tree.big_file.clone().expect("the spec asks for a big file");
    let want = fs::read(src.join(&big)).unwrap();

    let b = a.peer_named("b");
    let mnt = a.path("mnt");
    b.attach("lazy/backwards", &mnt);
    let file = fs::File::open(mnt.join(&big)).unwrap();
    let step = MIB as usize;
    let mut end = want.len();
    while end > 0 {
        let start = end.saturating_sub(step);
        let mut got = vec![0; end - start];
        file.read_exact_at(&mut got, start as u64)
            .unwrap_or_else(|e| panic!("reading bytes {start}..{end} backwards: {e}"));
        assert!(got == want[start..end], "bytes {start}..{end} differ");
        end = start;
    }
    let [gets, frames, ..] = fetched(&b);
    eprintln!("read backwards with {gets} GETs for {frames} frames");
    assert_eq!(u64_of(&b.status(), "read_errors"), 0);
}

/// `first_fetched` of a prefetch's progress: the files it fetched first, in
/// the order of its GETs.
fn first_fetched(prefetch: &Value) -> Vec<&str> {
    array_of(prefetch, "first_fetched")
        .iter()
        .map(|f| f.as_str().expect("a path"))
        .collect()
}

/// A workspace built by twelve steps, one file each (so one pack each: no
/// two files share a frame). Last run's test job read three files first;
/// this run's job attaches with `--prefetch` and the same `--prefetch-key`:
/// the prefetch's GETs fetch those three files first, in that order, then
/// every other file in tree order, with the progress in `status`;
/// afterwards reading the whole workspace fetches nothing more and does not
/// even reach the daemon: every file is in the page cache already. Without
/// a trace under its key, prefetch goes in tree order.
#[test]
fn prefetch_fetches_what_was_read_first_last_time_first_then_everything() {
    const SIZE: u64 = 4 * MIB;
    let a = Host::new();
    let src = a.path("src");
    let names: Vec<String> = (0..12).map(|i| format!("f{i:02}.bin")).collect();
    for (i, name) in names.iter().enumerate() {
        wsfs_tests::tree::write_file(
            &src.join(name),
            &wsfs_tests::tree::random_bytes(i as u64, SIZE as usize),
        )
        .unwrap();
        a.persist("ci/out", &src, std::slice::from_ref(name));
    }

    let last = a.peer_named("last-run");
    let mnt = last.path("last-run-mnt");
    last.attach_view("ci/out", &mnt, &["--prefetch-key", "tests/unit"]);
    for name in ["f07.bin", "f02.bin", "f09.bin"] {
        fs::read(mnt.join(name)).unwrap();
    }
    last.detach(&mnt);

    let this = a.peer_named("this-run");
    let mnt = this.path("this-run-mnt");
    let attached = this.attach_view("ci/out", &mnt, &["--prefetch", "--prefetch-key", "tests/unit"]);
    assert_eq!(str_of(&attached, "prefetch_key"), "tests/unit", "{attached}");
    let done = this.wait_prefetched(&mnt);
    assert_eq!(str_of(&done, "state"), "done", "{done}");
    assert_eq!(u64_of(&done, "files_done"), 12, "{done}");
    assert_eq!(u64_of(&done, "files_total"), 12, "{done}");
    assert_eq!(u64_of(&done, "bytes_done"), 12 * SIZE, "{done}");
    assert_eq!(
        first_fetched(&done)[..5],
        ["f07.bin", "f02.bin", "f09.bin", "f00.bin", "f01.bin"],
        "prefetch did not fetch the traced files first: {done}"
    );
    assert_eq!(u64_of(&done, "pushed_bytes"), 12 * SIZE, "{done}");
    let chunk_reads = |s: &Value| u64_of(s, "cache_hits") + u64_of(s, "cache_misses");
    let before = this.status();
    for name in &names {
        read_same(&src, &mnt, Path::new(name));
    }
    let after = this.status();
    assert_eq!(
        u64_of(&after, "remote_get_requests"),
        u64_of(&before, "remote_get_requests"),
        "reading after the prefetch fetched more"
    );
    // The kernel may still drop a pushed page (an inode evicted between the
    // push and the read takes its pages along): allow a few such reads, far
    // fewer than reading the files through the daemon takes (one per chunk).
    let through_daemon = chunk_reads(&after) - chunk_reads(&before);
    let chunks: u64 = ["cache_hits", "cache_misses"]
        .iter()
        .map(|k| u64_of(&before, k))
        .sum();
    assert!(
        through_daemon * 20 <= chunks,
        "{through_daemon} reads after the prefetch reached the daemon (of {chunks} chunk reads so far): \
         the files were not in the page cache"
    );

    let untraced = a.peer_named("untraced");
    let mnt = untraced.path("untraced-mnt");
    untraced.attach_view("ci/out", &mnt, &["--prefetch"]);
    let done = untraced.wait_prefetched(&mnt);
    assert_eq!(str_of(&done, "state"), "done", "{done}");
    assert_eq!(
        first_fetched(&done),
        names.iter().take(16).map(String::as_str).collect::<Vec<_>>(),
        "{done}"
    );
    let [gets, frames, ..] = fetched(&untraced);
    assert!(
        frames >= 3 && gets < frames,
        "prefetch in tree order took {gets} GETs (the manifests' included) for {frames} frames: not coalesced"
    );
}

/// The learned layout. A build writes 2000 files of 8 KiB (16 MiB, about
/// 16 frames); last run's test step read 40 of them, spread over the whole
/// tree, so it fetched most of the layer. The build persists the same tree
/// again (unchanged): the persist packs those 40 files anew, first, in the
/// order they were read. This run's test step, on a fresh host, reads the
/// same 40 files and fetches little more than they hold (attach, with no
/// flag, fetched them ahead, the first read first); a third persist finds
/// them packed together and stores nothing new.
#[test]
fn a_step_reading_what_the_last_run_read_fetches_those_files_after_a_re_persist() {
    const FILES: usize = 2000;
    const SIZE: usize = 8 * 1024;
    let build = Host::new();
    let src = build.path("src");
    let names: Vec<String> = (0..FILES)
        .map(|i| format!("pkg{:02}/f{i:04}.bin", i / 100))
        .collect();
    for (i, name) in names.iter().enumerate() {
        wsfs_tests::tree::write_file(&src.join(name), &wsfs_tests::tree::random_bytes(i as u64, SIZE))
            .unwrap();
    }
    let first = build.persist("ci/layout", &src, &["."]);
    // Read in an order of their own (not tree order): every 50th file, last first.
    let read: Vec<&String> = names.iter().step_by(50).rev().collect();
    // `traced`: a trace of the same files is kept, so attach fetches them ahead.
    let read_by = |name: &str, traced: bool| {
        let host = build.peer_named(name);
        let mnt = host.path("mnt");
        host.attach("ci/layout", &mnt);
        if traced {
            // Without a flag, attach fetches ahead what the last run read.
            let done = host.wait_prefetched(&mnt);
            assert_eq!(str_of(&done, "state"), "done", "{done}");
            assert_eq!(u64_of(&done, "files_total"), read.len() as u64, "{done}");
            assert_eq!(first_fetched(&done)[0], read[0].as_str(), "{done}");
        }
        for name in &read {
            read_same(&src, &mnt, Path::new(name.as_str()));
        }
        let fetched = u64_of(&host.status(), "remote_bytes_fetched");
        host.detach(&mnt);
        fetched
    };
    let scattered = read_by("last-run", false);
    let stored = u64_of(&first, "stored_bytes");
    assert!(
        scattered * 2 > stored,
        "40 files spread over the tree fetched only {scattered} of {stored} stored bytes: not scattered"
    );

    let again = build.persist("ci/layout", &src, &["."]);
    let hot = (read.len() * SIZE) as u64;
    assert_eq!(
        u64_of(&again, "new_bytes"),
        hot,
        "the re-persist did not pack exactly the 40 traced files anew: {again}"
    );
    let together = read_by("this-run", true);
    eprintln!("stored {stored}; the 40 files hold {hot}; fetched before the re-persist {scattered}, after {together}");
    assert!(
        together < hot + 2 * MIB,
        "reading the 40 traced files after the re-persist fetched {together} bytes \
         (they hold {hot}; before: {scattered})"
    );
    let third = build.persist("ci/layout", &src, &["."]);
    assert_eq!(
        u64_of(&third, "new_bytes"),
        0,
        "packed the traced files anew again: {third}"
    );
}

/// A build persists an unchanged tree again (the workspace then names the
/// same layer twice in a row): a new host attaching it fetches that layer's
/// manifest once.
#[test]
fn a_layer_persisted_twice_in_a_row_is_fetched_once() {
    let build = Host::new();
    let src = build.path("src");
    let tree = generate(&src, &TreeSpec::plain(9, 200)).unwrap();
    let first = build.persist("ci/twice", &src, &tree.top_level());
    let again = build.persist("ci/twice", &src, &tree.top_level());
    assert_eq!(str_of(&first, "layer"), str_of(&again, "layer"), "{again}");
    assert_eq!(build.layer_count("ci/twice"), 2);
    let step = build.peer_named("step");
    let mnt = step.path("mnt");
    step.attach_view("ci/twice", &mnt, &["--no-prefetch"]);
    assert_eq!(
        u64_of(&step.status(), "remote_get_requests"),
        1,
        "attaching fetched more than the one manifest"
    );
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
}
