//! The wsfs daemon API: the protobuf schema (`proto/wsfs.proto`), its gRPC
//! client and server stubs, and where a daemon lives (state dir, socket);
//! and the part of the CSI specification the daemon serves to kubelet
//! (`proto/csi.proto`); and the settings of every binary (`config`).
//!
//! Only this crate knows protobuf; the daemon serves it, the CLI calls it.

pub mod config;
pub mod paths;

/// Generated messages and stubs of `wsfs.v1`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("wsfs.v1");
}

/// Generated messages and stubs of the CSI services wsfs serves (`csi.v1`).
#[allow(missing_docs, clippy::all)]
pub mod csi {
    tonic::include_proto!("csi.v1");
}

use std::path::Path;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// A client of the daemon listening on `socket`.
pub type Client = pb::wsfs_client::WsfsClient<Channel>;

/// Connects to the daemon's Unix socket.
pub async fn connect(socket: &Path) -> Result<Client, tonic::transport::Error> {
    let channel = unix_channel(socket).await?;
    Ok(pb::wsfs_client::WsfsClient::new(channel).max_decoding_message_size(64 << 20))
}

/// A gRPC channel over the Unix socket at `socket` (the daemon's API socket
/// or its CSI endpoint).
pub async fn unix_channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is required by the API but unused: the connector dials the socket.
    Endpoint::from_static("http://wsfsd.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
}
