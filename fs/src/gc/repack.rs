//! Rewriting packs that are mostly garbage: their referenced frames are
//! copied byte for byte into new salted packs, and a relocation record tells
//! readers where they went (see [`crate::pack::relocation`]). The old pack
//! is then unreferenced and goes the way of every unreferenced object:
//! condemned by this run, deleted by one at least the grace period later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::live::Live;
use super::{Object, PERSIST_BOUND};
use crate::crash;
use crate::error::StoreError;
use crate::ids::{ChunkId, PackId};
use crate::keys;
use crate::manifest::ChunkRef;
use crate::pack::{read_index, Moved, PackWriter, Relocation, MAX_PACK_LEN};
use crate::store::remote::Listed;
use crate::store::{Store, MAX_RELOCATIONS};

/// A pack is rewritten when the frames referenced in it hold less than
/// this share of its bytes.
pub const REPACK_BELOW_PERCENT: u64 = 50;

/// A pack rewritten (or, dry, that would be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repacked {
    /// The old pack.
    pub pack: PackId,
    /// Its size.
    pub bytes: u64,
    /// Bytes of the frames referenced in it: what is copied.
    pub live_bytes: u64,
    /// The keys of the packs its frames went to (empty in a dry run).
    pub into: Vec<String>,
}

impl Repacked {
    /// The old pack's key.
    pub fn key(&self) -> String {
        keys::pack(&self.pack)
    }
}

/// The packs to rewrite, with their sizes: stored, referenced, mostly
/// garbage, not `marked` (condemned or corrupt), not repacked before, older than the grace
/// period (a persist may be about to reference more of a young pack), and
/// reached through fewer relocation records than a reader follows, minus one.
pub(super) fn candidates(
    live: &Live,
    stored: &[(Object, Listed)],
    marked: &HashSet<Object>,
    young: impl Fn(&Listed) -> bool,
    relocations: &HashMap<PackId, Relocation>,
) -> Vec<Repacked> {
    stored
        .iter()
        .filter_map(|(object, listed)| match object {
            Object::Pack(id) if live.frames.contains_key(id) => Some((id, listed)),
            _ => None,
        })
        .filter(|(id, listed)| {
            !(marked.contains(&Object::Pack(**id)) || young(listed) || relocations.contains_key(id))
                && live.depth(id) + 1 < MAX_RELOCATIONS
        })
        .map(|(id, listed)| Repacked {
            pack: *id,
            bytes: listed.size,
            live_bytes: live.bytes_in(id),
            into: Vec::new(),
        })
        .filter(|r| r.live_bytes * 100 < r.bytes * REPACK_BELOW_PERCENT)
        .collect()
}

/// Chunks of one frame of a pack's index: id, offset in the frame, length.
type FrameChunks = Vec<(ChunkId, u32, u32)>;

/// Rewrites `packs` one at a time: copies each one's referenced frames into
/// a new salted pack, uploads it, then writes the old pack's relocation
/// record at once; returns the records written. A pack that cannot be read
/// whole, whose index lacks a frame a layer references, or whose record
/// could not follow its new pack within `grace` (the new pack, unreferenced
/// until then, may have been condemned meanwhile), is left as it is.
pub(super) fn repack(
    store: &Store,
    live: &Live,
    packs: &mut [Repacked],
    grace: Duration,
) -> Result<Vec<(PackId, Relocation)>, StoreError> {
    let mut written = Vec::new();
    for repacked in packs.iter_mut() {
        let Some(bytes) = store.remote().get(&keys::pack(&repacked.pack), MAX_PACK_LEN)? else {
            tracing::warn!(pack = %repacked.pack, "not repacked: gone meanwhile");
            continue;
        };
        let Some(frames) = frames_to_copy(repacked.pack, &bytes, &live.frames[&repacked.pack]) else {
            continue;
        };
        let copied = copy(store, &bytes, frames, grace)?;
        let Some(relocation) = copied.relocation else {
            tracing::warn!(pack = %repacked.pack, "not repacked: the upload outran the grace period minus {PERSIST_BOUND:?}");
            continue;
        };
        crash::point("repack.packs-put");
        store.put_object(keys::relocation(&repacked.pack), Bytes::from(relocation.encode()))?;
        crash::point("repack.relocation-put");
        // Only now that the record makes the new pack live: this host's later
        // persists deduplicate against it.
        store.db().put_chunks(&copied.refs)?;
        crash::point("repack.indexed");
        tracing::info!(pack = %repacked.pack, "repacked");
        repacked.into = copied.into.iter().map(keys::pack).collect();
        written.push((repacked.pack, relocation));
    }
    Ok(written)
}

/// What copying one pack's frames uploaded.
struct Copied {
    /// Where each frame went; `None` when the uploads took longer than the
    /// grace period minus [`PERSIST_BOUND`].
    relocation: Option<Relocation>,
    /// The new packs.
    into: Vec<PackId>,
    /// Their chunks.
    refs: Vec<ChunkRef>,
}

/// Copies `frames` of the pack `bytes` into new salted packs and uploads them.
fn copy(
    store: &Store,
    bytes: &[u8],
    frames: Vec<(u64, u32, u32, FrameChunks)>,
    grace: Duration,
) -> Result<Copied, StoreError> {
    let io = |e: std::io::Error| StoreError::Internal(format!("repacking: {e}"));
    let mut writer = PackWriter::salted(Some(rand::random())).map_err(io)?;
    let mut sealed = Vec::new();
    let mut placed = Vec::new();
    for (offset, len, plain_len, chunks) in frames {
        let at = writer.next_offset();
        let range = offset as usize..(offset + u64::from(len)) as usize;
        let full = writer.copy_frame(&bytes[range], plain_len, &chunks).map_err(io)?;
        placed.push((offset, len, at, sealed.len()));
        sealed.extend(full);
    }
    sealed.extend(writer.finish().map_err(io)?);
    let started = Instant::now();
    let (mut into, mut refs) = (Vec::new(), Vec::new());
    for pack in sealed {
        into.push(pack.id);
        refs.extend(pack.refs());
        store.put_object(keys::pack(&pack.id), Bytes::from(pack.bytes))?;
    }
    if started.elapsed() + PERSIST_BOUND > grace {
        return Ok(Copied {
            relocation: None,
            into,
            refs,
        });
    }
    let mut relocation = Relocation::default();
    for (offset, len, at, pack) in placed {
        relocation.insert(
            offset,
            Moved {
                len,
                pack: into[pack],
                offset: at,
            },
        );
    }
    Ok(Copied {
        relocation: Some(relocation),
        into,
        refs,
    })
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
