//! Reaching the daemon: connect to its socket, starting it when absent.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use wsfs_api::config::{Key, Settings, Source, CONFIG_ENV};
use wsfs_api::{connect, paths, pb, Client};

/// How long a starting daemon may take to open its store and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `shutdown` waits for the daemon to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where this CLI's daemon lives, and how to start it.
#[derive(Clone)]
pub struct Daemon {
    /// The state dir.
    pub state_dir: PathBuf,
    /// The socket.
    pub socket: PathBuf,
    /// The config file a daemon started by this CLI reads (`WSFS_CONFIG`).
    config_file: PathBuf,
    /// The remote this CLI was told to use, and by what; `None` for the default.
    remote: Option<(String, Source)>,
    /// The `daemon` setting: the wsfsd its holder starts.
    daemon_binary: Option<PathBuf>,
}

impl Daemon {
    /// The daemon of the `state_dir` and `socket` settings.
    pub fn new(settings: &Settings) -> Daemon {
        let state_dir = settings.state_dir();
        let remote = settings.value(Key::Remote);
        Daemon {
            socket: settings.socket(),
            config_file: settings.config_env_value(),
            remote: (remote.source != Source::Default)
                .then(|| (settings.remote(&state_dir), remote.source.clone())),
            daemon_binary: settings.text(Key::Daemon).map(PathBuf::from),
            state_dir,
        }
    }

    /// Connects to the running daemon, if any.
    pub async fn connect_running(&self) -> Option<Client> {
        connect(&self.socket).await.ok()
    }

    /// Connects, starting the daemon first when none answers.
    pub async fn connect_or_start(&self) -> Result<Client> {
        if let Some(client) = self.connect_running().await {
            return self.check_remote(client).await;
        }
        paths::create_state_dir(&self.state_dir)
            .with_context(|| format!("cannot create state dir {}", self.state_dir.display()))?;
        // One starter at a time: others wait here, then find it running.
        let _guard = lock_blocking(&self.state_dir.join("wsfsd.start.lock"), START_TIMEOUT)?;
        if let Some(client) = self.connect_running().await {
            return Ok(client);
        }
        if self.is_locked()? {
            if let Some(served) = paths::served_socket(&self.state_dir).filter(|s| *s != self.socket) {
                bail!(
                    "the daemon of state dir {} listens on {}, not on {}: set WSFS_SOCKET={} (a login \
                     session's XDG_RUNTIME_DIR moves an ordinary user's default socket there), or stop it \
                     with `WSFS_SOCKET={} wsfs shutdown`",
                    self.state_dir.display(),
                    served.display(),
                    self.socket.display(),
                    served.display(),
                    served.display()
                );
            }
            // A holder is starting its next daemon (after a crash or for a
            // restart): wait for it rather than start another.
            return self.wait_for_socket().await;
        }
        self.start()?;
        connect(&self.socket).await.with_context(|| {
            format!(
                "the daemon started but its socket {} does not answer",
                self.socket.display()
            )
        })
    }

    /// Whether some process holds the state dir's lock (a daemon, or the
    /// holder of one).
    fn is_locked(&self) -> Result<bool> {
        let path = wsfs_api::paths::lock_file(&self.state_dir);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        // SAFETY: a valid descriptor; the lock, if taken, goes with `file`.
        Ok(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0)
    }

    /// Connects once the daemon of a live holder answers.
    async fn wait_for_socket(&self) -> Result<Client> {
        let started = std::time::Instant::now();
        loop {
            if let Some(client) = self.connect_running().await {
                return Ok(client);
            }
            if started.elapsed() > START_TIMEOUT || !self.is_locked()? {
                bail!(
                    "the daemon of state dir {} is not answering on {}: see {}",
                    self.state_dir.display(),
                    self.socket.display(),
                    wsfs_api::paths::log_file(&self.state_dir).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the daemon under its holder (`wsfs-holder`, which keeps the
    /// mounts across the daemon's crashes and restarts) in its own session,
    /// and waits until it says "ready".
    fn start(&self) -> Result<()> {
        let log_path = wsfs_api::paths::log_file(&self.state_dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let holder = holder_binary(self.daemon_binary.as_deref());
        let mut command = Command::new(&holder);
        // The daemon reads the settings this CLI read: the same environment
        // and config file (a `--config` given to this CLI included).
        command
            .arg("--notify-ready")
            .env(Key::StateDir.setting().env, &self.state_dir)
            .env(Key::Socket.setting().env, &self.socket)
            .env(CONFIG_ENV, &self.config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe; the daemon must not die with this terminal.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start the daemon's holder {holder:?}: install wsfs-holder next to wsfsd (the daemon setting, WSFS_DAEMON) or on PATH"
            )
        })?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) if line.trim() == "ready" => Ok(()),
            Ok(_) => {
                let _ = child.wait();
                Err(anyhow!("the daemon failed to start: {}", last_error(&log_path)))
            }
            Err(_) => bail!(
                "the daemon did not become ready within {}s: see {}",
                START_TIMEOUT.as_secs(),
                log_path.display()
            ),
        }
    }

    /// A running daemon keeps the remote it was started with: refuse to let a
    /// command configured with another remote silently use it.
    async fn check_remote(&self, mut client: Client) -> Result<Client> {
        let Some((wanted, source)) = &self.remote else {
            return Ok(client);
        };
        let serving = client.status(pb::StatusRequest {}).await?.into_inner().remote;
        if shown_url(&serving) == shown_url(wanted) {
            return Ok(client);
        }
        bail!(
            "the daemon of state dir {} serves remote {serving}, but remote is {} ({source}): \
             run `wsfs shutdown` first, or use another state dir (WSFS_STATE_DIR)",
            self.state_dir.display(),
            shown_url(wanted)
        )
    }

    /// Waits until the daemon of this state dir has exited (its lock is free).
    pub fn wait_stopped(&self) -> Result<()> {
        lock_blocking(&wsfs_api::paths::lock_file(&self.state_dir), STOP_TIMEOUT).map(drop)
    }
}

/// A URL as the daemon shows it: no credentials, no query, lower-case scheme
/// and host, no trailing `/`.
fn shown_url(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(u, _)| u).trim_end_matches('/');
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = if path.is_empty() {
        String::new()
    } else {
        format!("/{path}")
    };
    format!(
        "{}://{}{path}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// `wsfs-holder` next to the daemon (the `daemon` setting, which the holder
/// starts too), else next to this executable, else on PATH.
fn holder_binary(daemon: Option<&Path>) -> PathBuf {
    let this = std::env::current_exe().ok();
    [daemon.map(Path::to_path_buf), this]
        .into_iter()
        .flatten()
        .filter_map(|exe| Some(exe.parent()?.join("wsfs-holder")))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("wsfs-holder"))
}

/// The daemon's last error line in its log.
fn last_error(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find_map(|l| {
                    ["wsfsd: error:", "wsfs-holder: error:"]
                        .iter()
                        .find_map(|prefix| l.strip_prefix(prefix))
                })
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| format!("see {}", log.display()))
}

/// Takes an exclusive lock on `path`, waiting at most `timeout`.
fn lock_blocking(path: &Path, timeout: Duration) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // The waiting thread owns a duplicate descriptor: flock locks belong to
    // the open file, so the lock it takes is held by `file` too.
    let waiter = file.try_clone()?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: `waiter` is a valid descriptor owned by this thread.
        let rc = unsafe { libc::flock(waiter.as_raw_fd(), libc::LOCK_EX) };
        let _ = tx.send(if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        });
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(())) => Ok(file),
        Ok(Err(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        Err(_) => bail!(
            "timed out after {}s waiting for {}",
            timeout.as_secs(),
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::shown_url;

    #[test]
    fn urls_compare_as_the_daemon_shows_them() {
        assert_eq!(shown_url("s3://KEY:SECRET@Bucket/p/?x=1"), "s3://bucket/p");
        assert_eq!(shown_url("file:///tmp/r/"), shown_url("file:///tmp/r"));
        assert_eq!(shown_url("memory:"), "memory:");
        assert_ne!(shown_url("s3://a/p"), shown_url("s3://b/p"));
    }
}
