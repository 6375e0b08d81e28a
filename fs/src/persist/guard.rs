//! The gc check of a persist: a new layer references no object that garbage
//! collection condemned or deleted (see [`crate::gc`] for the protocol).

use std::collections::HashSet;

use bytes::Bytes;

use crate::error::StoreError;
use crate::gc::{self, Object};
use crate::ids::{LayerId, PackId};
use crate::manifest::{self, Manifest};
use crate::pack::pack_key;
use crate::store::{layer_key, Store};

/// What a check found wrong with a layer about to land (or just landed).
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// Packs the layer references that are condemned or missing.
    pub gone: HashSet<PackId>,
    /// The layer object itself is condemned (a deleted layer's identical content).
    pub layer_condemned: bool,
    /// The layer object is missing after the record landed.
    pub layer_missing: bool,
}

impl Verdict {
    /// Nothing wrong: the record may stay.
    pub fn clean(&self) -> bool {
        self.gone.is_empty() && !self.layer_condemned && !self.layer_missing
    }
}

/// A layer's claims on the remote.
pub(super) struct Claims<'a> {
    pub layer: LayerId,
    pub manifest: &'a Manifest,
    /// Every pack the layer references.
    pub packs: &'a HashSet<PackId>,
    /// This persist uploaded the layer object just now (so no gc run can
    /// have deleted it: condemning waits for the grace period, deleting for another).
    pub layer_uploaded: bool,
}

/// Checks a layer: one listing of the markers, then whether every object it
/// references exists (a persist's own packs too: a slow persist may have
/// uploaded them more than two grace periods ago). Before the record is
/// written (`landed` false), a missing layer object that is not condemned,
/// deleted by a finished gc run, is uploaded again (the persist has its bytes);
/// after, it is a violation.
pub(super) fn check(store: &Store, claims: &Claims<'_>, landed: bool) -> Result<Verdict, StoreError> {
    let mut verdict = condemned(store, claims)?;
    let mut keys: Vec<String> = claims
        .packs
        .iter()
        .filter(|p| !verdict.gone.contains(p))
        .map(pack_key)
        .collect();
    let layer = layer_key(&claims.layer);
    if landed || !(claims.layer_uploaded || verdict.layer_condemned) {
        keys.push(layer.clone());
    }
    for key in store.remote().missing(&keys)? {
        if key != layer {
            verdict.gone.extend(pack_of(&key));
        } else if landed {
            verdict.layer_missing = true;
        } else {
            tracing::info!(layer = %claims.layer, "the layer object was collected: uploading it again");
            store.put_object(layer.clone(), Bytes::from(manifest::encode(claims.manifest)))?;
        }
    }
    Ok(verdict)
}

/// What of the layer is condemned now.
fn condemned(store: &Store, claims: &Claims<'_>) -> Result<Verdict, StoreError> {
    let marked = gc::condemned(store)?;
    Ok(Verdict {
        gone: claims
            .packs
            .iter()
            .filter(|p| marked.contains(&Object::Pack(**p)))
            .copied()
            .collect(),
        layer_condemned: marked.contains(&Object::Layer(claims.layer)),
        layer_missing: false,
    })
}

fn pack_of(key: &str) -> Option<PackId> {
    match Object::parse(key)? {
        Object::Pack(id) => Some(id),
        Object::Layer(_) => None,
    }
}
