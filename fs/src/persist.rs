//! Persist: turn paths of a source tree into a layer and append it to a workspace.
//!
//! Order of writes, so that a crash never leaves a visible partial layer:
//! packs → manifest → workspace record. The local index learns about new
//! chunks only once their pack is in the remote.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use thiserror::Error;

use crate::chunking::chunk_stream;
use crate::error::StoreError;
use crate::ids::{ChunkId, LayerId};
use crate::manifest::{path_cmp, ChunkRef, Entry, EntryKind, FileData, Manifest, Meta};
use crate::pack::{pack_key, PackWriter, SealedPack};
use crate::store::db::FileStamp;
use crate::store::remote::PendingPut;
use crate::store::Store;
use crate::workspace::{self, LayerRecord, WorkspaceName};

/// Packs uploading while the next one is being filled.
const UPLOADS_IN_FLIGHT: usize = 2;

/// What to persist.
pub struct PersistRequest<'a> {
    /// The directory the paths are relative to.
    pub root: &'a Path,
    /// Paths to persist, relative to `root` (or absolute inside it).
    pub paths: &'a [PathBuf],
    /// The workspace that gets the layer.
    pub workspace: &'a WorkspaceName,
    /// This host's name, for the workspace record.
    pub host: &'a str,
}

/// Progress of a persist, reported after each file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Regular files done.
    pub files_done: u64,
    /// Regular files in all.
    pub files_total: u64,
    /// Bytes of regular files done.
    pub bytes_done: u64,
    /// Bytes of regular files in all.
    pub bytes_total: u64,
}

/// The result of a persist.
#[derive(Clone, Debug)]
pub struct PersistOutcome {
    /// The new layer.
    pub layer: LayerId,
    /// Regular files (each name of a hard-linked file counts).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Plain bytes of chunks the store did not have before.
    pub new_bytes: u64,
    /// Bytes uploaded: packs and the manifest.
    pub stored_bytes: u64,
    /// Paths not persisted (sockets, devices, FIFOs), relative to the root.
    pub skipped: Vec<String>,
}

/// Why a persist failed. Nothing is visible in the workspace when it does.
#[derive(Debug, Error)]
pub enum PersistError {
    /// A requested path that cannot be persisted.
    #[error("{path}: {why}")]
    BadPath {
        /// The path as given.
        path: String,
        /// What is wrong and what to do.
        why: String,
    },
    /// Reading the source tree failed.
    #[error("reading {path}: {source}")]
    Source {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn source_err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError::Source {
        path: path.to_path_buf(),
        source,
    }
}

/// A path of the source tree, ordered like manifest entries.
#[derive(PartialEq, Eq)]
struct TreePath(Vec<u8>);

impl Ord for TreePath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        path_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for TreePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Persists `req.paths` as a new layer on top of `req.workspace`.
pub fn persist(
    store: &Store,
    req: &PersistRequest<'_>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<PersistOutcome, PersistError> {
    let root = fs::canonicalize(req.root).map_err(|e| PersistError::BadPath {
        path: req.root.display().to_string(),
        why: format!("cannot use as --root: {e}"),
    })?;
    if !root.is_dir() {
        return Err(PersistError::BadPath {
            path: req.root.display().to_string(),
            why: "--root is not a directory".into(),
        });
    }
    if req.paths.is_empty() {
        return Err(PersistError::BadPath {
            path: String::new(),
            why: "no path given: name the files and directories to persist".into(),
        });
    }
    let mut tree = BTreeMap::new();
    add_source(&root, &[], &mut tree)?;
    for path in req.paths {
        let rel = relative_path(&root, path)?;
        add_with_ancestors(&root, &rel, path, &mut tree)?;
    }
    let mut builder = LayerBuilder::new(store, &tree)?;
    builder.chunk_files(&root, progress)?;
    builder.finish(req)
}

/// Checks a requested path and makes it relative to the root.
fn relative_path(root: &Path, path: &Path) -> Result<Vec<u8>, PersistError> {
    let bad = |why: &str| PersistError::BadPath {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    let rel = if path.is_absolute() {
        path.strip_prefix(root)
            .map_err(|_| bad(&format!("is outside --root {}: give paths inside it", root.display())))?
    } else {
        path
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p.as_bytes()),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("contains '..': give paths inside --root without '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("is not relative to --root")),
        }
    }
    Ok(parts.join(&b'/'))
}

/// Adds `rel` and its ancestor directories, refusing paths that go through symlinks.
fn add_with_ancestors(
    root: &Path,
    rel: &[u8],
    given: &Path,
    tree: &mut BTreeMap<TreePath, Source>,
) -> Result<(), PersistError> {
    let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').filter(|p| !p.is_empty()).collect();
    for depth in 1..parts.len() {
        let ancestor = parts[..depth].join(&b'/');
        let abs = root.join(Path::new(std::ffi::OsStr::from_bytes(&ancestor)));
        let meta = fs::symlink_metadata(&abs).map_err(|e| PersistError::BadPath {
            path: given.display().to_string(),
            why: format!("does not exist ({e})"),
        })?;
        if !meta.is_dir() {
            return Err(PersistError::BadPath {
                path: given.display().to_string(),
                why: format!(
                    "goes through {}, which is not a directory (a symlink?): name the real path",
                    abs.display()
                ),
            });
        }
        add_source(root, &ancestor, tree)?;
    }
    let abs = root.join(Path::new(std::ffi::OsStr::from_bytes(rel)));
    if fs::symlink_metadata(&abs).is_err() {
        return Err(PersistError::BadPath {
            path: given.display().to_string(),
            why: format!("does not exist under --root {}", root.display()),
        });
    }
    walk(root, rel, tree)
}

/// One path of the source with its metadata.
struct Source {
    abs: PathBuf,
    meta: Metadata,
}

fn add_source(root: &Path, rel: &[u8], tree: &mut BTreeMap<TreePath, Source>) -> Result<(), PersistError> {
    let abs = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(Path::new(std::ffi::OsStr::from_bytes(rel)))
    };
    let meta = fs::symlink_metadata(&abs).map_err(source_err(&abs))?;
    tree.insert(TreePath(rel.to_vec()), Source { abs, meta });
    Ok(())
}

/// Adds `rel` and, for a directory, everything below it (symlinks are not followed).
fn walk(root: &Path, rel: &[u8], tree: &mut BTreeMap<TreePath, Source>) -> Result<(), PersistError> {
    let mut pending = vec![rel.to_vec()];
    while let Some(rel) = pending.pop() {
        add_source(root, &rel, tree)?;
        let source = &tree[&TreePath(rel.clone())];
        if !source.meta.is_dir() {
            continue;
        }
        let abs = source.abs.clone();
        for child in fs::read_dir(&abs).map_err(source_err(&abs))? {
            let child = child.map_err(source_err(&abs))?;
            let name = child.file_name();
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name.as_bytes());
            pending.push(child_rel);
        }
    }
    Ok(())
}

fn meta_of(source: &Source) -> Result<Meta, PersistError> {
    let m = &source.meta;
    let mut xattrs = Vec::new();
    match xattr::list(&source.abs) {
        Ok(names) => {
            for name in names {
                if let Some(value) = xattr::get(&source.abs, &name).map_err(source_err(&source.abs))? {
                    xattrs.push((name.as_bytes().to_vec(), value));
                }
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
        Err(e) => return Err(source_err(&source.abs)(e)),
    }
    xattrs.sort();
    Ok(Meta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        xattrs,
    })
}

fn stamp_of(m: &Metadata) -> FileStamp {
    FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec() as u32),
        ctime: (m.ctime(), m.ctime_nsec() as u32),
    }
}

/// A file's chunks before their packs are sealed: ids and lengths.
type PendingChunks = Vec<(ChunkId, u32)>;

/// Builds one layer: chunks files into packs, uploads them, writes the manifest.
struct LayerBuilder<'s> {
    store: &'s Store,
    /// Entries in tree order; file entries get their chunks at the end.
    entries: Vec<(Entry, Option<PendingChunks>)>,
    /// Regular files to chunk: entry index, source path, stamp, hard-link key.
    files: Vec<(usize, PathBuf, FileStamp, Option<(u64, u64)>)>,
    skipped: Vec<String>,
    writer: PackWriter,
    uploads: Vec<PendingPut>,
    /// Where every chunk of this layer lives, once known.
    located: HashMap<ChunkId, ChunkRef>,
    /// Chunks added to the writer whose pack is not sealed yet.
    unsealed: HashMap<ChunkId, u32>,
    /// Chunks of this layer's new packs, for the local index.
    new_refs: Vec<ChunkRef>,
    /// Files chunked whole: source path, stamp, entry index (for the stat cache).
    stamps: Vec<(Vec<u8>, FileStamp, usize)>,
    new_bytes: u64,
    stored_bytes: u64,
}

impl<'s> LayerBuilder<'s> {
    fn new(store: &'s Store, tree: &BTreeMap<TreePath, Source>) -> Result<Self, PersistError> {
        let mut names_per_inode: HashMap<(u64, u64), u32> = HashMap::new();
        for source in tree.values() {
            if source.meta.is_file() && source.meta.nlink() > 1 {
                *names_per_inode.entry((source.meta.dev(), source.meta.ino())).or_default() += 1;
            }
        }
        let mut link_ids: HashMap<(u64, u64), u32> = HashMap::new();
        let mut builder = LayerBuilder {
            store,
            entries: Vec::with_capacity(tree.len()),
            files: Vec::new(),
            skipped: Vec::new(),
            writer: PackWriter::new().map_err(|e| StoreError::Internal(e.to_string()))?,
            uploads: Vec::new(),
            located: HashMap::new(),
            unsealed: HashMap::new(),
            new_refs: Vec::new(),
            stamps: Vec::new(),
            new_bytes: 0,
            stored_bytes: 0,
        };
        for (path, source) in tree {
            let ft = source.meta.file_type();
            let kind = if ft.is_dir() {
                EntryKind::Dir { opaque: false }
            } else if ft.is_symlink() {
                let target = fs::read_link(&source.abs).map_err(source_err(&source.abs))?;
                EntryKind::Symlink {
                    target: target.as_os_str().as_bytes().to_vec(),
                }
            } else if ft.is_file() {
                let inode = (source.meta.dev(), source.meta.ino());
                let linked = names_per_inode.get(&inode).is_some_and(|&n| n > 1);
                let next_id = link_ids.len() as u32 + 1;
                let link = if linked { *link_ids.entry(inode).or_insert(next_id) } else { 0 };
                builder.files.push((
                    builder.entries.len(),
                    source.abs.clone(),
                    stamp_of(&source.meta),
                    linked.then_some(inode),
                ));
                EntryKind::File(FileData {
                    size: 0,
                    chunks: Vec::new(),
                    link,
                })
            } else {
                debug_assert!(ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device());
                builder.skipped.push(String::from_utf8_lossy(&path.0).into_owned());
                continue;
            };
            let entry = Entry {
                path: path.0.clone(),
                meta: meta_of(source)?,
                kind,
            };
            builder.entries.push((entry, None));
        }
        Ok(builder)
    }

    /// Chunks every regular file, reusing what the store already has.
    fn chunk_files(&mut self, root: &Path, progress: &mut dyn FnMut(&Progress)) -> Result<(), PersistError> {
        let mut p = Progress {
            files_total: self.files.len() as u64,
            bytes_total: self.files.iter().map(|f| f.2.size).sum(),
            ..Progress::default()
        };
        let mut done_inodes: HashMap<(u64, u64), usize> = HashMap::new();
        let files = std::mem::take(&mut self.files);
        for (index, abs, stamp, inode) in &files {
            let chunks = match inode.and_then(|i| done_inodes.get(&i)) {
                Some(&first) => self.entries[first].1.clone().expect("chunked before"),
                None => self.chunk_file(root, *index, abs, stamp)?,
            };
            if let Some(inode) = inode {
                done_inodes.entry(*inode).or_insert(*index);
            }
            self.entries[*index].1 = Some(chunks);
            p.files_done += 1;
            p.bytes_done += stamp.size;
            progress(&p);
        }
        Ok(())
    }

    fn chunk_file(
        &mut self,
        root: &Path,
        index: usize,
        abs: &Path,
        stamp: &FileStamp,
    ) -> Result<PendingChunks, PersistError> {
        let key = abs.as_os_str().as_bytes();
        if let Some(refs) = self.store.db().file_chunks(key, stamp)? {
            for r in &refs {
                self.located.insert(r.id, *r);
            }
            return Ok(refs.iter().map(|r| (r.id, r.len)).collect());
        }
        let file = File::open(abs).map_err(source_err(abs))?;
        let mut chunks = Vec::new();
        let mut failure = None;
        chunk_stream(file, |chunk| {
            let len = chunk.data.len() as u32;
            chunks.push((chunk.id, len));
            if let Err(e) = self.add_chunk(chunk.id, &chunk.data) {
                failure = Some(e);
                return Err(io::Error::other("store failure"));
            }
            Ok(())
        })
        .map_err(|e| failure.take().unwrap_or_else(|| source_err(abs)(e)))?;
        let size: u64 = chunks.iter().map(|c| u64::from(c.1)).sum();
        if size == stamp.size {
            self.stamps.push((key.to_vec(), *stamp, index));
        } else {
            tracing::warn!(file = %abs.display(), root = %root.display(), "file changed while being persisted");
        }
        Ok(chunks)
    }

    fn add_chunk(&mut self, id: ChunkId, data: &[u8]) -> Result<(), PersistError> {
        if self.located.contains_key(&id) || self.unsealed.contains_key(&id) {
            return Ok(());
        }
        if let Some(known) = self.store.db().chunk(&id)? {
            self.located.insert(id, known);
            return Ok(());
        }
        self.new_bytes += data.len() as u64;
        self.unsealed.insert(id, data.len() as u32);
        let sealed = self
            .writer
            .add(id, data)
            .map_err(|e| StoreError::Internal(format!("compressing: {e}")))?;
        if let Some(pack) = sealed {
            self.upload(pack)?;
        }
        Ok(())
    }

    fn upload(&mut self, pack: SealedPack) -> Result<(), PersistError> {
        for (id, len, loc) in pack.chunks {
            self.unsealed.remove(&id);
            let r = ChunkRef { id, len, loc };
            self.located.insert(id, r);
            self.new_refs.push(r);
        }
        self.stored_bytes += pack.bytes.len() as u64;
        self.store.count_put(pack.bytes.len());
        if self.uploads.len() >= UPLOADS_IN_FLIGHT {
            self.uploads.remove(0).wait()?;
        }
        let put = self.store.remote().spawn_put(pack_key(&pack.id), Bytes::from(pack.bytes));
        self.uploads.push(put);
        Ok(())
    }

    fn finish(mut self, req: &PersistRequest<'_>) -> Result<PersistOutcome, PersistError> {
        if let Some(pack) = self
            .writer
            .finish()
            .map_err(|e| StoreError::Internal(format!("compressing: {e}")))?
        {
            self.upload(pack)?;
        }
        for put in self.uploads.drain(..) {
            put.wait()?;
        }
        let (mut files, mut bytes) = (0, 0);
        let mut entries = Vec::with_capacity(self.entries.len());
        for (mut entry, chunks) in self.entries {
            if let (EntryKind::File(data), Some(chunks)) = (&mut entry.kind, chunks) {
                data.chunks = chunks.iter().map(|(id, _)| self.located[id]).collect();
                data.size = chunks.iter().map(|c| u64::from(c.1)).sum();
                files += 1;
                bytes += data.size;
            }
            entries.push(entry);
        }
        let manifest = Manifest { entries };
        let (layer, manifest_bytes) = self.store.put_manifest(&manifest)?;
        self.store.db().put_chunks(&self.new_refs)?;
        let stamped: Vec<(&[u8], &FileStamp, &[ChunkRef])> = self
            .stamps
            .iter()
            .filter_map(|(path, stamp, index)| match &manifest.entries[*index].kind {
                EntryKind::File(data) => Some((&path[..], stamp, &data.chunks[..])),
                _ => None,
            })
            .collect();
        self.store.db().put_file_chunks(stamped)?;
        let record = LayerRecord {
            layer,
            persisted_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            host: req.host.to_string(),
            files,
            bytes,
        };
        workspace::append(self.store, req.workspace, &record)?;
        Ok(PersistOutcome {
            layer,
            files,
            bytes,
            new_bytes: self.new_bytes,
            stored_bytes: self.stored_bytes + manifest_bytes,
            skipped: self.skipped,
        })
    }
}
