//! wsfs-bench: measures wsfs against `tar | zstd` and the native filesystem on
//! one tree, in one run, and prints a table of ratios (or `--json`).
//!
//! # Layout
//! - `corpus`: the tree (given, or the default corpus copied from cargo's registry)
//! - `deps_tree`: a generated tree shaped like a dependency folder (`--deps N`)
//! - `host`: one wsfs host (state dir, daemon, CLI with `--json`)
//! - `peers`: the baselines (`tar | zstd`, extraction, dropping caches)
//! - `lazy_peers`: wsfs vs squashfuse and ratarmount mounting the same tree
//! - `layout`: the learned layout (a 5% read, a re-persist, the same read)
//! - `read`: reading trees, the same code through a mount and natively
//! - `measure`: the measurements
//! - `views`: per-step views (isolated attach, writes in a view, detach --persist)
//! - `s3`, `proxy`: wsfs on S3 vs a tar.zst downloaded from S3, through a latency-injecting proxy
//! - `pipeline`: 1 producer + 8 consumer tasks in `wsfs run`, layer vs tar.zst hand-over
//! - `takeover`: kill -9 and restart of wsfsd under readers
//! - `report`: rows, the markdown table, JSON

mod corpus;
mod deps_tree;
mod headline;
mod host;
mod layout;
mod lazy_peers;
mod measure;
mod peers;
mod pipeline;
mod proxy;
mod read;
mod report;
mod s3;
mod takeover;
mod views;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;

use crate::corpus::Tree;
use crate::host::Bins;
use crate::measure::Config;
use crate::report::{bytes, ratio, time, Samples};

/// Benchmarks wsfs (persist, attach, reads, bytes fetched and stored) against
/// `tar -c | zstd -3` and reading an extracted tree natively. Every ratio is
/// wsfs / baseline, both measured in this run; times are medians of --runs.
#[derive(Parser)]
#[command(name = "wsfs-bench", version)]
struct Args {
    /// The tree to measure; default: a corpus of real source files copied
    /// from ~/.cargo/registry/src into --corpus-dir.
    #[arg(long)]
    tree: Option<PathBuf>,
    /// Measure a generated tree shaped like a dependency folder (packages of
    /// small js/json/md files, nested, compressing ~35x) of this many files,
    /// built once under --corpus-dir as deps-N.
    #[arg(long, value_name = "FILES", conflicts_with = "tree")]
    deps: Option<usize>,
    /// Size of the default corpus, in files.
    #[arg(long, default_value_t = 25_000)]
    files: usize,
    /// Where default corpora are built once and kept.
    #[arg(long, default_value = "/var/tmp/wsfs-bench-corpus")]
    corpus_dir: PathBuf,
    /// Also time cold attach vs extraction on default corpora of these file
    /// counts (e.g. 2000,8000), to see whether attach stays flat.
    #[arg(long, value_delimiter = ',')]
    scale: Vec<usize>,
    /// Repetitions of each short measurement (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Directory holding `wsfs` and `wsfsd`; default: this executable's.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the scratch directory (remote, state dirs, archives) is made.
    #[arg(long, default_value = "/var/tmp")]
    work_dir: PathBuf,
    /// Seed of the random 5% sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Do not try `echo 3 > /proc/sys/vm/drop_caches` for a cold native read.
    #[arg(long)]
    no_drop_caches: bool,
    /// Skip the per-step view measurements (isolated attach, writes in an
    /// isolated view, detach --persist of a 1% change).
    #[arg(long)]
    no_views: bool,
    /// Skip the pipeline measurement (1 producer + 8 consumer tasks in
    /// `wsfs run`, hand-over by a layer vs by a tar.zst).
    #[arg(long)]
    no_pipeline: bool,
    /// Skip the S3 phase (by default it runs when Garage is installed).
    #[arg(long)]
    no_s3: bool,
    /// S3 phase: latency the proxy adds to every request, in ms (and once
    /// more to every new connection).
    #[arg(long, default_value_t = 20)]
    s3_latency_ms: u64,
    /// S3 phase: the proxy's server → client bandwidth in Mbit/s, shared by
    /// all connections (0: no cap).
    #[arg(long, default_value_t = 1000.0)]
    s3_mbit: f64,
    /// Run only these phases (comma-separated); --no-views,
    /// --no-pipeline and --no-s3 still apply.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Phase>,
    /// Internal, a pipeline step's reader: reads every file below DIR (or
    /// those listed in --read-list) and prints the counts.
    #[arg(long, hide = true, value_name = "DIR")]
    read_tree: Option<PathBuf>,
    /// Internal: a file of NUL-separated paths relative to --read-tree.
    #[arg(long, hide = true, requires = "read_tree")]
    read_list: Option<PathBuf>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Measure nothing: print the table of headline figures of these runs
    /// (files `--json` wrote), as the README shows it.
    #[arg(long, value_name = "RUN.json", num_args = 1.., conflicts_with_all = ["json", "read_tree"])]
    headline: Vec<PathBuf>,
    /// With --headline: write the table into this README's generated block
    /// instead of printing it.
    #[arg(long, value_name = "README", requires = "headline")]
    readme: Option<PathBuf>,
}

/// A part of the bench, in the order they run.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// Persist, attach, full and partial reads, stored bytes.
    Main,
    /// The learned layout: a 5% read, a re-persist, the same 5% read again.
    Layout,
    /// Cold attach vs extraction at the --scale sizes.
    Scale,
    /// wsfs vs the lazy peers (squashfuse, ratarmount), by default when installed.
    Peers,
    /// wsfs on S3 vs a tar.zst downloaded from S3, through a latency-injecting proxy.
    S3,
    /// The pipeline of 1 producer + 8 consumers.
    Pipeline,
    /// kill -9 and `wsfs daemon restart` of wsfsd under readers.
    Takeover,
    /// Per-step views (last: its discards delete many files).
    Views,
}

impl Args {
    fn runs(&self, phase: Phase) -> bool {
        let skipped = match phase {
            Phase::Views => self.no_views,
            Phase::Pipeline => self.no_pipeline,
            Phase::S3 => self.no_s3,
            Phase::Main | Phase::Layout | Phase::Scale | Phase::Peers | Phase::Takeover => false,
        };
        let chosen = match phase {
            _ if !self.only.is_empty() => self.only.contains(&phase),
            Phase::S3 => garage_installed(),
            Phase::Peers => lazy_peers::Tools::find().is_ok(),
            _ => true,
        };
        !skipped && chosen
    }
}

/// Whether `wsfs_tests::s3` finds a Garage binary (it panics when not).
fn garage_installed() -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::panic::catch_unwind(wsfs_tests::s3::garage_bin).is_ok();
    std::panic::set_hook(hook);
    found
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (&args.read_tree, &args.readme) {
        (Some(root), _) => pipeline::read_and_print(root, args.read_list.as_deref()),
        (None, _) if args.headline.is_empty() => run(args),
        (None, None) => headline::render(&args.headline).map(|table| print!("{table}")),
        (None, Some(readme)) => headline::render(&args.headline)
            .and_then(|table| headline::write_readme(readme, &args.headline, &table)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let bins = Bins::find(args.bin_dir.as_deref())?;
    std::fs::create_dir_all(&args.work_dir)?;
    let work = tempfile::Builder::new()
        .prefix("wsfs-bench-")
        .tempdir_in(&args.work_dir)
        .with_context(|| format!("cannot create a scratch dir in {}", args.work_dir.display()))?;
    let result = bench(&args, &bins, work.path());
    // Every host has been dropped (shut down) by now: nothing may stay mounted.
    let left = host::mounts_under(work.path());
    if !left.is_empty() {
        let kept = work.keep();
        bail!("mounts left behind under {}: {}", kept.display(), left.join(", "));
    }
    // Everything the runs made is deleted only now (see `measure::new_dir`).
    let size = measure::dir_bytes(work.path()).map_or_else(|e| format!("? ({e})"), bytes);
    eprintln!("removing the scratch dir {} ({size})", work.path().display());
    let removed = work.close().context("cannot remove the scratch dir");
    result.and(removed)
}

fn bench(args: &Args, bins: &Bins, work: &Path) -> Result<()> {
    let root = match (&args.tree, args.deps) {
        (Some(tree), _) => tree.clone(),
        (None, Some(files)) => deps_tree::deps_tree(&args.corpus_dir, files)?,
        (None, None) => corpus::default_corpus(&args.corpus_dir, args.files)?,
    };
    let tree = Tree::scan(&root)?;
    // Built (when missing) before anything is timed.
    let scales = if args.runs(Phase::Scale) {
        &args.scale[..]
    } else {
        &[]
    };
    let small_trees = scales
        .iter()
        .map(|&files| Tree::scan(&corpus::default_corpus(&args.corpus_dir, files)?))
        .collect::<Result<Vec<_>>>()?;
    let command = command_line();
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let header = format!(
        "tree {}: {} files, {} ({} bytes), {} dirs, {} symlinks; {} runs, medians; command: `{command}`",
        tree.root.display(),
        tree.files.len(),
        bytes(tree.bytes),
        tree.bytes,
        tree.dirs,
        tree.symlinks,
        args.runs,
    );
    eprintln!("{header}");
    let cfg = Config::new(
        bins,
        work.to_path_buf(),
        args.runs as usize,
        args.seed,
        !args.no_drop_caches,
    );
    let (mut outcome, mut scale) = (measure::Outcome::default(), Vec::new());
    if args.runs(Phase::Main) {
        outcome = measure::suite(&cfg, &tree)?;
        scale.push((
            tree.files.len(),
            tree.bytes,
            outcome.attach.clone(),
            outcome.extract.clone(),
        ));
    }
    if args.runs(Phase::Layout) {
        layout::suite(&cfg, &tree, &mut outcome)?;
    }
    for small in &small_trees {
        let (attach, extract) = measure::attach_only(&cfg, small)?;
        scale.push((small.files.len(), small.bytes, attach, extract));
    }
    scale.sort_by_key(|s| s.0);
    if args.runs(Phase::Peers) {
        lazy_peers::suite(&cfg, &tree, &mut outcome)?;
    } else if args.only.is_empty() {
        if let Err(e) = lazy_peers::Tools::find() {
            eprintln!("peers phase skipped: {e:#}");
        }
    }
    if args.runs(Phase::S3) {
        let net = s3::Net {
            latency: std::time::Duration::from_millis(args.s3_latency_ms),
            mbit: args.s3_mbit,
        };
        s3::suite(&cfg, &tree, &net, &mut outcome)?;
    } else if args.only.is_empty() && !args.no_s3 {
        eprintln!("S3 phase skipped: Garage not found (scripts/setup-s3 installs it, or set WSFS_GARAGE)");
    }
    if args.runs(Phase::Pipeline) {
        pipeline::suite(&cfg, &tree, &mut outcome)?;
    }
    if args.runs(Phase::Takeover) {
        takeover::suite(&cfg, &tree, &mut outcome)?;
    }
    // Last: the views' discards make the daemons delete many files, which
    // slows file creation for a minute or more afterwards.
    if args.runs(Phase::Views) {
        views::suite(&cfg, &tree, &mut outcome)?;
    }
    cfg.progress("done");

    if args.json {
        let value = json!({
            "command": command,
            "date": started,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "tree": { "root": tree.root, "files": tree.files.len(), "bytes": tree.bytes, "dirs": tree.dirs, "symlinks": tree.symlinks },
            "runs": args.runs,
            "rows": report::json_rows(&outcome.rows),
            "facts": outcome.facts,
            "scale": scale.iter().map(|(files, bytes, attach, extract)| json!({
                "files": files,
                "bytes": bytes,
                "attach_first_byte_ms": attach.median().as_secs_f64() * 1e3,
                "extract_ms": extract.median().as_secs_f64() * 1e3,
            })).collect::<Vec<_>>(),
        });
        println!("{value}");
        return Ok(());
    }
    println!("{header}\n");
    print!("{}", report::table(&outcome.rows));
    println!();
    for line in &outcome.details {
        println!("- {line}");
    }
    if !small_trees.is_empty() {
        println!("\n{}", scale_table(&scale));
    }
    Ok(())
}

/// Cold attach until the first byte vs extraction, per tree size.
fn scale_table(scale: &[(usize, u64, Samples, Samples)]) -> String {
    let mut out = String::from(
        "| files | bytes | cold attach → first byte | zstd -d \\| tar -x | ratio |\n|---|---|---|---|---|\n",
    );
    for (files, size, attach, extract) in scale {
        let (a, e) = (attach.median(), extract.median());
        let r = a.as_secs_f64() / e.as_secs_f64();
        out += &format!(
            "| {files} | {} | {} | {} | {} |\n",
            bytes(*size),
            time(a),
            time(e),
            ratio(r)
        );
    }
    out
}

/// This process's command line, shell-quoted where needed.
fn command_line() -> String {
    let quote = |a: String| {
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::env::args().map(quote).collect::<Vec<_>>().join(" ")
}
