//! The measurements. Every wsfs number is compared with a baseline measured
//! in the same run, on the same tree; short things run `runs` times.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use rand::{rngs::StdRng, Rng as _, SeedableRng};
use serde_json::{json, Value};

use crate::corpus::{FileEntry, Tree};
use crate::host::{field, Bins, Host};
use crate::peers;
use crate::read::{self, Read};
use crate::report::{bytes, time, Qty, Row, Samples, Target};

/// The workspace the tree is persisted to.
const WS: &str = "bench/tree";
/// The workspace of the re-persist (so the attached workspace keeps one layer).
const AGAIN: &str = "bench/again";
/// Attach fetching nothing ahead of readers, not even the files of the access trace.
pub const NO_PREFETCH: &str = "--no-prefetch";
/// Share of the files read for the "bytes fetched" measurements (and by the
/// pipeline's partial consumers).
pub const SAMPLE_PERCENT: usize = 5;

/// How to run.
pub struct Config<'a> {
    /// The wsfs binaries.
    pub bins: &'a Bins,
    /// A scratch directory, removed by the caller.
    pub work: PathBuf,
    /// Repetitions of each short measurement.
    pub runs: usize,
    /// Seed of the random file sample.
    pub seed: u64,
    /// Whether to try dropping the kernel caches for a cold native read.
    pub drop_caches: bool,
    /// When the benchmark started (for progress lines).
    pub started: Instant,
    next: Cell<usize>,
}

impl<'a> Config<'a> {
    /// A configuration; see the fields.
    pub fn new(bins: &'a Bins, work: PathBuf, runs: usize, seed: u64, drop_caches: bool) -> Config<'a> {
        Config {
            bins,
            work,
            runs,
            seed,
            drop_caches,
            started: Instant::now(),
            next: Cell::new(0),
        }
    }

    /// A new host with its own state dir, sharing `remote`.
    pub fn host(&self, remote: &Path) -> Result<Host> {
        Host::fresh(self.bins, self.fresh_dir("host")?, remote)
    }

    /// A new host with its own state dir, storing to the remote URL `remote`
    /// reached with the environment `env` (see [`Host::on`]).
    pub fn host_on(&self, remote: &str, env: &[(String, String)]) -> Result<Host> {
        Ok(Host::on(
            self.bins,
            self.fresh_dir("host")?,
            remote.into(),
            env.to_vec(),
        ))
    }

    /// A new, empty directory `NAME-N` in the scratch dir (see [`new_dir`]).
    pub fn fresh_dir(&self, name: &str) -> Result<PathBuf> {
        let n = self.next.replace(self.next.get() + 1);
        new_dir(&self.work.join(format!("{name}-{n}")))
    }

    /// Prints a progress line on stderr.
    pub fn progress(&self, what: &str) {
        eprintln!("[{:6.1}s] {what}", self.started.elapsed().as_secs_f64());
    }

    /// Prints a progress line for run `run` of `what`.
    pub fn progress_run(&self, what: &str, run: usize) {
        self.progress(&format!("{what} ({}/{})", run + 1, self.runs));
    }
}

/// The result of [`suite`] (empty when it did not run), which later phases extend.
#[derive(Default)]
pub struct Outcome {
    /// The table.
    pub rows: Vec<Row>,
    /// Breakdowns and side facts, one line each.
    pub details: Vec<String>,
    /// The same facts for `--json`.
    pub facts: Value,
    /// Cold attach until the first byte (for the scale table).
    pub attach: Samples,
    /// Extraction of the tar.zst (for the scale table).
    pub extract: Samples,
}

/// Timings of every run.
#[derive(Default)]
struct Times {
    tar1: Samples,
    tar0: Samples,
    persist: Samples,
    again: Samples,
    extract: Samples,
    extract_read: Samples,
    native_warm: Samples,
    native_cold: Samples,
    attach_cmd: Samples,
    attach_first: Samples,
    cold: Samples,
    attach_read: Samples,
    next_run: Samples,
    warm: Samples,
    daemon_start: Samples,
    attach_alone: Samples,
    stat_walk: Samples,
}

/// Counters and sizes seen in the last run (`new_bytes` over all runs).
#[derive(Default)]
struct Seen {
    stored_reported: u64,
    new_bytes: u64,
    persist_status: Value,
    again_status: Value,
    remote: Vec<(String, u64)>,
    archive_bytes: u64,
    dropped: bool,
    attach_status: Value,
    cold_status: Value,
    warm_status: Value,
    /// Bytes fetched reading each of [`patterns`], each on a fresh host.
    fetched: Vec<u64>,
}

impl Seen {
    fn stored(&self) -> u64 {
        self.remote.iter().map(|(_, b)| b).sum()
    }
}

/// Runs every measurement on `tree`: `cfg.runs` interleaved runs (so that load
/// from elsewhere hits wsfs and its baselines alike), then attach split in two
/// and the 5% read patterns.
pub fn suite(cfg: &Config, tree: &Tree) -> Result<Outcome> {
    let (mut t, mut seen, mut remote) = (Times::default(), Seen::default(), PathBuf::new());
    for run in 0..cfg.runs {
        remote = one_run(cfg, tree, run, &mut t, &mut seen)?;
    }
    // Daemon start, then attach proper, on fresh hosts (of the last run's
    // remote); the last one then reads the random 5% sample. These attaches
    // fetch nothing ahead (the cold read above left a trace of every file):
    // the patterns measure what lazy reads fetch with no history.
    let mut last = None;
    for run in 0..cfg.runs {
        cfg.progress_run("wsfs daemon start, attach; then a 5% sample", run);
        let host = cfg.host(&remote)?;
        push(&mut t.daemon_start, || host.status())?;
        let mountpoint = push(&mut t.attach_alone, || host.attach_with(WS, &[NO_PREFETCH]))?;
        last = Some((host, mountpoint));
    }
    seen.attach_status = last.as_ref().expect("runs ≥ 1").0.status()?;
    let patterns = patterns(tree, cfg.seed);
    for pattern in &patterns {
        // The first pattern on the last host above, each other one on a fresh host.
        let (host, mountpoint) = match last.take() {
            Some(attached) => attached,
            None => {
                cfg.progress(&format!("wsfs attach; then {}", pattern.name));
                let host = cfg.host(&remote)?;
                let mountpoint = host.attach_with(WS, &[NO_PREFETCH])?;
                (host, mountpoint)
            }
        };
        pattern.read_under(&mountpoint)?;
        seen.fetched.push(field(&host.status()?, "remote_bytes_fetched")?);
    }
    cfg.progress("native stat walk");
    for _ in 0..cfg.runs {
        push(&mut t.stat_walk, || read::stat_tree(&tree.root))?;
    }
    Ok(Outcome {
        details: details(&t, &seen, tree, &patterns)?,
        facts: facts(&t, &seen, tree, &patterns),
        rows: rows(&t, &seen, tree, &patterns),
        attach: t.attach_first,
        extract: t.extract,
    })
}

/// The table's rows.
fn rows(t: &Times, seen: &Seen, tree: &Tree, patterns: &[Pattern]) -> Vec<Row> {
    let probe = tree.probe();
    let (cold_base, cold_how) = if seen.dropped {
        (&t.native_cold, "native read, caches dropped")
    } else {
        (&t.native_warm, "native read, page cache warm: drop_caches failed")
    };
    let tar1 = "tar -c | zstd -3 -T1";
    let mut rows = vec![
        Row::times(
            "persist (fresh state dir)",
            &t.persist,
            &t.tar1,
            tar1,
            Target::None,
        )
        .headline(),
        Row::times(
            "persist, vs multi-threaded zstd",
            &t.persist,
            &t.tar0,
            "tar -c | zstd -3 -T0",
            Target::None,
        ),
        Row::times(
            "re-persist, unchanged tree",
            &t.again,
            &t.tar1,
            tar1,
            Target::Faster(10.0),
        )
        .headline(),
        Row {
            name: "re-persist, new bytes".into(),
            wsfs: Qty::Bytes(seen.new_bytes),
            baseline: None,
            target: Target::Zero,
            headline: false,
        },
        Row::times(
            format!(
                "cold attach → first byte of one file (fresh state dir, {} dirs deep)",
                depth(&probe.path)
            ),
            &t.attach_first,
            &t.extract,
            "zstd -d | tar -x",
            Target::Faster(100.0),
        )
        .headline(),
        Row::times(
            "full read, cold (first read through the mount; remote in page cache)",
            &t.cold,
            cold_base,
            cold_how,
            Target::None,
        ),
        Row::times(
            "full read, warm (second read)",
            &t.warm,
            &t.native_warm,
            "native read, page cache warm",
            Target::AtMost(1.2),
        )
        .headline(),
        Row::times(
            "cold attach + full read (first run: no access trace)",
            &t.attach_read,
            &t.extract_read,
            "extract + native read",
            Target::AtMost(1.0),
        )
        .headline(),
        Row::times(
            "cold attach + full read, next run (no flag: fetching ahead what the last run read)",
            &t.next_run,
            &t.extract_read,
            "extract + native read",
            Target::AtMost(1.0),
        )
        .headline(),
    ];
    rows.extend(patterns.iter().zip(&seen.fetched).map(|(pattern, &fetched)| {
        Row::new(
            format!(
                "bytes fetched reading {} ({}, fresh state dir)",
                pattern.name, pattern.read.files
            ),
            Qty::Bytes(fetched),
            Qty::Bytes(seen.stored()),
            "stored bytes",
            Target::None,
        )
    }));
    rows.push(
        Row::new(
            "stored bytes (remote dir)",
            Qty::Bytes(seen.stored()),
            Qty::Bytes(seen.archive_bytes),
            "tar.zst, zstd -3",
            Target::AtMost(1.0),
        )
        .headline(),
    );
    rows
}

/// Breakdowns and evidence, one line each.
fn details(t: &Times, seen: &Seen, tree: &Tree, patterns: &[Pattern]) -> Result<Vec<String>> {
    let probe = tree.probe();
    let (attach, cold, warm) = (&seen.attach_status, &seen.cold_status, &seen.warm_status);
    let n = |v: &Value, key: &str| field(v, key);
    let hits_cold = n(cold, "cache_hits")? - n(attach, "cache_hits")?;
    let misses_cold = n(cold, "cache_misses")? - n(attach, "cache_misses")?;
    let remote_parts: Vec<String> = seen
        .remote
        .iter()
        .map(|(k, b)| format!("{k} {}", bytes(*b)))
        .collect();
    let mut lines = vec![
        format!(
            "attach (medians): `wsfs attach` incl. daemon start {} (separately: daemon start {}, attach with \
             the daemon running {}), then first byte of {} ({}) {}; attach fetched {} in {} GETs",
            time(t.attach_cmd.median()),
            time(t.daemon_start.median()),
            time(t.attach_alone.median()),
            probe.path.display(),
            bytes(probe.size),
            time(t.attach_first.median().saturating_sub(t.attach_cmd.median())),
            bytes(n(attach, "remote_bytes_fetched")?),
            n(attach, "remote_get_requests")?,
        ),
        format!(
            "per run: zstd -d | tar -x {}, extract + native read {}; cold attach → first byte {}, cold attach + \
             full read {}, the same on the next run {}",
            t.extract.runs(),
            t.extract_read.runs(),
            t.attach_first.runs(),
            t.attach_read.runs(),
            t.next_run.runs(),
        ),
        format!(
            "cold full read: {} GETs, {} fetched; {misses_cold} chunk reads missed the local caches, {hits_cold} \
             were served from them",
            n(cold, "remote_get_requests")? - n(attach, "remote_get_requests")?,
            bytes(n(cold, "remote_bytes_fetched")? - n(attach, "remote_bytes_fetched")?),
        ),
        format!(
            "warm full read: {} chunk reads still reached the daemon ({} hits, {} misses)",
            n(warm, "cache_hits")? + n(warm, "cache_misses")? - n(cold, "cache_hits")? - n(cold, "cache_misses")?,
            n(warm, "cache_hits")? - n(cold, "cache_hits")?,
            n(warm, "cache_misses")? - n(cold, "cache_misses")?,
        ),
        format!(
            "re-persist: {} PUTs, {} stored; a native stat walk of the tree takes {}",
            n(&seen.again_status, "remote_put_requests")? - n(&seen.persist_status, "remote_put_requests")?,
            bytes(n(&seen.again_status, "remote_bytes_stored")? - n(&seen.persist_status, "remote_bytes_stored")?),
            time(t.stat_walk.median()),
        ),
        format!(
            "stored: {}; persist reported stored_bytes {}",
            remote_parts.join(", "),
            bytes(seen.stored_reported)
        ),
        format!(
            "drop_caches for the cold native read: {}",
            if seen.dropped { "worked" } else { "not used or not permitted" }
        ),
    ];
    lines.extend(patterns.iter().zip(&seen.fetched).map(|(pattern, &fetched)| {
        let fetched = pattern.fetched(fetched, seen.stored());
        format!("{} (fresh state dir): {fetched}", pattern.describe())
    }));
    Ok(lines)
}

/// The side facts for `--json`.
fn facts(t: &Times, seen: &Seen, tree: &Tree, patterns: &[Pattern]) -> Value {
    let probe = tree.probe();
    let mut facts = json!({
        "probe": { "path": probe.path, "bytes": probe.size },
        "attach_command_ms": t.attach_cmd.median().as_secs_f64() * 1e3,
        "daemon_start_ms": t.daemon_start.median().as_secs_f64() * 1e3,
        "attach_daemon_running_ms": t.attach_alone.median().as_secs_f64() * 1e3,
        "status_after_attach": seen.attach_status,
        "status_after_cold_read": seen.cold_status,
        "status_after_warm_read": seen.warm_status,
        "status_after_repersist": seen.again_status,
        "persist_stored_bytes": seen.stored_reported,
        "remote_bytes": seen.remote.iter().map(|(k, b)| (k.clone(), json!(b))).collect::<serde_json::Map<_, _>>(),
        "tar_zst_bytes": seen.archive_bytes,
        "stat_walk_ms": t.stat_walk.median().as_secs_f64() * 1e3,
        "drop_caches_worked": seen.dropped,
    });
    for (pattern, &fetched) in patterns.iter().zip(&seen.fetched) {
        facts[pattern.key] = pattern.facts(fetched, seen.stored());
    }
    facts
}

/// One run of every timed measurement, baselines and wsfs side by side, in
/// a fresh directory; returns the run's remote.
fn one_run(cfg: &Config, tree: &Tree, run: usize, t: &mut Times, seen: &mut Seen) -> Result<PathBuf> {
    let expected = Read {
        files: tree.files.len() as u64,
        bytes: tree.bytes,
    };
    let dir = cfg.fresh_dir("run")?;
    let (archive, remote) = (dir.join("tree.tar.zst"), dir.join("remote"));

    // Persist and re-persist vs tar | zstd, all reading the tree from the page cache.
    cfg.progress_run("tar | zstd -T1, -T0; persist; re-persist", run);
    read::read_tree(&tree.root)?;
    push(&mut t.tar1, || peers::tar_zstd(&tree.root, &archive, 1))?;
    push(&mut t.tar0, || {
        peers::tar_zstd(&tree.root, &dir.join("t0.tar.zst"), 0)
    })?;
    let host = cfg.host(&remote)?;
    seen.stored_reported = field(
        &push(&mut t.persist, || host.persist(WS, &tree.root))?,
        "stored_bytes",
    )?;
    seen.persist_status = host.status()?;
    let again = push(&mut t.again, || host.persist(AGAIN, &tree.root))?;
    seen.new_bytes = seen.new_bytes.max(field(&again, "new_bytes")?);
    seen.again_status = host.status()?;
    drop(host);
    seen.archive_bytes = std::fs::metadata(&archive)?.len();
    seen.remote = ["packs", "layers", "workspaces"]
        .iter()
        .map(|k| Ok((k.to_string(), dir_bytes(&remote.join(k))?)))
        .collect::<Result<_>>()?;

    // Baselines: extract, read right after (extract + read), read again (warm), cold.
    cfg.progress_run("extract, native reads", run);
    let extracted = new_dir(&dir.join("extracted"))?;
    push(&mut t.extract, || peers::extract(&archive, &extracted))?;
    let start = Instant::now();
    check(read::read_tree(&extracted)?, expected, &extracted)?;
    t.extract_read
        .0
        .push(*t.extract.0.last().expect("pushed") + start.elapsed());
    check(
        push(&mut t.native_warm, || read::read_tree(&extracted))?,
        expected,
        &extracted,
    )?;
    if cfg.drop_caches && peers::drop_caches() {
        seen.dropped = true;
        check(
            push(&mut t.native_cold, || read::read_tree(&extracted))?,
            expected,
            &extracted,
        )?;
    }

    // wsfs: cold attach until the probe's first byte, then cold and warm full reads.
    cfg.progress_run("wsfs cold attach, first byte, cold read, warm read", run);
    // Back into the page cache after drop_caches: the remote (it stands for a
    // fast object store) and the binaries (so are zstd and tar).
    read::read_tree(&remote)?;
    read::read_files(Path::new("/"), cfg.bins.paths())?;
    let probe = &tree.probe().path;
    let host = cfg.host(&remote)?;
    let start = Instant::now();
    let mountpoint = host.attach(WS)?;
    let attached = start.elapsed();
    read::first_byte(&mountpoint.join(probe))?;
    let first = start.elapsed();
    let read = read::read_tree(&mountpoint)?;
    let cold = start.elapsed() - first;
    check(read, expected, &mountpoint)?;
    for (samples, d) in [
        (&mut t.attach_cmd, attached),
        (&mut t.attach_first, first),
        (&mut t.cold, cold),
        (&mut t.attach_read, first + cold),
    ] {
        samples.0.push(d);
    }
    seen.cold_status = host.status()?;
    check(
        push(&mut t.warm, || read::read_tree(&mountpoint))?,
        expected,
        &mountpoint,
    )?;
    seen.warm_status = host.status()?;
    // The next run's step, on a fresh host: it fetches ahead what this one
    // read (the access trace its detach keeps).
    host.detach(&mountpoint, false)?;
    drop(host);
    let next = cfg.host(&remote)?;
    let start = Instant::now();
    let mountpoint = next.attach(WS)?;
    check(read::read_tree(&mountpoint)?, expected, &mountpoint)?;
    t.next_run.0.push(start.elapsed());
    Ok(remote)
}

/// Cold attach until a first byte, vs extraction, on `tree` alone (for the
/// scale table). Returns (attach samples, extract samples).
pub fn attach_only(cfg: &Config, tree: &Tree) -> Result<(Samples, Samples)> {
    let dir = cfg.fresh_dir(&format!("scale-{}", tree.files.len()))?;
    let (archive, remote) = (dir.join("tree.tar.zst"), dir.join("remote"));
    peers::tar_zstd(&tree.root, &archive, 1)?;
    cfg.host(&remote)?.persist(WS, &tree.root)?;
    let probe = &tree.probe().path;
    let (mut attach, mut extract) = (Samples::default(), Samples::default());
    for run in 0..cfg.runs {
        cfg.progress_run(
            &format!("scale {} files: cold attach, extract", tree.files.len()),
            run,
        );
        let host = cfg.host(&remote)?;
        push(&mut attach, || read::first_byte(&host.attach(WS)?.join(probe)))?;
        drop(host);
        let extracted = new_dir(&dir.join(format!("extracted-{run}")))?;
        push(&mut extract, || peers::extract(&archive, &extracted))?;
    }
    Ok((attach, extract))
}

/// Times `f` once and adds the time to `samples`.
pub fn push<T>(samples: &mut Samples, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let value = f()?;
    samples.0.push(start.elapsed());
    Ok(value)
}

/// `k` distinct random indices of `tree.files` (at most all of them), in random order.
pub fn pick(tree: &Tree, k: usize, seed: u64) -> Vec<usize> {
    let n = tree.files.len();
    rand::seq::index::sample(&mut StdRng::seed_from_u64(seed), n, k.min(n)).into_vec()
}

/// The number of files in `SAMPLE_PERCENT`% of the tree (at least one).
fn sample_len(tree: &Tree) -> usize {
    (tree.files.len() * SAMPLE_PERCENT / 100).max(1)
}

/// A random `SAMPLE_PERCENT`% of the files (at least one), in walk order.
pub fn sample(tree: &Tree, seed: u64) -> Vec<&FileEntry> {
    let mut picked = pick(tree, sample_len(tree), seed);
    picked.sort_unstable();
    picked.into_iter().map(|i| &tree.files[i]).collect()
}

/// `SAMPLE_PERCENT`% of the files (at least one) in one run of walk order
/// from a random file on: the files of a few neighbouring directories, what
/// a CI step reading one package or one test's fixtures touches.
pub fn subtree(tree: &Tree, seed: u64) -> Vec<&FileEntry> {
    let k = sample_len(tree);
    let start = StdRng::seed_from_u64(seed).random_range(0..=tree.files.len() - k);
    tree.files[start..start + k].iter().collect()
}

/// Files read together on a fresh host, for the "bytes fetched" rows.
pub struct Pattern<'a> {
    /// In row names: "5% of the files", "a 5% subtree".
    pub name: String,
    /// Its key in the JSON facts.
    pub key: &'static str,
    /// The files, in walk order.
    pub files: Vec<&'a FileEntry>,
    /// What reading them covers.
    pub read: Read,
}

impl<'a> Pattern<'a> {
    fn new(name: String, key: &'static str, files: Vec<&'a FileEntry>) -> Pattern<'a> {
        let read = Read {
            files: files.len() as u64,
            bytes: files.iter().map(|f| f.size).sum(),
        };
        Pattern {
            name,
            key,
            files,
            read,
        }
    }

    /// Reads the files below `root` and checks the counts.
    pub fn read_under(&self, root: &Path) -> Result<()> {
        let read = read::read_files(root, self.files.iter().map(|f| f.path.as_path()))?;
        check(read, self.read, root)
    }

    /// `a 5% subtree: N files in M dirs, from `A` to `B``.
    pub fn describe(&self) -> String {
        let mut dirs: Vec<_> = self.files.iter().map(|f| f.path.parent()).collect();
        dirs.sort_unstable();
        dirs.dedup();
        let (first, last) = (self.files[0], self.files[self.files.len() - 1]);
        format!(
            "{}: {} files in {} dirs, from `{}` to `{}`",
            self.name,
            self.read.files,
            dirs.len(),
            first.path.display(),
            last.path.display(),
        )
    }

    /// What reading the files moved, `fetched` bytes out of `stored`.
    pub fn fetched(&self, fetched: u64, stored: u64) -> String {
        format!(
            "{} of content read, {} fetched ({:.1}x the content read, {:.2}x the stored {})",
            bytes(self.read.bytes),
            bytes(fetched),
            fetched as f64 / self.read.bytes.max(1) as f64,
            fetched as f64 / stored.max(1) as f64,
            bytes(stored),
        )
    }

    /// The same for `--json`.
    pub fn facts(&self, fetched: u64, stored: u64) -> Value {
        json!({
            "files": self.read.files,
            "content_bytes": self.read.bytes,
            "fetched_bytes": fetched,
            "stored_bytes": stored,
            "fetched_stored_ratio": fetched as f64 / stored.max(1) as f64,
        })
    }
}

/// The read patterns, each measured on a fresh host: a random
/// `SAMPLE_PERCENT`% of the files, scattered over the whole tree (the worst
/// case for what moves), and a `SAMPLE_PERCENT`% subtree (what a CI step
/// reading one part of the tree does).
pub fn patterns(tree: &Tree, seed: u64) -> [Pattern<'_>; 2] {
    [
        Pattern::new(
            format!("{SAMPLE_PERCENT}% of the files"),
            "sample",
            sample(tree, seed),
        ),
        Pattern::new(
            format!("a {SAMPLE_PERCENT}% subtree"),
            "subtree",
            subtree(tree, seed),
        ),
    ]
}

/// Fails unless `read` covered what was `expected`.
pub fn check(read: Read, expected: Read, root: &Path) -> Result<()> {
    ensure!(
        read == expected,
        "read {read:?} under {}, expected {expected:?}",
        root.display()
    );
    Ok(())
}

/// Creates the directory `dir`, which must not exist yet, and returns it.
///
/// Nothing the bench makes is emptied, reused or deleted before the bench
/// ends (the scratch dir then goes as a whole): on ext4 without a journal,
/// creating files within a minute or more of deleting many nearby ones is
/// several times slower, which would land on whatever is timed next.
pub fn new_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// Sum of the sizes of the files below `dir`.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn depth(path: &Path) -> usize {
    path.components().count().saturating_sub(1)
}
