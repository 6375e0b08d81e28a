//! Reading through a mount as a busy build does: past the page cache, by
//! many readers at once, checking every byte.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Reads `path` with `O_DIRECT`, past the page cache: each read reaches the
/// daemon, as reads of different processes on different pages do.
pub fn read_direct(path: &Path) -> io::Result<Vec<u8>> {
    const BLOCK: usize = 1 << 20;
    let layout = std::alloc::Layout::from_size_align(BLOCK, 4096).expect("a valid layout");
    // SAFETY: a non-zero size; freed below with the same layout.
    let buf = unsafe { std::alloc::alloc(layout) };
    assert!(!buf.is_null(), "out of memory");
    // SAFETY: `buf` holds BLOCK bytes, owned here until dealloc.
    let block = unsafe { std::slice::from_raw_parts_mut(buf, BLOCK) };
    let read = (|| {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        let mut out = Vec::new();
        loop {
            let n = file.read(block)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&block[..n]);
        }
    })();
    // SAFETY: allocated above with `layout`.
    unsafe { std::alloc::dealloc(buf, layout) };
    read
}

/// What the readers saw.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Files read whole and right.
    pub reads: u64,
    /// Each failed or wrong read, or a reader that did not finish.
    pub failures: Vec<String>,
    /// The longest a single file's read took.
    pub longest: Duration,
}

#[derive(Default)]
struct ReaderState {
    stop: AtomicBool,
    report: Mutex<ReadReport>,
    read: Condvar,
}

/// Threads reading files over and over with `O_DIRECT`, each read checked
/// against the file's BLAKE3 hash, until stopped.
pub struct Readers {
    shared: Arc<ReaderState>,
    done: mpsc::Receiver<()>,
    threads: usize,
}

impl Readers {
    /// Starts `threads` readers over `files` (path, expected hash); each
    /// starts at a different file.
    pub fn start(threads: usize, files: Vec<(PathBuf, blake3::Hash)>) -> Readers {
        assert!(!files.is_empty(), "readers need files");
        let shared = Arc::new(ReaderState::default());
        let files = Arc::new(files);
        let (tx, done) = mpsc::channel();
        for t in 0..threads {
            let (shared, files, tx) = (shared.clone(), files.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut i = t * files.len() / threads;
                while !shared.stop.load(Ordering::SeqCst) {
                    let (path, want) = &files[i % files.len()];
                    let started = Instant::now();
                    let outcome = read_direct(path);
                    let took = started.elapsed();
                    let mut report = shared.report.lock().unwrap();
                    report.longest = report.longest.max(took);
                    match outcome {
                        Ok(bytes) if blake3::hash(&bytes) == *want => report.reads += 1,
                        Ok(bytes) => report.failures.push(format!(
                            "{}: wrong bytes ({} read)",
                            path.display(),
                            bytes.len()
                        )),
                        Err(e) => report.failures.push(format!("{}: {e}", path.display())),
                    }
                    drop(report);
                    shared.read.notify_all();
                    i += 1;
                }
                let _ = tx.send(());
            });
        }
        Readers {
            shared,
            done,
            threads,
        }
    }

    /// Files read right so far.
    pub fn reads(&self) -> u64 {
        self.shared.report.lock().unwrap().reads
    }

    /// Waits until `at_least` files were read right in all (or a read
    /// failed); false after `timeout`.
    pub fn wait_for_reads(&self, at_least: u64, timeout: Duration) -> bool {
        let report = self.shared.report.lock().unwrap();
        let (report, waited) = self
            .shared
            .read
            .wait_timeout_while(report, timeout, |r| r.reads < at_least && r.failures.is_empty())
            .unwrap();
        !waited.timed_out() && report.reads >= at_least
    }

    /// Stops the readers and says what they saw; a reader still reading
    /// after `timeout` counts as a failure (a hung read).
    pub fn stop(self, timeout: Duration) -> ReadReport {
        self.shared.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let mut hung = 0;
        for _ in 0..self.threads {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                hung += 1;
            }
        }
        let mut report = std::mem::take(&mut *self.shared.report.lock().unwrap());
        if hung > 0 {
            report.failures.push(format!(
                "{hung} readers still reading {timeout:?} after being stopped"
            ));
        }
        report
    }
}

/// Every regular file under `root` with its hash, sorted by path.
pub fn files_with_hashes(root: &Path) -> Vec<(PathBuf, blake3::Hash)> {
    let mut out: Vec<(PathBuf, blake3::Hash)> = crate::compare::list_paths(root)
        .expect("list the tree")
        .into_iter()
        .map(|rel| root.join(rel))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .map(|p| {
            let hash = crate::compare::hash_file(&p).expect("hash a file");
            (p, hash)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
