//! The keys of the remote, as `docs/format.md` lists them: every object's
//! key is built here, and parsed back here.

use crate::ids::{LayerId, PackId};
use crate::workspace::WorkspaceName;

/// `packs/<id>`: packs of compressed frames.
pub const PACKS: &str = "packs";
/// `layers/<id>`: layer manifests.
pub const LAYERS: &str = "layers";
/// `relocations/<old pack id>`: where garbage collection moved a pack's frames.
pub const RELOCATIONS: &str = "relocations";
/// `workspaces/<ns>/<name>/<nanos>-<random>-<layer id>`: one record per persist.
pub const WORKSPACES: &str = "workspaces";
/// `expiry/<ns>/<name>`: when a workspace may be deleted.
pub const EXPIRY: &str = "expiry";
/// `gc/condemned/<object key>`: garbage collection's markers.
pub const CONDEMNED: &str = "gc/condemned";
/// `corrupt/<pack id>`: the markers of packs found corrupt.
pub const CORRUPT: &str = "corrupt";
/// `traces/<prefetch key>`: access traces.
pub const TRACES: &str = "traces";

/// The key of pack `id`.
pub fn pack(id: &PackId) -> String {
    format!("{PACKS}/{id}")
}

/// The key of layer `id`'s manifest.
pub fn layer(id: &LayerId) -> String {
    format!("{LAYERS}/{id}")
}

/// The key of the relocation record of pack `old`.
pub fn relocation(old: &PackId) -> String {
    format!("{RELOCATIONS}/{old}")
}

/// The prefix of workspace `ws`'s records.
pub fn workspace(ws: &WorkspaceName) -> String {
    format!("{WORKSPACES}/{ws}")
}

/// The prefix of the records of every workspace of namespace `ns`.
pub fn namespace(ns: &str) -> String {
    format!("{WORKSPACES}/{ns}")
}

/// The key of a record of `ws` adding `layer`, written at `nanos` since
/// the epoch, made unique by `random`: keys sort in persist order.
pub fn record(ws: &WorkspaceName, nanos: u128, random: u64, layer: &LayerId) -> String {
    format!("{}/{nanos:020}-{random:016x}-{layer}", workspace(ws))
}

/// The layer a record key names (its last `-`-separated part).
pub fn record_layer(key: &str) -> Option<LayerId> {
    key.rsplit('-').next()?.parse().ok()
}

/// The key of `ws`'s expiry.
pub fn expiry(ws: &WorkspaceName) -> String {
    format!("{EXPIRY}/{ws}")
}

/// The workspace of a key `<prefix>/<ns>/<name>/...` (a record or an expiry).
pub fn workspace_in(key: &str) -> Option<WorkspaceName> {
    let mut parts = key.split('/').skip(1);
    format!("{}/{}", parts.next()?, parts.next()?).parse().ok()
}

/// The key of the condemnation marker of the object at `object`.
pub fn condemned(object: &str) -> String {
    format!("{CONDEMNED}/{object}")
}

/// The object key a condemnation marker's key names.
pub fn condemned_object(marker: &str) -> Option<&str> {
    marker.strip_prefix(CONDEMNED)?.strip_prefix('/')
}

/// The key of the marker of corrupt pack `id`.
pub fn corrupt(id: &PackId) -> String {
    format!("{CORRUPT}/{id}")
}

/// The key of the access trace kept under `key`.
pub fn trace(key: &str) -> String {
    format!("{TRACES}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_doc_lists_every_key() {
        let doc = include_str!("../../docs/format.md");
        for prefix in [
            PACKS,
            LAYERS,
            RELOCATIONS,
            WORKSPACES,
            EXPIRY,
            CONDEMNED,
            CORRUPT,
            TRACES,
        ] {
            assert!(
                doc.contains(&format!("`{prefix}/")),
                "docs/format.md does not list the keys under {prefix}/: update it or the code"
            );
        }
    }

    #[test]
    fn keys_parse_back() {
        let ws: WorkspaceName = "ci/run-42".parse().unwrap();
        let layer = LayerId::of(b"l");
        let key = record(&ws, 7, 0xab, &layer);
        assert_eq!(
            key,
            format!("workspaces/ci/run-42/00000000000000000007-00000000000000ab-{layer}")
        );
        assert_eq!(record_layer(&key), Some(layer));
        assert_eq!(workspace_in(&key), Some(ws.clone()));
        assert_eq!(workspace_in(&expiry(&ws)), Some(ws));
        let pack = PackId::of(b"p");
        assert_eq!(
            condemned_object(&condemned(&self::pack(&pack))),
            Some(self::pack(&pack).as_str())
        );
        assert_eq!(condemned_object("traces/x"), None);
    }
}
