//! [`Host`]: one machine running wsfs, as a CI job would see it.
//!
//! Every host has its own state dir (`WSFS_STATE_DIR`: daemon, socket, RocksDB,
//! chunk cache, `wsfsd.log`) and shares the test's `file://` remote with its
//! peers. It reads no config file (`WSFS_CONFIG=none`) unless its test gives one. All hosts of one test live in one temporary directory:
//!
//! ```text
//! <tmp>/remote/              the shared remote (WSFS_REMOTE=file://<tmp>/remote)
//! <tmp>/hosts/<name>/state/  a host's WSFS_STATE_DIR
//! <tmp>/hosts/<name>/runs/   stdout/stderr of each wsfs run
//! <tmp>/...                  sources and mountpoints (`Host::path`)
//! ```
//!
//! Dropping a host runs `wsfs shutdown`, ends its daemon if it is still there,
//! and lazily unmounts what it left; dropping the last host of a test unmounts
//! anything still mounted under `<tmp>` before deleting it. Each of these
//! (a failed shutdown, a surviving daemon, a leftover mount) fails the test
//! that left it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::mounts;
use crate::process;

/// How to set up a [`Host`].
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Short unique name within the test (a directory name).
    pub name: String,
    /// `WSFS_CACHE_BYTES`, the chunk cache budget.
    pub cache_bytes: Option<u64>,
    /// `WSFS_REMOTE`; default the test's shared `file://` remote.
    pub remote: Option<String>,
    /// Extra environment for every `wsfs` run (and so the auto-started daemon).
    pub env: Vec<(String, String)>,
    /// Variables the harness would set that this host leaves unset (e.g.
    /// `WSFS_REMOTE`, to take the remote from a config file).
    pub unset: Vec<String>,
    /// The daemon also serves the CSI node plugin, on [`Host::csi_socket`].
    pub csi: bool,
    /// Keep the test on its `file://` remote even when the suite runs on S3
    /// (given to a test's first host, it holds for all its hosts): for tests
    /// that look at or damage the remote's objects as files.
    pub file_remote: bool,
    /// Every `wsfs` runs as the ordinary user [`TEST_USER`], as on a
    /// developer's laptop: a home of its own under the host's directory, no
    /// `WSFS_*` variable, its daemon where that user's defaults put it; the
    /// test's remote named in its config file (`~/.config/wsfs/config.toml`).
    pub ordinary_user: bool,
}

/// The ordinary user that [`HostConfig::ordinary_user`] hosts run as;
/// `scripts/test` creates it.
pub const TEST_USER: &str = "wsfs-tester";

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig::named("a")
    }
}

impl HostConfig {
    /// A default config for host `name`.
    pub fn named(name: &str) -> Self {
        HostConfig {
            name: name.to_string(),
            cache_bytes: None,
            remote: None,
            env: Vec::new(),
            unset: Vec::new(),
            csi: false,
            file_remote: false,
            ordinary_user: false,
        }
    }

    /// Runs the host as the ordinary user [`TEST_USER`] (see the field).
    pub fn ordinary_user(mut self) -> Self {
        self.ordinary_user = true;
        self
    }

    /// Sets `WSFS_CACHE_BYTES`.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// Sets `WSFS_REMOTE` (instead of the shared `file://` remote).
    pub fn remote(mut self, url: &str) -> Self {
        self.remote = Some(url.to_string());
        self
    }

    /// Keeps the test on its `file://` remote when the suite runs on S3 (see the field).
    pub fn file_remote(mut self) -> Self {
        self.file_remote = true;
        self
    }

    /// Makes the daemon serve CSI too (`WSFS_CSI_ENDPOINT`, `WSFS_NODE_ID` = `node-<name>`).
    pub fn csi(mut self) -> Self {
        self.csi = true;
        self
    }

    /// Uses `server` as the remote, objects under `prefix` of its bucket.
    pub fn s3(mut self, server: &crate::s3::S3Server, prefix: &str) -> Self {
        self.remote = Some(server.url(prefix));
        self.env.extend(server.env());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Leaves `key` unset although the harness would set it.
    pub fn unset(mut self, key: &str) -> Self {
        self.unset.push(key.to_string());
        self
    }
}

/// The temporary directory of one test, shared by its hosts, and the test's
/// S3 server when the suite runs on S3.
struct TestDir {
    root: PathBuf,
    s3: Option<crate::s3::S3Server>,
    _dir: tempfile::TempDir,
}

/// `WSFS_TEST_REMOTE=s3`: every test's default remote is an S3 server of its
/// own (Garage, [`crate::s3`]) instead of a `file://` directory.
pub fn suite_on_s3() -> bool {
    std::env::var("WSFS_TEST_REMOTE").is_ok_and(|r| r == "s3")
}

impl Drop for TestDir {
    /// Fails the test (unless it is failing already) when something is
    /// still mounted under its directory once its hosts are gone.
    fn drop(&mut self) {
        let left = mounts::unmount_all_under(&self.root);
        if left.is_empty() {
            return;
        }
        let report =
            format!("wsfs-tests: mounts left under the test's directory, lazily unmounted: {left:?}");
        fail_unless_failing(&report);
    }
}

/// One machine running wsfs: its own state dir and daemon, the shared remote.
pub struct Host {
    test: Arc<TestDir>,
    name: String,
    dir: PathBuf,
    state_dir: PathBuf,
    remote_url: String,
    env: Vec<(String, String)>,
    runs: AtomicU64,
    attached: Mutex<Vec<PathBuf>>,
    /// Who runs its `wsfs` commands when not root, and its home.
    user: Option<(User, PathBuf)>,
}

/// Time limit of one `wsfs` run: `WSFS_TEST_TIMEOUT_SECS`, default 600.
pub fn default_timeout() -> Duration {
    let secs = std::env::var("WSFS_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// How to build the binaries the tests run.
const BUILD_HINT: &str =
    "run scripts/test, or `cargo build --release --workspace --features wsfs-daemon/crash-points` \
                          before `cargo test --release --workspace --features wsfs-daemon/crash-points`";

/// The `wsfs` binary: `$WSFS_BIN`, else next to the running executable's
/// profile dir (`target/<profile>/deps/..`), else `$CARGO_TARGET_DIR/release`,
/// else `<workspace>/target/release`. Panics with a hint when there is none,
/// or when it, the `wsfsd` it starts or that daemon's `wsfs-holder` was built
/// from other sources than these tests (see [`built_from_these_sources`]).
pub fn wsfs_bin() -> PathBuf {
    checked_wsfs_bin().clone().unwrap_or_else(|e| panic!("{e}"))
}

/// [`wsfs_bin`], or why the tests cannot run it.
fn checked_wsfs_bin() -> &'static Result<PathBuf, String> {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let bin = find_wsfs_bin().ok_or_else(|| {
            format!(
                "wsfs binary not found (tried {:?}): {BUILD_HINT}, or set WSFS_BIN",
                bin_candidates()
            )
        })?;
        built_from_these_sources(&bin)?;
        Ok(bin)
    })
}

/// Whether `wsfs`, the daemon it starts (`$WSFS_DAEMON`, else `wsfsd` next
/// to it) and the holder next to that daemon show, in `--version`, the build
/// id of the sources these tests were built from ([`wsfs_build_id`]):
/// `cargo test` does not rebuild them, and a binary built from other sources
/// would test other code.
pub fn built_from_these_sources(wsfs: &Path) -> Result<(), String> {
    let daemon = std::env::var_os("WSFS_DAEMON")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| wsfs.with_file_name("wsfsd"));
    let holder = daemon.with_file_name("wsfs-holder");
    for bin in [wsfs, &daemon, &holder] {
        let shown = Command::new(bin)
            .arg("--version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .map_err(|e| format!("cannot run {bin:?} --version ({e}): {BUILD_HINT}"))?;
        let id = wsfs_build_id::of_version(&shown);
        if id != Some(wsfs_build_id::BUILD_ID) {
            return Err(format!(
                "{bin:?} was built from other sources than these tests (its --version shows build {id:?}, \
                 these sources are build {}): {BUILD_HINT}",
                wsfs_build_id::BUILD_ID
            ));
        }
    }
    Ok(())
}

/// [`wsfs_bin`] without the panic.
pub fn find_wsfs_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| bin_candidates().into_iter().find(|p| p.is_file()))
        .clone()
}

fn bin_candidates() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("WSFS_BIN") {
        return vec![PathBuf::from(p)];
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join("wsfs"));
        }
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(Path::new(&t).join("release/wsfs"));
    }
    if let Some(t) = option_env!("CARGO_TARGET_DIR") {
        candidates.push(Path::new(t).join("release/wsfs"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/wsfs"));
    candidates
}

impl Host {
    /// Host "a" of a new test: a fresh temporary directory and remote.
    pub fn new() -> Host {
        Host::with_config(HostConfig::default())
    }

    /// The first host of a new test, configured.
    pub fn with_config(config: HostConfig) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("wsfs-test-")
            .tempdir()
            .expect("create test temp dir");
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        fs::create_dir_all(root.join("remote")).expect("create remote dir");
        let s3 = (suite_on_s3() && !config.file_remote).then(|| crate::s3::S3Server::start(&root.join("s3")));
        let test = Arc::new(TestDir { root, s3, _dir: dir });
        Host::on(test, config)
    }

    /// Another host of the same test: own state dir, same remote (unless configured).
    pub fn peer(&self, config: HostConfig) -> Host {
        Host::on(self.test.clone(), config)
    }

    /// Another host named `name` with a default config.
    pub fn peer_named(&self, name: &str) -> Host {
        self.peer(HostConfig::named(name))
    }

    fn on(test: Arc<TestDir>, config: HostConfig) -> Host {
        let dir = test.root.join("hosts").join(&config.name);
        assert!(!dir.exists(), "host name {:?} used twice", config.name);
        fs::create_dir_all(dir.join("runs")).expect("create runs dir");
        let remote_url = match (&config.remote, &test.s3) {
            (Some(url), _) => url.clone(),
            (None, Some(server)) => server.url("remote"),
            _ => format!("file://{}", test.root.join("remote").display()),
        };
        let mut env = Vec::new();
        if config.remote.is_none() {
            env.extend(test.s3.iter().flat_map(|server| server.env()));
        }
        let (state_dir, user) = if config.ordinary_user {
            let (user, home) = ordinary_user_home(&test.root, &dir, &remote_url);
            env.push(("HOME".to_string(), home.display().to_string()));
            (home.join(".local/state/wsfs"), Some((user, home)))
        } else {
            let state_dir = dir.join("state");
            fs::create_dir_all(&state_dir).expect("create state dir");
            // No config file unless the test gives one: the machine's own
            // (/etc/wsfs/config.toml) must not change what the tests run.
            env.push(("WSFS_CONFIG".to_string(), "none".to_string()));
            env.push(("WSFS_STATE_DIR".to_string(), state_dir.display().to_string()));
            env.push(("WSFS_REMOTE".to_string(), remote_url.clone()));
            (state_dir, None)
        };
        if let Some(bytes) = config.cache_bytes {
            env.push(("WSFS_CACHE_BYTES".to_string(), bytes.to_string()));
        }
        if config.csi {
            let endpoint = format!("unix://{}", dir.join("csi.sock").display());
            env.push(("WSFS_CSI_ENDPOINT".to_string(), endpoint));
            env.push(("WSFS_NODE_ID".to_string(), format!("node-{}", config.name)));
        }
        env.extend(config.env.iter().cloned());
        env.retain(|(key, _)| !config.unset.contains(key));
        Host {
            test,
            name: config.name,
            dir,
            state_dir,
            remote_url,
            env,
            runs: AtomicU64::new(0),
            attached: Mutex::new(Vec::new()),
            user,
        }
    }

    /// The uid and gid an ordinary user's host runs as.
    pub fn user_ids(&self) -> (u32, u32) {
        let (user, _) = self.user.as_ref().expect("not an ordinary user's host");
        (user.uid, user.gid)
    }

    /// The home of an ordinary user's host (see [`HostConfig::ordinary_user`]).
    pub fn home(&self) -> &Path {
        &self.user.as_ref().expect("not an ordinary user's host").1
    }

    /// Runs `f` as this host's user would: on a thread of its own with that
    /// user's credentials (a FUSE mount of an ordinary user refuses every
    /// other user, root included); on this thread for root's hosts.
    pub fn as_user<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.user {
            None => f(),
            Some((user, _)) => std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        user.take_on_this_thread()
                            .unwrap_or_else(|e| panic!("cannot become uid {}: {e}", user.uid));
                        f()
                    })
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
        }
    }

    /// What names this host in the environment of its daemon and holder.
    fn mention(&self) -> &Path {
        self.user.as_ref().map_or(&self.state_dir, |(_, home)| home)
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test's temporary directory (shared by all hosts of the test).
    pub fn test_dir(&self) -> &Path {
        &self.test.root
    }

    /// `rel` under the test's temporary directory (not created).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.test.root.join(rel)
    }

    /// The shared remote's directory (when it is the default `file://` remote).
    pub fn remote_dir(&self) -> PathBuf {
        assert!(
            self.remote_url.starts_with("file://"),
            "this test looks at the remote's files: give its hosts HostConfig::file_remote()"
        );
        self.test.root.join("remote")
    }

    /// Files under `<remote>/<prefix>` (e.g. `packs`, `workspaces`), relative
    /// to the remote's directory, sorted; empty if the prefix does not exist.
    pub fn remote_objects(&self, prefix: &str) -> Vec<PathBuf> {
        let dir = self.remote_dir().join(prefix);
        if !dir.exists() {
            return Vec::new();
        }
        crate::compare::list_paths(&dir)
            .expect("list remote objects")
            .into_iter()
            .filter(|p| dir.join(p).is_file())
            .map(|p| Path::new(prefix).join(p))
            .collect()
    }

    /// This host's `WSFS_REMOTE`.
    pub fn remote_url(&self) -> &str {
        &self.remote_url
    }

    /// This host's `WSFS_STATE_DIR`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The daemon's socket (contract default: `$WSFS_STATE_DIR/wsfsd.sock`).
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("wsfsd.sock")
    }

    /// The CSI endpoint of a host configured with [`HostConfig::csi`].
    pub fn csi_socket(&self) -> PathBuf {
        self.dir.join("csi.sock")
    }

    /// A CSI client of this host's node plugin (starting the daemon, which
    /// is ready once both its sockets accept connections).
    pub fn csi(&self) -> crate::csi::CsiClient {
        self.status();
        crate::csi::CsiClient::connect(&self.csi_socket())
    }

    /// The last `lines` lines of the daemon's log (`$WSFS_STATE_DIR/wsfsd.log`).
    pub fn daemon_log_tail(&self, lines: usize) -> String {
        match fs::read(self.state_dir.join("wsfsd.log")) {
            Ok(data) => {
                let text = String::from_utf8_lossy(&data);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no daemon log: {e})"),
        }
    }

    /// A `wsfs` command with this host's environment, run from the host's dir.
    /// Inherited `WSFS_*` variables (except `WSFS_DAEMON`) are removed.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(wsfs_bin());
        cmd.args(args).current_dir(&self.dir).stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("WSFS_") && k != "WSFS_DAEMON" {
                cmd.env_remove(&key);
            }
        }
        if let Some((user, _)) = &self.user {
            // Where the user's own defaults put things, not the test runner's
            // (unless the host's own env says).
            for (key, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("XDG_")) {
                cmd.env_remove(key);
            }
            user.clone().switch(&mut cmd);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `wsfs args` from `cwd` (default: the host's dir) within `timeout`;
    /// `None` if it had to be killed. Output goes through files, so a daemon
    /// that inherits stdout/stderr cannot keep the run open.
    pub fn run_within<I, S>(&self, cwd: Option<&Path>, args: I, timeout: Duration) -> Option<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_run(cwd, args, timeout)
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", wsfs_bin()))
    }

    fn try_run<I, S>(&self, cwd: Option<&Path>, args: I, timeout: Duration) -> std::io::Result<Option<Output>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_run_as(None, cwd, args, timeout)
    }

    /// [`Host::try_run`] as `user` when given.
    fn try_run_as<I, S>(
        &self,
        user: Option<User>,
        cwd: Option<&Path>,
        args: I,
        timeout: Duration,
    ) -> std::io::Result<Option<Output>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        if args.first().is_some_and(|a| a == "attach") {
            if let Some(mp) = args.last() {
                self.attached.lock().unwrap().push(PathBuf::from(mp));
            }
        }
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) = (
            self.dir.join(format!("runs/{n:04}.out")),
            self.dir.join(format!("runs/{n:04}.err")),
        );
        let mut cmd = self.command(&args);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        if let Some(user) = user {
            assert!(
                self.user.is_none(),
                "an ordinary user's host runs everything as that user"
            );
            user.switch(&mut cmd);
        }
        cmd.stdout(fs::File::create(&out_path)?)
            .stderr(fs::File::create(&err_path)?);
        let Some(status) = process::run_with_timeout(&mut cmd, timeout)? else {
            return Ok(None);
        };
        Ok(Some(Output {
            status,
            stdout: fs::read(&out_path)?,
            stderr: fs::read(&err_path)?,
        }))
    }

    /// Runs `wsfs args` (panics if it exceeds [`default_timeout`]).
    pub fn wsfs<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wsfs_in(None, args)
    }

    /// Runs `wsfs args` from `cwd` (panics if it exceeds [`default_timeout`]).
    pub fn wsfs_in<I, S>(&self, cwd: Option<&Path>, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let timeout = default_timeout();
        self.run_within(cwd, &args, timeout).unwrap_or_else(|| {
            panic!(
                "`wsfs {}` on host {} did not finish within {timeout:?}\n{}",
                show_args(&args),
                self.name,
                self.log_section()
            )
        })
    }

    /// Runs `wsfs args` as another user (`uid`, primary group `gid`,
    /// supplementary `groups`), as a job of another user of a shared build
    /// host would, against this host's daemon.
    pub fn wsfs_as<I, S>(&self, uid: u32, gid: u32, groups: &[u32], args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let user = User {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        self.try_run_as(Some(user), None, &args, default_timeout())
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", wsfs_bin()))
            .unwrap_or_else(|| panic!("`wsfs {}` as uid {uid} did not finish", show_args(&args)))
    }

    /// Runs `wsfs args` with `--json` added after the verb, asserts exit 0 and
    /// returns stdout parsed as one JSON object.
    pub fn ok_json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ok_json_in(None, args)
    }

    /// [`Host::ok_json`] run from `cwd`.
    pub fn ok_json_in<I, S>(&self, cwd: Option<&Path>, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = with_json(args);
        let out = self.wsfs_in(cwd, &args);
        if !out.status.success() {
            panic!("{}", self.describe("failed", &args, &out));
        }
        let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}",
                self.describe(&format!("printed invalid JSON ({e})"), &args, &out)
            )
        });
        assert!(
            value.is_object(),
            "{}",
            self.describe("printed JSON that is not an object", &args, &out)
        );
        value
    }

    /// Runs `wsfs args` as given, asserts a non-zero exit, nothing on stdout and
    /// an `error:` line on stderr (the contract's error shape); returns stderr.
    pub fn fails<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let out = self.wsfs(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            panic!("{}", self.describe("succeeded but should fail", &args, &out));
        }
        assert!(
            out.stdout.is_empty(),
            "{}",
            self.describe("failed but printed on stdout", &args, &out)
        );
        assert!(
            stderr.contains("error:"),
            "{}",
            self.describe("failed without an `error:` message", &args, &out)
        );
        stderr
    }

    /// Runs a command that must fail, plain and with `--json` (after the
    /// verb): each time an `error:` message mentioning every one of `needles`
    /// (case-insensitively), and `state()` reads the same after as before.
    /// Returns the plain run's stderr.
    pub fn rejects<T: PartialEq + std::fmt::Debug>(
        &self,
        args: &[&str],
        needles: &[&str],
        state: impl Fn() -> T,
    ) -> String {
        let before = state();
        let mut with_json: Vec<&str> = args.to_vec();
        with_json.insert(1, "--json");
        let mut first = None;
        for run in [args, &with_json[..]] {
            let stderr = self.fails(run);
            eprintln!("wsfs {run:?}\n  -> {}", stderr.trim_end());
            let lower = stderr.to_lowercase();
            for n in needles {
                assert!(
                    lower.contains(&n.to_lowercase()),
                    "`wsfs {run:?}`: the error does not mention {n:?}:\n{stderr}"
                );
            }
            assert_eq!(state(), before, "`wsfs {run:?}` changed something");
            first.get_or_insert(stderr);
        }
        first.unwrap()
    }

    /// `wsfs persist --workspace WS --root ROOT PATHS... --json`.
    pub fn persist<S: AsRef<OsStr>>(&self, workspace: &str, root: &Path, paths: &[S]) -> Value {
        let mut args: Vec<OsString> = vec![
            "persist".into(),
            "--workspace".into(),
            workspace.into(),
            "--root".into(),
            root.into(),
        ];
        args.extend(paths.iter().map(|p| p.as_ref().to_os_string()));
        self.ok_json(args)
    }

    /// `wsfs attach --workspace WS MOUNTPOINT --json`.
    pub fn attach(&self, workspace: &str, mountpoint: &Path) -> Value {
        self.ok_json([
            OsStr::new("attach"),
            OsStr::new("--workspace"),
            OsStr::new(workspace),
            mountpoint.as_os_str(),
        ])
    }

    /// `wsfs attach --workspace WS EXTRA... MOUNTPOINT --json`, where `extra`
    /// holds view flags, e.g. `["--view", "isolated", "--sub-path", "docs"]`.
    pub fn attach_view<S: AsRef<OsStr>>(&self, workspace: &str, mountpoint: &Path, extra: &[S]) -> Value {
        let mut args: Vec<OsString> = vec!["attach".into(), "--workspace".into(), workspace.into()];
        args.extend(extra.iter().map(|a| a.as_ref().to_os_string()));
        // Last, so that cleanup knows the mountpoint (see `try_run`).
        args.push(mountpoint.into());
        self.ok_json(args)
    }

    /// `wsfs detach MOUNTPOINT --json`.
    pub fn detach(&self, mountpoint: &Path) -> Value {
        self.ok_json([OsStr::new("detach"), mountpoint.as_os_str()])
    }

    /// `wsfs detach --persist MOUNTPOINT --json`: an isolated view's changes
    /// become a layer; returns the whole reply (`{"mountpoint","persisted"}`).
    pub fn detach_persist(&self, mountpoint: &Path) -> Value {
        self.ok_json([
            OsStr::new("detach"),
            OsStr::new("--persist"),
            mountpoint.as_os_str(),
        ])
    }

    /// `$WSFS_STATE_DIR/views`: where isolated views keep their changes
    /// unless given `--upper-dir`.
    pub fn views_dir(&self) -> PathBuf {
        self.state_dir.join("views")
    }

    /// `$WSFS_STATE_DIR/mnt`: where the shared FUSE mounts of workspace versions go.
    pub fn shared_mounts_dir(&self) -> PathBuf {
        self.state_dir.join("mnt")
    }

    /// `wsfs status --json`.
    pub fn status(&self) -> Value {
        self.ok_json(["status"])
    }

    /// The view at `mountpoint` as `wsfs status --json` shows it.
    pub fn view_status(&self, mountpoint: &Path) -> Value {
        let status = self.status();
        crate::json::array_of(&status, "mounts")
            .iter()
            .find(|m| m["mountpoint"].as_str() == mountpoint.to_str())
            .cloned()
            .unwrap_or_else(|| panic!("{mountpoint:?} not in {status}"))
    }

    /// Waits (polling `status`) until the prefetch of the view at
    /// `mountpoint` has ended; returns its final progress. A prefetch of
    /// traced files only (attach's default) shows once its trace is read.
    pub fn wait_prefetched(&self, mountpoint: &Path) -> Value {
        let started = std::time::Instant::now();
        loop {
            let prefetch = self.view_status(mountpoint)["prefetch"].clone();
            match prefetch["state"].as_str() {
                None | Some("starting" | "running") => {}
                Some(_) => return prefetch,
            }
            assert!(
                started.elapsed() < default_timeout(),
                "the prefetch of {mountpoint:?} never ended (or never started): {prefetch}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The workspaces `wsfs ls [NS]` lists, by name.
    pub fn workspace_names(&self, namespace: Option<&str>) -> Vec<String> {
        let ls = self.ok_json(["ls"].into_iter().chain(namespace));
        crate::json::array_of(&ls, "workspaces")
            .iter()
            .map(|w| crate::json::str_of(w, "workspace").to_string())
            .collect()
    }

    /// How many layers `wsfs log WS` lists.
    pub fn layer_count(&self, workspace: &str) -> usize {
        crate::json::array_of(&self.log(workspace), "layers").len()
    }

    /// `wsfs log WS --json`.
    pub fn log(&self, workspace: &str) -> Value {
        self.ok_json(["log", workspace])
    }

    /// Makes the writes of this host's daemon that reach fault point `point`
    /// (`fs/src/crash.rs`) wait there until [`Pause::resume`]: a test acts
    /// while a persist or a gc run is at a known step. Needs binaries built
    /// with `--features wsfs-daemon/crash-points`, as scripts/test builds them.
    pub fn pause_at(&self, point: &str) -> Pause {
        fs::write(self.state_dir.join("pause-at"), point).expect("write pause-at");
        Pause {
            state_dir: self.state_dir.clone(),
            point: point.to_string(),
        }
    }

    /// `wsfs shutdown --json` (asserts exit 0).
    pub fn shutdown(&self) -> Value {
        self.ok_json(["shutdown"])
    }

    fn log_section(&self) -> String {
        format!(
            "--- {}/wsfsd.log (tail) ---\n{}",
            self.state_dir.display(),
            self.daemon_log_tail(40)
        )
    }

    fn describe(&self, what: &str, args: &[OsString], out: &Output) -> String {
        format!(
            "`wsfs {}` on host {} {what} ({})\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
            show_args(args),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_section()
        )
    }
}

/// Who a command runs as.
#[derive(Clone, Debug)]
struct User {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl User {
    /// The user called `name` in the password database, in its own group only.
    fn named(name: &str) -> Option<User> {
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: a valid NUL-terminated name; the entry is copied out at once.
        let entry = unsafe { libc::getpwnam(name.as_ptr()) };
        // SAFETY: getpwnam returned a valid entry or null.
        let entry = unsafe { entry.as_ref()? };
        Some(User {
            uid: entry.pw_uid,
            gid: entry.pw_gid,
            groups: vec![entry.pw_gid],
        })
    }

    /// Makes the calling thread this user, for good, with exactly its groups.
    /// Raw system calls: credentials are per thread in Linux, and libc's
    /// wrappers would change every thread of the process.
    fn take_on_this_thread(&self) -> std::io::Result<()> {
        // SAFETY: plain system calls on this thread's credentials; `groups` outlives them.
        let failed = unsafe {
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setresgid, self.gid, self.gid, self.gid) != 0
                || libc::syscall(libc::SYS_setresuid, self.uid, self.uid, self.uid) != 0
        };
        match failed {
            true => Err(std::io::Error::last_os_error()),
            false => Ok(()),
        }
    }

    /// Makes `cmd` run as this user, with exactly its groups.
    fn switch(self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure only makes system calls (in the child, before exec).
        unsafe { cmd.pre_exec(move || self.take_on_this_thread()) };
    }
}

/// Writes of a daemon waiting at a fault point ([`Host::pause_at`]); they
/// go on when this is resumed or dropped.
pub struct Pause {
    state_dir: PathBuf,
    point: String,
}

impl Pause {
    /// Waits until a write of the daemon waits at the point.
    pub fn wait_reached(&self) {
        let started = std::time::Instant::now();
        while !self.state_dir.join("paused-at").exists() {
            assert!(
                started.elapsed() < default_timeout(),
                "no write of the daemon reached {} (is wsfsd built with \
                 `--features wsfs-daemon/crash-points`? {BUILD_HINT})",
                self.point
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets the writes waiting at the point go on; later ones pass it.
    pub fn resume(self) {}
}

impl Drop for Pause {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.state_dir.join("pause-at"));
    }
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Drop for Host {
    /// Shuts the host down as a job's last step would, and fails the test
    /// (unless it is failing already) when that did not leave the host
    /// clean: `wsfs shutdown` failed, a daemon outlived it, or a mount was
    /// left. Whatever is left is cleaned up first.
    fn drop(&mut self) {
        // Binaries the tests refuse never started a daemon.
        if checked_wsfs_bin().is_err() {
            return;
        }
        let mut problems = Vec::new();
        match self.try_run(None, ["shutdown"], Duration::from_secs(60)) {
            Err(e) => problems.push(format!("cannot run `wsfs shutdown`: {e}")),
            Ok(None) => problems.push("`wsfs shutdown` timed out".to_string()),
            Ok(Some(out)) if !out.status.success() => problems.push(format!(
                "`wsfs shutdown` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
            Ok(Some(_)) => {}
        }
        // Only processes that name this host's state dir: its daemon(s).
        for pid in process::processes_mentioning(self.mention()) {
            if !process::wait_for_exit(pid, Duration::from_secs(10)) {
                problems.push(format!("pid {pid} survived shutdown; killed it"));
                process::kill_and_wait(pid, Duration::from_secs(10));
            }
        }
        let mut left = mounts::unmount_all_under(&self.state_dir);
        for mp in self.attached.lock().unwrap().iter() {
            if mounts::is_mounted(mp) {
                left.extend(mounts::unmount_all_under(mp));
            }
        }
        if !left.is_empty() {
            problems.push(format!("mounts left after shutdown, lazily unmounted: {left:?}"));
        }
        if problems.is_empty() {
            return;
        }
        let report = format!(
            "wsfs-tests: host {} was not left clean:\n  {}\n{}",
            self.name,
            problems.join("\n  "),
            self.log_section()
        );
        fail_unless_failing(&report);
    }
}

/// [`TEST_USER`] and its home under `host_dir`, which becomes the user's,
/// with a config file naming `remote`; the test's directory is opened to
/// the user, and the test's own `file://` remote given to it.
fn ordinary_user_home(test_root: &Path, host_dir: &Path, remote: &str) -> (User, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let user = User::named(TEST_USER).unwrap_or_else(|| {
        panic!(
            "there is no user {TEST_USER} for the tests that run as an ordinary user: run scripts/test, which \
             creates it, or `useradd --system {TEST_USER}`"
        )
    });
    user_reaches_the_binaries(&user);
    fs::set_permissions(test_root, fs::Permissions::from_mode(0o755)).expect("open the test dir");
    let home = host_dir.join("home");
    fs::create_dir_all(home.join(".config/wsfs")).expect("create the user's home");
    let config = format!("# written by the tests\nremote = {remote:?}\n");
    fs::write(home.join(".config/wsfs/config.toml"), config).expect("write the user's config file");
    let remote_dir = remote.strip_prefix("file://").map(PathBuf::from);
    let config_dir = home.join(".config/wsfs");
    let theirs = [
        config_dir.join("config.toml"),
        config_dir.clone(),
        home.join(".config"),
        home.clone(),
        host_dir.to_path_buf(),
        host_dir.join("runs"),
    ];
    for path in theirs.iter().chain(&remote_dir) {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).expect("give to the user");
    }
    (user, home)
}

/// Panics with what to do when `user` cannot run the binaries under test
/// (a build in a directory only root may enter, such as a clone in /root).
fn user_reaches_the_binaries(user: &User) {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let bin = wsfs_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("--version").stdout(Stdio::null()).stderr(Stdio::null());
        user.clone().switch(&mut cmd);
        match cmd.status() {
            Ok(status) if status.success() => Ok(()),
            outcome => Err(format!(
                "{TEST_USER} cannot run {} ({outcome:?}): build where every user may read, e.g. \
                 CARGO_TARGET_DIR=/var/cache/wsfs/target as .ci/run does",
                bin.display()
            )),
        }
    });
    if let Err(e) = checked {
        panic!("{e}");
    }
}

/// Fails the test with `report`, or only prints it when the test is failing
/// already (a panic while unwinding would abort every test of the binary).
fn fail_unless_failing(report: &str) {
    if std::thread::panicking() {
        eprintln!("{report}");
    } else {
        panic!("{report}");
    }
}

/// `args` with `--json` inserted after the verb (unless already present).
fn with_json<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    if !args.iter().any(|a| a == "--json") {
        args.insert(args.len().min(1), "--json".into());
    }
    args
}

fn show_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| format!("{:?}", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}
