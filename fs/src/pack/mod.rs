//! Packs: objects holding many chunks, compressed in zstd frames that group
//! neighbouring chunks, followed by an index of every chunk.
//!
//! ```text
//! [frame 0] [frame 1] ... [frame n-1] [index: one zstd frame] [footer: 24 bytes]
//! ```
//! A chunk is read with one ranged read of its frame (its [`ChunkLocation`]
//! is in the layer manifest); the index makes a pack self-describing for
//! maintenance (GC, repacking, recovery). `docs/format.md` has the details.
//!
//! [`ChunkLocation`]: crate::manifest::ChunkLocation

pub mod frames;
pub mod reader;
pub mod relocation;
pub mod writer;

pub use frames::{Frame, FrameIndex};
pub use reader::{
    check_chunk, chunk_in_frame, decode_frame, decode_index, index_of, parse_footer, read_index,
};
pub use relocation::{Moved, Relocation, MAX_RELOCATION_LEN};
pub use writer::{FrameBuilder, FrameCompressor, PackWriter, PlainFrame, SealedPack};

/// Last 8 bytes of every pack.
pub const PACK_MAGIC: [u8; 8] = *b"WSFSPAK1";
/// Footer: index offset (u64 LE), index length (u32 LE), chunk count (u32 LE), magic.
pub const FOOTER_LEN: usize = 24;
/// One index record: frame offset (u64), frame length, frame plain length,
/// offset in frame, chunk length (u32 each), little-endian. Chunk ids are not
/// stored: they are the digests of the bytes, and would add 32 incompressible
/// bytes per chunk to what the layer manifests already carry.
pub const INDEX_RECORD_LEN: usize = 8 + 4 * 4;
/// A frame is closed once it holds this many plain bytes: big enough that
/// small files compress together (`bench/analysis/frame_sizes.py`: the bench's
/// corpus stores 61.7 MiB in 1 MiB frames, 85.2 MiB in 16 KiB ones), small enough that a
/// cold read of one small file fetches little.
pub const FRAME_TARGET: usize = 1024 * 1024;
/// A pack is sealed once its frames reach this many compressed bytes.
pub const PACK_TARGET: usize = 64 * 1024 * 1024;
/// Largest pack object read whole: the target, the frame that crossed it
/// and the index, with room to spare.
pub const MAX_PACK_LEN: u64 = 2 * PACK_TARGET as u64;
/// zstd level for frames and indexes.
pub const ZSTD_LEVEL: i32 = 3;
