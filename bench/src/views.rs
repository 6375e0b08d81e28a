//! Per-step views: attaching an isolated view (cold and warm) vs a read-only
//! view and extraction, a build-like write workload in an isolated view vs
//! native disk, and `detach --persist` of a 1% change vs re-taring the tree.
//!
//! Runs on its own remote, where the tree is persisted once per run (to
//! `bench/view-N`), so that each run's diff layer lands on a one-layer
//! workspace and the suite's remote stays as it measured it.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rand::{rngs::StdRng, Rng as _, RngCore as _, SeedableRng};
use serde_json::{json, Value};

use crate::corpus::Tree;
use crate::host::{counter_delta, field, Host};
use crate::measure::{new_dir, pick, push, Config, Outcome};
use crate::peers;
use crate::read;
use crate::report::{bytes, time, Qty, Row, Samples, Target};

/// Small files of the write workload, spread evenly over `SMALL_DIRS` directories.
const SMALL_FILES: usize = 10_000;
const SMALL_DIRS: usize = 100;
/// Their sizes: uniform in this range.
const SMALL_SIZES: std::ops::RangeInclusive<usize> = 1024..=16 * 1024;
/// The big file: `BIG_BLOCKS` writes of `BLOCK` bytes, then fsync.
const BLOCK: usize = 1 << 20;
const BIG_BLOCKS: usize = 1024;
/// Where the write workload goes, below a view's root or a native directory.
const OUT: &str = "build-out";
/// The change persisted from a view: this share of the files rewritten,
/// plus a few deleted and a few added.
const CHANGE_PERCENT: usize = 1;
const DELETED: usize = 10;
const ADDED: usize = 10;
/// Rewritten files read back after the persist (plus every added one).
const CHECKED: usize = 5;

fn workspace(run: usize) -> String {
    format!("bench/view-{run}")
}

/// Timings of every run.
#[derive(Default)]
struct Times {
    ro_cold: Samples,
    ro_warm: Samples,
    iso_cold: Samples,
    iso_first: Samples,
    iso_warm: Samples,
    extract: Samples,
    view_small: Samples,
    view_big: Samples,
    native_small: Samples,
    native_big: Samples,
    discard: Samples,
    discard_trash: Samples,
    discard_change: Samples,
    discard_change_trash: Samples,
    change_view: Samples,
    change_native: Samples,
    persist: Samples,
    tar: Samples,
}

/// What the runs saw (the last run's, or every run's where a list).
#[derive(Default)]
struct Seen {
    upper_dir: String,
    write_gets: u64,
    write_fetched: u64,
    change_gets: u64,
    change_fetched: u64,
    persisted: Value,
    persist_puts: u64,
    persist_stored: u64,
    stored_bytes: Vec<u64>,
    tar_bytes: u64,
    read_back: usize,
    counts_match: bool,
}

/// Runs the view measurements (`cfg.runs` interleaved runs) and adds their
/// rows, details and facts (as `facts.views`) to `outcome`.
pub fn suite(cfg: &Config, tree: &Tree, outcome: &mut Outcome) -> Result<()> {
    let dir = cfg.fresh_dir("views")?;
    let s = Setup {
        remote: dir.join("remote"),
        archive: dir.join("tree.tar.zst"),
        workload: Workload::new(cfg.seed),
        change: Change::new(tree, cfg.seed + 1),
        dir,
    };
    cfg.progress("views: tar | zstd of the tree; persist it to one workspace per run");
    peers::tar_zstd(&tree.root, &s.archive, 1)?;
    let host = cfg.host(&s.remote)?;
    for run in 0..cfg.runs {
        host.persist(&workspace(run), &tree.root)?;
    }
    drop(host);
    // The write workloads' views are discarded only after the last run: the
    // daemon then deletes their upper dirs (10,000 files each), and ext4
    // makes creating files slow for a while after many were deleted nearby
    // (see `new_dir`).
    let (mut t, mut seen, mut hosts) = (Times::default(), Seen::default(), Vec::new());
    for run in 0..cfg.runs {
        hosts.push(one_run(cfg, tree, &s, run, &mut t, &mut seen)?);
    }
    cfg.progress("views: discard the write workloads' views");
    for host in &hosts {
        push(&mut t.discard, || host.detach(&host.path("writes"), false))?;
        push(&mut t.discard_trash, || trash_emptied(host))?;
    }
    drop(hosts);
    outcome.rows.extend(rows(&t, &seen, &s));
    outcome.details.extend(details(&t, &seen, &s, tree)?);
    outcome.facts["views"] = facts(&t, &seen, &s);
    Ok(())
}

/// What every run shares.
struct Setup {
    /// The views' scratch dir (remote, archive, extracted trees).
    dir: PathBuf,
    remote: PathBuf,
    /// The tree as tar.zst (zstd -3 -T1).
    archive: PathBuf,
    workload: Workload,
    change: Change,
}

/// One run; returns the host whose isolated view `writes` still holds the
/// write workload (and whose `native` dir holds the native one). The only
/// deletions: the 1% change's, and the daemon deleting its two views' upper
/// dirs (a few hundred files each) after their detaches.
fn one_run(cfg: &Config, tree: &Tree, s: &Setup, run: usize, t: &mut Times, seen: &mut Seen) -> Result<Host> {
    let ws = workspace(run);
    let isolated = Some("isolated");

    cfg.progress_run("views: read-only attach, cold and warm", run);
    let host = cfg.host(&s.remote)?;
    push(&mut t.ro_cold, || {
        host.attach_view(&ws, &host.path("ro-1"), Some("read-only"))
    })?;
    push(&mut t.ro_warm, || {
        host.attach_view(&ws, &host.path("ro-2"), Some("read-only"))
    })?;
    drop(host);

    cfg.progress_run(
        "views: isolated attach, cold and warm; writes in a view and natively",
        run,
    );
    let host = cfg.host(&s.remote)?;
    let (writes, change) = (host.path("writes"), host.path("change"));
    let start = Instant::now();
    let attached = host.attach_view(&ws, &writes, isolated)?;
    t.iso_cold.0.push(start.elapsed());
    read::first_byte(&writes.join(&tree.probe().path))?;
    t.iso_first.0.push(start.elapsed());
    push(&mut t.iso_warm, || host.attach_view(&ws, &change, isolated))?;
    // The native baseline writes next to the state dir, so to the file system
    // (and likely the ext4 block groups) the view's changes go to.
    let upper = PathBuf::from(attached["upper_dir"].as_str().context("attach: no upper_dir")?);
    let native = new_dir(&host.path("native"))?;
    ensure!(
        fs::metadata(&upper)?.dev() == fs::metadata(&native)?.dev(),
        "the view's upper dir {} and {} are on different file systems",
        upper.display(),
        native.display()
    );
    seen.upper_dir = upper.display().to_string();
    // Alternate which goes first; `sync` before each so that earlier
    // writeback does not land on it.
    let view_first = run % 2 == 1;
    for in_view in [view_first, !view_first] {
        peers::sync();
        if in_view {
            let before = host.status()?;
            push(&mut t.view_small, || s.workload.small(&writes))?;
            push(&mut t.view_big, || s.workload.big(&writes))?;
            let after = host.status()?;
            seen.write_gets = counter_delta(&before, &after, "remote_get_requests")?;
            seen.write_fetched = counter_delta(&before, &after, "remote_bytes_fetched")?;
        } else {
            push(&mut t.native_small, || s.workload.small(&native))?;
            push(&mut t.native_big, || s.workload.big(&native))?;
        }
    }

    cfg.progress_run(
        "views: 1% change in a view and natively; detach --persist; tar | zstd",
        run,
    );
    let changed = new_dir(&s.dir.join(format!("changed-{run}")))?;
    peers::sync();
    push(&mut t.extract, || peers::extract(&s.archive, &changed))?;
    peers::sync();
    let key = (run % 255 + 1) as u8;
    let before = host.status()?;
    push(&mut t.change_view, || s.change.apply(&change, key))?;
    let mid = host.status()?;
    push(&mut t.change_native, || s.change.apply(&changed, key))?;
    // What detaching costs without persisting: a view with the same change, discarded.
    let same = host.path("change-discarded");
    host.attach_view(&ws, &same, isolated)?;
    s.change.apply(&same, key)?;
    peers::sync();
    push(&mut t.discard_change, || host.detach(&same, false))?;
    push(&mut t.discard_change_trash, || trash_emptied(&host))?;
    let persisted = push(&mut t.persist, || host.detach(&change, true))?;
    trash_emptied(&host)?;
    let after = host.status()?;
    seen.change_gets = counter_delta(&before, &mid, "remote_get_requests")?;
    seen.change_fetched = counter_delta(&before, &mid, "remote_bytes_fetched")?;
    seen.persist_puts = counter_delta(&mid, &after, "remote_put_requests")?;
    seen.persist_stored = counter_delta(&mid, &after, "remote_bytes_stored")?;
    let persisted = persisted["persisted"].clone();
    seen.stored_bytes.push(field(&persisted, "stored_bytes")?);
    seen.counts_match = field(&persisted, "files")? == s.change.files()
        && field(&persisted, "deleted")? == s.change.delete.len() as u64;
    seen.persisted = persisted;
    let archive = s.dir.join(format!("changed-{run}.tar.zst"));
    push(&mut t.tar, || peers::tar_zstd(&changed, &archive, 1))?;
    seen.tar_bytes = fs::metadata(&archive)?.len();

    cfg.progress_run("views: the persisted change, read back on a fresh host", run);
    seen.read_back = s
        .change
        .verify(&cfg.host(&s.remote)?, &ws, &changed, &tree.root)?;
    Ok(host)
}

/// The table's rows.
fn rows(t: &Times, seen: &Seen, s: &Setup) -> Vec<Row> {
    let extract = "zstd -d | tar -x";
    let c = &s.change;
    vec![
        Row::times(
            "isolated view attach, cold (fresh state dir)",
            &t.iso_cold,
            &t.extract,
            extract,
            Target::None,
        ),
        Row::times(
            "isolated view attach, cold, vs a read-only view",
            &t.iso_cold,
            &t.ro_cold,
            "read-only view attach, cold",
            Target::None,
        ),
        Row::times(
            "isolated view attach, warm (2nd view of an attached version)",
            &t.iso_warm,
            &t.extract,
            extract,
            Target::None,
        ),
        Row::times(
            "isolated view attach, warm, vs a read-only view",
            &t.iso_warm,
            &t.ro_warm,
            "read-only view attach, warm",
            Target::None,
        ),
        Row::times(
            format!(
                "write {SMALL_FILES} small files ({}-{} KiB, {SMALL_DIRS} dirs) in an isolated view",
                SMALL_SIZES.start() / 1024,
                SMALL_SIZES.end() / 1024
            ),
            &t.view_small,
            &t.native_small,
            "same on native disk",
            Target::AtMost(1.2),
        ),
        Row::times(
            format!(
                "write a {} MiB file ({} MiB blocks, then fsync) in an isolated view",
                (BLOCK * BIG_BLOCKS) >> 20,
                BLOCK >> 20
            ),
            &t.view_big,
            &t.native_big,
            "same on native disk",
            Target::AtMost(1.2),
        ),
        Row::times(
            format!(
                "detach --persist of a {CHANGE_PERCENT}% change ({} rewritten, {} deleted, {} added)",
                c.rewrite.len(),
                c.delete.len(),
                c.add.len()
            ),
            &t.persist,
            &t.tar,
            "tar -c | zstd -3 -T1 of the changed tree",
            Target::Faster(20.0),
        ),
        Row::new(
            format!("stored bytes of that {CHANGE_PERCENT}% change (diff layer's stored_bytes)"),
            Qty::Bytes(*seen.stored_bytes.last().unwrap_or(&0)),
            Qty::Bytes(seen.tar_bytes),
            "tar.zst of the changed tree",
            Target::AtMost(0.03),
        ),
    ]
}

/// Breakdowns and evidence, one line each.
fn details(t: &Times, seen: &Seen, s: &Setup, tree: &Tree) -> Result<Vec<String>> {
    let (c, p, w) = (&s.change, &seen.persisted, &s.workload);
    let rate = |samples: &Samples| {
        let mib = (BLOCK * BIG_BLOCKS) as f64 / (1 << 20) as f64;
        format!("{:.0} MiB/s", mib / samples.median().as_secs_f64())
    };
    Ok(vec![
        format!(
            "views, attach (medians, `wsfs attach --view ...` incl. daemon start when cold): isolated cold {}, then \
             first byte of {} at {}; read-only cold {}; warm (a 2nd view while the 1st is attached): isolated {}, \
             read-only {}",
            time(t.iso_cold.median()),
            tree.probe().path.display(),
            time(t.iso_first.median()),
            time(t.ro_cold.median()),
            time(t.iso_warm.median()),
            time(t.ro_warm.median()),
        ),
        format!(
            "views, writes: {SMALL_FILES} files, {} (no fsync, as a build; an untimed `sync` before each side), \
             then {} in one file + fsync: {} in the view vs {} natively (in a dir next to the state dir); upper \
             dir {}; the view fetched {} in {} GETs meanwhile; discarding the view (`wsfs detach`: unmounts it \
             and moves its upper dir to the state dir's trash; after the last run) {}, the daemon's deletion of \
             that dir in the background {} more; per run (native first in the 1st, then alternating), small files: \
             view {}, native {}; big file: view {}, native {}",
            bytes(w.small_bytes()),
            bytes((BLOCK * BIG_BLOCKS) as u64),
            rate(&t.view_big),
            rate(&t.native_big),
            seen.upper_dir,
            bytes(seen.write_fetched),
            seen.write_gets,
            time(t.discard.median()),
            time(t.discard_trash.median()),
            t.view_small.runs(),
            t.native_small.runs(),
            t.view_big.runs(),
            t.native_big.runs(),
        ),
        format!(
            "views, {CHANGE_PERCENT}% change: {} files rewritten ({}; each byte XORed with a per-run key, so new \
             chunks that compress like the tree), {} deleted, {} added ({}); applied through the view in {} \
             (fetched {} in {} GETs: the original bytes, read through the view cold) vs natively in {}, to a \
             copy extracted (`zstd -d | tar -x`, the attach rows' baseline) in {} per run",
            c.rewrite.len(),
            bytes(c.bytes(tree, &c.rewrite)),
            c.delete.len(),
            c.add.len(),
            bytes(c.bytes(tree, c.add.iter().map(|(_, from)| from))),
            time(t.change_view.median()),
            bytes(seen.change_fetched),
            seen.change_gets,
            time(t.change_native.median()),
            t.extract.runs(),
        ),
        format!(
            "views, detach --persist: layer of {} files, {}, new_bytes {}, stored_bytes {} (runs: {}), deleted {}, \
             overrode {}; {} PUTs, {} stored; tar.zst of the changed tree {}; counts as changed: {}; `wsfs detach` \
             without --persist of a view holding the same change (unmount, upper dir moved to the trash) {}, its \
             deletion in the background {} more (waited for before the next step)",
            field(p, "files")?,
            bytes(field(p, "bytes")?),
            bytes(field(p, "new_bytes")?),
            bytes(field(p, "stored_bytes")?),
            seen.stored_bytes.iter().map(|b| bytes(*b)).collect::<Vec<_>>().join(", "),
            field(p, "deleted")?,
            p["overrode"].as_array().map_or(0, |o| o.len()),
            seen.persist_puts,
            bytes(seen.persist_stored),
            bytes(seen.tar_bytes),
            if seen.counts_match { "yes" } else { "**no**" },
            time(t.discard_change.median()),
            time(t.discard_change_trash.median()),
        ),
        format!(
            "views, read back on a fresh host after each persist: {} files byte-identical with the native changed \
             copy ({} rewritten, each differing from the original, and {} added), {} deleted files absent",
            seen.read_back,
            CHECKED.min(c.rewrite.len()),
            c.add.len(),
            c.delete.len(),
        ),
    ])
}

/// The side facts for `--json`.
fn facts(t: &Times, seen: &Seen, s: &Setup) -> Value {
    let ms = |samples: &Samples| samples.median().as_secs_f64() * 1e3;
    json!({
        "isolated_attach_first_byte_ms": ms(&t.iso_first),
        "discard_detach_ms": ms(&t.discard),
        "discard_trash_emptied_ms": ms(&t.discard_trash),
        "discard_change_detach_ms": ms(&t.discard_change),
        "discard_change_trash_emptied_ms": ms(&t.discard_change_trash),
        "change_in_view_ms": ms(&t.change_view),
        "change_native_ms": ms(&t.change_native),
        "small_files": SMALL_FILES,
        "small_bytes": s.workload.small_bytes(),
        "big_bytes": BLOCK * BIG_BLOCKS,
        "upper_dir": seen.upper_dir,
        "writes_remote_get_requests": seen.write_gets,
        "writes_remote_bytes_fetched": seen.write_fetched,
        "change": { "rewritten": s.change.rewrite.len(), "deleted": s.change.delete.len(), "added": s.change.add.len() },
        "change_remote_get_requests": seen.change_gets,
        "change_remote_bytes_fetched": seen.change_fetched,
        "persisted": seen.persisted,
        "persisted_stored_bytes_per_run": seen.stored_bytes,
        "persist_remote_put_requests": seen.persist_puts,
        "persist_remote_bytes_stored": seen.persist_stored,
        "changed_tar_zst_bytes": seen.tar_bytes,
        "read_back_files": seen.read_back,
        "counts_match": seen.counts_match,
    })
}

/// Waits until `host`'s daemon has deleted what its detaches moved to the
/// state dir's trash (it does so on a thread of its own), so that those
/// unlinks do not run under the next measurement.
fn trash_emptied(host: &Host) -> Result<()> {
    const LIMIT: Duration = Duration::from_secs(300);
    let trash = host.state_dir().join("trash");
    let start = Instant::now();
    loop {
        let empty = match fs::read_dir(&trash) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", trash.display())),
        };
        if empty {
            return Ok(());
        }
        ensure!(
            start.elapsed() < LIMIT,
            "{} is not empty after {LIMIT:?}",
            trash.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The build-like write workload: the same bytes wherever it runs.
struct Workload {
    /// Size of each small file.
    sizes: Vec<usize>,
    /// Random bytes the small files are cut from.
    content: Vec<u8>,
    /// One random block of the big file.
    block: Vec<u8>,
}

impl Workload {
    fn new(seed: u64) -> Workload {
        let mut rng = StdRng::seed_from_u64(seed);
        let sizes = (0..SMALL_FILES).map(|_| rng.random_range(SMALL_SIZES)).collect();
        let mut content = vec![0; *SMALL_SIZES.end()];
        let mut block = vec![0; BLOCK];
        rng.fill_bytes(&mut content);
        rng.fill_bytes(&mut block);
        Workload {
            sizes,
            content,
            block,
        }
    }

    fn small_bytes(&self) -> u64 {
        self.sizes.iter().map(|&s| s as u64).sum()
    }

    /// Writes the small files as `root/OUT/dNNN/fNNNNN` (not synced, like a build's outputs).
    fn small(&self, root: &Path) -> Result<()> {
        let per_dir = SMALL_FILES.div_ceil(SMALL_DIRS);
        for (dir_no, sizes) in self.sizes.chunks(per_dir).enumerate() {
            let dir = root.join(OUT).join(format!("d{dir_no:03}"));
            fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for (i, &size) in sizes.iter().enumerate() {
                let path = dir.join(format!("f{:05}", dir_no * per_dir + i));
                fs::write(&path, &self.content[..size])
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Writes `root/OUT/big.bin` block by block, then fsyncs it.
    fn big(&self, root: &Path) -> Result<()> {
        let path = root.join(OUT).join("big.bin");
        let mut file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        for _ in 0..BIG_BLOCKS {
            file.write_all(&self.block)?;
        }
        file.sync_all()
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A change of `CHANGE_PERCENT`% of the tree's files, plus a few deleted and
/// a few added, applied the same way through a view and natively.
struct Change {
    /// Files whose bytes are replaced (indices into `tree.files`).
    rewrite: Vec<usize>,
    /// Files deleted.
    delete: Vec<usize>,
    /// Files added (new path, the file its new bytes derive from).
    add: Vec<(PathBuf, usize)>,
    /// Paths, by index.
    paths: Vec<PathBuf>,
}

impl Change {
    fn new(tree: &Tree, seed: u64) -> Change {
        let n = (tree.files.len() * CHANGE_PERCENT / 100).max(1);
        let mut picked = pick(tree, n + DELETED + ADDED, seed);
        let mut take = |k: usize| {
            let mut group: Vec<usize> = picked.drain(..k.min(picked.len())).collect();
            group.sort_unstable();
            group
        };
        let (rewrite, delete, from) = (take(n), take(DELETED), take(ADDED));
        let paths: Vec<PathBuf> = tree.files.iter().map(|f| f.path.clone()).collect();
        let add = from
            .into_iter()
            .map(|i| {
                let mut name = paths[i].file_name().expect("a file has a name").to_owned();
                name.push(".wsfs-bench-added");
                (paths[i].with_file_name(name), i)
            })
            .collect();
        Change {
            rewrite,
            delete,
            add,
            paths,
        }
    }

    /// Regular files a persist of the change writes.
    fn files(&self) -> u64 {
        (self.rewrite.len() + self.add.len()) as u64
    }

    /// Size of the original files `indices`.
    fn bytes<'a>(&self, tree: &Tree, indices: impl IntoIterator<Item = &'a usize>) -> u64 {
        indices.into_iter().map(|&i| tree.files[i].size).sum()
    }

    /// Applies the change below `root`; `key` makes the new bytes: each byte
    /// of the original content XORed with it (new chunks, same compressibility).
    fn apply(&self, root: &Path, key: u8) -> Result<()> {
        let derived = |from: usize| -> Result<Vec<u8>> {
            let path = root.join(&self.paths[from]);
            let mut data = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            data.iter_mut().for_each(|b| *b ^= key);
            Ok(data)
        };
        for &i in &self.rewrite {
            let path = root.join(&self.paths[i]);
            fs::write(&path, derived(i)?).with_context(|| format!("cannot rewrite {}", path.display()))?;
        }
        for &i in &self.delete {
            let path = root.join(&self.paths[i]);
            fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
        }
        for (new, from) in &self.add {
            let path = root.join(new);
            fs::write(&path, derived(*from)?).with_context(|| format!("cannot create {}", path.display()))?;
        }
        Ok(())
    }

    /// Attaches `workspace` on `host` (fresh) and checks that some rewritten
    /// files and every added one hold the bytes of the natively `changed`
    /// copy (and the rewritten ones differ from `original`), and that the
    /// deleted files are gone; returns how many files were compared.
    fn verify(&self, host: &Host, workspace: &str, changed: &Path, original: &Path) -> Result<usize> {
        let mountpoint = host.path("check");
        host.attach_view(workspace, &mountpoint, Some("read-only"))?;
        let read = |root: &Path, rel: &Path| {
            let path = root.join(rel);
            fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        };
        let checked = CHECKED.min(self.rewrite.len());
        let rewritten = self.rewrite[..checked].iter().map(|&i| &self.paths[i]);
        let mut compared = 0;
        for (k, rel) in rewritten.chain(self.add.iter().map(|(new, _)| new)).enumerate() {
            let (got, want) = (read(&mountpoint, rel)?, read(changed, rel)?);
            ensure!(
                got == want,
                "{} differs from the changed copy after the persist",
                rel.display()
            );
            if k < checked {
                ensure!(want != read(original, rel)?, "{} was not changed", rel.display());
            }
            compared += 1;
        }
        for &i in &self.delete {
            let path = mountpoint.join(&self.paths[i]);
            ensure!(
                fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound),
                "{} is still there after the persist deleted it",
                path.display()
            );
        }
        Ok(compared)
    }
}
