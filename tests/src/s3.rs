//! A real S3-compatible server for a test: Garage in single-node mode on
//! 127.0.0.1, with its own data directory, ports, bucket and key. A test can
//! stop it (an outage) and start it again on the same data.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a starting server may take to answer its health check.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The bucket every server creates.
pub const BUCKET: &str = "wsfs";

/// The Garage binary: `$WSFS_GARAGE`, else the one `scripts/setup` installs
/// (`/var/cache/wsfs/tools/bin/garage`), else `garage` on `PATH`.
pub fn garage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WSFS_GARAGE") {
        return PathBuf::from(bin);
    }
    let installed = Path::new("/var/cache/wsfs/tools/bin/garage");
    if installed.is_file() {
        return installed.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("garage"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("garage not found: run scripts/setup (it installs it) or set WSFS_GARAGE"))
}

/// A running (or stopped) Garage server.
pub struct S3Server {
    dir: PathBuf,
    s3_port: u16,
    admin_port: u16,
    access_key: String,
    secret_key: String,
    child: Option<Child>,
}

/// A port free on 127.0.0.1 and never handed out before by this process.
/// Taken below the kernel's ephemeral range: a port picked by binding to
/// port 0 and releasing it comes from that range, where another server of a
/// parallel test or any outgoing connection may take it before Garage binds
/// it (seen as "connection refused" from a healthy server).
fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Hosts whose ephemeral range starts low leave only the ports below it.
    let start = if ephemeral_low > 11_000 { 10_000 } else { 1_024 };
    let range = start..ephemeral_low.max(start + 1_000);
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..10_000 {
        let port = range.start + rand::random::<u16>() % (range.end - range.start);
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {range:?}")
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

impl S3Server {
    /// Starts a server keeping its data under `dir`; returns once it is ready.
    pub fn start(dir: &Path) -> S3Server {
        fs::create_dir_all(dir).expect("create the server's dir");
        let (s3_port, rpc_port, admin_port) = (free_port(), free_port(), free_port());
        let config = format!(
            "metadata_dir = \"{dir}/meta\"\ndata_dir = \"{dir}/data\"\ndb_engine = \"sqlite\"\n\
             replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
            dir = dir.display(),
            secret = random_hex(32),
        );
        fs::write(dir.join("garage.toml"), config).expect("write garage.toml");
        let mut server = S3Server {
            dir: dir.to_path_buf(),
            s3_port,
            admin_port,
            access_key: format!("GK{}", random_hex(12)),
            secret_key: random_hex(32),
            child: None,
        };
        server.resume();
        server
    }

    /// Starts the stopped server again, on the same data and ports; returns
    /// once its admin API reports it healthy and its S3 API takes connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let log = fs::File::create(self.dir.join("garage.log")).expect("create garage.log");
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", garage_bin().display()));
        self.child = Some(child);
        let started = Instant::now();
        while !(self.healthy() && TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("garage exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "garage not ready after {READY_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (an outage): connections are refused until [`S3Server::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the admin API says the node is healthy (HTTP 200 on `/health`).
    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.admin_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!(
            "GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.admin_port
        );
        let mut reply = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.")
            && reply.split(' ').nth(1) == Some("200")
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The secret key: it must never show in wsfs's output or logs.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The `WSFS_REMOTE` URL of objects under `prefix` of the bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The standard `AWS_*` variables that reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "garage".to_string()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
