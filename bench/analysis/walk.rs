//! Reads every regular file under a directory, as `wsfs-bench` does (listing
//! order, 128 KiB reads, symlinks not followed), and prints files, bytes and
//! seconds. Built and run by `cold_walk.sh`.
use std::io::Read;
use std::path::PathBuf;

fn main() {
    let root = std::env::args().nth(1).expect("usage: walk DIR");
    let started = std::time::Instant::now();
    let (mut files, mut bytes, mut buf) = (0u64, 0u64, vec![0u8; 128 << 10]);
    let mut dirs = vec![PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let mut file = std::fs::File::open(entry.path()).expect("open");
                loop {
                    let n = file.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                }
                files += 1;
            }
        }
    }
    println!("{files} files, {bytes} bytes, {:.2} s", started.elapsed().as_secs_f64());
}
