//! The CSI Identity service: who the plugin is and whether it is ready.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use wsfs_api::csi::{self, identity_server::Identity};

use crate::state::Daemon;

/// How long a probe waits for the remote before answering "not ready".
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Identity service.
pub struct IdentityService {
    daemon: Arc<Daemon>,
    driver_name: String,
    /// The remote answered once: from then on the plugin is ready.
    reached: AtomicBool,
}

impl IdentityService {
    /// Serves the identity of the driver `driver_name`.
    pub fn new(daemon: Arc<Daemon>, driver_name: String) -> Self {
        IdentityService {
            daemon,
            driver_name,
            reached: AtomicBool::new(false),
        }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: [("remote".to_string(), self.daemon.store.remote().url().to_string())].into(),
        }))
    }

    /// No controller service and no topology: ephemeral volumes need neither.
    async fn get_plugin_capabilities(
        &self,
        _request: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(csi::GetPluginCapabilitiesResponse::default()))
    }

    /// Ready once the remote answers; "not ready" (not an error) while it does not.
    async fn probe(
        &self,
        _request: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        let store = self.daemon.store.clone();
        let probe = tokio::task::spawn_blocking(move || store.remote().probe());
        let ready = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(Ok(()))) => {
                self.reached.store(true, Ordering::Relaxed);
                true
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "probe: the remote is unreachable");
                false
            }
            Ok(Err(e)) => return Err(Status::internal(format!("probe failed: {e}"))),
            Err(_) => {
                tracing::warn!(
                    seconds = PROBE_TIMEOUT.as_secs(),
                    "probe: the remote did not answer in time"
                );
                false
            }
        };
        Ok(Response::new(csi::ProbeResponse { ready: Some(ready) }))
    }
}
