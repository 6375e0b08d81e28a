//! One frame of a pack as a ranged GET returns it, with the location that
//! led to it (12 bytes: plain length, chunk offset and chunk length, little
//! endian, then the compressed frame): decompressed, then a chunk cut from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::ids::{ChunkId, PackId};
use wsfs_fs::manifest::ChunkLocation;
use wsfs_fs::pack::{chunk_in_frame, decode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((head, compressed)) = data.split_first_chunk::<12>() else {
        return;
    };
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap());
    let loc = ChunkLocation {
        pack: PackId::of(b"fuzz"),
        frame_offset: 0,
        frame_len: compressed.len() as u32,
        frame_plain_len: u32_at(0),
        offset_in_frame: u32_at(4),
    };
    if let Ok(plain) = decode_frame(compressed, &loc) {
        assert_eq!(plain.len(), loc.frame_plain_len as usize);
        let _ = chunk_in_frame(&plain, &ChunkId::of(b""), u32_at(8), &loc);
    }
});
