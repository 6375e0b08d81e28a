//! The gc check of a persist: a new layer references no object that garbage
//! collection condemned or deleted (see [`crate::gc`] for the protocol), nor
//! a pack `wsfs check` marked corrupt ([`crate::check::corrupt`]), and the
//! retries of a persist whose layer failed it.

use std::collections::HashSet;

use bytes::Bytes;

use crate::check::corrupt;
use crate::error::StoreError;
use crate::gc::{self, Object};
use crate::ids::{LayerId, PackId};
use crate::keys;
use crate::manifest::{self, Manifest};
use crate::store::Store;

use super::{PersistError, PersistOutcome};

/// Attempts of a persist whose layer garbage collection keeps condemning.
const GC_ATTEMPTS: usize = 3;

/// What an attempt must not reference, after garbage collection got in the way.
#[derive(Default)]
pub(super) struct Avoid {
    /// Packs whose chunks are stored anew.
    pub packs: HashSet<PackId>,
    /// Salt of the new packs, so that they differ from condemned packs of the same chunks.
    pub salt: Option<[u8; 16]>,
}

/// How an attempt ended.
pub(super) enum Built {
    Landed(PersistOutcome),
    /// The gc check refused the layer: nothing visible, try again.
    Refused {
        verdict: Verdict,
        layer: LayerId,
        /// Every pack the layer referenced.
        packs: HashSet<PackId>,
        stored_bytes: u64,
    },
}

/// Runs `attempt` until its layer passes the gc check: each retry stores the
/// chunks of condemned, corrupt or missing packs anew (forgotten by the local index),
/// in salted packs.
pub(super) fn retrying(
    store: &Store,
    mut attempt: impl FnMut(&Avoid) -> Result<Built, PersistError>,
) -> Result<PersistOutcome, PersistError> {
    let mut avoid = Avoid::default();
    let mut stored_bytes = 0;
    for _ in 0..GC_ATTEMPTS {
        let (verdict, layer, packs) = match attempt(&avoid)? {
            Built::Landed(mut outcome) => {
                outcome.stored_bytes += stored_bytes;
                return Ok(outcome);
            }
            Built::Refused {
                verdict,
                layer,
                packs,
                stored_bytes: stored,
            } => {
                stored_bytes += stored;
                (verdict, layer, packs)
            }
        };
        tracing::warn!(%layer, ?verdict, "the layer references what garbage collection condemned or a check found corrupt: storing it anew");
        store.db().forget_packs(&verdict.gone)?;
        crate::crash::point("persist.gc-forgotten");
        avoid.packs.extend(verdict.gone);
        if verdict.layer_condemned {
            if packs.is_empty() {
                return Err(PersistError::LayerCondemned(layer));
            }
            avoid.packs.extend(packs);
        }
        avoid.salt = Some(rand::random());
    }
    Err(PersistError::Collected(GC_ATTEMPTS))
}

/// What a check found wrong with a layer about to land (or just landed).
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// Packs the layer references that are condemned, marked corrupt or missing.
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
        .map(keys::pack)
        .collect();
    let layer = keys::layer(&claims.layer);
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

/// What of the layer is condemned now, or in a pack marked corrupt.
fn condemned(store: &Store, claims: &Claims<'_>) -> Result<Verdict, StoreError> {
    let marked = gc::condemned(store)?;
    let corrupt = corrupt::marked(store)?;
    Ok(Verdict {
        gone: claims
            .packs
            .iter()
            .filter(|p| marked.contains(&Object::Pack(**p)) || corrupt.contains_key(p))
            .copied()
            .collect(),
        layer_condemned: marked.contains(&Object::Layer(claims.layer)),
        layer_missing: false,
    })
}

fn pack_of(key: &str) -> Option<PackId> {
    Object::parse(key)?.pack()
}
