//! The read path on an in-memory remote: one GET per frame however many
//! readers miss it, never more than [`MAX_REMOTE_GETS`] GETs at once, and
//! frames found through a relocation record once their pack is gone.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
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

/// The scheduler state of thread `tid` of this process (`S`: asleep), if it still runs.
fn thread_state(tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn the_gate_holds_back_one_more_than_its_bound_until_a_pass_is_given_back() {
    let gate = Gate::default();
    let passes: Vec<GatePass<'_>> = (0..MAX_REMOTE_GETS).map(|_| gate.enter()).collect();
    let (entered, tid) = (AtomicBool::new(false), AtomicI32::new(0));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            // SAFETY: gettid has no preconditions.
            tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            let _pass = gate.enter();
            entered.store(true, Ordering::SeqCst);
        });
        // Until the waiter sleeps (in the gate, as it should) or is done.
        while !waiter.is_finished() {
            let tid = tid.load(Ordering::SeqCst);
            if tid != 0 && thread_state(tid).is_none_or(|state| state == 'S') {
                break;
            }
            std::thread::yield_now();
        }
        assert!(
            !entered.load(Ordering::SeqCst),
            "a GET got in while {MAX_REMOTE_GETS} were in flight"
        );
        drop(passes);
        waiter.join().unwrap();
    });
    assert!(entered.into_inner(), "the waiter never got in");
    assert_eq!(*gate.inside.lock().unwrap(), 0, "a pass was not given back");
}

#[test]
fn a_reader_of_a_repacked_pack_follows_its_relocation_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, chunks) = cold_store(dir.path());
    let old = chunks[0].loc.pack;
    // What a repack leaves: the frames copied (here behind 100 bytes of
    // other data, so every offset moves) into a new pack, the record
    // written, the old pack deleted.
    let bytes = store.remote().get(&keys::pack(&old), u64::MAX).unwrap().unwrap();
    let new = PackId::of(b"the repacked pack");
    let shift = 100u64;
    let mut moved = vec![0u8; shift as usize];
    moved.extend_from_slice(&bytes);
    store.remote().put(&keys::pack(&new), moved.into()).unwrap();
    let mut relocation = Relocation::default();
    for frame in FrameIndex::of(&chunks).frames(&old) {
        let to = crate::pack::Moved {
            len: frame.len,
            pack: new,
            offset: frame.offset + shift,
        };
        relocation.insert(frame.offset, to);
    }
    store
        .remote()
        .put(&keys::relocation(&old), relocation.encode().into())
        .unwrap();
    store.remote().delete(&keys::pack(&old)).unwrap();

    let index = FrameIndex::of(&chunks);
    for chunk in &chunks {
        let read = store.read_chunk(chunk, &index).unwrap();
        assert_eq!(ChunkId::of(&read), chunk.id, "a relocated chunk read back wrong");
    }
    assert_eq!(store.metrics().snapshot().read_errors, 0);
}
