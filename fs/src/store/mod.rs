//! The store: the remote object store, the local database and the caches,
//! behind one blocking API used by persist and by the FUSE read path.
//!
//! Read path of a chunk: memory cache of verified chunks → on-disk frame
//! cache → one ranged GET of the chunk's frame (and its neighbours, see
//! [`readahead`]; from where a relocation record says when garbage
//! collection rewrote the pack). Concurrent readers of one frame wait for a
//! single fetch. Every chunk is checked against its digest
//! whatever it came from; a mismatch is an error, never wrong bytes.

pub mod cache;
pub mod db;
pub mod lru;
pub mod readahead;
pub mod remote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::error::{PackError, StoreError};
use crate::ids::{ChunkId, LayerId, PackId};
use crate::keys;
use crate::manifest::{self, ChunkLocation, ChunkRef, Manifest};
use crate::metrics::Metrics;
use crate::pack::{
    check_chunk, chunk_in_frame, decode_frame, Frame, FrameIndex, Relocation, MAX_RELOCATION_LEN,
};
use cache::{FrameCache, FrameKey};
use db::Db;
use lru::Lru;
use readahead::{span_around, Windows};
use remote::Remote;

/// Verified chunks kept in memory, so that the kernel's consecutive small
/// reads of one chunk cost one digest check.
const MEMORY_CACHE_BYTES: u64 = 64 << 20;

/// Ranged GETs of frames in flight at once, at most: readers, read-ahead and
/// prefetch of every mount share them.
pub(crate) const MAX_REMOTE_GETS: usize = 16;

/// The outcome of one frame fetch, shared with the readers that waited for it.
type FrameOutcome = Result<Arc<[u8]>, Arc<StoreError>>;

/// Frames being fetched, each with the readers waiting for it.
type InFlight = Arc<Mutex<HashMap<FrameKey, Arc<Flight>>>>;

/// One fetch of a frame in progress.
#[derive(Default)]
struct Flight {
    outcome: Mutex<Option<FrameOutcome>>,
    landed: Condvar,
}

impl Flight {
    fn land(&self, outcome: FrameOutcome) {
        *self.outcome.lock().unwrap() = Some(outcome);
        self.landed.notify_all();
    }

    fn wait(&self) -> FrameOutcome {
        let mut outcome = self.outcome.lock().unwrap();
        loop {
            match &*outcome {
                Some(done) => return done.clone(),
                None => outcome = self.landed.wait(outcome).unwrap(),
            }
        }
    }
}

/// What a reader that missed a frame does.
enum Claim {
    /// Another reader's fetch brings it: wait for that.
    Wait(Arc<Flight>),
    /// Fetch these frames (in pack order; the missed one among them).
    Lead(Vec<(Frame, Arc<Flight>)>),
    /// It was cached meanwhile: read it from there.
    Cached,
}

/// Marks `span`'s frames as being fetched, in the order given.
fn claim(
    in_flight: &mut HashMap<FrameKey, Arc<Flight>>,
    pack: PackId,
    span: Vec<Frame>,
) -> Vec<(Frame, Arc<Flight>)> {
    span.into_iter()
        .map(|f| {
            let flight = Arc::new(Flight::default());
            in_flight.insert((pack, f.offset), flight.clone());
            (f, flight)
        })
        .collect()
}

/// A frame's compressed bytes, or why they could not be had.
type Fetched = Result<Bytes, Arc<StoreError>>;

/// Relocation records a read follows at most, from the pack a manifest
/// names to the pack holding the frame now (each repack of a repacked pack
/// adds one).
pub const MAX_RELOCATIONS: usize = 8;

/// Whether a fetch failed because an object does not exist.
fn is_not_found(fetched: &Fetched) -> bool {
    matches!(fetched, Err(e) if matches!(**e, StoreError::Remote { not_found: true, .. }))
}

/// A claimed frame, its flight, and its fetched bytes.
type Fetching = ((Frame, Arc<Flight>), Fetched);

/// Hands fetched frames of one pack to the cache and their readers.
struct Landing {
    frames: Arc<FrameCache>,
    in_flight: InFlight,
    pack: PackId,
}

impl Landing {
    /// Lands every frame; returns the first failure.
    fn land_all(&self, fetched: Vec<Fetching>) -> Result<(), Arc<StoreError>> {
        let outcomes: Vec<FrameOutcome> = fetched
            .into_iter()
            .map(|(f, bytes)| self.land(f, bytes))
            .collect();
        outcomes.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// Decodes and caches one fetched frame, and wakes its readers.
    fn land(&self, (frame, flight): (Frame, Arc<Flight>), fetched: Fetched) -> FrameOutcome {
        let key = (self.pack, frame.offset);
        let outcome = fetched.and_then(|bytes| {
            let loc = ChunkLocation {
                pack: self.pack,
                frame_offset: frame.offset,
                frame_len: frame.len,
                frame_plain_len: frame.plain_len,
                offset_in_frame: 0,
            };
            decode_frame(&bytes, &loc)
                .map(Arc::<[u8]>::from)
                .map_err(|e| Arc::new(e.into()))
        });
        if let Ok(plain) = &outcome {
            self.frames.put(&key, plain);
        }
        self.in_flight.lock().unwrap().remove(&key);
        flight.land(outcome.clone());
        outcome
    }
}

/// A counting gate: at most [`MAX_REMOTE_GETS`] holders at once.
#[derive(Default)]
struct Gate {
    inside: Mutex<usize>,
    left: Condvar,
}

impl Gate {
    fn enter(&self) -> GatePass<'_> {
        let mut inside = self.inside.lock().unwrap();
        while *inside >= MAX_REMOTE_GETS {
            inside = self.left.wait(inside).unwrap();
        }
        *inside += 1;
        GatePass(self)
    }
}

/// Leaves the gate when dropped.
struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        *self.0.inside.lock().unwrap() -= 1;
        self.0.left.notify_one();
    }
}

/// Where and how a store lives.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The state dir: `db/` and `cache/` live here.
    pub state_dir: PathBuf,
    /// The remote's `object_store` URL.
    pub remote_url: String,
    /// Byte budget of the on-disk frame cache.
    pub cache_bytes: u64,
    /// How long one remote request keeps retrying before it fails.
    pub remote_timeout: Duration,
}

/// The store of one state dir.
pub struct Store {
    remote: Remote,
    db: Db,
    frames: Arc<FrameCache>,
    chunks: Mutex<Lru<ChunkId, Arc<[u8]>>>,
    in_flight: InFlight,
    windows: Windows,
    gets: Gate,
    /// Relocation records read so far (read again when one leads to a gone pack).
    relocations: Mutex<HashMap<PackId, Arc<Relocation>>>,
    metrics: Metrics,
    /// Held while a persist appends its record and lists the stack.
    appending: Mutex<()>,
}

/// Decodes the manifest object of `layer`.
fn decode_manifest(layer: &LayerId, bytes: &[u8]) -> Result<Manifest, StoreError> {
    manifest::decode(bytes).map_err(|source| StoreError::Manifest {
        layer: *layer,
        source,
    })
}

impl Store {
    /// Opens the store described by `config`.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let metrics = Metrics::default();
        let remote = Remote::open(&config.remote_url, config.remote_timeout, metrics.remote.clone())?;
        let db = Db::open(&config.state_dir.join("db"))?;
        if db.bind_remote(remote.url())? {
            tracing::warn!(remote = %remote.url(), "the state dir served another remote: local index cleared");
        }
        let frames = Arc::new(FrameCache::open(
            &config.state_dir.join("cache"),
            config.cache_bytes,
        )?);
        Ok(Store {
            remote,
            db,
            frames,
            chunks: Mutex::new(Lru::new()),
            in_flight: InFlight::default(),
            windows: Windows::default(),
            gets: Gate::default(),
            relocations: Mutex::default(),
            metrics,
            appending: Mutex::new(()),
        })
    }

    /// Serialises the persists of this host between taking a record key and
    /// listing the workspace after the record landed: of two persists from
    /// this host, the one whose record sorts later always sees the other's
    /// record (and so can tell what it overrides). Across hosts, records
    /// written within the same few milliseconds may miss each other.
    pub fn append_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.appending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remote.
    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    /// The local database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The on-disk frame cache.
    pub fn frame_cache(&self) -> &FrameCache {
        &self.frames
    }

    /// The plain bytes of a chunk, verified against its id. On a miss, the
    /// GET may bring neighbouring frames of `index` too (see [`readahead`]).
    pub fn read_chunk(&self, chunk: &ChunkRef, index: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.read_chunk_keeping(chunk, index, true)
    }

    /// As [`Store::read_chunk`], without keeping the chunk in memory too
    /// (bulk readers that would evict the readers' chunks from it).
    pub fn read_chunk_passing(&self, chunk: &ChunkRef, index: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.read_chunk_keeping(chunk, index, false)
    }

    /// The chunk, kept in the memory cache if `keep`.
    fn read_chunk_keeping(
        &self,
        chunk: &ChunkRef,
        index: &FrameIndex,
        keep: bool,
    ) -> Result<Arc<[u8]>, StoreError> {
        self.read_chunk_once(chunk, index, keep).inspect_err(|e| {
            self.metrics.read_errors.inc();
            tracing::error!(chunk = %chunk.id, pack = %chunk.loc.pack, error = %e, "cannot read chunk");
        })
    }

    fn read_chunk_once(
        &self,
        chunk: &ChunkRef,
        index: &FrameIndex,
        keep: bool,
    ) -> Result<Arc<[u8]>, StoreError> {
        let pack = chunk.loc.pack;
        let missed = Frame::of(&chunk.loc);
        loop {
            if let Some(bytes) = self.cached_chunk(chunk, keep) {
                return Ok(bytes);
            }
            let frame = match self.claim_around(pack, missed, index) {
                Claim::Cached => continue,
                Claim::Wait(flight) => flight.wait(),
                Claim::Lead(flights) => self.fetch_missed(pack, flights, missed),
            };
            self.metrics.cache_misses.inc();
            let frame = frame.map_err(StoreError::Shared)?;
            let bytes = chunk_in_frame(&frame, &chunk.id, chunk.len, &chunk.loc)?;
            return Ok(self.remember(chunk.id, bytes, keep));
        }
    }

    /// The chunk from the memory cache or its cached frame, if there and
    /// intact (from the frame: kept in memory if `keep`).
    fn cached_chunk(&self, chunk: &ChunkRef, keep: bool) -> Option<Arc<[u8]>> {
        if let Some(bytes) = self.chunks.lock().unwrap().get(&chunk.id) {
            self.metrics.cache_hits.inc();
            return Some(bytes.clone());
        }
        let key = (chunk.loc.pack, chunk.loc.frame_offset);
        let bytes = self
            .frames
            .get_range(&key, chunk.loc.offset_in_frame, chunk.len)?;
        if let Err(e) = check_chunk(&bytes, &chunk.id) {
            tracing::warn!(chunk = %chunk.id, error = %e, "dropping corrupt cached frame");
            self.frames.remove(&key);
            return None;
        }
        self.metrics.cache_hits.inc();
        Some(self.remember(chunk.id, &bytes, keep))
    }

    /// Joins the fetch of `missed` already under way, or starts one that also
    /// claims the free frames of the pack's read-ahead window around it: one
    /// GET per frame however many readers want it.
    fn claim_around(&self, pack: PackId, missed: Frame, index: &FrameIndex) -> Claim {
        let mut in_flight = self.in_flight.lock().unwrap();
        if let Some(flight) = in_flight.get(&(pack, missed.offset)) {
            return Claim::Wait(flight.clone());
        }
        if self.frames.contains(&(pack, missed.offset)) {
            return Claim::Cached; // a fetch landed since the cache was looked at
        }
        let window = self.windows.on_miss(pack, missed);
        // Read-ahead must not evict what it brought before it is read.
        let mut plain_room = self.frames.budget() / 4;
        let span = span_around(index.frames(&pack), missed, window, |f| {
            plain_room = plain_room.saturating_sub(f.plain_len.into());
            let key = (pack, f.offset);
            plain_room > 0 && !in_flight.contains_key(&key) && !self.frames.contains(&key)
        });
        Claim::Lead(claim(&mut in_flight, pack, span))
    }

    /// Brings consecutive frames of `pack` into the frame cache, those not
    /// cached or being fetched already, one GET per run of them (prefetch).
    pub fn fetch_frames(&self, pack: PackId, frames: &[Frame]) -> Result<(), StoreError> {
        let runs: Vec<Vec<(Frame, Arc<Flight>)>> = {
            let mut in_flight = self.in_flight.lock().unwrap();
            let mut runs = vec![Vec::new()];
            for f in frames {
                let key = (pack, f.offset);
                if in_flight.contains_key(&key) || self.frames.contains(&key) {
                    runs.push(Vec::new());
                } else {
                    runs.last_mut()
                        .unwrap()
                        .extend(claim(&mut in_flight, pack, vec![*f]));
                }
            }
            runs.into_iter().filter(|r| !r.is_empty()).collect()
        };
        for run in runs {
            let (landing, fetched) = self.fetch_span(pack, run);
            landing.land_all(fetched).map_err(StoreError::Shared)?;
        }
        Ok(())
    }

    /// Fetches claimed frames (in pack order) in one ranged GET: each
    /// frame's flight with its bytes, and what lands them.
    fn fetch_span(&self, pack: PackId, flights: Vec<(Frame, Arc<Flight>)>) -> (Landing, Vec<Fetching>) {
        let frames: Vec<Frame> = flights.iter().map(|(f, _)| *f).collect();
        let fetched = self.get_frames(pack, &frames, 0);
        let landing = Landing {
            frames: self.frames.clone(),
            in_flight: self.in_flight.clone(),
            pack,
        };
        (landing, flights.into_iter().zip(fetched).collect())
    }

    /// Fetches a span for the reader that missed one of its frames: lands
    /// that frame and returns its outcome, the others being decoded and
    /// cached in the background so that the reader goes on at once.
    fn fetch_missed(&self, pack: PackId, flights: Vec<(Frame, Arc<Flight>)>, missed: Frame) -> FrameOutcome {
        let (landing, mut fetched) = self.fetch_span(pack, flights);
        let Some(at) = fetched.iter().position(|((f, _), _)| f.offset == missed.offset) else {
            let _ = landing.land_all(fetched);
            return Err(Arc::new(StoreError::Internal(
                "a span without its missed frame".into(),
            )));
        };
        let (flight, bytes) = fetched.remove(at);
        let outcome = landing.land(flight, bytes);
        if !fetched.is_empty() {
            std::thread::spawn(move || landing.land_all(fetched));
        }
        outcome
    }

    /// The compressed bytes of `frames` of `pack` (in pack order): one
    /// ranged GET from the first's offset to the last's end, unless the pack
    /// is gone and a relocation record says where its frames went
    /// (`depth`: records followed so far). A pack already known to be gone
    /// (its record was read) is not asked again: its frames are fetched
    /// from where they went, without a "not found" per span first.
    fn get_frames(&self, pack: PackId, frames: &[Frame], depth: usize) -> Vec<Fetched> {
        if depth < MAX_RELOCATIONS {
            let known = self.relocations.lock().unwrap().get(&pack).cloned();
            if let Some(relocation) = known {
                let gone = Arc::new(StoreError::Remote {
                    remote: self.remote.url().to_string(),
                    op: "GET",
                    key: keys::pack(&pack),
                    message: "the pack was rewritten by gc".into(),
                    not_found: true,
                });
                return self.follow_relocation(pack, relocation, frames, depth, &gone);
            }
        }
        let start = frames[0].offset;
        let end = frames.last().expect("a span has frames").end();
        let fetched = {
            let _permit = self.gets.enter();
            self.remote.get_range(&keys::pack(&pack), start..end)
        };
        let fetched = fetched.and_then(|bytes| {
            if bytes.len() as u64 == end - start {
                self.metrics.remote_frames_fetched.inc_by(frames.len() as u64);
                Ok(bytes)
            } else {
                Err(PackError::Frame(pack, start, "short read".into()).into())
            }
        });
        match fetched {
            Ok(bytes) => frames
                .iter()
                .map(|f| {
                    let at = (f.offset - start) as usize..(f.end() - start) as usize;
                    match at.end <= bytes.len() {
                        true => Ok(bytes.slice(at)),
                        false => Err(Arc::new(
                            PackError::Frame(pack, f.offset, "outside the span".into()).into(),
                        )),
                    }
                })
                .collect(),
            Err(e @ StoreError::Remote { not_found: true, .. }) if depth < MAX_RELOCATIONS => {
                let gone = Arc::new(e);
                match self.read_relocation(&pack) {
                    Ok(Some(relocation)) => self.follow_relocation(pack, relocation, frames, depth, &gone),
                    Ok(None) => vec![Err(gone); frames.len()],
                    Err(e) => vec![Err(Arc::new(e)); frames.len()],
                }
            }
            Err(e) => vec![Err(Arc::new(e)); frames.len()],
        }
    }

    /// `frames` of `pack`, which is `gone`, from where `relocation` says
    /// they went; if a pack it names is gone too, two gc runs may have
    /// rewritten the pack at once (the other's record replaced this one,
    /// whose new pack then went): then through the record as it is now.
    fn follow_relocation(
        &self,
        pack: PackId,
        relocation: Arc<Relocation>,
        frames: &[Frame],
        depth: usize,
        gone: &Arc<StoreError>,
    ) -> Vec<Fetched> {
        let fetched = self.get_relocated(pack, &relocation, frames, depth, gone);
        if fetched.iter().any(is_not_found) {
            if let Ok(Some(fresh)) = self.read_relocation(&pack) {
                if fresh != relocation {
                    return self.get_relocated(pack, &fresh, frames, depth, gone);
                }
            }
        }
        fetched
    }

    /// `frames` of `pack`, which is gone, from where `relocation` says they
    /// went: one GET per pack they went to. A frame the record lacks fails
    /// with `gone` (the pack's "not found").
    fn get_relocated(
        &self,
        pack: PackId,
        relocation: &Relocation,
        frames: &[Frame],
        depth: usize,
        gone: &Arc<StoreError>,
    ) -> Vec<Fetched> {
        let mut fetched: Vec<Fetched> = vec![Err(gone.clone()); frames.len()];
        // Per new pack: its frames (in its order) and their places in `frames`.
        let mut moved: HashMap<PackId, Vec<(Frame, usize)>> = HashMap::new();
        for (i, f) in frames.iter().enumerate() {
            match relocation.get(f.offset) {
                Some(m) if m.len == f.len => {
                    let new = Frame {
                        offset: m.offset,
                        ..*f
                    };
                    moved.entry(m.pack).or_default().push((new, i));
                }
                Some(m) => {
                    let why = format!(
                        "frame at {} has length {}, the layer says {}",
                        f.offset, m.len, f.len
                    );
                    fetched[i] = Err(Arc::new(PackError::Relocation(pack, why).into()));
                }
                None => {}
            }
        }
        for (new_pack, mut placed) in moved {
            placed.sort_unstable();
            let new_frames: Vec<Frame> = placed.iter().map(|(f, _)| *f).collect();
            for ((_, i), bytes) in placed
                .iter()
                .zip(self.get_frames(new_pack, &new_frames, depth + 1))
            {
                fetched[*i] = bytes;
            }
        }
        fetched
    }

    /// Reads the relocation record of `pack` from the remote, and remembers it.
    fn read_relocation(&self, pack: &PackId) -> Result<Option<Arc<Relocation>>, StoreError> {
        let Some(bytes) = self.remote.get(&keys::relocation(pack), MAX_RELOCATION_LEN)? else {
            return Ok(None);
        };
        let relocation = Arc::new(Relocation::decode(*pack, &bytes)?);
        self.relocations.lock().unwrap().insert(*pack, relocation.clone());
        Ok(Some(relocation))
    }

    /// `bytes` shared, and kept in the memory cache if `keep`.
    fn remember(&self, id: ChunkId, bytes: &[u8], keep: bool) -> Arc<[u8]> {
        let bytes: Arc<[u8]> = Arc::from(bytes);
        if !keep {
            return bytes;
        }
        let mut chunks = self.chunks.lock().unwrap();
        chunks.insert(id, bytes.len() as u64, bytes.clone());
        while chunks.total() > MEMORY_CACHE_BYTES {
            chunks.pop_oldest();
        }
        bytes
    }

    /// A layer's manifest: from the local database, else fetched from the
    /// remote, checked against its id and cached.
    pub fn manifest(&self, layer: &LayerId) -> Result<Manifest, StoreError> {
        let started = std::time::Instant::now();
        let bytes = match self.db.manifest(layer)? {
            Some(bytes) => bytes,
            None => {
                let bytes = self.fetch_layer(layer)?;
                self.db.put_manifest(layer, &bytes)?;
                bytes.to_vec()
            }
        };
        let fetched = started.elapsed();
        let decoded = decode_manifest(layer, &bytes);
        tracing::debug!(
            %layer,
            bytes = bytes.len(),
            fetch_us = fetched.as_micros() as u64,
            decode_us = (started.elapsed() - fetched).as_micros() as u64,
            "manifest"
        );
        decoded
    }

    /// A layer's object fetched from the remote (never from the local
    /// database), checked against its id.
    fn fetch_layer(&self, layer: &LayerId) -> Result<Bytes, StoreError> {
        let bytes = self
            .remote
            .get(&keys::layer(layer), manifest::MAX_OBJECT_LEN)?
            .ok_or(StoreError::MissingLayer(*layer))?;
        if LayerId::of(&bytes) != *layer {
            return Err(StoreError::LayerDigest(*layer));
        }
        Ok(bytes)
    }

    /// A layer's manifest as the remote holds it now (the local database is
    /// neither read nor written): fetched, checked against its id, decoded.
    pub fn remote_manifest(&self, layer: &LayerId) -> Result<Manifest, StoreError> {
        decode_manifest(layer, &self.fetch_layer(layer)?)
    }

    /// Checks, encodes and uploads a manifest (unless this host already has it);
    /// returns its id and the bytes uploaded.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<(LayerId, u64), StoreError> {
        // Never publish a layer that readers would refuse.
        manifest::validate(manifest)
            .map_err(|e| StoreError::Internal(format!("refusing to store an invalid layer: {e}")))?;
        let bytes = manifest::encode(manifest);
        let id = LayerId::of(&bytes);
        if self.db.manifest(&id)?.is_some() {
            return Ok((id, 0));
        }
        self.put_object(keys::layer(&id), Bytes::from(bytes.clone()))?;
        crate::crash::point("persist.manifest-put");
        self.db.put_manifest(&id, &bytes)?;
        Ok((id, bytes.len() as u64))
    }

    /// Uploads one object.
    pub fn put_object(&self, key: String, bytes: Bytes) -> Result<(), StoreError> {
        self.remote.put(&key, bytes)
    }
}

/// Stores and sources on local disk for unit tests.
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use super::{Store, StoreConfig};
    use crate::persist::{persist, PersistOutcome, PersistRequest};

    /// A store with its state dir in `dir` and a `file://` remote at `dir/remote`.
    pub fn store_in(dir: &Path) -> Store {
        store_on(dir, &format!("file://{}", remote_dir(dir).display()))
    }

    /// A store with its state dir in `dir` and the remote at `url`.
    pub fn store_on(dir: &Path, url: &str) -> Store {
        Store::open(&StoreConfig {
            state_dir: dir.join("state"),
            remote_url: url.to_string(),
            cache_bytes: 64 << 20,
            remote_timeout: std::time::Duration::from_secs(5),
        })
        .unwrap()
    }

    /// The remote's directory of a store made by [`store_in`].
    pub fn remote_dir(dir: &Path) -> PathBuf {
        dir.join("remote")
    }

    /// Writes `len` bytes that do not compress (different per `seed`) at `path`.
    pub fn write_file(path: &Path, seed: u8, len: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed)
            .collect();
        std::fs::write(path, data).unwrap();
    }

    /// Persists everything under `root` to workspace `ws`.
    pub fn persist_all(store: &Store, root: &Path, ws: &str) -> PersistOutcome {
        let req = PersistRequest {
            root,
            paths: &[".".into()],
            workspace: &ws.parse().unwrap(),
            host: "test",
            cancelled: None,
            caller: None,
            prefetch_keys: &[],
            threads: 0,
        };
        persist(store, &req, &mut |_| {}).unwrap()
    }
}
