//! A pack's frames as readers locate them: where each frame is and how
//! large, and the frames of each pack that a tree's chunks use.

use std::collections::HashMap;

use crate::ids::PackId;
use crate::manifest::{ChunkLocation, ChunkRef};

/// A frame of a pack: where it is and how large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    /// Byte offset in the pack.
    pub offset: u64,
    /// Compressed length.
    pub len: u32,
    /// Decompressed length.
    pub plain_len: u32,
}

impl Frame {
    /// The frame holding a chunk.
    pub fn of(loc: &ChunkLocation) -> Frame {
        Frame {
            offset: loc.frame_offset,
            len: loc.frame_len,
            plain_len: loc.frame_plain_len,
        }
    }

    /// The offset just past the frame.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The frames of each pack that a tree's chunks use, in pack order.
#[derive(Debug, Default)]
pub struct FrameIndex {
    packs: HashMap<PackId, Vec<Frame>>,
}

impl FrameIndex {
    /// The frames of `chunks`.
    pub fn of<'a>(chunks: impl IntoIterator<Item = &'a ChunkRef>) -> FrameIndex {
        let mut packs: HashMap<PackId, Vec<Frame>> = HashMap::new();
        for chunk in chunks {
            packs
                .entry(chunk.loc.pack)
                .or_default()
                .push(Frame::of(&chunk.loc));
        }
        for frames in packs.values_mut() {
            frames.sort_unstable();
            frames.dedup_by_key(|f| f.offset);
        }
        FrameIndex { packs }
    }

    /// The frames of `pack`, in pack order.
    pub fn frames(&self, pack: &PackId) -> &[Frame] {
        self.packs.get(pack).map(Vec::as_slice).unwrap_or_default()
    }
}
