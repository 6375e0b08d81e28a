//! `ARCHITECTURE.md` quotes the constants below; this test fails when one
//! changes without the document (or the document without the code).

use crate::chunking::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use crate::pack::{FRAME_TARGET, PACK_TARGET};
use crate::store::readahead::MAX_WINDOW;
use crate::store::MAX_REMOTE_GETS;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The document with every run of white space made one space, so that a
/// quoted phrase may wrap.
fn architecture() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ARCHITECTURE.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn architecture_quotes_the_constants_of_the_code() {
    let doc = architecture();
    let phrases = [
        format!(
            "FastCDC {}/{}/{} KiB",
            u64::from(MIN_CHUNK) / KIB,
            u64::from(AVG_CHUNK) / KIB,
            u64::from(MAX_CHUNK) / KIB
        ),
        format!("zstd frames of ~{} MiB", FRAME_TARGET as u64 / MIB),
        format!("packs ≤ {} MiB", PACK_TARGET as u64 / MIB),
        format!("at most {} MiB", MAX_WINDOW / MIB),
        format!("({MAX_REMOTE_GETS} per daemon)"),
        format!(
            "from {} KiB, doubling up to {} MiB",
            crate::prefetch::FIRST_SPAN / KIB,
            MAX_WINDOW / MIB
        ),
        format!(
            "readers have {} or more reads in flight",
            crate::prefetch::YIELD_AT_READS
        ),
        match crate::fuse::TTL.as_secs() / 86_400 {
            1 => "pages for a day".to_string(),
            days => format!("pages for {days} days"),
        },
    ];
    for phrase in &phrases {
        assert!(
            doc.contains(phrase.as_str()),
            "ARCHITECTURE.md does not say {phrase:?}: update it or the code"
        );
    }
}
