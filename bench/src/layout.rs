//! The learned layout (`--only layout`): last run's step reads a random 5%
//! of the files (no history: the files are scattered over the layer), the
//! build re-persists the unchanged tree (which packs those files anew, first,
//! in their read order), and this run's step, on a fresh host, reads the
//! same 5%. Each run has a remote of its own; times are medians.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use crate::corpus::Tree;
use crate::host::field;
use crate::measure::{dir_bytes, new_dir, patterns, push, Config, Outcome, Pattern};
use crate::peers;
use crate::report::{bytes, Qty, Row, Samples, Target};

/// The workspace persisted and read.
const WS: &str = "bench/layout";

/// What one run saw.
#[derive(Default)]
struct Seen {
    /// Stored bytes after the first persist, and after the re-persist.
    stored: [u64; 2],
    /// Bytes the re-persist packed anew, and the persist after it.
    new_bytes: [u64; 2],
    /// Bytes fetched reading the sample before and after the re-persist.
    fetched: [u64; 2],
}

/// Timings of every run.
#[derive(Default)]
struct Times {
    /// Cold attach + reading the sample: before and after the re-persist.
    read: [Samples; 2],
    /// Extract the tar.zst + read the sample natively.
    native: Samples,
    /// The re-persist that learns the layout.
    repersist: Samples,
    /// `tar -c | zstd -3 -T1`.
    tar: Samples,
}

/// Runs the phase and adds its rows and facts to `outcome`.
pub fn suite(cfg: &Config, tree: &Tree, outcome: &mut Outcome) -> Result<()> {
    let [sample, _] = patterns(tree, cfg.seed);
    let (mut t, mut seen) = (Times::default(), Seen::default());
    for run in 0..cfg.runs {
        seen = one_run(cfg, tree, &sample, run, &mut t)?;
    }
    let stored_after = Qty::Bytes(seen.stored[1]);
    outcome.rows.extend([
        Row::new(
            format!("layout: bytes fetched reading {} (no history)", sample.name),
            Qty::Bytes(seen.fetched[0]),
            Qty::Bytes(seen.stored[0]),
            "stored bytes",
            Target::None,
        ),
        Row::new(
            format!(
                "layout: bytes fetched reading the same {} as the last run's step, after a re-persist",
                sample.name
            ),
            Qty::Bytes(seen.fetched[1]),
            stored_after,
            "stored bytes, after the re-persist",
            Target::AtMost(0.1),
        )
        .headline(),
        Row::times(
            format!(
                "layout: cold attach + reading the same {}, after a re-persist",
                sample.name
            ),
            &t.read[1],
            &t.native,
            "zstd -d | tar -x + reading them natively",
            Target::AtMost(1.0),
        ),
        Row::times(
            "layout: the same, before the re-persist (no history)",
            &t.read[0],
            &t.native,
            "zstd -d | tar -x + reading them natively",
            Target::None,
        ),
        Row::times(
            "layout: the re-persist that packs the traced files anew",
            &t.repersist,
            &t.tar,
            "tar -c | zstd -3 -T1",
            Target::None,
        ),
        Row::new(
            "layout: stored bytes after the re-persist",
            Qty::Bytes(seen.stored[1]),
            Qty::Bytes(seen.stored[0]),
            "stored bytes before it",
            Target::None,
        ),
    ]);
    outcome.details.push(format!(
        "layout: {}; the re-persist packed {} anew, the next persist {}",
        sample.describe(),
        bytes(seen.new_bytes[0]),
        bytes(seen.new_bytes[1]),
    ));
    outcome.facts["layout"] = json!({
        "files": sample.read.files,
        "content_bytes": sample.read.bytes,
        "stored_bytes": seen.stored,
        "fetched_bytes": seen.fetched,
        "new_bytes": seen.new_bytes,
        "read_ms": t.read.iter().map(|s| ms(s.median())).collect::<Vec<_>>(),
        "native_ms": ms(t.native.median()),
    });
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One run on a remote of its own: persist, the sample read on a fresh
/// host, the re-persist, the sample read on another fresh host, and a last
/// persist (which should find nothing to pack); the baseline in between.
fn one_run(cfg: &Config, tree: &Tree, sample: &Pattern, run: usize, t: &mut Times) -> Result<Seen> {
    cfg.progress_run("layout: persist, a 5% read, re-persist, the same 5% read", run);
    let dir = cfg.fresh_dir("layout")?;
    let (remote, archive) = (dir.join("remote"), dir.join("tree.tar.zst"));
    let mut seen = Seen::default();
    let build = cfg.host(&remote)?;
    build.persist(WS, &tree.root)?;
    seen.stored[0] = dir_bytes(&remote)?;
    seen.fetched[0] = read_sample(cfg, &remote, sample, &mut t.read[0])?;
    push(&mut t.tar, || peers::tar_zstd(&tree.root, &archive, 1))?;
    seen.new_bytes[0] = field(
        &push(&mut t.repersist, || build.persist(WS, &tree.root))?,
        "new_bytes",
    )?;
    seen.stored[1] = dir_bytes(&remote)?;
    seen.fetched[1] = read_sample(cfg, &remote, sample, &mut t.read[1])?;
    seen.new_bytes[1] = field(&build.persist(WS, &tree.root)?, "new_bytes")?;
    let extracted = new_dir(&dir.join("extracted"))?;
    push(&mut t.native, || {
        peers::extract(&archive, &extracted)?;
        sample.read_under(&extracted)
    })?;
    Ok(seen)
}

/// Attaches on a fresh host, reads `sample`, detaches (keeping the access
/// trace); returns the bytes fetched.
fn read_sample(cfg: &Config, remote: &Path, sample: &Pattern, times: &mut Samples) -> Result<u64> {
    let host = cfg.host(remote)?;
    let start = Instant::now();
    let mountpoint = host.attach(WS)?;
    sample.read_under(&mountpoint)?;
    times.0.push(start.elapsed());
    let fetched = field(&host.status()?, "remote_bytes_fetched")?;
    host.detach(&mountpoint, false)?;
    Ok(fetched)
}
