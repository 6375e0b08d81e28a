//! wsfs-fs: the model and every byte-level decision of wsfs.
//!
//! # Layout
//! - [`ids`]: `ChunkId`, `LayerId`, `PackId` (BLAKE3 digests).
//! - [`chunking`]: content-defined chunking of file contents.
//! - [`pack`]: packs of zstd frames grouping neighbouring chunks, with an index.
//! - [`manifest`]: a layer's sorted tree and its versioned binary format.
//! - [`merge`]: stacking layers into one tree (later layers win).
//! - [`store`]: remote object store, local RocksDB index, frame cache; the chunk read path.
//! - [`workspace`]: workspace names and their layer records in the remote.
//! - [`persist`]: source paths → chunks → packs → manifest → workspace record.
//! - [`gc`]: deleting expired workspaces and unreferenced layers and packs.
//! - [`check`]: verifying what the workspaces reference; marking corrupt packs.
//! - [`tree`]: the FUSE-free inode table of a merged tree, with reads.
//! - [`fuse`]: the thin `fuser` adapter over [`tree`].
//! - [`prefetch`]: access traces and fetching a tree in their order.
//! - [`pagecache`]: pushing prefetched files into the kernel's page cache
//!   (within the [`memory`] this process may still fill).
//! - [`metrics`]: counters; [`error`]: typed errors; [`crash`]: fault points for crash tests.
//! - [`markers`]: the formats of gc's and check's markers and of access traces.
//!
//! Without the default feature `store`, only what touches neither the store
//! nor the kernel builds: the formats and their decoders (what `fuzz/` links).
//!
//! The library is synchronous; only `store::remote` runs async code, on a
//! runtime of its own.

#[cfg(all(test, feature = "store"))]
mod architecture_doc;
#[cfg(feature = "store")]
pub mod check;
pub mod chunking;
#[cfg(feature = "store")]
pub mod cow;
pub mod crash;
pub mod error;
#[cfg(feature = "store")]
pub mod fuse;
#[cfg(feature = "store")]
pub mod gc;
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod markers;
pub mod memory;
pub mod merge;
#[cfg(feature = "store")]
pub mod metrics;
pub mod os;
pub mod pack;
#[cfg(feature = "store")]
pub mod pagecache;
#[cfg(feature = "store")]
pub mod persist;
#[cfg(feature = "store")]
pub mod prefetch;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub mod tree;
pub mod unix_time;
pub mod workers;
pub mod workspace;
