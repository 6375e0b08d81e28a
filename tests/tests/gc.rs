//! `wsfs gc`: expired and removed workspaces go, with the layers and packs
//! only they referenced, two runs and a grace period later; what live
//! workspaces reference stays; persists racing gc never lose their chunks;
//! `--cache` empties the local frame cache.
//!
//! Waiting for the grace period to pass is the feature under test: the tests
//! use the shortest grace gc accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, drop_page_cache, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::tree::{generate, random_bytes, write_file, TreeSpec};
use wsfs_tests::{Host, MIB};

/// The shortest grace period `wsfs gc` accepts.
const GRACE: &str = "15s";
const GRACE_TIME: Duration = Duration::from_secs(15);

/// The longest a persist may take from its gc check to its record without
/// checking again once it landed (`PERSIST_BOUND`, `fs/src/gc/mod.rs`).
const PERSIST_BOUND: Duration = Duration::from_secs(10);

/// The longest [`persists_racing_repeated_gc_runs_all_read_back`] races.
const RACE_LIMIT: Duration = Duration::from_secs(150);

/// Lets the grace period pass (plus a little, for the remote's clock).
fn wait_grace() {
    thread::sleep(GRACE_TIME + Duration::from_secs(1));
}

/// `wsfs gc --grace 15s [extra] --json`.
fn gc(host: &Host, extra: &[&str]) -> Value {
    let mut args = vec!["gc", "--grace", GRACE];
    args.extend(extra);
    host.ok_json(args)
}

/// The keys of a gc report's `field` list, with their bytes.
fn keys(report: &Value, field: &str) -> BTreeSet<(String, u64)> {
    array_of(report, field)
        .iter()
        .map(|o| (str_of(o, "key").to_string(), u64_of(o, "bytes")))
        .collect()
}

fn key_names(report: &Value, field: &str) -> BTreeSet<String> {
    keys(report, field).into_iter().map(|(k, _)| k).collect()
}

/// A small tree: a few hundred files, a few MiB.
fn small_tree(host: &Host, dir: &str, seed: u64) -> PathBuf {
    let src = host.path(dir);
    generate(&src, &TreeSpec::plain(seed, 300)).unwrap();
    src
}

fn persist_all(host: &Host, ws: &str, src: &Path) -> Value {
    host.persist(ws, src, &[".".to_string()])
}

/// A small tree persisted to `ws` on `host`, and the persist's result; the
/// workspace is removed, and its layer and packs are old enough for gc to
/// condemn them.
fn removed_a_grace_period_ago(host: &Host, ws: &str, seed: u64) -> (PathBuf, Value) {
    let src = small_tree(host, "src", seed);
    let first = persist_all(host, ws, &src);
    host.ok_json(["rm", ws]);
    wait_grace();
    (src, first)
}

/// Asserts that the persist of `second` stored `first`'s tree anew: in
/// another layer (not the condemned one), every chunk uploaded again.
fn assert_stored_anew(first: &Value, second: &Value) {
    eprintln!("first persist: {first}\nsecond persist: {second}");
    assert_ne!(
        str_of(second, "layer"),
        str_of(first, "layer"),
        "the layer must not be the condemned one"
    );
    assert!(
        u64_of(second, "stored_bytes") >= u64_of(first, "stored_bytes"),
        "the tree's chunks were not stored anew: {second} vs {first}"
    );
}

/// Attaches `ws` on `host` and asserts it shows `src` byte for byte.
fn assert_reads_back(host: &Host, ws: &str, src: &Path, mnt: &str) {
    let mnt = host.path(mnt);
    host.attach(ws, &mnt);
    assert_same_tree(src, &mnt, &CompareOptions::ignoring_root());
    host.detach(&mnt);
}

/// A removed and an expired workspace go in the second gc run after the
/// grace period, with exactly what `--dry-run` listed; a live workspace
/// keeps everything and reads back byte for byte on a fresh host.
#[test]
fn gc_deletes_what_only_dead_workspaces_reference_and_dry_run_tells_exactly() {
    let a = Host::new();
    let live_src = small_tree(&a, "live", 1);
    let dead_src = small_tree(&a, "dead", 2);
    let expiring_src = small_tree(&a, "expiring", 3);
    persist_all(&a, "keep/live", &live_src);
    let dead = persist_all(&a, "gone/removed", &dead_src);
    let mut args = vec![
        "persist",
        "--workspace",
        "gone/expired",
        "--expire-after",
        "1ms",
        "--root",
    ];
    args.push(expiring_src.to_str().unwrap());
    args.push(".");
    let expiring = a.ok_json(args);
    a.ok_json(["rm", "gone/removed"]);
    let dead_layers: BTreeSet<String> = [&dead, &expiring]
        .iter()
        .map(|p| format!("layers/{}", str_of(p, "layer")))
        .collect();

    wait_grace();
    let dry = gc(&a, &["--dry-run"]);
    eprintln!("dry run: {dry}");
    assert_eq!(dry["dry_run"], true);
    let expired: Vec<&str> = array_of(&dry, "expired")
        .iter()
        .map(|e| str_of(e, "workspace"))
        .collect();
    assert_eq!(expired, ["gone/expired"]);
    assert!(
        keys(&dry, "deleted").is_empty(),
        "nothing was condemned yet: {dry}"
    );
    let to_condemn = keys(&dry, "condemned");
    let names = key_names(&dry, "condemned");
    assert!(dead_layers.is_subset(&names), "{dead_layers:?} not in {dry}");
    assert_eq!(
        names.iter().filter(|k| k.starts_with("packs/")).count(),
        2,
        "{dry}"
    );
    assert_eq!(
        names.len(),
        4,
        "two dead layers and their packs, nothing else: {dry}"
    );
    assert!(to_condemn.iter().all(|(_, b)| *b > 0));
    assert_eq!(
        u64_of(&dry, "condemned_bytes"),
        to_condemn.iter().map(|(_, b)| b).sum::<u64>()
    );
    assert_eq!(
        a.workspace_names(None),
        ["gone/expired", "keep/live"],
        "a dry run deletes nothing"
    );
    assert_eq!(
        keys(&gc(&a, &["--dry-run"]), "condemned"),
        to_condemn,
        "a dry run writes nothing"
    );

    let first = gc(&a, &[]);
    eprintln!("first run: {first}");
    assert_eq!(keys(&first, "condemned"), to_condemn);
    assert!(keys(&first, "deleted").is_empty());
    assert_eq!(a.workspace_names(None), ["keep/live"]);
    let again = gc(&a, &[]);
    assert_eq!(
        keys(&again, "pending"),
        to_condemn,
        "not deletable within the grace period: {again}"
    );
    assert!(keys(&again, "deleted").is_empty() && keys(&again, "condemned").is_empty());

    wait_grace();
    let dry = gc(&a, &["--dry-run"]);
    assert_eq!(keys(&dry, "deleted"), to_condemn, "{dry}");
    assert!(u64_of(&dry, "deleted_bytes") > 0);
    let second = gc(&a, &[]);
    eprintln!("second run: {second}");
    assert_eq!(
        keys(&second, "deleted"),
        to_condemn,
        "the real run deletes what the dry run listed"
    );
    let after = gc(&a, &["--dry-run"]);
    assert!(
        keys(&after, "deleted").is_empty()
            && keys(&after, "condemned").is_empty()
            && keys(&after, "pending").is_empty(),
        "nothing left to collect: {after}"
    );
    assert_eq!(
        (u64_of(&after, "live_layers"), u64_of(&after, "live_packs")),
        (1, 1)
    );
    if !wsfs_tests::host::suite_on_s3() {
        let left: BTreeSet<String> = ["layers", "packs"]
            .iter()
            .flat_map(|p| a.remote_objects(p))
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            left.is_disjoint(&names),
            "deleted objects are still in the remote: {left:?}"
        );
        assert!(
            a.remote_objects("gc").is_empty(),
            "markers left: {:?}",
            a.remote_objects("gc")
        );
    }
    let fresh = a.peer_named("fresh");
    assert_reads_back(&fresh, "keep/live", &live_src, "mnt-fresh");
}

/// GC racing a persist, deterministically: a host whose local index knows
/// the chunks of a removed workspace persists the same tree again after gc
/// condemned them; its check finds the condemned packs and layer and stores
/// the tree anew, so deleting the condemned objects leaves it whole.
#[test]
fn a_persist_reusing_condemned_packs_stores_them_anew() {
    let a = Host::new();
    let (src, first) = removed_a_grace_period_ago(&a, "race/a", 4);
    let first_layer = str_of(&first, "layer").to_string();
    let condemned = gc(&a, &[]);
    let condemned_keys = key_names(&condemned, "condemned");
    assert!(
        condemned_keys.contains(&format!("layers/{first_layer}")),
        "{condemned}"
    );

    let second = persist_all(&a, "race/b", &src);
    assert_stored_anew(&first, &second);
    assert_eq!(u64_of(&second, "new_bytes"), u64_of(&first, "new_bytes"));

    wait_grace();
    let swept = gc(&a, &[]);
    assert_eq!(key_names(&swept, "deleted"), condemned_keys, "{swept}");
    let fresh = a.peer_named("fresh");
    assert_reads_back(&fresh, "race/b", &src, "mnt-fresh");
    // The host that persisted forgot the deleted packs: a third persist still works.
    let third = persist_all(&a, "race/c", &src);
    assert_eq!(u64_of(&third, "stored_bytes"), 0, "{third}");
    assert_reads_back(&fresh, "race/c", &src, "mnt-fresh-c");
}

/// GC runs over and over while hosts persist trees sharing chunks with
/// removed workspaces (their local indexes know them), each removing its
/// previous workspace before persisting the next, so that what it reuses is
/// unreferenced for a moment in every round: every workspace left reads back
/// byte for byte on a fresh host after gc deleted everything it condemned.
#[test]
fn persists_racing_repeated_gc_runs_all_read_back() {
    let first = Host::new();
    let hosts: Vec<Host> = (0..3).map(|i| first.peer_named(&format!("h{i}"))).collect();
    let sources: Vec<_> = hosts
        .iter()
        .map(|h| small_tree(h, &format!("src-{}", h.name()), 5))
        .collect();
    for (h, src) in hosts.iter().zip(&sources) {
        persist_all(h, &format!("live/{}-pre", h.name()), src);
        h.ok_json(["rm", &format!("live/{}-pre", h.name())]);
    }
    wait_grace();
    // Condemned before the first round: every host's first persist must store its tree anew.
    assert!(!key_names(&gc(&first, &[]), "condemned").is_empty());

    // The race goes on for two grace periods at least, and until a gc run
    // condemned what a host's next persist reused, so that the persist
    // stored it anew (which its gc check is for), or until `RACE_LIMIT`.
    let stop = AtomicBool::new(false);
    let stored_anew_later = AtomicBool::new(false);
    let started = Instant::now();
    let racing = || {
        let elapsed = started.elapsed();
        elapsed < 2 * GRACE_TIME + Duration::from_secs(5)
            || (elapsed < RACE_LIMIT && !stored_anew_later.load(Ordering::Relaxed))
    };
    let ((runs, condemning_runs), rounds) = thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let (mut runs, mut condemning) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let report = gc(&first, &[]);
                runs += 1;
                condemning += usize::from(!array_of(&report, "condemned").is_empty());
            }
            (runs, condemning)
        });
        let persists: Vec<_> = hosts
            .iter()
            .zip(&sources)
            .map(|(h, src)| {
                let (racing, stored_anew_later) = (&racing, &stored_anew_later);
                scope.spawn(move || {
                    let mut stored = Vec::new();
                    while racing() {
                        let round = stored.len() as u64;
                        if round > 0 {
                            h.ok_json(["rm", &format!("live/{}-{}", h.name(), round - 1)]);
                        }
                        write_file(&src.join("round"), &random_bytes(round, 1000 + round as usize)).unwrap();
                        let p = persist_all(h, &format!("live/{}-{round}", h.name()), src);
                        let percent = u64_of(&p, "stored_bytes") * 100 / u64_of(&p, "bytes");
                        if round > 0 && percent >= 50 {
                            stored_anew_later.store(true, Ordering::Relaxed);
                        }
                        stored.push(percent);
                    }
                    stored
                })
            })
            .collect();
        let rounds: Vec<Vec<u64>> = persists.into_iter().map(|p| p.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        (collector.join().unwrap(), rounds)
    });
    let mut later_anew = 0;
    for stored in &rounds {
        let anew: Vec<usize> = (0..stored.len()).filter(|&r| stored[r] >= 50).collect();
        eprintln!(
            "{} rounds; the tree was stored anew in rounds {anew:?}",
            stored.len()
        );
        assert_eq!(anew.first(), Some(&0), "the first round stores the tree anew");
        later_anew += anew.len() - 1;
    }
    eprintln!("gc runs meanwhile: {runs}, {condemning_runs} of them condemned something");
    assert!(
        condemning_runs > 0,
        "no gc run during the race condemned anything: nothing raced"
    );
    assert!(
        later_anew > 0,
        "within {RACE_LIMIT:?}, no persist after a host's first stored its tree anew: \
         none saw what gc condemned in the race"
    );
    // What the runs condemned is deleted now, if unreferenced.
    wait_grace();
    gc(&first, &[]);
    wait_grace();
    let last = gc(&first, &[]);
    let deleted = array_of(&last, "deleted").len();
    eprintln!("the last run deleted {deleted} objects");
    assert!(keys(&last, "pending").is_empty(), "{last}");

    let fresh = first.peer_named("fresh");
    let left = fresh.workspace_names(Some("live"));
    let expected: Vec<String> = hosts
        .iter()
        .zip(&rounds)
        .map(|(h, stored)| format!("live/{}-{}", h.name(), stored.len() - 1))
        .collect();
    assert_eq!(left, expected);
    for (ws, src) in left.iter().zip(&sources) {
        assert_reads_back(&fresh, ws, src, &format!("mnt-{}", &ws["live/".len()..]));
    }
}

/// A persist reusing the packs of a removed workspace passes its gc check,
/// then takes longer than the bound to write its record, while another
/// host's gc run condemns those packs: having landed too late, the persist
/// checks again, sees the markers, takes its record back and stores the
/// tree anew; once gc deleted what it condemned, the workspace reads back
/// on a fresh host.
#[test]
fn a_persist_slower_than_the_bound_checks_again_and_stores_anew() {
    let a = Host::new();
    let (src, first) = removed_a_grace_period_ago(&a, "slow/old", 8);
    let first_layer = str_of(&first, "layer").to_string();
    let collector = a.peer_named("collector");
    let pause = a.pause_at("persist.checked");
    let (condemned, second) = thread::scope(|scope| {
        let persist = scope.spawn(|| persist_all(&a, "slow/new", &src));
        pause.wait_reached();
        let condemned = key_names(&gc(&collector, &[]), "condemned");
        // The persist is slow: more than the bound passes between its check and its record.
        thread::sleep(PERSIST_BOUND + Duration::from_secs(1));
        pause.resume();
        (condemned, persist.join().unwrap())
    });
    eprintln!("condemned while the persist waited: {condemned:?}");
    assert!(
        condemned.contains(&format!("layers/{first_layer}")) && condemned.len() > 1,
        "the gc run did not condemn the removed workspace's layer and packs: {condemned:?}"
    );
    assert_stored_anew(&first, &second);
    wait_grace();
    let swept = gc(&collector, &[]);
    assert_eq!(key_names(&swept, "deleted"), condemned, "{swept}");
    assert_reads_back(&a.peer_named("fresh"), "slow/new", &src, "mnt-fresh");
}

/// A gc run whose marker writes take longer than the grace period minus
/// the persists' bound takes the markers back (a persist may have missed
/// them) and reports nothing condemned; the next run condemns the same
/// objects.
#[test]
fn markers_written_too_slowly_are_taken_back_and_the_next_run_condemns() {
    let a = Host::new();
    removed_a_grace_period_ago(&a, "slow/removed", 9);
    let to_condemn = key_names(&gc(&a, &["--dry-run"]), "condemned");
    assert!(!to_condemn.is_empty());
    let pause = a.pause_at("gc.marker-put");
    let slow = thread::scope(|scope| {
        let run = scope.spawn(|| gc(&a, &[]));
        pause.wait_reached();
        // The marker writes are slow: more than grace minus bound pass.
        thread::sleep(GRACE_TIME - PERSIST_BOUND + Duration::from_secs(1));
        pause.resume();
        run.join().unwrap()
    });
    eprintln!("the slow run: {slow}");
    assert!(
        keys(&slow, "condemned").is_empty(),
        "markers written too slowly were kept: {slow}"
    );
    let next = gc(&a, &[]);
    assert!(keys(&next, "pending").is_empty(), "a marker was left: {next}");
    assert_eq!(key_names(&next, "condemned"), to_condemn, "{next}");
}

/// A workspace keeps two small files of a pack whose big file only a
/// removed workspace had: gc rewrites the pack (its dry run says so first),
/// copying the kept frames into a new pack (which that host's next persist
/// reuses), and deletes the old one a grace period later. A view attached
/// before the rewrite, reading only now, and a new host both read the files
/// byte for byte through the relocation record, the view asking for the old
/// pack only once; once the workspace goes too, the new pack and the record
/// go as well.
#[test]
fn a_mostly_garbage_pack_is_rewritten_and_views_read_through_it() {
    let a = Host::new();
    let (whole, kept) = (a.path("whole"), a.path("kept"));
    let (other, small) = (random_bytes(7, 300_000), random_bytes(8, 300_000));
    write_file(&whole.join("drop/big"), &random_bytes(9, 6 * MIB as usize)).unwrap();
    for tree in [&whole, &kept] {
        write_file(&tree.join("a/other"), &other).unwrap();
        write_file(&tree.join("keep/small"), &small).unwrap();
    }
    persist_all(&a, "repack/whole", &whole);
    let kept_persist = persist_all(&a, "repack/kept", &kept);
    assert_eq!(
        u64_of(&kept_persist, "new_bytes"),
        0,
        "the kept files are in the first pack: {kept_persist}"
    );
    a.ok_json(["rm", "repack/whole"]);
    let reader = a.peer_named("reader");
    let mnt = reader.path("mnt");
    reader.attach("repack/kept", &mnt);

    wait_grace();
    let dry = gc(&a, &["--dry-run"]);
    eprintln!("dry run: {dry}");
    let would = array_of(&dry, "repacked");
    assert_eq!(would.len(), 1, "one pack is mostly garbage: {dry}");
    let old = str_of(&would[0], "key").to_string();
    let (bytes, live) = (u64_of(&would[0], "bytes"), u64_of(&would[0], "live_bytes"));
    assert!(live > 0 && live * 2 < bytes, "{dry}");
    assert!(
        array_of(&would[0], "into").is_empty(),
        "a dry run writes nothing: {dry}"
    );
    assert!(!key_names(&dry, "condemned").contains(&old), "{dry}");

    let first = gc(&a, &[]);
    eprintln!("first run: {first}");
    let repacked = array_of(&first, "repacked");
    assert_eq!(
        (repacked.len(), str_of(&repacked[0], "key")),
        (1, old.as_str()),
        "{first}"
    );
    assert_eq!(u64_of(&first, "repacked_live_bytes"), live);
    let new: BTreeSet<String> = array_of(&repacked[0], "into")
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 1, "{first}");
    assert!(
        key_names(&first, "condemned").contains(&old),
        "the old pack is condemned: {first}"
    );
    assert_eq!(u64_of(&first, "live_packs"), 1);
    // The host that rewrote the pack deduplicates against the new one.
    let again = persist_all(&a, "repack/again", &kept);
    assert_eq!(u64_of(&again, "new_bytes"), 0, "{again}");

    wait_grace();
    let second = gc(&a, &[]);
    eprintln!("second run: {second}");
    assert!(key_names(&second, "deleted").contains(&old), "{second}");
    let relocation = format!("relocations/{}", &old["packs/".len()..]);
    if !wsfs_tests::host::suite_on_s3() {
        let packs: BTreeSet<String> = a
            .remote_objects("packs")
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(!packs.contains(&old) && new.is_subset(&packs), "{packs:?}");
        assert_eq!(a.remote_objects("relocations").len(), 1);
    }

    let got = std::fs::read(mnt.join("keep/small")).unwrap();
    assert!(
        got == small,
        "the view attached before the rewrite read wrong bytes"
    );
    // The old pack is known to be gone now: the other file, in another
    // frame, comes from the new pack without a GET of the old one first.
    let gets = |s: &Value| u64_of(s, "remote_get_requests");
    let before = reader.status();
    let got = std::fs::read(mnt.join("a/other")).unwrap();
    assert!(got == other, "the second file read wrong bytes");
    let status = reader.status();
    assert_eq!(
        gets(&status) - gets(&before),
        1,
        "one GET of the new pack: {status}"
    );
    assert_eq!(u64_of(&status, "read_errors"), 0, "{status}");
    reader.detach(&mnt);
    let fresh = a.peer_named("fresh");
    assert_reads_back(&fresh, "repack/kept", &kept, "mnt-fresh");

    a.ok_json(["rm", "repack/kept"]);
    a.ok_json(["rm", "repack/again"]);
    let third = gc(&a, &[]);
    eprintln!("third run: {third}");
    let condemned = key_names(&third, "condemned");
    assert!(
        new.is_subset(&condemned) && condemned.contains(&relocation),
        "the new pack and the record go once nothing references them: {third}"
    );
}

/// A view's readers leave an access trace under its prefetch key; gc keeps
/// it while younger than `--trace-max-age` (30 days unless told), deletes
/// it once older, listing it in `traces_deleted` (a dry run first, changing
/// nothing), and the workspace itself is untouched.
#[test]
fn gc_deletes_access_traces_not_written_for_the_max_age() {
    let a = Host::new();
    let src = small_tree(&a, "src", 8);
    persist_all(&a, "ci/traced", &src);
    let mnt = a.path("mnt");
    a.attach_view("ci/traced", &mnt, &["--prefetch-key", "ci/traced/tests"]);
    let first = wsfs_tests::compare::list_paths(&src)
        .unwrap()
        .into_iter()
        .find(|p| src.join(p).is_file())
        .unwrap();
    std::fs::read(mnt.join(&first)).unwrap();
    a.detach(&mnt);
    let trace = BTreeSet::from(["traces/ci/traced/tests".to_string()]);

    let kept = gc(&a, &["--dry-run"]);
    assert_eq!(u64_of(&kept, "trace_max_age_ms"), 30 * 24 * 3600 * 1000, "{kept}");
    assert!(key_names(&kept, "traces_deleted").is_empty(), "{kept}");
    let dry = gc(&a, &["--dry-run", "--trace-max-age", "0s"]);
    assert_eq!(key_names(&dry, "traces_deleted"), trace, "{dry}");
    assert!(
        keys(&dry, "traces_deleted").iter().all(|(_, bytes)| *bytes > 0),
        "{dry}"
    );
    let done = gc(&a, &["--trace-max-age", "0s"]);
    assert_eq!(
        key_names(&done, "traces_deleted"),
        trace,
        "the dry run changed nothing: {done}"
    );
    let after = gc(&a, &["--dry-run", "--trace-max-age", "0s"]);
    assert!(key_names(&after, "traces_deleted").is_empty(), "{after}");
    assert_reads_back(&a, "ci/traced", &src, "mnt2");
}

/// Refused: a grace period below the minimum (named in the error), an
/// unknown flag, a bad duration, `--cache` with `--grace`; nothing changes.
#[test]
fn gc_refuses_bad_input_and_changes_nothing() {
    let a = Host::new();
    let src = small_tree(&a, "src", 6);
    persist_all(&a, "bad/input", &src);
    a.ok_json(["rm", "bad/input"]);
    let state = || {
        let dry = a.ok_json(["gc", "--dry-run"]);
        (
            a.workspace_names(None),
            keys(&dry, "pending"),
            keys(&dry, "deleted"),
        )
    };
    a.rejects(&["gc", "--grace", "1s"], &["--grace", "15s"], state);
    a.rejects(&["gc", "--grace", "0s"], &["minimum"], state);
    a.rejects(&["gc", "--grace", "soon"], &["--grace"], state);
    a.rejects(&["gc", "--frobnicate"], &["--frobnicate"], state);
    a.rejects(&["gc", "--cache", "--grace", "1h"], &["--cache"], state);
    a.rejects(&["gc", "--cache", "--trace-max-age", "1d"], &["--cache"], state);
    a.rejects(&["gc", "--trace-max-age", "often"], &["--trace-max-age"], state);
}

/// `gc --cache` empties the frame cache; reads fetch again and stay correct.
#[test]
fn gc_cache_empties_the_frame_cache_and_reads_fetch_again() {
    let a = Host::new();
    let src = a.path("src");
    // Larger than the daemon's 64 MiB memory cache of chunks, so that reads
    // after the trim reach the remote.
    generate(&src, &TreeSpec::plain(7, 50).with_big_file(80 * MIB)).unwrap();
    persist_all(&a, "cache/ws", &src);
    let mnt = a.path("mnt");
    a.attach("cache/ws", &mnt);
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let before = a.status();
    let cached = u64_of(&before, "cache_bytes");
    assert!(cached > 64 * MIB, "{before}");

    let dry = a.ok_json(["gc", "--cache", "--dry-run"]);
    assert_eq!(u64_of(&dry, "cache_freed_bytes"), cached, "{dry}");
    assert_eq!(
        u64_of(&a.status(), "cache_bytes"),
        cached,
        "a dry run frees nothing"
    );
    let trimmed = a.ok_json(["gc", "--cache"]);
    eprintln!("trimmed: {trimmed}");
    assert_eq!(u64_of(&trimmed, "cache_freed_bytes"), cached);
    assert_eq!(u64_of(&trimmed, "cache_bytes"), 0);
    assert_eq!(u64_of(&a.status(), "cache_bytes"), 0);

    drop_page_cache(&mnt).unwrap();
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let after = a.status();
    assert!(
        u64_of(&after, "remote_get_requests") > u64_of(&before, "remote_get_requests"),
        "reads after the trim fetched from the remote: {before} → {after}"
    );
    assert!(u64_of(&after, "cache_bytes") > 0, "{after}");
    a.detach(&mnt);
}
