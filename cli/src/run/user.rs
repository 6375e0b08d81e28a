//! Who a step runs as: its `securityContext` (see [`RunAs`]) over `wsfs run
//! --step-user`, and its home directory, looked up before the fork.

use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use wsfs_pipeline::plan::RunAs;

use super::namespace::Ids;
use crate::step_user::StepUser;

/// How a step runs: the ids it switches to (none: it stays the user of
/// `wsfs run`) and its `HOME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user and group, when the step switches.
    pub ids: Option<Ids>,
    /// The user's home directory in the password database, else `/`.
    pub home: OsString,
}

/// A user's entry in the password database: home directory and group.
struct Passwd {
    home: OsString,
    gid: u32,
}

fn passwd(uid: u32) -> Option<Passwd> {
    let mut buffer = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: the buffer and its length match; `found` points to `entry` or is null.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded: pw_dir is a C string in `buffer`, or null.
        let home = (!entry.pw_dir.is_null())
            .then(|| unsafe { CStr::from_ptr(entry.pw_dir) }.to_bytes())
            .filter(|h| !h.is_empty())
            .unwrap_or(b"/");
        return Some(Passwd {
            home: OsStr::from_bytes(home).to_os_string(),
            gid: entry.pw_gid,
        });
    }
}

/// Who a step with `run_as` runs as, `default` (`--step-user`) filling the
/// fields its `securityContext` does not give. A user without a group gets
/// their group in the password database, else 0 (as in Kubernetes).
pub fn identity(run_as: &RunAs, default: StepUser) -> Result<Identity> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let uid = run_as.user.or(default.uid);
    let gid = run_as.group.or(default.gid);
    let user = uid.unwrap_or(me);
    if run_as.non_root && user == 0 {
        bail!(
            "runAsNonRoot: the step would run as root: give its securityContext.runAsUser, or run \
             with --step-user"
        );
    }
    let entry = passwd(user);
    let ids = match (uid, gid) {
        // An ordinary user's steps keep its ids (the loader and `wsfs run`
        // refused any other before the run).
        _ if me != 0 => None,
        (None, None) => None,
        (_, Some(gid)) => Some(Ids { uid: user, gid }),
        (Some(uid), None) => Some(Ids {
            uid,
            gid: entry.as_ref().map_or(0, |e| e.gid),
        }),
    };
    Ok(Identity {
        ids,
        home: entry.map_or_else(|| "/".into(), |e| e.home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_context_comes_before_the_default() {
        let run_as = |user, group| RunAs {
            user,
            group,
            non_root: false,
        };
        let default = StepUser {
            uid: Some(4321),
            gid: Some(4322),
        };
        let ids = |uid, gid| Some(Ids { uid, gid });
        assert_eq!(
            identity(&run_as(Some(1234), None), default).unwrap().ids,
            ids(1234, 4322)
        );
        assert_eq!(
            identity(&run_as(None, Some(7)), default).unwrap().ids,
            ids(4321, 7)
        );
        assert_eq!(
            identity(&run_as(None, None), default).unwrap().ids,
            ids(4321, 4322)
        );
        // No passwd entry: group 0, HOME /.
        let alone = identity(&run_as(Some(3_999_999_999), None), StepUser::default()).unwrap();
        assert_eq!(alone.ids, ids(3_999_999_999, 0));
        assert_eq!(alone.home, "/");
        let me = identity(&run_as(None, None), StepUser::default()).unwrap();
        assert_eq!(me.ids, None);
        let root = identity(&run_as(Some(0), None), StepUser::default()).unwrap();
        assert_eq!(root.home, passwd(0).map_or("/".into(), |p| p.home));
    }

    #[test]
    fn run_as_non_root_refuses_root() {
        let run_as = RunAs {
            user: None,
            group: None,
            non_root: true,
        };
        let root = StepUser {
            uid: Some(0),
            gid: None,
        };
        assert!(identity(&run_as, root)
            .unwrap_err()
            .to_string()
            .starts_with("runAsNonRoot"));
        let builder = StepUser {
            uid: Some(1000),
            gid: None,
        };
        assert_eq!(identity(&run_as, builder).unwrap().ids.map(|i| i.uid), Some(1000));
    }
}
