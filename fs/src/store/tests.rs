//! The read path's concurrency on an in-memory remote: one GET per frame
//! however many readers miss it, and never more than [`MAX_REMOTE_GETS`]
//! GETs at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use super::testing::{persist_all, store_on, write_file};
use super::*;
use crate::metrics::RemoteOp;

/// A store on `memory:` holding one 3 MiB file persisted, its manifest's
/// chunks, and none of its frames cached (a persist keeps no chunk in memory).
fn cold_store(dir: &std::path::Path) -> (Store, Vec<ChunkRef>) {
    let store = store_on(dir, "memory:");
    write_file(&dir.join("src/big"), 7, 3 << 20);
    let layer = persist_all(&store, &dir.join("src"), "t/cold").layer;
    let chunks: Vec<ChunkRef> = store.manifest(&layer).unwrap().chunks().copied().collect();
    for chunk in &chunks {
        store.frames.remove(&(chunk.loc.pack, chunk.loc.frame_offset));
    }
    (store, chunks)
}

#[test]
fn readers_of_one_missed_frame_share_one_get() {
    let dir = tempfile::tempdir().unwrap();
    let (store, chunks) = cold_store(dir.path());
    let index = FrameIndex::of(&chunks);
    let chunk = chunks[0];
    let before = store.metrics().remote.requests(RemoteOp::Get);
    let readers = 16;
    let start = Barrier::new(readers);
    let read: Vec<Arc<[u8]>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..readers)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    store.read_chunk(&chunk, &index).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(
        read.iter().all(|bytes| bytes[..] == read[0][..]),
        "readers got different bytes"
    );
    assert_eq!(read[0].len(), chunk.len as usize);
    let gets = store.metrics().remote.requests(RemoteOp::Get) - before;
    assert_eq!(gets, 1, "{readers} readers of one frame made {gets} GETs");
}

#[test]
fn the_gate_lets_in_at_most_its_bound_at_once() {
    let gate = Gate::default();
    let (inside, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let entering = 4 * MAX_REMOTE_GETS;
    let start = Barrier::new(entering);
    std::thread::scope(|scope| {
        for _ in 0..entering {
            scope.spawn(|| {
                start.wait();
                let _pass = gate.enter();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::yield_now();
                inside.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let most = most.into_inner();
    assert!(most <= MAX_REMOTE_GETS, "{most} inside at once");
    assert_eq!(*gate.inside.lock().unwrap(), 0, "a pass was not given back");
}
