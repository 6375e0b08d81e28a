//! What the workspaces keep alive: the layers their records name, the frames
//! those layers' files reference, and, through relocation records, the packs
//! holding those frames now.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Object;
use crate::error::StoreError;
use crate::ids::{LayerId, PackId};
use crate::pack::Relocation;
use crate::store::Store;
use crate::workspace::{self, WorkspaceName};

/// Frames of one pack: offset → compressed length.
pub type Frames = BTreeMap<u64, u32>;

/// The live objects of the remote.
#[derive(Debug, Default)]
pub struct Live {
    /// Layers, packs and relocation records that must stay.
    pub objects: HashSet<Object>,
    /// Per pack that must stay, the frames referenced in it.
    pub frames: HashMap<PackId, Frames>,
    /// Per pack, the most relocation records a reader follows to reach a
    /// frame in it (0: the manifests name it).
    depth: HashMap<PackId, usize>,
}

impl Live {
    /// The layers the workspace records name (except those of `ignored`
    /// workspaces), and what their frames need given `relocations`: a frame
    /// its pack's record relocated into a pack of `stored` needs that record
    /// and the pack it went to (and so on along further records); any
    /// other, its pack.
    pub fn find(
        store: &Store,
        ignored: &HashSet<&WorkspaceName>,
        relocations: &HashMap<PackId, Relocation>,
        stored: &HashSet<PackId>,
    ) -> Result<Live, StoreError> {
        let layers: HashSet<LayerId> = workspace::all_records(store)?
            .into_iter()
            .filter(|(ws, _)| !ignored.contains(ws))
            .map(|(_, layer)| layer)
            .collect();
        let mut live = Live {
            objects: layers.iter().copied().map(Object::Layer).collect(),
            ..Live::default()
        };
        let mut named: HashSet<(PackId, u64, u32)> = HashSet::new();
        for layer in &layers {
            match store.manifest(layer) {
                Ok(manifest) => named.extend(
                    manifest
                        .chunks()
                        .map(|c| (c.loc.pack, c.loc.frame_offset, c.loc.frame_len)),
                ),
                // A broken workspace: what its layer referenced is unknown.
                Err(StoreError::MissingLayer(_)) => {
                    tracing::warn!(%layer, "a workspace names a layer the remote lacks")
                }
                Err(e) => return Err(e),
            }
        }
        let mut seen = HashSet::new();
        let mut todo: Vec<(PackId, u64, u32, usize)> =
            named.into_iter().map(|(p, o, l)| (p, o, l, 0)).collect();
        while let Some((pack, offset, len, depth)) = todo.pop() {
            if !seen.insert((pack, offset)) {
                continue;
            }
            let moved = relocations.get(&pack).and_then(|r| r.get(offset));
            match moved.filter(|m| stored.contains(&m.pack)) {
                Some(moved) => {
                    live.objects.insert(Object::Relocation(pack));
                    todo.push((moved.pack, moved.offset, len, depth + 1));
                }
                None => live.need(pack, offset, len, depth),
            }
        }
        Ok(live)
    }

    fn need(&mut self, pack: PackId, offset: u64, len: u32, depth: usize) {
        self.objects.insert(Object::Pack(pack));
        self.frames.entry(pack).or_default().insert(offset, len);
        let deepest = self.depth.entry(pack).or_default();
        *deepest = depth.max(*deepest);
    }

    /// The most relocation records a reader follows to a frame of `pack`.
    pub fn depth(&self, pack: &PackId) -> usize {
        self.depth.get(pack).copied().unwrap_or(0)
    }

    /// Compressed bytes of the frames referenced in `pack`.
    pub fn bytes_in(&self, pack: &PackId) -> u64 {
        self.frames
            .get(pack)
            .map_or(0, |frames| frames.values().map(|&len| u64::from(len)).sum())
    }

    /// Notes that every referenced frame of `pack` went where `relocation`
    /// says: the pack need not stay, its record and the new packs must.
    pub fn relocated(&mut self, pack: PackId, relocation: &Relocation) {
        self.objects.remove(&Object::Pack(pack));
        self.objects.insert(Object::Relocation(pack));
        let depth = self.depth.remove(&pack).unwrap_or(0) + 1;
        for (offset, len) in self.frames.remove(&pack).unwrap_or_default() {
            let moved = relocation
                .get(offset)
                .expect("a repack relocates every referenced frame");
            self.need(moved.pack, moved.offset, len, depth);
        }
    }

    /// How many layers and packs must stay.
    pub fn counts(&self) -> (usize, usize) {
        let layers = self
            .objects
            .iter()
            .filter(|o| matches!(o, Object::Layer(_)))
            .count();
        (layers, self.frames.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::Moved;

    #[test]
    fn relocated_frames_move_their_need_to_the_new_pack() {
        let (old, new) = (PackId::of(b"old"), PackId::of(b"new"));
        let mut live = Live::default();
        live.need(old, 24, 100, 0);
        live.need(old, 500, 50, 0);
        assert_eq!(live.bytes_in(&old), 150);
        let mut relocation = Relocation::default();
        relocation.insert(
            24,
            Moved {
                len: 100,
                pack: new,
                offset: 40,
            },
        );
        relocation.insert(
            500,
            Moved {
                len: 50,
                pack: new,
                offset: 140,
            },
        );
        live.relocated(old, &relocation);
        assert!(!live.objects.contains(&Object::Pack(old)));
        assert!(live.objects.contains(&Object::Relocation(old)));
        assert!(live.objects.contains(&Object::Pack(new)));
        assert_eq!(live.frames[&new], Frames::from([(40, 100), (140, 50)]));
        assert_eq!(live.counts(), (0, 1));
        assert_eq!(live.depth(&new), 1);
    }
}
