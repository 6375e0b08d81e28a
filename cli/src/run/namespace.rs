//! Steps run in mount namespaces of their own: the task's working directory
//! at `/workspace`, and only the workspaces the step may see, at their mount
//! paths; wsfs's own directories hidden; as the step's user. Nothing of this
//! is visible on the host or to other steps.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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
    binds: Vec<(CString, CString, bool)>,
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

/// Makes `command` lead a process group of its own (so that the whole step
/// can be killed), enter a new mount namespace, mount `mounts`, cover the
/// `hidden` paths, become `ids` (when given) and change to `workdir` (as the
/// step sees it) before it executes.
pub fn isolate(
    command: &mut tokio::process::Command,
    mounts: &Mounts,
    hidden: &Hidden,
    ids: Option<Ids>,
    workdir: &str,
) -> Result<()> {
    let prepared = Prepared {
        binds: mounts
            .iter()
            .map(|m| {
                Ok((
                    c_string(m.source.as_os_str().as_bytes(), "a mount source")?,
                    c_string(m.target.as_bytes(), "a mountPath")?,
                    m.read_only,
                ))
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
            check(libc::unshare(libc::CLONE_NEWNS))?;
            let root = c"/";
            check(libc::mount(
                null(),
                root.as_ptr(),
                null(),
                libc::MS_REC | libc::MS_PRIVATE,
                null(),
            ))?;
            for (source, target, read_only) in &prepared.binds {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REC,
                    null(),
                ))?;
                if *read_only {
                    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
                    check(libc::mount(null(), target.as_ptr(), null(), flags, null()))?;
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
