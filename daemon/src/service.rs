//! The gRPC service: one handler per request kind, each a thin translation
//! between protobuf messages and the store or the mount table. Blocking work
//! (persist, attach, detach) runs on tokio's blocking pool.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wsfs_api::pb::{self, wsfs_server::Wsfs};
use wsfs_fs::error::StoreError;
use wsfs_fs::persist::{persist, PersistError, PersistOutcome, PersistRequest};
use wsfs_fs::prefetch::PrefetchProgress;
use wsfs_fs::workspace::{self, WorkspaceName};
use wsfs_fs::{check, gc, unix_time};

use crate::mount_error::MountError;
use crate::mounts::{AttachRequest, Prefetch, View};
use crate::peer::Peer;
use crate::requests::{absolute, namespace, prefetch_key, workspace_name};
use crate::state::Daemon;
use crate::views::{parse_sub_path, ViewKind};

/// How often persist progress is sent to the client.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// The wsfs API served over the daemon's socket.
pub struct Service {
    daemon: Arc<Daemon>,
}

impl Service {
    /// Serves requests against `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Service { daemon }
    }

    /// Refuses `what` unless the caller is root or in the admin group.
    fn require_admin<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        Peer::of_request(request)?.require_admin(what, self.daemon.config.admin_group)
    }
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Remote { not_found: false, .. } | StoreError::RemoteUrl { .. } => {
            Status::unavailable(e.to_string())
        }
        StoreError::MissingLayer(_) => Status::not_found(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn persist_status(e: PersistError) -> Status {
    match e {
        PersistError::BadPath { .. } => Status::invalid_argument(e.to_string()),
        PersistError::Source { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Status::permission_denied(e.to_string())
        }
        PersistError::Source { .. } | PersistError::Replaced { .. } => {
            Status::failed_precondition(e.to_string())
        }
        PersistError::Store(e) => store_status(e),
        PersistError::Collected(_) | PersistError::Cancelled => Status::aborted(e.to_string()),
        PersistError::LayerCondemned(_) => Status::failed_precondition(e.to_string()),
    }
}

fn gc_objects(found: Vec<gc::Found>) -> Vec<pb::GcObject> {
    found
        .into_iter()
        .map(|f| pb::GcObject {
            key: f.key,
            bytes: f.bytes,
            deletable_after_ms: f.deletable_after_ms,
        })
        .collect()
}

/// Trims the frame cache to empty (a dry run only tells how much it holds).
fn gc_cache(daemon: &Daemon, dry_run: bool) -> pb::GcReply {
    let cache = daemon.store.frame_cache();
    let before = cache.bytes();
    if !dry_run {
        cache.trim(0);
    }
    tracing::info!(freed = before - cache.bytes(), dry_run, "trimmed the frame cache");
    pb::GcReply {
        dry_run,
        cache_freed_bytes: before,
        cache_bytes: cache.bytes(),
        ..pb::GcReply::default()
    }
}

/// Collects the remote's garbage.
fn gc_remote(daemon: &Daemon, opts: &gc::GcOptions) -> Result<pb::GcReply, Status> {
    let report = gc::run(&daemon.store, opts).map_err(|e| match e {
        gc::GcError::GraceTooShort { .. } => Status::invalid_argument(e.to_string()),
        gc::GcError::Store(e) => store_status(e),
    })?;
    tracing::info!(
        dry_run = opts.dry_run,
        expired = report.expired.len(),
        deleted = report.deleted.len(),
        condemned = report.condemned.len(),
        pending = report.pending.len(),
        repacked = report.repacked.len(),
        traces_deleted = report.traces_deleted.len(),
        "garbage collected"
    );
    Ok(pb::GcReply {
        dry_run: opts.dry_run,
        grace_ms: opts.grace.as_millis() as u64,
        trace_max_age_ms: opts.trace_max_age.as_millis() as u64,
        traces_deleted: gc_objects(report.traces_deleted),
        expired: report
            .expired
            .into_iter()
            .map(|(ws, layers)| pb::RemoveReply {
                workspace: ws.to_string(),
                layers: layers as u64,
            })
            .collect(),
        deleted: gc_objects(report.deleted),
        condemned: gc_objects(report.condemned),
        pending: gc_objects(report.pending),
        uncondemned: report.uncondemned as u64,
        repacked: report
            .repacked
            .into_iter()
            .map(|r| pb::GcRepack {
                key: r.key(),
                bytes: r.bytes,
                live_bytes: r.live_bytes,
                into: r.into,
            })
            .collect(),
        live_layers: report.live_layers as u64,
        live_packs: report.live_packs as u64,
        ..pb::GcReply::default()
    })
}

/// The protobuf form of a check's report.
fn check_reply(read_data: bool, r: check::CheckReport) -> pb::CheckReply {
    let keys = |packs: Vec<wsfs_fs::ids::PackId>| packs.iter().map(wsfs_fs::keys::corrupt).collect();
    pb::CheckReply {
        read_data,
        workspaces: r.workspaces as u64,
        layers: r.layers as u64,
        packs: r.packs as u64,
        chunks: r.chunks,
        pack_bytes_read: r.pack_bytes_read,
        broken: r
            .broken
            .into_iter()
            .map(|b| pb::CheckBroken {
                key: b.key,
                problem: b.problem.code().to_string(),
                detail: b.problem.to_string(),
                layers: b.layers.iter().map(|l| l.to_hex()).collect(),
                workspaces: b.workspaces.iter().map(|w| w.to_string()).collect(),
            })
            .collect(),
        marked: keys(r.marked),
        unmarked: keys(r.unmarked),
        forgotten: r.forgotten as u64,
    }
}

/// The gRPC status of a failed mount operation.
pub(crate) fn mount_status(e: MountError) -> Status {
    match e {
        MountError::BadMountpoint(..) | MountError::BadRequest(_) | MountError::BadSubPath(..) => {
            Status::invalid_argument(e.to_string())
        }
        MountError::NoWorkspace(_) | MountError::NotMounted(_) => Status::not_found(e.to_string()),
        MountError::Busy(..) | MountError::ReadOnlyView(_) | MountError::UpperDir { .. } => {
            Status::failed_precondition(e.to_string())
        }
        MountError::Persist { ref error, .. } => {
            let code = match **error {
                PersistError::Store(StoreError::Remote { not_found: false, .. }) => tonic::Code::Unavailable,
                _ => tonic::Code::Internal,
            };
            Status::new(code, e.to_string())
        }
        MountError::Forbidden(_) => Status::permission_denied(e.to_string()),
        MountError::System(..) => Status::internal(e.to_string()),
        MountError::Store(e) => store_status(e),
    }
}

/// Sets `ws` to expire `after_ms` from now (nothing when 0); returns when (or 0).
fn expire(daemon: &Daemon, ws: &WorkspaceName, after_ms: u64) -> Result<u64, Status> {
    if after_ms == 0 {
        return Ok(0);
    }
    let at_ms = unix_time::now_millis().saturating_add(after_ms);
    workspace::set_expiry(&daemon.store, ws, at_ms).map_err(store_status)?;
    Ok(at_ms)
}

fn persist_result(ws: String, o: PersistOutcome) -> pb::PersistResult {
    pb::PersistResult {
        workspace: ws,
        layer: o.layer.to_hex(),
        files: o.files,
        bytes: o.bytes,
        new_bytes: o.new_bytes,
        stored_bytes: o.stored_bytes,
        skipped: o.skipped,
        deleted: o.deleted,
        overrode: o.overrode,
        expires_at_ms: 0,
    }
}

/// A prefetch counter (0 without prefetch).
fn prefetched(
    progress: &Option<Arc<PrefetchProgress>>,
    counter: impl Fn(&PrefetchProgress) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    progress
        .as_ref()
        .map_or(0, |p| counter(p).load(std::sync::atomic::Ordering::Relaxed))
}

fn view_info(v: &View) -> pb::MountInfo {
    pb::MountInfo {
        mountpoint: v.mountpoint.display().to_string(),
        workspace: v.workspace.to_string(),
        version: v.version.clone(),
        layers: v.layers.iter().map(|l| l.to_hex()).collect(),
        view: v.kind.to_string(),
        files: v.totals.0,
        bytes: v.totals.1,
        sub_path: String::from_utf8_lossy(&v.sub_path).into_owned(),
        upper_dir: v
            .scratch
            .as_ref()
            .map(|s| s.upper().display().to_string())
            .unwrap_or_default(),
        prefetch_key: v.prefetch_key.clone(),
        prefetch_state: v
            .prefetch
            .as_ref()
            .map(|p| p.state.lock().unwrap().clone())
            .unwrap_or_default(),
        prefetch_files_done: prefetched(&v.prefetch, |p| &p.files_done),
        prefetch_files_total: prefetched(&v.prefetch, |p| &p.files_total),
        prefetch_bytes_done: prefetched(&v.prefetch, |p| &p.bytes_done),
        prefetch_bytes_total: prefetched(&v.prefetch, |p| &p.bytes_total),
        prefetch_pushed_bytes: prefetched(&v.prefetch, |p| &p.pushed_bytes),
        prefetch_first_fetched: v.prefetch.as_ref().map(|p| p.first_fetched()).unwrap_or_default(),
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("request handler failed: {e}")))?
}

#[tonic::async_trait]
impl Wsfs for Service {
    type PersistStream = ReceiverStream<Result<pb::PersistEvent, Status>>;

    async fn persist(
        &self,
        request: Request<pb::PersistRequest>,
    ) -> Result<Response<Self::PersistStream>, Status> {
        let peer = Peer::of_request(&request)?;
        let caller = peer.caller();
        let req = request.into_inner();
        let ws = workspace_name(&req.workspace)?;
        for key in &req.prefetch_keys {
            prefetch_key(key)?;
        }
        let admin_group = self.daemon.config.admin_group;
        let persist_threads = self.daemon.config.persist_threads;
        let root = PathBuf::from(std::ffi::OsStr::from_bytes(&req.root));
        let paths: Vec<PathBuf> = req
            .paths
            .iter()
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let daemon = self.daemon.clone();
        // A client that goes away (its stream dropped) calls the persist off:
        // whoever asked for it may be deleting the workspace now.
        let cancelled = Arc::new(AtomicBool::new(false));
        // Dropped when the persist ends, however it ends: the watcher's copy of
        // the sender then goes too, so the stream ends.
        let (ended, persist_ended) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn({
            let (tx, cancelled, ws) = (tx.clone(), cancelled.clone(), ws.clone());
            async move {
                tokio::select! {
                    biased;
                    _ = persist_ended => {}
                    () = tx.closed() => {
                        cancelled.store(true, Ordering::SeqCst);
                        tracing::info!(workspace = %ws, "the client of a persist went away: cancelling it");
                    }
                }
            }
        });
        tokio::task::spawn_blocking(move || {
            let _ended = ended;
            let mut last = Instant::now();
            let mut report = |p: &wsfs_fs::persist::PersistProgress| {
                if last.elapsed() >= PROGRESS_EVERY || p.files_done == p.files_total {
                    last = Instant::now();
                    let progress = pb::Progress {
                        files_done: p.files_done,
                        files_total: p.files_total,
                        bytes_done: p.bytes_done,
                        bytes_total: p.bytes_total,
                    };
                    let event = pb::persist_event::Event::Progress(progress);
                    let _ = tx.blocking_send(Ok(pb::PersistEvent { event: Some(event) }));
                }
            };
            let request = PersistRequest {
                root: &root,
                paths: &paths,
                workspace: &ws,
                host: &daemon.host,
                cancelled: Some(&cancelled),
                caller: caller.as_ref(),
                prefetch_keys: &req.prefetch_keys,
                threads: match req.threads {
                    0 => persist_threads,
                    n => n as usize,
                },
            };
            // Setting the expiry of a workspace others persisted to deletes their
            // layers later: as `wsfs expire`, that is for root and the admin group.
            if req.expire_after_ms > 0 && !peer.is_admin(admin_group) {
                let allowed = match workspace::layers(&daemon.store, &ws) {
                    Ok(layers) if layers.is_empty() => Ok(()),
                    Ok(_) => {
                        peer.require_admin("persist --expire-after on an existing workspace", admin_group)
                    }
                    Err(e) => Err(store_status(e)),
                };
                if let Err(status) = allowed {
                    return drop(tx.blocking_send(Err(status)));
                }
            }
            let outcome = persist(&daemon.store, &request, &mut report);
            let event = match outcome {
                Ok(o) => {
                    tracing::info!(workspace = %ws, layer = %o.layer, files = o.files, new_bytes = o.new_bytes, "persisted");
                    let mut result = persist_result(ws.to_string(), o);
                    match expire(&daemon, &ws, req.expire_after_ms) {
                        Ok(at_ms) => {
                            result.expires_at_ms = at_ms;
                            Ok(pb::PersistEvent {
                                event: Some(pb::persist_event::Event::Result(result)),
                            })
                        }
                        Err(e) => Err(Status::new(
                            e.code(),
                            format!(
                                "persisted layer {} to {ws}, but could not set its expiry: {}",
                                result.layer,
                                e.message()
                            ),
                        )),
                    }
                }
                Err(e) => {
                    tracing::warn!(workspace = %ws, error = %e, "persist failed");
                    Err(persist_status(e))
                }
            };
            let _ = tx.blocking_send(event);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn attach(&self, request: Request<pb::AttachRequest>) -> Result<Response<pb::MountInfo>, Status> {
        let caller = Peer::of_request(&request)?.caller();
        let req = request.into_inner();
        let ws = workspace_name(&req.workspace)?;
        let mountpoint = absolute(&req.mountpoint, "mountpoint")?;
        let kind: ViewKind = req.view.parse().map_err(mount_status)?;
        let sub_path = parse_sub_path(&req.sub_path).map_err(mount_status)?;
        let upper_dir = match req.upper_dir.as_str() {
            "" => None,
            dir => Some(absolute(dir, "--upper-dir")?),
        };
        let prefetch_key = match req.prefetch_key.as_str() {
            "" => None,
            key => Some(prefetch_key(key)?.to_string()),
        };
        let daemon = self.daemon.clone();
        let view = blocking(move || {
            let request = AttachRequest {
                workspace: &ws,
                mountpoint: &mountpoint,
                kind,
                sub_path,
                upper_dir: upper_dir.as_deref(),
                prefetch: Prefetch::asked(req.prefetch, req.no_prefetch),
                prefetch_key: prefetch_key.as_deref(),
                note: None,
                caller: caller.as_ref(),
            };
            daemon.mounts.attach(&request).map_err(mount_status)
        })
        .await?;
        Ok(Response::new(view_info(&view)))
    }

    async fn detach(&self, request: Request<pb::DetachRequest>) -> Result<Response<pb::DetachReply>, Status> {
        let peer = Peer::of_request(&request)?;
        let req = request.into_inner();
        let mountpoint = absolute(&req.mountpoint, "mountpoint")?;
        if let Some(owner) = self.daemon.mounts.owner_of(&mountpoint) {
            peer.require_owner(&format!("detach {}", mountpoint.display()), owner)?;
        }
        let daemon = self.daemon.clone();
        let target = mountpoint.clone();
        let persisted = blocking(move || {
            let persist = match req.persist_if_changed {
                true => daemon.mounts.has_changes(&target).map_err(mount_status)?,
                false => req.persist,
            };
            let persisted = daemon
                .mounts
                .detach(&target, persist, false)
                .map_err(mount_status)?;
            Ok(persisted.map(|(ws, outcome)| persist_result(ws.to_string(), outcome)))
        })
        .await?;
        Ok(Response::new(pb::DetachReply {
            mountpoint: mountpoint.display().to_string(),
            persisted,
        }))
    }

    async fn log(&self, request: Request<pb::LogRequest>) -> Result<Response<pb::LogReply>, Status> {
        let ws = workspace_name(&request.into_inner().workspace)?;
        let daemon = self.daemon.clone();
        let name = ws.clone();
        let records =
            blocking(move || workspace::records(&daemon.store, &name).map_err(store_status)).await?;
        if records.is_empty() {
            return Err(mount_status(MountError::NoWorkspace(ws)));
        }
        Ok(Response::new(pb::LogReply {
            workspace: ws.to_string(),
            layers: records
                .into_iter()
                .map(|r| pb::LayerInfo {
                    layer: r.layer.to_hex(),
                    persisted_at_ms: r.persisted_at_ms,
                    host: r.host,
                    files: r.files,
                    bytes: r.bytes,
                })
                .collect(),
        }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let req = request.into_inner();
        let ns = namespace(&req.namespace)?.map(str::to_string);
        let daemon = self.daemon.clone();
        let found =
            blocking(move || workspace::list(&daemon.store, ns.as_deref()).map_err(store_status)).await?;
        Ok(Response::new(pb::ListReply {
            workspaces: found
                .into_iter()
                .map(|(ws, layers)| pb::WorkspaceInfo {
                    workspace: ws.to_string(),
                    layers: layers as u64,
                })
                .collect(),
        }))
    }

    async fn remove(&self, request: Request<pb::RemoveRequest>) -> Result<Response<pb::RemoveReply>, Status> {
        self.require_admin(&request, "wsfs rm")?;
        let ws = workspace_name(&request.into_inner().workspace)?;
        let daemon = self.daemon.clone();
        let name = ws.clone();
        let layers = blocking(move || workspace::delete(&daemon.store, &name).map_err(store_status)).await?;
        if layers == 0 {
            return Err(Status::not_found(format!(
                "workspace {ws} does not exist, so nothing was removed (`wsfs ls` lists workspaces)"
            )));
        }
        tracing::info!(workspace = %ws, layers, "removed");
        Ok(Response::new(pb::RemoveReply {
            workspace: ws.to_string(),
            layers: layers as u64,
        }))
    }

    async fn expire(&self, request: Request<pb::ExpireRequest>) -> Result<Response<pb::ExpireReply>, Status> {
        self.require_admin(&request, "wsfs expire")?;
        let req = request.into_inner();
        let ws = workspace_name(&req.workspace)?;
        let daemon = self.daemon.clone();
        let name = ws.clone();
        let at_ms = unix_time::now_millis().saturating_add(req.after_ms);
        let exists = blocking(move || {
            let exists = !workspace::layers(&daemon.store, &name)
                .map_err(store_status)?
                .is_empty();
            if exists {
                workspace::set_expiry(&daemon.store, &name, at_ms).map_err(store_status)?;
            }
            Ok(exists)
        })
        .await?;
        if !exists {
            return Err(mount_status(MountError::NoWorkspace(ws)));
        }
        Ok(Response::new(pb::ExpireReply {
            workspace: ws.to_string(),
            expires_at_ms: at_ms,
        }))
    }

    async fn remove_expired(
        &self,
        request: Request<pb::RemoveExpiredRequest>,
    ) -> Result<Response<pb::RemoveExpiredReply>, Status> {
        self.require_admin(&request, "wsfs rm --expired")?;
        let daemon = self.daemon.clone();
        let removed = blocking(move || {
            let mut removed = Vec::new();
            for (ws, at_ms) in workspace::expired(&daemon.store, unix_time::now_millis()).map_err(store_status)? {
                let layers = workspace::delete(&daemon.store, &ws).map_err(store_status)?;
                tracing::info!(workspace = %ws, layers, expired_at_ms = at_ms, "removed an expired workspace");
                removed.push(pb::RemoveReply {
                    workspace: ws.to_string(),
                    layers: layers as u64,
                });
            }
            Ok(removed)
        })
        .await?;
        Ok(Response::new(pb::RemoveExpiredReply { removed }))
    }

    async fn gc(&self, request: Request<pb::GcRequest>) -> Result<Response<pb::GcReply>, Status> {
        self.require_admin(&request, "wsfs gc")?;
        let req = request.into_inner();
        let daemon = self.daemon.clone();
        let reply = blocking(move || match req.cache {
            true => Ok(gc_cache(&daemon, req.dry_run)),
            false => {
                let opts = gc::GcOptions {
                    grace: match req.grace_ms {
                        0 => gc::DEFAULT_GRACE,
                        ms => Duration::from_millis(ms),
                    },
                    trace_max_age: req
                        .trace_max_age_ms
                        .map_or(gc::traces::DEFAULT_TRACE_MAX_AGE, Duration::from_millis),
                    dry_run: req.dry_run,
                };
                gc_remote(&daemon, &opts)
            }
        })
        .await?;
        Ok(Response::new(reply))
    }

    type CheckStream = ReceiverStream<Result<pb::CheckEvent, Status>>;

    async fn check(&self, request: Request<pb::CheckRequest>) -> Result<Response<Self::CheckStream>, Status> {
        self.require_admin(&request, "wsfs check")?;
        let read_data = request.into_inner().read_data;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let daemon = self.daemon.clone();
        tokio::task::spawn_blocking(move || {
            let last = std::sync::Mutex::new(None::<Instant>);
            let report = |p: &check::CheckProgress| {
                let mut last = last.lock().unwrap();
                if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) && p.done < p.total {
                    return;
                }
                *last = Some(Instant::now());
                let progress = pb::CheckProgress {
                    phase: p.phase.name().to_string(),
                    done: p.done,
                    total: p.total,
                    bytes_done: p.bytes_done,
                    bytes_total: p.bytes_total,
                };
                let event = pb::check_event::Event::Progress(progress);
                let _ = tx.blocking_send(Ok(pb::CheckEvent { event: Some(event) }));
            };
            let opts = check::CheckOptions {
                read_data,
                host: &daemon.host,
            };
            let event = match check::run(&daemon.store, &opts, &report) {
                Ok(r) => {
                    tracing::info!(
                        read_data,
                        broken = r.broken.len(),
                        marked = r.marked.len(),
                        "checked the remote"
                    );
                    let result = pb::check_event::Event::Result(check_reply(read_data, r));
                    Ok(pb::CheckEvent { event: Some(result) })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "check failed");
                    Err(store_status(e))
                }
            };
            let _ = tx.blocking_send(event);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let d = &self.daemon;
        let m = d.store.metrics().snapshot();
        let cache = d.store.frame_cache();
        let health = d.store.remote().health();
        Ok(Response::new(pb::StatusReply {
            remote_down: health.down_since.is_some(),
            remote_down_since_ms: health.down_since.map(unix_time::millis).unwrap_or(0),
            remote_error: if health.down_since.is_some() {
                health.last_error
            } else {
                String::new()
            },
            pid: std::process::id(),
            holder_pid: d.link.as_ref().map_or(0, |l| l.holder_pid()),
            metrics_addr: d.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
            state_dir: d.config.state_dir.display().to_string(),
            remote: d.store.remote().url().to_string(),
            remote_get_requests: m.remote_get_requests,
            remote_bytes_fetched: m.remote_bytes_fetched,
            remote_frames_fetched: m.remote_frames_fetched,
            remote_put_requests: m.remote_put_requests,
            remote_bytes_stored: m.remote_bytes_stored,
            cache_hits: m.cache_hits,
            cache_misses: m.cache_misses,
            cache_bytes: cache.bytes(),
            cache_budget_bytes: cache.budget(),
            read_errors: m.read_errors,
            mounts: d.mounts.views().iter().map(view_info).collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            shared_mounts: d
                .mounts
                .shared()
                .into_iter()
                .map(|s| pb::SharedMount {
                    version: s.version,
                    workspace: s.workspace.to_string(),
                    path: s.path.map(|p| p.display().to_string()).unwrap_or_default(),
                    views: s.views as u32,
                })
                .collect(),
        }))
    }

    async fn shutdown(
        &self,
        request: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownReply>, Status> {
        self.require_admin(&request, "wsfs shutdown")?;
        // A task of its own: the daemon stops even if this client goes away.
        let daemon = self.daemon.clone();
        let stopping = tokio::spawn(async move {
            let cleanup = daemon.clone();
            let detached = tokio::task::spawn_blocking(move || cleanup.mounts.detach_all()).await;
            daemon.shutdown.trigger();
            detached
        });
        let unmounted = stopping
            .await
            .and_then(|detached| detached)
            .map_err(|e| Status::internal(format!("shutdown failed: {e}")))?;
        Ok(Response::new(pb::ShutdownReply {
            unmounted: unmounted as u32,
        }))
    }

    async fn restart(
        &self,
        request: Request<pb::RestartRequest>,
    ) -> Result<Response<pb::RestartReply>, Status> {
        self.require_admin(&request, "wsfs daemon restart")?;
        let daemon = &self.daemon;
        let Some(link) = &daemon.link else {
            return Err(Status::failed_precondition(
                "this wsfsd was started without wsfs-holder, so its mounts cannot outlive it: stop it with \
                 `wsfs shutdown` (which unmounts everything); the next `wsfs` command starts one under the holder",
            ));
        };
        link.restart()
            .map_err(|e| Status::unavailable(format!("cannot reach the holder: {e}")))?;
        let views = daemon.mounts.views().len() as u32;
        tracing::info!(views, "restart asked: leaving the mounts to the next daemon");
        daemon.shutdown.trigger_restart();
        Ok(Response::new(pb::RestartReply {
            pid: std::process::id(),
            views,
        }))
    }
}
