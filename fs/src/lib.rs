//! wsfs-fs: the model and every byte-level decision of wsfs.
//!
//! # Layout
//! - [`ids`]: `ChunkId`, `LayerId`, `PackId` (BLAKE3 digests).
//! - [`manifest`]: a layer's sorted tree and its versioned binary format.
//! - [`merge`]: stacking layers into one tree (later layers win).
//! - [`error`]: typed errors.

pub mod error;
pub mod ids;
pub mod manifest;
pub mod merge;
