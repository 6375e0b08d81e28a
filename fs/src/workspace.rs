//! Workspaces: named, ordered stacks of layers, kept in the remote as one
//! small immutable record per persist.
//!
//! A record's key sorts in persist order and names its layer:
//! `workspaces/<ns>/<name>/<unix nanos, 20 digits>-<random>-<layer id>`.
//! Listing the prefix gives the stack without reading any record, and
//! persists from many hosts at once all land: no record is ever rewritten,
//! so no compare-and-swap is needed (some S3 servers ignore preconditions).
//!
//! A workspace may carry an expiry (`expiry/<ns>/<name>`): after it, the
//! workspace may be deleted by whoever cleans up (`wsfs rm --expired`).

use std::fmt;
use std::str::FromStr;
#[cfg(feature = "store")]
use std::time::SystemTime;

#[cfg(feature = "store")]
use bytes::Bytes;
use thiserror::Error;

#[cfg(feature = "store")]
use crate::error::StoreError;
use crate::ids::LayerId;
#[cfg(feature = "store")]
use crate::keys;
#[cfg(feature = "store")]
use crate::store::Store;

/// A workspace name `NAMESPACE/NAME`, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceName {
    namespace: String,
    name: String,
}

/// A text that is not a valid workspace name.
#[derive(Debug, Error)]
#[error(
    "invalid workspace name {0:?}: expected NAMESPACE/NAME (e.g. run-42/build), each part 1-128 \
     letters, digits, '.', '_' or '-', not starting with '.' or '-'"
)]
pub struct WorkspaceNameError(pub String);

fn valid_part(part: &str) -> bool {
    (1..=128).contains(&part.len())
        && !part.starts_with(['.', '-'])
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for WorkspaceName {
    type Err = WorkspaceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) if valid_part(ns) && valid_part(name) => Ok(WorkspaceName {
                namespace: ns.to_string(),
                name: name.to_string(),
            }),
            _ => Err(WorkspaceNameError(s.to_string())),
        }
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What one persist added to a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    /// The layer.
    pub layer: LayerId,
    /// When it was persisted, milliseconds since the epoch.
    pub persisted_at_ms: u64,
    /// The host that persisted it.
    pub host: String,
    /// Regular files in the layer.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
}

const RECORD_HEADER: &str = "wsfs-layer-record 1";

impl LayerRecord {
    /// The record as stored.
    pub fn encode(&self) -> String {
        format!(
            "{RECORD_HEADER}\nlayer {}\npersisted_at_ms {}\nhost {}\nfiles {}\nbytes {}\n",
            self.layer, self.persisted_at_ms, self.host, self.files, self.bytes
        )
    }

    /// A stored record (`None`: not one). Lines end at `\n` only, as
    /// [`LayerRecord::encode`] ends them: a host ending in `\r` reads back whole.
    pub fn decode(text: &str) -> Option<LayerRecord> {
        let mut lines = text.split('\n');
        if lines.next()? != RECORD_HEADER {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_string)
        };
        Some(LayerRecord {
            layer: field("layer")?.parse().ok()?,
            persisted_at_ms: field("persisted_at_ms")?.parse().ok()?,
            host: field("host")?,
            files: field("files")?.parse().ok()?,
            bytes: field("bytes")?.parse().ok()?,
        })
    }
}

/// Appends a layer to a workspace: the last write of a persist, made only
/// once the layer's packs and manifest are in the remote. A PUT that failed
/// is read back (it may have landed all the same), so that the outcome is
/// the one the remote holds. Returns the record's key, which tells where
/// the layer sits in [`stack`].
#[cfg(feature = "store")]
pub fn append(store: &Store, ws: &WorkspaceName, record: &LayerRecord) -> Result<String, StoreError> {
    let nanos = crate::unix_time::since_epoch(SystemTime::now()).as_nanos();
    let key = keys::record(ws, nanos, rand::random::<u64>(), &record.layer);
    let bytes = Bytes::from(record.encode());
    store.remote().put_resolved(&key, bytes)?;
    Ok(key)
}

/// The records' keys and layer ids of a workspace, oldest first.
#[cfg(feature = "store")]
pub fn stack(store: &Store, ws: &WorkspaceName) -> Result<Vec<(String, LayerId)>, StoreError> {
    Ok(store
        .remote()
        .list(&keys::workspace(ws))?
        .into_iter()
        .filter_map(|l| {
            let layer = keys::record_layer(&l.key)?;
            Some((l.key, layer))
        })
        .collect())
}

/// The workspace and layer of every record of every workspace (one listing).
#[cfg(feature = "store")]
pub fn all_records(store: &Store) -> Result<Vec<(WorkspaceName, LayerId)>, StoreError> {
    Ok(store
        .remote()
        .list(keys::WORKSPACES)?
        .into_iter()
        .filter_map(|l| Some((keys::workspace_in(&l.key)?, keys::record_layer(&l.key)?)))
        .collect())
}

/// The layer ids of a workspace, oldest first (empty when it does not exist).
#[cfg(feature = "store")]
pub fn layers(store: &Store, ws: &WorkspaceName) -> Result<Vec<LayerId>, StoreError> {
    Ok(stack(store, ws)?.into_iter().map(|(_, layer)| layer).collect())
}

/// Largest workspace record or expiry object (a few lines of text).
#[cfg(feature = "store")]
const MAX_RECORD_LEN: u64 = 64 << 10;

/// The records of a workspace, oldest first.
#[cfg(feature = "store")]
pub fn records(store: &Store, ws: &WorkspaceName) -> Result<Vec<LayerRecord>, StoreError> {
    let mut out = Vec::new();
    for listed in store.remote().list(&keys::workspace(ws))? {
        let Some(bytes) = store.remote().get(&listed.key, MAX_RECORD_LEN)? else {
            continue;
        };
        match std::str::from_utf8(&bytes).ok().and_then(LayerRecord::decode) {
            Some(record) => out.push(record),
            None => tracing::warn!(key = %listed.key, "ignoring unreadable workspace record"),
        }
    }
    Ok(out)
}

/// Deletes a workspace: its records, newest first, so that a reader never sees
/// a stack with a hole (newest layers without older ones) but at worst an
/// older prefix of it; then its expiry. Layers and packs stay until garbage
/// collection. Returns how many records were deleted.
#[cfg(feature = "store")]
pub fn delete(store: &Store, ws: &WorkspaceName) -> Result<usize, StoreError> {
    let keys = stack(store, ws)?;
    for (key, _) in keys.iter().rev() {
        store.remote().delete(key)?;
        crate::crash::point("rm.record-deleted");
    }
    store.remote().delete(&keys::expiry(ws))?;
    Ok(keys.len())
}

/// Sets when a workspace may be deleted (replacing an earlier expiry).
#[cfg(feature = "store")]
pub fn set_expiry(store: &Store, ws: &WorkspaceName, at_ms: u64) -> Result<(), StoreError> {
    store.put_object(keys::expiry(ws), Bytes::from(encode_expiry(at_ms)))
}

/// An expiry as stored: `expires_at_ms <unix ms>`.
pub fn encode_expiry(at_ms: u64) -> String {
    format!("expires_at_ms {at_ms}\n")
}

/// When a stored expiry says (`None`: not one).
pub fn decode_expiry(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.trim().strip_prefix("expires_at_ms ")?.parse().ok()
}

/// Every workspace whose expiry is at or before `now_ms`, with its expiry.
#[cfg(feature = "store")]
pub fn expired(store: &Store, now_ms: u64) -> Result<Vec<(WorkspaceName, u64)>, StoreError> {
    let mut out = Vec::new();
    for listed in store.remote().list(keys::EXPIRY)? {
        let Some(ws) = keys::workspace_in(&listed.key) else {
            continue;
        };
        let Some(bytes) = store.remote().get(&listed.key, MAX_RECORD_LEN)? else {
            continue;
        };
        match decode_expiry(&bytes) {
            Some(at) if at <= now_ms => out.push((ws, at)),
            Some(_) => {}
            None => tracing::warn!(key = %listed.key, "ignoring an unreadable expiry"),
        }
    }
    Ok(out)
}

/// Every workspace (optionally of one namespace) with its number of layers.
#[cfg(feature = "store")]
pub fn list(store: &Store, namespace: Option<&str>) -> Result<Vec<(WorkspaceName, usize)>, StoreError> {
    let prefix = match namespace {
        Some(ns) => keys::namespace(ns),
        None => keys::WORKSPACES.to_string(),
    };
    let mut out: Vec<(WorkspaceName, usize)> = Vec::new();
    for listed in store.remote().list(&prefix)? {
        let Some(ws) = keys::workspace_in(&listed.key) else {
            continue;
        };
        match out.last_mut() {
            Some((last, n)) if *last == ws => *n += 1,
            _ => out.push((ws, 1)),
        }
    }
    Ok(out)
}

/// A short name for one exact stack of layers: attaches of the same version share a mount.
pub fn version(layers: &[LayerId]) -> String {
    let mut hasher = blake3::Hasher::new();
    for layer in layers {
        hasher.update(&layer.0);
    }
    hasher.finalize().to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(
            "run-42/build".parse::<WorkspaceName>().unwrap().to_string(),
            "run-42/build"
        );
        for bad in [
            "noslash", "a/b/c", "../x", "", "a b/c", "a/", "/a", ".a/b", "a/-b",
        ] {
            let err = bad.parse::<WorkspaceName>().unwrap_err().to_string();
            assert!(err.contains("NAMESPACE/NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn records_round_trip() {
        let r = LayerRecord {
            layer: LayerId::of(b"x"),
            persisted_at_ms: 12,
            host: "builder-1".into(),
            files: 3,
            bytes: 4,
        };
        assert_eq!(LayerRecord::decode(&r.encode()), Some(r));
        assert_eq!(LayerRecord::decode("garbage"), None);
    }

    #[test]
    fn version_depends_on_order() {
        let (a, b) = (LayerId::of(b"a"), LayerId::of(b"b"));
        assert_ne!(version(&[a, b]), version(&[b, a]));
    }

    /// Found by fuzzing (`fuzz/`, target workspace_record): a host ending in
    /// `\r` lost it when read back (lines were split at `\r\n` too).
    #[test]
    fn a_record_reads_back_as_written_when_its_host_ends_in_a_carriage_return() {
        let stored =
            "wsfs-layer-record 1\nlayer 8f2d6d0f1719ad9625ba402545b35602a8386ae241b652aa2d140585f9a76647\n\
                      persisted_at_ms 1\nhost \r\r\r\nfiles 06\nbytes 6";
        let record = LayerRecord::decode(stored).unwrap();
        assert_eq!(record.host, "\r\r\r");
        assert_eq!(LayerRecord::decode(&record.encode()), Some(record));
    }
}
