//! Garbage collection: deleting expired workspaces, then the layers and packs
//! no workspace record references, without breaking a persist that runs
//! meanwhile and reuses them.
//!
//! A persist may reference old packs (deduplicated chunks) and an old layer
//! (identical content) of a workspace deleted since, so an object's age does
//! not tell whether a persist is about to reference it. Deletion therefore
//! takes two runs: a run *condemns* an unreferenced object (a marker
//! `gc/condemned/<key>` holding when), and a run at least the grace period
//! later deletes it if it is still unreferenced (else the marker goes). A
//! persist lists the markers before writing its record and does not
//! reference a condemned or missing object (`persist`'s gc check); when its
//! record lands more than [`PERSIST_BOUND`] after that check began, it checks
//! again after landing. So a record either lands before the run that deletes
//! an object lists the workspaces (and keeps the object), or its persist saw
//! the marker. `docs/format.md` ("Garbage collection") has the argument.
//!
//! A referenced pack that is mostly garbage is rewritten ([`repack`]): its
//! referenced frames are copied into a new pack and a relocation record says
//! where they went, after which the old pack is unreferenced ([`live`]).
//!
//! Access traces no mount wrote for a while go too ([`traces`]).

pub mod live;
pub mod repack;
pub mod traces;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use thiserror::Error;

use crate::check::corrupt;
use crate::crash;
use crate::error::{PackError, StoreError};
use crate::ids::{LayerId, PackId};
use crate::keys;
use crate::markers::condemned;
use crate::pack::{Relocation, MAX_RELOCATION_LEN};
use crate::store::remote::Listed;
use crate::store::Store;
use crate::unix_time::{millis, now_millis};
use crate::workers;
use crate::workspace::{self, WorkspaceName};
use live::Live;
use repack::Repacked;

/// The longest a persist's record may take to land after its gc check began
/// without the persist checking again once it landed.
pub const PERSIST_BOUND: Duration = Duration::from_secs(10);
/// The shortest grace period: [`PERSIST_BOUND`], plus 5 s for writing a marker
/// (a marker whose write takes longer than the grace minus the bound is taken back).
pub const MIN_GRACE: Duration = Duration::from_secs(15);
/// The grace period of `wsfs gc` unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// Where markers live: `gc/condemned/<object key>`.
/// Largest condemnation marker read (one line of text).
const MAX_MARKER_LEN: u64 = 64 << 10;

/// An object garbage collection may delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Object {
    /// `layers/<id>`.
    Layer(LayerId),
    /// `packs/<id>`.
    Pack(PackId),
    /// `relocations/<id>`: where the frames of repacked pack `id` went.
    Relocation(PackId),
}

impl Object {
    /// Its remote key.
    pub fn key(&self) -> String {
        match self {
            Object::Layer(id) => keys::layer(id),
            Object::Pack(id) => keys::pack(id),
            Object::Relocation(id) => keys::relocation(id),
        }
    }

    /// The pack, if the object is one.
    pub fn pack(&self) -> Option<PackId> {
        match self {
            Object::Pack(id) => Some(*id),
            _ => None,
        }
    }

    /// The rewritten pack, if the object is its relocation record.
    pub fn relocated_pack(&self) -> Option<PackId> {
        match self {
            Object::Relocation(id) => Some(*id),
            _ => None,
        }
    }

    fn marker_key(&self) -> String {
        keys::condemned(&self.key())
    }

    /// The object a key names (`layers/<id>`, `packs/<id>` or `relocations/<id>`).
    pub fn parse(key: &str) -> Option<Object> {
        let (kind, id) = key.split_once('/')?;
        match kind {
            keys::LAYERS => id.parse().ok().map(Object::Layer),
            keys::PACKS => id.parse().ok().map(Object::Pack),
            keys::RELOCATIONS => id.parse().ok().map(Object::Relocation),
            _ => None,
        }
    }
}

/// The objects condemned now (one listing of the markers).
pub fn condemned(store: &Store) -> Result<HashSet<Object>, StoreError> {
    Ok(store
        .remote()
        .list(keys::CONDEMNED)?
        .iter()
        .filter_map(|l| Object::parse(keys::condemned_object(&l.key)?))
        .collect())
}

/// Why garbage collection did not run or stopped.
#[derive(Debug, Error)]
pub enum GcError {
    /// A grace period too short to protect concurrent persists.
    #[error(
        "--grace {given:?} is below the minimum of {MIN_GRACE:?}: a persist may take up to \
         {PERSIST_BOUND:?} from its gc check to its record; use --grace {MIN_GRACE:?} or more"
    )]
    GraceTooShort {
        /// The grace period asked for.
        given: Duration,
    },
    /// The store failed; what was done so far stays done (and is safe).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to do.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// How long an object stays condemned before a run may delete it; also
    /// how old an unreferenced object must be before it is condemned.
    pub grace: Duration,
    /// How long an access trace stays after a mount last wrote it.
    pub trace_max_age: Duration,
    /// Only tell what would be done.
    pub dry_run: bool,
}

/// An object a run deleted, condemned or left condemned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its remote key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// From when a run may delete it (milliseconds since the epoch).
    pub deletable_after_ms: u64,
}

/// What a run did (or, dry, would do).
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Expired workspaces deleted, with their number of layers.
    pub expired: Vec<(WorkspaceName, usize)>,
    /// Objects deleted: condemned at least the grace period ago and still unreferenced.
    pub deleted: Vec<Found>,
    /// Objects condemned by this run.
    pub condemned: Vec<Found>,
    /// Objects condemned by earlier runs, not yet deletable.
    pub pending: Vec<Found>,
    /// Markers taken back: their object is referenced again.
    pub uncondemned: usize,
    /// Packs rewritten (dry: that would be) because mostly garbage.
    pub repacked: Vec<Repacked>,
    /// Access traces deleted (dry: that would be): not written for `trace_max_age`.
    pub traces_deleted: Vec<Found>,
    /// Layers and packs the workspaces reference.
    pub live_layers: usize,
    /// See `live_layers`.
    pub live_packs: usize,
}

/// Runs garbage collection once (see the module documentation), counting
/// it in the store's metrics.
pub fn run(store: &Store, opts: &GcOptions) -> Result<GcReport, GcError> {
    let started = Instant::now();
    let report = collect(store, opts);
    store.metrics().gc.record(started, opts.dry_run, &report);
    report
}

fn collect(store: &Store, opts: &GcOptions) -> Result<GcReport, GcError> {
    if opts.grace < MIN_GRACE {
        return Err(GcError::GraceTooShort { given: opts.grace });
    }
    let mut report = GcReport::default();
    for (ws, _) in workspace::expired(store, now_millis())? {
        let layers = match opts.dry_run {
            true => workspace::layers(store, &ws)?.len(),
            false => workspace::delete(store, &ws)?,
        };
        report.expired.push((ws, layers));
    }
    // A dry run did not delete the expired workspaces: it ignores their records.
    let ignored: HashSet<&WorkspaceName> = report.expired.iter().map(|(ws, _)| ws).collect();
    // Listed first: a frame is relocated only into a pack that is stored.
    let mut stored: Vec<(Object, Listed)> = Vec::new();
    for prefix in [keys::LAYERS, keys::PACKS, keys::RELOCATIONS] {
        let listed = store.remote().list(prefix)?;
        stored.extend(
            listed
                .into_iter()
                .filter_map(|l| Some((Object::parse(&l.key)?, l))),
        );
    }
    let t_list = SystemTime::now();
    let relocations = relocations(store, &stored)?;
    let stored_packs: HashSet<PackId> = stored.iter().filter_map(|(o, _)| o.pack()).collect();
    let live = Live::find(store, &ignored, &relocations, &stored_packs)?;
    let mut pass = Pass {
        store,
        opts,
        t_list,
        live,
        sizes: stored.iter().map(|(o, l)| (*o, l.size)).collect(),
        report: Mutex::new(report),
    };
    let marked = pass.sweep()?;
    let young = |listed: &Listed| listed.last_modified + opts.grace > t_list;
    let corrupt = pass.sweep_corrupt(&stored_packs, young)?;
    // A corrupt pack is not rewritten: its frames would carry the damage into a new pack.
    let not_rewritten: HashSet<Object> = marked.iter().copied().chain(corrupt).collect();
    let repacked = pass.repack(&stored, &not_rewritten, young, &relocations)?;
    let unreferenced: Vec<Object> = stored
        .iter()
        .filter(|(object, listed)| {
            !(pass.live.objects.contains(object) || marked.contains(object) || young(listed))
        })
        .map(|(object, _)| *object)
        .collect();
    pass.condemn(&unreferenced)?;
    let mut report = pass.report.into_inner().unwrap();
    (report.live_layers, report.live_packs) = pass.live.counts();
    report.repacked = repacked;
    report.traces_deleted = traces::prune(store, opts.trace_max_age, t_list, opts.dry_run)?;
    for found in [&mut report.deleted, &mut report.condemned, &mut report.pending] {
        found.sort_by(|a, b| a.key.cmp(&b.key));
    }
    Ok(report)
}

/// Every relocation record `stored` lists, by old pack, read anew (not
/// from the readers' cache: a record two gc runs wrote at once may have
/// been replaced).
fn relocations(
    store: &Store,
    stored: &[(Object, Listed)],
) -> Result<HashMap<PackId, Relocation>, StoreError> {
    let packs: Vec<PackId> = stored.iter().filter_map(|(o, _)| o.relocated_pack()).collect();
    read_relocations(store, &packs)?
        .into_iter()
        .map(|(pack, relocation)| Ok((pack, relocation?)))
        .collect()
}

/// A relocation record read: its old pack, and the record or why it does not decode.
pub type ReadRelocation = (PackId, Result<Relocation, PackError>);

/// The relocation records of `packs`, read from the remote; a record gone
/// meanwhile is left out.
pub fn read_relocations(store: &Store, packs: &[PackId]) -> Result<Vec<ReadRelocation>, StoreError> {
    let read = Mutex::new(Vec::new());
    workers::for_each(packs, CONCURRENCY, |pack| {
        if let Some(bytes) = store.remote().get(&keys::relocation(pack), MAX_RELOCATION_LEN)? {
            let relocation = Relocation::decode(*pack, &bytes);
            read.lock().unwrap().push((*pack, relocation));
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(read.into_inner().unwrap())
}

/// Objects a run works on at once (each one's steps stay in order).
const CONCURRENCY: usize = 16;

/// One run after it listed what is live and what is stored.
struct Pass<'a> {
    store: &'a Store,
    opts: &'a GcOptions,
    t_list: SystemTime,
    live: Live,
    /// Every stored layer and pack, with its size.
    sizes: HashMap<Object, u64>,
    report: Mutex<GcReport>,
}

impl Pass<'_> {
    fn found(&self, object: &Object, deletable_after_ms: u64) -> Found {
        Found {
            key: object.key(),
            bytes: self.sizes.get(object).copied().unwrap_or(0),
            deletable_after_ms,
        }
    }

    /// Deletes what was condemned at least the grace period before the
    /// listing and is still unreferenced, and the markers of what is
    /// referenced again; returns every object that had a marker. Every
    /// marker is judged first, so that this host's local index forgets the
    /// packs about to go before they go: it never names a pack the remote lacks.
    fn sweep(&self) -> Result<HashSet<Object>, StoreError> {
        let markers: Vec<(String, Object)> = self
            .store
            .remote()
            .list(keys::CONDEMNED)?
            .into_iter()
            .filter_map(|m| {
                let object = Object::parse(keys::condemned_object(&m.key)?)?;
                Some((m.key, object))
            })
            .collect();
        let judged = Mutex::new(Vec::new());
        workers::for_each(&markers, CONCURRENCY, |(key, object)| {
            if let Some(delete) = self.judge(key, object)? {
                judged.lock().unwrap().push((key.clone(), *object, delete));
            }
            Ok::<_, StoreError>(())
        })?;
        if !self.opts.dry_run {
            let judged = judged.into_inner().unwrap();
            let doomed: HashSet<PackId> = judged
                .iter()
                .filter(|(_, _, delete)| *delete)
                .filter_map(|(_, object, _)| object.pack())
                .collect();
            self.store.db().forget_packs(&doomed)?;
            crash::point("gc.packs-forgotten");
            workers::for_each(&judged, CONCURRENCY, |(key, object, delete)| {
                if *delete {
                    self.store.remote().delete(&object.key())?;
                    crash::point("gc.object-deleted");
                }
                self.store.remote().delete(key)
            })?;
        }
        Ok(markers.into_iter().map(|(_, object)| object).collect())
    }

    /// Judges one marker and reports it: `None` while it is not due (it
    /// stays), else whether its object is deleted with it.
    fn judge(&self, key: &str, object: &Object) -> Result<Option<bool>, StoreError> {
        let grace_ms = self.opts.grace.as_millis() as u64;
        let due = self
            .store
            .remote()
            .get(key, MAX_MARKER_LEN)?
            .as_deref()
            .and_then(condemned::decode)
            .map(|at| at.saturating_add(grace_ms));
        let live = self.live.objects.contains(object);
        let mut report = self.report.lock().unwrap();
        Ok(match due {
            Some(due) if due > millis(self.t_list) => {
                report.pending.push(self.found(object, due));
                None
            }
            Some(due) if !live && self.sizes.contains_key(object) => {
                report.deleted.push(self.found(object, due));
                Some(true)
            }
            // Already deleted: only the marker is left.
            Some(_) if !live => Some(false),
            // Referenced again, or an unreadable marker: no longer condemned.
            _ => {
                report.uncondemned += 1;
                Some(false)
            }
        })
    }

    /// Removes the markers of corrupt packs that are gone (not `stored`),
    /// unless the marker is `young` (its pack may have been stored after
    /// the listing); returns the packs whose marker stays, as objects.
    fn sweep_corrupt(
        &self,
        stored: &HashSet<PackId>,
        young: impl Fn(&Listed) -> bool,
    ) -> Result<Vec<Object>, StoreError> {
        let mut kept = Vec::new();
        for (pack, marker) in corrupt::marked(self.store)? {
            if stored.contains(&pack) || young(&marker) {
                kept.push(Object::Pack(pack));
            } else if !self.opts.dry_run {
                tracing::info!(%pack, "the corrupt pack is gone: its marker goes too");
                corrupt::unmark(self.store, &pack)?;
            }
        }
        Ok(kept)
    }

    /// Rewrites the packs that are mostly garbage (a dry run only reports
    /// them); their referenced frames are then live in the new packs.
    fn repack(
        &mut self,
        stored: &[(Object, Listed)],
        marked: &HashSet<Object>,
        young: impl Fn(&Listed) -> bool,
        relocations: &HashMap<PackId, Relocation>,
    ) -> Result<Vec<Repacked>, StoreError> {
        let mut packs = repack::candidates(&self.live, stored, marked, young, relocations);
        packs.sort_by_key(|r| r.pack);
        if !self.opts.dry_run && !packs.is_empty() {
            for (old, relocation) in repack::repack(self.store, &self.live, &mut packs, self.opts.grace)? {
                self.live.relocated(old, &relocation);
            }
        }
        Ok(packs)
    }

    /// Condemns unreferenced objects (a dry run only reports them).
    fn condemn(&self, objects: &[Object]) -> Result<(), StoreError> {
        workers::for_each(objects, CONCURRENCY, |object| {
            let at = now_millis();
            if self.opts.dry_run || write_marker(self.store, object, at, self.opts.grace)? {
                let due = at + self.opts.grace.as_millis() as u64;
                self.report
                    .lock()
                    .unwrap()
                    .condemned
                    .push(self.found(object, due));
            }
            Ok(())
        })
    }
}

/// Writes an object's marker; takes it back (and returns false) when the
/// write took so long that a persist's check may have missed it while its
/// record lands after the deleting run lists the workspaces.
fn write_marker(store: &Store, object: &Object, at_ms: u64, grace: Duration) -> Result<bool, StoreError> {
    let started = Instant::now();
    let key = object.marker_key();
    store.put_object(key.clone(), Bytes::from(condemned::encode(at_ms)))?;
    crash::point("gc.marker-put");
    if started.elapsed() + PERSIST_BOUND <= grace {
        return Ok(true);
    }
    tracing::warn!(%key, "writing the marker took too long: taken back, the next gc run condemns the object again");
    store.remote().delete(&key)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_keys_round_trip() {
        let pack = Object::Pack(PackId::of(b"p"));
        let layer = Object::Layer(LayerId::of(b"l"));
        let relocation = Object::Relocation(PackId::of(b"p"));
        for object in [pack, layer, relocation] {
            assert_eq!(Object::parse(&object.key()), Some(object));
            assert!(object.marker_key().starts_with("gc/condemned/"));
        }
        assert_eq!(Object::parse("traces/x"), None);
        assert_eq!(Object::parse("packs/nothex"), None);
    }

    /// Makes every object of the remote at `dir` an hour old (older than the grace period).
    fn age(dir: &std::path::Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                age(&path);
            } else {
                let file = std::fs::File::options().write(true).open(&path).unwrap();
                file.set_modified(SystemTime::now() - Duration::from_secs(3600))
                    .unwrap();
            }
        }
    }

    /// A mostly garbage pack marked corrupt stays while referenced and is
    /// not rewritten; once it is gone, its marker goes, unless young.
    #[test]
    fn a_corrupt_pack_is_kept_not_rewritten_and_its_marker_goes_with_it() {
        use crate::store::testing::{persist_all, remote_dir, store_in, write_file};
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let (whole, kept) = (dir.path().join("whole"), dir.path().join("kept"));
        write_file(&whole.join("big"), 1, 6 << 20);
        for tree in [&whole, &kept] {
            write_file(&tree.join("small"), 2, 300_000);
        }
        persist_all(&store, &whole, "t/whole");
        let kept = persist_all(&store, &kept, "t/kept");
        workspace::delete(&store, &"t/whole".parse().unwrap()).unwrap();
        let pack = *store
            .manifest(&kept.layer)
            .unwrap()
            .packs()
            .iter()
            .next()
            .unwrap();
        let remote = remote_dir(dir.path());
        age(&remote);
        let dry = GcOptions {
            grace: MIN_GRACE,
            trace_max_age: traces::DEFAULT_TRACE_MAX_AGE,
            dry_run: true,
        };
        let repacked = |report: &GcReport| report.repacked.iter().map(|r| r.pack).collect::<Vec<_>>();
        assert_eq!(repacked(&run(&store, &dry).unwrap()), [pack], "mostly garbage");

        corrupt::mark(&store, &pack, "test", "a flipped byte").unwrap();
        age(&remote);
        let report = run(&store, &dry).unwrap();
        assert!(repacked(&report).is_empty(), "{report:?}");
        let condemned: Vec<&str> = report.condemned.iter().map(|f| f.key.as_str()).collect();
        assert!(
            !condemned.contains(&keys::pack(&pack).as_str()),
            "still referenced: {condemned:?}"
        );

        std::fs::remove_file(remote.join(keys::pack(&pack))).unwrap();
        let young = PackId::of(b"marked just now, stored after the listing");
        corrupt::mark(&store, &young, "test", "a flipped byte").unwrap();
        let wet = GcOptions {
            dry_run: false,
            ..dry
        };
        run(&store, &wet).unwrap();
        let left: Vec<PackId> = corrupt::marked(&store).unwrap().into_keys().collect();
        assert_eq!(left, [young]);
    }
}
