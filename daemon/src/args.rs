//! The flags of `wsfsd`: the clap definition alone, which `cli/build.rs`
//! also compiles to write the `wsfsd.8` man page.

use std::path::PathBuf;

use clap::Parser;

/// The wsfs daemon: serves workspaces to the `wsfs` CLI over a Unix socket,
/// and with --csi-endpoint to kubelet as a CSI node plugin.
///
/// Configured by flags, WSFS_* environment variables and a config file
/// (/etc/wsfs/config.toml for root), in that order of precedence: every
/// setting is in docs/config.md, and `wsfs config` shows their values.
/// Logs go to wsfsd.log in the state dir (WSFS_LOG_FORMAT=json: JSON lines).
#[derive(Parser)]
#[command(name = "wsfsd", version = wsfs_build_id::VERSION)]
pub struct Args {
    /// Print "ready" on stdout once the sockets accept connections.
    #[arg(long)]
    pub notify_ready: bool,
    /// Read settings from this TOML file (`none`: no file) [env: WSFS_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also serve the CSI Identity and Node services on this Unix socket
    /// (e.g. unix:///csi/csi.sock), for kubelet's ephemeral inline volumes
    /// [env: WSFS_CSI_ENDPOINT].
    #[arg(long, value_name = "ENDPOINT")]
    pub csi_endpoint: Option<String>,
    /// The CSI driver name pods give as `csi.driver` [env: WSFS_CSI_DRIVER_NAME]
    /// [default: csi.wsfs.dev].
    #[arg(long, value_name = "NAME")]
    pub csi_driver_name: Option<String>,
    /// This node's CSI node id (in Kubernetes: spec.nodeName) [env: WSFS_NODE_ID]
    /// [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464;
    /// port 0: any free port, shown by `wsfs status`) [env: WSFS_METRICS_ADDR].
    /// Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}
