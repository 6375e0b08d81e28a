//! Persist: turn paths of a source tree into a layer and append it to a workspace.
//!
//! Order of writes, so that a crash never leaves a visible partial layer:
//! packs → manifest → workspace record. The local index learns about new
//! chunks only once their pack is in the remote. Files whose stat stamp is
//! unchanged since the last persist are neither read nor chunked again.
//! Each step ends at a fault point ([`crash`]) that crash tests kill the
//! process at. A persist whose requester calls it off ([`PersistRequest::cancelled`])
//! stops, at the latest right before its record is written.

pub(crate) mod changes;
mod guard;
mod in_order;
pub mod layout;
mod overrides;
mod packer;
mod plan;
mod source;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use thiserror::Error;

use crate::chunking::{chunk_bytes, chunk_stream};
use crate::crash;
use crate::error::StoreError;
use crate::gc;
use crate::ids::{ChunkId, LayerId, PackId};
use crate::manifest::{ChunkRef, Entry, EntryKind, Manifest};
pub use crate::os::Caller;
use crate::pack::FrameIndex;
use crate::store::db::{Db, FileStamp};
use crate::store::Store;
use crate::unix_time;
use crate::workspace::{self, LayerRecord, WorkspaceName};
use guard::{retrying, Avoid, Built};
use in_order::Ahead;
use layout::Layout;
use packer::Packer;
use plan::{plan_source, Content, Plan, Planned};
use source::{source_err, SourceRoot};

pub use changes::{ChangesRequest, ROOT_OVERLAY_XATTRS};

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
    /// Set when the requester went away: the persist stops and writes no record.
    pub cancelled: Option<&'a AtomicBool>,
    /// Who asked, when not the daemon's own user: the source is read with
    /// its credentials (see [`Caller`]).
    pub caller: Option<&'a Caller>,
    /// The keys of the access traces whose files are packed first (see
    /// [`layout`]); empty: the workspace's name, the key attach keeps a
    /// trace under by default.
    pub prefetch_keys: &'a [String],
    /// Threads that walk, read, chunk and compress; 0: one per core. The
    /// layer does not depend on it.
    pub threads: usize,
}

/// Progress of a persist, reported after each file.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistProgress {
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
    /// Paths the layer deletes (whiteouts).
    pub deleted: u64,
    /// Paths not persisted (sockets, devices, FIFOs), relative to the root.
    pub skipped: Vec<String>,
    /// Paths changed by layers that landed after this one's base and that
    /// this layer hides (it landed later, so it wins), in tree order.
    pub overrode: Vec<String>,
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
    /// A file the walk saw was replaced before it was read.
    #[error(
        "{path} was replaced while being persisted (by another file, a symlink, a FIFO or a device); \
         nothing was read from it and nothing was persisted: run the persist again once the tree stays put"
    )]
    Replaced {
        /// The file.
        path: PathBuf,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Garbage collection condemned or deleted what every attempt referenced.
    #[error(
        "garbage collection condemned or deleted packs of the new layer {0} times in a row \
         (is `wsfs gc` running with a short --grace?); nothing was persisted: run the persist again"
    )]
    Collected(usize),
    /// The requester called the persist off before its record was written.
    #[error("the persist was cancelled (its client went away); nothing was persisted")]
    Cancelled,
    /// The layer equals a deleted one that garbage collection condemned, and
    /// holds no file data that could be stored anew to make it differ.
    #[error(
        "layer {0} equals a deleted layer that garbage collection condemned, and has no file data \
         to store anew; nothing was persisted: run the persist again after the next `wsfs gc` run"
    )]
    LayerCondemned(LayerId),
}

/// Persists `req.paths` as a new layer on top of `req.workspace`.
pub fn persist(
    store: &Store,
    req: &PersistRequest<'_>,
    progress: &mut dyn FnMut(&PersistProgress),
) -> Result<PersistOutcome, PersistError> {
    counted(store, || persist_tree(store, req, progress))
}

/// Runs a persist, counting it in the store's metrics.
fn counted(
    store: &Store,
    persist: impl FnOnce() -> Result<PersistOutcome, PersistError>,
) -> Result<PersistOutcome, PersistError> {
    let started = Instant::now();
    let outcome = persist();
    store.metrics().persist.record(started, &outcome);
    outcome
}

fn persist_tree(
    store: &Store,
    req: &PersistRequest<'_>,
    progress: &mut dyn FnMut(&PersistProgress),
) -> Result<PersistOutcome, PersistError> {
    let bad_root = |why: String| PersistError::BadPath {
        path: req.root.display().to_string(),
        why,
    };
    // As the caller: its search permissions decide where `--root` leads.
    let root = crate::os::as_caller(req.caller, || fs::canonicalize(req.root))
        .and_then(|root| root)
        .map_err(|e| bad_root(format!("cannot use as --root: {e}")))?;
    if !root.is_dir() {
        return Err(bad_root("--root is not a directory".into()));
    }
    let source_root = SourceRoot::open(&root, req.caller)?;
    let threads = threads_or_cores(req.threads);
    if req.paths.is_empty() {
        return Err(PersistError::BadPath {
            path: String::new(),
            why: "no path given: name the files and directories to persist".into(),
        });
    }
    let default_key = [req.workspace.to_string()];
    let keys = match req.prefetch_keys {
        [] => &default_key[..],
        keys => keys,
    };
    let layout = Layout::read(store, keys);
    if !layout.is_empty() {
        tracing::info!(
            keys = keys.join(" "),
            traced = layout.len(),
            "laying out traced files first"
        );
    }
    retrying(store, |avoid| {
        let started = Instant::now();
        let base = workspace::layers(store, req.workspace)?;
        let tree = source_root
            .as_caller(|| source::collect(&source_root, req.paths, Some(store.db()), threads))??;
        let walked = started.elapsed();
        let mut plan = Plan::default();
        source_root.as_caller(|| {
            for (path, source) in &tree {
                match plan_source(path.0.clone(), source, source.attrs.clone())? {
                    Some(planned) => plan.entries.push(planned),
                    None => plan.skipped.push(String::from_utf8_lossy(&path.0).into_owned()),
                }
            }
            Ok::<_, PersistError>(())
        })??;
        tracing::debug!(
            entries = plan.entries.len(),
            walk_ms = walked.as_millis() as u64,
            metadata_ms = (started.elapsed() - walked).as_millis() as u64,
            "planned a persist"
        );
        let target = Target {
            workspace: req.workspace,
            host: req.host,
            base: &base,
            cancelled: req.cancelled,
        };
        let from = Sources {
            root: &source_root,
            known: HashMap::new(),
            stat_cache: true,
            layout: &layout,
        };
        build(store, plan, from, &target, avoid, threads, progress)
    })
}

/// `threads`, or one per core when 0.
fn threads_or_cores(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Persists the changes an isolated view made (see [`changes`]) as a layer
/// on top of `req.workspace`, which may have gained layers since the view's base.
pub fn persist_changes(
    store: &Store,
    req: &ChangesRequest<'_>,
    progress: &mut dyn FnMut(&PersistProgress),
) -> Result<PersistOutcome, PersistError> {
    counted(store, || persist_view_changes(store, req, progress))
}

fn persist_view_changes(
    store: &Store,
    req: &ChangesRequest<'_>,
    progress: &mut dyn FnMut(&PersistProgress),
) -> Result<PersistOutcome, PersistError> {
    let target = Target {
        workspace: req.workspace,
        host: req.host,
        base: req.base_layers,
        cancelled: None,
    };
    let upper = SourceRoot::open(req.upper, None)?;
    retrying(store, |avoid| {
        let newer = newer_layers(store, req.workspace, req.base_layers)?;
        let plan = changes::plan(req.upper, req.overlay_xattrs, req.base, &newer, req.sub_path)?;
        // Copied-up files mostly hold chunks the base tree already has: this host
        // may never have persisted them, but their location is in the base's manifests.
        let from = Sources {
            root: &upper,
            known: req.base.chunk_refs().iter().map(|r| (r.id, *r)).collect(),
            stat_cache: false,
            layout: req.layout,
        };
        build(store, plan, from, &target, avoid, threads_or_cores(0), progress)
    })
}

/// The manifests of the layers of `ws` that are not in `base`, oldest first.
fn newer_layers(store: &Store, ws: &WorkspaceName, base: &[LayerId]) -> Result<Vec<Manifest>, StoreError> {
    let base: HashSet<&LayerId> = base.iter().collect();
    workspace::layers(store, ws)?
        .iter()
        .filter(|l| !base.contains(l))
        .map(|l| store.manifest(l))
        .collect()
}

/// Where a new layer goes.
struct Target<'a> {
    workspace: &'a WorkspaceName,
    host: &'a str,
    /// The layers the new one was based on: others that land meanwhile may be overridden.
    base: &'a [LayerId],
    /// See [`PersistRequest::cancelled`].
    cancelled: Option<&'a AtomicBool>,
}

impl Target<'_> {
    /// Fails when the requester called the persist off.
    fn still_wanted(&self) -> Result<(), PersistError> {
        match self.cancelled {
            Some(c) if c.load(Ordering::SeqCst) => Err(PersistError::Cancelled),
            _ => Ok(()),
        }
    }
}

/// Where a layer's file contents come from.
struct Sources<'a> {
    /// The directory the files are read beneath.
    root: &'a SourceRoot,
    /// Chunks the store already has, with their location.
    known: HashMap<ChunkId, ChunkRef>,
    /// Use and fill the stat cache (off for a view's upper directory, whose
    /// paths are gone after the persist).
    stat_cache: bool,
    /// The order to pack files in.
    layout: &'a Layout,
}

/// Chunks and packs what `plan` reads on `threads` threads, writes its
/// manifest, and appends it to the workspace unless the gc check refuses it.
fn build(
    store: &Store,
    mut plan: Plan,
    from: Sources<'_>,
    target: &Target<'_>,
    avoid: &Avoid,
    threads: usize,
    progress: &mut dyn FnMut(&PersistProgress),
) -> Result<Built, PersistError> {
    let started = Instant::now();
    plan.sort();
    let repack_traced = layout::repack_traced(&plan, from.layout, store, from.root, &from.known)?;
    let mut layer = LayerBuilder::new(store, plan, from, &avoid.packs, repack_traced);
    let new_refs = std::thread::scope(|scope| {
        let mut packer = Packer::start(scope, store, avoid.salt, threads);
        let chunked = layer.chunk_files(&mut packer, target, threads, progress);
        let packed = packer.finish();
        // When the packer stopped (an upload failed), its error is the one to tell.
        let packed = match (chunked, packed) {
            (Err(_), Err(e)) if layer.packer_stopped => return Err(e.into()),
            (Err(e), _) => return Err(e),
            (Ok(()), packed) => packed?,
        };
        layer.stored_bytes += packed.stored_bytes;
        Ok::<_, PersistError>(packed.refs)
    })?;
    crash::point("persist.packs-put");
    let chunked = started.elapsed();
    let outcome = layer.finish(target, new_refs);
    tracing::debug!(
        chunk_ms = chunked.as_millis() as u64,
        finish_ms = (started.elapsed() - chunked).as_millis() as u64,
        "built a layer"
    );
    outcome
}

/// Two seconds before now: coarser than any file system's timestamp tick.
fn racy_after() -> (i64, u32) {
    let now = unix_time::since_epoch(SystemTime::now());
    (now.as_secs() as i64 - 2, now.subsec_nanos())
}

/// A file's chunks (ids and lengths) before all their packs are sealed.
type PendingChunks = Vec<(ChunkId, u32)>;

/// Files up to this size are read whole and chunked on worker threads;
/// larger ones are streamed in their turn (see [`LayerBuilder::chunk_files`]).
const READ_WHOLE: u64 = 8 << 20;
/// Bytes of files read ahead of the one whose chunks go to the packer, at most.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// A file read whole and cut into chunks.
struct WholeFile {
    data: Vec<u8>,
    chunks: PendingChunks,
    /// The store's index entry of each chunk (see [`Db::chunks`]).
    indexed: Vec<Option<ChunkRef>>,
}

/// Reads the file at `abs` that the walk saw as `stamp`, chunks it and
/// looks its chunks up in the store's index.
fn read_whole(root: &SourceRoot, db: &Db, abs: &Path, stamp: &FileStamp) -> Result<WholeFile, PersistError> {
    let mut file = root.open_file(abs, stamp)?;
    // One byte more than expected: a file that grew since is read to its end.
    let mut data = Vec::with_capacity(stamp.size as usize + 1);
    io::Read::read_to_end(&mut file, &mut data).map_err(source_err(abs))?;
    let mut chunks = Vec::new();
    chunk_bytes(&data, |chunk| {
        chunks.push((chunk.id, chunk.data.len() as u32));
        Ok::<_, std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {});
    let ids: Vec<ChunkId> = chunks.iter().map(|c| c.0).collect();
    let indexed = db.chunks(&ids)?;
    Ok(WholeFile {
        data,
        chunks,
        indexed,
    })
}

/// A regular file to chunk.
struct FileJob {
    /// Index of its entry.
    entry: usize,
    from: FileSource,
    size: u64,
    /// `(dev, ino)` when other names of this inode are in the layer.
    inode: Option<(u64, u64)>,
    /// Its place in the layout's read order, when traced.
    rank: Option<u32>,
    /// Pack its chunks anew even where the store has them (see [`layout`]).
    repack: bool,
}

/// Where a file's bytes are read from.
enum FileSource {
    /// The source file.
    Path { abs: PathBuf, stamp: FileStamp },
    /// The chunks of a known file whose packs garbage collection condemned:
    /// read from the store to be packed anew.
    Stored(Vec<ChunkRef>),
}

/// Builds one layer: entries in tree order, file contents chunked and deduplicated.
struct LayerBuilder<'s> {
    store: &'s Store,
    /// The directory files are read beneath.
    root: &'s SourceRoot,
    /// Entries in tree order; a file entry gets its chunks at the end.
    entries: Vec<(Entry, Option<PendingChunks>)>,
    files: Vec<FileJob>,
    skipped: Vec<String>,
    deleted: u64,
    /// Chunks the store already had, with their location.
    known: HashMap<ChunkId, ChunkRef>,
    /// Packs not to reference (see [`Avoid`]).
    avoid: &'s HashSet<PackId>,
    /// Chunks new in this persist, handed to the packer.
    new: HashSet<ChunkId>,
    /// Files chunked whole, for the stat cache: source path, stamp, entry index.
    stamps: Vec<(Vec<u8>, FileStamp, usize)>,
    /// Use and fill the stat cache (off for a view's upper directory, whose
    /// paths are gone after the persist).
    stat_cache: bool,
    new_bytes: u64,
    stored_bytes: u64,
    /// The packer refused a chunk: it stopped on an error of its own.
    packer_stopped: bool,
    /// Files changed since this instant may change again within one timestamp
    /// tick without their stamp changing: they are not remembered as unchanged.
    racy_after: (i64, u32),
}

impl<'s> LayerBuilder<'s> {
    /// `repack_traced`: pack the layout's traced files anew (see [`layout::repack_traced`]).
    fn new(
        store: &'s Store,
        plan: Plan,
        from: Sources<'s>,
        avoid: &'s HashSet<PackId>,
        repack_traced: bool,
    ) -> Self {
        let Sources {
            root,
            mut known,
            stat_cache,
            layout,
        } = from;
        known.retain(|_, r| !avoid.contains(&r.loc.pack));
        let mut names_per_inode: HashMap<(u64, u64), u32> = HashMap::new();
        for inode in plan.entries.iter().filter_map(|p| p.inode) {
            *names_per_inode.entry(inode).or_default() += 1;
        }
        let mut link_ids: HashMap<(u64, u64), u32> = HashMap::new();
        let mut layer = LayerBuilder {
            store,
            root,
            entries: Vec::with_capacity(plan.entries.len()),
            files: Vec::new(),
            skipped: plan.skipped,
            deleted: plan.deleted,
            known,
            avoid,
            new: HashSet::new(),
            stamps: Vec::new(),
            stat_cache,
            new_bytes: 0,
            stored_bytes: 0,
            packer_stopped: false,
            racy_after: racy_after(),
        };
        for Planned {
            mut entry,
            content,
            inode,
        } in plan.entries
        {
            let EntryKind::File(data) = &mut entry.kind else {
                layer.entries.push((entry, None));
                continue;
            };
            let linked = inode.filter(|i| names_per_inode[i] > 1);
            if let Some(inode) = linked {
                let next_id = link_ids.len() as u32 + 1;
                data.link = *link_ids.entry(inode).or_insert(next_id);
            }
            let rank = layout.rank(&entry.path);
            let repack = repack_traced && rank.is_some();
            let from = match content {
                Content::Cached { abs, stamp } if repack => FileSource::Path { abs, stamp },
                Content::Known | Content::Cached { .. }
                    if data.chunks.iter().any(|r| avoid.contains(&r.loc.pack)) =>
                {
                    FileSource::Stored(std::mem::take(&mut data.chunks))
                }
                Content::Known | Content::Cached { .. } => {
                    layer.known.extend(data.chunks.iter().map(|r| (r.id, *r)));
                    let chunks = data.chunks.iter().map(|r| (r.id, r.len)).collect();
                    layer.entries.push((entry, Some(chunks)));
                    continue;
                }
                Content::Read { abs, stamp } => FileSource::Path { abs, stamp },
            };
            let size = match &from {
                FileSource::Path { stamp, .. } => stamp.size,
                FileSource::Stored(refs) => refs.iter().map(|r| u64::from(r.len)).sum(),
            };
            layer.files.push(FileJob {
                entry: layer.entries.len(),
                from,
                size,
                inode: linked,
                rank,
                repack,
            });
            layer.entries.push((entry, None));
        }
        // Traced files first, in read order; the rest in tree order (a stable sort).
        layer.files.sort_by_key(|job| job.rank.unwrap_or(u32::MAX));
        layer
    }

    /// Chunks every regular file, reusing what the store already has;
    /// stops when the persist is called off. Files are read and chunked
    /// ahead on `threads` threads, but their new chunks reach the packer in
    /// the order of [`LayerBuilder::files`], so the packs do not depend on
    /// the thread count.
    fn chunk_files(
        &mut self,
        packer: &mut Packer<'_>,
        target: &Target<'_>,
        threads: usize,
        progress: &mut dyn FnMut(&PersistProgress),
    ) -> Result<(), PersistError> {
        let mut p = PersistProgress {
            files_total: self.files.len() as u64,
            bytes_total: self.files.iter().map(|f| f.size).sum(),
            ..PersistProgress::default()
        };
        // A hard-linked file is chunked at its first name; later names take those chunks.
        let mut first_name: HashMap<(u64, u64), usize> = HashMap::new();
        let jobs: Vec<(FileJob, Option<usize>)> = std::mem::take(&mut self.files)
            .into_iter()
            .map(|job| {
                let first = job.inode.map(|i| *first_name.entry(i).or_insert(job.entry));
                let copy_of = first.filter(|&first| first != job.entry);
                (job, copy_of)
            })
            .collect();
        let (root, db) = (self.root, self.store.db());
        let ahead = Ahead {
            threads,
            items: 64 * threads,
            cost: READ_AHEAD_BYTES,
        };
        let cost = |(job, _): &(FileJob, Option<usize>)| job.size.min(READ_WHOLE) + 4096;
        let read = |(job, copy_of): &(FileJob, Option<usize>)| match (&job.from, copy_of) {
            (FileSource::Path { abs, stamp }, None) if stamp.size <= READ_WHOLE => {
                read_whole(root, db, abs, stamp).map(Some)
            }
            _ => Ok(None),
        };
        in_order::run(&jobs, ahead, cost, read, |_, (job, copy_of), read| {
            target.still_wanted()?;
            let chunks = match (copy_of, read?) {
                (Some(first), _) => self.entries[*first].1.clone().expect("chunked before"),
                (None, Some(whole)) => self.add_whole(packer, job, whole)?,
                (None, None) => self.chunk_file(packer, job)?,
            };
            self.entries[job.entry].1 = Some(chunks);
            p.files_done += 1;
            p.bytes_done += job.size;
            progress(&p);
            Ok(())
        })
    }

    /// Adds the chunks of a file read whole ([`read_whole`]).
    fn add_whole(
        &mut self,
        packer: &mut Packer<'_>,
        job: &FileJob,
        whole: WholeFile,
    ) -> Result<PendingChunks, PersistError> {
        let WholeFile {
            data,
            chunks,
            indexed,
        } = whole;
        match &chunks[..] {
            // Most files are one chunk: their buffer goes to the packer as it is.
            [(id, _)] => self.add_indexed(packer, *id, Cow::Owned(data), indexed[0], job.repack)?,
            _ => {
                let mut at = 0;
                for (&(id, len), indexed) in chunks.iter().zip(indexed) {
                    let end = at + len as usize;
                    self.add_indexed(packer, id, Cow::Borrowed(&data[at..end]), indexed, job.repack)?;
                    at = end;
                }
            }
        }
        self.remember(job, &chunks);
        Ok(chunks)
    }

    /// Chunks a file as a stream (a large one), or packs anew chunks of the store.
    fn chunk_file(&mut self, packer: &mut Packer<'_>, job: &FileJob) -> Result<PendingChunks, PersistError> {
        let (abs, stamp) = match &job.from {
            FileSource::Path { abs, stamp } => (abs, stamp),
            FileSource::Stored(refs) => {
                let frames = FrameIndex::of(refs);
                for r in refs {
                    let data = self.store.read_chunk(r, &frames)?;
                    self.add_chunk(packer, r.id, &data, false)?;
                }
                return Ok(refs.iter().map(|r| (r.id, r.len)).collect());
            }
        };
        let file = self.root.open_file(abs, stamp)?;
        let mut chunks = Vec::new();
        let mut failure = None;
        chunk_stream(file, |chunk| {
            chunks.push((chunk.id, chunk.data.len() as u32));
            self.add_chunk(packer, chunk.id, chunk.data, job.repack)
                .map_err(|e| {
                    failure = Some(e);
                    io::Error::other("store failure")
                })
        })
        .map_err(|e| failure.take().unwrap_or_else(|| source_err(abs)(e)))?;
        self.remember(job, &chunks);
        Ok(chunks)
    }

    /// Remembers a source file read whole as `chunks` for the stat cache,
    /// unless it changed while being read or may still change unseen.
    fn remember(&mut self, job: &FileJob, chunks: &PendingChunks) {
        let FileSource::Path { abs, stamp } = &job.from else {
            return;
        };
        let size: u64 = chunks.iter().map(|c| u64::from(c.1)).sum();
        if size != stamp.size {
            tracing::warn!(file = %abs.display(), "file changed while being persisted");
        } else if self.stat_cache && stamp.ctime < self.racy_after {
            self.stamps
                .push((abs.as_os_str().as_bytes().to_vec(), *stamp, job.entry));
        }
    }

    /// Adds a chunk to the layer: one it or the store already has (unless
    /// `repack`: see [`layout`]), or a new one, which goes to the packer.
    fn add_chunk(
        &mut self,
        packer: &mut Packer<'_>,
        id: ChunkId,
        data: &[u8],
        repack: bool,
    ) -> Result<(), PersistError> {
        if self.has(&id, repack) {
            return Ok(());
        }
        let indexed = match repack {
            true => None,
            false => self.store.db().chunk(&id)?,
        };
        self.add_indexed(packer, id, Cow::Borrowed(data), indexed, repack)
    }

    /// [`LayerBuilder::add_chunk`] of a chunk already looked up in the store's index.
    fn add_indexed(
        &mut self,
        packer: &mut Packer<'_>,
        id: ChunkId,
        data: Cow<'_, [u8]>,
        indexed: Option<ChunkRef>,
        repack: bool,
    ) -> Result<(), PersistError> {
        if self.has(&id, repack) {
            return Ok(());
        }
        if let Some(known) = indexed.filter(|r| !repack && !self.avoid.contains(&r.loc.pack)) {
            self.known.insert(id, known);
            return Ok(());
        }
        self.new_bytes += data.len() as u64;
        self.new.insert(id);
        packer.add(id, data.into_owned()).map_err(|()| {
            // `Packer::finish` reports why.
            self.packer_stopped = true;
            StoreError::Internal("the packer stopped".into()).into()
        })
    }

    /// Whether the layer already has chunk `id`: new, or (unless `repack`) known.
    fn has(&self, id: &ChunkId, repack: bool) -> bool {
        self.new.contains(id) || (!repack && self.known.contains_key(id))
    }

    fn finish(mut self, target: &Target<'_>, new_refs: Vec<ChunkRef>) -> Result<Built, PersistError> {
        self.known.extend(new_refs.iter().map(|r| (r.id, *r)));
        let (mut files, mut bytes) = (0, 0);
        let mut entries = Vec::with_capacity(self.entries.len());
        for (mut entry, chunks) in self.entries {
            if let (EntryKind::File(data), Some(chunks)) = (&mut entry.kind, chunks) {
                data.chunks = chunks
                    .iter()
                    .map(|(id, _)| self.known.get(id).copied())
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        StoreError::Internal(format!(
                            "no location for a chunk of {}",
                            String::from_utf8_lossy(&entry.path)
                        ))
                    })?;
                data.size = chunks.iter().map(|c| u64::from(c.1)).sum();
                files += 1;
                bytes += data.size;
            }
            entries.push(entry);
        }
        let manifest = Manifest { entries };
        let (layer, manifest_bytes) = self.store.put_manifest(&manifest)?;
        let checked = Instant::now();
        let packs = manifest.packs();
        let claims = guard::Claims {
            layer,
            manifest: &manifest,
            packs: &packs,
            layer_uploaded: manifest_bytes > 0,
        };
        let refused = |verdict| Built::Refused {
            verdict,
            layer,
            packs: packs.clone(),
            stored_bytes: self.stored_bytes + manifest_bytes,
        };
        let verdict = guard::check(self.store, &claims, false)?;
        if !verdict.clean() {
            return Ok(refused(verdict));
        }
        crash::point("persist.checked");
        self.store.db().put_chunks(&new_refs)?;
        crash::point("persist.chunks-indexed");
        let stamped = self.stamps.iter().filter_map(|(path, stamp, index)| {
            let entry = &manifest.entries[*index];
            match &entry.kind {
                EntryKind::File(data) => Some((&path[..], stamp, &data.chunks[..], &entry.meta.xattrs[..])),
                _ => None,
            }
        });
        self.store.db().put_cached_files(stamped)?;
        crash::point("persist.files-cached");
        target.still_wanted()?;
        let record = LayerRecord {
            layer,
            persisted_at_ms: unix_time::now_millis(),
            host: target.host.to_string(),
            files,
            bytes,
        };
        let guard = self.store.append_guard();
        let key = workspace::append(self.store, target.workspace, &record)?;
        crash::point("persist.record-put");
        let stack = workspace::stack(self.store, target.workspace);
        drop(guard);
        if checked.elapsed() > gc::PERSIST_BOUND {
            let verdict = guard::check(self.store, &claims, true)?;
            if !verdict.clean() {
                self.store.remote().delete(&key)?;
                return Ok(refused(verdict));
            }
        }
        let overrode = stack
            .and_then(|stack| overrides::find(self.store, &stack, &key, target.base, &manifest))
            .unwrap_or_else(|e| {
                tracing::warn!(workspace = %target.workspace, error = %e, "cannot tell which paths the new layer overrode");
                Vec::new()
            });
        Ok(Built::Landed(PersistOutcome {
            layer,
            files,
            bytes,
            new_bytes: self.new_bytes,
            stored_bytes: self.stored_bytes + manifest_bytes,
            deleted: self.deleted,
            skipped: self.skipped,
            overrode,
        }))
    }
}

#[cfg(test)]
mod tests;
