//! `wsfs check`'s corrupt-pack markers (`corrupt/<pack id>`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::markers::corrupt;

fuzz_target!(|data: &[u8]| {
    if let Some((host, problem)) = corrupt::decode(data) {
        // Encoding keeps a marker on its lines: what decodes again is the same
        // words, whitespace collapsed.
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let body = corrupt::encode(0, &host, &problem);
        let (h, p) = corrupt::decode(body.as_bytes()).expect("an encoded marker decodes");
        assert_eq!((h, p), (words(&host), words(&problem)));
    }
});
