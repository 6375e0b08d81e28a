//! An operator turns on the daemon's Prometheus endpoint (`WSFS_METRICS_ADDR`,
//! `wsfsd --metrics-addr`) and scrapes `GET /metrics` over plain HTTP while
//! a job persists, attaches and reads a workspace.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, drop_page_cache, CompareOptions};
use wsfs_tests::json::{str_of, u64_of};
use wsfs_tests::tree::{generate, write_file, TreeSpec};
use wsfs_tests::{Host, HostConfig};

/// Where `host`'s daemon serves metrics, as `wsfs status --json` says.
fn metrics_addr(host: &Host) -> String {
    let status = host.status();
    let addr = str_of(&status, "metrics_addr").to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{status}"
    );
    addr
}

/// One HTTP/1.1 request for `path`: the status code, the headers (names in
/// lower case) and the body.
fn http_get(addr: &str, path: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {response:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap();
    let code = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s[..3].parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {status:?}"));
    let headers = lines
        .map(|l| {
            l.split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"))
        })
        .map(|(k, v)| (k.to_lowercase(), v.trim().to_string()))
        .collect();
    (code, headers, body.to_string())
}

/// A sample's name and its labels (`k="v"` pairs, sorted).
type Series = (String, BTreeMap<String, String>);

/// A scrape: every sample, by series.
struct Scrape(HashMap<Series, f64>);

impl Scrape {
    /// Scrapes `addr`, checking the HTTP answer and the exposition format.
    fn of(addr: &str) -> Scrape {
        let (code, headers, body) = http_get(addr, "/metrics");
        assert_eq!(code, 200, "{body}");
        let content_type = headers.get("content-type").map(String::as_str).unwrap_or("");
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "content type {content_type:?}"
        );
        Scrape(parse_openmetrics(&body))
    }

    /// The value of the sample `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let series = (name.to_string(), labels);
        *self.0.get(&series).unwrap_or_else(|| {
            let mut names: Vec<_> = self.0.keys().map(|(n, l)| format!("{n}{l:?}")).collect();
            names.sort();
            panic!("no sample {series:?} in the scrape: {names:#?}")
        })
    }
}

/// Parses the OpenMetrics text format strictly enough that a wrong
/// exposition fails: every family has one `# TYPE` before its samples,
/// each sample belongs to the family above it with a suffix its type allows,
/// counters end in `_total`, histograms have increasing `le` buckets up to
/// `+Inf` with cumulative counts equal to `_count`, and the text ends with
/// `# EOF`.
fn parse_openmetrics(text: &str) -> HashMap<Series, f64> {
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "the exposition does not end with # EOF:\n{text}"
    );
    assert!(text.ends_with("# EOF\n"), "nothing may follow # EOF");
    let mut samples = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut family: Option<(String, String)> = None;
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, rest) = (parts.next().unwrap(), parts.next().unwrap_or(""), parts.next());
            assert!(
                name.starts_with("wsfs_"),
                "family {name:?} lacks the wsfs_ prefix"
            );
            match kind {
                "TYPE" => {
                    let ty = rest.unwrap_or_else(|| panic!("TYPE without a type: {line:?}"));
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&ty),
                        "unexpected type in {line:?}"
                    );
                    assert!(
                        types.insert(name.to_string(), ty.to_string()).is_none(),
                        "two TYPE lines for {name}"
                    );
                    family = Some((name.to_string(), ty.to_string()));
                }
                "HELP" | "UNIT" => assert!(rest.is_some_and(|r| !r.is_empty()), "empty {kind}: {line:?}"),
                _ => panic!("unknown metadata line {line:?}"),
            }
            continue;
        }
        let (series, value) = parse_sample(line);
        let (name, ty) = family
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any # TYPE: {line:?}"));
        let suffixes: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "gauge" => &[""],
            _ => &["_bucket", "_sum", "_count", "_created"],
        };
        assert!(
            suffixes.iter().any(|s| series.0 == format!("{name}{s}")),
            "sample {line:?} does not belong to {ty} family {name}"
        );
        assert!(value >= 0.0, "negative value in {line:?}");
        assert!(
            samples.insert(series, value).is_none(),
            "sample given twice: {line:?}"
        );
    }
    check_histograms(&types, &samples);
    samples
}

/// `name{k="v",...} value` → its series and value.
fn parse_sample(line: &str) -> (Series, f64) {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("value is not a number: {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
            let labels = inner
                .split(',')
                .map(|pair| {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
                    assert!(
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "bad label name in {line:?}"
                    );
                    (k.to_string(), v.to_string())
                })
                .collect();
            (name, labels)
        }
    };
    assert!(
        name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "bad metric name in {line:?}"
    );
    ((name.to_string(), labels), value)
}

/// Each histogram series: buckets with increasing bounds ending at `+Inf`,
/// cumulative counts, the `+Inf` bucket equal to `_count`, and a `_sum`.
fn check_histograms(types: &HashMap<String, String>, samples: &HashMap<Series, f64>) {
    let mut histograms = 0;
    for (family, _) in types.iter().filter(|(_, ty)| *ty == "histogram") {
        for ((name, labels), count) in samples {
            if *name != format!("{family}_count") {
                continue;
            }
            histograms += 1;
            let mut buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|((n, l), _)| {
                    *n == format!("{family}_bucket") && {
                        let mut l = (*l).clone();
                        l.remove("le").is_some() && l == *labels
                    }
                })
                .map(|((_, l), v)| {
                    let le = &l["le"];
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    (bound, *v)
                })
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(buckets.len() > 1, "{family}{labels:?} has no buckets");
            assert_eq!(
                buckets.last().unwrap(),
                &(f64::INFINITY, *count),
                "{family}{labels:?}: +Inf bucket is not _count"
            );
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{labels:?}: bucket counts are not cumulative: {buckets:?}"
            );
            let sum = (format!("{family}_sum"), labels.clone());
            assert!(samples.contains_key(&sum), "{family}{labels:?} has no _sum");
        }
    }
    assert!(histograms > 0, "no histogram in the scrape");
}

/// Whether a process listens on a TCP port: its socket inodes among the
/// listening sockets of `/proc/net/tcp` and `tcp6`.
fn listening_ports(pid: u64) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            Some(
                l.to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for row in std::fs::read_to_string(table).unwrap().lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; column 9 is the inode.
            if cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}

/// A job persists a tree on host a; on host b, with metrics on, another job
/// attaches it, reads every file twice and persists a file of its own. The
/// operator's scrapes before and after show each step in the counters, and
/// show the same numbers as `wsfs status`.
#[test]
fn an_operator_scrapes_the_counters_a_job_moves() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(11, 300)).unwrap();
    a.persist("metrics/ws", &src, &tree.top_level());

    let b = a.peer(HostConfig::named("b").env("WSFS_METRICS_ADDR", "127.0.0.1:0"));
    let addr = metrics_addr(&b);
    let pid = u64_of(&b.status(), "pid");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        listening_ports(pid),
        [port],
        "the daemon does not listen on {addr} alone"
    );
    let before = Scrape::of(&addr);

    let mnt = b.path("mnt");
    b.attach("metrics/ws", &mnt);
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    drop_page_cache(&mnt).unwrap();
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let own = b.path("own");
    write_file(&own.join("report.txt"), &[7u8; 100_000]).unwrap();
    let persisted = b.persist("metrics/b", &own, &["report.txt"]);
    let after = Scrape::of(&addr);
    let status = b.status();

    let grew = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let op = |op: Option<&'static str>| op.map(|op| ("op", op)).into_iter().collect::<Vec<_>>();
    for (name, by, what) in [
        (
            "wsfs_fuse_request_duration_seconds_count",
            Some("read"),
            "FUSE reads",
        ),
        (
            "wsfs_fuse_request_duration_seconds_sum",
            Some("read"),
            "time in FUSE reads",
        ),
        (
            "wsfs_fuse_request_duration_seconds_count",
            Some("readdirplus"),
            "listings",
        ),
        ("wsfs_remote_requests_total", Some("get"), "remote GETs"),
        ("wsfs_remote_bytes_total", Some("get"), "bytes fetched"),
        (
            "wsfs_remote_request_duration_seconds_count",
            Some("get"),
            "timed GETs",
        ),
        ("wsfs_remote_requests_total", Some("put"), "the persist's PUTs"),
        ("wsfs_cache_misses_total", None, "a cold read's misses"),
        ("wsfs_cache_hits_total", None, "hits on chunks of fetched frames"),
    ] {
        assert!(grew(name, &op(by)) > 0.0, "{name}{by:?} did not count {what}");
    }
    assert_eq!(
        after.get("wsfs_remote_request_errors_total", &op(Some("get"))),
        0.0
    );
    assert_eq!(
        grew("wsfs_persist_duration_seconds_count", &[]),
        1.0,
        "one persist"
    );
    assert_eq!(
        grew("wsfs_persist_bytes_total", &[]),
        u64_of(&persisted, "bytes") as f64
    );
    assert_eq!(grew("wsfs_persist_files_total", &[]), 1.0);
    assert_eq!(
        grew("wsfs_persist_stored_bytes_total", &[]),
        u64_of(&persisted, "stored_bytes") as f64
    );
    assert_eq!(after.get("wsfs_mounts", &[]), 1.0);
    assert_eq!(after.get("wsfs_views", &[("kind", "read-only")]), 1.0);
    assert_eq!(after.get("wsfs_views", &[("kind", "isolated")]), 0.0);
    assert_eq!(before.get("wsfs_mounts", &[]), 0.0);
    assert!(
        after.get("wsfs_cache_bytes", &[]) > 0.0,
        "the frame cache holds nothing"
    );
    assert_eq!(
        after.get("wsfs_cache_budget_bytes", &[]),
        u64_of(&status, "cache_budget_bytes") as f64
    );

    // `wsfs status` reads the same counters (nothing ran between the scrape and it).
    for (metric, by, field) in [
        ("wsfs_remote_requests_total", Some("get"), "remote_get_requests"),
        ("wsfs_remote_bytes_total", Some("get"), "remote_bytes_fetched"),
        ("wsfs_remote_requests_total", Some("put"), "remote_put_requests"),
        ("wsfs_remote_bytes_total", Some("put"), "remote_bytes_stored"),
        ("wsfs_cache_hits_total", None, "cache_hits"),
        ("wsfs_cache_misses_total", None, "cache_misses"),
        ("wsfs_remote_frames_fetched_total", None, "remote_frames_fetched"),
    ] {
        assert_eq!(
            after.get(metric, &op(by)),
            u64_of(&status, field) as f64,
            "{metric} vs {field}: {status}"
        );
    }

    let (code, _, body) = http_get(&addr, "/");
    assert_eq!(code, 404, "{body}");
    b.detach(&mnt);
}

/// The daemon started by `wsfs` gets `WSFS_METRICS_ADDR` through its
/// holder, also when `wsfs daemon restart` replaces it: the next daemon
/// serves on the same fixed port (the old one closed it when it exited).
#[test]
fn metrics_survive_a_daemon_restart() {
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let a = Host::with_config(HostConfig::named("a").env("WSFS_METRICS_ADDR", &free));
    assert_eq!(metrics_addr(&a), free);
    Scrape::of(&free);
    let restarted = a.ok_json(["daemon", "restart", "--json"]);
    assert_eq!(metrics_addr(&a), free);
    assert_ne!(u64_of(&a.status(), "pid"), u64_of(&restarted, "old_pid"));
    let scrape = Scrape::of(&free);
    assert_eq!(scrape.get("wsfs_mounts", &[]), 0.0);
}

/// Without the setting, the daemon listens on no TCP port and `status`
/// shows no metrics address.
#[test]
fn without_the_setting_nothing_listens() {
    let a = Host::new();
    let status = a.status();
    assert_eq!(status["metrics_addr"], Value::Null, "{status}");
    assert_eq!(listening_ports(u64_of(&status, "pid")), Vec::<u16>::new());
}

/// A malformed address, and an address another process listens on, stop
/// the daemon's start with an error naming the address; nothing is left
/// running.
#[test]
fn a_bad_or_taken_address_is_refused_by_name() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().to_string();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "metrics_addr = \"localhost-9464\"\n").unwrap();
    let file_line = format!("config file {}, line 1", config.path().display());
    for (name, addr, says, env) in [
        // From the config file: refused while reading the settings.
        (
            "bad",
            "localhost-9464",
            file_line.as_str(),
            ("WSFS_CONFIG", config.path().to_str().unwrap()),
        ),
        // From the environment: refused by the daemon when it cannot listen.
        (
            "taken",
            taken.as_str(),
            "cannot serve metrics on",
            ("WSFS_METRICS_ADDR", taken.as_str()),
        ),
    ] {
        let host = Host::with_config(HostConfig::named(name).env(env.0, env.1));
        let stderr = host.fails(["status"]);
        assert!(stderr.contains(addr) && stderr.contains(says), "{stderr}");
        assert!(
            !host.socket().exists(),
            "a daemon started anyway: {}",
            host.daemon_log_tail(10)
        );
        assert!(
            !Path::new(&host.state_dir().join("db")).exists(),
            "the store was opened"
        );
        // The user fixes the file (the host's teardown reads it too).
        std::fs::write(config.path(), "").unwrap();
    }
}
