//! Taking over the mounts a previous daemon left: every view in the mount
//! table, served again, and nothing else.
//!
//! A version whose FUSE connection the holder kept is adopted as it is:
//! its views never stopped being mounted, and readers only waited (so is
//! each own FUSE mount of an ordinary user's daemon's views). A
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

use super::mountpoint::view_key;
use super::record::{Recovery, ViewRecord, ViewState};
use super::shared::{build_tree, Connection, SharedMount};
use super::{Mounts, Table, View};
use crate::mount_error::MountError;
use crate::sys;
use crate::views::{self, Scratch};

/// What a new daemon found and did.
#[derive(Debug, Default)]
struct Recovered {
    /// FUSE connections (of versions, or views' own) taken over from the holder.
    adopted: usize,
    /// FUSE mounts made anew because their connection had died.
    remounted: usize,
    /// Views taken over.
    views: usize,
}

impl std::ops::AddAssign for Recovered {
    fn add_assign(&mut self, other: Recovered) {
        self.adopted += other.adopted;
        self.remounted += other.remounted;
        self.views += other.views;
    }
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
            match mounts.take_over(&version, views, &mut held, &mounted) {
                Ok(done) => recovered += done,
                Err(e) => {
                    tracing::error!(version, error = %e, "cannot take over this version's views: they stay recorded for the next daemon")
                }
            }
        }
        for (key, _) in held {
            // Held, but no view needs it (a daemon died between mounting it and its first view).
            let _ = sys::unmount(&mounts.dir.join(&key), true);
            if let Some(link) = &mounts.link {
                let _ = link.release(&key);
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

    /// Serves one version again and takes over its views, adopting the
    /// connections of `held` they need; says what it did.
    fn take_over(
        &self,
        version: &str,
        records: Vec<(PathBuf, ViewRecord)>,
        held: &mut HashMap<String, OwnedFd>,
        mounted: &HashSet<PathBuf>,
    ) -> Result<Recovered, MountError> {
        let first = &records[0].1;
        let workspace: WorkspaceName = first
            .workspace
            .parse()
            .map_err(|e| MountError::BadRequest(format!("recorded workspace {:?}: {e}", first.workspace)))?;
        let layers = parse_layers(&first.layers);
        let tree = Arc::new(build_tree(&self.store, &layers)?);
        let path = self.dir.join(version);
        let connection = held.remove(version);
        let adopted = connection.is_some() && mounted.contains(&path);
        let mount = sys::privileged().then(|| match connection {
            Some(fd) if adopted => (path, Connection::Adopt(fd)),
            _ => {
                // Nobody serves it any more: a dead mount answers ENOTCONN.
                let _ = sys::unmount(&path, true);
                (path, Connection::New)
            }
        });
        let link = self.link.as_deref();
        let mut done = Recovered {
            views: records.len(),
            ..Recovered::default()
        };
        match &mount {
            Some((_, Connection::Adopt(_))) => done.adopted += 1,
            Some((_, Connection::New)) => done.remounted += 1,
            None => {}
        }
        let shared = SharedMount::open(&self.store, link, &workspace, version, mount, tree.clone())?;
        let mut table = self.table.lock().unwrap();
        table.shared.insert(version.to_string(), shared);
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
                whole_prefetch: record.prefetch,
                note: record.note.clone(),
            };
            let own = held.remove(&view_key(mountpoint));
            let alive = (adopted || own.is_some())
                && mounted.contains(mountpoint)
                && record.state != ViewState::Persisting;
            let taken = match (alive, own) {
                // Root's bind or overlay lives on over the adopted version.
                (true, None) => Ok(()),
                (true, Some(fd)) => {
                    done.adopted += 1;
                    table.mount_view(&view, &self.store, link, Connection::Adopt(fd))
                }
                (false, _) => {
                    if mounted.contains(mountpoint) {
                        let _ = sys::unmount(mountpoint, true);
                    }
                    let mounted = table.mount_view(&view, &self.store, link, Connection::New);
                    if mounted.is_ok() {
                        done.remounted += usize::from(!sys::privileged());
                        tracing::info!(mountpoint = %mountpoint.display(), "mounted a view again");
                    }
                    mounted
                }
            };
            // Still recorded: `detach --persist` persists its upper
            // directory without the mount, `detach` discards it.
            if let Err(e) = taken {
                tracing::error!(mountpoint = %mountpoint.display(), error = %e, "cannot mount a view again");
            }
            if record.prefetch {
                prefetch_key.get_or_insert_with(|| record.prefetch_key.clone());
            }
            table.shared.get_mut(version).expect("inserted above").views += 1;
            self.put_record(&view)?;
            table.views.insert(mountpoint.clone(), view);
        }
        if let Some(key) = prefetch_key {
            let Table { shared, own, views } = &mut *table;
            let shared = shared.get_mut(version).expect("inserted above");
            let whole = views
                .values()
                .filter(|v| v.version == version && v.shows_the_tree())
                .find_map(|v| own.get(&v.mountpoint));
            shared.start_prefetch(&self.store, &key, whole, true);
            let progress = shared.prefetch.as_ref().map(|p| p.progress.clone());
            for view in views.values_mut().filter(|v| v.version == version) {
                view.prefetch = progress.clone();
            }
        }
        Ok(done)
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
        let served: HashSet<&PathBuf> = table
            .shared
            .values()
            .filter_map(|s| s.mount.as_ref())
            .map(|m| &m.path)
            .collect();
        if let Ok(all) = sys::mounts() {
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
            for entry in entries.flatten().filter(|e| !served.contains(&e.path())) {
                let _ = std::fs::remove_dir(entry.path());
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
