//! Rewriting packs that are mostly garbage: their referenced frames are
//! copied byte for byte into new salted packs, and a relocation record tells
//! readers where they went (see [`crate::pack::relocation`]). The old pack
//! is then unreferenced and goes the way of every unreferenced object:
//! condemned by this run, deleted by one at least the grace period later.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;

use super::live::Live;
use super::Object;
use crate::error::StoreError;
use crate::ids::{ChunkId, PackId};
use crate::manifest::ChunkRef;
use crate::pack::{pack_key, read_index, relocation_key, Moved, PackWriter, Relocation, SealedPack};
use crate::store::remote::Listed;
use crate::store::Store;

/// A pack is rewritten when the frames referenced in it hold less than
/// this share of its bytes.
pub const REPACK_BELOW_PERCENT: u64 = 50;

/// A pack rewritten (or, dry, that would be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repacked {
    /// The old pack's key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Bytes of the frames referenced in it: what is copied.
    pub live_bytes: u64,
    /// The keys of the packs its frames went to (empty in a dry run).
    pub into: Vec<String>,
}

/// The packs to rewrite, with their sizes: stored, referenced, mostly
/// garbage, neither condemned nor repacked before, and older than the grace
/// period (a persist may be about to reference more of a young pack).
pub(super) fn candidates(
    live: &Live,
    stored: &[(Object, Listed)],
    marked: &HashSet<Object>,
    young: impl Fn(&Listed) -> bool,
    relocated: &HashSet<PackId>,
) -> Vec<Repacked> {
    stored
        .iter()
        .filter_map(|(object, listed)| match object {
            Object::Pack(id) if live.frames.contains_key(id) => Some((id, listed)),
            _ => None,
        })
        .filter(|(id, listed)| {
            !(marked.contains(&Object::Pack(**id)) || young(listed) || relocated.contains(id))
        })
        .map(|(id, listed)| Repacked {
            key: pack_key(id),
            bytes: listed.size,
            live_bytes: live.bytes_in(id),
            into: Vec::new(),
        })
        .filter(|r| r.live_bytes * 100 < r.bytes * REPACK_BELOW_PERCENT)
        .collect()
}

/// Chunks of one frame of a pack's index: id, offset in the frame, length.
type FrameChunks = Vec<(ChunkId, u32, u32)>;

/// Copies the referenced frames of `packs` into new packs and uploads
/// them, then writes each old pack's relocation record; returns the records
/// written. A pack that cannot be read whole, or whose index lacks a frame a
/// layer references, is left as it is.
pub(super) fn repack(
    store: &Store,
    live: &Live,
    packs: &mut [Repacked],
) -> Result<Vec<(PackId, Relocation)>, StoreError> {
    let io = |e: std::io::Error| StoreError::Internal(format!("repacking: {e}"));
    let mut writer = PackWriter::salted(Some(rand::random())).map_err(io)?;
    let mut copier = Copier::default();
    for repacked in packs.iter() {
        let id: PackId = repacked.key["packs/".len()..].parse().expect("a pack key");
        let Some(bytes) = store.remote().get(&repacked.key)? else {
            tracing::warn!(pack = %id, "not repacked: gone meanwhile");
            continue;
        };
        let Some(frames) = frames_to_copy(id, &bytes, &live.frames[&id]) else {
            continue;
        };
        for (offset, len, plain_len, chunks) in frames {
            let at = writer.next_offset();
            let range = offset as usize..(offset + u64::from(len)) as usize;
            let sealed = writer.copy_frame(&bytes[range], plain_len, &chunks).map_err(io)?;
            copier.placed.push((id, offset, len, at));
            if let Some(sealed) = sealed {
                copier.seal(store, sealed)?;
            }
        }
    }
    if let Some(sealed) = writer.finish().map_err(io)? {
        copier.seal(store, sealed)?;
    }
    for repacked in packs.iter_mut() {
        let id: PackId = repacked.key["packs/".len()..].parse().expect("a pack key");
        if let Some(into) = copier.into.get(&id) {
            repacked.into = into.iter().map(pack_key).collect();
        }
    }
    let mut written = Vec::new();
    for (old, relocation) in copier.relocations {
        store.put_object(relocation_key(&old), Bytes::from(relocation.encode()))?;
        tracing::info!(pack = %old, "repacked");
        written.push((old, relocation));
    }
    Ok(written)
}

/// The referenced frames of pack `id` as its index describes them: offset,
/// length, plain length and chunks. `None` (logged) when the pack or its
/// index is corrupt or lacks one of them.
fn frames_to_copy(
    id: PackId,
    bytes: &[u8],
    referenced: &BTreeMap<u64, u32>,
) -> Option<Vec<(u64, u32, u32, FrameChunks)>> {
    let index = read_index(id, bytes)
        .inspect_err(|e| tracing::warn!(pack = %id, error = %e, "not repacked"))
        .ok()?;
    let mut frames: BTreeMap<u64, (u32, u32, FrameChunks)> = BTreeMap::new();
    for (chunk, len, loc) in index {
        frames
            .entry(loc.frame_offset)
            .or_insert((loc.frame_len, loc.frame_plain_len, Vec::new()))
            .2
            .push((chunk, loc.offset_in_frame, len));
    }
    referenced
        .iter()
        .map(|(&offset, &len)| match frames.remove(&offset) {
            Some((frame_len, plain_len, chunks)) if frame_len == len => Some((offset, len, plain_len, chunks)),
            _ => {
                tracing::warn!(pack = %id, offset, "not repacked: its index lacks a frame a layer references");
                None
            }
        })
        .collect()
}

/// Where copied frames went so far.
#[derive(Default)]
struct Copier {
    /// Frames in the pack being filled: old pack, old offset, length, new offset.
    placed: Vec<(PackId, u64, u32, u64)>,
    relocations: BTreeMap<PackId, Relocation>,
    into: HashMap<PackId, BTreeSet<PackId>>,
}

impl Copier {
    /// Uploads a sealed pack and notes where its frames came from; this
    /// host's later persists deduplicate against it.
    fn seal(&mut self, store: &Store, sealed: SealedPack) -> Result<(), StoreError> {
        store.put_object(pack_key(&sealed.id), Bytes::from(sealed.bytes))?;
        let refs: Vec<ChunkRef> = sealed
            .chunks
            .iter()
            .map(|&(id, len, loc)| ChunkRef { id, len, loc })
            .collect();
        store.db().put_chunks(&refs)?;
        for (old, offset, len, at) in self.placed.drain(..) {
            let moved = Moved {
                len,
                pack: sealed.id,
                offset: at,
            };
            self.relocations.entry(old).or_default().insert(offset, moved);
            self.into.entry(old).or_default().insert(sealed.id);
        }
        Ok(())
    }
}
