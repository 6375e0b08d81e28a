//! Steps run in mount namespaces of their own: the task's working directory
//! at `/workspace`, and only the workspaces the step may see, at their mount
//! paths; wsfs's own directories hidden; as the step's user. Nothing of this
//! is visible on the host or to other steps.
//!
//! Root's steps get a mount namespace over the host's root. An ordinary
//! user's get a user namespace first, where the user's ids map to themselves
//! (which lets the step's setup mount, and gives the step no right the user
//! lacks), and a root of their own: a read-only tmpfs showing the host's
//! top-level entries, and the directories mounted over that the host lacks
//! (the user cannot create `/workspace` on the host).

use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::ptr::null;

use anyhow::{bail, Context, Result};

/// A directory of the host shown at `target` inside the step's namespace.
#[derive(Clone, Debug)]
pub struct Mount {
    /// The host directory (a wsfs view or the task's working directory).
    pub source: PathBuf,
    /// Where the step sees it (absolute).
    pub target: String,
    /// Writes fail with `EROFS`.
    pub read_only: bool,
}

/// The mounts of one step, parents before children.
#[derive(Clone, Debug, Default)]
pub struct Mounts(Vec<Mount>);

impl Mounts {
    /// Orders `mounts` so that a mount never hides a later one.
    pub fn new(mut mounts: Vec<Mount>) -> Mounts {
        mounts.sort_by_key(|m| Path::new(&m.target).components().count());
        Mounts(mounts)
    }

    /// These mounts and `mount`.
    pub fn with(&self, mount: Mount) -> Mounts {
        Mounts::new(self.0.iter().cloned().chain([mount]).collect())
    }

    /// The mounts, parents first.
    pub fn iter(&self) -> impl Iterator<Item = &Mount> {
        self.0.iter()
    }

    /// The host path of `path` as the step sees it: through the deepest mount
    /// holding it, else the host's own path.
    pub fn host_path(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        self.0
            .iter()
            .rev()
            .find_map(|m| path.strip_prefix(&m.target).ok().map(|rest| m.source.join(rest)))
            .unwrap_or_else(|| path.to_path_buf())
    }
}

/// Paths of the host no step sees: wsfs's state directory (its database,
/// frame cache, the runs' views and working directories), its socket and a
/// `file://` remote. Canonical, none inside another.
#[derive(Clone, Debug, Default)]
pub struct Hidden(Vec<PathBuf>);

impl Hidden {
    /// The existing ones of `paths`, canonical, without those inside others.
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Hidden {
        let mut paths: Vec<PathBuf> = paths.into_iter().filter_map(|p| p.canonicalize().ok()).collect();
        paths.sort();
        let mut hidden: Vec<PathBuf> = Vec::new();
        for path in paths {
            if !hidden.iter().any(|h| path.starts_with(h)) {
                hidden.push(path);
            }
        }
        Hidden(hidden)
    }

    /// The hidden path holding `path` (as the step sees it), if any.
    fn holding(&self, path: &str) -> Option<&Path> {
        self.0
            .iter()
            .map(PathBuf::as_path)
            .find(|h| Path::new(path).starts_with(h))
    }

    /// What covers each hidden path in the namespace of a step with `mounts`:
    /// an error when the step would see something inside a hidden path;
    /// paths under a mount are skipped (the mount hides them already).
    fn covers(&self, mounts: &Mounts, workdir: &str) -> Result<Vec<Cover>> {
        for mount in mounts.iter() {
            if let Some(hidden) = self.holding(&mount.target) {
                bail!(
                    "mountPath {} lies in {}, which wsfs hides from steps: give another mountPath",
                    mount.target,
                    hidden.display()
                );
            }
        }
        if let Some(hidden) = self.holding(workdir) {
            bail!(
                "workingDir {workdir} lies in {}, which wsfs hides from steps: give another workingDir",
                hidden.display()
            );
        }
        self.0
            .iter()
            .filter(|h| !mounts.iter().any(|m| h.starts_with(&m.target)))
            .map(|h| {
                let path = c_string(h.as_os_str().as_bytes(), "a hidden path")?;
                Ok(if h.is_dir() {
                    Cover::Directory(path)
                } else {
                    Cover::File(path)
                })
            })
            .collect()
    }
}

/// How a hidden path is covered in a step's namespace.
#[derive(Debug)]
enum Cover {
    /// An empty read-only tmpfs over the directory.
    Directory(CString),
    /// `/dev/null` bound over the file (a socket no longer answers).
    File(CString),
}

/// The user and group a step switches to after its mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The group id (also the only supplementary group).
    pub gid: u32,
}

/// What the child does between fork and exec, prepared before the fork so
/// that the child only makes system calls (no allocation after fork).
struct Prepared {
    /// An ordinary user's step: its user namespace and root.
    user: Option<(Maps, NewRoot)>,
    /// Source, target, and the flags of a read-only remount (none: writable).
    binds: Vec<(CString, CString, Option<libc::c_ulong>)>,
    covers: Vec<Cover>,
    ids: Option<Ids>,
    workdir: CString,
}

fn c_string(bytes: &[u8], what: &str) -> Result<CString> {
    CString::new(bytes).with_context(|| format!("{what} holds a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The flags of a read-only remount of a bind of `source`: with the
/// `nosuid`, `nodev` and `noexec` of the mount holding it, which a remount
/// must keep (in a user namespace, the kernel locks them: EPERM).
fn read_only_flags(source: &CStr) -> Result<libc::c_ulong> {
    // SAFETY: an all-zero statvfs is a valid value for statvfs to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs to fill.
    check(unsafe { libc::statvfs(source.as_ptr(), &mut stat) })
        .with_context(|| format!("cannot read the mount flags of {source:?}"))?;
    let kept = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
    ];
    Ok(kept.iter().filter(|(st, _)| stat.f_flag & st != 0).fold(
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
        |flags, (_, ms)| flags | ms,
    ))
}

/// The user namespace of an ordinary user's step: its ids mapped to themselves.
struct Maps {
    uid_map: CString,
    gid_map: CString,
}

impl Maps {
    fn of(ids: Ids) -> Maps {
        let map = |id: u32| CString::new(format!("{id} {id} 1")).expect("digits and spaces");
        Maps {
            uid_map: map(ids.uid),
            gid_map: map(ids.gid),
        }
    }

    /// Enters a new user namespace and mount namespace and writes the maps
    /// (`setgroups` denied first, as the kernel requires of an unprivileged
    /// gid map). Async-signal-safe: only system calls.
    fn enter(&self) -> io::Result<()> {
        // SAFETY: system calls on NUL-terminated strings.
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })?;
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", self.uid_map.as_bytes())?;
        write_file(c"/proc/self/gid_map", self.gid_map.as_bytes())
    }
}

/// Writes `bytes` to the existing file `path` in one write. Async-signal-safe.
fn write_file(path: &CStr, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: system calls on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let error = io::Error::last_os_error();
        libc::close(fd);
        match written == bytes.len() as isize {
            true => Ok(()),
            false => Err(error),
        }
    }
}

/// The root of an ordinary user's step: the host's top-level entries, and
/// top-level directories of its own for what is mounted over (see the module).
#[derive(Clone, Debug)]
pub struct UserRoot {
    ids: Ids,
    /// An empty directory of the run, where the step's root is made.
    at: PathBuf,
    /// Top-level names whose directories are the step root's own.
    own: BTreeSet<Vec<u8>>,
}

/// The first component of the absolute path `path`.
fn top(path: &str) -> Option<&[u8]> {
    match Path::new(path).components().nth(1) {
        Some(Component::Normal(name)) => Some(name.as_bytes()),
        _ => None,
    }
}

impl UserRoot {
    /// The root of a step of user `ids` with `mounts` and `workdir`, made at
    /// `at` (an empty directory, created here): the top-level directories
    /// of `ours` (wsfs's mount points), and of targets and the working
    /// directory the host lacks, are its own.
    pub fn new(ids: Ids, at: PathBuf, mounts: &Mounts, ours: &[&str], workdir: &str) -> Result<UserRoot> {
        std::fs::create_dir_all(&at).with_context(|| format!("cannot create {}", at.display()))?;
        let host_lacks = mounts
            .iter()
            .map(|m| m.target.as_str())
            .chain([workdir])
            .filter_map(top)
            .filter(|name| !Path::new("/").join(std::ffi::OsStr::from_bytes(name)).exists());
        let own = ours
            .iter()
            .filter_map(|p| top(p))
            .chain(host_lacks)
            .map(<[u8]>::to_vec)
            .collect();
        Ok(UserRoot { ids, at, own })
    }

    /// Whether `target` lies in a directory of the step root's own, which
    /// needs no directory on the host.
    pub fn holds(&self, target: &str) -> bool {
        top(target).is_some_and(|name| self.own.contains(name))
    }

    /// What the child does to make it, read from the host before the fork.
    fn prepare(&self, mounts: &Mounts, workdir: &str) -> Result<NewRoot> {
        let path = |path: &Path| c_string(path.as_os_str().as_bytes(), "a path");
        let automounts = automount_points();
        let mut entries = Vec::new();
        for entry in std::fs::read_dir("/").context("cannot list /")? {
            let host = entry.context("cannot list /")?.path();
            let name = host.file_name().unwrap_or_default();
            // Binding an automount point would mount it (or wait for its
            // device): the step does without it, as bubblewrap's do.
            if self.own.contains(name.as_bytes()) || automounts.contains(&host) {
                continue;
            }
            let meta = host
                .symlink_metadata()
                .with_context(|| format!("cannot read {}", host.display()))?;
            let old_root = Path::new(std::ffi::OsStr::from_bytes(OLD_ROOT.to_bytes()));
            let (old, new) = (path(&old_root.join(name))?, path(&host)?);
            entries.push(if meta.is_dir() {
                Entry::Directory(old, new)
            } else if meta.is_symlink() {
                let link =
                    std::fs::read_link(&host).with_context(|| format!("cannot read {}", host.display()))?;
                Entry::Symlink(path(&link)?, new)
            } else {
                Entry::File(old, new)
            });
        }
        let dirs: BTreeSet<&Path> = mounts
            .iter()
            .map(|m| m.target.as_str())
            .chain([workdir])
            .filter(|target| self.holds(target))
            .flat_map(|target| Path::new(target).ancestors())
            .filter(|d| *d != Path::new("/"))
            .collect();
        Ok(NewRoot {
            at: path(&self.at)?,
            entries,
            dirs: dirs.into_iter().map(path).collect::<Result<_>>()?,
        })
    }
}

/// Mount points of automounters (`autofs`: systemd's `/boot` or `/efi`,
/// `/net`, NFS homes), from this process's mount table.
fn automount_points() -> BTreeSet<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|line| {
            line.split(" - ")
                .nth(1)
                .is_some_and(|tail| tail.starts_with("autofs "))
        })
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// Where the host's root is while an ordinary user's step root is made.
const OLD_ROOT: &CStr = c"/.wsfs-host";

/// A host top-level entry in the root of an ordinary user's step: where it
/// is (under [`OLD_ROOT`]; for a symlink, its text), then its path.
#[derive(Debug)]
enum Entry {
    Directory(CString, CString),
    File(CString, CString),
    Symlink(CString, CString),
}

/// The root of an ordinary user's step, ready for the child to make.
struct NewRoot {
    at: CString,
    entries: Vec<Entry>,
    /// Its own directories, parents first.
    dirs: Vec<CString>,
}

impl NewRoot {
    /// Mounts a tmpfs at `at` and makes it the root, the host's root at
    /// [`OLD_ROOT`]; binds or links the host's top-level entries into it,
    /// makes its own directories, detaches the host's root and makes the
    /// tmpfs read-only. Async-signal-safe: only system calls.
    fn enter(&self) -> io::Result<()> {
        let nosuid_nodev = libc::MS_NOSUID | libc::MS_NODEV;
        let bind = |from: &CStr, to: &CStr, flags| {
            // SAFETY: NUL-terminated strings.
            check(unsafe { libc::mount(from.as_ptr(), to.as_ptr(), null(), flags, null()) })
        };
        // SAFETY: system calls on NUL-terminated strings prepared before the fork.
        unsafe {
            let tmpfs = c"tmpfs".as_ptr();
            check(libc::mount(
                tmpfs,
                self.at.as_ptr(),
                tmpfs,
                nosuid_nodev,
                c"mode=0755".as_ptr().cast(),
            ))?;
            check(libc::chdir(self.at.as_ptr()))?;
            // Relative to the tmpfs until it is the root.
            let old = OLD_ROOT.as_ptr().add(1);
            check(libc::mkdir(old, 0o700))?;
            check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), old) as libc::c_int)?;
            check(libc::chdir(c"/".as_ptr()))?;
            for entry in &self.entries {
                match entry {
                    Entry::Directory(host, path) => {
                        check(libc::mkdir(path.as_ptr(), 0o755))?;
                        bind(host, path, libc::MS_BIND | libc::MS_REC)?;
                    }
                    Entry::File(host, path) => {
                        let fd = libc::open(
                            path.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        libc::close(fd);
                        bind(host, path, libc::MS_BIND)?;
                    }
                    Entry::Symlink(text, path) => check(libc::symlink(text.as_ptr(), path.as_ptr()))?,
                }
            }
            for dir in &self.dirs {
                check(libc::mkdir(dir.as_ptr(), 0o755))?;
            }
            check(libc::umount2(OLD_ROOT.as_ptr(), libc::MNT_DETACH))?;
            check(libc::rmdir(OLD_ROOT.as_ptr()))?;
            bind(
                c"/",
                c"/",
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | nosuid_nodev,
            )
        }
    }
}

/// Checks that this host lets `ids` (an ordinary user) make the user
/// namespace its steps run in: a child tries, before anything of the run is
/// done; the error says what refused and what to do.
pub fn check_user_namespaces(ids: Ids) -> Result<()> {
    let maps = Maps::of(ids);
    // SAFETY: the child only makes system calls (Maps::enter) and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = maps.enter().err().map_or(0, |e| e.raw_os_error().unwrap_or(255));
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    if pid < 0 {
        return Err(io::Error::last_os_error()).context("cannot fork");
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(io::Error::last_os_error()).context("waiting for a child");
    }
    let errno = match libc::WIFEXITED(status) {
        true => libc::WEXITSTATUS(status),
        false => libc::EINVAL,
    };
    if errno == 0 {
        return Ok(());
    }
    const SYSCTLS: [(&str, &str, &str); 3] = [
        ("kernel.unprivileged_userns_clone", "0", "1"),
        ("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
        ("user.max_user_namespaces", "0", "10000"),
    ];
    let set = SYSCTLS.iter().find(|(name, off, _)| {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::read_to_string(path).is_ok_and(|v| v.trim() == *off)
    });
    let (why, fix) = match set {
        Some((name, off, on)) => (
            format!("{name} is {off}"),
            format!("allow them with `sysctl -w {name}={on}` (as root)"),
        ),
        None => (
            "a security module or a container's seccomp profile may refuse them".to_string(),
            "allow unshare(CLONE_NEWUSER) to this user".to_string(),
        ),
    };
    bail!(
        "this host does not let an ordinary user make user namespaces ({}; {why}), and each step of wsfs \
         run without root runs in one: {fix}, or run wsfs run as root",
        io::Error::from_raw_os_error(errno)
    )
}

/// Makes `command` lead a process group of its own (so that the whole step
/// can be killed), enter its namespaces (for an ordinary user, `user`: a
/// user namespace and a root of its own), mount `mounts`, cover the `hidden`
/// paths, become `ids` (when given) and change to `workdir` (as the step
/// sees it) before it executes.
pub fn isolate(
    command: &mut tokio::process::Command,
    mounts: &Mounts,
    hidden: &Hidden,
    ids: Option<Ids>,
    user: Option<&UserRoot>,
    workdir: &str,
) -> Result<()> {
    let prepared = Prepared {
        user: user
            .map(|u| anyhow::Ok((Maps::of(u.ids), u.prepare(mounts, workdir)?)))
            .transpose()?,
        binds: mounts
            .iter()
            .map(|m| {
                let source = c_string(m.source.as_os_str().as_bytes(), "a mount source")?;
                let read_only = m.read_only.then(|| read_only_flags(&source)).transpose()?;
                Ok((source, c_string(m.target.as_bytes(), "a mountPath")?, read_only))
            })
            .collect::<Result<_>>()?,
        covers: hidden.covers(mounts, workdir)?,
        ids,
        workdir: c_string(workdir.as_bytes(), "workingDir")?,
    };
    let enter = move || -> io::Result<()> {
        // SAFETY: only async-signal-safe system calls on values prepared
        // before the fork; errors are returned without allocating.
        unsafe {
            check(libc::setpgid(0, 0))?;
            match &prepared.user {
                Some((maps, _)) => maps.enter()?,
                None => check(libc::unshare(libc::CLONE_NEWNS))?,
            }
            let root = c"/";
            check(libc::mount(
                null(),
                root.as_ptr(),
                null(),
                libc::MS_REC | libc::MS_PRIVATE,
                null(),
            ))?;
            if let Some((_, new_root)) = &prepared.user {
                new_root.enter()?;
            }
            for (source, target, read_only) in &prepared.binds {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REC,
                    null(),
                ))?;
                if let Some(flags) = read_only {
                    check(libc::mount(null(), target.as_ptr(), null(), *flags, null()))?;
                }
            }
            // After the binds: their sources may lie in hidden directories.
            for cover in &prepared.covers {
                match cover {
                    Cover::Directory(path) => check(libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        c"mode=0755,size=4k".as_ptr().cast(),
                    ))?,
                    Cover::File(path) => check(libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        null(),
                        libc::MS_BIND,
                        null(),
                    ))?,
                }
            }
            if let Some(ids) = prepared.ids {
                switch_user(ids)?;
            }
            check(libc::chdir(prepared.workdir.as_ptr()))
        }
    };
    // SAFETY: the closure only makes system calls (see above).
    unsafe {
        command.pre_exec(enter);
    }
    Ok(())
}

/// Drops root for `ids`: the group as the only group, then the user, and
/// checks that it took (and that root cannot be regained). Async-signal-safe:
/// only system calls, no allocation.
fn switch_user(ids: Ids) -> io::Result<()> {
    // SAFETY: system calls on integers and on locals of the right types.
    unsafe {
        check(libc::setgroups(1, &ids.gid))?;
        check(libc::setgid(ids.gid))?;
        check(libc::setuid(ids.uid))?;
        let (mut r, mut e, mut s) = (0, 0, 0);
        check(libc::getresuid(&mut r, &mut e, &mut s))?;
        let users_took = [r, e, s] == [ids.uid; 3];
        check(libc::getresgid(&mut r, &mut e, &mut s))?;
        let groups_took = [r, e, s] == [ids.gid; 3];
        if !users_took || !groups_took || (ids.uid != 0 && libc::setuid(0) == 0) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_go_through_the_deepest_mount() {
        let mounts = Mounts::new(vec![
            Mount {
                source: "/run/views/src".into(),
                target: "/workspace/src".into(),
                read_only: true,
            },
            Mount {
                source: "/run/task".into(),
                target: "/workspace".into(),
                read_only: false,
            },
        ]);
        let targets: Vec<&str> = mounts.iter().map(|m| m.target.as_str()).collect();
        assert_eq!(targets, ["/workspace", "/workspace/src"]);
        assert_eq!(
            mounts.host_path("/workspace/src/a/b"),
            Path::new("/run/views/src/a/b")
        );
        assert_eq!(mounts.host_path("/workspace/srcx"), Path::new("/run/task/srcx"));
        assert_eq!(mounts.host_path("/workspace"), Path::new("/run/task"));
        assert_eq!(mounts.host_path("/etc/hosts"), Path::new("/etc/hosts"));
    }

    #[test]
    fn hidden_paths_are_covered_unless_a_mount_hides_them_and_nothing_mounts_inside_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(state.join("runs")).unwrap();
        std::fs::write(dir.path().join("wsfsd.sock"), b"").unwrap();
        let hidden = Hidden::new([
            state.join("runs"),
            state.clone(),
            dir.path().join("wsfsd.sock"),
            dir.path().join("missing"),
        ]);
        let state = state.canonicalize().unwrap();
        assert_eq!(
            hidden.0,
            [
                state.clone(),
                dir.path().canonicalize().unwrap().join("wsfsd.sock")
            ]
        );
        let mount = |target: &Path| Mount {
            source: "/run/task".into(),
            target: target.display().to_string(),
            read_only: false,
        };
        let workspace = Mounts::new(vec![mount(Path::new("/workspace"))]);
        let covers = hidden.covers(&workspace, "/workspace").unwrap();
        assert!(
            matches!(&covers[..], [Cover::Directory(_), Cover::File(_)]),
            "{covers:?}"
        );
        let over = Mounts::new(vec![mount(dir.path())]);
        assert!(hidden.covers(&over, "/workspace").unwrap().is_empty());
        let inside = Mounts::new(vec![mount(&state.join("x"))]);
        let error = hidden.covers(&inside, "/workspace").unwrap_err().to_string();
        assert!(
            error.starts_with("mountPath ") && error.contains("which wsfs hides from steps"),
            "{error}"
        );
        let error = hidden
            .covers(&workspace, state.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("workingDir "), "{error}");
    }
}
