//! A shared build host: root's daemon serves other users' jobs only what
//! they could do themselves, and what root persisted stays as private as it
//! was on disk.
//!
//! The other user is uid and gid 4242 with no passwd entry: to the daemon, a
//! CI job's user is only its credentials on the socket.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wsfs_tests::json::{array_of, u64_of};
use wsfs_tests::tree::write_file;
use wsfs_tests::{Host, HostConfig};

/// The other user of the build host.
const USER: u32 = 4242;
/// A group the daemon's configuration names as its admin group.
const ADMINS: u32 = 4343;

/// Root's daemon with a socket other users may reach (`WSFS_SOCKET`
/// outside the state dir, `WSFS_SOCKET_GROUP`), and a test directory they
/// may enter, as `/home` and `/tmp` are.
fn shared_host(admin_group: Option<u32>) -> Host {
    let probe = Host::new();
    let socket_dir = probe.test_dir().join("run");
    let mut config = HostConfig::named("shared")
        .env(
            "WSFS_SOCKET",
            &socket_dir.join("wsfsd.sock").display().to_string(),
        )
        .env("WSFS_SOCKET_GROUP", &USER.to_string());
    if let Some(group) = admin_group {
        config = config.env("WSFS_ADMIN_GROUP", &group.to_string());
    }
    let host = probe.peer(config);
    fs::set_permissions(host.test_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    drop(probe);
    host.status();
    host
}

/// A directory of the other user's.
fn user_dir(host: &Host, name: &str) -> PathBuf {
    let dir = host.path(name);
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(USER), Some(USER)).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `wsfs args` as the other user fails with a permission error mentioning `needle`.
fn refused(host: &Host, groups: &[u32], args: &[&str], needle: &str) -> String {
    let out = host.wsfs_as(USER, USER, groups, args);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "`wsfs {args:?}` as uid {USER} succeeded:\n{err}"
    );
    let lower = err.to_lowercase();
    assert!(
        lower.contains("permission denied") && lower.contains(&needle.to_lowercase()),
        "`wsfs {args:?}` as uid {USER}: the error does not name {needle:?}:\n{err}"
    );
    err
}

/// Runs `program args` as the other user; returns its output.
fn as_user(program: &str, args: &[&Path]) -> Output {
    Command::new(program)
        .args(args)
        .uid(USER)
        .gid(USER)
        .output()
        .unwrap()
}

/// The other user may persist its own files, attach on its own directories,
/// read through its view what the files' modes let it, and detach its own
/// views; it may not persist a file only root can read, mount over root's
/// directory, detach root's view, remove workspaces, collect garbage, check
/// the store, or restart or stop the daemon: each refusal names what was
/// refused, and nothing changes.
#[test]
fn another_user_may_do_only_what_it_could_do_itself() {
    let a = shared_host(None);
    let src = a.path("src");
    write_file(&src.join("public.txt"), b"for everyone\n").unwrap();
    write_file(&src.join("id_ecdsa"), b"root's key\n").unwrap();
    fs::set_permissions(src.join("public.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("id_ecdsa"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    // A FIFO nobody writes to: never opened (no hang), skipped and listed.
    let fifo = std::ffi::CString::new(src.join("a-fifo").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let persisted = a.persist("ci/shared", &src, &["."]);
    assert_eq!(persisted["skipped"], serde_json::json!(["a-fifo"]), "{persisted}");
    let root_view = a.path("root-view");
    a.attach("ci/shared", &root_view);

    // Its own files: persisted. A root-only file among them: refused, by name.
    let mine = user_dir(&a, "mine");
    write_file(&mine.join("notes.txt"), b"the user's\n").unwrap();
    std::os::unix::fs::chown(mine.join("notes.txt"), Some(USER), Some(USER)).unwrap();
    let out = a.wsfs_as(
        USER,
        USER,
        &[],
        [
            "persist",
            "--workspace",
            "user/own",
            "--root",
            mine.to_str().unwrap(),
            ".",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // An expiry on a workspace of its own: set. On root's workspace: refused,
    // as it would delete root's layers later.
    let own_root = mine.to_str().unwrap();
    let expiring = [
        "persist",
        "--workspace",
        "user/expiring",
        "--expire-after",
        "1h",
        "--root",
        own_root,
        ".",
    ];
    let out = a.wsfs_as(USER, USER, &[], expiring);
    assert!(out.status.success(), "{}", stderr(&out));
    let on_roots = [
        "persist",
        "--workspace",
        "ci/shared",
        "--expire-after",
        "1h",
        "--root",
        own_root,
        ".",
    ];
    refused(&a, &[], &on_roots, "--expire-after on an existing workspace");
    write_file(&mine.join("root-only"), b"not the user's\n").unwrap();
    fs::set_permissions(mine.join("root-only"), fs::Permissions::from_mode(0o600)).unwrap();
    let root = mine.to_str().unwrap();
    refused(
        &a,
        &[],
        &["persist", "--workspace", "user/stolen", "--root", root, "."],
        "root-only",
    );
    assert!(!a.workspace_names(None).contains(&"user/stolen".to_string()));

    // Its own mountpoint: attached; root's directory: refused, nothing mounted.
    let theirs = user_dir(&a, "user-view");
    let out = a.wsfs_as(
        USER,
        USER,
        &[],
        ["attach", "--workspace", "ci/shared", theirs.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let roots = a.path("roots-dir");
    fs::create_dir(&roots).unwrap();
    let err = refused(
        &a,
        &[],
        &["attach", "--workspace", "ci/shared", roots.to_str().unwrap()],
        "uid 0",
    );
    assert!(err.contains("roots-dir"), "{err}");
    assert!(!wsfs_tests::mounts::is_mounted(&roots));

    // Through its view, file modes hold: the 0644 file reads, root's 0600 key does not.
    let public = as_user("cat", &[&theirs.join("public.txt")]);
    assert_eq!(public.stdout, b"for everyone\n", "{}", stderr(&public));
    let key = as_user("cat", &[&theirs.join("id_ecdsa")]);
    assert!(
        !key.status.success() && key.stdout.is_empty(),
        "the key was readable"
    );
    assert!(stderr(&key).contains("Permission denied"), "{}", stderr(&key));

    // Root's things: refused, nothing changed.
    refused(
        &a,
        &[],
        &["detach", root_view.to_str().unwrap()],
        "attached by uid 0",
    );
    assert!(wsfs_tests::mounts::is_mounted(&root_view));
    let pid = u64_of(&a.status(), "pid");
    for (args, what) in [
        (&["rm", "ci/shared"][..], "wsfs rm"),
        (&["rm", "--expired"], "wsfs rm --expired"),
        (&["gc", "--dry-run"], "wsfs gc"),
        (&["check"], "wsfs check"),
        (&["daemon", "restart"], "wsfs daemon restart"),
        (&["shutdown"], "wsfs shutdown"),
    ] {
        refused(&a, &[], args, what);
    }
    assert_eq!(a.layer_count("ci/shared"), 1);
    assert_eq!(u64_of(&a.status(), "pid"), pid, "the daemon was not restarted");
    assert_eq!(array_of(&a.status(), "mounts").len(), 2);

    // Its own view: detached.
    let out = a.wsfs_as(USER, USER, &[], ["detach", theirs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    a.detach(&root_view);
}

/// A member of the group the configuration names (WSFS_ADMIN_GROUP) may
/// collect garbage; the same user in no such group may not.
#[test]
fn the_admin_group_may_collect_garbage() {
    let a = shared_host(Some(ADMINS));
    let src = a.path("src");
    write_file(&src.join("f"), b"data\n").unwrap();
    a.persist("ci/any", &src, &["."]);
    refused(&a, &[], &["gc", "--dry-run"], "WSFS_ADMIN_GROUP");
    let out = a.wsfs_as(USER, USER, &[ADMINS], ["gc", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Root persists a 0600 file and reads it back through a view: every file
/// the daemon made (state dir, frame cache, the `file://` remote) is root's
/// alone, so the other user can read none of them; a 0644 file root made in
/// the same place stays readable to it (the check can see a readable file).
/// Without a socket group, the socket is root's alone too.
#[test]
fn what_root_persisted_stays_root_only_on_disk() {
    let a = Host::new();
    fs::set_permissions(a.test_dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = a.path("src");
    write_file(&src.join("id_ecdsa"), b"root's key\n").unwrap();
    fs::set_permissions(src.join("id_ecdsa"), fs::Permissions::from_mode(0o600)).unwrap();
    a.persist("ci/secret", &src, &["."]);
    let mnt = a.path("mnt");
    a.attach("ci/secret", &mnt);
    assert_eq!(fs::read(mnt.join("id_ecdsa")).unwrap(), b"root's key\n");

    let made: Vec<PathBuf> = [a.state_dir().to_path_buf(), a.test_dir().join("remote")]
        .iter()
        .flat_map(|dir| files_under(dir))
        .collect();
    assert!(made.len() > 5, "{made:?}");
    for path in &made {
        let mode = fs::symlink_metadata(path).unwrap().mode();
        assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
    }
    let control = a.path("control.txt");
    write_file(&control, b"readable\n").unwrap();
    fs::set_permissions(&control, fs::Permissions::from_mode(0o644)).unwrap();
    let readable = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths
            .iter()
            .filter(|p| as_user("cat", &[p.as_path()]).status.success())
            .cloned()
            .collect()
    };
    let controls = [control];
    assert_eq!(readable(&controls), controls);
    assert!(readable(&made).is_empty());
    let socket_mode = fs::symlink_metadata(a.socket()).unwrap().mode() & 0o777;
    assert_eq!(socket_mode, 0o600);
    let out = a.wsfs_as(USER, USER, &[], ["status"]);
    assert!(!out.status.success(), "the other user reached root's daemon");
    // It is told whose state dir that is, and what to do.
    let err = stderr(&out);
    assert!(
        err.contains("belongs to uid 0") && err.contains("WSFS_SOCKET"),
        "{err}"
    );
    a.detach(&mnt);
}

/// Every file under `dir` (not following symlinks), sockets and FIFOs left out.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    wsfs_tests::compare::list_paths(dir)
        .unwrap()
        .into_iter()
        .map(|p| dir.join(p))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect()
}
