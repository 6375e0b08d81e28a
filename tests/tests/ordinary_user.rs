//! A developer on a laptop, as an ordinary user with nothing set (no
//! `WSFS_*` variable; only the test's remote in the user's config file):
//! `wsfs` starts a daemon of the user's own, its state under
//! `~/.local/state/wsfs`, and mounts views through `fusermount3`. No root
//! anywhere, yet what root's daemon shows.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use wsfs_tests::compare::{assert_same_tree, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::tree::{generate, Tree, TreeSpec};
use wsfs_tests::{mounts, process, Host, HostConfig};

/// A working tree an ordinary user can read: files, directories, symlinks,
/// hard links, user xattrs, odd names and mtimes (no root-only modes).
fn source_tree(host: &Host, seed: u64) -> Tree {
    let spec = TreeSpec {
        symlinks: true,
        hard_links: true,
        xattrs: true,
        odd_names: true,
        ..TreeSpec::plain(seed, 300)
    };
    generate(&host.path(format!("src-{seed}")), &spec).expect("generate the source tree")
}

/// What an ordinary user's view shows of a tree, to that user (nobody
/// else may look): everything but the owners, which are all the user's.
fn assert_shows(host: &Host, src: &Path, view: &Path) {
    let uid = host.user_ids().0;
    host.as_user(|| {
        let opts = CompareOptions {
            owners: false,
            ..CompareOptions::ignoring_root()
        };
        assert_same_tree(src, view, &opts);
        for entry in wsfs_tests::compare::list_paths(view).unwrap() {
            let meta = view.join(&entry).symlink_metadata().unwrap();
            assert_eq!(meta.uid(), uid, "{entry:?} in the view is not the user's");
        }
    });
}

/// Persist, attach read-only (the whole tree, and a sub-path) and read back
/// exactly, as an ordinary user: the daemon is the user's, its state where
/// the user's defaults put it, its views FUSE mounts that refuse writes; a
/// second laptop (another home, the same remote) reads the same tree.
#[test]
fn an_ordinary_user_persists_attaches_and_reads_back_with_nothing_set() {
    let laptop = Host::with_config(HostConfig::named("laptop").ordinary_user());
    let tree = source_tree(&laptop, 1);
    let src = laptop.path("src-1");
    laptop.persist("me/proj", &src, &tree.top_level());

    let status = laptop.status();
    let state_dir = laptop.home().join(".local/state/wsfs");
    assert_eq!(Path::new(str_of(&status, "state_dir")), state_dir, "{status}");
    let uid = laptop.user_ids().0;
    assert_ne!(uid, 0);
    let daemon = fs::read_to_string(format!("/proc/{}/status", u64_of(&status, "pid"))).unwrap();
    let daemon_uid = daemon
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        daemon_uid
            .split_whitespace()
            .skip(1)
            .all(|id| id == uid.to_string()),
        "the daemon does not run as the user (uid {uid}): {daemon_uid}"
    );
    assert_eq!(fs::metadata(&state_dir).unwrap().uid(), uid);

    // Parents of the mountpoint are created, as `mkdir -p` would.
    let view = laptop.home().join("ws/ro");
    laptop.attach("me/proj", &view);
    let mount = mounts::mount_at(&view).expect("the view is not mounted");
    assert_eq!(mount.fs_type, "fuse.wsfs", "{mount:?}");
    assert_shows(&laptop, &src, &view);
    let refused =
        laptop.as_user(|| fs::write(view.join("new-file"), b"x").expect_err("wrote into a read-only view"));
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");
    let root = fs::metadata(&view).expect_err("root looked into an ordinary user's view");
    assert_eq!(root.raw_os_error(), Some(libc::EACCES), "{root}");

    let dir = tree
        .top_level()
        .into_iter()
        .find(|name| src.join(name).is_dir() && !src.join(name).is_symlink())
        .expect("the tree has a directory at its top");
    let sub = laptop.home().join("ws/sub");
    laptop.attach_view("me/proj", &sub, &["--sub-path".as_ref(), dir.as_os_str()]);
    assert_shows(&laptop, &src.join(&dir), &sub);
    let root_ino = laptop.as_user(|| sub.metadata().unwrap().ino());
    assert_eq!(root_ino, 1, "a sub-path view's root is the mount's root");

    let other = laptop.peer(HostConfig::named("other").ordinary_user());
    let there = other.home().join("ws/ro");
    other.attach("me/proj", &there);
    assert_shows(&other, &src, &there);
    assert_ne!(other.status()["state_dir"], status["state_dir"]);

    for (host, view) in [(&laptop, &view), (&laptop, &sub), (&other, &there)] {
        host.detach(view);
        assert!(
            !mounts::is_mounted(view),
            "{view:?} is still mounted after detach"
        );
    }
}

/// The daemon of an ordinary user is restarted, then killed: its holder
/// keeps each view's FUSE connection, a file held open reads on, and the
/// next daemon serves the views it took over. With its holder killed too,
/// the next daemon mounts the views again.
#[test]
fn an_ordinary_users_views_outlive_its_daemon() {
    let laptop = Host::with_config(HostConfig::named("laptop").ordinary_user());
    let tree = source_tree(&laptop, 2);
    let src = laptop.path("src-2");
    laptop.persist("me/proj", &src, &tree.top_level());
    let view = laptop.home().join("ws/ro");
    laptop.attach("me/proj", &view);
    let file = tree
        .small_files(u64::MAX)
        .next()
        .expect("the tree has files")
        .path
        .clone();
    let expected = fs::read(src.join(&file)).unwrap();
    let held = laptop.as_user(|| fs::File::open(view.join(&file)).unwrap());
    let read_held = || {
        laptop.as_user(|| {
            use std::os::unix::fs::FileExt;
            let mut bytes = vec![0; expected.len()];
            held.read_exact_at(&mut bytes, 0).expect("read the held file");
            bytes
        })
    };
    let pid = |host: &Host| u64_of(&host.status(), "pid") as i32;

    let first = pid(&laptop);
    let restarted = laptop.ok_json(["daemon", "restart", "--json"]);
    assert_ne!(u64_of(&restarted, "pid") as i32, first, "{restarted}");
    assert_eq!(read_held(), expected);

    let second = pid(&laptop);
    assert!(
        process::kill_and_wait(second, Duration::from_secs(30)),
        "the daemon did not die"
    );
    // The next request waits for the holder's next daemon.
    let status = laptop.status();
    assert_ne!(u64_of(&status, "pid") as i32, second);
    assert_eq!(read_held(), expected);
    assert_eq!(
        array_of(&status, "mounts").len(),
        1,
        "the view was not taken over: {status}"
    );
    assert_shows(&laptop, &src, &view);
    drop(held);

    // Holder and daemon both killed (a logout, an OOM kill): the view's
    // connection is gone and its mount answers ENOTCONN until the next
    // daemon mounts it anew (fusermount3 before 3.15 cannot unmount it by itself).
    for pid in [u64_of(&status, "holder_pid"), u64_of(&status, "pid")] {
        assert!(
            process::kill_and_wait(pid as i32, Duration::from_secs(30)),
            "{pid} did not die"
        );
    }
    // A name never looked up before: the kernel must ask.
    let probe = view.join("never-looked-up");
    let dead = laptop.as_user(|| fs::metadata(&probe).map(drop).expect_err("a dead mount answered"));
    assert_eq!(dead.raw_os_error(), Some(libc::ENOTCONN), "{dead}");
    let status = laptop.status();
    assert_eq!(array_of(&status, "mounts").len(), 1, "{status}");
    assert_shows(&laptop, &src, &view);
    laptop.detach(&view);
}

/// What root's daemon does besides views, an ordinary user's does for its
/// own: `attach --prefetch` fetches the whole version and pushes it into the
/// view's page cache, `check --read-data` verifies every byte, `rm` and
/// `gc` tidy its workspaces.
#[test]
fn an_ordinary_user_prefetches_checks_and_collects_garbage() {
    let laptop = Host::with_config(HostConfig::named("laptop").ordinary_user());
    let tree = source_tree(&laptop, 3);
    let src = laptop.path("src-3");
    laptop.persist("me/proj", &src, &tree.top_level());
    let old = source_tree(&laptop, 4);
    laptop.persist("me/old", &laptop.path("src-4"), &old.top_level());

    let view = laptop.home().join("ws/ro");
    laptop.attach_view("me/proj", &view, &["--prefetch"]);
    let prefetch = laptop.wait_prefetched(&view);
    assert_eq!(str_of(&prefetch, "state"), "done", "{prefetch}");
    assert_eq!(
        u64_of(&prefetch, "files_done"),
        u64_of(&prefetch, "files_total"),
        "{prefetch}"
    );
    assert!(
        u64_of(&prefetch, "pushed_bytes") > 0,
        "nothing reached the page cache: {prefetch}"
    );
    assert_shows(&laptop, &src, &view);

    let check = laptop.ok_json(["check", "--read-data"]);
    assert_eq!(check["clean"], true, "{check}");
    assert_eq!(u64_of(&check, "workspaces"), 2, "{check}");
    assert!(u64_of(&check, "chunks") > 0, "{check}");

    laptop.ok_json(["rm", "me/old"]);
    let gc = laptop.ok_json(["gc", "--dry-run"]);
    assert_eq!(gc["dry_run"], true, "{gc}");
    // The removed workspace's layer is no longer live (it is condemned
    // once it has been unreferenced for the grace period).
    assert_eq!(u64_of(&gc, "live_layers"), 1, "{gc}");
    laptop.detach(&view);
}

/// Regular files of `tree` with one name (a change to one name of a
/// hard-linked lower file breaks the link, as in overlayfs without `index`).
fn lone_files(src: &Path, tree: &Tree) -> Vec<std::path::PathBuf> {
    tree.small_files(u64::MAX)
        .map(|f| f.path.clone())
        .filter(|p| fs::symlink_metadata(src.join(p)).unwrap().nlink() == 1)
        .collect()
}

/// Runs `cmd` (a command a user types) in `dir`; panics with its output when it fails.
fn run<S: AsRef<std::ffi::OsStr>>(dir: &Path, cmd: &[S]) {
    let out = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(dir)
        .output()
        .unwrap();
    let shown: Vec<_> = cmd
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.status.success(),
        "`{}` in {dir:?}: {}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a build step does to its working tree, in `root`: writes a new
/// file in a new directory, rewrites, appends to and chmods files it found,
/// renames a file and a directory, deletes a file and a whole directory,
/// links, symlinks and labels (a user xattr) files, uses a file after
/// unlinking it; then stamps every
/// changed path with one mtime (so that two trees changed at different
/// times compare equal).
fn build_step(root: &Path, files: &[std::path::PathBuf], dirs: &[std::path::PathBuf]) {
    use std::io::Write;
    let [rewritten, appended, chmodded, renamed, deleted, linked, labelled, ..] = files else {
        panic!("the tree has too few lone files: {files:?}")
    };
    let [moved_dir, deleted_dir, ..] = dirs else {
        panic!("the tree has too few top-level directories: {dirs:?}")
    };
    fs::create_dir(root.join("out")).unwrap();
    fs::write(root.join("out/report.txt"), b"all green\n").unwrap();
    fs::write(root.join(rewritten), b"rewritten by the step\n").unwrap();
    let mut log = fs::OpenOptions::new()
        .append(true)
        .open(root.join(appended))
        .unwrap();
    log.write_all(b"\nappended by the step").unwrap();
    drop(log);
    fs::set_permissions(
        root.join(chmodded),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::rename(root.join(renamed), root.join("out/renamed")).unwrap();
    // A directory of the workspace moves as `mv` moves it (copying it when
    // the file system answers EXDEV).
    run(
        root,
        &["mv".as_ref(), moved_dir.as_os_str(), "moved-dir".as_ref()],
    );
    fs::remove_file(root.join(deleted)).unwrap();
    fs::remove_dir_all(root.join(deleted_dir)).unwrap();
    fs::hard_link(root.join(linked), root.join("out/linked")).unwrap();
    std::os::unix::fs::symlink("report.txt", root.join("out/latest")).unwrap();
    xattr::set(root.join(labelled), "user.wsfs.test", b"labelled").unwrap();
    // A scratch file used after its unlink, as compilers' temporaries are.
    let mut scratch = fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(root.join("out/scratch"))
        .unwrap();
    fs::remove_file(root.join("out/scratch")).unwrap();
    scratch.write_all(b"temporary").unwrap();
    let mut back = Vec::new();
    std::io::Seek::rewind(&mut scratch).unwrap();
    std::io::Read::read_to_end(&mut scratch, &mut back).unwrap();
    assert_eq!(back, b"temporary");
    let stamped = [
        "out",
        "out/report.txt",
        "out/renamed",
        "out/linked",
        "out/latest",
        "moved-dir",
    ];
    for path in stamped
        .iter()
        .map(Path::new)
        .chain([rewritten, appended, chmodded].map(|p| p.as_path()))
    {
        run(
            root,
            &[
                "touch".as_ref(),
                "-h".as_ref(),
                "-d".as_ref(),
                "@1700000000".as_ref(),
                path.as_os_str(),
            ],
        );
    }
}

/// An ordinary user attaches an isolated view, builds in it (with a log
/// file held open across a daemon restart), persists the changes with
/// `detach --persist`, and another laptop reads back exactly what the
/// step left.
#[test]
fn an_ordinary_users_isolated_view_persists_what_a_step_did() {
    let laptop = Host::with_config(HostConfig::named("laptop").ordinary_user());
    let tree = source_tree(&laptop, 3);
    let src = laptop.path("src-3");
    laptop.persist("me/proj", &src, &tree.top_level());
    let dirs: Vec<std::path::PathBuf> = tree
        .top_level()
        .into_iter()
        .map(std::path::PathBuf::from)
        .filter(|n| src.join(n).is_dir() && !src.join(n).is_symlink())
        // `mv` copies a directory the view cannot rename (EXDEV), which
        // breaks links to names outside it.
        .filter(|n| !tree.hard_links.iter().flatten().any(|p| p.starts_with(n)))
        .take(2)
        .collect();
    let files: Vec<_> = lone_files(&src, &tree)
        .into_iter()
        .filter(|f| !dirs.iter().any(|d| f.starts_with(d)))
        .collect();

    // What the step should leave: the same step, by the same user, on a copy of the source.
    let expected = laptop.home().join("expected");
    laptop.as_user(|| {
        let cp = [
            "cp".as_ref(),
            "-a".as_ref(),
            src.as_os_str(),
            expected.as_os_str(),
        ];
        run(laptop.home(), &cp);
        build_step(&expected, &files, &dirs);
        let log = b"before the restart\nafter the restart\n";
        fs::write(expected.join("out/held.log"), log).unwrap();
        run(&expected, &["touch", "-d", "@1700000000", "out/held.log"]);
    });

    let view = laptop.home().join("ws/build");
    laptop.attach_view("me/proj", &view, &["--view", "isolated"]);
    let mount = mounts::mount_at(&view).expect("the view is not mounted");
    assert_eq!(mount.fs_type, "fuse.wsfs", "{mount:?}");
    laptop.as_user(|| build_step(&view, &files, &dirs));
    let held = laptop.as_user(|| {
        let mut log = fs::File::create(view.join("out/held.log")).unwrap();
        std::io::Write::write_all(&mut log, b"before the restart\n").unwrap();
        log
    });
    let first = u64_of(&laptop.status(), "pid");
    let restarted = laptop.ok_json(["daemon", "restart", "--json"]);
    assert_ne!(u64_of(&restarted, "pid"), first, "{restarted}");
    laptop.as_user(|| {
        let mut log = held;
        std::io::Write::write_all(&mut log, b"after the restart\n").unwrap();
        log.sync_all().unwrap();
        drop(log);
        run(&view, &["touch", "-d", "@1700000000", "out/held.log"]);
    });
    let opts = CompareOptions {
        owners: false,
        dir_mtimes: false,
        ..CompareOptions::ignoring_root()
    };
    laptop.as_user(|| assert_same_tree(&expected, &view, &opts));

    let persisted = laptop.detach_persist(&view);
    assert!(!mounts::is_mounted(&view), "{persisted}");

    let other = laptop.peer(HostConfig::named("other").ordinary_user());
    let there = other.home().join("ws/ro");
    other.attach("me/proj", &there);
    other.as_user(|| assert_same_tree(&expected, &there, &opts));
    other.detach(&there);
}
