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
use std::sync::{Arc, Mutex};
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
    in_flight: Mutex<HashMap<FrameKey, Arc<Mutex<()>>>>,
    metrics: Metrics,
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
        })
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
        if let Some(bytes) = self.chunks.lock().unwrap().get(&chunk.id) {
            add(&self.metrics.cache_hits, 1);
            return Ok(bytes.clone());
        }
        let key = (chunk.loc.pack, chunk.loc.frame_offset);
        let gate = self.in_flight.lock().unwrap().entry(key).or_default().clone();
        let outcome = {
            let _only_fetcher = gate.lock().unwrap();
            self.read_chunk_once_per_frame(chunk, &key)
        };
        self.in_flight.lock().unwrap().remove(&key);
        outcome.inspect_err(|e| {
            add(&self.metrics.read_errors, 1);
            tracing::error!(chunk = %chunk.id, pack = %chunk.loc.pack, error = %e, "cannot read chunk");
        })
    }

    /// The slow path of [`Store::read_chunk`], run by one reader per frame at a time.
    fn read_chunk_once_per_frame(&self, chunk: &ChunkRef, key: &FrameKey) -> Result<Arc<[u8]>, StoreError> {
        if let Some(bytes) = self.chunks.lock().unwrap().get(&chunk.id) {
            add(&self.metrics.cache_hits, 1);
            return Ok(bytes.clone());
        }
        if let Some(bytes) = self.frames.get_range(key, chunk.loc.offset_in_frame, chunk.len) {
            match check_chunk(&bytes, &chunk.id) {
                Ok(()) => {
                    add(&self.metrics.cache_hits, 1);
                    return Ok(self.remember(chunk.id, &bytes));
                }
                Err(e) => {
                    tracing::warn!(chunk = %chunk.id, error = %e, "dropping corrupt cached frame");
                    self.frames.remove(key);
                }
            }
        }
        add(&self.metrics.cache_misses, 1);
        let frame = self.fetch_frame(chunk)?;
        let bytes = chunk_in_frame(&frame, &chunk.id, chunk.len, &chunk.loc)?;
        let bytes = self.remember(chunk.id, bytes);
        self.frames.put(key, &frame);
        Ok(bytes)
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
        manifest::decode(&bytes).map_err(|source| StoreError::Manifest {
            layer: *layer,
            source,
        })
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
