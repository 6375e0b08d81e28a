//! What the workspaces keep alive: the layers their records name, the frames
//! those layers' files reference, and, through relocation records, the packs
//! holding those frames now.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Object;
use crate::error::StoreError;
use crate::ids::{LayerId, PackId};
use crate::pack::{Moved, Relocation};
use crate::store::{Store, MAX_RELOCATIONS};
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

/// Where a frame a manifest names is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The pack holding it.
    pub pack: PackId,
    /// Its offset there.
    pub offset: u64,
    /// The records that led there, in order (empty: it is in the pack the
    /// manifest names): each old pack, and where its record says the frame went.
    pub via: Vec<(PackId, Moved)>,
}

/// Where the frame at `offset` of `pack` is now: a relocation record of
/// `relocations` that lists the frame leads to the pack it went to, if that
/// pack is in `stored`, and so on, along at most [`MAX_RELOCATIONS`]
/// records (as far as a reader follows them).
pub fn locate(
    relocations: &HashMap<PackId, Relocation>,
    stored: &HashSet<PackId>,
    pack: PackId,
    offset: u64,
) -> Located {
    let mut at = Located {
        pack,
        offset,
        via: Vec::new(),
    };
    while at.via.len() < MAX_RELOCATIONS {
        let moved = relocations.get(&at.pack).and_then(|r| r.get(at.offset));
        let Some(moved) = moved.filter(|m| stored.contains(&m.pack)) else {
            break;
        };
        at.via.push((at.pack, moved));
        (at.pack, at.offset) = (moved.pack, moved.offset);
    }
    at
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
        for (pack, offset, len) in named {
            let at = locate(relocations, stored, pack, offset);
            live.objects
                .extend(at.via.iter().map(|(old, _)| Object::Relocation(*old)));
            live.need(at.pack, at.offset, len, at.via.len());
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

    #[test]
    fn frames_are_located_along_records_into_stored_packs() {
        let [a, b, c] = [b"a", b"b", b"c"].map(|s| PackId::of(s));
        let moved = |pack, offset| Moved {
            len: 10,
            pack,
            offset,
        };
        let mut to_b = Relocation::default();
        to_b.insert(100, moved(b, 24));
        let mut to_c = Relocation::default();
        to_c.insert(24, moved(c, 48));
        let records = HashMap::from([(a, to_b), (b, to_c)]);
        let stored = HashSet::from([a, b]);
        let at = locate(&records, &stored, a, 100);
        assert_eq!(
            at,
            Located {
                pack: b,
                offset: 24,
                via: vec![(a, moved(b, 24))]
            },
            "not into c, which is not stored"
        );
        let with_c = HashSet::from([b, c]);
        assert_eq!(locate(&records, &with_c, a, 100).pack, c);
        assert_eq!(
            locate(&records, &with_c, a, 200).via,
            [],
            "a frame the record lacks stays"
        );
    }

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
