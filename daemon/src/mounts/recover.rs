//! Taking over the mounts a previous daemon left: every view in the mount
//! table, served again, and nothing else.
//!
//! A version whose FUSE connection the holder kept is adopted as it is:
//! its views never stopped being mounted, and readers only waited. A
//! version whose connection died with the previous daemon (no holder, or
//! the holder died too) is mounted anew, and its views are mounted again
//! over it with their changes: processes that held files of the dead
//! mount see errors, new opens work. Only `detach` removes an upper
//! directory; here only directories no process ever saw are removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wsfs_fs::error::StoreError;
use wsfs_fs::ids::LayerId;
use wsfs_fs::store::Store;
use wsfs_fs::workspace::{self, WorkspaceName};
use wsfs_holder::Link;

use super::mountpoint::mount_view;
use super::record::{Recovery, ViewRecord, ViewState};
use super::shared::{build_tree, Connection, SharedMount};
use super::{Mounts, Table, View};
use crate::mount_error::MountError;
use crate::sys;
use crate::views::{self, Scratch};

/// What a new daemon found and did.
#[derive(Debug, Default)]
struct Recovered {
    /// Versions whose FUSE connection was taken over from the holder.
    adopted: usize,
    /// Versions mounted anew because their connection had died.
    remounted: usize,
    /// Views taken over.
    views: usize,
}

impl Mounts {
    /// The mount table of `state_dir`, taking over what a previous daemon
    /// left: the connections `held` (from the holder, by version) and every
    /// view recorded.
    pub fn recover(
        store: Arc<Store>,
        state_dir: &Path,
        host: String,
        link: Option<Arc<Link>>,
        held: Vec<(String, OwnedFd)>,
    ) -> Result<Mounts, StoreError> {
        let mounts = Mounts {
            store,
            link,
            dir: state_dir.join("mnt"),
            scratch_dir: state_dir.join("views"),
            trash_dir: state_dir.join("trash"),
            host,
            table: Mutex::new(Table::default()),
        };
        let mut held: HashMap<String, OwnedFd> = held.into_iter().collect();
        let mounted: HashSet<PathBuf> = sys::mounts()
            .map(|all| {
                all.into_iter()
                    .filter(|m| m.is_wsfs() || m.fstype == "overlay")
                    .map(|m| m.point)
                    .collect()
            })
            .unwrap_or_default();
        let mut versions: BTreeMap<String, Vec<(PathBuf, ViewRecord)>> = BTreeMap::new();
        let mut kept_scratch = HashSet::new();
        for (key, value) in mounts.store.db().mounts()? {
            let mountpoint = PathBuf::from(OsStr::from_bytes(&key));
            let record = match ViewRecord::decode(&value) {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(mountpoint = %mountpoint.display(), error = %e, "dropping a view record this daemon cannot read (left as it is)");
                    mounts.store.db().delete_mount(&key)?;
                    continue;
                }
            };
            if record.state.recovery(mounted.contains(&mountpoint)) == Recovery::Forget {
                mounts.forget_recorded(&mountpoint, &record, mounted.contains(&mountpoint));
                continue;
            }
            kept_scratch.extend(record.scratch_dir());
            let layers = parse_layers(&record.layers);
            versions
                .entry(workspace::version(&layers))
                .or_default()
                .push((mountpoint, record));
        }
        let mut recovered = Recovered::default();
        for (version, views) in versions {
            let connection = held.remove(&version);
            match mounts.take_over(&version, views, connection, &mounted) {
                Ok((adopted, n)) => {
                    recovered.views += n;
                    if adopted {
                        recovered.adopted += 1;
                    } else {
                        recovered.remounted += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(version, error = %e, "cannot take over this version's views: they stay recorded for the next daemon")
                }
            }
        }
        for (version, _) in held {
            // Held, but no view needs it (a daemon died between mounting it and its first view).
            let _ = sys::unmount(&mounts.dir.join(&version), true);
            if let Some(link) = &mounts.link {
                let _ = link.release(&version);
            }
        }
        mounts.clear_leftovers(&kept_scratch);
        if recovered.views > 0 {
            tracing::info!(
                adopted = recovered.adopted,
                remounted = recovered.remounted,
                views = recovered.views,
                "took over the views of the previous daemon"
            );
        }
        Ok(mounts)
    }

    /// Serves one version again and takes over its views; returns whether
    /// its connection was adopted, and how many views were taken over.
    fn take_over(
        &self,
        version: &str,
        records: Vec<(PathBuf, ViewRecord)>,
        connection: Option<OwnedFd>,
        mounted: &HashSet<PathBuf>,
    ) -> Result<(bool, usize), MountError> {
        let first = &records[0].1;
        let workspace: WorkspaceName = first
            .workspace
            .parse()
            .map_err(|e| MountError::BadRequest(format!("recorded workspace {:?}: {e}", first.workspace)))?;
        let layers = parse_layers(&first.layers);
        let tree = Arc::new(build_tree(&self.store, &layers)?);
        let path = self.dir.join(version);
        let adopted = connection.is_some() && mounted.contains(&path);
        let connection = match connection {
            Some(fd) if adopted => Connection::Adopt(fd),
            _ => {
                // Nobody serves it any more: a dead mount answers ENOTCONN.
                let _ = sys::unmount(&path, true);
                Connection::New
            }
        };
        let mut shared = SharedMount::open(
            &self.store,
            self.link.as_deref(),
            &workspace,
            version,
            path,
            tree.clone(),
            connection,
        )?;
        let mut table = self.table.lock().unwrap();
        let mut prefetch_key = None;
        for (mountpoint, record) in &records {
            let view = View {
                mountpoint: mountpoint.clone(),
                workspace: workspace.clone(),
                layers: layers.clone(),
                version: version.to_string(),
                totals: tree.totals(),
                kind: record.kind.parse()?,
                sub_path: record.sub_path.clone(),
                scratch: record.scratch_dir().map(|dir| Scratch { dir }),
                created: record.created,
                owner: record.owner,
                state: ViewState::Attached,
                prefetch_key: record.prefetch_key.clone(),
                prefetch: None,
                note: record.note.clone(),
            };
            let alive = adopted && mounted.contains(mountpoint) && record.state != ViewState::Persisting;
            if !alive {
                if mounted.contains(mountpoint) {
                    let _ = sys::unmount(mountpoint, true);
                }
                match mount_view(&view, &shared.path) {
                    Ok(()) => tracing::info!(mountpoint = %mountpoint.display(), "mounted a view again"),
                    // Still recorded: `detach --persist` persists its upper
                    // directory without the mount, `detach` discards it.
                    Err(e) => {
                        tracing::error!(mountpoint = %mountpoint.display(), error = %e, "cannot mount a view again")
                    }
                }
            }
            if record.prefetch {
                prefetch_key.get_or_insert_with(|| record.prefetch_key.clone());
            }
            shared.views += 1;
            self.put_record(&view)?;
            table.views.insert(mountpoint.clone(), view);
        }
        if let Some(key) = prefetch_key {
            shared.start_prefetch(&self.store, &key);
            let progress = shared.prefetch.as_ref().map(|p| p.progress.clone());
            for view in table.views.values_mut().filter(|v| v.version == version) {
                view.prefetch = progress.clone();
            }
        }
        table.shared.insert(version.to_string(), shared);
        Ok((adopted, records.len()))
    }

    /// Removes what attach made for a view nobody uses: its mount if any,
    /// its scratch directory, its created mountpoint, its record.
    fn forget_recorded(&self, mountpoint: &Path, record: &ViewRecord, mounted: bool) {
        if mounted {
            let _ = sys::unmount(mountpoint, true);
        }
        if let Some(dir) = record.scratch_dir() {
            Scratch { dir }.remove();
        }
        if record.created {
            let _ = std::fs::remove_dir(mountpoint);
        }
        self.delete_record(mountpoint);
    }

    /// Unmounts FUSE mounts of versions no view needs, removes their empty
    /// directories, scratch directories no record names (made by an attach
    /// that never mounted), and empties the trash in the background.
    fn clear_leftovers(&self, kept_scratch: &HashSet<PathBuf>) {
        let table = self.table.lock().unwrap();
        if let Ok(all) = sys::mounts() {
            let served: HashSet<PathBuf> = table.shared.values().map(|s| s.path.clone()).collect();
            for m in all
                .iter()
                .filter(|m| m.point.starts_with(&self.dir) && m.is_wsfs())
            {
                if !served.contains(&m.point) {
                    let _ = sys::unmount(&m.point, true);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if !table.shared.values().any(|s| s.path == entry.path()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.scratch_dir) {
            for entry in entries.flatten().filter(|e| !kept_scratch.contains(&e.path())) {
                views::remove_all(&entry.path());
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.trash_dir) {
            let left: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            std::thread::spawn(move || left.iter().for_each(|dir| views::remove_all(dir)));
        }
    }
}

/// Layer ids as recorded (a malformed one cannot have been written by a daemon).
fn parse_layers(layers: &[String]) -> Vec<LayerId> {
    layers.iter().filter_map(|l| l.parse().ok()).collect()
}
