//! A user configures wsfs with a config file: `wsfs config` shows each
//! setting and where it came from, the daemon the CLI starts uses the file's
//! settings, the environment overrides the file, and a mistake in the file
//! fails naming the key, the file and the line before anything starts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::tree::write_file;
use wsfs_tests::{Host, HostConfig};

/// The first host of a test, on the harness's `file://` remote: the others
/// take settings from the config files a test writes.
fn base() -> Host {
    Host::with_config(HostConfig::named("base").file_remote())
}

/// Writes `text` as a config file at `<tmp>/<name>` (root's, mode 0644).
fn config_file(host: &Host, name: &str, text: &str) -> PathBuf {
    let path = host.path(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// A host that reads `file` (`WSFS_CONFIG`) and takes its remote from it.
fn host_with_file(first: &Host, name: &str, file: &Path) -> Host {
    first.peer(
        HostConfig::named(name)
            .file_remote()
            .unset("WSFS_REMOTE")
            .env("WSFS_CONFIG", file.to_str().unwrap()),
    )
}

/// The entry of `key` in `wsfs config --json`.
fn setting<'a>(config: &'a Value, key: &str) -> &'a Value {
    array_of(config, "settings")
        .iter()
        .find(|s| str_of(s, "key") == key)
        .unwrap_or_else(|| panic!("no setting {key:?} in {config}"))
}

/// Asserts that `error` contains each of `needles`.
fn mentions(error: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            error.contains(needle),
            "the error does not mention {needle:?}: {error}"
        );
    }
}

/// Whether the host's state dir shows a daemon was ever started there.
fn daemon_started(host: &Host) -> bool {
    host.socket().exists() || host.state_dir().join("wsfsd.log").exists()
}

/// A user puts the remote, the cache budget and the remote timeout in a
/// config file; `wsfs config` shows them coming from its lines, and the
/// daemon the CLI starts stores layers in that remote with that budget.
#[test]
fn the_daemon_uses_the_settings_of_the_config_file() {
    let first = base();
    let remote = first.path("remote-from-file");
    let file = config_file(
        &first,
        "config.toml",
        &format!(
            "# the team's settings\nremote = \"file://{}\"\ncache_bytes = \"64M\"\nremote_timeout = 12\n",
            remote.display()
        ),
    );
    let a = host_with_file(&first, "a", &file);

    let config = a.ok_json(["config"]);
    assert_eq!(config["file"], file.to_str().unwrap(), "{config}");
    let from_line = |line| format!("file {}:{line}", file.display());
    let remote_setting = setting(&config, "remote");
    assert_eq!(
        str_of(remote_setting, "value"),
        format!("file://{}", remote.display())
    );
    assert_eq!(str_of(remote_setting, "source"), from_line(2));
    assert_eq!(str_of(remote_setting, "env"), "WSFS_REMOTE");
    assert_eq!(str_of(setting(&config, "cache_bytes"), "value"), "64M");
    assert_eq!(str_of(setting(&config, "cache_bytes"), "source"), from_line(3));
    assert_eq!(str_of(setting(&config, "remote_timeout"), "value"), "12");
    assert_eq!(str_of(setting(&config, "remote_timeout"), "source"), from_line(4));
    assert_eq!(
        str_of(setting(&config, "state_dir"), "source"),
        "env WSFS_STATE_DIR"
    );
    assert_eq!(str_of(setting(&config, "log_format"), "source"), "default");
    let table = String::from_utf8(a.wsfs(["config"]).stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.starts_with("cache_bytes "))
        .unwrap_or_else(|| panic!("no cache_bytes row:\n{table}"));
    assert!(row.contains("64M") && row.ends_with(&from_line(3)), "{table}");

    write_file(&a.path("src/out.txt"), b"built\n").unwrap();
    let persisted = a.persist("cfg/ws", &a.path("src"), &["out.txt"]);
    let layer = str_of(&persisted, "layer");
    assert!(
        remote.join("layers").join(layer).exists(),
        "layer {layer} is not in the remote of the config file {}",
        remote.display()
    );
    assert!(
        first.remote_objects("layers").is_empty(),
        "the layer went to the harness's remote"
    );
    let status = a.status();
    assert_eq!(u64_of(&status, "cache_budget_bytes"), 64 << 20, "{status}");
    assert_eq!(str_of(&status, "remote"), format!("file://{}", remote.display()));
}

/// `wsfs --config FILE` names the file for that command and for the daemon
/// it starts, whatever `WSFS_CONFIG` says.
#[test]
fn the_config_flag_names_the_file_for_the_daemon_it_starts() {
    let a = Host::with_config(HostConfig::default().file_remote());
    let file = config_file(&a, "flagged.toml", "cache_bytes = 33554432\n");
    let flag = ["--config", file.to_str().unwrap()];

    let config = a.ok_json(["config"].iter().chain(&flag));
    assert_eq!(
        str_of(setting(&config, "cache_bytes"), "source"),
        format!("file {}:1", file.display())
    );
    let status = a.ok_json(["status"].iter().chain(&flag));
    assert_eq!(u64_of(&status, "cache_budget_bytes"), 32 << 20, "{status}");

    let missing = a.path("missing.toml");
    let error = a.fails(["config", "--config", missing.to_str().unwrap()]);
    mentions(
        &error,
        &[&format!(
            "config file {} (--config) does not exist",
            missing.display()
        )],
    );
}

/// A variable set in the environment wins over the same key in the file.
#[test]
fn the_environment_overrides_the_file() {
    let first = base();
    let file = config_file(
        &first,
        "config.toml",
        "cache_bytes = \"64M\"\nremote_timeout = \"12s\"\n",
    );
    let a = first.peer(
        HostConfig::named("a")
            .env("WSFS_CONFIG", file.to_str().unwrap())
            .env("WSFS_CACHE_BYTES", "32M"),
    );
    let config = a.ok_json(["config"]);
    assert_eq!(str_of(setting(&config, "cache_bytes"), "value"), "32M");
    assert_eq!(
        str_of(setting(&config, "cache_bytes"), "source"),
        "env WSFS_CACHE_BYTES"
    );
    assert_eq!(
        str_of(setting(&config, "remote_timeout"), "source"),
        format!("file {}:2", file.display())
    );
    assert_eq!(u64_of(&a.status(), "cache_budget_bytes"), 32 << 20);

    // One setting alone, for scripts (as the package's upgrade step reads the
    // socket): by key or by variable; an unknown one is an error.
    let value = |key: &str| String::from_utf8(a.wsfs(["config", key]).stdout).unwrap();
    assert_eq!(value("cache_bytes"), "32M\n");
    assert_eq!(value("WSFS_REMOTE_TIMEOUT"), "12s\n");
    assert_eq!(value("socket_group"), "", "an unset setting prints nothing");
    let unknown = a.wsfs(["config", "cache_byte"]);
    assert!(!unknown.status.success());
    mentions(
        &String::from_utf8_lossy(&unknown.stderr),
        &["unknown setting \"cache_byte\""],
    );
}

/// A typo'd key and a bad value each fail every command, naming the key,
/// the file and the line, and no daemon starts.
#[test]
fn a_mistake_in_the_file_names_key_file_and_line_and_starts_nothing() {
    let first = base();
    let typo = config_file(&first, "typo.toml", "remote_timeout = 5\n\ncache_byte = \"1G\"\n");
    let a = host_with_file(&first, "a", &typo);
    let line_3 = format!(
        "config file {}, line 3: unknown key \"cache_byte\"",
        typo.display()
    );
    for command in [&["status"][..], &["config"], &["ls"]] {
        let error = a.fails(command);
        mentions(&error, &[&line_3, "did you mean \"cache_bytes\"?"]);
    }
    assert!(
        !daemon_started(&a),
        "a daemon started despite the bad config file"
    );
    // The user fixes the typo: now the daemon starts, with the file's budget.
    fs::write(&typo, "remote_timeout = 5\n\ncache_bytes = \"1G\"\n").unwrap();
    assert_eq!(u64_of(&a.status(), "cache_budget_bytes"), 1 << 30);

    let bad = config_file(
        &first,
        "bad.toml",
        "cache_bytes = \"64M\"\nremote_timeout = \"soon\"\n",
    );
    let b = host_with_file(&first, "b", &bad);
    let line_2 = format!("config file {}, line 2: remote_timeout = \"soon\"", bad.display());
    mentions(&b.fails(["status"]), &[&line_2, "expected seconds such as 30"]);
    assert!(
        !daemon_started(&b),
        "a daemon started despite the bad config file"
    );

    let error = first.fails(["--config", bad.to_str().unwrap(), "config"]);
    mentions(&error, &["line 2: remote_timeout"]);
    fs::write(&bad, "").unwrap();
}

/// Root does not read a config file others may write, and says how to fix it.
#[test]
fn root_refuses_a_config_file_others_may_write() {
    let first = base();
    let file = config_file(&first, "open.toml", "cache_bytes = \"64M\"\n");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    let a = host_with_file(&first, "a", &file);
    let error = a.fails(["status"]);
    mentions(
        &error,
        &[&format!("config file {}", file.display()), "chmod go-w"],
    );
    assert!(!daemon_started(&a));
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(u64_of(&a.status(), "cache_budget_bytes"), 64 << 20);
}

/// Credentials in a remote URL never show in `wsfs config`.
#[test]
fn the_remote_is_shown_without_credentials() {
    let first = base();
    let file = config_file(
        &first,
        "s3.toml",
        "remote = \"s3://AKIDEXAMPLE:s3cr3t@ci-bucket/wsfs\"\n",
    );
    let a = host_with_file(&first, "a", &file);
    let config = a.ok_json(["config"]);
    assert_eq!(
        str_of(setting(&config, "remote"), "value"),
        "s3://***@ci-bucket/wsfs"
    );
    let table = a.wsfs(["config"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("s3://***@ci-bucket/wsfs") && !text.contains("s3cr3t"),
        "{text}"
    );
}

/// With `log_format = "json"` every line of `wsfsd.log`, the holder's
/// included, is a JSON object with a timestamp, a level and a message.
#[test]
fn json_logs_are_one_object_a_line() {
    let first = base();
    let file = config_file(&first, "json.toml", "log_format = \"json\"\n");
    let a = first.peer(HostConfig::named("a").env("WSFS_CONFIG", file.to_str().unwrap()));
    write_file(&a.path("src/f"), b"f\n").unwrap();
    a.persist("logs/ws", &a.path("src"), &["f"]);
    a.ok_json(["shutdown"]);
    let log = fs::read_to_string(a.state_dir().join("wsfsd.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "too few log lines:\n{log}");
    let mut targets = Vec::new();
    for line in &lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        assert!(
            entry["timestamp"].is_string() && entry["level"].is_string(),
            "{line}"
        );
        assert!(entry["fields"]["message"].is_string(), "{line}");
        targets.push(str_of(&entry, "target").to_string());
    }
    assert!(
        targets.iter().any(|t| t == "wsfs_holder"),
        "no line of the holder in:\n{log}"
    );
    assert!(
        targets.iter().any(|t| t != "wsfs_holder"),
        "no line of the daemon in:\n{log}"
    );

    let out = first
        .command(["status"])
        .env("WSFS_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    mentions(
        &error,
        &["error: WSFS_LOG_FORMAT=\"yaml\"", "expected \"text\" or \"json\""],
    );
    assert!(!daemon_started(&first), "a daemon started with a bad log format");
}
