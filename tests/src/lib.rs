//! End-to-end test harness for wsfs: real daemons, real FUSE mounts, real stores.
//!
//! The integration tests in `tests/tests/` drive the `wsfs` binary exactly as a
//! user would (see `docs/cli-contract.md`); the benchmark crate reuses the same
//! harness.
//!
//! # Layout
//!
//! - [`tree`]: deterministic source trees from a seed and a [`tree::TreeSpec`]
//!   (nested dirs, a big file, symlinks, hard links, xattrs, odd names, modes,
//!   owners, nanosecond mtimes).
//! - [`compare`]: recursive tree comparison returning readable differences
//!   (content, metadata, xattrs, symlink targets, hard-link structure).
//! - [`host`]: [`Host`], one "machine" (own state dir and daemon) sharing a
//!   `file://` remote with its peers; runs `wsfs` and cleans up on drop.
//! - [`mounts`]: `/proc/self/mountinfo` parsing and lazy unmounting.
//! - [`process`]: running commands with a time limit, waiting for a pid to exit.
//! - [`read`]: `O_DIRECT` reads, and many readers checking every byte.
//! - [`json`]: small accessors for the CLI's `--json` output.
//! - [`csi`]: a CSI client driving the daemon's node plugin as kubelet does.
//! - [`s3`]: a real S3 server (Garage, single node) a test can stop and start.
//!
//! Tests need root and `/dev/fuse`, and the release binaries built from the
//! same sources (`scripts/test` builds them; [`host::wsfs_bin`] refuses
//! binaries whose `--version` shows another build id).

pub mod compare;
pub mod csi;
pub mod host;
pub mod json;
pub mod mounts;
pub mod process;
pub mod read;
pub mod s3;
pub mod tree;

pub use host::{Host, HostConfig};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
