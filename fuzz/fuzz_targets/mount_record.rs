//! The daemon's mount-table records (its local database, read back by the
//! next daemon): `daemon/src/mounts/record.rs`, built here by path since the
//! daemon is a binary.
#![no_main]

#[allow(dead_code)]
#[path = "../../daemon/src/mounts/record.rs"]
mod record;

use libfuzzer_sys::fuzz_target;
use record::ViewRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ViewRecord::decode(data) {
        assert_eq!(ViewRecord::decode(&r.encode()).unwrap(), r);
        let _ = r.scratch_dir();
        let _ = r.state.recovery(true);
    }
});
