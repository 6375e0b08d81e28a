//! The daemon dies or is restarted while steps use their views: every mount
//! stays, readers only wait, isolated views keep their changes.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::read::{files_with_hashes, Readers};
use wsfs_tests::tree::{generate, write_file, TreeSpec};
use wsfs_tests::{mounts, process, Host};

const ISOLATED: &[&str] = &["--view", "isolated"];
/// Long enough for a daemon to start on a loaded machine; readers that
/// take longer than this hung.
const PATIENCE: Duration = Duration::from_secs(60);

/// A step's host: a tree of a few hundred files (most under 64 KiB, one of
/// 8 MiB) persisted as a workspace, attached read-only at `ro` and isolated
/// at `iso`, where `unsaved.txt` was written.
struct Step {
    a: Host,
    src: PathBuf,
    ro: PathBuf,
    iso: PathBuf,
}

impl Step {
    fn new(ws: &str) -> Step {
        let a = Host::new();
        let src = a.path("src");
        let tree = generate(&src, &TreeSpec::plain(16, 200).with_big_file(8 << 20)).unwrap();
        a.persist(ws, &src, &tree.top_level());
        let (ro, iso) = (a.path("ro"), a.path("iso"));
        a.attach(ws, &ro);
        a.attach_view(ws, &iso, ISOLATED);
        write_file(&iso.join("unsaved.txt"), b"unsaved\n").unwrap();
        Step { a, src, ro, iso }
    }

    /// Readers of the read-only view's files.
    fn readers(&self, n: usize) -> Readers {
        Readers::start(n, files_at(&self.ro, &self.src))
    }

    /// Stops the readers; panics naming what failed.
    fn assert_no_failed_read(&self, readers: Readers) {
        let report = readers.stop(PATIENCE);
        assert!(
            report.failures.is_empty(),
            "reads failed: {:?}\n{}",
            report.failures,
            self.a.daemon_log_tail(30)
        );
    }
}

/// Asserts each file under `root` holds its bytes.
fn assert_files(root: &Path, files: &[(&Path, &[u8])]) {
    for (rel, bytes) in files {
        assert_eq!(fs::read(root.join(rel)).unwrap(), *bytes, "{}", rel.display());
    }
}

fn pids(a: &Host) -> (i32, i32) {
    let s = a.status();
    (u64_of(&s, "pid") as i32, u64_of(&s, "holder_pid") as i32)
}

fn mountpoints(status: &Value) -> Vec<PathBuf> {
    array_of(status, "mounts")
        .iter()
        .map(|m| PathBuf::from(str_of(m, "mountpoint")))
        .collect()
}

/// The view's files, as `Readers` checks them: the source's files seen at
/// the view.
fn files_at(view: &Path, src: &Path) -> Vec<(PathBuf, blake3::Hash)> {
    files_with_hashes(src)
        .into_iter()
        .map(|(p, h)| (view.join(p.strip_prefix(src).unwrap()), h))
        .collect()
}

/// Kills the daemon (not its holder) with SIGKILL and waits until it is gone.
fn kill_daemon(daemon: i32) {
    assert!(
        process::kill_and_wait(daemon, Duration::from_secs(30)),
        "daemon {daemon} did not die"
    );
}

/// SIGKILL of the daemon while 4 readers walk a read-only view (every read a
/// request to the daemon) and an isolated view holds unsaved changes: no read
/// fails or returns wrong bytes, no reader hangs, nobody runs a command. The
/// holder started a new daemon, which serves the same mounts; the changes are
/// still there and `detach --persist` lands them for another host.
#[test]
fn a_killed_daemon_is_replaced_without_a_failed_read_or_a_lost_change() {
    let step = Step::new("crash/ws");
    let (a, iso) = (&step.a, &step.iso);
    let upper = PathBuf::from(str_of(&a.view_status(iso), "upper_dir"));
    let changed = files_with_hashes(&step.src)[0]
        .0
        .strip_prefix(&step.src)
        .unwrap()
        .to_path_buf();
    write_file(&iso.join(&changed), b"changed before the crash\n").unwrap();
    let (daemon, holder) = pids(a);
    assert!(
        holder > 0 && holder != daemon,
        "the daemon runs without a holder: {}",
        a.status()
    );

    let readers = step.readers(4);
    assert!(
        readers.wait_for_reads(8, PATIENCE),
        "the readers read nothing before the kill"
    );
    kill_daemon(daemon);
    let before = readers.reads();
    assert!(
        readers.wait_for_reads(before + 40, PATIENCE),
        "reads did not go on after the kill: {before} before, {} now\n{}",
        readers.reads(),
        a.daemon_log_tail(30)
    );
    step.assert_no_failed_read(readers);

    let (next, same_holder) = pids(a);
    assert_ne!(next, daemon, "status still reports the killed daemon");
    assert_eq!(same_holder, holder, "the holder changed");
    assert_eq!(mountpoints(&a.status()), vec![iso.clone(), step.ro.clone()]);
    let kept: [(&Path, &[u8]); 2] = [
        (Path::new("unsaved.txt"), b"unsaved\n"),
        (&changed, b"changed before the crash\n"),
    ];
    assert_files(iso, &kept);
    assert!(
        upper.join("unsaved.txt").is_file(),
        "the change is not in the upper dir"
    );
    write_file(&iso.join("made-after-the-crash.txt"), b"also kept\n").unwrap();

    let persisted = a.detach_persist(iso);
    assert!(
        !str_of(&persisted["persisted"], "layer").is_empty(),
        "{persisted}"
    );
    let b = a.peer_named("b");
    let seen = b.path("seen");
    b.attach("crash/ws", &seen);
    assert_files(&seen, &kept);
    assert_files(&seen, &[(Path::new("made-after-the-crash.txt"), b"also kept\n")]);
}

/// `wsfs daemon restart` under 16 readers: a new daemon from the binaries
/// on disk takes every mount over, no read fails, the views stay mounted.
#[test]
fn a_restart_hands_every_mount_over_without_a_failed_read() {
    let step = Step::new("restart/ws");
    let a = &step.a;
    let (daemon, holder) = pids(a);

    let readers = step.readers(16);
    assert!(
        readers.wait_for_reads(16, PATIENCE),
        "the readers read nothing before the restart"
    );
    let restarted = a.ok_json(["daemon", "restart", "--json"]);
    let before = readers.reads();
    assert!(
        readers.wait_for_reads(before + 64, PATIENCE),
        "reads did not go on after the restart"
    );
    step.assert_no_failed_read(readers);

    assert_eq!(u64_of(&restarted, "old_pid") as i32, daemon, "{restarted}");
    assert_ne!(u64_of(&restarted, "pid") as i32, daemon, "{restarted}");
    assert_eq!(u64_of(&restarted, "views"), 2, "{restarted}");
    assert!(!process::is_alive(daemon), "the old daemon {daemon} still runs");
    let (next, same_holder) = pids(a);
    assert_eq!(next, u64_of(&restarted, "pid") as i32);
    // The holder replaced itself by its binary on disk: same process, new image.
    assert_eq!(same_holder, holder, "the holder's process changed");
    assert!(
        a.daemon_log_tail(200).contains("replacing this holder by"),
        "the holder did not replace itself\n{}",
        a.daemon_log_tail(30)
    );
    assert_files(&step.iso, &[(Path::new("unsaved.txt"), b"unsaved\n")]);
    assert_same_tree(&step.src, &step.ro, &CompareOptions::ignoring_root());
}

/// The holder and the daemon both die (SIGKILL): the mounts die with them.
/// The next command starts a new daemon, which mounts the workspace again
/// under every recorded view; an isolated view comes back with its changes
/// (only `detach` removes them), and `detach --persist` lands them.
#[test]
fn views_whose_connection_died_are_mounted_again_with_their_changes() {
    let step = Step::new("dead/ws");
    let (a, ro, iso) = (&step.a, &step.ro, &step.iso);
    let (daemon, holder) = pids(a);
    assert!(
        process::kill_and_wait(holder, Duration::from_secs(30)),
        "the holder did not die"
    );
    kill_daemon(daemon);
    assert!(
        fs::read_dir(ro).is_err(),
        "the read-only view still answers with nobody serving it"
    );

    let status = a.status();
    assert_ne!(u64_of(&status, "pid") as i32, daemon);
    assert_eq!(mountpoints(&status), vec![iso.clone(), ro.clone()], "{status}");
    assert!(mounts::is_mounted(ro) && mounts::is_mounted(iso));
    assert_same_tree(&step.src, ro, &CompareOptions::ignoring_root());
    let unsaved: [(&Path, &[u8]); 1] = [(Path::new("unsaved.txt"), b"unsaved\n")];
    assert_files(iso, &unsaved);
    a.detach_persist(iso);
    let seen = a.path("seen");
    a.attach("dead/ws", &seen);
    assert_files(&seen, &unsaved);
}
