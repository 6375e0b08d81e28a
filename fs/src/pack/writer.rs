//! Building packs: chunks in, compressed frames and a sealed pack out.

use std::io;

use super::{FOOTER_LEN, FRAME_TARGET, INDEX_RECORD_LEN, PACK_MAGIC, PACK_TARGET, ZSTD_LEVEL};
use crate::ids::{ChunkId, PackId};
use crate::manifest::{ChunkLocation, ChunkRef};

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

impl SealedPack {
    /// Every chunk of the pack as a layer references it.
    pub fn refs(&self) -> impl Iterator<Item = ChunkRef> + '_ {
        self.chunks
            .iter()
            .map(|&(id, len, loc)| ChunkRef { id, len, loc })
    }
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

/// Chunks grouped into one frame: its plain bytes, and each chunk's id,
/// offset in the frame and length.
pub struct PlainFrame {
    /// The chunks' bytes, one after the other.
    pub bytes: Vec<u8>,
    /// Id, offset in `bytes` and length of each chunk.
    pub chunks: Vec<(ChunkId, u32, u32)>,
}

impl PlainFrame {
    /// A frame without chunks.
    pub fn empty() -> Self {
        PlainFrame {
            bytes: Vec::new(),
            chunks: Vec::new(),
        }
    }
}

/// Groups chunks into frames of about [`FRAME_TARGET`] plain bytes.
#[derive(Default)]
pub struct FrameBuilder {
    frame: Vec<u8>,
    chunks: Vec<(ChunkId, u32, u32)>,
}

impl FrameBuilder {
    /// Adds one chunk. Returns the frame when this chunk filled it.
    pub fn add(&mut self, id: ChunkId, data: &[u8]) -> Option<PlainFrame> {
        let offset = self.frame.len() as u32;
        self.frame.extend_from_slice(data);
        self.chunks.push((id, offset, data.len() as u32));
        (self.frame.len() >= FRAME_TARGET).then(|| self.take())
    }

    /// The frame being filled, if it holds any chunk.
    pub fn finish(&mut self) -> Option<PlainFrame> {
        (!self.chunks.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> PlainFrame {
        PlainFrame {
            bytes: std::mem::take(&mut self.frame),
            chunks: std::mem::take(&mut self.chunks),
        }
    }
}

/// Compresses frames: one per thread that compresses.
pub struct FrameCompressor(zstd::bulk::Compressor<'static>);

impl FrameCompressor {
    /// A compressor at the packs' zstd level.
    pub fn new() -> io::Result<Self> {
        zstd::bulk::Compressor::new(ZSTD_LEVEL).map(FrameCompressor)
    }

    /// The zstd frame of `plain`.
    pub fn compress(&mut self, plain: &[u8]) -> io::Result<Vec<u8>> {
        self.0.compress(plain)
    }
}

/// Appends compressed frames, in order, to packs of bounded size.
pub struct PackWriter {
    compressor: FrameCompressor,
    frames: FrameBuilder,
    body: Vec<u8>,
    placed: Vec<Placed>,
    /// What every pack starts with: nothing, or a salt frame.
    prefix: Vec<u8>,
}

/// Magic of a zstd skippable frame (RFC 8878, 3.1.2): decoders skip it.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// A zstd skippable frame holding `salt`: placed before a pack's first frame,
/// it gives the pack an id no pack of the same chunks had before.
fn salt_frame(salt: &[u8; 16]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + salt.len());
    frame.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    frame.extend_from_slice(&(salt.len() as u32).to_le_bytes());
    frame.extend_from_slice(salt);
    frame
}

impl PackWriter {
    /// An empty writer.
    pub fn new() -> io::Result<Self> {
        Self::salted(None)
    }

    /// A writer whose packs start with a salt frame when `salt` is given
    /// (see `docs/format.md`): their ids differ from those of unsalted packs
    /// of the same chunks, e.g. packs garbage collection condemned.
    pub fn salted(salt: Option<[u8; 16]>) -> io::Result<Self> {
        let prefix = salt.as_ref().map(salt_frame).unwrap_or_default();
        Ok(Self {
            compressor: FrameCompressor::new()?,
            frames: FrameBuilder::default(),
            body: prefix.clone(),
            placed: Vec::new(),
            prefix,
        })
    }

    /// Adds one chunk, compressing frames on this thread. Returns a sealed
    /// pack when this chunk filled one.
    pub fn add(&mut self, id: ChunkId, data: &[u8]) -> io::Result<Option<SealedPack>> {
        match self.frames.add(id, data) {
            Some(frame) => {
                let compressed = self.compressor.compress(&frame.bytes)?;
                self.add_frame(&frame, &compressed)
            }
            None => Ok(None),
        }
    }

    /// Appends a frame compressed elsewhere (frames must come in the order
    /// their chunks were produced). Returns a sealed pack when it filled one.
    pub fn add_frame(&mut self, frame: &PlainFrame, compressed: &[u8]) -> io::Result<Option<SealedPack>> {
        self.copy_frame(compressed, frame.bytes.len() as u32, &frame.chunks)
    }

    /// Where the next frame goes in the pack being filled.
    pub fn next_offset(&self) -> u64 {
        self.body.len() as u64
    }

    /// Appends a frame of another pack as it is: its compressed bytes, plain
    /// length, and each chunk's id, offset in the frame and length (repacking).
    /// Returns a sealed pack when it filled one; the frame is in it.
    pub fn copy_frame(
        &mut self,
        compressed: &[u8],
        plain_len: u32,
        chunks: &[(ChunkId, u32, u32)],
    ) -> io::Result<Option<SealedPack>> {
        let frame_offset = self.next_offset();
        self.body.extend_from_slice(compressed);
        for &(id, offset_in_frame, len) in chunks {
            self.placed.push(Placed {
                id,
                len,
                frame_offset,
                frame_len: compressed.len() as u32,
                frame_plain_len: plain_len,
                offset_in_frame,
            });
        }
        if self.body.len() >= PACK_TARGET {
            return self.seal().map(Some);
        }
        Ok(None)
    }

    /// Compresses the frame being filled by [`PackWriter::add`] and seals
    /// what is buffered (`None` when empty).
    pub fn finish(&mut self) -> io::Result<Option<SealedPack>> {
        if let Some(frame) = self.frames.finish() {
            let compressed = self.compressor.compress(&frame.bytes)?;
            if let Some(sealed) = self.add_frame(&frame, &compressed)? {
                return Ok(Some(sealed));
            }
        }
        if self.placed.is_empty() {
            return Ok(None);
        }
        self.seal().map(Some)
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
        let mut bytes = std::mem::replace(&mut self.body, self.prefix.clone());
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
