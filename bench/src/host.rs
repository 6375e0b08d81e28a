//! A wsfs "host": its own state dir (so its own daemon and cache), a remote
//! shared with the other hosts, and the CLI run with `--json`. Dropping a host
//! shuts its daemon down; its directory stays until the bench ends (see
//! [`crate::measure::new_dir`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the `wsfs`, `wsfsd` and `wsfs-holder` binaries are (the CLI starts
/// the holder found next to `WSFS_DAEMON`).
pub struct Bins {
    wsfs: PathBuf,
    wsfsd: PathBuf,
    holder: PathBuf,
}

impl Bins {
    /// The binaries in `dir`, or next to this executable.
    pub fn find(dir: Option<&Path>) -> Result<Bins> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_exe()?
                .parent()
                .context("no executable dir")?
                .to_path_buf(),
        };
        let bins = Bins {
            wsfs: dir.join("wsfs"),
            wsfsd: dir.join("wsfsd"),
            holder: dir.join("wsfs-holder"),
        };
        for bin in bins.paths() {
            if !bin.is_file() {
                bail!(
                    "{} not found: build the workspace or pass --bin-dir",
                    bin.display()
                );
            }
        }
        Ok(bins)
    }

    /// The three binaries.
    pub fn paths(&self) -> [&Path; 3] {
        [&self.wsfs, &self.wsfsd, &self.holder]
    }
}

/// One wsfs host; see the module docs.
pub struct Host {
    dir: PathBuf,
    wsfs: PathBuf,
    wsfsd: PathBuf,
    remote: String,
    env: Vec<(String, String)>,
}

impl Host {
    /// A host whose state lives in the new, empty directory `dir`, storing
    /// to the `file://` remote `remote`. Its daemon starts on the first command.
    pub fn fresh(bins: &Bins, dir: PathBuf, remote: &Path) -> Result<Host> {
        std::fs::create_dir_all(remote)?;
        Ok(Host::on(
            bins,
            dir,
            format!("file://{}", remote.display()),
            Vec::new(),
        ))
    }

    /// A host in `dir` storing to the remote URL `remote` (`WSFS_REMOTE`),
    /// with `env` added to every command's (and so the daemon's) environment.
    pub fn on(bins: &Bins, dir: PathBuf, remote: String, env: Vec<(String, String)>) -> Host {
        Host {
            dir,
            wsfs: bins.wsfs.clone(),
            wsfsd: bins.wsfsd.clone(),
            remote,
            env,
        }
    }

    /// Where `attach` mounts.
    pub fn mountpoint(&self) -> PathBuf {
        self.path("view")
    }

    /// `name` in this host's directory: where other views mount, or scratch
    /// files go.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The host's `WSFS_STATE_DIR`.
    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    /// Runs `wsfs ARGS --json` and parses its output.
    pub fn cli<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Value> {
        Ok(self.cli_with_log(args)?.0)
    }

    /// Runs `wsfs ARGS --json`; returns its parsed output and its stderr
    /// (where `wsfs run --json` logs the steps).
    pub fn cli_with_log<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<(Value, String)> {
        let out = Command::new(&self.wsfs)
            .args(args)
            .arg("--json")
            .env("WSFS_STATE_DIR", self.state_dir())
            .env("WSFS_REMOTE", &self.remote)
            .env("WSFS_DAEMON", &self.wsfsd)
            // The machine's config file must not change what is measured.
            .env("WSFS_CONFIG", "none")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("WSFS_SOCKET")
            .output()
            .with_context(|| format!("cannot run {}", self.wsfs.display()))?;
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            bail!(
                "wsfs {} failed: {}\n{}",
                shown.join(" "),
                log.trim(),
                stdout.trim()
            );
        }
        let value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("wsfs {}: output is not JSON", shown.join(" ")))?;
        Ok((value, log))
    }

    /// Persists the whole tree `root` to `workspace`.
    pub fn persist(&self, workspace: &str, root: &Path) -> Result<Value> {
        self.cli(&[
            OsStr::new("persist"),
            "--workspace".as_ref(),
            workspace.as_ref(),
            "--root".as_ref(),
            root.as_ref(),
            ".".as_ref(),
        ])
    }

    /// Attaches `workspace` at [`Host::mountpoint`].
    pub fn attach(&self, workspace: &str) -> Result<PathBuf> {
        self.attach_with::<&str>(workspace, &[])
    }

    /// Attaches `workspace` at [`Host::mountpoint`] with the extra `attach` flags `extra`.
    pub fn attach_with<S: AsRef<OsStr>>(&self, workspace: &str, extra: &[S]) -> Result<PathBuf> {
        let mountpoint = self.mountpoint();
        let mut args = vec![
            OsStr::new("attach"),
            "--workspace".as_ref(),
            workspace.as_ref(),
            mountpoint.as_ref(),
        ];
        args.extend(extra.iter().map(AsRef::as_ref));
        self.cli(&args)?;
        Ok(mountpoint)
    }

    /// Attaches a view of `workspace` at `mountpoint`: `view` is `read-only`
    /// or `isolated` (`None`: the CLI's default, read-only).
    pub fn attach_view(&self, workspace: &str, mountpoint: &Path, view: Option<&str>) -> Result<Value> {
        let mut args = vec![
            OsStr::new("attach"),
            "--workspace".as_ref(),
            workspace.as_ref(),
            mountpoint.as_ref(),
        ];
        if let Some(view) = view {
            args.extend([OsStr::new("--view"), view.as_ref()]);
        }
        self.cli(&args)
    }

    /// Detaches the view at `mountpoint`; `persist`: an isolated view's
    /// changes first become a layer of its workspace.
    pub fn detach(&self, mountpoint: &Path, persist: bool) -> Result<Value> {
        let mut args = vec![OsStr::new("detach"), mountpoint.as_ref()];
        if persist {
            args.push("--persist".as_ref());
        }
        self.cli(&args)
    }

    /// The daemon's counters.
    pub fn status(&self) -> Result<Value> {
        self.cli(&["status"])
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Err(e) = self.cli(&["shutdown"]) {
            eprintln!("warning: {e:#}");
        }
        let left = mounts_under(&self.dir);
        if !left.is_empty() {
            eprintln!("warning: still mounted after shutdown: {}", left.join(", "));
        }
    }
}

/// A counter of a JSON reply.
pub fn field(value: &Value, key: &str) -> Result<u64> {
    value[key]
        .as_u64()
        .with_context(|| format!("no number {key:?} in {value}"))
}

/// `after[key] - before[key]` of two `wsfs status` replies.
pub fn counter_delta(before: &Value, after: &Value, key: &str) -> Result<u64> {
    Ok(field(after, key)?.saturating_sub(field(before, key)?))
}

/// Mount points in /proc/mounts at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .map(|point| point.replace("\\040", " "))
        .filter(|point| point == &prefix || point.starts_with(&format!("{prefix}/")))
        .collect()
}
