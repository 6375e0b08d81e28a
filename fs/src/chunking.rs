//! Content-defined chunking (FastCDC 2020) of file contents.
//!
//! Chunk boundaries depend on content only, so an insertion early in a file
//! changes one or two chunks, not every chunk after it.

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;

use crate::ids::ChunkId;

/// Smallest chunk, except a file's last one.
pub const MIN_CHUNK: u32 = 16 * 1024;
/// Average chunk size the cut-point mask aims for.
pub const AVG_CHUNK: u32 = 64 * 1024;
/// Largest chunk.
pub const MAX_CHUNK: u32 = 256 * 1024;
/// Bytes read ahead of the cut-point search. Cuts are those of chunking the
/// whole input at once: a chunk is only taken once `MAX_CHUNK` bytes after
/// its start are buffered (or the input ended).
const WINDOW: usize = 8 << 20;

/// One chunk of a source: its id and plain bytes.
pub struct Chunk<'a> {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The plain bytes.
    pub data: &'a [u8],
}

/// Cuts `data`, a whole input, into content-defined chunks, calling `each`
/// in order: the chunks [`chunk_stream`] gives for the same bytes.
pub fn chunk_bytes<E>(data: &[u8], mut each: impl FnMut(Chunk<'_>) -> Result<(), E>) -> Result<(), E> {
    for cut in FastCDC::new(data, MIN_CHUNK as usize, AVG_CHUNK as usize, MAX_CHUNK as usize) {
        let data = &data[cut.offset..cut.offset + cut.length];
        each(Chunk {
            id: ChunkId::of(data),
            data,
        })?;
    }
    Ok(())
}

/// Cuts `source` into content-defined chunks, calling `each` in order.
/// An empty source yields no chunk. Small inputs cost one read and no
/// buffer larger than themselves.
pub fn chunk_stream<R: Read>(
    mut source: R,
    mut each: impl FnMut(Chunk<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut eof = false;
    loop {
        if !eof {
            let want = (WINDOW - buf.len()) as u64;
            eof = (&mut source).take(want).read_to_end(&mut buf)? < want as usize;
        }
        let mut consumed = 0;
        for cut in FastCDC::new(&buf, MIN_CHUNK as usize, AVG_CHUNK as usize, MAX_CHUNK as usize) {
            if !eof && cut.offset + MAX_CHUNK as usize > buf.len() {
                break;
            }
            let data = &buf[cut.offset..cut.offset + cut.length];
            each(Chunk {
                id: ChunkId::of(data),
                data,
            })?;
            consumed = cut.offset + cut.length;
        }
        buf.drain(..consumed);
        if eof && buf.is_empty() {
            return Ok(());
        }
    }
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

    fn chunks_of(data: &[u8]) -> Vec<(ChunkId, Vec<u8>)> {
        let mut out = Vec::new();
        chunk_stream(data, |c| {
            out.push((c.id, c.data.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn chunks_cover_the_input_within_bounds() {
        let data = pseudo_random(3 << 20, 7);
        let chunks = chunks_of(&data);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.1.clone()).collect();
        assert_eq!(joined, data);
        for (id, bytes) in &chunks[..chunks.len() - 1] {
            assert!(bytes.len() >= MIN_CHUNK as usize && bytes.len() <= MAX_CHUNK as usize);
            assert_eq!(*id, ChunkId::of(bytes));
        }
    }

    #[test]
    fn cuts_do_not_depend_on_the_read_window() {
        let data = pseudo_random(WINDOW * 2 + 12345, 3);
        let whole: Vec<usize> =
            FastCDC::new(&data, MIN_CHUNK as usize, AVG_CHUNK as usize, MAX_CHUNK as usize)
                .map(|c| c.length)
                .collect();
        let streamed: Vec<usize> = chunks_of(&data).iter().map(|c| c.1.len()).collect();
        assert_eq!(streamed, whole);
    }

    #[test]
    fn whole_inputs_are_cut_as_streams_are() {
        let data = pseudo_random(WINDOW + 777_777, 5);
        let mut whole = Vec::new();
        chunk_bytes(&data, |c| {
            whole.push((c.id, c.data.to_vec()));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(whole, chunks_of(&data));
    }

    #[test]
    fn an_insertion_changes_few_chunks() {
        let data = pseudo_random(2 << 20, 9);
        let mut edited = data.clone();
        edited.splice(1000..1000, b"inserted".iter().copied());
        let before: std::collections::HashSet<_> = chunks_of(&data).iter().map(|c| c.0).collect();
        let after = chunks_of(&edited);
        let changed = after.iter().filter(|c| !before.contains(&c.0)).count();
        assert!(changed <= 2, "{changed} chunks changed");
    }

    #[test]
    fn empty_input_has_no_chunk() {
        assert!(chunks_of(&[]).is_empty());
    }
}
