//! The on-disk cache of decompressed frames, bounded by a byte budget.
//!
//! The unit is a frame, not a chunk: one fetch brings the neighbours of the
//! chunk that was asked for (small files of one directory share frames), and
//! they are served from here afterwards. Files are written to a temporary
//! name and renamed, so a crash never leaves a partial frame under its real
//! name; every chunk taken from a cached frame is still checked against its
//! digest by the caller.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::lru::Lru;
use crate::error::StoreError;
use crate::ids::PackId;

/// A frame: its pack and offset in the pack.
pub type FrameKey = (PackId, u64);

/// Decompressed frames on local disk, least recently used evicted first.
pub struct FrameCache {
    dir: PathBuf,
    budget: u64,
    lru: Mutex<Lru<FrameKey, ()>>,
}

impl FrameCache {
    /// Opens (creating) the cache in `dir`, indexing what a previous run left
    /// (oldest modification first) and trimming it to `budget`.
    pub fn open(dir: &Path, budget: u64) -> Result<FrameCache, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut found = Vec::new();
        for sub in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let sub = sub.map_err(|e| StoreError::io(dir, e))?.path();
            if !sub.is_dir() {
                continue;
            }
            for file in fs::read_dir(&sub).map_err(|e| StoreError::io(&sub, e))? {
                let file = file.map_err(|e| StoreError::io(&sub, e))?;
                let path = file.path();
                let meta = file.metadata().map_err(|e| StoreError::io(&path, e))?;
                match file.file_name().to_str().and_then(parse_name) {
                    Some(key) => found.push((meta.modified().ok(), key, meta.len())),
                    // A temporary file of an interrupted write.
                    None => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
        }
        found.sort_by_key(|(modified, _, _)| *modified);
        let mut lru = Lru::new();
        for (_, key, size) in found {
            lru.insert(key, size, ());
        }
        let cache = FrameCache {
            dir: dir.to_path_buf(),
            budget,
            lru: Mutex::new(lru),
        };
        cache.trim(budget);
        Ok(cache)
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes cached now.
    pub fn bytes(&self) -> u64 {
        self.lru.lock().unwrap().total()
    }

    fn path(&self, key: &FrameKey) -> PathBuf {
        let hex = key.0.to_hex();
        self.dir.join(&hex[..2]).join(format!("{hex}-{:x}", key.1))
    }

    /// Whether a frame is cached (without marking it used).
    pub fn contains(&self, key: &FrameKey) -> bool {
        self.lru.lock().unwrap().contains(key)
    }

    /// `len` bytes at `offset` of a cached frame, if present: one chunk,
    /// without reading the rest of its frame.
    pub fn get_range(&self, key: &FrameKey, offset: u32, len: u32) -> Option<Vec<u8>> {
        self.lru.lock().unwrap().get(key)?;
        let mut bytes = vec![0; len as usize];
        let read = fs::File::open(self.path(key)).and_then(|f| f.read_exact_at(&mut bytes, offset.into()));
        match read {
            Ok(()) => Some(bytes),
            Err(_) => {
                self.remove(key);
                None
            }
        }
    }

    /// Stores a frame, evicting older ones to stay within the budget. A frame
    /// larger than the whole budget is not cached. Failing to cache is not an
    /// error for the reader: it is logged and the frame is simply not kept.
    pub fn put(&self, key: &FrameKey, frame: &[u8]) {
        let size = frame.len() as u64;
        if size > self.budget {
            return;
        }
        let path = self.path(key);
        if let Err(e) = write_atomically(&path, frame) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache frame");
            return;
        }
        self.lru.lock().unwrap().insert(*key, size, ());
        self.trim(self.budget);
    }

    /// Drops a frame (e.g. one found corrupt).
    pub fn remove(&self, key: &FrameKey) {
        self.lru.lock().unwrap().remove(key);
        let _ = fs::remove_file(self.path(key));
    }

    /// Evicts least recently used frames until at most `target` bytes remain.
    pub fn trim(&self, target: u64) {
        loop {
            let victim = {
                let mut lru = self.lru.lock().unwrap();
                if lru.total() <= target {
                    return;
                }
                lru.pop_oldest()
            };
            match victim {
                Some((key, ())) => {
                    let _ = fs::remove_file(self.path(&key));
                }
                None => return,
            }
        }
    }
}

fn parse_name(name: &str) -> Option<FrameKey> {
    let (pack, offset) = name.split_once('-')?;
    Some((pack.parse().ok()?, u64::from_str_radix(offset, 16).ok()?))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{:x}", std::process::id(), rand::random::<u64>()));
    let written = fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    match written.and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_budget_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FrameCache::open(dir.path(), 250).unwrap();
        let pack = PackId::of(b"p");
        for i in 0..5u64 {
            cache.put(&(pack, i), &[i as u8; 100]);
            assert!(cache.bytes() <= 250);
        }
        assert_eq!(cache.get_range(&(pack, 4), 10, 5), Some(vec![4u8; 5]));
        assert_eq!(cache.get_range(&(pack, 4), 99, 5), None, "beyond the frame");
        assert_eq!(cache.get_range(&(pack, 0), 0, 1), None, "evicted");
        cache.put(&(pack, 9), &[0u8; 1000]);
        assert_eq!(cache.get_range(&(pack, 9), 0, 1), None, "larger than the budget");
        drop(cache);
        let reopened = FrameCache::open(dir.path(), 100).unwrap();
        assert_eq!(reopened.bytes(), 100);
    }
}
