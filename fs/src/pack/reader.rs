//! Reading packs: one frame, one chunk of a frame, or the whole index.

use super::{FOOTER_LEN, INDEX_RECORD_LEN, PACK_MAGIC};

/// More chunks than a pack of bounded size can hold: the index is lying.
const MAX_INDEX_CHUNKS: usize = 1 << 24;
use crate::error::PackError;
use crate::ids::{ChunkId, PackId};
use crate::manifest::v1::MAX_FRAME_BYTES;
use crate::manifest::ChunkLocation;

/// Decompresses one frame fetched from a pack. The frame must decode to
/// exactly `loc.frame_plain_len` bytes, at most [`MAX_FRAME_BYTES`] (a
/// location read from a pack's index is not checked before); nothing larger
/// is ever allocated.
pub fn decode_frame(compressed: &[u8], loc: &ChunkLocation) -> Result<Vec<u8>, PackError> {
    if loc.frame_plain_len > MAX_FRAME_BYTES {
        return Err(PackError::Frame(
            loc.pack,
            loc.frame_offset,
            format!(
                "declares {} plain bytes, more than the {MAX_FRAME_BYTES} of any frame",
                loc.frame_plain_len
            ),
        ));
    }
    let plain = zstd::bulk::decompress(compressed, loc.frame_plain_len as usize)
        .map_err(|e| PackError::Frame(loc.pack, loc.frame_offset, e.to_string()))?;
    if plain.len() != loc.frame_plain_len as usize {
        return Err(PackError::Frame(
            loc.pack,
            loc.frame_offset,
            format!("{} plain bytes, expected {}", plain.len(), loc.frame_plain_len),
        ));
    }
    Ok(plain)
}

/// The bytes of a chunk inside its decoded frame, checked against its digest.
pub fn chunk_in_frame<'a>(
    frame: &'a [u8],
    id: &ChunkId,
    len: u32,
    loc: &ChunkLocation,
) -> Result<&'a [u8], PackError> {
    let start = loc.offset_in_frame as usize;
    let bytes = start
        .checked_add(len as usize)
        .and_then(|end| frame.get(start..end))
        .ok_or(PackError::Digest(*id))?;
    check_chunk(bytes, id)?;
    Ok(bytes)
}

/// Checks that `bytes` are the chunk `id`.
pub fn check_chunk(bytes: &[u8], id: &ChunkId) -> Result<(), PackError> {
    if ChunkId::of(bytes) == *id {
        Ok(())
    } else {
        Err(PackError::Digest(*id))
    }
}

/// Where a pack's index lies, from its footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the index frame; frames end there.
    pub index_offset: u64,
    /// Compressed length of the index frame.
    pub index_len: u32,
    /// Chunks the index lists.
    pub count: u32,
}

/// Parses the last [`FOOTER_LEN`] bytes of pack `id`, `pack_len` bytes long.
pub fn parse_footer(id: PackId, footer: &[u8], pack_len: u64) -> Result<Footer, PackError> {
    let bad = |what: &str| PackError::Index(id, what.to_string());
    if footer.len() != FOOTER_LEN || footer[FOOTER_LEN - 8..] != PACK_MAGIC {
        return Err(bad("no pack footer"));
    }
    let parsed = Footer {
        index_offset: u64::from_le_bytes(footer[0..8].try_into().unwrap()),
        index_len: u32::from_le_bytes(footer[8..12].try_into().unwrap()),
        count: u32::from_le_bytes(footer[12..16].try_into().unwrap()),
    };
    let index_end = parsed.index_offset.checked_add(parsed.index_len.into());
    if index_end.is_none_or(|end| end > pack_len.saturating_sub(FOOTER_LEN as u64)) {
        return Err(bad("index out of bounds"));
    }
    if parsed.count as usize > MAX_INDEX_CHUNKS {
        return Err(bad("implausible chunk count"));
    }
    Ok(parsed)
}

/// Decodes the index frame `index` of pack `id`: each chunk's length and
/// location, in chunk order (chunk ids are not stored in the index).
pub fn decode_index(
    id: PackId,
    footer: &Footer,
    index: &[u8],
) -> Result<Vec<(u32, ChunkLocation)>, PackError> {
    let bad = |what: &str| PackError::Index(id, what.to_string());
    let plain_len = footer.count as usize * INDEX_RECORD_LEN;
    let plain = zstd::bulk::decompress(index, plain_len).map_err(|e| bad(&e.to_string()))?;
    if plain.len() != plain_len {
        return Err(bad("index length does not match its chunk count"));
    }
    let u32_at = |r: &[u8], at: usize| u32::from_le_bytes(r[at..at + 4].try_into().unwrap());
    Ok(plain
        .chunks_exact(INDEX_RECORD_LEN)
        .map(|r| {
            let loc = ChunkLocation {
                pack: id,
                frame_offset: u64::from_le_bytes(r[0..8].try_into().unwrap()),
                frame_len: u32_at(r, 8),
                frame_plain_len: u32_at(r, 12),
                offset_in_frame: u32_at(r, 16),
            };
            (u32_at(r, 20), loc)
        })
        .collect())
}

/// The footer and index of a whole pack object.
pub fn index_of(id: PackId, pack: &[u8]) -> Result<(Footer, Vec<(u32, ChunkLocation)>), PackError> {
    let footer_at = pack
        .len()
        .checked_sub(FOOTER_LEN)
        .ok_or_else(|| PackError::Index(id, "no pack footer".into()))?;
    let footer = parse_footer(id, &pack[footer_at..], pack.len() as u64)?;
    let start = footer.index_offset as usize;
    let index = decode_index(id, &footer, &pack[start..start + footer.index_len as usize])?;
    Ok((footer, index))
}

/// Parses the index of a whole pack object: every chunk with its length and
/// location. Chunk ids are recomputed from the bytes (the index does not
/// store them), so a corrupt frame is found here too.
pub fn read_index(id: PackId, pack: &[u8]) -> Result<Vec<(ChunkId, u32, ChunkLocation)>, PackError> {
    let (footer, index) = index_of(id, pack)?;
    let bad = |what: &str| PackError::Index(id, what.to_string());
    // The frame last decoded, by offset, length and plain length.
    let mut frame: Option<((u64, u32, u32), Vec<u8>)> = None;
    let mut out = Vec::with_capacity(index.len());
    for (len, loc) in index {
        let geometry = (loc.frame_offset, loc.frame_len, loc.frame_plain_len);
        match &frame {
            Some((decoded, _)) if *decoded == geometry => {}
            Some((decoded, _)) if decoded.0 == loc.frame_offset => {
                return Err(bad("chunks of one frame disagree on its length"));
            }
            _ => {
                let start = loc.frame_offset as usize;
                let compressed = start
                    .checked_add(loc.frame_len as usize)
                    .filter(|&end| end as u64 <= footer.index_offset)
                    .map(|end| &pack[start..end])
                    .ok_or_else(|| bad("frame out of bounds"))?;
                frame = Some((geometry, decode_frame(compressed, &loc)?));
            }
        }
        let plain_frame = &frame.as_ref().expect("decoded above").1;
        let bytes = (loc.offset_in_frame as usize)
            .checked_add(len as usize)
            .and_then(|end| plain_frame.get(loc.offset_in_frame as usize..end))
            .ok_or_else(|| bad("chunk out of its frame"))?;
        out.push((ChunkId::of(bytes), len, loc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::PackWriter;
    use super::*;

    #[test]
    fn chunks_come_back_from_their_frames_and_the_index() {
        let mut w = PackWriter::new().unwrap();
        let datas: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 30_000 + i as usize]).collect();
        for d in &datas {
            assert!(w.add(ChunkId::of(d), d).unwrap().is_none());
        }
        let sealed = w.finish().unwrap().unwrap();
        assert!(w.finish().unwrap().is_none());
        assert_eq!(sealed.id, PackId::of(&sealed.bytes));
        assert_eq!(sealed.chunks.len(), datas.len());
        for ((id, len, loc), d) in sealed.chunks.iter().zip(&datas) {
            let start = loc.frame_offset as usize;
            let frame = decode_frame(&sealed.bytes[start..start + loc.frame_len as usize], loc).unwrap();
            assert_eq!(chunk_in_frame(&frame, id, *len, loc).unwrap(), &d[..]);
        }
        assert_eq!(read_index(sealed.id, &sealed.bytes).unwrap(), sealed.chunks);
    }

    #[test]
    fn salted_packs_differ_and_read_back() {
        let data = vec![7u8; 50_000];
        let seal = |salt| {
            let mut w = PackWriter::salted(salt).unwrap();
            w.add(ChunkId::of(&data), &data).unwrap();
            w.finish().unwrap().unwrap()
        };
        let (plain, salted) = (seal(None), seal(Some([1; 16])));
        assert_ne!(plain.id, salted.id);
        assert_ne!(salted.id, seal(Some([2; 16])).id);
        let (id, len, loc) = salted.chunks[0];
        assert_eq!(loc.frame_offset, 24, "after the salt frame");
        let start = loc.frame_offset as usize;
        let frame = decode_frame(&salted.bytes[start..start + loc.frame_len as usize], &loc).unwrap();
        assert_eq!(chunk_in_frame(&frame, &id, len, &loc).unwrap(), &data[..]);
        assert_eq!(read_index(salted.id, &salted.bytes).unwrap(), salted.chunks);
        let whole = zstd::stream::decode_all(&salted.bytes[..salted.bytes.len() - FOOTER_LEN]).unwrap();
        assert!(whole.starts_with(&data), "zstd tools skip the salt frame");
    }

    #[test]
    fn frames_copied_into_another_pack_read_back_there() {
        let mut w = PackWriter::new().unwrap();
        let datas: Vec<Vec<u8>> = (0..30u8).map(|i| random_like(i, 100_000)).collect();
        for d in &datas {
            w.add(ChunkId::of(d), d).unwrap();
        }
        let old = w.finish().unwrap().unwrap();
        let index = read_index(old.id, &old.bytes).unwrap();
        let last_frame = index.last().unwrap().2.frame_offset;
        let mut copy = PackWriter::salted(Some([3; 16])).unwrap();
        let at = copy.next_offset();
        let chunks: Vec<(ChunkId, u32, u32)> = index
            .iter()
            .filter(|(_, _, loc)| loc.frame_offset == last_frame)
            .map(|(id, len, loc)| (*id, loc.offset_in_frame, *len))
            .collect();
        let loc = index.last().unwrap().2;
        let range = last_frame as usize..last_frame as usize + loc.frame_len as usize;
        assert!(copy
            .copy_frame(&old.bytes[range], loc.frame_plain_len, &chunks)
            .unwrap()
            .is_none());
        let new = copy.finish().unwrap().unwrap();
        assert_eq!(at, 24, "after the salt frame");
        let copied = read_index(new.id, &new.bytes).unwrap();
        assert_eq!(copied.len(), chunks.len());
        for ((id, len, new_loc), (old_id, _, old_len)) in copied.iter().zip(&chunks) {
            assert_eq!((id, len), (old_id, old_len));
            assert_eq!(new_loc.frame_offset, at);
            assert_eq!(
                (new_loc.frame_len, new_loc.frame_plain_len),
                (loc.frame_len, loc.frame_plain_len)
            );
        }
    }

    /// Incompressible-looking bytes, different per seed.
    fn random_like(seed: u8, len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect()
    }

    #[test]
    fn a_corrupted_frame_never_yields_wrong_bytes() {
        let mut w = PackWriter::new().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        w.add(ChunkId::of(&data), &data).unwrap();
        let sealed = w.finish().unwrap().unwrap();
        let (id, len, loc) = sealed.chunks[0];
        let mut frame = sealed.bytes[..loc.frame_len as usize].to_vec();
        let mid = frame.len() / 2;
        frame[mid] ^= 0x55;
        let outcome = decode_frame(&frame, &loc).and_then(|f| chunk_in_frame(&f, &id, len, &loc).map(|_| ()));
        assert!(outcome.is_err());
    }

    #[test]
    fn garbage_is_not_an_index() {
        let id = PackId::of(b"x");
        assert!(read_index(id, b"short").is_err());
        let mut fake = vec![0u8; 100];
        fake[92..].copy_from_slice(&PACK_MAGIC);
        fake[76..84].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_index(id, &fake).is_err());
    }

    /// Found by fuzzing (`fuzz/`, target pack_frame): a location declaring a
    /// frame of almost 4 GiB made the decoder allocate that much up front.
    #[test]
    fn a_frame_larger_than_any_frame_is_refused_before_it_is_allocated() {
        let input = b"\x16\x00\x00\xff\xff\x00\x00\x00\x06\x00\x00\x00(\xb5/\xfd \x16\xb1\x00\x00hello\x00worldhe\x16\x00\x00\x00";
        let loc = ChunkLocation {
            pack: PackId::of(b"fuzz"),
            frame_offset: 0,
            frame_len: 26,
            frame_plain_len: u32::from_le_bytes(input[0..4].try_into().unwrap()),
            offset_in_frame: 255,
        };
        let err = decode_frame(&input[12..], &loc).unwrap_err();
        assert!(err.to_string().contains("more than the 16777216"), "{err}");
    }

    /// Found by fuzzing (`fuzz/`, target pack_index): a pack whose index names
    /// a frame of over 16 MiB plain bytes; reading its chunks decoded that
    /// frame into an allocation of the declared size.
    #[test]
    fn an_index_naming_a_huge_frame_is_refused_when_its_chunks_are_read() {
        let pack = [
            168u8, 181, 47, 253, 96, 44, 0, 77, 0, 0, 16, 7, 7, 1, 0, 39, 42, 192, 2, 40, 181, 47, 253, 32,
            24, 173, 0, 0, 104, 0, 0, 19, 0, 0, 0, 44, 1, 252, 43, 1, 0, 0, 2, 0, 64, 152, 1, 96, 1, 19, 0,
            0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 1, 0, 0, 0, 87, 83, 70, 83, 80, 65, 75, 49,
        ];
        let id = PackId::of(&pack);
        let (_, index) = index_of(id, &pack).unwrap();
        assert!(index.iter().any(|(_, loc)| loc.frame_plain_len > MAX_FRAME_BYTES));
        assert!(matches!(read_index(id, &pack), Err(PackError::Frame(..))));
    }

    /// Found by fuzzing (`fuzz/`, target pack_index): two index records of the
    /// same frame offset with different frame lengths; the second chunk was
    /// cut from the frame the first one decoded, so read_index returned a
    /// location whose chunk ends past its own frame.
    #[test]
    fn chunks_of_one_frame_that_disagree_on_its_length_are_refused() {
        let pack = [
            40u8, 181, 47, 253, 32, 22, 177, 0, 0, 104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 104,
            101, 108, 108, 111, 32, 97, 103, 97, 105, 110, 40, 181, 47, 253, 0, 72, 37, 1, 0, 152, 0, 0, 31,
            0, 0, 0, 22, 0, 6, 0, 5, 11, 0, 0, 0, 11, 0, 0, 0, 7, 0, 128, 3, 200, 187, 105, 35, 39, 1, 96,
            99, 48, 202, 0, 176, 31, 0, 0, 0, 0, 0, 0, 0, 45, 0, 0, 0, 3, 0, 0, 0, 87, 83, 70, 83, 80, 65,
            75, 49,
        ];
        let err = read_index(PackId::of(&pack), &pack).unwrap_err();
        assert!(err.to_string().contains("disagree on its length"), "{err}");
    }
}
