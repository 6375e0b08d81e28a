//! A view's entry in the mount table, kept in the local database so that a
//! new daemon can take the view over, and the view's lifecycle.
//!
//! The entry is written before the view becomes visible and removed only
//! once it is gone, so every view a process could see has one:
//!
//! ```text
//! Mounting ──mounted──▶ Attached ──persist──▶ Persisting ──landed──▶ (gone)
//!    │                    ▲   │                   │
//!    └─failed─▶ (gone)    │   └──detach──▶ (gone) │
//!                         │        └─detach while in use─▶ Discarded ─▶ (gone)
//!                         └───persist failed──────┘
//! ```

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a view is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViewState {
    /// Recorded, about to be mounted: no process has seen it yet.
    Mounting,
    /// Mounted where its users see it.
    Attached,
    /// `detach --persist` unmounted it and writes its changes.
    Persisting,
    /// Detached lazily while processes still used it: what is left goes
    /// once they are gone (the next daemon removes it).
    Discarded,
}

/// What a new daemon does with a view a previous one recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Never seen by anyone, or discarded: forget it and remove what attach made.
    Forget,
    /// Take it over, mounting it again where it is not mounted.
    TakeOver,
}

impl ViewState {
    /// The state after the view's mount succeeded.
    pub fn mounted(self) -> ViewState {
        debug_assert_eq!(self, ViewState::Mounting);
        ViewState::Attached
    }

    /// Whether `detach --persist` may start (the view is not being persisted).
    pub fn may_persist(self) -> bool {
        self == ViewState::Attached
    }

    /// What a new daemon does with a view left in this state; `mounted`: its
    /// mountpoint is a wsfs mount. A discarded view is removed (unmounted
    /// lazily if a process still holds it). A persist the previous daemon did not
    /// finish left the view unmounted with its changes: it is mounted again,
    /// as when a persist fails, and its `detach --persist` can be repeated.
    pub fn recovery(self, mounted: bool) -> Recovery {
        match self {
            ViewState::Mounting if !mounted => Recovery::Forget,
            ViewState::Discarded => Recovery::Forget,
            _ => Recovery::TakeOver,
        }
    }
}

/// A view as the mount table keeps it (keyed by its mountpoint).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// Where it is in its life.
    pub state: ViewState,
    /// The workspace.
    pub workspace: String,
    /// The exact layer stack shown (ids in hex).
    pub layers: Vec<String>,
    /// `read-only` or `isolated`.
    pub kind: String,
    /// The workspace directory shown (bytes; empty: the root).
    pub sub_path: Vec<u8>,
    /// An isolated view's private directory (bytes of the path).
    pub scratch: Option<Vec<u8>>,
    /// Attach created the mountpoint (detach removes it).
    pub created: bool,
    /// Where the access trace is kept.
    pub prefetch_key: String,
    /// A prefetch of the version was asked for.
    pub prefetch: bool,
    /// What the view's requester keeps with it (opaque here).
    #[serde(default)]
    pub note: Option<Vec<u8>>,
    /// The user who attached it (0: root); only that user or root may detach it.
    #[serde(default)]
    pub owner: u32,
}

impl ViewRecord {
    /// The record as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record always serializes")
    }

    /// A stored record; an error names what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<ViewRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The isolated view's private directory.
    pub fn scratch_dir(&self) -> Option<PathBuf> {
        self.scratch.as_ref().map(|b| PathBuf::from(OsStr::from_bytes(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ViewRecord {
        ViewRecord {
            state: ViewState::Mounting,
            workspace: "run-42/src".into(),
            layers: vec!["ab".repeat(32)],
            kind: "isolated".into(),
            sub_path: b"docs/\xff".to_vec(),
            scratch: Some(b"/var/lib/wsfs/views/wsfs-view-\xfe".to_vec()),
            created: true,
            prefetch_key: "run-42/src".into(),
            prefetch: true,
            note: Some(b"{}".to_vec()),
            owner: 1000,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_even_with_paths_that_are_not_utf8() {
        let r = record();
        assert_eq!(ViewRecord::decode(&r.encode()).unwrap(), r);
        assert_eq!(
            r.scratch_dir().unwrap().as_os_str().as_bytes(),
            b"/var/lib/wsfs/views/wsfs-view-\xfe"
        );
    }

    #[test]
    fn records_of_an_older_daemon_are_refused_not_misread() {
        // The format before the table was written ahead: a flag, then a path.
        assert!(ViewRecord::decode(b"1/var/lib/wsfs/views/x").is_err());
        assert!(ViewRecord::decode(b"").is_err());
    }

    #[test]
    fn only_a_view_never_mounted_is_forgotten_by_a_new_daemon() {
        assert_eq!(ViewState::Mounting.recovery(false), Recovery::Forget);
        assert_eq!(ViewState::Mounting.recovery(true), Recovery::TakeOver);
        assert_eq!(ViewState::Discarded.recovery(true), Recovery::Forget);
        assert_eq!(ViewState::Discarded.recovery(false), Recovery::Forget);
        for state in [ViewState::Attached, ViewState::Persisting] {
            for mounted in [false, true] {
                assert_eq!(state.recovery(mounted), Recovery::TakeOver, "{state:?} {mounted}");
            }
        }
    }

    #[test]
    fn a_persist_starts_only_from_an_attached_view() {
        assert_eq!(ViewState::Mounting.mounted(), ViewState::Attached);
        assert!(ViewState::Attached.may_persist());
        assert!(!ViewState::Persisting.may_persist());
        assert!(!ViewState::Mounting.may_persist());
    }
}
