//! Persist's own tests on a real store (RocksDB, `file://` remote, files on disk).

use std::path::{Path, PathBuf};

use super::{persist, PersistRequest, READ_WHOLE};
use crate::store::testing::{remote_dir, store_in, write_file};

/// Relative paths of every object under `dir`, sorted.
fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => dirs.push(path),
                false => found.push(path.strip_prefix(dir).unwrap().to_path_buf()),
            }
        }
    }
    found.sort();
    found
}

/// Chunks reach the packer in file order whatever the threads that read
/// them: the same tree gives the same layer and the same packs (ids hash
/// their bytes) on 1, 2 and 5 threads. The tree has many small files (read
/// ahead on workers), a file larger than [`READ_WHOLE`] (streamed in its
/// turn), a hard link and duplicated contents.
#[test]
fn the_layer_does_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..400usize {
        write_file(
            &src.join(format!("d{}/f{i}", i % 7)),
            (i % 50) as u8,
            100 + i * 97,
        );
    }
    write_file(&src.join("d3/big"), 200, READ_WHOLE as usize + 300_000);
    std::fs::hard_link(src.join("d0/f0"), src.join("d6/link")).unwrap();
    let mut seen = Vec::new();
    for threads in [1, 2, 5] {
        let state = dir.path().join(format!("threads-{threads}"));
        let store = store_in(&state);
        let req = PersistRequest {
            root: &src,
            paths: &[".".into()],
            workspace: &"t/threads".parse().unwrap(),
            host: "test",
            cancelled: None,
            caller: None,
            threads,
            prefetch_keys: &[],
        };
        let outcome = persist(&store, &req, &mut |_| {}).unwrap();
        assert_eq!(outcome.files, 402);
        let remote = remote_dir(&state);
        let stored = [objects(&remote.join("packs")), objects(&remote.join("layers"))];
        seen.push((threads, outcome.layer, stored));
    }
    let (_, layer, stored) = &seen[0];
    for (threads, other_layer, other_stored) in &seen[1..] {
        assert_eq!(other_layer, layer, "{threads} threads");
        assert_eq!(other_stored, stored, "{threads} threads");
    }
}
