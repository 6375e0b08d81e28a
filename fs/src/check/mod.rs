//! Checking the remote: what every workspace references is there and whole.
//!
//! Every workspace record's layer must exist, match its id and decode; every
//! frame its files reference, followed through relocation records where gc
//! rewrote a pack, must lie in a pack that exists and whose index decodes
//! and lists the chunks the layer places there. With `read_data`, each such
//! pack is fetched whole: its bytes must hash to its id, and every chunk
//! the layers reference must decompress from its frame and match its id.
//!
//! A pack found corrupt is marked ([`corrupt`]) so that no host's persist
//! references it again, and this host's local index forgets its chunks.
//! Each broken object is reported with the layers and workspaces that
//! depend on it.

pub mod corrupt;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use thiserror::Error;

use crate::error::{PackError, StoreError};
use crate::gc::live::locate;
use crate::gc::{read_relocations, Object};
use crate::ids::{ChunkId, LayerId, PackId};
use crate::keys;
use crate::manifest::{ChunkLocation, ChunkRef};
use crate::pack::{
    chunk_in_frame, decode_frame, decode_index, index_of, parse_footer, Relocation, FOOTER_LEN, MAX_PACK_LEN,
};
use crate::store::remote::Listed;
use crate::store::Store;
use crate::workers;
use crate::workspace::{self, WorkspaceName};

/// Layers fetched, or packs checked by index, at once.
const CONCURRENCY: usize = 16;
/// Packs fetched whole at once (each up to 64 MiB in memory).
const WHOLE_PACKS_AT_ONCE: usize = 4;

/// What to check.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions<'a> {
    /// Also fetch every referenced pack whole and verify its bytes and chunks.
    pub read_data: bool,
    /// This host's name, for the markers of corrupt packs.
    pub host: &'a str,
}

/// The part of a check under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Fetching and decoding the layers the workspaces name.
    Layers,
    /// Checking the packs those layers reference.
    Packs,
}

impl Phase {
    /// Its name in progress reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Layers => "layers",
            Phase::Packs => "packs",
        }
    }
}

/// Progress of a check, reported after each layer and each pack.
#[derive(Clone, Copy, Debug)]
pub struct CheckProgress {
    /// The phase.
    pub phase: Phase,
    /// Objects of the phase checked.
    pub done: u64,
    /// Objects of the phase in all.
    pub total: u64,
    /// Stored bytes of those objects checked (packs; 0 for layers).
    pub bytes_done: u64,
    /// Stored bytes of those objects in all.
    pub bytes_total: u64,
}

/// What is wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Problem {
    /// It is not in the remote.
    #[error("missing from the remote")]
    Missing,
    /// Its bytes are not what its id promises, or do not decode.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// It decodes, but does not hold what the layers place in it.
    #[error("does not hold what layers reference: {0}")]
    Mismatch(String),
    /// An earlier check found it corrupt; not verified again by this one.
    #[error("marked corrupt by an earlier check: {0}; `wsfs check --read-data` verifies it again")]
    MarkedCorrupt(String),
}

impl Problem {
    /// A stable short name: `missing`, `corrupt`, `mismatch` or `marked-corrupt`.
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::Corrupt(_) => "corrupt",
            Problem::Mismatch(_) => "mismatch",
            Problem::MarkedCorrupt(_) => "marked-corrupt",
        }
    }
}

/// A broken object and what depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// Its remote key: `layers/<id>`, `packs/<id>` or `relocations/<id>`.
    pub key: String,
    /// What is wrong.
    pub problem: Problem,
    /// The layers that reference it (a broken layer: itself), sorted.
    pub layers: Vec<LayerId>,
    /// The workspaces whose records name those layers, sorted.
    pub workspaces: Vec<WorkspaceName>,
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Workspaces checked.
    pub workspaces: usize,
    /// Distinct layers their records name.
    pub layers: usize,
    /// Packs holding the frames those layers reference.
    pub packs: usize,
    /// Distinct chunks (by place) in those packs that the layers reference.
    pub chunks: u64,
    /// Bytes of packs fetched (indexes, or whole packs with `read_data`).
    pub pack_bytes_read: u64,
    /// Every broken object, sorted by key.
    pub broken: Vec<Broken>,
    /// Packs this check marked corrupt.
    pub marked: Vec<PackId>,
    /// Packs marked corrupt before that verified whole: their marker was removed.
    pub unmarked: Vec<PackId>,
    /// Entries of this host's local index (chunks, stat cache) dropped
    /// because they pointed into a missing or corrupt pack.
    pub forgotten: usize,
}

/// What the layers need of one frame, where it is now.
#[derive(Debug, Default)]
struct FrameNeed {
    /// Compressed length.
    len: u32,
    plain_len: u32,
    /// Chunks: offset in the frame, length, id.
    chunks: BTreeSet<(u32, u32, ChunkId)>,
    layers: BTreeSet<LayerId>,
}

/// Per pack, by offset, the frames the layers need in it.
type Needs = HashMap<PackId, BTreeMap<u64, FrameNeed>>;

/// What verifying one pack found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Whole,
    Broken(Problem),
}

/// Checks the remote (see the module documentation).
pub fn run(
    store: &Store,
    opts: &CheckOptions<'_>,
    progress: &(dyn Fn(&CheckProgress) + Sync),
) -> Result<CheckReport, StoreError> {
    // Listed in gc's order (packs, relocation records, workspace records), so
    // that a frame gc relocated meanwhile is found where it went.
    let stored: HashMap<PackId, u64> = listed(store, keys::PACKS, Object::pack)?.collect();
    let relocated: Vec<PackId> = listed(store, keys::RELOCATIONS, Object::relocated_pack)?
        .map(|(pack, _)| pack)
        .collect();
    let mut relocations = HashMap::new();
    let mut bad_records = Vec::new();
    for (pack, read) in read_relocations(store, &relocated)? {
        match read {
            Ok(relocation) => {
                relocations.insert(pack, relocation);
            }
            Err(e) => bad_records.push((pack, e)),
        }
    }
    let mut by_layer: BTreeMap<LayerId, BTreeSet<WorkspaceName>> = BTreeMap::new();
    for (ws, layer) in workspace::all_records(store)? {
        by_layer.entry(layer).or_default().insert(ws);
    }
    let mut findings = Findings::default();
    let layers: Vec<LayerId> = by_layer.keys().copied().collect();
    let refs = check_layers(store, &layers, &mut findings, progress)?;
    let stored_ids: HashSet<PackId> = stored.keys().copied().collect();
    let (needs, chunks) = place(refs, &relocations, &stored_ids, &mut findings);
    for (pack, e) in bad_records {
        let layers = needs.get(&pack).map(layers_of).unwrap_or_default();
        findings.add(keys::relocation(&pack), Problem::Corrupt(e.to_string()), layers);
    }
    let marked = corrupt::marked(store)?;
    let checked = check_packs(store, opts, &stored, &marked, &needs, &mut findings, progress)?;
    let mut report = CheckReport {
        workspaces: by_layer.values().flatten().collect::<HashSet<_>>().len(),
        layers: layers.len(),
        packs: needs.len(),
        chunks,
        pack_bytes_read: checked.bytes_read,
        ..CheckReport::default()
    };
    settle(store, opts, &checked.verdicts, &marked, &mut report)?;
    report.broken = findings.into_broken(&by_layer);
    Ok(report)
}

/// The objects listed under `prefix` that `id` takes, with their sizes.
fn listed<T>(
    store: &Store,
    prefix: &str,
    id: impl Fn(&Object) -> Option<T>,
) -> Result<impl Iterator<Item = (T, u64)>, StoreError> {
    let listed = store.remote().list(prefix)?;
    Ok(listed
        .into_iter()
        .filter_map(move |l| Some((id(&Object::parse(&l.key)?)?, l.size))))
}

/// Where the chunks `refs` are now, by pack and frame (see [`locate`]), and
/// how many distinct chunk placements that makes; a reference a relocation record cannot serve (its
/// frame length differs) is a finding against the record instead.
fn place(
    refs: Vec<(LayerId, ChunkRef)>,
    relocations: &HashMap<PackId, Relocation>,
    stored: &HashSet<PackId>,
    findings: &mut Findings,
) -> (Needs, u64) {
    let mut needs = Needs::new();
    for (layer, r) in refs {
        let at = locate(relocations, stored, r.loc.pack, r.loc.frame_offset);
        if let Some((old, moved)) = at.via.iter().find(|(_, m)| m.len != r.loc.frame_len) {
            let why = format!(
                "it moves a frame of {} bytes, which layers say has {} bytes",
                moved.len, r.loc.frame_len
            );
            findings.depends(keys::relocation(old), Problem::Mismatch(why), layer);
            continue;
        }
        let frame = needs.entry(at.pack).or_default().entry(at.offset).or_default();
        (frame.len, frame.plain_len) = (r.loc.frame_len, r.loc.frame_plain_len);
        frame.chunks.insert((r.loc.offset_in_frame, r.len, r.id));
        frame.layers.insert(layer);
    }
    let chunks = needs
        .values()
        .flat_map(|frames| frames.values())
        .map(|f| f.chunks.len() as u64)
        .sum();
    (needs, chunks)
}

/// Acts on the verdicts: marks the packs found corrupt, removes the marker
/// of marked packs that verified whole, and forgets locally every pack that
/// is missing or corrupt.
fn settle(
    store: &Store,
    opts: &CheckOptions<'_>,
    verdicts: &[(PackId, Verdict)],
    marked: &HashMap<PackId, Listed>,
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    let mut gone = HashSet::new();
    for (pack, verdict) in verdicts {
        match verdict {
            Verdict::Broken(Problem::Corrupt(why)) if !marked.contains_key(pack) => {
                corrupt::mark(store, pack, opts.host, why)?;
                tracing::warn!(%pack, problem = %why, "marked the pack corrupt");
                report.marked.push(*pack);
            }
            Verdict::Whole if opts.read_data && marked.contains_key(pack) => {
                corrupt::unmark(store, pack)?;
                tracing::info!(%pack, "a pack marked corrupt verified whole: marker removed");
                report.unmarked.push(*pack);
            }
            _ => {}
        }
        if let Verdict::Broken(Problem::Missing | Problem::Corrupt(_) | Problem::MarkedCorrupt(_)) = verdict {
            gone.insert(*pack);
        }
    }
    report.forgotten = store.db().forget_packs(&gone)?;
    Ok(())
}

/// Broken objects found so far, by key.
#[derive(Default)]
struct Findings(BTreeMap<String, (Problem, BTreeSet<LayerId>)>);

impl Findings {
    fn add(&mut self, key: String, problem: Problem, layers: BTreeSet<LayerId>) {
        self.0.insert(key, (problem, layers));
    }

    /// Notes that `layer` depends on the broken object `key` (with `problem`).
    fn depends(&mut self, key: String, problem: Problem, layer: LayerId) {
        self.0
            .entry(key)
            .or_insert((problem, BTreeSet::new()))
            .1
            .insert(layer);
    }

    /// The findings with the workspaces that name their layers.
    fn into_broken(self, by_layer: &BTreeMap<LayerId, BTreeSet<WorkspaceName>>) -> Vec<Broken> {
        self.0
            .into_iter()
            .map(|(key, (problem, layers))| {
                let workspaces: BTreeSet<&WorkspaceName> =
                    layers.iter().filter_map(|l| by_layer.get(l)).flatten().collect();
                Broken {
                    key,
                    problem,
                    workspaces: workspaces.into_iter().cloned().collect(),
                    layers: layers.into_iter().collect(),
                }
            })
            .collect()
    }
}

/// Every layer that needs one of `frames`.
fn layers_of(frames: &BTreeMap<u64, FrameNeed>) -> BTreeSet<LayerId> {
    frames.values().flat_map(|f| f.layers.iter().copied()).collect()
}

/// Fetches every layer from the remote; returns the chunk references of
/// those that decode, each with its layer (distinct per layer).
fn check_layers(
    store: &Store,
    layers: &[LayerId],
    findings: &mut Findings,
    progress: &(dyn Fn(&CheckProgress) + Sync),
) -> Result<Vec<(LayerId, ChunkRef)>, StoreError> {
    let found = Mutex::new((Vec::new(), Vec::new(), 0u64));
    workers::for_each(layers, CONCURRENCY, |layer| {
        let outcome = match store.remote_manifest(layer) {
            Ok(manifest) => {
                let refs: HashSet<ChunkRef> = manifest.chunks().copied().collect();
                Ok(refs.into_iter().map(|r| (*layer, r)).collect::<Vec<_>>())
            }
            Err(StoreError::MissingLayer(_)) => Err(Problem::Missing),
            Err(e @ (StoreError::LayerDigest(_) | StoreError::Manifest { .. })) => {
                Err(Problem::Corrupt(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let mut found = found.lock().unwrap();
        match outcome {
            Ok(refs) => found.0.extend(refs),
            Err(problem) => found.1.push((*layer, problem)),
        }
        found.2 += 1;
        progress(&CheckProgress {
            phase: Phase::Layers,
            done: found.2,
            total: layers.len() as u64,
            bytes_done: 0,
            bytes_total: 0,
        });
        Ok(())
    })?;
    let (refs, broken, _) = found.into_inner().unwrap();
    for (layer, problem) in broken {
        findings.add(keys::layer(&layer), problem, BTreeSet::from([layer]));
    }
    Ok(refs)
}

/// The verdict on every pack checked, and the bytes read.
struct Checked {
    verdicts: Vec<(PackId, Verdict)>,
    bytes_read: u64,
}

/// Checks every pack of `needs`; a pack `marked` corrupt is verified again
/// only with `read_data`.
fn check_packs(
    store: &Store,
    opts: &CheckOptions<'_>,
    stored: &HashMap<PackId, u64>,
    marked: &HashMap<PackId, Listed>,
    needs: &Needs,
    findings: &mut Findings,
    progress: &(dyn Fn(&CheckProgress) + Sync),
) -> Result<Checked, StoreError> {
    let mut packs: Vec<(&PackId, &BTreeMap<u64, FrameNeed>)> = needs.iter().collect();
    packs.sort_by_key(|(id, _)| **id);
    let size = |id: &PackId| stored.get(id).copied().unwrap_or(0);
    let bytes_total = packs.iter().map(|(id, _)| size(id)).sum();
    let state = Mutex::new((Vec::new(), 0u64, 0u64, 0u64));
    let threads = if opts.read_data {
        WHOLE_PACKS_AT_ONCE
    } else {
        CONCURRENCY
    };
    workers::for_each(&packs, threads, |&(id, frames)| {
        let (verdict, read) = match stored.get(id) {
            None => (Verdict::Broken(Problem::Missing), 0),
            Some(_) if marked.contains_key(id) && !opts.read_data => {
                let why = corrupt::reason(store, id)?.unwrap_or_else(|| "no reason given".into());
                (Verdict::Broken(Problem::MarkedCorrupt(why)), 0)
            }
            Some(_) if opts.read_data => verify_whole(store, *id, frames)?,
            Some(&len) => verify_index(store, *id, len, frames)?,
        };
        let mut state = state.lock().unwrap();
        state.0.push((*id, verdict));
        state.1 += read;
        state.2 += 1;
        state.3 += size(id);
        progress(&CheckProgress {
            phase: Phase::Packs,
            done: state.2,
            total: packs.len() as u64,
            bytes_done: state.3,
            bytes_total,
        });
        Ok::<_, StoreError>(())
    })?;
    let (mut verdicts, bytes_read, _, _) = state.into_inner().unwrap();
    verdicts.sort_by_key(|(id, _)| *id);
    for (id, verdict) in &verdicts {
        if let Verdict::Broken(problem) = verdict {
            findings.add(keys::pack(id), problem.clone(), layers_of(&needs[id]));
        }
    }
    Ok(Checked { verdicts, bytes_read })
}

/// Checks pack `id` (`len` bytes) by its footer and index alone: two ranged GETs.
fn verify_index(
    store: &Store,
    id: PackId,
    len: u64,
    frames: &BTreeMap<u64, FrameNeed>,
) -> Result<(Verdict, u64), StoreError> {
    let key = keys::pack(&id);
    // `None`: the pack is gone. An empty range (a lying footer) asks nothing.
    let get = |range: std::ops::Range<u64>| match range.is_empty() {
        true => Ok(Some(bytes::Bytes::new())),
        false => match store.remote().get_range(&key, range) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::Remote { not_found: true, .. }) => Ok(None),
            Err(e) => Err(e),
        },
    };
    let missing = Verdict::Broken(Problem::Missing);
    let corrupt = |e: PackError| Verdict::Broken(Problem::Corrupt(e.to_string()));
    let Some(footer) = get(len.saturating_sub(FOOTER_LEN as u64)..len)? else {
        return Ok((missing, 0));
    };
    let mut read = footer.len() as u64;
    let footer = match parse_footer(id, &footer, len) {
        Ok(footer) => footer,
        Err(e) => return Ok((corrupt(e), read)),
    };
    let Some(index) = get(footer.index_offset..footer.index_offset + u64::from(footer.index_len))? else {
        return Ok((missing, read));
    };
    read += index.len() as u64;
    let verdict = match decode_index(id, &footer, &index) {
        Ok(index) => covers(&index, frames),
        Err(e) => corrupt(e),
    };
    Ok((verdict, read))
}

/// Checks pack `id` fetched whole: its bytes against its id, its index, and
/// every chunk `frames` place in it against the chunk's id.
fn verify_whole(
    store: &Store,
    id: PackId,
    frames: &BTreeMap<u64, FrameNeed>,
) -> Result<(Verdict, u64), StoreError> {
    let Some(bytes) = store.remote().get(&keys::pack(&id), MAX_PACK_LEN)? else {
        return Ok((Verdict::Broken(Problem::Missing), 0));
    };
    Ok((judge_whole(id, &bytes, frames), bytes.len() as u64))
}

/// The verdict on the whole pack `bytes` of `id`.
fn judge_whole(id: PackId, bytes: &[u8], frames: &BTreeMap<u64, FrameNeed>) -> Verdict {
    let (mut bad, mut first) = (0, None);
    let mut note = |chunks: usize, e: PackError| {
        bad += chunks;
        first.get_or_insert(e.to_string());
    };
    for (&offset, frame) in frames {
        let loc = ChunkLocation {
            pack: id,
            frame_offset: offset,
            frame_len: frame.len,
            frame_plain_len: frame.plain_len,
            offset_in_frame: 0,
        };
        let compressed = usize::try_from(offset)
            .ok()
            .and_then(|start| bytes.get(start..start.checked_add(frame.len as usize)?));
        let plain = compressed
            .ok_or_else(|| PackError::Frame(id, offset, "past the end of the pack".into()))
            .and_then(|c| decode_frame(c, &loc));
        match plain {
            Ok(plain) => {
                for &(offset_in_frame, len, chunk) in &frame.chunks {
                    let at = ChunkLocation {
                        offset_in_frame,
                        ..loc
                    };
                    if let Err(e) = chunk_in_frame(&plain, &chunk, len, &at) {
                        note(1, e);
                    }
                }
            }
            Err(e) => note(frame.chunks.len(), e),
        }
    }
    let total: usize = frames.values().map(|f| f.chunks.len()).sum();
    let mut why = Vec::new();
    if PackId::of(bytes) != id {
        why.push("its bytes do not hash to its id".to_string());
    }
    if let Some(first) = first {
        why.push(format!(
            "{bad} of {total} referenced chunks do not verify (first: {first})"
        ));
    }
    let index = index_of(id, bytes);
    if let Err(e) = &index {
        why.push(e.to_string());
    }
    if !why.is_empty() {
        return Verdict::Broken(Problem::Corrupt(why.join("; ")));
    }
    covers(&index.expect("checked above").1, frames)
}

/// Whether a pack's index lists every chunk `frames` place in the pack.
fn covers(index: &[(u32, ChunkLocation)], frames: &BTreeMap<u64, FrameNeed>) -> Verdict {
    let listed: HashSet<(u64, u32, u32, u32, u32)> = index
        .iter()
        .map(|(len, l)| {
            (
                l.frame_offset,
                l.frame_len,
                l.frame_plain_len,
                l.offset_in_frame,
                *len,
            )
        })
        .collect();
    let listed = &listed;
    let mut lacking = frames.iter().flat_map(|(&offset, f)| {
        f.chunks
            .iter()
            .filter(move |&&(at, len, _)| !listed.contains(&(offset, f.len, f.plain_len, at, len)))
            .map(move |&(_, _, chunk)| (offset, chunk))
    });
    match lacking.next() {
        None => Verdict::Whole,
        Some((offset, chunk)) => Verdict::Broken(Problem::Mismatch(format!(
            "its index lacks {} chunks layers place in it (first: chunk {chunk} in the frame at offset {offset})",
            1 + lacking.count()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::PackWriter;
    use crate::store::testing::{persist_all, remote_dir, store_in, write_file};

    /// A pack of `n` chunks of 100 kB each: its id, bytes and chunk refs.
    fn sample_pack(n: u8) -> (PackId, Vec<u8>, Vec<ChunkRef>) {
        let mut w = PackWriter::new().unwrap();
        for i in 0..n {
            let data: Vec<u8> = (0..100_000u32)
                .map(|j| (j.wrapping_mul(31) >> 5) as u8 ^ i)
                .collect();
            w.add(ChunkId::of(&data), &data).unwrap();
        }
        let sealed = w.finish().unwrap().unwrap();
        let refs = sealed.refs().collect();
        (sealed.id, sealed.bytes, refs)
    }

    /// What `refs` need of their pack, all in one layer.
    fn needs_of(refs: &[ChunkRef]) -> BTreeMap<u64, FrameNeed> {
        let mut frames: BTreeMap<u64, FrameNeed> = BTreeMap::new();
        for r in refs {
            let f = frames.entry(r.loc.frame_offset).or_default();
            (f.len, f.plain_len) = (r.loc.frame_len, r.loc.frame_plain_len);
            f.chunks.insert((r.loc.offset_in_frame, r.len, r.id));
            f.layers.insert(LayerId::of(b"layer"));
        }
        frames
    }

    fn code(verdict: &Verdict) -> &'static str {
        match verdict {
            Verdict::Whole => "whole",
            Verdict::Broken(problem) => problem.code(),
        }
    }

    #[test]
    fn a_whole_pack_verifies_and_a_damaged_one_or_a_lying_layer_does_not() {
        let (id, bytes, refs) = sample_pack(30);
        let frames = needs_of(&refs);
        assert!(frames.len() > 1, "several frames");
        assert_eq!(judge_whole(id, &bytes, &frames), Verdict::Whole);

        let mut flipped = bytes.clone();
        flipped[refs[0].loc.frame_len as usize / 2] ^= 1;
        let Verdict::Broken(Problem::Corrupt(why)) = judge_whole(id, &flipped, &frames) else {
            panic!("a flipped byte in the first frame went unnoticed");
        };
        assert!(
            why.contains("do not hash to its id") && why.contains("do not verify"),
            "{why}"
        );
        // Only chunks of the first frame fail; the others still verify.
        let total = refs.len();
        assert!(why.contains(&format!(" of {total} referenced")), "{why}");
        assert!(!why.contains(&format!("{total} of {total}")), "{why}");

        let mut tail_flipped = bytes.clone();
        let last = tail_flipped.len() - 30;
        tail_flipped[last] ^= 1;
        let verdict = judge_whole(id, &tail_flipped, &frames);
        assert_eq!(code(&verdict), "corrupt", "{verdict:?}");

        let index = index_of(id, &bytes).unwrap().1;
        assert_eq!(covers(&index, &frames), Verdict::Whole);
        let mut lying = needs_of(&refs);
        let frame = lying.values_mut().next().unwrap();
        let (at, len, chunk) = *frame.chunks.iter().next().unwrap();
        frame.chunks.insert((at + 1, len - 1, chunk));
        let Verdict::Broken(Problem::Mismatch(why)) = covers(&index, &lying) else {
            panic!("a chunk the index lacks went unnoticed");
        };
        assert!(
            why.contains("lacks 1 chunks") && why.contains(&chunk.to_hex()),
            "{why}"
        );
    }

    fn check(store: &Store, read_data: bool) -> CheckReport {
        let opts = CheckOptions {
            read_data,
            host: "test",
        };
        run(store, &opts, &|_| {}).unwrap()
    }

    /// A flipped byte: found by `read_data` (not by the index), marked,
    /// forgotten locally; a persist of the same files stores them anew
    /// elsewhere; the pack restored, the marker goes.
    #[test]
    fn a_corrupt_pack_is_marked_forgotten_and_never_referenced_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        let src = dir.path().join("src");
        for i in 0..4 {
            write_file(&src.join(format!("d/f{i}")), i, 700_000);
        }
        let first = persist_all(&store, &src, "t/one");
        let ws: WorkspaceName = "t/one".parse().unwrap();
        let packs = store.manifest(&first.layer).unwrap().packs();
        assert_eq!(packs.len(), 1);
        let pack = *packs.iter().next().unwrap();
        for read_data in [false, true] {
            let report = check(&store, read_data);
            assert!(report.broken.is_empty(), "{report:?}");
            assert_eq!((report.workspaces, report.layers, report.packs), (1, 1, 1));
        }

        let file = remote_dir(dir.path()).join(keys::pack(&pack));
        let whole = std::fs::read(&file).unwrap();
        let mut flipped = whole.clone();
        flipped[100] ^= 0x40;
        std::fs::write(&file, &flipped).unwrap();
        assert!(check(&store, false).broken.is_empty(), "the index alone decodes");
        let report = check(&store, true);
        assert_eq!(report.broken.len(), 1, "{report:?}");
        let broken = &report.broken[0];
        assert_eq!(
            (broken.key.as_str(), broken.problem.code()),
            (keys::pack(&pack).as_str(), "corrupt")
        );
        assert_eq!(
            (broken.layers.clone(), broken.workspaces.clone()),
            (vec![first.layer], vec![ws.clone()])
        );
        assert_eq!(report.marked, [pack]);
        assert!(report.forgotten > 0, "{report:?}");
        let again = check(&store, false);
        assert_eq!(again.broken[0].problem.code(), "marked-corrupt", "{again:?}");
        assert!(again.marked.is_empty(), "marked once");

        let second = persist_all(&store, &src, "t/one");
        assert_eq!(second.new_bytes, first.new_bytes, "stored anew");
        let new_packs = store.manifest(&second.layer).unwrap().packs();
        assert!(
            !new_packs.contains(&pack),
            "the new layer avoids the corrupt pack"
        );

        std::fs::write(&file, &whole).unwrap();
        let healed = check(&store, true);
        assert!(healed.broken.is_empty(), "{healed:?}");
        assert_eq!(healed.unmarked, [pack]);
        assert!(corrupt::marked(&store).unwrap().is_empty());
    }
}
