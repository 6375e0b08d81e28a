//! `WSFS_BUILD_ID`: a hash (FNV-1a, 64 bits) of the paths and contents of
//! every source file the binaries are built from: the crates they link, the
//! patched fuser, the workspace's `Cargo.toml` and `Cargo.lock`. Not the
//! tests, benches or docs: changing a test does not make the binaries stale.
//! Cargo runs this again when a file under these paths changes (by mtime);
//! the id changes only when a file's content or name does.

use std::path::{Path, PathBuf};

/// Directories (from the workspace root) whose sources go into the binaries.
const DIRS: &[&str] = &[
    "api",
    "fs",
    "pipeline",
    "daemon",
    "holder",
    "cli",
    "build-id",
    "third_party/fuser",
];
/// Files at the workspace root that do.
const FILES: &[&str] = &["Cargo.toml", "Cargo.lock"];
/// Which files of those directories count.
const EXTENSIONS: &[&str] = &["rs", "toml", "proto", "lock"];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = FILES.iter().map(PathBuf::from).collect();
    for dir in DIRS {
        println!("cargo:rerun-if-changed=../{dir}");
        walk(&root, Path::new(dir), &mut files);
    }
    for file in FILES {
        println!("cargo:rerun-if-changed=../{file}");
    }
    files.sort();
    let mut hash = Fnv::default();
    for rel in &files {
        // A file that cannot be read (e.g. not in a build context) counts as empty.
        let data = std::fs::read(root.join(rel)).unwrap_or_default();
        hash.write(rel.to_string_lossy().as_bytes());
        hash.write(&[0]);
        hash.write(&(data.len() as u64).to_le_bytes());
        hash.write(&data);
    }
    println!("cargo:rustc-env=WSFS_BUILD_ID={:016x}", hash.0);
}

/// Adds the source files under `root/dir` (relative to `root`), skipping
/// hidden entries and `target` directories.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let rel = dir.join(&*name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &rel, out),
            Ok(t) if t.is_file() => {
                let counts = rel
                    .extension()
                    .is_some_and(|e| EXTENSIONS.iter().any(|x| e == *x));
                if counts {
                    out.push(rel);
                }
            }
            _ => {}
        }
    }
}

/// FNV-1a, 64 bits: stable across toolchains, no dependency.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
