//! Layer manifests (`layers/<id>`): any bytes decode to a manifest or an
//! error; a manifest that decodes encodes back to bytes that decode to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::manifest::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        let again = decode(&encode(&m)).expect("a decoded manifest encodes to a valid one");
        assert_eq!(again, m);
    }
});
