//! Steps run in mount namespaces of their own: the task's working directory
//! at `/workspace`, and only the workspaces the step may see, at their mount
//! paths. Nothing of this is visible on the host or to other steps.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::null;

use anyhow::{Context, Result};

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

/// What the child does between fork and exec, prepared before the fork so
/// that the child only makes system calls (no allocation after fork).
struct Prepared {
    binds: Vec<(CString, CString, bool)>,
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
/// can be killed), enter a new mount namespace, mount `mounts` and change to
/// `workdir` (as the step sees it) before it executes.
pub fn isolate(command: &mut tokio::process::Command, mounts: &Mounts, workdir: &str) -> Result<()> {
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
        workdir: c_string(workdir.as_bytes(), "workingDir")?,
    };
    let enter = move || -> io::Result<()> {
        // SAFETY: only async-signal-safe system calls on strings prepared
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
            check(libc::chdir(prepared.workdir.as_ptr()))
        }
    };
    // SAFETY: the closure only makes system calls (see above).
    unsafe {
        command.pre_exec(enter);
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
}
