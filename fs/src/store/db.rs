//! The local RocksDB database of one state dir.
//!
//! Column families:
//! - `chunks`: chunk id → length and location, for deduplication on persist;
//! - `manifests`: layer id → encoded manifest (verified when first fetched);
//! - `files`: absolute source path → stat stamp and chunk list, so that
//!   re-persisting an unchanged file neither reads nor re-chunks it;
//! - `mounts`: the daemon's mount table (opaque records it encodes itself);
//! - `meta`: the remote the first three describe (see [`Db::bind_remote`]).
//!
//! Values are fixed-width little-endian records; a record that does not
//! decode is treated as absent, never trusted. `manifests` and `files` are
//! caches: [`Db::prune_manifests`] and [`Db::prune_files`] bound them.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, DB};

use crate::error::StoreError;
use crate::ids::{ChunkId, LayerId, PackId};
use crate::manifest::{ChunkLocation, ChunkRef, Xattr};

const CF_CHUNKS: &str = "chunks";
const CF_MANIFESTS: &str = "manifests";
const CF_FILES: &str = "files";
const CF_MOUNTS: &str = "mounts";
const CF_META: &str = "meta";
/// Key in `meta` of the remote the remote-derived column families describe.
const REMOTE_KEY: &[u8] = b"remote";
/// Key in `meta` of the format of the stat cache's values; older ones are dropped.
const FILES_FORMAT_KEY: &[u8] = b"files-format";
const FILES_FORMAT: &[u8] = b"2";
/// Length, pack, frame offset, frame length, frame plain length, offset in frame.
const LOCATION_LEN: usize = 4 + 32 + 8 + 4 * 3;
const REF_LEN: usize = 32 + LOCATION_LEN;
const STAMP_LEN: usize = 8 * 3 + 12 * 2;

/// A mount record: key and value, both opaque to the database.
pub type MountRecord = (Vec<u8>, Vec<u8>);

/// What identifies an unchanged source file: device, inode, size, mtime and ctime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime`, `st_mtime_nsec`.
    pub mtime: (i64, u32),
    /// `st_ctime`, `st_ctime_nsec`.
    pub ctime: (i64, u32),
}

/// The local database.
pub struct Db {
    db: DB,
    path: PathBuf,
}

impl Db {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Every table file stays open: a persist looks up its stat cache on
        // threads acting with a caller's credentials, which could not open one.
        opts.set_max_open_files(-1);
        let cfs = [CF_CHUNKS, CF_MANIFESTS, CF_FILES, CF_MOUNTS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| StoreError::Db {
            path: path.to_path_buf(),
            message: e.into_string(),
        })?;
        let db = Db {
            db,
            path: path.to_path_buf(),
        };
        if db.get(CF_META, FILES_FORMAT_KEY)?.as_deref() != Some(FILES_FORMAT) {
            let mut batch = db.clearing(&[CF_FILES])?;
            batch.put_cf(db.cf(CF_META), FILES_FORMAT_KEY, FILES_FORMAT);
            db.db.write(batch).map_err(|e| db.err(e))?;
        }
        Ok(db)
    }

    /// A batch deleting everything in the column families `names`.
    fn clearing(&self, names: &[&str]) -> Result<WriteBatch, StoreError> {
        let mut batch = WriteBatch::default();
        for name in names {
            self.delete_where(&mut batch, name, |_, _| true)?;
        }
        Ok(batch)
    }

    fn err(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.into_string(),
        }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf), key).map_err(|e| self.err(e))
    }

    /// Ties the chunk index, stat cache and manifest cache to `remote`. When
    /// the state dir was used with another remote, they describe objects this
    /// remote may not have (dedup would skip uploads), so they are emptied.
    /// Returns whether they were.
    pub fn bind_remote(&self, remote: &str) -> Result<bool, StoreError> {
        let bound = self.get(CF_META, REMOTE_KEY)?;
        if bound.as_deref() == Some(remote.as_bytes()) {
            return Ok(false);
        }
        let mut batch = self.clearing(&[CF_CHUNKS, CF_MANIFESTS, CF_FILES])?;
        batch.put_cf(self.cf(CF_META), REMOTE_KEY, remote.as_bytes());
        self.db.write(batch).map_err(|e| self.err(e))?;
        Ok(bound.is_some())
    }

    /// Where a known chunk lives.
    pub fn chunk(&self, id: &ChunkId) -> Result<Option<ChunkRef>, StoreError> {
        Ok(self
            .get(CF_CHUNKS, &id.0)?
            .and_then(|v| decode_location(&v).map(|(len, loc)| ChunkRef { id: *id, len, loc })))
    }

    /// [`Db::chunk`] of each of `ids`, in one batched lookup.
    pub fn chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<ChunkRef>>, StoreError> {
        self.db
            .batched_multi_get_cf(self.cf(CF_CHUNKS), ids.iter().map(|id| &id.0), false)
            .into_iter()
            .zip(ids)
            .map(|(v, id)| {
                let v = v.map_err(|e| self.err(e))?;
                Ok(v.and_then(|v| decode_location(&v).map(|(len, loc)| ChunkRef { id: *id, len, loc })))
            })
            .collect()
    }

    /// Records where chunks live (after their pack is safely in the remote).
    pub fn put_chunks<'a>(&self, refs: impl IntoIterator<Item = &'a ChunkRef>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for r in refs {
            batch.put_cf(self.cf(CF_CHUNKS), r.id.0, encode_location(r.len, &r.loc));
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Forgets every chunk (index and stat cache entries) stored in `packs`,
    /// e.g. packs garbage collection deleted or condemned: the next persist
    /// uploads those chunks again instead of referencing them. Scans both
    /// column families (it is rare). Returns how many entries were dropped.
    pub fn forget_packs(&self, packs: &HashSet<PackId>) -> Result<usize, StoreError> {
        if packs.is_empty() {
            return Ok(0);
        }
        let chunk_stale =
            |_: &[u8], v: &[u8]| decode_location(v).is_none_or(|(_, loc)| packs.contains(&loc.pack));
        let file_stale = |_: &[u8], v: &[u8]| {
            v.get(STAMP_LEN..)
                .and_then(decode_cached)
                .is_none_or(|f| f.chunks.iter().any(|r| packs.contains(&r.loc.pack)))
        };
        let mut batch = WriteBatch::default();
        self.delete_where(&mut batch, CF_CHUNKS, chunk_stale)?;
        self.delete_where(&mut batch, CF_FILES, file_stale)?;
        let dropped = batch.len();
        self.db.write(batch).map_err(|e| self.err(e))?;
        Ok(dropped)
    }

    /// Drops the stat cache entries of source files that `gone` says no
    /// longer exist (the cache would otherwise keep every path ever
    /// persisted); returns how many.
    pub fn prune_files(&self, gone: impl Fn(&Path) -> bool) -> Result<usize, StoreError> {
        let mut batch = WriteBatch::default();
        self.delete_where(&mut batch, CF_FILES, |key, _| {
            gone(Path::new(std::ffi::OsStr::from_bytes(key)))
        })?;
        let dropped = batch.len();
        self.db.write(batch).map_err(|e| self.err(e))?;
        Ok(dropped)
    }

    /// Drops cached manifests, other than those of `keep`, while all of them
    /// take more than `budget` bytes (in key order, i.e. at random: a dropped
    /// manifest is fetched again when needed); returns how many.
    pub fn prune_manifests(&self, budget: u64, keep: &HashSet<LayerId>) -> Result<usize, StoreError> {
        let cf = self.cf(CF_MANIFESTS);
        let (mut total, mut droppable) = (0u64, Vec::new());
        for kv in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = kv.map_err(|e| self.err(e))?;
            total += value.len() as u64;
            let kept = <[u8; 32]>::try_from(&key[..]).is_ok_and(|id| keep.contains(&LayerId(id)));
            if !kept {
                droppable.push((key, value.len() as u64));
            }
        }
        let mut batch = WriteBatch::default();
        for (key, len) in droppable {
            if total <= budget {
                break;
            }
            batch.delete_cf(cf, key);
            total -= len;
        }
        let dropped = batch.len();
        self.db.write(batch).map_err(|e| self.err(e))?;
        Ok(dropped)
    }

    /// Adds to `batch` the deletion of every entry of `name` that is `stale`
    /// (by key and value).
    fn delete_where(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        stale: impl Fn(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let cf = self.cf(name);
        for kv in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = kv.map_err(|e| self.err(e))?;
            if stale(&key, &value) {
                batch.delete_cf(cf, key);
            }
        }
        Ok(())
    }

    /// A cached manifest.
    pub fn manifest(&self, layer: &LayerId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_MANIFESTS, &layer.0)
    }

    /// Caches a manifest whose bytes were checked against `layer`.
    pub fn put_manifest(&self, layer: &LayerId, bytes: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_MANIFESTS), layer.0, bytes)
            .map_err(|e| self.err(e))
    }

    /// What the last persist learnt of a source file, if its stamp still matches.
    pub fn cached_file(&self, path: &[u8], stamp: &FileStamp) -> Result<Option<CachedFile>, StoreError> {
        let Some(v) = self.get(CF_FILES, path)? else {
            return Ok(None);
        };
        if v.len() < STAMP_LEN || decode_stamp(&v) != *stamp {
            return Ok(None);
        }
        Ok(decode_cached(&v[STAMP_LEN..]))
    }

    /// Remembers source files for the next persist: stamp, chunks and xattrs.
    pub fn put_cached_files<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a [u8], &'a FileStamp, &'a [ChunkRef], &'a [Xattr])>,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (path, stamp, refs, xattrs) in files {
            let mut v = Vec::with_capacity(STAMP_LEN + 8 + refs.len() * REF_LEN);
            encode_stamp(&mut v, stamp);
            v.extend_from_slice(&(refs.len() as u32).to_le_bytes());
            for r in refs {
                v.extend_from_slice(&r.id.0);
                v.extend_from_slice(&encode_location(r.len, &r.loc));
            }
            v.extend_from_slice(&(xattrs.len() as u32).to_le_bytes());
            for (name, value) in xattrs {
                for part in [name, value] {
                    v.extend_from_slice(&(part.len() as u32).to_le_bytes());
                    v.extend_from_slice(part);
                }
            }
            batch.put_cf(self.cf(CF_FILES), path, v);
        }
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Every mount record.
    pub fn mounts(&self) -> Result<Vec<MountRecord>, StoreError> {
        self.db
            .iterator_cf(self.cf(CF_MOUNTS), IteratorMode::Start)
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.err(e)))
            .collect()
    }

    /// Adds or replaces a mount record.
    pub fn put_mount(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.cf(CF_MOUNTS), key, value)
            .map_err(|e| self.err(e))
    }

    /// Removes a mount record.
    pub fn delete_mount(&self, key: &[u8]) -> Result<(), StoreError> {
        self.db
            .delete_cf(self.cf(CF_MOUNTS), key)
            .map_err(|e| self.err(e))
    }
}

fn encode_location(len: u32, loc: &ChunkLocation) -> [u8; LOCATION_LEN] {
    let mut v = [0u8; LOCATION_LEN];
    v[0..4].copy_from_slice(&len.to_le_bytes());
    v[4..36].copy_from_slice(&loc.pack.0);
    v[36..44].copy_from_slice(&loc.frame_offset.to_le_bytes());
    v[44..48].copy_from_slice(&loc.frame_len.to_le_bytes());
    v[48..52].copy_from_slice(&loc.frame_plain_len.to_le_bytes());
    v[52..56].copy_from_slice(&loc.offset_in_frame.to_le_bytes());
    v
}

fn decode_location(v: &[u8]) -> Option<(u32, ChunkLocation)> {
    if v.len() != LOCATION_LEN {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(v[at..at + 4].try_into().unwrap());
    Some((
        u32_at(0),
        ChunkLocation {
            pack: PackId(v[4..36].try_into().unwrap()),
            frame_offset: u64::from_le_bytes(v[36..44].try_into().unwrap()),
            frame_len: u32_at(44),
            frame_plain_len: u32_at(48),
            offset_in_frame: u32_at(52),
        },
    ))
}

fn decode_ref(v: &[u8]) -> Option<ChunkRef> {
    let (len, loc) = decode_location(&v[32..])?;
    Some(ChunkRef {
        id: ChunkId(v[..32].try_into().unwrap()),
        len,
        loc,
    })
}

/// What the stat cache keeps of an unchanged source file besides its stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// Its chunks.
    pub chunks: Vec<ChunkRef>,
    /// Its extended attributes (a change of them changes the ctime).
    pub xattrs: Vec<Xattr>,
}

/// Decodes what follows the stamp in a stat cache value; `None` when malformed.
fn decode_cached(mut v: &[u8]) -> Option<CachedFile> {
    let u32_next = |v: &mut &[u8]| {
        let (n, rest) = v.split_first_chunk::<4>()?;
        *v = rest;
        Some(u32::from_le_bytes(*n) as usize)
    };
    let bytes_next = |v: &mut &[u8]| {
        let n = u32_next(v)?;
        let (head, rest) = (v.get(..n)?, v.get(n..)?);
        *v = rest;
        Some(head.to_vec())
    };
    let refs = u32_next(&mut v)?;
    let mut chunks = Vec::with_capacity(refs.min(v.len() / REF_LEN));
    for _ in 0..refs {
        chunks.push(decode_ref(v.get(..REF_LEN)?)?);
        v = &v[REF_LEN..];
    }
    let count = u32_next(&mut v)?;
    let mut xattrs = Vec::with_capacity(count.min(v.len() / 8));
    for _ in 0..count {
        let name = bytes_next(&mut v)?;
        xattrs.push((name, bytes_next(&mut v)?));
    }
    v.is_empty().then_some(CachedFile { chunks, xattrs })
}

fn encode_stamp(v: &mut Vec<u8>, s: &FileStamp) {
    for x in [s.dev, s.ino, s.size] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    for (sec, nsec) in [s.mtime, s.ctime] {
        v.extend_from_slice(&sec.to_le_bytes());
        v.extend_from_slice(&nsec.to_le_bytes());
    }
}

fn decode_stamp(v: &[u8]) -> FileStamp {
    let u64_at = |at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap());
    let u32_at = |at: usize| u32::from_le_bytes(v[at..at + 4].try_into().unwrap());
    FileStamp {
        dev: u64_at(0),
        ino: u64_at(8),
        size: u64_at(16),
        mtime: (u64_at(24) as i64, u32_at(32)),
        ctime: (u64_at(36) as i64, u32_at(44)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_ref(n: u8) -> ChunkRef {
        ChunkRef {
            id: ChunkId([n; 32]),
            len: 1000 + n as u32,
            loc: ChunkLocation {
                pack: PackId([9; 32]),
                frame_offset: 1 << 40,
                frame_len: 77,
                frame_plain_len: 5000,
                offset_in_frame: 12,
            },
        }
    }

    #[test]
    fn pruning_drops_gone_files_and_manifests_beyond_the_budget_but_never_kept_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (4, 5),
            ctime: (6, 7),
        };
        let refs = [sample_ref(1)];
        let files = [&b"/src/kept"[..], b"/src/gone"];
        db.put_cached_files(files.iter().map(|p| (*p, &stamp, &refs[..], &[][..])))
            .unwrap();
        assert_eq!(db.prune_files(|p| p == Path::new("/src/gone")).unwrap(), 1);
        assert!(db.cached_file(b"/src/kept", &stamp).unwrap().is_some());
        assert!(db.cached_file(b"/src/gone", &stamp).unwrap().is_none());

        let layers: Vec<LayerId> = (0..4u8).map(|n| LayerId([n; 32])).collect();
        for layer in &layers {
            db.put_manifest(layer, &[0u8; 100]).unwrap();
        }
        let keep = HashSet::from([layers[0], layers[1]]);
        assert_eq!(db.prune_manifests(400, &keep).unwrap(), 0, "within the budget");
        assert_eq!(db.prune_manifests(250, &keep).unwrap(), 2, "down to the budget");
        assert_eq!(
            db.prune_manifests(0, &keep).unwrap(),
            0,
            "kept ones stay, whatever the budget"
        );
        let left: Vec<bool> = layers.iter().map(|l| db.manifest(l).unwrap().is_some()).collect();
        assert_eq!(left, [true, true, false, false]);
    }

    #[test]
    fn records_round_trip_and_stale_stamps_miss() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let refs = [sample_ref(1), sample_ref(2)];
        db.put_chunks(&refs).unwrap();
        assert_eq!(db.chunk(&refs[1].id).unwrap(), Some(refs[1]));
        assert_eq!(db.chunk(&ChunkId([7; 32])).unwrap(), None);
        let ids = [ChunkId([7; 32]), refs[1].id, refs[0].id];
        assert_eq!(db.chunks(&ids).unwrap(), [None, Some(refs[1]), Some(refs[0])]);
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 2001,
            mtime: (-5, 6),
            ctime: (7, 8),
        };
        let xattrs = [
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"user.b".to_vec(), Vec::new()),
        ];
        db.put_cached_files([(&b"/src/a"[..], &stamp, &refs[..], &xattrs[..])])
            .unwrap();
        let cached = CachedFile {
            chunks: refs.to_vec(),
            xattrs: xattrs.to_vec(),
        };
        assert_eq!(db.cached_file(b"/src/a", &stamp).unwrap(), Some(cached));
        let touched = FileStamp {
            ctime: (7, 9),
            ..stamp
        };
        assert_eq!(db.cached_file(b"/src/a", &touched).unwrap(), None);
        db.put_mount(b"/mnt", b"rec").unwrap();
        assert_eq!(db.mounts().unwrap(), vec![(b"/mnt".to_vec(), b"rec".to_vec())]);
        db.delete_mount(b"/mnt").unwrap();
        assert!(db.mounts().unwrap().is_empty());
        let elsewhere = ChunkRef {
            id: ChunkId([8; 32]),
            loc: ChunkLocation {
                pack: PackId([1; 32]),
                ..refs[0].loc
            },
            ..refs[0]
        };
        db.put_chunks([&elsewhere]).unwrap();
        assert_eq!(db.forget_packs(&HashSet::from([PackId([9; 32])])).unwrap(), 3);
        assert_eq!(db.chunk(&refs[0].id).unwrap(), None);
        assert_eq!(db.cached_file(b"/src/a", &stamp).unwrap(), None);
        assert_eq!(db.chunk(&elsewhere.id).unwrap(), Some(elsewhere));
    }

    #[test]
    fn another_remote_forgets_what_the_first_one_holds() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        assert!(!db.bind_remote("file:///a").unwrap());
        let r = sample_ref(1);
        db.put_chunks([&r]).unwrap();
        db.put_manifest(&LayerId([3; 32]), b"m").unwrap();
        assert!(!db.bind_remote("file:///a").unwrap());
        assert_eq!(db.chunk(&r.id).unwrap(), Some(r));
        assert!(db.bind_remote("s3://b/p").unwrap());
        assert_eq!(db.chunk(&r.id).unwrap(), None);
        assert_eq!(db.manifest(&LayerId([3; 32])).unwrap(), None);
    }
}
