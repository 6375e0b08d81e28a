//! Whole pack objects (`packs/<id>`): the footer, the index frame and every
//! frame it names, as garbage collection and `wsfs check` read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::ids::PackId;
use wsfs_fs::pack::{index_of, read_index, MAX_PACK_LEN};

fuzz_target!(|data: &[u8]| {
    // Larger objects are refused before they are read.
    if data.len() as u64 > MAX_PACK_LEN {
        return;
    }
    let id = PackId::of(b"fuzz");
    if let Ok((footer, index)) = index_of(id, data) {
        assert_eq!(index.len(), footer.count as usize);
    }
    if let Ok(chunks) = read_index(id, data) {
        for (_, len, loc) in chunks {
            assert!(loc.offset_in_frame as u64 + len as u64 <= loc.frame_plain_len as u64);
        }
    }
});
