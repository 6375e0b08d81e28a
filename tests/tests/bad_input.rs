//! Bad input gets a clear `error:` naming the problem, a non-zero exit, and
//! leaves nothing behind: no workspace record in the remote, no mount.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wsfs_tests::tree::write_file;
use wsfs_tests::{mounts, Host, HostConfig};

/// A host with a small source tree at `<tmp>/src` and a file outside it; on
/// the `file://` remote, whose record files the tests check directly.
fn setup() -> (Host, PathBuf) {
    let a = Host::with_config(HostConfig::default().file_remote());
    let src = a.path("src");
    write_file(&src.join("file.txt"), b"file\n").unwrap();
    write_file(&src.join("dir/x"), b"x\n").unwrap();
    write_file(&a.path("elsewhere/secret"), b"secret\n").unwrap();
    (a, src)
}

/// Runs a command that must fail, both plain and with `--json`; checks that
/// stderr mentions every one of `needles` (case-insensitively) and that no
/// workspace record and no mount appeared. Returns the plain stderr.
fn rejects(a: &Host, args: &[&str], needles: &[&str]) -> String {
    a.rejects(args, needles, || {
        (a.remote_objects("workspaces"), mounts::mounts_under(a.test_dir()))
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A user tries to persist paths that escape `--root`: with `..`, or an
/// absolute path outside it.
#[test]
fn persist_rejects_paths_outside_root() {
    let (a, src) = setup();
    for path in [
        "../elsewhere/secret",
        "dir/../../elsewhere/secret",
        "dir/../file.txt",
    ] {
        rejects(
            &a,
            &["persist", "--workspace", "bad/paths", "--root", s(&src), path],
            &[path],
        );
    }
    let outside = a.path("elsewhere/secret");
    rejects(
        &a,
        &[
            "persist",
            "--workspace",
            "bad/paths",
            "--root",
            s(&src),
            s(&outside),
        ],
        &["secret"],
    );
    assert!(a.remote_objects("workspaces").is_empty());
}

/// A user persists a path that does not exist (a typo in the CI config),
/// alone or next to a valid one.
#[test]
fn persist_rejects_a_missing_path() {
    let (a, src) = setup();
    let root = s(&src);
    rejects(
        &a,
        &[
            "persist",
            "--workspace",
            "bad/missing",
            "--root",
            root,
            "no-such-file",
        ],
        &["no-such-file"],
    );
    rejects(
        &a,
        &[
            "persist",
            "--workspace",
            "bad/missing",
            "--root",
            root,
            "file.txt",
            "dir/nope",
        ],
        &["dir/nope"],
    );
    assert!(a.remote_objects("workspaces").is_empty());
}

/// A user gives workspace names that are not `NS/NAME`.
#[test]
fn persist_rejects_invalid_workspace_names() {
    let (a, src) = setup();
    for name in ["noslash", "a/b/c", "../x", "", "my ws/build", "ns/", "/name"] {
        let mut needles = vec!["workspace"];
        if !name.is_empty() {
            needles.push(name);
        }
        rejects(
            &a,
            &["persist", "--workspace", name, "--root", s(&src), "file.txt"],
            &needles,
        );
    }
    rejects(
        &a,
        &["attach", "--workspace", "noslash", s(&a.path("mnt"))],
        &["workspace", "noslash"],
    );
    assert!(a.remote_objects("workspaces").is_empty());
}

/// A job attaches a workspace nobody persisted.
#[test]
fn attach_rejects_a_workspace_that_does_not_exist() {
    let (a, _) = setup();
    let mnt = a.path("mnt");
    rejects(
        &a,
        &["attach", "--workspace", "ghost/none", s(&mnt)],
        &["ghost/none"],
    );
    assert!(!mounts::is_mounted(&mnt));
}

/// A job attaches onto a directory that holds files, or onto a regular file:
/// refused, and what was there is untouched.
#[test]
fn attach_rejects_mountpoints_that_are_not_empty_dirs() {
    let (a, src) = setup();
    a.persist("good/ws", &src, &["file.txt"]);
    let full = a.path("full-dir");
    write_file(&full.join("keep.txt"), b"mine\n").unwrap();
    rejects(&a, &["attach", "--workspace", "good/ws", s(&full)], &["full-dir"]);
    assert_eq!(fs::read(full.join("keep.txt")).unwrap(), b"mine\n");
    assert!(!mounts::is_mounted(&full));

    let file = a.path("a-file");
    fs::write(&file, b"not a dir\n").unwrap();
    rejects(&a, &["attach", "--workspace", "good/ws", s(&file)], &["a-file"]);
    assert_eq!(fs::read(&file).unwrap(), b"not a dir\n");
    assert_eq!(a.remote_objects("workspaces").len(), 1);
}

/// A user detaches a plain directory, a path that does not exist, and a
/// mount that is not wsfs's (a tmpfs): all refused, the tmpfs stays mounted.
#[test]
fn detach_rejects_what_is_not_a_wsfs_mount() {
    let (a, _) = setup();
    let plain = a.path("plain-dir");
    fs::create_dir(&plain).unwrap();
    rejects(&a, &["detach", s(&plain)], &["plain-dir"]);
    rejects(&a, &["detach", s(&a.path("no-such-dir"))], &["no-such-dir"]);

    let tmpfs = a.path("other-fs");
    fs::create_dir(&tmpfs).unwrap();
    let target = CString::new(s(&tmpfs)).unwrap();
    // SAFETY: valid NUL-terminated strings; unmounted below.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=1m".as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    let records = a.remote_objects("workspaces");
    let stderr = a.fails(["detach", s(&tmpfs)]);
    assert!(
        stderr.contains("other-fs"),
        "the error does not name the path:\n{stderr}"
    );
    assert!(
        mounts::is_mounted(&tmpfs),
        "wsfs detach unmounted a tmpfs it does not own"
    );
    assert_eq!(a.remote_objects("workspaces"), records);
    // SAFETY: the path mounted above.
    assert_eq!(unsafe { libc::umount(target.as_ptr()) }, 0);
}

/// A CI job is configured with an S3 remote nobody listens on: persist fails
/// within a bounded time with an error that mentions the remote.
#[test]
fn persist_reports_an_unreachable_remote() {
    let a = Host::new();
    let u = a.peer(
        HostConfig::named("unreachable")
            .remote("s3://bucket/prefix")
            .env("AWS_ENDPOINT", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "y")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1"),
    );
    let src = a.path("src");
    write_file(&src.join("file.txt"), b"file\n").unwrap();
    let limit = Duration::from_secs(60);
    let start = Instant::now();
    let out = u
        .run_within(
            None,
            ["persist", "--workspace", "net/ws", "--root", s(&src), "file.txt"],
            limit,
        )
        .unwrap_or_else(|| panic!("persist to an unreachable remote still running after {limit:?}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "persist to an unreachable remote succeeded:\n{stderr}"
    );
    assert!(stderr.contains("error:"), "no `error:` line:\n{stderr}");
    let lower = stderr.to_lowercase();
    assert!(
        ["remote", "s3://bucket", "127.0.0.1:9"]
            .iter()
            .any(|n| lower.contains(n)),
        "the error does not mention the remote:\n{stderr}"
    );
    eprintln!(
        "unreachable remote reported after {:?}:\n{stderr}",
        start.elapsed()
    );
}

/// A job exports another `WSFS_REMOTE` while the daemon of its state dir is
/// already running with the first one: the command fails and says so, rather
/// than persisting to the remote the job did not name.
#[test]
fn a_command_naming_another_remote_than_the_running_daemon_fails() {
    let (a, src) = setup();
    a.status();
    let other = format!("file://{}", a.path("other-remote").display());
    let out = a
        .command([
            "persist",
            "--workspace",
            "net/other",
            "--root",
            s(&src),
            "file.txt",
        ])
        .env("WSFS_REMOTE", &other)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "persist went to the running daemon's remote:\n{stderr}"
    );
    assert!(
        stderr.contains(&other) && stderr.contains("wsfs shutdown"),
        "{stderr}"
    );
    assert!(a.remote_objects("workspaces").is_empty(), "a record was written");
    let same = a
        .command(["ls"])
        .env("WSFS_REMOTE", a.remote_url())
        .output()
        .unwrap();
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
}
