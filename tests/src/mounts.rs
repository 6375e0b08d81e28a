//! The mount table as this process sees it (`/proc/self/mountinfo`), and
//! lazy unmounting for cleanup.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `fuse`, `fuse.wsfs`, `tmpfs`.
    pub fs_type: String,
    /// Mount source (the "device" field).
    pub source: String,
}

/// Every mount, in mount order.
pub fn mounts() -> Vec<Mount> {
    let text = fs::read("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &[u8]) -> Option<Mount> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let sep = fields.iter().position(|f| *f == b"-")?;
    Some(Mount {
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields.get(4)?))),
        fs_type: String::from_utf8_lossy(&unescape(fields.get(sep + 1)?)).into_owned(),
        source: String::from_utf8_lossy(&unescape(fields.get(sep + 2)?)).into_owned(),
    })
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let oct = field.get(i + 1..i + 4);
        match oct {
            Some(d) if field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

/// Whether something is mounted exactly at `path`.
pub fn is_mounted(path: &Path) -> bool {
    mounts().iter().any(|m| m.mount_point == path)
}

/// The mount at `path` (the topmost if stacked), if any.
pub fn mount_at(path: &Path) -> Option<Mount> {
    mounts().into_iter().rev().find(|m| m.mount_point == path)
}

/// Mount points at or under `dir`, deepest (latest) first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.reverse();
    out
}

/// `umount2(path, MNT_DETACH)`: detaches now, even if busy or disconnected.
pub fn lazy_unmount(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lazily unmounts everything at or under `dir`; returns what it unmounted.
pub fn unmount_all_under(dir: &Path) -> Vec<PathBuf> {
    let mut done = Vec::new();
    // Stacked mounts show up once per layer; a bounded number of rounds.
    for _ in 0..8 {
        let left = mounts_under(dir);
        if left.is_empty() {
            break;
        }
        for p in left {
            if lazy_unmount(&p).is_ok() {
                done.push(p);
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_mountinfo_lines() {
        let line = b"36 35 0:52 / /tmp/a\\040b\\012c rw,nosuid - fuse.wsfs wsfs\\040x rw";
        let m = parse_line(line).unwrap();
        assert_eq!(m.mount_point, Path::new("/tmp/a b\nc"));
        assert_eq!(m.fs_type, "fuse.wsfs");
        assert_eq!(m.source, "wsfs x");
    }
}
