//! wsfs on S3 vs downloading a tar.zst from S3 and extracting it, over a
//! simulated network: a real S3 server (Garage, single node, started by
//! `wsfs_tests::s3`) behind [`crate::proxy`]; every timed request of both
//! sides goes through the proxy.
//!
//! Untimed setup: the tree as a tar.zst (zstd -3 -T1) uploaded to the bucket
//! directly, and persisted once by a host on the proxy. Per run, in an order
//! that alternates: the baseline downloads the archive through the proxy to a
//! file (as `actions/cache` does), extracts it, then reads one file's first
//! byte, each 5% read pattern (a random sample, a subtree: see
//! [`patterns`]) and every file natively; wsfs, for each way of attaching
//! ([`ATTACHES`]), on fresh hosts (cold caches): attach → first byte → every
//! file, and for each pattern attach → its files.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{path::Path as Key, ObjectStore as _, ObjectStoreExt as _};
use serde_json::{json, Value};
use wsfs_tests::s3::{S3Server, BUCKET};

use crate::corpus::Tree;
use crate::host::field;
use crate::measure::{check, new_dir, patterns, Config, Outcome, Pattern, NO_PREFETCH};
use crate::peers;
use crate::proxy::{Proxy, Stats};
use crate::read::{self, Read};
use crate::report::{bytes, time, Qty, Row, Samples, Target};

/// The workspace the tree is persisted to.
const WS: &str = "bench/tree";
/// wsfs's objects: `WSFS_REMOTE=s3://BUCKET/PREFIX`.
const PREFIX: &str = "remote";
/// The baseline's archive.
const ARCHIVE: &str = "archive/tree.tar.zst";

/// The simulated network.
pub struct Net {
    /// Added to every request (and once more to every new connection).
    pub latency: Duration,
    /// Server → client bandwidth shared by all connections, Mbit/s (0: no cap).
    pub mbit: f64,
}

impl Net {
    fn describe(&self) -> String {
        let cap = if self.mbit > 0.0 {
            format!("{} Mbit/s server → client, shared by all connections", self.mbit)
        } else {
            "no bandwidth cap".into()
        };
        format!(
            "+{} per request (+{} more per new connection), {cap}",
            time(self.latency),
            time(self.latency)
        )
    }
}

/// A way of attaching, measured with rows of its own.
struct Attach {
    /// `wsfs attach` and these flags.
    flags: &'static [&'static str],
    /// The target of its cold full read.
    full_target: Target,
}

/// The ways of attaching measured, in the order each run takes them:
/// `--no-prefetch` (what a first run gets: lazy reads, no history), then no
/// flag (fetching ahead the files the same reader read in the previous
/// attach, the `--no-prefetch` one of this run: what every later run of a
/// pipeline gets), then `--prefetch` (the whole tree). Without `--no-prefetch`
/// the cold full read has the target of being no slower than the baseline.
const ATTACHES: &[Attach] = &[
    Attach {
        flags: &[NO_PREFETCH],
        full_target: Target::None,
    },
    Attach {
        flags: &[],
        full_target: Target::AtMost(1.0),
    },
    Attach {
        flags: &["--prefetch"],
        full_target: Target::AtMost(1.0),
    },
];

impl Attach {
    /// Its flags for a consumer reading `pattern`: each pattern keeps its
    /// own access trace, as each task of `wsfs run` does.
    fn flags_for(&self, pattern: &str) -> Vec<String> {
        let mut flags: Vec<String> = self.flags.iter().map(|f| f.to_string()).collect();
        flags.extend(["--prefetch-key".to_string(), format!("bench/{pattern}")]);
        flags
    }

    fn command(&self) -> String {
        ["wsfs attach"]
            .iter()
            .chain(self.flags)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One side's timings, one per run.
#[derive(Default)]
struct Side {
    /// Until the first byte of the probe.
    first: Samples,
    /// Until every file was read.
    full: Samples,
    /// Per read pattern ([`Setup::patterns`]): until its files were read
    /// (wsfs: each on another fresh host).
    partial: [Samples; 2],
}

/// What one way of attaching saw in the last run.
#[derive(Default)]
struct Seen {
    /// Proxy counters: before attach, at the first byte, after the full read.
    attach_proxy: [Counters; 3],
    /// `wsfs status` after the full read.
    full_status: Value,
    /// Per read pattern (each on another host): `wsfs status` after it, and
    /// the proxy counters around it (attach included).
    partial: [(Value, [Counters; 2]); 2],
}

/// The proxy's (connections, requests, bytes down).
type Counters = (u64, u64, u64);

/// [`Counters`] so far.
fn counters(stats: &Stats) -> Counters {
    (
        stats.connections.load(Relaxed),
        stats.requests.load(Relaxed),
        stats.bytes_down.load(Relaxed),
    )
}

/// The bucket through an S3 client of its own (the `object_store` crate,
/// as wsfs uses), for the archive and for listing wsfs's objects.
struct Bucket {
    runtime: tokio::runtime::Runtime,
    store: AmazonS3,
}

impl Bucket {
    /// The bucket at `endpoint`, with the credentials of `env` (`AWS_*`).
    fn new(endpoint: &str, env: &[(String, String)]) -> Result<Bucket> {
        let var = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .with_context(|| format!("no {key} for the S3 server"))
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_region(var("AWS_REGION")?)
            .with_access_key_id(var("AWS_ACCESS_KEY_ID")?)
            .with_secret_access_key(var("AWS_SECRET_ACCESS_KEY")?)
            .with_bucket_name(BUCKET)
            .build()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Bucket { runtime, store })
    }

    /// PUTs the file `from` as `key`.
    fn upload(&self, from: &Path, key: &str) -> Result<()> {
        let data = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        self.runtime
            .block_on(self.store.put(&Key::from(key), data.into()))?;
        Ok(())
    }

    /// GETs `key` into the new file `to`, as it arrives; returns its size.
    fn download(&self, key: &str, to: &Path) -> Result<u64> {
        let mut out = File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
        self.runtime.block_on(async {
            let mut stream = self.store.get(&Key::from(key)).await?.into_stream();
            let mut n = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                out.write_all(&chunk)?;
                n += chunk.len() as u64;
            }
            Ok(n)
        })
    }

    /// Total size of the objects under `prefix/`, per next path component.
    fn sizes(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let listed: Vec<_> = self
            .runtime
            .block_on(self.store.list(Some(&Key::from(prefix))).collect());
        let mut sizes: Vec<(String, u64)> = Vec::new();
        for meta in listed {
            let meta = meta?;
            let part = meta
                .location
                .parts()
                .nth(1)
                .map_or_else(String::new, |p| p.as_ref().to_string());
            match sizes.iter_mut().find(|(k, _)| *k == part) {
                Some((_, total)) => *total += meta.size,
                None => sizes.push((part, meta.size)),
            }
        }
        Ok(sizes)
    }
}

/// Everything the runs share.
struct Setup<'a> {
    tree: &'a Tree,
    /// `WSFS_REMOTE` and the environment reaching the bucket through the proxy.
    url: String,
    env: Vec<(String, String)>,
    proxy: Proxy,
    /// The bucket through the proxy (the baseline's download).
    proxied: Bucket,
    archive_bytes: u64,
    /// The 5% read patterns: the random sample, the subtree.
    patterns: [Pattern<'a>; 2],
    tree_read: Read,
}

/// Runs the S3 phase (`cfg.runs` interleaved runs) and adds its rows,
/// details and facts (as `facts.s3`) to `outcome`.
pub fn suite(cfg: &Config, tree: &Tree, net: &Net, outcome: &mut Outcome) -> Result<()> {
    let dir = cfg.fresh_dir("s3")?;
    cfg.progress(
        "s3: start Garage and the proxy; tar | zstd the tree and upload it; persist it through the proxy",
    );
    let server = S3Server::start(&dir.join("garage"));
    let upstream: SocketAddr = server
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .context("the S3 server's address")?;
    let proxy = Proxy::start(upstream, net.latency, net.mbit)?;
    let mut env = server.env();
    for (key, value) in &mut env {
        if key == "AWS_ENDPOINT" {
            *value = proxy.endpoint();
        }
    }
    let direct = Bucket::new(&server.endpoint(), &env)?;
    let archive = dir.join("tree.tar.zst");
    peers::tar_zstd(&tree.root, &archive, 1)?;
    direct.upload(&archive, ARCHIVE)?;
    let url = server.url(PREFIX);
    let persisted = cfg.host_on(&url, &env)?.persist(WS, &tree.root)?;
    let stored = direct.sizes(PREFIX)?;
    let s = Setup {
        tree,
        proxied: Bucket::new(&proxy.endpoint(), &env)?,
        url,
        env,
        proxy,
        archive_bytes: std::fs::metadata(&archive)?.len(),
        patterns: patterns(tree, cfg.seed),
        tree_read: Read {
            files: tree.files.len() as u64,
            bytes: tree.bytes,
        },
    };

    let (mut base, mut download, mut extract) = (Side::default(), Samples::default(), Samples::default());
    let mut wsfs: Vec<(Side, Seen)> = ATTACHES.iter().map(|_| Default::default()).collect();
    for run in 0..cfg.runs {
        let wsfs_first = run % 2 == 1;
        for wsfs_side in [wsfs_first, !wsfs_first] {
            if !wsfs_side {
                peers::sync();
                cfg.progress_run(
                    "s3: GET the tar.zst through the proxy, extract, read natively",
                    run,
                );
                let (d, e) = baseline(cfg, &s, &mut base)?;
                download.0.push(d);
                extract.0.push(e);
                continue;
            }
            for (attach, (side, seen)) in ATTACHES.iter().zip(&mut wsfs) {
                peers::sync();
                cfg.progress_run(
                    &format!(
                        "s3: {}, first byte, every file; the 5% sample; the 5% subtree",
                        attach.command()
                    ),
                    run,
                );
                wsfs_run(cfg, &s, attach, side, seen)?;
            }
        }
    }
    drop(server);

    let stored_bytes: u64 = stored.iter().map(|(_, b)| b).sum();
    let extracted = "S3 GET of the tar.zst + zstd -d | tar -x";
    for (attach, (side, seen)) in ATTACHES.iter().zip(&wsfs) {
        let cmd = attach.command();
        outcome.rows.extend([
            Row::times(
                format!("S3: cold `{cmd}` → first byte of one file"),
                &side.first,
                &base.first,
                extracted,
                Target::Faster(100.0),
            ),
            Row::times(
                format!("S3: cold `{cmd}` + full read"),
                &side.full,
                &base.full,
                &format!("{extracted} + native read"),
                attach.full_target,
            )
            .headline(),
        ]);
        for (i, pattern) in s.patterns.iter().enumerate() {
            let name = &pattern.name;
            outcome.rows.extend([
                Row::times(
                    format!("S3: cold `{cmd}` + reading {name}"),
                    &side.partial[i],
                    &base.partial[i],
                    &format!("{extracted} + reading them natively"),
                    Target::None,
                ),
                Row::new(
                    format!("S3: bytes fetched reading {name} after `{cmd}`"),
                    Qty::Bytes(field(&seen.partial[i].0, "remote_bytes_fetched")?),
                    Qty::Bytes(stored_bytes),
                    "stored bytes",
                    Target::AtMost(0.1),
                ),
            ]);
        }
    }

    let parts: Vec<String> = stored.iter().map(|(k, b)| format!("{k} {}", bytes(*b))).collect();
    outcome.details.extend([
        format!(
            "S3: Garage (single node, 127.0.0.1) behind the bench's proxy: {}; the tree stored as {} \
             ({}; persist reported stored_bytes {}) vs a tar.zst of {}",
            net.describe(),
            bytes(stored_bytes),
            parts.join(", "),
            bytes(field(&persisted, "stored_bytes")?),
            bytes(s.archive_bytes),
        ),
        format!(
            "S3, baseline per run: GET of the tar.zst {} ({} ms median: {:.0} MB/s), extraction {}; \
             + first byte {}, + full read {}{}",
            download.runs(),
            download.median().as_millis(),
            s.archive_bytes as f64 / download.median().as_secs_f64() / 1e6,
            extract.runs(),
            base.first.runs(),
            base.full.runs(),
            partial_runs(&s, &base),
        ),
    ]);
    outcome
        .details
        .extend(s.patterns.iter().map(|p| format!("S3, {}", p.describe())));
    for (attach, (side, seen)) in ATTACHES.iter().zip(&wsfs) {
        outcome
            .details
            .extend(wsfs_details(&s, attach, side, seen, stored_bytes)?);
    }
    outcome.facts["s3"] = json!({
        "latency_ms": net.latency.as_secs_f64() * 1e3,
        "mbit": net.mbit,
        "stored_bytes": stored.iter().map(|(k, b)| (k.clone(), json!(b))).collect::<serde_json::Map<_, _>>(),
        "tar_zst_bytes": s.archive_bytes,
        "download_ms": download.median().as_secs_f64() * 1e3,
        "extract_ms": extract.median().as_secs_f64() * 1e3,
        "wsfs": ATTACHES.iter().zip(&wsfs).map(|(attach, (side, seen))| {
            let mut facts = json!({
                "command": attach.command(),
                "proxy_at_first_byte": seen.attach_proxy[1],
                "proxy_after_full_read": seen.attach_proxy[2],
                "proxy_before": seen.attach_proxy[0],
                "status_after_full_read": seen.full_status,
            });
            for (i, pattern) in s.patterns.iter().enumerate() {
                let (status, _) = &seen.partial[i];
                facts[format!("status_after_{}_read", pattern.key)] = status.clone();
                facts[pattern.key] = pattern.facts(field(status, "remote_bytes_fetched")?, stored_bytes);
                facts[pattern.key]["ms"] = json!(side.partial[i].median().as_secs_f64() * 1e3);
                facts[pattern.key]["baseline_ms"] = json!(base.partial[i].median().as_secs_f64() * 1e3);
            }
            Ok(facts)
        }).collect::<Result<Vec<_>>>()?,
    });
    Ok(())
}

/// `, + 5% of the files 1/2/3 ms, + a 5% subtree …`: per run, each pattern.
fn partial_runs(s: &Setup, side: &Side) -> String {
    s.patterns
        .iter()
        .zip(&side.partial)
        .map(|(p, t)| format!(", + {} {}", p.name, t.runs()))
        .collect()
}

/// The baseline's run: returns (download, extraction).
fn baseline(cfg: &Config, s: &Setup, side: &mut Side) -> Result<(Duration, Duration)> {
    let dir = cfg.fresh_dir("s3-baseline")?;
    let (archive, dest) = (dir.join("tree.tar.zst"), new_dir(&dir.join("tree"))?);
    let start = Instant::now();
    let n = s.proxied.download(ARCHIVE, &archive)?;
    let downloaded = start.elapsed();
    ensure!(
        n == s.archive_bytes,
        "downloaded {n} bytes, uploaded {}",
        s.archive_bytes
    );
    peers::extract(&archive, &dest)?;
    let extracted = start.elapsed();
    read::first_byte(&dest.join(&s.tree.probe().path))?;
    side.first.0.push(start.elapsed());
    for (pattern, samples) in s.patterns.iter().zip(&mut side.partial) {
        let start = Instant::now();
        pattern.read_under(&dest)?;
        samples.0.push(extracted + start.elapsed());
    }
    let start = Instant::now();
    check(read::read_tree(&dest)?, s.tree_read, &dest)?;
    side.full.0.push(extracted + start.elapsed());
    Ok((downloaded, extracted - downloaded))
}

/// wsfs's run for `attach`: fresh hosts (cold caches), one for the first
/// byte and the full read, one per read pattern.
fn wsfs_run(cfg: &Config, s: &Setup, attach: &Attach, side: &mut Side, seen: &mut Seen) -> Result<()> {
    let host = cfg.host_on(&s.url, &s.env)?;
    let before = counters(&s.proxy.stats);
    let start = Instant::now();
    let mountpoint = host.attach_with(WS, &attach.flags_for("full"))?;
    read::first_byte(&mountpoint.join(&s.tree.probe().path))?;
    side.first.0.push(start.elapsed());
    let first = counters(&s.proxy.stats);
    check(read::read_tree(&mountpoint)?, s.tree_read, &mountpoint)?;
    side.full.0.push(start.elapsed());
    seen.attach_proxy = [before, first, counters(&s.proxy.stats)];
    seen.full_status = host.status()?;
    drop(host);

    for ((pattern, samples), (status, proxy)) in
        s.patterns.iter().zip(&mut side.partial).zip(&mut seen.partial)
    {
        let host = cfg.host_on(&s.url, &s.env)?;
        let before = counters(&s.proxy.stats);
        let start = Instant::now();
        pattern.read_under(&host.attach_with(WS, &attach.flags_for(pattern.key))?)?;
        samples.0.push(start.elapsed());
        *proxy = [before, counters(&s.proxy.stats)];
        *status = host.status()?;
    }
    Ok(())
}

/// Per-run times and what crossed the proxy, for one way of attaching.
fn wsfs_details(s: &Setup, attach: &Attach, side: &Side, seen: &Seen, stored: u64) -> Result<Vec<String>> {
    let [p0, p1, p2] = seen.attach_proxy;
    let full = &seen.full_status;
    let gets = |v: &Value| field(v, "remote_get_requests");
    let full_gets = gets(full)?;
    let full_time = side.full.median().saturating_sub(side.first.median());
    let mut lines = vec![
        format!(
            "S3, `{}` per run: → first byte {}, + full read {}; each on another fresh host{}",
            attach.command(),
            side.first.runs(),
            side.full.runs(),
            partial_runs(s, side),
        ),
        format!(
            "S3, `{}` → first byte (last run): {} requests on {} new connections through the proxy, {} down; \
             then the full read: {} more requests on {} more connections, {} down; the host made {full_gets} \
             GETs in all ({} fetched, {} chunk reads missed its caches, {} hit); {full_gets} GETs × {} = {} \
             if one at a time, vs {} for the whole read (median)",
            attach.command(),
            p1.1 - p0.1,
            p1.0 - p0.0,
            bytes(p1.2 - p0.2),
            p2.1 - p1.1,
            p2.0 - p1.0,
            bytes(p2.2 - p1.2),
            bytes(field(full, "remote_bytes_fetched")?),
            field(full, "cache_misses")?,
            field(full, "cache_hits")?,
            time(s.proxy.latency()),
            time(s.proxy.latency() * full_gets as u32),
            time(full_time),
        ),
    ];
    for (pattern, (status, [q0, q1])) in s.patterns.iter().zip(&seen.partial) {
        lines.push(format!(
            "S3, `{}` + reading {} (last run): {} files, {} in {} GETs (the baseline GETs all {} of the \
             tar.zst); {} requests on {} connections through the proxy",
            attach.command(),
            pattern.name,
            pattern.read.files,
            pattern.fetched(field(status, "remote_bytes_fetched")?, stored),
            gets(status)?,
            bytes(s.archive_bytes),
            q1.1 - q0.1,
            q1.0 - q0.0,
        ));
    }
    Ok(lines)
}
