//! Access traces (`traces/<key>`): the paths decoded encode back to a trace
//! with the same paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfs_fs::markers::trace;

fuzz_target!(|data: &[u8]| {
    let paths = trace::decode(data);
    let again = trace::encode(paths.iter().copied());
    assert_eq!(trace::decode(&again), paths);
});
