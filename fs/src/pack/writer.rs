//! Building packs: chunks in, compressed frames and a sealed pack out.

use std::io;

use super::{FOOTER_LEN, FRAME_TARGET, INDEX_RECORD_LEN, PACK_MAGIC, PACK_TARGET, ZSTD_LEVEL};
use crate::ids::{ChunkId, PackId};
use crate::manifest::ChunkLocation;

/// A finished pack: its bytes and where each of its chunks lives.
pub struct SealedPack {
    /// BLAKE3 of `bytes`.
    pub id: PackId,
    /// The whole pack object.
    pub bytes: Vec<u8>,
    /// Every chunk of the pack with its length and location.
    pub chunks: Vec<(ChunkId, u32, ChunkLocation)>,
    /// Bytes of compressed frames (without index and footer).
    pub frame_bytes: u64,
}

/// A chunk placed in a closed frame; the pack id is filled in at sealing.
struct Placed {
    id: ChunkId,
    len: u32,
    frame_offset: u64,
    frame_len: u32,
    frame_plain_len: u32,
    offset_in_frame: u32,
}

/// Accumulates chunks into frames and frames into packs of bounded size.
pub struct PackWriter {
    compressor: zstd::bulk::Compressor<'static>,
    body: Vec<u8>,
    frame: Vec<u8>,
    frame_chunks: Vec<(ChunkId, u32, u32)>,
    placed: Vec<Placed>,
}

impl PackWriter {
    /// An empty writer.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            body: Vec::new(),
            frame: Vec::with_capacity(FRAME_TARGET + crate::chunking::MAX_CHUNK as usize),
            frame_chunks: Vec::new(),
            placed: Vec::new(),
        })
    }

    /// Adds one chunk. Returns a sealed pack when this chunk filled one.
    pub fn add(&mut self, id: ChunkId, data: &[u8]) -> io::Result<Option<SealedPack>> {
        let offset = self.frame.len() as u32;
        self.frame.extend_from_slice(data);
        self.frame_chunks.push((id, offset, data.len() as u32));
        if self.frame.len() >= FRAME_TARGET {
            self.close_frame()?;
            if self.body.len() >= PACK_TARGET {
                return self.seal().map(Some);
            }
        }
        Ok(None)
    }

    /// True when no chunk is waiting to be sealed.
    pub fn is_empty(&self) -> bool {
        self.frame_chunks.is_empty() && self.placed.is_empty()
    }

    /// Closes the open frame and seals what is buffered (`None` when empty).
    pub fn finish(&mut self) -> io::Result<Option<SealedPack>> {
        if self.is_empty() {
            return Ok(None);
        }
        self.close_frame()?;
        self.seal().map(Some)
    }

    fn close_frame(&mut self) -> io::Result<()> {
        if self.frame_chunks.is_empty() {
            return Ok(());
        }
        let compressed = self.compressor.compress(&self.frame)?;
        let frame_offset = self.body.len() as u64;
        self.body.extend_from_slice(&compressed);
        for (id, offset_in_frame, len) in self.frame_chunks.drain(..) {
            self.placed.push(Placed {
                id,
                len,
                frame_offset,
                frame_len: compressed.len() as u32,
                frame_plain_len: self.frame.len() as u32,
                offset_in_frame,
            });
        }
        self.frame.clear();
        Ok(())
    }

    fn seal(&mut self) -> io::Result<SealedPack> {
        let mut index = Vec::with_capacity(self.placed.len() * INDEX_RECORD_LEN);
        for p in &self.placed {
            index.extend_from_slice(&p.frame_offset.to_le_bytes());
            for v in [p.frame_len, p.frame_plain_len, p.offset_in_frame, p.len] {
                index.extend_from_slice(&v.to_le_bytes());
            }
        }
        let index = self.compressor.compress(&index)?;
        let mut bytes = std::mem::take(&mut self.body);
        let frame_bytes = bytes.len() as u64;
        let index_offset = bytes.len() as u64;
        bytes.reserve(index.len() + FOOTER_LEN);
        bytes.extend_from_slice(&index);
        bytes.extend_from_slice(&index_offset.to_le_bytes());
        bytes.extend_from_slice(&(index.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(self.placed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&PACK_MAGIC);
        let id = PackId::of(&bytes);
        let chunks = self
            .placed
            .drain(..)
            .map(|p| {
                let loc = ChunkLocation {
                    pack: id,
                    frame_offset: p.frame_offset,
                    frame_len: p.frame_len,
                    frame_plain_len: p.frame_plain_len,
                    offset_in_frame: p.offset_in_frame,
                };
                (p.id, p.len, loc)
            })
            .collect();
        Ok(SealedPack {
            id,
            bytes,
            chunks,
            frame_bytes,
        })
    }
}
