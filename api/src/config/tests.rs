use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

use super::*;

/// A config file with `text` in a fresh directory (mode 0644).
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, path)
}

/// Resolves as root with exactly the variables `vars`.
fn resolve(flags: &Flags, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::resolve(flags, &move |name: &str| vars.get(name).cloned(), 0)
}

fn with_file(path: &Path, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    resolve(&Flags::new(Some(path.to_path_buf())), vars)
}

/// Asserts that reading `path` fails with an error mentioning each of `needles`.
fn fails_with(path: &Path, needles: &[&str]) {
    let error = with_file(path, &[]).unwrap_err().to_string();
    for needle in needles {
        assert!(
            error.contains(needle),
            "the error does not mention {needle:?}: {error}"
        );
    }
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let (_dir, path) = config_file(
        "# wsfs\ncache_bytes = \"1G\"\nremote_timeout = 7\ncsi_driver_name = \"file.example\"\nlog = \"debug\"\n",
    );
    let flags = Flags::new(Some(path.clone())).with(Key::CsiDriverName, Some("flag.example".into()));
    let settings = resolve(
        &flags,
        &[("WSFS_LOG", "warn"), ("WSFS_CSI_DRIVER_NAME", "env.example")],
    )
    .unwrap();
    let file_line = |line| Source::File {
        path: path.clone(),
        line,
    };
    assert_eq!(settings.cache_bytes(), 1 << 30);
    assert_eq!(settings.value(Key::CacheBytes).source, file_line(2));
    assert_eq!(settings.remote_timeout(), Duration::from_secs(7));
    assert_eq!(settings.value(Key::RemoteTimeout).source, file_line(3));
    assert_eq!(settings.text(Key::CsiDriverName), Some("flag.example"));
    assert_eq!(
        settings.value(Key::CsiDriverName).source,
        Source::Flag("--csi-driver-name")
    );
    assert_eq!(settings.text(Key::Log), Some("warn"));
    assert_eq!(settings.value(Key::Log).source, Source::Env("WSFS_LOG"));
    assert_eq!(settings.log_format(), LogFormat::Text);
    assert_eq!(settings.value(Key::LogFormat).source, Source::Default);
    assert_eq!(
        settings.value(Key::CacheBytes).source.to_string(),
        format!("file {}:2", path.display())
    );
}

#[test]
fn defaults_follow_the_state_dir() {
    let settings = resolve(
        &Flags::new(Some("none".into())),
        &[("WSFS_STATE_DIR", "/srv/wsfs")],
    )
    .unwrap();
    assert!(settings.file().is_none());
    assert_eq!(settings.socket(), Path::new("/srv/wsfs/wsfsd.sock"));
    assert_eq!(settings.text(Key::Remote), Some("file:///srv/wsfs/remote"));
    assert_eq!(settings.cache_bytes(), 10 << 30);
    assert_eq!(settings.text(Key::MetricsAddr), None);
    assert_eq!(settings.config_env_value(), Path::new("none"));
}

#[test]
fn an_unknown_key_names_the_file_the_line_and_the_closest_key() {
    let (_dir, path) = config_file("remote = \"memory:\"\n\ncache_byte = \"1G\"\n");
    let at = format!(
        "config file {}, line 3: unknown key \"cache_byte\"",
        path.display()
    );
    fails_with(&path, &[&at, "did you mean \"cache_bytes\"?"]);
}

#[test]
fn a_bad_value_names_the_file_the_line_the_key_and_what_is_expected() {
    let (_dir, path) = config_file("remote = \"memory:\"\ncache_bytes = \"ten\"\n");
    let at = format!("config file {}, line 2: cache_bytes = \"ten\"", path.display());
    fails_with(&path, &[&at, "expected a size such as 10G"]);

    let (_dir, path) = config_file("log_format = \"yaml\"\n");
    fails_with(&path, &["line 1: log_format = \"yaml\"", "\"text\" or \"json\""]);

    let (_dir, path) = config_file("\nremote = 5\n");
    fails_with(&path, &["line 2: remote = 5: expected a string"]);
    let (_dir, path) = config_file("persist_threads = 0\n");
    fails_with(
        &path,
        &[
            "line 1: persist_threads = \"0\"",
            "expected a whole number from 1 to 1024",
        ],
    );
}

#[test]
fn integers_are_taken_where_a_number_makes_sense() {
    let (_dir, path) = config_file("cache_bytes = 1048576\nadmin_group = 0\n");
    let settings = with_file(&path, &[]).unwrap();
    assert_eq!(settings.cache_bytes(), 1 << 20);
    assert_eq!(settings.group(Key::AdminGroup), Some(0));
    assert_eq!(settings.group(Key::SocketGroup), None);
    assert_eq!(settings.persist_threads(), None, "one per core unless set");
    let (_dir, path) = config_file("persist_threads = 3\n");
    assert_eq!(with_file(&path, &[]).unwrap().persist_threads(), Some(3));
}

#[test]
fn a_syntax_error_names_the_line() {
    let (_dir, path) = config_file("remote = \"memory:\"\ncache_bytes = \n");
    fails_with(&path, &[&format!("config file {}, line 2: ", path.display())]);
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let error = resolve(
        &Flags::new(Some("none".into())),
        &[("WSFS_REMOTE_TIMEOUT", "soon")],
    )
    .unwrap_err()
    .to_string();
    assert!(error.starts_with("WSFS_REMOTE_TIMEOUT=\"soon\": "), "{error}");
    assert!(error.contains("expected seconds"), "{error}");
}

#[test]
fn which_file() {
    let (_dir, path) = config_file("log = \"debug\"\n");
    let by_env = resolve(&Flags::default(), &[("WSFS_CONFIG", path.to_str().unwrap())]).unwrap();
    assert_eq!(by_env.file().unwrap().chosen, Chosen::Env);
    assert_eq!(by_env.text(Key::Log), Some("debug"));
    let none = resolve(&Flags::default(), &[("WSFS_CONFIG", "none")]).unwrap();
    assert!(none.file().is_none());
    let missing = path.with_file_name("missing.toml");
    let error = resolve(&Flags::new(Some(missing.clone())), &[])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "config file {} (--config) does not exist",
            missing.display()
        )),
        "{error}"
    );
    // A user's default file is under XDG_CONFIG_HOME; a missing one is no file.
    let vars = [("XDG_CONFIG_HOME", path.parent().unwrap().to_str().unwrap())];
    let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    assert!(Settings::resolve(&Flags::default(), &env, 1000)
        .unwrap()
        .file()
        .is_none());
    std::fs::create_dir(path.with_file_name("wsfs")).unwrap();
    std::fs::copy(&path, path.with_file_name("wsfs").join("config.toml")).unwrap();
    let found = Settings::resolve(&Flags::default(), &env, 1000).unwrap();
    assert_eq!(found.file().unwrap().chosen, Chosen::Default);
    assert_eq!(found.text(Key::Log), Some("debug"));
}

#[test]
fn root_refuses_a_file_others_may_write() {
    let (_dir, path) = config_file("log = \"debug\"\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let error = with_file(&path, &[]).unwrap_err().to_string();
    assert!(error.contains("mode 0666"), "{error}");
    assert!(error.contains("chmod go-w"), "{error}");
    let env = |_: &str| None;
    let as_user = Settings::resolve(&Flags::new(Some(path)), &env, 1000).unwrap();
    assert_eq!(as_user.text(Key::Log), Some("debug"));
}

#[test]
fn a_remote_is_shown_without_its_credentials() {
    let (_dir, path) = config_file("remote = \"s3://KEY:SECRET@bucket/ci\"\n");
    let settings = with_file(&path, &[]).unwrap();
    assert_eq!(
        settings.value(Key::Remote).shown().as_deref(),
        Some("s3://***@bucket/ci")
    );
    assert_eq!(settings.remote(Path::new("/x")), "s3://KEY:SECRET@bucket/ci");
}

#[test]
fn the_docs_and_the_example_file_list_every_setting() {
    let docs = include_str!("../../../docs/config.md");
    let example = include_str!("../../../deploy/config.toml");
    let example_keys: Vec<&str> = example
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once(" = ").map(|(k, _)| k))
        .collect();
    for setting in &SETTINGS {
        let row = format!("| `{}` | `{}` |", setting.key, setting.env);
        assert!(docs.contains(&row), "docs/config.md has no row {row}");
        assert!(
            example_keys.contains(&setting.key),
            "deploy/config.toml lacks {}",
            setting.key
        );
    }
    assert_eq!(example_keys.len(), SETTINGS.len(), "{example_keys:?}");
    assert!(
        example.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "an uncommented line"
    );
}

#[test]
fn an_ordinary_user_gets_a_state_dir_in_its_home_and_a_socket_in_its_runtime_dir() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let defaults = |env: &dyn Fn(&str) -> Option<String>, euid| {
        let settings = Settings::resolve(&Flags::default(), env, euid).unwrap();
        (settings.state_dir(), settings.socket())
    };
    let home = vars(&[("HOME", "/home/me"), ("WSFS_CONFIG", "none")]);
    assert_eq!(
        defaults(&home, 1000),
        (
            "/home/me/.local/state/wsfs".into(),
            "/home/me/.local/state/wsfs/wsfsd.sock".into()
        )
    );
    let session = vars(&[
        ("HOME", "/home/me"),
        ("XDG_STATE_HOME", "/home/me/state"),
        ("XDG_RUNTIME_DIR", "/run/user/1000"),
        ("WSFS_CONFIG", "none"),
    ]);
    assert_eq!(
        defaults(&session, 1000),
        (
            "/home/me/state/wsfs".into(),
            "/run/user/1000/wsfs/wsfsd.sock".into()
        )
    );
    // Root's daemon is the host's, whatever session started it.
    assert_eq!(
        defaults(&session, 0),
        ("/var/lib/wsfs".into(), "/var/lib/wsfs/wsfsd.sock".into())
    );
}
