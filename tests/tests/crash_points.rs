//! SIGKILL of the daemon at the fault points of persist, `detach --persist`,
//! `rm`, gc and repack (the binaries are built with the `crash-points`
//! feature, `wsfs_fs::crash`): the holder starts the next daemon, and then
//! every workspace reads back exactly what it held before the crash, or
//! what the interrupted write wrote when its record had landed; every record
//! names a stored layer; the same write again works on the same host and on
//! another; gc works and `wsfs check --read-data` finds nothing broken. A
//! persist whose client went away writes no record.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wsfs_tests::compare::{assert_same_tree, CompareOptions};
use wsfs_tests::json::u64_of;
use wsfs_tests::tree::{generate, random_bytes, write_file, TreeSpec};
use wsfs_tests::{process, Host, HostConfig, MIB};

/// The shortest grace period `wsfs gc` accepts.
const GRACE: &str = "15s";
/// Long enough for a daemon to restart on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// What the persist's gc check logs when it refuses a layer.
const REFUSED: &str = "garbage collection condemned what the layer references";

/// A small tree: 40 files, about 700 KiB.
fn tree(host: &Host, dir: &str, seed: u64) -> PathBuf {
    let src = host.path(dir);
    generate(&src, &TreeSpec::plain(seed, 40)).unwrap();
    src
}

/// Waits until `done` holds, polling; panics with `what` after [`PATIENCE`].
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn daemon_log(host: &Host) -> String {
    String::from_utf8_lossy(&fs::read(host.state_dir().join("wsfsd.log")).unwrap_or_default()).into_owned()
}

fn daemon_pid(host: &Host) -> i32 {
    u64_of(&host.status(), "pid") as i32
}

/// Runs `wsfs args` on `host` with its daemon set to die at `point`: the
/// command fails, the point was reached (its control file is gone), and the
/// holder's next daemon answers.
fn crash_at<S: AsRef<OsStr>>(host: &Host, point: &str, args: &[S]) {
    let before = daemon_pid(host);
    let control = host.state_dir().join("crash-at");
    fs::write(&control, point).unwrap();
    let out = host.wsfs(args);
    assert!(
        !control.exists(),
        "the daemon never reached {point} (is wsfsd built with `--features wsfs-daemon/crash-points`, \
         as scripts/test builds it?) (exit {}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        host.daemon_log_tail(30)
    );
    assert!(
        !out.status.success(),
        "the command outlived its daemon's crash at {point}"
    );
    // Until the dead daemon is gone, its listening socket may still take a
    // connection (and then drop it).
    assert!(
        process::wait_for_exit(before, PATIENCE),
        "the daemon outlived {point}"
    );
    assert_ne!(
        daemon_pid(host),
        before,
        "no new daemon after the crash at {point}"
    );
    eprintln!("crashed at {point}");
}

/// A test's hosts, the workspaces they hold and the tree each must read back as.
struct World {
    a: Host,
    b: Host,
    expected: BTreeMap<String, PathBuf>,
    readers: usize,
}

impl World {
    fn new() -> World {
        let a = Host::with_config(HostConfig::named("a").file_remote());
        let b = a.peer_named("b");
        World {
            a,
            b,
            expected: BTreeMap::new(),
            readers: 0,
        }
    }

    /// Persists `src` (all of it) as `ws` on `host`; `ws` now reads as `src`.
    fn persist(&mut self, host_b: bool, ws: &str, src: &Path) -> serde_json::Value {
        let host = if host_b { &self.b } else { &self.a };
        let out = host.persist(ws, src, &["."]);
        self.expected.insert(ws.to_string(), src.to_path_buf());
        out
    }

    /// A host that never read anything: what it reads comes from the remote.
    fn cold_reader(&mut self) -> Host {
        self.readers += 1;
        self.a.peer_named(&format!("reader-{}", self.readers))
    }

    /// Attaches `ws` on `reader` and compares it with what it must hold.
    fn assert_reads_back(&self, reader: &Host, ws: &str) {
        let mnt = reader.path(format!("mnt-{}-{}", reader.name(), ws.replace('/', "-")));
        reader.attach(ws, &mnt);
        assert_same_tree(&self.expected[ws], &mnt, &CompareOptions::ignoring_root());
        reader.detach(&mnt);
    }

    /// Everything a crash must leave whole (add new checks here):
    /// - every record in the remote names a stored layer;
    /// - `wsfs ls` lists exactly the expected workspaces, and each reads back
    ///   exactly on a host with a cold cache (so every pack it needs is there);
    /// - gc can account for everything (a dry run reads every live manifest);
    /// - `again`, the interrupted write's workspace and tree: persisting the
    ///   tree again lands on this host (which may reuse what the crash
    ///   left in its local index and stat cache) and on another, and reads back.
    fn assert_whole(&mut self, again: Option<(&str, &Path)>) {
        for record in self.a.remote_objects("workspaces") {
            let name = record.file_name().unwrap().to_string_lossy().into_owned();
            let layer = name.rsplit('-').next().unwrap();
            assert!(
                self.a.remote_dir().join("layers").join(layer).is_file(),
                "record {} names layer {layer}, which is not stored",
                record.display()
            );
        }
        let reader = self.cold_reader();
        let listed = reader.workspace_names(None);
        assert_eq!(listed, self.expected.keys().cloned().collect::<Vec<_>>());
        for ws in &listed {
            self.assert_reads_back(&reader, ws);
        }
        self.a.ok_json(["gc", "--grace", GRACE, "--dry-run"]);
        let checked = self.a.ok_json(["check", "--read-data"]);
        assert_eq!(
            checked["clean"], true,
            "wsfs check --read-data after the crash: {checked}"
        );
        if let Some((ws, src)) = again {
            for host_b in [false, true] {
                self.persist(host_b, ws, src);
                let reader = self.cold_reader();
                self.assert_reads_back(&reader, ws);
            }
        }
    }
}

/// Each step of a persist: before the record, the workspace is as it was;
/// after, it has the new layer. Either way, nothing is half there, and the
/// chunk index and stat cache the crash left lead the next persist to
/// nothing missing.
#[test]
fn a_persist_killed_at_each_step_leaves_the_store_whole() {
    let mut w = World::new();
    let points = [
        ("persist.packs-put", false),
        ("persist.manifest-put", false),
        ("persist.checked", false),
        ("persist.chunks-indexed", false),
        ("persist.files-cached", false),
        ("persist.record-put", true),
    ];
    for (i, (point, landed)) in points.into_iter().enumerate() {
        let ws = format!("crash/{i}");
        let old = tree(&w.a, &format!("old-{i}"), 100 + i as u64);
        w.persist(false, &ws, &old);
        // The new tree shares most files with the old one, and has new ones.
        let new = w.a.path(format!("new-{i}"));
        fs::create_dir_all(&new).unwrap();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(old.join("."))
            .arg(&new)
            .status()
            .unwrap();
        assert!(copied.success());
        generate(&new.join("added"), &TreeSpec::plain(200 + i as u64, 20)).unwrap();
        crash_at(
            &w.a,
            point,
            &[
                "persist",
                "--workspace",
                &ws,
                "--root",
                new.to_str().unwrap(),
                ".",
            ],
        );
        if landed {
            w.expected.insert(ws.clone(), new.clone());
        }
        w.assert_whole(Some((&ws, &new)));
    }
    w.a.ok_json(["gc", "--grace", GRACE]);
    w.assert_whole(None);
}

/// `detach --persist` killed before, inside and after its persist: the next
/// daemon mounts the view again with its changes, the workspace has the
/// layer only if its record landed, and `detach --persist` again lands it.
#[test]
fn a_detach_persist_killed_at_each_step_keeps_the_changes() {
    let mut w = World::new();
    let points = [
        ("detach.unmounted", false),
        ("persist.checked", false),
        ("persist.record-put", true),
        ("detach.persisted", true),
    ];
    for (i, (point, landed)) in points.into_iter().enumerate() {
        let ws = format!("view/{i}");
        let base = tree(&w.a, &format!("base-{i}"), 300 + i as u64);
        w.persist(false, &ws, &base);
        let mnt = w.a.path(format!("view-{i}"));
        w.a.attach_view(&ws, &mnt, &["--view", "isolated"]);
        write_file(&mnt.join("made-in-the-view"), &random_bytes(i as u64, 100_000)).unwrap();
        write_file(&mnt.join("README.md"), b"changed in the view\n").unwrap();
        // What the step sees: the layer must hold exactly this.
        let changed = w.a.path(format!("changed-{i}"));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&mnt)
            .arg(&changed)
            .status()
            .unwrap();
        assert!(copied.success());
        crash_at(
            &w.a,
            point,
            &[OsStr::new("detach"), OsStr::new("--persist"), mnt.as_os_str()],
        );
        assert_same_tree(&changed, &mnt, &CompareOptions::ignoring_root());
        if landed {
            w.expected.insert(ws.clone(), changed.clone());
        }
        w.assert_whole(Some((&ws, &changed)));
        w.a.detach_persist(&mnt);
        let reader = w.cold_reader();
        w.assert_reads_back(&reader, &ws);
    }
    w.a.ok_json(["gc", "--grace", GRACE]);
    w.assert_whole(None);
}

/// `wsfs rm` killed after its first record deletion, then gc killed while
/// it rewrites two mostly-garbage packs (after the new pack, after the
/// relocation record, after the local index learnt the new pack), while it
/// condemns, while a persist stores anew what gc condemned, and while it
/// deletes (after the local index forgot the packs, after an object went):
/// every step leaves the store whole, and this host's index never leads a
/// persist to a pack that is gone or condemned.
#[test]
fn rm_and_gc_killed_at_each_step_leave_the_store_whole() {
    let mut w = World::new();
    let live = tree(&w.a, "live", 1);
    w.persist(false, "gc/live", &live);
    let (dead1, dead2) = (tree(&w.a, "dead1", 2), tree(&w.a, "dead2", 3));
    w.persist(false, "gc/dead", &dead1);
    w.persist(false, "gc/dead", &dead2);
    // Two packs mostly garbage once their workspace goes: a kept workspace
    // references only small files of each.
    for n in 0..2u64 {
        let (whole, kept) = (w.a.path(format!("whole-{n}")), w.a.path(format!("kept-{n}")));
        write_file(&whole.join("drop/big"), &random_bytes(10 + n, 5 * MIB as usize)).unwrap();
        for dir in [&whole, &kept] {
            write_file(&dir.join("keep/small"), &random_bytes(20 + n, 200_000)).unwrap();
        }
        w.persist(false, &format!("gc/whole-{n}"), &whole);
        let kept_persist = w.persist(false, &format!("gc/kept-{n}"), &kept);
        assert_eq!(u64_of(&kept_persist, "new_bytes"), 0, "{kept_persist}");
    }

    // Newest record first: the workspace keeps its older layer.
    crash_at(&w.a, "rm.record-deleted", &["rm", "gc/dead"]);
    w.expected.insert("gc/dead".into(), dead1.clone());
    w.assert_whole(None);
    for ws in ["gc/dead", "gc/whole-0", "gc/whole-1"] {
        w.a.ok_json(["rm", ws]);
        w.expected.remove(ws);
    }

    std::thread::sleep(Duration::from_secs(16)); // the grace period is what is tested
    let gc = ["gc", "--grace", GRACE];
    for point in [
        "repack.packs-put",
        "repack.relocation-put",
        "repack.indexed",
        "gc.marker-put",
    ] {
        crash_at(&w.a, point, &gc);
        w.assert_whole(None);
    }
    w.a.ok_json(gc);
    // The dead tree's packs are condemned: a persist of it refuses its
    // first layer, forgets them and stores the chunks anew.
    crash_at(
        &w.a,
        "persist.gc-forgotten",
        &[
            "persist",
            "--workspace",
            "gc/again",
            "--root",
            dead2.to_str().unwrap(),
            ".",
        ],
    );
    w.assert_whole(Some(("gc/again", &dead2)));

    std::thread::sleep(Duration::from_secs(16));
    crash_at(&w.a, "gc.object-deleted", &gc);
    w.assert_whole(None);
    // This host's index forgot the dead packs before the first went: a
    // persist of the other dead tree (plus a file, so that its pack differs
    // from the condemned one) stores everything anew, without a refusal.
    let log_before = daemon_log(&w.a).matches(REFUSED).count();
    fs::write(dead1.join("0-first"), b"sorts first\n").unwrap();
    w.persist(false, "gc/dead-again", &dead1);
    assert_eq!(
        daemon_log(&w.a).matches(REFUSED).count(),
        log_before,
        "a persist reused a pack gc deletes"
    );
    crash_at(&w.a, "gc.packs-forgotten", &gc);
    w.assert_whole(None);
    w.a.ok_json(gc);
    w.assert_whole(None);
}

/// A persist whose client is killed while it is about to write its record
/// writes none (an interrupted `wsfs run` deletes its workspaces: no record
/// may come back after that), and the next persist works.
#[test]
fn a_persist_whose_client_went_away_writes_no_record() {
    let mut w = World::new();
    let src = tree(&w.a, "src", 7);
    w.a.status();
    let pause = w.a.pause_at("persist.files-cached");
    let mut client =
        w.a.command([
            "persist",
            "--workspace",
            "cancel/ws",
            "--root",
            src.to_str().unwrap(),
            ".",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pause.wait_reached();
    client.kill().unwrap();
    client.wait().unwrap();
    wait_for("the daemon to see the client go", || {
        daemon_log(&w.a).contains("the client of a persist went away")
    });
    pause.resume();
    wait_for("the persist to end", || {
        let log = daemon_log(&w.a);
        log.contains("persist failed") || log.contains("persisted workspace=cancel/ws")
    });
    assert!(w.a.remote_objects("workspaces").is_empty(), "a record landed");
    assert!(daemon_log(&w.a).contains("persist was cancelled"));
    w.assert_whole(Some(("cancel/ws", &src)));
}
