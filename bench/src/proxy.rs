//! A TCP proxy that makes a local server look far away: every request waits
//! one round trip, a new connection one more (the TCP handshake), and the
//! replies of all connections share one link of a fixed bandwidth.
//!
//! Requests are found without parsing HTTP: on a connection, the first
//! client→server chunk after the server last sent something starts a request
//! (HTTP/1.1 clients do not pipeline). Threads: one accepting, two per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What went through the proxy.
#[derive(Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests (each delayed by the latency).
    pub requests: AtomicU64,
    /// Bytes server → client.
    pub bytes_down: AtomicU64,
}

/// The delays, shared by every connection.
struct Link {
    latency: Duration,
    /// Bytes per second server → client; `None`: no cap.
    rate: Option<f64>,
    /// When the link is free again (pacing: no burst allowance).
    free_at: Mutex<Instant>,
    stats: Arc<Stats>,
}

impl Link {
    /// Waits until `n` more bytes have crossed the link.
    fn pace(&self, n: usize) {
        let Some(rate) = self.rate else { return };
        let done = {
            let mut free_at = self.free_at.lock().expect("not poisoned");
            *free_at = (*free_at).max(Instant::now()) + Duration::from_secs_f64(n as f64 / rate);
            *free_at
        };
        thread::sleep(done.saturating_duration_since(Instant::now()));
    }
}

/// A running proxy; stops accepting when dropped (open connections run on).
pub struct Proxy {
    addr: SocketAddr,
    latency: Duration,
    stop: Arc<AtomicBool>,
    /// What went through it so far.
    pub stats: Arc<Stats>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`, with
    /// `latency` per request and `mbit` Mbit/s server → client (0: no cap).
    pub fn start(upstream: SocketAddr, latency: Duration, mbit: f64) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("proxy: cannot listen")?;
        let stats = Arc::new(Stats::default());
        let link = Arc::new(Link {
            latency,
            rate: (mbit > 0.0).then_some(mbit * 1e6 / 8.0),
            free_at: Mutex::new(Instant::now()),
            stats: stats.clone(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let proxy = Proxy {
            addr: listener.local_addr()?,
            latency,
            stop,
            stats,
        };
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Relaxed) {
                    break;
                }
                if let Ok(client) = client {
                    let link = link.clone();
                    thread::spawn(move || connection(client, upstream, &link));
                }
            }
        });
        Ok(proxy)
    }

    /// The delay added to every request.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accepting thread
    }
}

/// Serves one client connection until both sides have closed it.
fn connection(client: TcpStream, upstream: SocketAddr, link: &Arc<Link>) {
    link.stats.connections.fetch_add(1, Relaxed);
    thread::sleep(link.latency); // the handshake's round trip
    let Ok(server) = TcpStream::connect(upstream) else {
        return; // the client sees its connection closed
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    // Whether the client's next chunk starts a request.
    let answered = Arc::new(AtomicBool::new(true));
    let (up_link, up_answered) = (link.clone(), answered.clone());
    let up = thread::spawn(move || {
        pump(client2, server2, |_| {
            if up_answered.swap(false, Relaxed) {
                up_link.stats.requests.fetch_add(1, Relaxed);
                thread::sleep(up_link.latency);
            }
        })
    });
    // Garage does not set TCP_NODELAY: a reply's headers and body leave in
    // two writes, and the body waits for the ACK of the headers. Acknowledge
    // at once, as a client talking to it directly with no delayed ACK would;
    // otherwise every small GET stalls ~40 ms on the delayed-ACK timer, a
    // cost of that server's sockets, not of the network simulated here.
    let server_fd = server.as_raw_fd();
    pump(server, client, |n| {
        quick_ack(server_fd);
        link.pace(n);
        link.stats.bytes_down.fetch_add(n as u64, Relaxed);
        answered.store(true, Relaxed);
    });
    let _ = up.join();
}

/// Asks the kernel to acknowledge what `fd` received without delay (it
/// falls back to delayed ACKs by itself, so this is set after every read).
fn quick_ack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Copies `from` to `to`, calling `before(n)` before writing each chunk of
/// `n` bytes; at the end of `from` (or an error) shuts both directions down
/// that this copy owns.
fn pump(mut from: TcpStream, mut to: TcpStream, mut before: impl FnMut(usize)) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                before(n);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
