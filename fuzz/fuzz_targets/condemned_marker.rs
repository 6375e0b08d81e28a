//! Garbage collection's condemnation markers (`gc/condemned/<key>`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::markers::condemned;

fuzz_target!(|data: &[u8]| {
    if let Some(at_ms) = condemned::decode(data) {
        assert_eq!(
            condemned::decode(condemned::encode(at_ms).as_bytes()),
            Some(at_ms)
        );
    }
});
