//! wsfs against the lazy peers a user would pick instead of it: squashfuse
//! over a `mksquashfs -comp zstd` image (both of the Debian package's
//! binaries: `squashfuse`, on libfuse's high-level API, and `squashfuse_ll`,
//! on its low-level one) and ratarmount over the tar.zst.
//!
//! Per run, in a fresh directory: the images are built (timed: both
//! `mksquashfs` levels, `tar | zstd -3 -T1`, and `wsfs persist` to a fresh
//! remote, persist first in odd runs and last in even ones); then the kernel
//! caches are dropped, every side's input (the remote, the images, the
//! binaries) is read back into the page cache, and each side, in an order that
//! rotates from run to run, mounts (wsfs: a fresh state dir; ratarmount: a
//! fresh index file, so its index build counts), reads the probe's first byte,
//! every file (cold) and every file again on the same mount (warm), and
//! unmounts. Last, ratarmount mounts again with the index its first mount
//! wrote, until the probe's first byte.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

use crate::corpus::Tree;
use crate::host::mounts_under;
use crate::measure::{check, dir_bytes, new_dir, push, Config, Outcome};
use crate::peers;
use crate::read::{self, Read};
use crate::report::{bytes, Qty, Row, Samples, Target};

/// The workspace the tree is persisted to.
const WS: &str = "bench/tree";
/// The level of `mksquashfs -Xcompression-level` that matches `zstd -3`.
const LEVEL: u32 = 3;

/// The peers' programs.
pub struct Tools {
    mksquashfs: PathBuf,
    squashfuse: PathBuf,
    squashfuse_ll: PathBuf,
    ratarmount: PathBuf,
    fusermount: PathBuf,
}

impl Tools {
    /// The programs (ratarmount in scripts/setup-peers' venv, under
    /// `$WSFS_TOOLS_DIR`, default /var/cache/wsfs/tools, else in PATH), or
    /// an error naming those missing and the script that installs them.
    pub fn find() -> Result<Tools> {
        let tools_dir = std::env::var_os("WSFS_TOOLS_DIR").unwrap_or_else(|| "/var/cache/wsfs/tools".into());
        let venv = Path::new(&tools_dir).join("ratarmount/bin/ratarmount");
        let mut missing = Vec::new();
        let mut find = |name: &str| {
            let found = match name {
                "ratarmount" if venv.is_file() => Some(venv.clone()),
                _ => in_path(name),
            };
            found.unwrap_or_else(|| {
                missing.push(name.to_string());
                PathBuf::new()
            })
        };
        let tools = Tools {
            mksquashfs: find("mksquashfs"),
            squashfuse: find("squashfuse"),
            squashfuse_ll: find("squashfuse_ll"),
            ratarmount: find("ratarmount"),
            fusermount: find("fusermount3"),
        };
        if !missing.is_empty() {
            bail!(
                "{} not found: scripts/setup-peers installs the peers' tools",
                missing.join(", ")
            );
        }
        Ok(tools)
    }

    /// Runs every program once to print its version, which loads its code
    /// into the page cache, and reads ratarmount's venv (its Python modules)
    /// there too; returns the versions, `program: first line`.
    fn warm_up(&self) -> Result<Vec<String>> {
        let venv = self
            .ratarmount
            .ancestors()
            .nth(2)
            .filter(|v| v.join("pyvenv.cfg").is_file());
        if let Some(venv) = venv {
            read::read_tree(venv)?;
        }
        [
            (&self.mksquashfs, "-version"),
            (&self.squashfuse, "--version"),
            (&self.squashfuse_ll, "--version"),
            (&self.ratarmount, "--version"),
            (&self.fusermount, "-V"),
        ]
        .into_iter()
        .map(|(program, flag)| {
            let out = Command::new(program)
                .arg(flag)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("cannot run {}", program.display()))?;
            let text =
                String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            // squashfuse prints its version on stderr, its usage after it and on stdout.
            let first = text
                .lines()
                .find(|l| l.contains(|c: char| c.is_ascii_digit()))
                .unwrap_or("?")
                .trim();
            Ok(format!("{}: {first}", program.display()))
        })
        .collect()
    }
}

/// `name` in a directory of `PATH`.
fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A peer: a program that mounts an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Squashfuse,
    SquashfuseLl,
    Ratarmount,
}

/// What mounts in a run, in the order of the first run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Wsfs,
    Peer(Peer),
}

const SIDES: [Side; 4] = [
    Side::Wsfs,
    Side::Peer(Peer::Squashfuse),
    Side::Peer(Peer::SquashfuseLl),
    Side::Peer(Peer::Ratarmount),
];

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Squashfuse => "squashfuse",
            Peer::SquashfuseLl => "squashfuse_ll",
            Peer::Ratarmount => "ratarmount",
        }
    }

    /// How its mount is made, for the baseline column.
    fn how(self) -> &'static str {
        match self {
            Peer::Squashfuse | Peer::SquashfuseLl => "mksquashfs -comp zstd image",
            Peer::Ratarmount => "tar.zst of zstd -3, its index built at mount",
        }
    }

    /// The command mounting this run's image at `point`.
    fn command(self, tools: &Tools, run: &RunFiles, point: &Path) -> Command {
        let mut command = match self {
            Peer::Squashfuse => Command::new(&tools.squashfuse),
            Peer::SquashfuseLl => Command::new(&tools.squashfuse_ll),
            Peer::Ratarmount => {
                let mut c = Command::new(&tools.ratarmount);
                c.arg("--index-file").arg(&run.index);
                c
            }
        };
        let image = match self {
            Peer::Squashfuse | Peer::SquashfuseLl => &run.squashfs,
            Peer::Ratarmount => &run.archive,
        };
        command.arg(image).arg(point);
        command
    }
}

/// `side`'s place in [`SIDES`] (and in [`Times::reads`]).
fn index(side: Side) -> usize {
    SIDES
        .iter()
        .position(|s| *s == side)
        .expect("every side is in SIDES")
}

/// The sides in run `run`'s order: [`SIDES`] rotated by one more each run.
fn order(run: usize) -> Vec<Side> {
    let mut sides = SIDES.to_vec();
    sides.rotate_left(run % SIDES.len());
    sides
}

/// One run's files.
struct RunFiles {
    dir: PathBuf,
    /// `mksquashfs -comp zstd` at its default level: the one mounted.
    squashfs: PathBuf,
    /// The same at `-Xcompression-level 3`.
    squashfs3: PathBuf,
    /// `tar | zstd -3 -T1`.
    archive: PathBuf,
    /// ratarmount's index (written by its first mount).
    index: PathBuf,
    remote: PathBuf,
}

impl RunFiles {
    fn new(dir: PathBuf) -> RunFiles {
        RunFiles {
            squashfs: dir.join("tree.sqfs"),
            squashfs3: dir.join(format!("tree-{LEVEL}.sqfs")),
            archive: dir.join("tree.tar.zst"),
            index: dir.join("tree.tar.zst.index.sqlite"),
            remote: dir.join("remote"),
            dir,
        }
    }
}

/// A side's timings, one per run.
#[derive(Default)]
struct Reads {
    /// Mount until the probe's first byte.
    first: Samples,
    /// Mount until every file was read (first byte included).
    full: Samples,
    /// Every file read again on the same mount.
    warm: Samples,
}

/// Timings of every run.
#[derive(Default)]
struct Times {
    mksquashfs: Samples,
    mksquashfs3: Samples,
    tar: Samples,
    persist: Samples,
    /// Per side, in [`SIDES`] order.
    reads: [Reads; 4],
    /// ratarmount mounting with the index its first mount wrote, until the first byte.
    ratarmount_indexed: Samples,
}

/// Sizes seen in the last run.
#[derive(Default)]
struct Sizes {
    squashfs: u64,
    squashfs3: u64,
    archive: u64,
    index: u64,
    stored: u64,
}

/// Runs the phase (`cfg.runs` interleaved runs) and adds its rows, details
/// and facts (as `facts.peers`) to `outcome`.
pub fn suite(cfg: &Config, tree: &Tree, outcome: &mut Outcome) -> Result<()> {
    let tools = Tools::find()?;
    let dir = cfg.fresh_dir("peers")?;
    let expected = Read {
        files: tree.files.len() as u64,
        bytes: tree.bytes,
    };
    let (mut t, mut sizes, mut dropped) = (Times::default(), Sizes::default(), true);
    let mut versions = Vec::new();
    for run in 0..cfg.runs {
        let files = RunFiles::new(new_dir(&dir.join(format!("run-{run}")))?);
        cfg.progress_run(
            "peers: mksquashfs (default level, level 3), tar | zstd, persist",
            run,
        );
        sizes = build(cfg, &tools, tree, &files, run, &mut t)?;

        // Cold: the kernel caches dropped; then each side's input (it stands
        // for a fast object store) and programs back in the page cache.
        dropped &= cfg.drop_caches && peers::drop_caches();
        read::read_files(Path::new("/"), [files.squashfs.as_path(), &files.archive])?;
        read::read_files(Path::new("/"), cfg.bins.paths())?;
        read::read_tree(&files.remote)?;
        versions = tools.warm_up()?;
        for side in order(run) {
            peers::sync();
            let reads = &mut t.reads[index(side)];
            match side {
                Side::Wsfs => {
                    cfg.progress_run("peers: wsfs attach, first byte, cold read, warm read", run);
                    let host = cfg.host(&files.remote)?;
                    measure(reads, tree, expected, || Ok(((), host.attach(WS)?)))?;
                }
                Side::Peer(peer) => {
                    cfg.progress_run(
                        &format!("peers: {} mount, first byte, cold read, warm read", peer.name()),
                        run,
                    );
                    let point = new_dir(&files.dir.join(format!("mnt-{}", peer.name())))?;
                    let mount =
                        |point: &Path| Mounted::run(peer.command(&tools, &files, point), point, &tools);
                    measure(reads, tree, expected, || Ok((mount(&point)?, point.clone())))?;
                    if peer == Peer::Ratarmount {
                        let point = new_dir(&files.dir.join("mnt-ratarmount-indexed"))?;
                        push(&mut t.ratarmount_indexed, || {
                            let mounted = mount(&point)?;
                            read::first_byte(&point.join(&tree.probe().path))?;
                            Ok(mounted)
                        })?;
                    }
                }
            }
        }
        sizes.index = std::fs::metadata(&files.index)
            .with_context(|| format!("ratarmount wrote no index at {}", files.index.display()))?
            .len();
    }
    outcome.rows.extend(rows(&t, &sizes));
    outcome.details.extend(details(&t, &sizes, dropped, &versions));
    outcome.facts["peers"] = facts(&t, &sizes, dropped, &versions);
    Ok(())
}

/// Builds run `run`'s images and persists the tree, timed; returns their sizes.
fn build(
    cfg: &Config,
    tools: &Tools,
    tree: &Tree,
    files: &RunFiles,
    run: usize,
    t: &mut Times,
) -> Result<Sizes> {
    read::read_tree(&tree.root)?;
    let persist = |t: &mut Times| {
        push(&mut t.persist, || {
            cfg.host(&files.remote)?.persist(WS, &tree.root)
        })
    };
    let persist_first = run % 2 == 1;
    if persist_first {
        persist(t)?;
    }
    let mksquashfs = |out: &Path, level: Option<u32>| {
        let mut c = Command::new(&tools.mksquashfs);
        c.arg(&tree.root)
            .arg(out)
            .args(["-comp", "zstd", "-quiet", "-no-progress"]);
        if let Some(level) = level {
            c.args(["-Xcompression-level", &level.to_string()]);
        }
        run_quiet(c)
    };
    push(&mut t.mksquashfs, || mksquashfs(&files.squashfs, None))?;
    push(&mut t.mksquashfs3, || mksquashfs(&files.squashfs3, Some(LEVEL)))?;
    push(&mut t.tar, || peers::tar_zstd(&tree.root, &files.archive, 1))?;
    if !persist_first {
        persist(t)?;
    }
    let size = |p: &Path| -> Result<u64> {
        Ok(std::fs::metadata(p)
            .with_context(|| format!("no {}", p.display()))?
            .len())
    };
    Ok(Sizes {
        squashfs: size(&files.squashfs)?,
        squashfs3: size(&files.squashfs3)?,
        archive: size(&files.archive)?,
        index: 0,
        stored: dir_bytes(&files.remote)?,
    })
}

/// Mounts with `mount` (which returns a guard and the mount point), reads
/// the probe's first byte, then every file twice, into `reads`, and checks
/// both reads; the guard (a peer's [`Mounted`]) is dropped on return.
fn measure<G>(
    reads: &mut Reads,
    tree: &Tree,
    expected: Read,
    mount: impl FnOnce() -> Result<(G, PathBuf)>,
) -> Result<()> {
    let start = Instant::now();
    let (_guard, point) = mount()?;
    read::first_byte(&point.join(&tree.probe().path))?;
    reads.first.0.push(start.elapsed());
    check(read::read_tree(&point)?, expected, &point)?;
    reads.full.0.push(start.elapsed());
    check(
        push(&mut reads.warm, || read::read_tree(&point))?,
        expected,
        &point,
    )?;
    Ok(())
}

/// A peer's FUSE mount, unmounted (`fusermount3 -u`) when dropped, also on
/// errors.
struct Mounted<'a> {
    point: PathBuf,
    fusermount: &'a Path,
}

impl<'a> Mounted<'a> {
    /// Runs `command`, a mount command that returns once its daemon serves
    /// `point`, and checks that `point` is mounted.
    fn run(command: Command, point: &Path, tools: &'a Tools) -> Result<Mounted<'a>> {
        // Made first: a command that mounted and then failed is unmounted too.
        let mounted = Mounted {
            point: point.to_path_buf(),
            fusermount: &tools.fusermount,
        };
        run_quiet(command)?;
        ensure!(
            mounted.is_mounted(),
            "the mount command returned, but nothing is mounted at {}",
            point.display()
        );
        Ok(mounted)
    }

    fn is_mounted(&self) -> bool {
        mounts_under(&self.point).contains(&self.point.display().to_string())
    }
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.is_mounted() {
            return;
        }
        let status = Command::new(self.fusermount).arg("-u").arg(&self.point).status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("warning: cannot unmount {}: {status:?}", self.point.display());
        }
    }
}

/// Runs `command`, its output (the peers daemonize, so no pipe: a file) shown only when it fails.
fn run_quiet(mut command: Command) -> Result<()> {
    let log = tempfile::tempfile().context("cannot make a log file")?;
    let status = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{command:?} failed: {status}\n{}", read_log(log));
    }
    Ok(())
}

fn read_log(mut log: File) -> String {
    use std::io::{Read as _, Seek as _};
    let mut text = String::new();
    let _ = log.rewind().and_then(|_| log.read_to_string(&mut text));
    text.trim().to_string()
}

/// The table's rows: wsfs / peer, each from the same runs.
fn rows(t: &Times, sizes: &Sizes) -> Vec<Row> {
    let wsfs = &t.reads[index(Side::Wsfs)];
    let mut rows = vec![
        Row::times(
            "persist, vs mksquashfs -comp zstd",
            &t.persist,
            &t.mksquashfs,
            "mksquashfs -comp zstd, its default level 15",
            Target::None,
        ),
        Row::times(
            format!("persist, vs mksquashfs -comp zstd -Xcompression-level {LEVEL}"),
            &t.persist,
            &t.mksquashfs3,
            &format!("mksquashfs -comp zstd -Xcompression-level {LEVEL}"),
            Target::None,
        ),
        Row::new(
            "stored bytes, vs a squashfs image",
            Qty::Bytes(sizes.stored),
            Qty::Bytes(sizes.squashfs),
            "mksquashfs -comp zstd, level 15",
            Target::None,
        ),
        Row::new(
            format!("stored bytes, vs a squashfs image at zstd level {LEVEL}"),
            Qty::Bytes(sizes.stored),
            Qty::Bytes(sizes.squashfs3),
            format!("mksquashfs -comp zstd -Xcompression-level {LEVEL}"),
            Target::None,
        ),
    ];
    for p in [Peer::Squashfuse, Peer::SquashfuseLl, Peer::Ratarmount] {
        let (peer, name, how) = (&t.reads[index(Side::Peer(p))], p.name(), p.how());
        rows.extend([
            Row::times(
                format!("cold attach → first byte of one file, vs {name}"),
                &wsfs.first,
                &peer.first,
                &format!("{name} mount, {how}"),
                Target::AtMost(1.0),
            ),
            Row::times(
                format!("cold attach + full read, vs {name}"),
                &wsfs.full,
                &peer.full,
                &format!("{name} mount + read, {how}"),
                Target::AtMost(1.0),
            ),
            Row::times(
                format!("full read, warm (second read), vs {name}"),
                &wsfs.warm,
                &peer.warm,
                &format!("{name}, same mount"),
                Target::AtMost(1.0),
            ),
        ]);
    }
    rows.push(Row::times(
        "cold attach → first byte of one file, vs ratarmount with its index",
        &wsfs.first,
        &t.ratarmount_indexed,
        "ratarmount mount with the index a first mount wrote",
        Target::AtMost(1.0),
    ));
    rows
}

/// Breakdowns, one line each.
fn details(t: &Times, sizes: &Sizes, dropped: bool, versions: &[String]) -> Vec<String> {
    let per_run = |what: fn(&Reads) -> &Samples| {
        SIDES
            .iter()
            .zip(&t.reads)
            .map(|(side, reads)| format!("{} {}", side_name(*side), what(reads).runs()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!(
            "peers, sizes: squashfs image {} (zstd level 15, the one mounted), {} at level {LEVEL}; tar.zst {}; \
             wsfs stored {}; ratarmount's index {}",
            bytes(sizes.squashfs),
            bytes(sizes.squashfs3),
            bytes(sizes.archive),
            bytes(sizes.stored),
            bytes(sizes.index),
        ),
        format!(
            "peers, build per run: mksquashfs {}, at level {LEVEL} {}, tar | zstd -3 -T1 {}, wsfs persist {}",
            t.mksquashfs.runs(),
            t.mksquashfs3.runs(),
            t.tar.runs(),
            t.persist.runs(),
        ),
        format!("peers, cold attach → first byte per run: {}", per_run(|r| &r.first)),
        format!("peers, cold attach + full read per run: {}", per_run(|r| &r.full)),
        format!("peers, warm full read per run: {}", per_run(|r| &r.warm)),
        format!(
            "peers: ratarmount again with its index, until the first byte: {}; drop_caches before each run's mounts: {}",
            t.ratarmount_indexed.runs(),
            if dropped { "worked" } else { "not used or not permitted" }
        ),
        format!("peers, versions: {}", versions.join("; ")),
    ]
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Wsfs => "wsfs",
        Side::Peer(p) => p.name(),
    }
}

/// The side facts for `--json`.
fn facts(t: &Times, sizes: &Sizes, dropped: bool, versions: &[String]) -> Value {
    let ms = |s: &Samples| s.median().as_secs_f64() * 1e3;
    json!({
        "squashfs": { "bytes": sizes.squashfs, "mksquashfs_ms": ms(&t.mksquashfs) },
        "squashfs_at_level": { "level": LEVEL, "bytes": sizes.squashfs3, "mksquashfs_ms": ms(&t.mksquashfs3) },
        "tar_zst": { "bytes": sizes.archive, "tar_zstd_ms": ms(&t.tar), "ratarmount_index_bytes": sizes.index },
        "wsfs": { "stored_bytes": sizes.stored, "persist_ms": ms(&t.persist) },
        "drop_caches_worked": dropped,
        "versions": versions,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_side_goes_first_once_in_as_many_runs() {
        let firsts: Vec<Side> = (0..SIDES.len()).map(|run| order(run)[0]).collect();
        assert_eq!(firsts, SIDES);
        for run in 0..2 * SIDES.len() {
            let mut sides = order(run);
            sides.sort_by_key(|s| index(*s));
            assert_eq!(sides, SIDES, "run {run} runs every side once");
        }
    }

    #[test]
    fn rows_divide_wsfs_by_each_peer_of_the_same_runs() {
        let ms = |v: &[u64]| Samples(v.iter().map(|&m| Duration::from_millis(m)).collect());
        let mut t = Times::default();
        for (i, reads) in t.reads.iter_mut().enumerate() {
            let k = i as u64 + 1;
            *reads = Reads {
                first: ms(&[10 * k, 30 * k, 20 * k]),
                full: ms(&[100 * k]),
                warm: ms(&[5 * k]),
            };
        }
        t.ratarmount_indexed = ms(&[40]);
        let rows = rows(&t, &Sizes::default());
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "row names are unique: {names:?}");
        let check = |name: &str, expected: f64| {
            let row = rows
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("no row {name:?} in {names:?}"));
            let ratio = row.ratio().expect("a baseline");
            assert!((ratio - expected).abs() < 1e-9, "{name}: {ratio} != {expected}");
        };
        // wsfs's medians over each peer's (SIDES order: wsfs, squashfuse, squashfuse_ll, ratarmount).
        check("cold attach → first byte of one file, vs squashfuse", 20.0 / 40.0);
        check("cold attach + full read, vs squashfuse_ll", 100.0 / 300.0);
        check("full read, warm (second read), vs ratarmount", 5.0 / 20.0);
        check(
            "cold attach → first byte of one file, vs ratarmount with its index",
            20.0 / 40.0,
        );
    }
}
