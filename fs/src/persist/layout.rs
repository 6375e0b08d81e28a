//! The learned layout: a persist packs the files that the workspace's last
//! readers read first (the access traces under its prefetch keys, see
//! [`crate::prefetch`]), in their read order, before every other file. The
//! next step that reads the same files then fetches a few consecutive frames
//! instead of one frame per file scattered over the whole layer.
//!
//! Files whose chunks the store holds already keep them where they are,
//! unless those chunks are scattered: when the frames holding the traced,
//! unchanged files' chunks hold more than [`SCATTERED`] times their bytes,
//! the traced files are packed anew (their chunks then live twice until
//! garbage collection repacks the old packs). A trace covering more than
//! [`MAX_HOT_SHARE`] of the layer's bytes orders files but copies nothing:
//! whoever reads that much is served by prefetch, not by layout.

use std::collections::{HashMap, HashSet};
use std::io;

use super::plan::{Content, Plan};
use super::source::{source_err, SourceRoot};
use super::PersistError;
use crate::chunking::chunk_stream;
use crate::ids::ChunkId;
use crate::manifest::{ChunkRef, EntryKind};
use crate::pack::FRAME_TARGET;
use crate::prefetch::read_trace;
use crate::store::Store;

/// Frames holding more than this many times the traced files' bytes are scattered.
pub const SCATTERED: u64 = 2;
/// The largest share of a layer's file bytes that traced files are packed anew for.
pub const MAX_HOT_SHARE: f64 = 0.25;

/// Where traced files go: each traced path's place in the first-read order.
#[derive(Debug, Default)]
pub struct Layout {
    rank: HashMap<Vec<u8>, u32>,
}

impl Layout {
    /// The layout of the traces kept under `keys`, the first key's paths
    /// first; empty when none is kept. A trace that cannot be read only
    /// costs its order: the persist goes on in tree order.
    pub fn read(store: &Store, keys: &[String]) -> Layout {
        let mut layout = Layout::default();
        for key in keys {
            match read_trace(store, key) {
                Ok(stored) => layout.extend(crate::prefetch::decode_trace(&stored)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot read the access trace: persisting in tree order")
                }
            }
        }
        layout
    }

    /// Appends `paths` (from the workspace root) in their order; paths seen already keep their place.
    pub fn extend<'a>(&mut self, paths: impl IntoIterator<Item = &'a [u8]>) {
        for path in paths {
            let next = self.rank.len() as u32;
            self.rank.entry(path.to_vec()).or_insert(next);
        }
    }

    /// The place of `path` (from the workspace root) in the read order, when traced.
    pub fn rank(&self, path: &[u8]) -> Option<u32> {
        self.rank.get(path).copied()
    }

    /// Whether no path is traced.
    pub fn is_empty(&self) -> bool {
        self.rank.is_empty()
    }

    /// How many paths are traced.
    pub fn len(&self) -> usize {
        self.rank.len()
    }
}

/// Whether the traced files of `plan` are to be packed anew: they hold at
/// most [`MAX_HOT_SHARE`] of its file bytes, and their chunks that the store
/// has (`known`, or in its index) are [`scattered`]. Traced files to be read
/// are chunked here once more to learn their chunks.
pub(super) fn repack_traced(
    plan: &Plan,
    layout: &Layout,
    store: &Store,
    root: &SourceRoot,
    known: &HashMap<ChunkId, ChunkRef>,
) -> Result<bool, PersistError> {
    if layout.is_empty() {
        return Ok(false);
    }
    let (mut hot, mut hot_bytes, mut layer_bytes) = (Vec::new(), 0, 0);
    for planned in &plan.entries {
        let EntryKind::File(data) = &planned.entry.kind else {
            continue;
        };
        let size = match &planned.content {
            Content::Read { stamp, .. } => stamp.size,
            _ => data.size,
        };
        layer_bytes += size;
        if layout.rank(&planned.entry.path).is_some() {
            hot_bytes += size;
            hot.push((planned, data));
        }
    }
    if hot.is_empty() || hot_bytes as f64 > MAX_HOT_SHARE * layer_bytes as f64 {
        return Ok(false);
    }
    let mut stored = Vec::new();
    for (planned, data) in hot {
        let Content::Read { abs, stamp } = &planned.content else {
            stored.extend_from_slice(&data.chunks);
            continue;
        };
        let mut failure = None;
        chunk_stream(root.open_file(abs, stamp)?, |chunk| {
            let found = match known.get(&chunk.id) {
                Some(r) => Some(*r),
                None => store.db().chunk(&chunk.id).map_err(|e| {
                    failure = Some(e);
                    io::Error::other("store failure")
                })?,
            };
            stored.extend(found);
            Ok(())
        })
        .map_err(|e| {
            failure
                .take()
                .map_or_else(|| source_err(abs)(e), PersistError::from)
        })?;
    }
    Ok(scattered(&stored))
}

/// Whether the frames holding `stored` (chunks of traced files) hold more
/// than [`SCATTERED`] times their bytes, plus two frames' worth (the ends of
/// a run of frames).
pub fn scattered(stored: &[ChunkRef]) -> bool {
    let mut frames = HashSet::new();
    let (mut held, mut framed) = (0u64, 0u64);
    for chunk in stored {
        held += u64::from(chunk.len);
        if frames.insert((chunk.loc.pack, chunk.loc.frame_offset)) {
            framed += u64::from(chunk.loc.frame_plain_len);
        }
    }
    framed > SCATTERED * held + 2 * FRAME_TARGET as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChunkId, PackId};
    use crate::manifest::ChunkLocation;

    fn chunk(frame: u64, len: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId::of(&frame.to_le_bytes()),
            len,
            loc: ChunkLocation {
                pack: PackId([1; 32]),
                frame_offset: frame << 20,
                frame_len: 1 << 18,
                frame_plain_len: 1 << 20,
                offset_in_frame: 0,
            },
        }
    }

    #[test]
    fn traced_paths_rank_in_first_read_order_across_keys() {
        let mut layout = Layout::default();
        layout.extend([&b"b/c"[..], b"a"]);
        layout.extend([&b"a"[..], b"d"]);
        assert_eq!(layout.rank(b"b/c"), Some(0));
        assert_eq!(layout.rank(b"a"), Some(1));
        assert_eq!(layout.rank(b"d"), Some(2));
        assert_eq!(layout.rank(b"e"), None);
    }

    /// 64 files of 4 KiB, each in a frame of its own, are scattered; the same
    /// files in one frame are not.
    #[test]
    fn files_one_per_frame_are_scattered_and_packed_ones_are_not() {
        let spread: Vec<ChunkRef> = (0..64).map(|f| chunk(f, 4096)).collect();
        assert!(scattered(&spread));
        let packed: Vec<ChunkRef> = (0..64).map(|f| chunk(f / 256, 4096)).collect();
        assert!(!scattered(&packed));
    }
}
