//! The shell around the commands, as a user meets it: `wsfs --help` names
//! each command on one line and `wsfs help CMD` gives the details; the man
//! pages and completions a package installs cover every command; `wsfs
//! status` shows a table of the attached views; `wsfs attach --prefetch
//! --wait` returns once the prefetch is done, drawing a progress bar on a
//! terminal and nothing on a pipe or with `--json`.

use std::fs;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use wsfs_tests::host::default_timeout;
use wsfs_tests::json::{str_of, u64_of};
use wsfs_tests::tree::{generate, TreeSpec};
use wsfs_tests::{process, Host, HostConfig, MIB};

/// The commands `wsfs --help` must list.
const COMMANDS: &[&str] = &[
    "persist", "attach", "detach", "log", "ls", "rm", "gc", "check", "run", "status", "shutdown", "daemon",
    "config",
];

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn stdout_of(host: &Host, args: &[&str]) -> String {
    let out = host.wsfs(args);
    assert!(
        out.status.success(),
        "wsfs {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of the `Commands:` section of `wsfs --help`.
fn command_lines(help: &str) -> Vec<&str> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

/// `wsfs --help` lists every command on a line of its own, name and one
/// sentence; the paragraph of details is in `wsfs help CMD`.
#[test]
fn help_names_each_command_on_one_line_and_help_cmd_details_it() {
    let host = Host::new();
    let help = stdout_of(&host, &["--help"]);
    let lines = command_lines(&help);
    let names: Vec<&str> = lines
        .iter()
        .map(|line| {
            assert!(
                line.starts_with("  ") && !line.starts_with("   "),
                "a command's description goes on over several lines: {line:?} in\n{help}"
            );
            let (name, about) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            assert!(!about.trim().is_empty(), "{name} has no description in\n{help}");
            assert!(
                line.len() <= 100,
                "{name}'s line is over 100 characters: {line:?}"
            );
            name
        })
        .collect();
    for command in COMMANDS {
        assert!(
            names.contains(command),
            "`wsfs --help` does not list {command}:\n{help}"
        );
    }
    assert!(
        help.contains("WSFS_CONFIG") && help.contains("`wsfs config` lists them"),
        "`wsfs --help` says nothing of the settings' variables:\n{help}"
    );

    let rm = stdout_of(&host, &["help", "rm"]);
    assert!(
        rm.contains("views attached before keep working"),
        "`wsfs help rm` lacks the details the list left out:\n{rm}"
    );
    assert_eq!(rm, stdout_of(&host, &["rm", "--help"]));
}

/// The man pages and completions a package installs (`wsfs generate`)
/// cover every command `wsfs --help` lists, and `wsfs.1` its environment.
#[test]
fn man_pages_and_completions_cover_every_command() {
    let host = Host::new();
    let help = stdout_of(&host, &["--help"]);
    let man = host.path("man");
    let completions = host.path("completions");
    stdout_of(&host, &["generate", "man", s(&man)]);
    stdout_of(&host, &["generate", "completions", s(&completions)]);

    let main_page = fs::read_to_string(man.join("wsfs.1")).expect("wsfs.1");
    assert!(main_page.contains(".SH ENVIRONMENT") && main_page.contains("WSFS_CONFIG"));
    assert!(
        man.join("wsfs-daemon-restart.1").is_file(),
        "no page for `wsfs daemon restart`"
    );
    let daemon_page = fs::read_to_string(man.join("wsfsd.8")).expect("wsfsd.8");
    assert!(
        daemon_page.contains("metrics\\-addr") && daemon_page.contains("csi\\-endpoint"),
        "wsfsd.8 lacks the daemon's flags"
    );
    let bash = fs::read_to_string(completions.join("wsfs.bash")).expect("wsfs.bash");
    let zsh = fs::read_to_string(completions.join("_wsfs")).expect("_wsfs (zsh)");
    let fish = fs::read_to_string(completions.join("wsfs.fish")).expect("wsfs.fish");
    let listed: Vec<&str> = command_lines(&help)
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .filter(|name| *name != "help")
        .collect();
    assert!(listed.len() >= COMMANDS.len(), "{help}");
    for name in listed {
        let page = man.join(format!("wsfs-{name}.1"));
        let content = fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            content.contains(&format!("wsfs\\-{name}")),
            "{} is not about {name}",
            page.display()
        );
        assert!(
            main_page.contains(&format!("wsfs\\-{name}(1)")),
            "wsfs.1 does not list {name}"
        );
        assert!(
            bash.contains(&format!("cmd=\"wsfs__subcmd__{name}\"")),
            "bash completes no {name}"
        );
        assert!(zsh.contains(&format!("'{name}:")), "zsh completes no {name}");
        assert!(
            fish.contains(&format!("-a \"{name}\"")),
            "fish completes no {name}"
        );
    }
}

/// `wsfs status` without `--json`: a table with a row per view (mountpoint,
/// workspace, view kind, version, layers, sub-path, prefetch), its columns
/// aligned, then the daemon's counters.
#[test]
fn status_shows_a_table_of_the_views() {
    let ci = Host::new();
    let src = ci.path("src");
    let logs = ci.path("logs-src");
    generate(&src, &TreeSpec::plain(21, 20).with_big_file(8 * MIB)).unwrap();
    generate(&logs, &TreeSpec::plain(24, 5)).unwrap();
    ci.ok_json(["persist", "-w", "ci/out", "--root", s(&src), "."]);
    ci.ok_json(["persist", "-w", "ci/logs", "--root", s(&logs), "."]);
    let job = ci.peer_named("job");
    let prefetched = job.path("out");
    let isolated = job.path("logs");
    let out = job.wsfs(["attach", "-w", "ci/out", "--prefetch", "--wait", s(&prefetched)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    job.attach_view("ci/logs", &isolated, &["--view", "isolated"]);

    let status = stdout_of(&job, &["status"]);
    let lines: Vec<&str> = status.lines().collect();
    let header = lines[0];
    let columns = [
        "MOUNTPOINT",
        "WORKSPACE",
        "VIEW",
        "VERSION",
        "LAYERS",
        "SUB-PATH",
        "PREFETCH",
    ];
    let starts: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .find(c)
                .unwrap_or_else(|| panic!("no {c} column:\n{status}"))
        })
        .collect();
    let row = |mountpoint: &Path| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{} ", s(mountpoint))))
            .unwrap_or_else(|| panic!("no row for {}:\n{status}", mountpoint.display()));
        // By characters: the prefetch column may hold a `—`.
        let chars: Vec<char> = line.chars().collect();
        let cells: Vec<String> = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = starts.get(i + 1).copied().unwrap_or(chars.len()).min(chars.len());
                let cell: String = chars[start.min(end)..end].iter().collect();
                cell.trim().to_string()
            })
            .collect();
        assert!(
            cells.iter().all(|c| !c.is_empty()),
            "a cell of {} is empty or out of its column:\n{status}",
            mountpoint.display()
        );
        cells
    };
    let json = job.ok_json(["status"]);
    let version_of = |mountpoint: &Path| -> String {
        let mounts = json["mounts"].as_array().unwrap();
        let m = mounts
            .iter()
            .find(|m| str_of(m, "mountpoint") == s(mountpoint))
            .unwrap();
        str_of(m, "version").to_string()
    };
    assert_eq!(
        row(&prefetched),
        [
            s(&prefetched),
            "ci/out",
            "read-only",
            &version_of(&prefetched),
            "1",
            "/",
            "done"
        ]
    );
    assert_eq!(
        row(&isolated),
        [
            s(&isolated),
            "ci/logs",
            "isolated",
            &version_of(&isolated),
            "1",
            "/",
            "—"
        ]
    );
    assert!(status.contains("2 views share 2 FUSE mounts"), "{status}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("daemon ") && l.contains(&format!("state dir {}", s(job.state_dir())))),
        "no daemon line after the table:\n{status}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("cache: ")),
        "no cache line:\n{status}"
    );
}

/// A CI host that persisted `ci/out` (50 files and one of 16 MiB, from
/// `seed`), and a job host that shares its remote.
fn ci_and_job(seed: u64) -> (Host, Host) {
    let ci = Host::new();
    let src = ci.path("src");
    generate(&src, &TreeSpec::plain(seed, 50).with_big_file(16 * MIB)).unwrap();
    ci.ok_json(["persist", "-w", "ci/out", "--root", s(&src), "."]);
    let job = ci.peer_named("job");
    (ci, job)
}

/// `attach --prefetch --wait` returns when the prefetch is done; on a pipe
/// and with `--json` it prints no progress (no escape codes), only the
/// result.
#[test]
fn attach_wait_returns_with_the_prefetch_done_and_no_progress_on_a_pipe() {
    let (_ci, job) = ci_and_job(22);
    let mnt = job.path("out");
    let out = job.wsfs([
        "attach",
        "-w",
        "ci/out",
        "--prefetch",
        "--wait",
        "--json",
        s(&mnt),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !out.stderr.contains(&0x1b) && !out.stdout.contains(&0x1b),
        "escape codes on a pipe"
    );
    let attached: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let prefetch = &attached["prefetch"];
    assert_eq!(str_of(prefetch, "state"), "done", "{attached}");
    assert_eq!(
        u64_of(prefetch, "bytes_done"),
        u64_of(prefetch, "bytes_total"),
        "{attached}"
    );
    assert!(u64_of(prefetch, "bytes_total") >= 16 * MIB, "{attached}");

    let text_out = job.wsfs([
        "attach",
        "-w",
        "ci/out",
        "--prefetch",
        "--wait",
        s(&job.path("again")),
    ]);
    assert!(text_out.status.success(), "{}", text(&text_out.stderr));
    assert!(
        text_out.stderr.is_empty(),
        "progress on a pipe: {:?}",
        text(&text_out.stderr)
    );
    assert!(
        text(&text_out.stdout).trim_end().ends_with("; prefetch done"),
        "{}",
        text(&text_out.stdout)
    );

    let refused = job.wsfs(["attach", "-w", "ci/out", "--wait", s(&job.path("refused"))]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("--prefetch"),
        "{}",
        text(&refused.stderr)
    );
}

/// `attach --prefetch --wait` on a workspace whose packs were lost: the
/// prefetch fails, the command says so and exits non-zero, and the view
/// stays attached with the failure in `wsfs status`.
#[test]
fn attach_wait_fails_when_the_prefetch_fails_and_the_view_stays() {
    let ci = Host::with_config(HostConfig::named("ci").file_remote());
    let src = ci.path("src");
    generate(&src, &TreeSpec::plain(25, 5).with_big_file(2 * MIB)).unwrap();
    ci.ok_json(["persist", "-w", "ci/out", "--root", s(&src), "."]);
    for pack in ci.remote_objects("packs") {
        fs::remove_file(ci.remote_dir().join(pack)).unwrap();
    }
    let job = ci.peer(HostConfig::named("job").env("WSFS_REMOTE_TIMEOUT", "1"));
    let mnt = job.path("out");
    let out = job.wsfs(["attach", "-w", "ci/out", "--prefetch", "--wait", s(&mnt)]);
    let error = text(&out.stderr);
    assert!(!out.status.success(), "attach --wait succeeded without the packs");
    assert!(
        error.starts_with("error: the prefetch of ci/out")
            && error.contains("failed")
            && error.contains("stays attached"),
        "{error}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let prefetch = job.view_status(&mnt)["prefetch"].clone();
    assert!(str_of(&prefetch, "state").starts_with("failed: "), "{prefetch}");
}

/// What `wsfs args` writes to its stderr when that is a terminal (a pty).
fn stderr_on_a_terminal(host: &Host, args: &[&str]) -> (bool, Vec<u8>) {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills two descriptors; no name, termios or size given.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just returned these descriptors; each is owned once.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = host.command(args);
    cmd.env("TERM", "xterm").stdout(Stdio::null()).stderr(slave);
    // Drain the terminal while the command runs, until it closes (EIO).
    let reader = std::thread::spawn(move || {
        let mut file = fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = file.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    });
    let status = process::run_with_timeout(&mut cmd, default_timeout())
        .expect("run wsfs")
        .expect("wsfs finished in time");
    // The command's copy of the slave end closed with it; ours went to `cmd`.
    drop(cmd);
    (status.success(), reader.join().unwrap())
}

/// On a terminal, `attach --prefetch --wait` draws a progress bar (and
/// clears it); with `--json` it draws nothing there either.
#[test]
fn attach_wait_draws_a_progress_bar_on_a_terminal_only() {
    let (_ci, job) = ci_and_job(23);
    job.ok_json(["status"]);
    let bar = job.path("bar");
    let (ok, drawn) =
        stderr_on_a_terminal(&job, &["attach", "-w", "ci/out", "--prefetch", "--wait", s(&bar)]);
    let drawn_text = text(&drawn);
    assert!(ok, "{drawn_text}");
    assert!(
        drawn.contains(&0x1b) && drawn_text.contains("prefetch") && drawn_text.contains("files"),
        "no progress bar on the terminal: {drawn_text:?}"
    );
    let quiet = job.path("quiet");
    let (ok, drawn) = stderr_on_a_terminal(
        &job,
        &[
            "attach",
            "-w",
            "ci/out",
            "--prefetch",
            "--wait",
            "--json",
            s(&quiet),
        ],
    );
    assert!(
        ok && drawn.is_empty(),
        "--json drew on the terminal: {:?}",
        text(&drawn)
    );
}
