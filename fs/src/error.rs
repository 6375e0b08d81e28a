//! Error types of the library. Each variant names the object it is about.

use std::path::PathBuf;

use thiserror::Error;

use crate::ids::{ChunkId, LayerId, PackId};

/// A pack, frame or chunk that does not decode to what its id promises.
#[derive(Debug, Error)]
pub enum PackError {
    /// A compressed frame that does not decompress to its declared size.
    #[error("pack {0}: frame at offset {1} is corrupt: {2}")]
    Frame(PackId, u64, String),
    /// Bytes that do not hash to the chunk id they were fetched for.
    #[error("chunk {0} does not match its digest: its pack or the local cache is corrupt")]
    Digest(ChunkId),
    /// A pack whose trailing index cannot be read.
    #[error("pack {0}: bad index: {1}")]
    Index(PackId, String),
    /// A pack's relocation record that cannot be read or does not fit the
    /// frames a layer names.
    #[error("pack {0}: bad relocation record: {1}")]
    Relocation(PackId, String),
}

/// Failures of the store: remote, local database, cache, decoding.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A request to the remote failed (after retries).
    #[error(
        "remote {remote}: {op} {key} failed: {message}{}",
        if *not_found { "" } else { " (is the remote reachable? check WSFS_REMOTE and its credentials)" }
    )]
    Remote {
        /// The remote URL, without credentials.
        remote: String,
        /// GET, PUT or LIST.
        op: &'static str,
        /// The object key.
        key: String,
        /// What the object store said.
        message: String,
        /// The object does not exist.
        not_found: bool,
    },
    /// A remote URL that cannot be used.
    #[error("remote URL {url}: {why}")]
    RemoteUrl {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The local RocksDB database.
    #[error("local database {path}: {message}")]
    Db {
        /// Where the database lives.
        path: PathBuf,
        /// What RocksDB said.
        message: String,
    },
    /// A local file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Corrupt pack data.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// A layer manifest that does not decode.
    #[error("layer {layer}: {source}")]
    Manifest {
        /// The layer.
        layer: LayerId,
        /// Why it does not decode.
        source: crate::manifest::FormatError,
    },
    /// A layer object whose bytes do not hash to its id.
    #[error("layer {0}: the stored manifest does not match its id (corrupt remote object)")]
    LayerDigest(LayerId),
    /// An object larger than any object of its kind can be: refused before
    /// its body is read.
    #[error(
        "remote object {key} is {size} bytes, more than the {max} bytes such an object can have: it was not \
         written by wsfs or is damaged (`wsfs check` names what depends on it)"
    )]
    TooLarge {
        /// The object key.
        key: String,
        /// Its size.
        size: u64,
        /// The most an object of its kind can have.
        max: u64,
    },
    /// A layer named by a workspace that is not in the remote.
    #[error("layer {0} is missing from the remote")]
    MissingLayer(LayerId),
    /// The failure of a fetch that several readers waited for.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    /// A bug or an unexpected runtime failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
