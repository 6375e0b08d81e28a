//! Markers of packs found corrupt: `corrupt/<pack id>`, written by
//! [`super::run`]. A persist treats a marked pack as gone (its gc check, see
//! `persist::guard`): the chunks are stored anew, never referenced there
//! again. Garbage collection keeps a marked pack while a layer references
//! it, does not rewrite it, and removes the marker once the pack is gone.

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::StoreError;
use crate::ids::PackId;
use crate::keys;
use crate::markers::corrupt::{decode, encode};
use crate::store::remote::Listed;
use crate::store::Store;

/// Largest marker read (one line of text).
const MAX_MARKER_LEN: u64 = 64 << 10;

/// The packs marked corrupt now (one listing), with their markers.
pub fn marked(store: &Store) -> Result<HashMap<PackId, Listed>, StoreError> {
    Ok(store
        .remote()
        .list(keys::CORRUPT)?
        .into_iter()
        .filter_map(|l| {
            let pack = l
                .key
                .strip_prefix(keys::CORRUPT)?
                .strip_prefix('/')?
                .parse()
                .ok()?;
            Some((pack, l))
        })
        .collect())
}

/// Marks `pack` corrupt: `problem` is what was found, `host` where.
pub fn mark(store: &Store, pack: &PackId, host: &str, problem: &str) -> Result<(), StoreError> {
    let body = encode(crate::unix_time::now_millis(), host, problem);
    store.put_object(keys::corrupt(pack), Bytes::from(body))
}

/// Removes the marker of `pack` (done when there is none).
pub fn unmark(store: &Store, pack: &PackId) -> Result<(), StoreError> {
    store.remote().delete(&keys::corrupt(pack))
}

/// What the marker of `pack` says was found, and where (`None`: no marker,
/// or one that does not parse).
pub fn reason(store: &Store, pack: &PackId) -> Result<Option<String>, StoreError> {
    let body = store.remote().get(&keys::corrupt(pack), MAX_MARKER_LEN)?;
    Ok(body
        .as_deref()
        .and_then(decode)
        .map(|(host, problem)| format!("{problem} (found by host {host})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_keys_name_the_pack() {
        assert!(keys::corrupt(&PackId::of(b"p")).starts_with("corrupt/"));
    }
}
