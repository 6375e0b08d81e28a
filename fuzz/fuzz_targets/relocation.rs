//! Relocation records (`relocations/<pack id>`): a record that decodes
//! encodes back to one that decodes to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::ids::PackId;
use wsfs_fs::pack::{Relocation, MAX_RELOCATION_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() as u64 > MAX_RELOCATION_LEN {
        return;
    }
    let old = PackId::of(b"fuzz");
    if let Ok(r) = Relocation::decode(old, data) {
        let again = Relocation::decode(old, &r.encode()).expect("an encoded record decodes");
        assert_eq!(again, r);
    }
});
