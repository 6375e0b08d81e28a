//! A CSI client driving a daemon's node plugin over its socket, as kubelet
//! does: blocking calls on a runtime of its own, and request builders.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;

use tonic::transport::Channel;
use tonic::{Response, Status};
use wsfs_api::csi::identity_client::IdentityClient;
use wsfs_api::csi::node_client::NodeClient;
use wsfs_api::csi::volume_capability::{access_mode::Mode, AccessMode, AccessType, BlockVolume, MountVolume};
use wsfs_api::csi::{self, VolumeCapability};

/// A connected client of the Identity and Node services.
pub struct CsiClient {
    runtime: tokio::runtime::Runtime,
    identity: IdentityClient<Channel>,
    node: NodeClient<Channel>,
}

impl CsiClient {
    /// Connects to the plugin's Unix socket.
    pub fn connect(socket: &Path) -> CsiClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = runtime
            .block_on(wsfs_api::unix_channel(socket))
            .unwrap_or_else(|e| panic!("connect to the CSI endpoint {}: {e}", socket.display()));
        CsiClient {
            runtime,
            identity: IdentityClient::new(channel.clone()),
            node: NodeClient::new(channel),
        }
    }

    fn call<T>(&self, call: impl Future<Output = Result<Response<T>, Status>>) -> Result<T, Status> {
        self.runtime.block_on(call).map(Response::into_inner)
    }

    /// `GetPluginInfo`.
    pub fn plugin_info(&self) -> Result<csi::GetPluginInfoResponse, Status> {
        self.call(
            self.identity
                .clone()
                .get_plugin_info(csi::GetPluginInfoRequest {}),
        )
    }

    /// `GetPluginCapabilities`.
    pub fn plugin_capabilities(&self) -> Result<csi::GetPluginCapabilitiesResponse, Status> {
        self.call(
            self.identity
                .clone()
                .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {}),
        )
    }

    /// `Probe`.
    pub fn probe(&self) -> Result<csi::ProbeResponse, Status> {
        self.call(self.identity.clone().probe(csi::ProbeRequest {}))
    }

    /// `NodeGetInfo`.
    pub fn node_info(&self) -> Result<csi::NodeGetInfoResponse, Status> {
        self.call(self.node.clone().node_get_info(csi::NodeGetInfoRequest {}))
    }

    /// `NodeGetCapabilities`.
    pub fn node_capabilities(&self) -> Result<csi::NodeGetCapabilitiesResponse, Status> {
        self.call(
            self.node
                .clone()
                .node_get_capabilities(csi::NodeGetCapabilitiesRequest {}),
        )
    }

    /// `NodePublishVolume`.
    pub fn publish(&self, request: csi::NodePublishVolumeRequest) -> Result<(), Status> {
        self.call(self.node.clone().node_publish_volume(request))
            .map(drop)
    }

    /// `NodeUnpublishVolume`.
    pub fn unpublish(&self, volume_id: &str, target: &Path) -> Result<(), Status> {
        let request = csi::NodeUnpublishVolumeRequest {
            volume_id: volume_id.to_string(),
            target_path: target.display().to_string(),
        };
        self.call(self.node.clone().node_unpublish_volume(request))
            .map(drop)
    }

    /// `NodeGetVolumeStats`.
    pub fn volume_stats(
        &self,
        volume_id: &str,
        path: &Path,
    ) -> Result<csi::NodeGetVolumeStatsResponse, Status> {
        let request = csi::NodeGetVolumeStatsRequest {
            volume_id: volume_id.to_string(),
            volume_path: path.display().to_string(),
            staging_target_path: String::new(),
        };
        self.call(self.node.clone().node_get_volume_stats(request))
    }
}

/// A filesystem volume capability with `mode`.
pub fn mount_capability(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

/// A block volume capability (which wsfs refuses).
pub fn block_capability() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }
}

/// The request kubelet sends for an inline volume with `attributes`
/// published read-write at `target` (plus the keys it adds with `podInfoOnMount`).
pub fn publish_request(
    volume_id: &str,
    target: &Path,
    attributes: &[(&str, &str)],
) -> csi::NodePublishVolumeRequest {
    let mut context: HashMap<String, String> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in [
        ("csi.storage.k8s.io/ephemeral", "true"),
        ("csi.storage.k8s.io/pod.name", "build-pod"),
        ("csi.storage.k8s.io/pod.namespace", "ci"),
    ] {
        context.insert(key.to_string(), value.to_string());
    }
    csi::NodePublishVolumeRequest {
        volume_id: volume_id.to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount_capability(Mode::SingleNodeWriter)),
        readonly: false,
        volume_context: context,
        ..Default::default()
    }
}
