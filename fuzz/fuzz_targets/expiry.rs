//! Workspace expiries (`expiry/<ns>/<name>`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::workspace::{decode_expiry, encode_expiry};

fuzz_target!(|data: &[u8]| {
    if let Some(at_ms) = decode_expiry(data) {
        assert_eq!(decode_expiry(encode_expiry(at_ms).as_bytes()), Some(at_ms));
    }
});
