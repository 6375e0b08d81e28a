//! Content-defined chunking (FastCDC 2020) of file contents.
//!
//! Chunk boundaries depend on content only, so an insertion early in a file
//! changes one or two chunks, not every chunk after it.

use std::io::{self, Read};

use fastcdc::v2020::StreamCDC;

use crate::ids::ChunkId;

/// Smallest chunk, except a file's last one.
pub const MIN_CHUNK: u32 = 16 * 1024;
/// Average chunk size the cut-point mask aims for.
pub const AVG_CHUNK: u32 = 64 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: u32 = 256 * 1024;

/// One chunk of a source: its id and plain bytes.
pub struct Chunk {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The plain bytes.
    pub data: Vec<u8>,
}

/// Cuts `source` into content-defined chunks, calling `each` in order.
/// An empty source yields no chunk.
pub fn chunk_stream<R: Read>(
    source: R,
    mut each: impl FnMut(Chunk) -> io::Result<()>,
) -> io::Result<()> {
    let cdc = StreamCDC::new(
        source,
        MIN_CHUNK as usize,
        AVG_CHUNK as usize,
        MAX_CHUNK as usize,
    );
    for piece in cdc {
        let piece = match piece {
            Ok(piece) => piece,
            Err(fastcdc::v2020::Error::Empty) => break,
            Err(e) => return Err(e.into()),
        };
        each(Chunk {
            id: ChunkId::of(&piece.data),
            data: piece.data,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks_of(data: &[u8]) -> Vec<Chunk> {
        let mut out = Vec::new();
        chunk_stream(data, |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn chunks_cover_the_input_within_bounds() {
        let data = pseudo_random(3 << 20, 7);
        let chunks = chunks_of(&data);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(joined, data);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.data.len() >= MIN_CHUNK as usize && c.data.len() <= MAX_CHUNK as usize);
            assert_eq!(c.id, ChunkId::of(&c.data));
        }
    }

    #[test]
    fn an_insertion_changes_few_chunks() {
        let data = pseudo_random(2 << 20, 9);
        let mut edited = data.clone();
        edited.splice(1000..1000, b"inserted".iter().copied());
        let before: std::collections::HashSet<_> = chunks_of(&data).iter().map(|c| c.id).collect();
        let after = chunks_of(&edited);
        let changed = after.iter().filter(|c| !before.contains(&c.id)).count();
        assert!(changed <= 2, "{changed} chunks changed");
    }

    #[test]
    fn empty_input_has_no_chunk() {
        assert!(chunks_of(&[]).is_empty());
    }
}
