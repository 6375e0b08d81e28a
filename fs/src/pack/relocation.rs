//! Relocation records: where the frames of a repacked pack went.
//!
//! Garbage collection rewrites a pack that is mostly garbage by copying its
//! live frames, byte for byte, into new packs, and writes
//! `relocations/<old pack>` mapping each copied frame's offset to its new
//! pack and offset. Layer manifests are immutable (their id is their digest),
//! so they keep naming the old pack: a reader whose ranged GET of it finds
//! nothing follows the record instead. A copied frame is the same zstd frame,
//! so the manifest's lengths and chunk offsets still hold.
//!
//! ```text
//! wsfs-relocation 1
//! <old frame offset> <frame length> <new pack id> <new frame offset>
//! ...
//! ```

use std::collections::BTreeMap;

use crate::error::PackError;
use crate::ids::PackId;

const HEADER: &str = "wsfs-relocation 1";
/// Largest relocation record: a line per frame of a pack, far fewer than
/// this allows.
pub const MAX_RELOCATION_LEN: u64 = 16 << 20;

/// Where one frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Its compressed length (the same in both packs).
    pub len: u32,
    /// The pack it was copied into.
    pub pack: PackId,
    /// Its offset there.
    pub offset: u64,
}

/// The frames of one old pack that were copied elsewhere, by old offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relocation {
    moved: BTreeMap<u64, Moved>,
}

impl Relocation {
    /// Records that the frame at `old_offset` went to `to`.
    pub fn insert(&mut self, old_offset: u64, to: Moved) {
        self.moved.insert(old_offset, to);
    }

    /// Where the frame at `old_offset` went, if it was copied.
    pub fn get(&self, old_offset: u64) -> Option<Moved> {
        self.moved.get(&old_offset).copied()
    }

    /// The record's text.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = format!("{HEADER}\n");
        for (old, m) in &self.moved {
            text += &format!("{old} {} {} {}\n", m.len, m.pack, m.offset);
        }
        text.into_bytes()
    }

    /// Parses the record of pack `old`.
    pub fn decode(old: PackId, bytes: &[u8]) -> Result<Relocation, PackError> {
        let bad = |why: String| PackError::Relocation(old, why);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(bad(format!("does not start with {HEADER:?}")));
        }
        let mut relocation = Relocation::default();
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let parsed = match fields[..] {
                [old_offset, len, pack, offset] => (|| {
                    Some((
                        old_offset.parse().ok()?,
                        Moved {
                            len: len.parse().ok()?,
                            pack: pack.parse().ok()?,
                            offset: offset.parse().ok()?,
                        },
                    ))
                })(),
                _ => None,
            };
            let (old_offset, moved) = parsed.ok_or_else(|| bad(format!("bad line {line:?}")))?;
            if moved.pack == old {
                return Err(bad("a frame relocated into its own pack".into()));
            }
            let ends = |offset: u64| offset.checked_add(moved.len.into()).is_some();
            if !(ends(old_offset) && ends(moved.offset)) {
                return Err(bad(format!("a frame past the largest offset: {line:?}")));
            }
            relocation.insert(old_offset, moved);
        }
        Ok(relocation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_refused() {
        let old = PackId::of(b"old");
        let mut r = Relocation::default();
        for (i, old_offset) in [24u64, 1_000_000, 3_000_000].into_iter().enumerate() {
            let to = Moved {
                len: 900_000 + i as u32,
                pack: PackId::of(&[i as u8]),
                offset: 24 + i as u64 * 900_000,
            };
            r.insert(old_offset, to);
        }
        let decoded = Relocation::decode(old, &r.encode()).unwrap();
        assert_eq!(decoded, r);
        assert_eq!(decoded.get(1_000_000).unwrap().offset, 900_024);
        assert_eq!(decoded.get(25), None);

        let own = format!("{HEADER}\n0 1 {old} 5\n");
        for garbage in [&b"wsfs-relocation 2\n"[..], b"\xff", own.as_bytes()] {
            assert!(Relocation::decode(old, garbage).is_err());
        }
        let past = format!("{HEADER}\n{} 2 {} 0\n", u64::MAX, PackId::of(b"new"));
        assert!(Relocation::decode(old, past.as_bytes()).is_err());
        let cut = format!("{HEADER}\n0 1 {old}\n");
        let err = Relocation::decode(old, cut.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("bad line"), "{err}");
    }
}
