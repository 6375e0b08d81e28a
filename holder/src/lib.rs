//! The holder of a wsfs daemon's FUSE connections.
//!
//! A FUSE mount lives as long as some process holds its `/dev/fuse`
//! descriptor. `wsfs-holder` is a small, long-lived parent of `wsfsd`: the
//! daemon hands it a duplicate of each mount's descriptor ([`Link::hold`]),
//! and when the daemon crashes or is restarted for an upgrade, the holder
//! starts the next one and gives the descriptors back ([`Link::take_all`]).
//! The kernel queues the mounts' requests meanwhile; readers wait, then go
//! on. This crate holds both ends of that conversation: [`wire`] (the
//! messages) and [`Link`] (the daemon's end).

pub mod link;
pub mod wire;

pub use link::Link;

/// The environment variable naming the daemon's end of the holder's socket
/// (a descriptor number the daemon inherits).
pub const LINK_FD_ENV: &str = "WSFS_HOLDER_FD";
