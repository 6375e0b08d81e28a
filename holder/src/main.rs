//! wsfs-holder: starts `wsfsd` and keeps its FUSE connections open while it
//! crashes, restarts or is upgraded (see the `wsfs_holder` crate docs).
//!
//! Arguments are passed to `wsfsd` as they are. The holder takes the state
//! dir's lock (`wsfsd.lock`) for the daemon, keeps each descriptor the
//! daemon hands it, and when the daemon exits:
//! - after asking for a restart: replaces itself with the `wsfs-holder` on
//!   disk (the descriptors and the lock survive the exec), which starts the
//!   `wsfsd` on disk and hands it the descriptors;
//! - with success (`wsfs shutdown`, which unmounts everything): exits;
//! - otherwise (a crash, a kill): starts the next daemon at once, then after
//!   waits growing from 100 ms to 30 s while it keeps failing. A daemon that
//!   fails before it ever served, with nothing held, is a start-up error:
//!   the holder exits with its status.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use wsfs_api::config::{ConfigError, Flags, Key, LogFormat, Settings};
use wsfs_holder::wire::{self, Op};
use wsfs_holder::LINK_FD_ENV;

/// What a holder replacing itself passes to its new image: the lock's
/// descriptor, then `key=descriptor` for each kept one, comma-separated.
const HANDOVER_ENV: &str = "WSFS_HOLDER_HANDOVER";
/// Waits before restarting a daemon that keeps failing, by failures in a row.
const BACKOFF_MS: [u64; 9] = [0, 100, 250, 500, 1000, 2000, 5000, 10_000, 30_000];
/// A daemon that served this long before failing starts the backoff anew.
const HEALTHY: Duration = Duration::from_secs(60);
/// The descriptor number the daemon finds its end of the socket at.
const LINK_FD: RawFd = 3;

/// The daemon running now (0: none), for the signal handler.
static DAEMON_PID: AtomicI32 = AtomicI32::new(0);
/// A stop signal arrived: do not start another daemon.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// Log lines are JSON objects, like the daemon's (`log_format = "json"`).
static LOG_JSON: AtomicBool = AtomicBool::new(false);

extern "C" fn forward_signal(signal: libc::c_int) {
    STOPPING.store(true, Ordering::SeqCst);
    let pid = DAEMON_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Writes a line to the log (stderr: the daemon's `wsfsd.log` when the CLI
/// started this holder), as text or, like the daemon's, as a JSON object.
fn log(message: &str) {
    let pid = std::process::id();
    if LOG_JSON.load(Ordering::Relaxed) {
        let line = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "level": "INFO",
            "fields": { "message": message },
            "target": "wsfs_holder",
            "pid": pid,
        });
        eprintln!("{line}");
    } else {
        eprintln!(
            "{} wsfs-holder[{pid}]: {message}",
            humantime::format_rfc3339_millis(SystemTime::now())
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "wsfs-holder: starts wsfsd (next to it, or the daemon setting: WSFS_DAEMON, docs/config.md) with the given arguments and keeps its \
             FUSE connections open across its crashes, restarts and upgrades.\n\nUsage: wsfs-holder [WSFSD \
             ARGUMENTS]...\n\nEnds when wsfsd stops after `wsfs shutdown` or SIGTERM (forwarded to it)."
        );
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("wsfs-holder {}", wsfs_build_id::VERSION);
        return ExitCode::SUCCESS;
    }
    wsfs_api::paths::private_umask();
    let settings = match load_settings(&args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("wsfs-holder: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    LOG_JSON.store(settings.log_format() == LogFormat::Json, Ordering::Relaxed);
    match Holder::start(args, &settings).and_then(Holder::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsfs-holder: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How a daemon's run ended.
enum Ended {
    /// It asked to be replaced by the binaries on disk.
    Restart,
    /// It stopped on purpose.
    Stopped,
    /// It crashed, was killed or failed.
    Failed(ExitStatus),
}

struct Holder {
    /// This holder's binary, as found at start (an upgrade replaces the file).
    exe: PathBuf,
    /// `wsfsd`.
    daemon: PathBuf,
    /// Arguments for every daemon (without `--notify-ready`).
    args: Vec<OsString>,
    /// The first daemon says "ready" on this holder's stdout.
    notify_ready: bool,
    /// The state dir's lock, held for the daemons.
    lock: File,
    /// What the daemons handed over, by key.
    held: BTreeMap<String, OwnedFd>,
}

impl Holder {
    fn start(args: Vec<OsString>, settings: &Settings) -> io::Result<Holder> {
        let exe = std::env::current_exe()?;
        let daemon = daemon_binary(&exe, settings.text(Key::Daemon));
        let notify_ready = args.iter().any(|a| a == "--notify-ready");
        let args = args.into_iter().filter(|a| a != "--notify-ready").collect();
        let (lock, held) = match std::env::var_os(HANDOVER_ENV) {
            Some(text) => {
                std::env::remove_var(HANDOVER_ENV);
                taken_over(&text)?
            }
            None => (
                wsfs_api::paths::lock_state_dir(&settings.state_dir(), &settings.socket())?,
                BTreeMap::new(),
            ),
        };
        install_signal_handlers();
        Ok(Holder {
            exe,
            daemon,
            args,
            notify_ready,
            lock,
            held,
        })
    }

    fn run(mut self) -> io::Result<ExitCode> {
        let mut failures = 0usize;
        let mut first = true;
        loop {
            let started = Instant::now();
            let (ended, served) = self.run_daemon(first)?;
            first = false;
            match ended {
                Ended::Restart => {
                    let error = self.replace_self();
                    log(&format!(
                        "cannot replace this holder ({error}): starting the new daemon from here"
                    ));
                }
                Ended::Stopped => {
                    log("wsfsd stopped");
                    return Ok(ExitCode::SUCCESS);
                }
                Ended::Failed(status) if STOPPING.load(Ordering::SeqCst) => {
                    log(&format!("wsfsd ended ({status}) after a stop signal"));
                    return Ok(ExitCode::FAILURE);
                }
                Ended::Failed(status) if !served && self.held.is_empty() => {
                    log(&format!("wsfsd failed to start ({status})"));
                    return Ok(exit_code(status));
                }
                Ended::Failed(status) => {
                    if started.elapsed() >= HEALTHY {
                        failures = 0;
                    }
                    let wait = Duration::from_millis(BACKOFF_MS[failures.min(BACKOFF_MS.len() - 1)]);
                    failures += 1;
                    log(&format!(
                        "wsfsd ended ({status}); starting it again in {wait:?} with {} mounts held",
                        self.held.len()
                    ));
                    std::thread::sleep(wait);
                    if STOPPING.load(Ordering::SeqCst) {
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
    }

    /// Starts a daemon and serves its requests until it is gone; returns
    /// how it ended and whether it ever served.
    fn run_daemon(&mut self, first: bool) -> io::Result<(Ended, bool)> {
        let (mine, theirs) = wire::pair()?;
        let mut child = self.spawn(first, theirs)?;
        DAEMON_PID.store(child.id() as i32, Ordering::SeqCst);
        if first && self.notify_ready {
            // The daemon has the starting CLI's pipe now; let go of it.
            release_stdout();
        }
        let (restart, served) = self.serve(mine.as_fd(), &child);
        let status = wait(&mut child)?;
        DAEMON_PID.store(0, Ordering::SeqCst);
        let ended = match status {
            _ if restart => Ended::Restart,
            s if s.success() => Ended::Stopped,
            s => Ended::Failed(s),
        };
        Ok((ended, served))
    }

    fn spawn(&self, first: bool, link: OwnedFd) -> io::Result<Child> {
        let mut command = Command::new(&self.daemon);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .env(LINK_FD_ENV, LINK_FD.to_string());
        if first && self.notify_ready {
            command.arg("--notify-ready");
        } else {
            command.stdout(Stdio::null());
        }
        let raw = link.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let rc = if raw == LINK_FD {
                    libc::fcntl(raw, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, LINK_FD)
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot start {} ({e}): set WSFS_DAEMON to its path",
                    self.daemon.display()
                ),
            )
        })
    }

    /// Answers the daemon until it closes its end; returns whether it asked
    /// for a restart and whether it said it serves.
    fn serve(&mut self, sock: std::os::fd::BorrowedFd<'_>, child: &Child) -> (bool, bool) {
        let (mut restart, mut served) = (false, false);
        loop {
            let message = match wire::recv(sock) {
                Ok(Some(m)) => m,
                Ok(None) => return (restart, served),
                Err(wire::WireError::Io(e)) => {
                    log(&format!("reading from wsfsd: {e}"));
                    return (restart, served);
                }
                Err(e) => {
                    log(&format!("ignoring a message from wsfsd: {e}"));
                    continue;
                }
            };
            match message.op {
                Op::Hold => match message.fd {
                    Some(fd) => {
                        self.held.insert(message.key, fd);
                    }
                    None => log("ignoring a hold without descriptor"),
                },
                Op::Release => {
                    self.held.remove(&message.key);
                }
                Op::Take => {
                    let sent = self
                        .held
                        .iter()
                        .try_for_each(|(key, fd)| wire::send(sock, Op::Held, key, Some(fd.as_fd())))
                        .and_then(|()| wire::send(sock, Op::End, "", None));
                    match sent {
                        Ok(()) if !self.held.is_empty() => log(&format!(
                            "handed {} mounts to wsfsd {}",
                            self.held.len(),
                            child.id()
                        )),
                        Ok(()) => {}
                        Err(e) => log(&format!("handing the mounts over failed: {e}")),
                    }
                }
                Op::Ready => {
                    served = true;
                    log(&format!("wsfsd {} serves", child.id()));
                }
                Op::Restart => restart = true,
                Op::Held | Op::End => log("ignoring a message only a holder sends"),
            }
        }
    }

    /// Execs the holder binary on disk with the lock and every kept
    /// descriptor inherited; returns only when that failed.
    fn replace_self(&self) -> io::Error {
        let mut handover = self.lock.as_raw_fd().to_string();
        for (key, fd) in &self.held {
            handover.push_str(&format!(",{key}={}", fd.as_raw_fd()));
        }
        let inherited: Vec<RawFd> = std::iter::once(self.lock.as_raw_fd())
            .chain(self.held.values().map(AsRawFd::as_raw_fd))
            .collect();
        for &fd in &inherited {
            set_cloexec(fd, false);
        }
        log(&format!(
            "replacing this holder by {} ({} mounts held)",
            self.exe.display(),
            self.held.len()
        ));
        // `args` has no --notify-ready: only the first daemon announces itself.
        let error = Command::new(&self.exe)
            .args(&self.args)
            .env(HANDOVER_ENV, handover)
            .exec();
        for &fd in &inherited {
            set_cloexec(fd, true);
        }
        error
    }
}

/// The `daemon` setting (`WSFS_DAEMON`), else `wsfsd` next to this binary, else `wsfsd` on PATH.
fn daemon_binary(exe: &Path, setting: Option<&str>) -> PathBuf {
    if let Some(path) = setting {
        return PathBuf::from(path);
    }
    exe.parent()
        .map(|dir| dir.join("wsfsd"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("wsfsd"))
}

/// The settings of the daemon's arguments, the environment and the config
/// file. A holder that replaced itself holds the mounts: a config file broken
/// since it started must not end it, so it then goes on without the file
/// (the daemons it starts fail, and it retries, until the file is fixed).
fn load_settings(args: &[OsString]) -> Result<Settings, ConfigError> {
    let flags = Flags::new(config_arg(args));
    match Settings::load(&flags) {
        Err(e) if std::env::var_os(HANDOVER_ENV).is_some() => {
            log(&format!("{e}: keeping the mounts, reading no config file"));
            Settings::load(&Flags::new(Some(PathBuf::from("none"))))
        }
        loaded => loaded,
    }
}

/// The config file the daemon's arguments name (`--config FILE`), which the
/// holder reads too.
fn config_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// The lock and descriptors a replaced holder left to this image.
fn taken_over(text: &OsStr) -> io::Result<(File, BTreeMap<String, OwnedFd>)> {
    let bad = || io::Error::other(format!("{HANDOVER_ENV} is malformed: {text:?}"));
    let text = text.to_str().ok_or_else(bad)?;
    let mut parts = text.split(',');
    let lock: RawFd = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let mut held = BTreeMap::new();
    for part in parts {
        let (key, fd) = part.split_once('=').ok_or_else(bad)?;
        let fd: RawFd = fd.parse().map_err(|_| bad())?;
        set_cloexec(fd, true);
        // SAFETY: the replaced holder left this descriptor open for this image to own.
        held.insert(key.to_string(), unsafe { OwnedFd::from_raw_fd(fd) });
    }
    set_cloexec(lock, true);
    // SAFETY: as above, for the lock.
    Ok((unsafe { File::from_raw_fd(lock) }, held))
}

fn set_cloexec(fd: RawFd, on: bool) {
    let flags = if on { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags) };
}

fn install_signal_handlers() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only touches atomics and calls kill.
        unsafe {
            libc::signal(
                signal,
                forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// Points stdout at /dev/null.
fn release_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: both descriptors are valid; dup2 replaces fd 1 atomically.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Waits for the child, through signals.
fn wait(child: &mut Child) -> io::Result<ExitStatus> {
    loop {
        match child.wait() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn exit_code(status: ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(128u8.saturating_add(status.signal().unwrap_or(0) as u8)),
    }
}
