//! The CSI Node service: ephemeral inline volumes published as wsfs views at
//! kubelet's target paths.
//!
//! A publication is remembered by target path with the request that made it,
//! so that a repeated request is answered OK and a different one for the same
//! target `ALREADY_EXISTS`; a target with a request in flight is `ABORTED`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use tonic::{Request, Response, Status};
use wsfs_api::csi::{self, node_server::Node};
use wsfs_pipeline::workspace_files::{self, FilesCheckError};

use crate::mount_error::MountError;
use crate::mounts::AttachRequest;
use crate::service::{blocking, mount_status};
use crate::state::Daemon;
use crate::sys;
use crate::views::ViewKind;

use super::volume::{self, PersistPolicy, VolumeSpec};

/// What a target path was published with.
#[derive(Clone, Debug, PartialEq)]
struct Publication {
    volume_id: String,
    context: BTreeMap<String, String>,
    readonly: bool,
    access_mode: i32,
    spec: VolumeSpec,
}

/// A publication as its view's record keeps it (the spec is parsed again).
#[derive(Serialize, Deserialize)]
struct Kept {
    volume_id: String,
    context: BTreeMap<String, String>,
    readonly: bool,
    access_mode: i32,
}

impl Publication {
    /// The publication as kept with its view.
    fn keep(&self) -> Vec<u8> {
        let kept = Kept {
            volume_id: self.volume_id.clone(),
            context: self.context.clone(),
            readonly: self.readonly,
            access_mode: self.access_mode,
        };
        serde_json::to_vec(&kept).expect("a publication always serializes")
    }

    /// A publication kept with a view by an earlier daemon.
    fn kept(bytes: &[u8]) -> Result<Publication, String> {
        let kept: Kept = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let attributes = kept.context.clone().into_iter().collect();
        Ok(Publication {
            spec: volume::parse(&attributes)?,
            volume_id: kept.volume_id,
            context: kept.context,
            readonly: kept.readonly,
            access_mode: kept.access_mode,
        })
    }

    /// Whether unpublishing persists the view's changes.
    fn persists(&self) -> bool {
        self.spec.persist == PersistPolicy::OnSuccess && !self.readonly
    }
}

#[derive(Default)]
struct Table {
    published: BTreeMap<PathBuf, Publication>,
    in_flight: BTreeSet<PathBuf>,
}

/// The Node service.
pub struct NodeService {
    daemon: Arc<Daemon>,
    node_id: String,
    table: Arc<Mutex<Table>>,
}

/// Marks a target busy for one request; clears the mark when dropped.
struct InFlight {
    table: Arc<Mutex<Table>>,
    target: PathBuf,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.table.lock().unwrap().in_flight.remove(&self.target);
    }
}

impl NodeService {
    /// Serves volumes of `daemon` on the node `node_id`, with the
    /// publications of the views an earlier daemon left (taken over).
    pub fn new(daemon: Arc<Daemon>, node_id: String) -> Self {
        let mut table = Table::default();
        for view in daemon.mounts.views() {
            let Some(note) = &view.note else { continue };
            match Publication::kept(note) {
                Ok(publication) => {
                    table.published.insert(view.mountpoint.clone(), publication);
                }
                Err(e) => {
                    tracing::error!(target = %view.mountpoint.display(), error = %e, "cannot read a kept publication")
                }
            }
        }
        if !table.published.is_empty() {
            tracing::info!(
                publications = table.published.len(),
                "took over the publications of the previous daemon"
            );
        }
        NodeService {
            daemon,
            node_id,
            table: Arc::new(Mutex::new(table)),
        }
    }

    fn begin(&self, target: &Path) -> Result<InFlight, Status> {
        if !self.table.lock().unwrap().in_flight.insert(target.to_path_buf()) {
            return Err(Status::aborted(format!(
                "an operation on {} is in progress: retry when it is done",
                target.display()
            )));
        }
        Ok(InFlight {
            table: self.table.clone(),
            target: target.to_path_buf(),
        })
    }
}

/// A required string field, non-empty.
fn required<'a>(value: &'a str, field: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(value)
}

/// A required absolute path field.
fn required_path(value: &str, field: &str) -> Result<PathBuf, Status> {
    let path = PathBuf::from(required(value, field)?);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} must be an absolute path"
        )));
    }
    Ok(path)
}

/// Checks the capability: a file system volume (no block device), any access mode.
fn access_mode(capability: Option<&csi::VolumeCapability>) -> Result<i32, Status> {
    use csi::volume_capability::AccessType;
    let capability = capability.ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
    match capability.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => {
            return Err(Status::invalid_argument(
                "block access is not supported: wsfs volumes are file systems (use a mount volume)",
            ))
        }
        None => {
            return Err(Status::invalid_argument(
                "volume_capability.access_type is required (mount)",
            ))
        }
    }
    Ok(capability
        .access_mode
        .as_ref()
        .map(|m| m.mode)
        .unwrap_or_default())
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_publish_volume(
        &self,
        request: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        let volume_id = required(&req.volume_id, "volume_id")?.to_string();
        let target = required_path(&req.target_path, "target_path")?;
        let access_mode = access_mode(req.volume_capability.as_ref())?;
        let spec = volume::parse(&req.volume_context).map_err(Status::invalid_argument)?;
        let publication = Publication {
            volume_id,
            context: req.volume_context.into_iter().collect(),
            readonly: req.readonly,
            access_mode,
            spec,
        };
        let in_flight = self.begin(&target)?;
        if let Some(existing) = self.table.lock().unwrap().published.get(&target) {
            return if *existing == publication {
                Ok(Response::new(csi::NodePublishVolumeResponse {}))
            } else {
                Err(Status::already_exists(format!(
                    "{} is already published with volume {} and other attributes: unpublish it first",
                    target.display(),
                    existing.volume_id
                )))
            };
        }
        let (daemon, table) = (self.daemon.clone(), self.table.clone());
        // The mount and its record happen together, and the target stays in
        // flight until both are done, even if kubelet gives up on this call
        // meanwhile: its retry then finds the publication, not a stray mount.
        blocking(move || {
            let _in_flight = in_flight;
            publish(&daemon, &publication, &target)?;
            tracing::info!(
                target = %target.display(),
                volume = %publication.volume_id,
                workspace = %publication.spec.workspace,
                pod = publication.spec.pod.as_deref().unwrap_or("-"),
                "published"
            );
            table.lock().unwrap().published.insert(target, publication);
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        required(&req.volume_id, "volume_id")?;
        let target = required_path(&req.target_path, "target_path")?;
        let in_flight = self.begin(&target)?;
        let (daemon, table) = (self.daemon.clone(), self.table.clone());
        // As for publish: done as a whole even if kubelet gives up on the call.
        blocking(move || {
            let _in_flight = in_flight;
            let publication = table.lock().unwrap().published.get(&target).cloned();
            let persisted = unpublish(&daemon, publication.as_ref(), &target)?;
            table.lock().unwrap().published.remove(&target);
            tracing::info!(target = %target.display(), volume = %req.volume_id, persisted = ?persisted, "unpublished");
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        required(&req.volume_id, "volume_id")?;
        let path = required_path(&req.volume_path, "volume_path")?;
        let known = self
            .table
            .lock()
            .unwrap()
            .published
            .get(&path)
            .is_some_and(|p| p.volume_id == req.volume_id);
        if !known {
            return Err(Status::not_found(format!(
                "volume {} is not published at {}",
                req.volume_id,
                path.display()
            )));
        }
        let usage = blocking(move || usage(&path)).await?;
        Ok(Response::new(csi::NodeGetVolumeStatsResponse {
            usage,
            volume_condition: None,
        }))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        use csi::node_service_capability::{rpc::Type, Rpc, Type as Kind};
        let rpc = |t: Type| csi::NodeServiceCapability {
            r#type: Some(Kind::Rpc(Rpc { r#type: t as i32 })),
        };
        Ok(Response::new(csi::NodeGetCapabilitiesResponse {
            capabilities: vec![rpc(Type::GetVolumeStats)],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        Ok(Response::new(csi::NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

/// Mounts the view and checks its Workspace Files; leaves nothing mounted on failure.
fn publish(daemon: &Daemon, publication: &Publication, target: &Path) -> Result<(), Status> {
    let spec = &publication.spec;
    // A read-only publish of an isolated view is a read-only view.
    let kind = if publication.readonly {
        ViewKind::ReadOnly
    } else {
        spec.kind
    };
    let request = AttachRequest {
        workspace: &spec.workspace,
        mountpoint: target,
        kind,
        sub_path: spec.sub_path.clone(),
        upper_dir: None,
        prefetch: crate::mounts::Prefetch::asked(spec.prefetch, false),
        prefetch_key: spec.prefetch_key.as_deref(),
        note: Some(publication.keep()),
        caller: None,
    };
    daemon.mounts.attach(&request).map_err(|e| match e {
        MountError::BadSubPath(..) => Status::invalid_argument(format!("volume attribute \"subPath\": {e}")),
        e => mount_status(e),
    })?;
    let shown = spec.workspace.to_string();
    let checked = workspace_files::check(target, &spec.files, &shown, &spec.mount_path);
    let Err(failed) = checked else {
        return Ok(());
    };
    if let Err(e) = daemon.mounts.detach(target, false, true) {
        tracing::warn!(target = %target.display(), error = %e, "cannot detach a view that failed its files check");
    }
    Err(match failed {
        FilesCheckError::Missing { .. } => Status::failed_precondition(failed.to_string()),
        FilesCheckError::Io { .. } => Status::unavailable(failed.to_string()),
    })
}

/// Detaches the view at `target` (persisting when its publication asks for
/// it) and removes the target directory; returns the layer persisted. A
/// target this daemon does not know is cleaned up if a previous daemon left a
/// view there, and is otherwise fine: unpublishing is idempotent.
fn unpublish(
    daemon: &Daemon,
    publication: Option<&Publication>,
    target: &Path,
) -> Result<Option<String>, Status> {
    let persisted = match publication {
        Some(p) => {
            let persist = p.persists();
            // Without changes to keep, a busy view is detached lazily: pod
            // teardown never waits on a straggling process.
            let outcome = daemon
                .mounts
                .detach(target, persist, !persist)
                .map_err(mount_status)?;
            outcome.map(|(_, o)| o.layer.to_hex())
        }
        None if daemon.mounts.views().iter().any(|v| v.mountpoint == target) => {
            // A view without a publication this daemon can read: whether it
            // should be persisted is unknown, so nothing is discarded.
            return Err(Status::failed_precondition(format!(
                "{} is a wsfs view whose publication was lost: detach it with `wsfs detach` (add --persist to \
                 keep its changes), then retry",
                target.display()
            )));
        }
        None => {
            if sys::is_wsfs_mount(target) {
                tracing::info!(target = %target.display(), "clearing a stale wsfs mount");
                sys::unmount(target, true)
                    .map_err(|e| Status::internal(format!("{}: {e}", target.display())))?;
            }
            None
        }
    };
    match std::fs::remove_dir(target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(target = %target.display(), error = %e, "cannot remove the target path"),
    }
    Ok(persisted)
}

/// Bytes and inodes of the file system at `path`.
fn usage(path: &Path) -> Result<Vec<csi::VolumeUsage>, Status> {
    let stats = sys::statvfs(path).map_err(|e| Status::internal(format!("{}: {e}", path.display())))?;
    let unit = |unit: csi::volume_usage::Unit, total: u64, free: u64, available: u64| csi::VolumeUsage {
        available: available as i64,
        total: total as i64,
        used: total.saturating_sub(free) as i64,
        unit: unit as i32,
    };
    let block = stats.f_frsize;
    Ok(vec![
        unit(
            csi::volume_usage::Unit::Bytes,
            stats.f_blocks * block,
            stats.f_bfree * block,
            stats.f_bavail * block,
        ),
        unit(
            csi::volume_usage::Unit::Inodes,
            stats.f_files,
            stats.f_ffree,
            stats.f_favail,
        ),
    ])
}
