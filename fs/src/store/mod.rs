//! The store: the remote object store, the local database and the caches,
//! behind one blocking API used by persist and by the FUSE read path.
//!
//! Read path of a chunk: memory cache of verified chunks → on-disk frame
//! cache → one ranged GET of the chunk's frame. Concurrent readers of one
//! frame wait for a single fetch. Every chunk is checked against its digest
//! whatever it came from; a mismatch is an error, never wrong bytes.

pub mod cache;
pub mod db;
pub mod lru;
pub mod remote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::error::{PackError, StoreError};
use crate::ids::{ChunkId, LayerId};
use crate::manifest::{self, ChunkRef, Manifest};
use crate::metrics::{add, Metrics};
use crate::pack::{check_chunk, chunk_in_frame, decode_frame, pack_key};
use cache::{FrameCache, FrameKey};
use db::Db;
use lru::Lru;
use remote::Remote;

/// Verified chunks kept in memory, so that the kernel's consecutive small
/// reads of one chunk cost one digest check.
const MEMORY_CACHE_BYTES: u64 = 64 << 20;

/// The outcome of one frame fetch, shared with the readers that waited for it.
type FrameOutcome = Result<Arc<[u8]>, Arc<StoreError>>;

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
    frames: FrameCache,
    chunks: Mutex<Lru<ChunkId, Arc<[u8]>>>,
    in_flight: Mutex<HashMap<FrameKey, Arc<Flight>>>,
    metrics: Metrics,
    /// Held while a persist appends its record and lists the stack.
    appending: Mutex<()>,
}

/// The remote key of a layer manifest.
pub fn layer_key(id: &LayerId) -> String {
    format!("layers/{id}")
}

impl Store {
    /// Opens the store described by `config`.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let remote = Remote::open(&config.remote_url, config.remote_timeout)?;
        let db = Db::open(&config.state_dir.join("db"))?;
        if db.bind_remote(remote.url())? {
            tracing::warn!(remote = %remote.url(), "the state dir served another remote: local index cleared");
        }
        let frames = FrameCache::open(&config.state_dir.join("cache"), config.cache_bytes)?;
        Ok(Store {
            remote,
            db,
            frames,
            chunks: Mutex::new(Lru::new()),
            in_flight: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
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

    /// The plain bytes of a chunk, verified against its id.
    pub fn read_chunk(&self, chunk: &ChunkRef) -> Result<Arc<[u8]>, StoreError> {
        self.cached_chunk(chunk)
            .map(Ok)
            .unwrap_or_else(|| self.fetch_chunk(chunk))
            .inspect_err(|e| {
                add(&self.metrics.read_errors, 1);
                tracing::error!(chunk = %chunk.id, pack = %chunk.loc.pack, error = %e, "cannot read chunk");
            })
    }

    /// The chunk from the memory cache or its cached frame, if there and intact.
    fn cached_chunk(&self, chunk: &ChunkRef) -> Option<Arc<[u8]>> {
        if let Some(bytes) = self.chunks.lock().unwrap().get(&chunk.id) {
            add(&self.metrics.cache_hits, 1);
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
        add(&self.metrics.cache_hits, 1);
        Some(self.remember(chunk.id, &bytes))
    }

    /// Fetches the chunk's frame, or waits for the reader already fetching
    /// it and takes its outcome: one GET per frame however many readers
    /// want it, and one wait (not one retry each) when the remote fails.
    fn fetch_chunk(&self, chunk: &ChunkRef) -> Result<Arc<[u8]>, StoreError> {
        add(&self.metrics.cache_misses, 1);
        let key = (chunk.loc.pack, chunk.loc.frame_offset);
        let (flight, leads) = {
            let mut in_flight = self.in_flight.lock().unwrap();
            match in_flight.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight::default());
                    in_flight.insert(key, flight.clone());
                    (flight, true)
                }
            }
        };
        let frame = if leads {
            let fetched = self.frame_for_flight(chunk, &key);
            self.in_flight.lock().unwrap().remove(&key);
            flight.land(fetched.clone());
            fetched
        } else {
            flight.wait()
        };
        let frame = frame.map_err(StoreError::Shared)?;
        let bytes = chunk_in_frame(&frame, &chunk.id, chunk.len, &chunk.loc)?;
        Ok(self.remember(chunk.id, bytes))
    }

    /// The frame a flight hands out: from the frame cache when a flight that
    /// ended just before this one began put it there, else from the remote.
    fn frame_for_flight(&self, chunk: &ChunkRef, key: &FrameKey) -> FrameOutcome {
        if let Some(frame) = self.frames.get(key) {
            if chunk_in_frame(&frame, &chunk.id, chunk.len, &chunk.loc).is_ok() {
                return Ok(Arc::from(frame));
            }
            self.frames.remove(key);
        }
        let fetched = self.fetch_frame(chunk).map(Arc::<[u8]>::from).map_err(Arc::new)?;
        self.frames.put(key, &fetched);
        Ok(fetched)
    }

    fn fetch_frame(&self, chunk: &ChunkRef) -> Result<Vec<u8>, StoreError> {
        let loc = &chunk.loc;
        let range = loc.frame_offset..loc.frame_offset + u64::from(loc.frame_len);
        add(&self.metrics.remote_get_requests, 1);
        let compressed = self.remote.get_range(&pack_key(&loc.pack), range)?;
        add(&self.metrics.remote_bytes_fetched, compressed.len() as u64);
        if compressed.len() != loc.frame_len as usize {
            return Err(PackError::Frame(loc.pack, loc.frame_offset, "short read".into()).into());
        }
        Ok(decode_frame(&compressed, loc)?)
    }

    fn remember(&self, id: ChunkId, bytes: &[u8]) -> Arc<[u8]> {
        let bytes: Arc<[u8]> = Arc::from(bytes);
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
                let key = layer_key(layer);
                add(&self.metrics.remote_get_requests, 1);
                let bytes = self.remote.get(&key)?.ok_or(StoreError::MissingLayer(*layer))?;
                add(&self.metrics.remote_bytes_fetched, bytes.len() as u64);
                if LayerId::of(&bytes) != *layer {
                    return Err(StoreError::LayerDigest(*layer));
                }
                self.db.put_manifest(layer, &bytes)?;
                bytes.to_vec()
            }
        };
        let fetched = started.elapsed();
        let decoded = manifest::decode(&bytes).map_err(|source| StoreError::Manifest {
            layer: *layer,
            source,
        });
        tracing::debug!(
            %layer,
            bytes = bytes.len(),
            fetch_us = fetched.as_micros() as u64,
            decode_us = (started.elapsed() - fetched).as_micros() as u64,
            "manifest"
        );
        decoded
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
        self.put_object(layer_key(&id), Bytes::from(bytes.clone()))?;
        self.db.put_manifest(&id, &bytes)?;
        Ok((id, bytes.len() as u64))
    }

    /// Uploads one object, counting it.
    pub fn put_object(&self, key: String, bytes: Bytes) -> Result<(), StoreError> {
        self.count_put(bytes.len());
        self.remote.put(&key, bytes)
    }

    /// Counts one PUT of `len` bytes.
    pub fn count_put(&self, len: usize) {
        add(&self.metrics.remote_put_requests, 1);
        add(&self.metrics.remote_bytes_stored, len as u64);
    }
}
