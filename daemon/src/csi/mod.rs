//! The CSI node plugin: the Identity and Node services of the CSI
//! specification (v1) on a Unix socket of their own, so that kubelet can
//! mount wsfs views into pods as ephemeral inline volumes.

mod identity;
mod node;
mod volume;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use wsfs_api::config::DEFAULT_CSI_DRIVER_NAME as DEFAULT_DRIVER_NAME;
use wsfs_api::csi::{identity_server::IdentityServer, node_server::NodeServer};

use crate::state::Daemon;

/// How the plugin is reached and what it calls itself.
#[derive(Clone, Debug)]
pub struct CsiConfig {
    /// The Unix socket kubelet and the registrar dial.
    pub socket: PathBuf,
    /// The driver name pods give in `csi.driver`.
    pub driver_name: String,
    /// This node's id.
    pub node_id: String,
}

impl CsiConfig {
    /// Checks the flags: `endpoint` is `unix:///path`, `unix:/path` or an absolute path.
    pub fn new(endpoint: &str, driver_name: &str, node_id: &str) -> Result<CsiConfig> {
        let path = endpoint
            .strip_prefix("unix://")
            .or_else(|| endpoint.strip_prefix("unix:"))
            .unwrap_or(endpoint);
        if !path.starts_with('/') {
            bail!("--csi-endpoint {endpoint:?}: expected unix:///absolute/path/csi.sock");
        }
        if !valid_driver_name(driver_name) {
            bail!(
                "--csi-driver-name {driver_name:?}: expected a DNS-style name of at most 63 characters \
                 (letters, digits, '-', '.'; starting and ending with a letter or digit), e.g. {DEFAULT_DRIVER_NAME}"
            );
        }
        if node_id.is_empty() {
            bail!("--node-id is empty: give this node's name (in Kubernetes: spec.nodeName)");
        }
        Ok(CsiConfig {
            socket: PathBuf::from(path),
            driver_name: driver_name.to_string(),
            node_id: node_id.to_string(),
        })
    }
}

fn valid_driver_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.len() <= 63
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Binds the plugin's socket, mode 0600 (kubelet connects as root),
/// replacing one a dead daemon left.
pub fn bind(config: &CsiConfig) -> Result<UnixListener> {
    crate::socket::bind(&config.socket, None, "the CSI endpoint")
}

/// Serves Identity and Node on `listener` until `stop` resolves.
pub async fn serve(
    daemon: Arc<Daemon>,
    config: CsiConfig,
    listener: UnixListener,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tracing::info!(socket = %config.socket.display(), driver = %config.driver_name, node = %config.node_id, "serving CSI");
    let identity = identity::IdentityService::new(daemon.clone(), config.driver_name);
    let node = node::NodeService::new(daemon, config.node_id);
    let served = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(identity))
        .add_service(NodeServer::new(node))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
        .await;
    let _ = std::fs::remove_file(&config.socket);
    served.context("serving CSI")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn endpoints_and_names() {
        let config = CsiConfig::new("unix:///csi/csi.sock", DEFAULT_DRIVER_NAME, "node-1").unwrap();
        assert_eq!(config.socket, Path::new("/csi/csi.sock"));
        assert_eq!(
            CsiConfig::new("/a/b.sock", "x", "n").unwrap().socket,
            Path::new("/a/b.sock")
        );
        assert!(CsiConfig::new("tcp://1.2.3.4:5", DEFAULT_DRIVER_NAME, "n").is_err());
        assert!(CsiConfig::new("unix:///s", "-bad", "n").is_err());
        assert!(CsiConfig::new("unix:///s", &"a".repeat(64), "n").is_err());
        assert!(CsiConfig::new("unix:///s", DEFAULT_DRIVER_NAME, "").is_err());
    }
}
