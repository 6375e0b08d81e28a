//! Compressing and uploading new chunks on threads of their own, so that
//! reading and chunking the next files overlaps with zstd and the network:
//! frames are compressed in parallel and appended to packs in chunk order,
//! so a layer's bytes do not depend on the thread count.

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::{Scope, ScopedJoinHandle};

use bytes::Bytes;

use crate::error::StoreError;
use crate::ids::ChunkId;
use crate::keys;
use crate::manifest::ChunkRef;
use crate::pack::{FrameBuilder, FrameCompressor, PackWriter, PlainFrame, SealedPack};
use crate::store::remote::PendingPut;
use crate::store::Store;

/// Batches queued for compression: bounds memory while the worker is busy.
const QUEUE: usize = 16;
/// Chunks are handed to the packing thread in batches of about this many
/// bytes (one wake-up per batch, not per chunk: most files are one small chunk).
const BATCH_BYTES: usize = 1 << 20;
/// Packs uploading while the next one is being filled.
const UPLOADS_IN_FLIGHT: usize = 2;

/// What the packer produced: where each new chunk lives, and the bytes uploaded.
pub struct Packed {
    /// Every chunk of the new packs.
    pub refs: Vec<ChunkRef>,
    /// Bytes of the pack objects.
    pub stored_bytes: u64,
}

/// New chunks, in order.
type Batch = Vec<(ChunkId, Vec<u8>)>;

/// The sending side of the packing thread.
pub struct Packer<'scope> {
    tx: SyncSender<Batch>,
    batch: Batch,
    batch_bytes: usize,
    worker: ScopedJoinHandle<'scope, Result<Packed, StoreError>>,
}

impl<'scope> Packer<'scope> {
    /// Starts the packing thread in `scope`, compressing on `threads`
    /// threads; its packs start with a salt frame when `salt` is given.
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        store: &'env Store,
        salt: Option<[u8; 16]>,
        threads: usize,
    ) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let worker = scope.spawn(move || pack(store, salt, threads.max(1), rx));
        Packer {
            tx,
            batch: Vec::new(),
            batch_bytes: 0,
            worker,
        }
    }

    /// Queues a new chunk. Fails when the worker stopped on an error: call
    /// [`Packer::finish`] to get it.
    pub fn add(&mut self, id: ChunkId, data: Vec<u8>) -> Result<(), ()> {
        self.batch_bytes += data.len();
        self.batch.push((id, data));
        if self.batch_bytes < BATCH_BYTES {
            return Ok(());
        }
        self.batch_bytes = 0;
        self.tx.send(std::mem::take(&mut self.batch)).map_err(drop)
    }

    /// Seals the last pack, waits for every upload and returns the result.
    pub fn finish(self) -> Result<Packed, StoreError> {
        if !self.batch.is_empty() {
            // When the worker stopped, `join` below tells why.
            let _ = self.tx.send(self.batch);
        }
        drop(self.tx);
        self.worker
            .join()
            .unwrap_or_else(|_| Err(StoreError::Internal("the packing thread panicked".into())))
    }
}

fn compress_err(e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("compressing: {e}"))
}

/// A frame numbered in chunk order, and its compressed bytes once done.
type Compressed = (u64, PlainFrame, std::io::Result<Vec<u8>>);

fn pack(
    store: &Store,
    salt: Option<[u8; 16]>,
    threads: usize,
    rx: Receiver<Batch>,
) -> Result<Packed, StoreError> {
    // Frames are compressed on several threads and appended to packs in order.
    let (work_tx, work_rx) = sync_channel::<(u64, PlainFrame)>(threads);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = channel::<Compressed>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            scope.spawn(move || {
                let mut compressor = match FrameCompressor::new() {
                    Ok(c) => c,
                    Err(e) => return drop(done_tx.send((u64::MAX, PlainFrame::empty(), Err(e)))),
                };
                loop {
                    // The lock is held while waiting for work, not while compressing.
                    let job = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, frame)) = job else { return };
                    let compressed = compressor.compress(&frame.bytes);
                    if done_tx.send((seq, frame, compressed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut assembler = Assembler::new(store, salt)?;
        let mut frames = FrameBuilder::default();
        let mut sent = 0u64;
        let mut next = |frame: Option<PlainFrame>, assembler: &mut Assembler| -> Result<(), StoreError> {
            let Some(frame) = frame else { return Ok(()) };
            // Bounds the frames in memory: wait for one when enough are out.
            while sent - assembler.written >= 2 * threads as u64 {
                let done = done_rx
                    .recv()
                    .map_err(|_| compress_err(std::io::Error::other("compressors stopped")))?;
                assembler.take(done)?;
            }
            work_tx
                .send((sent, frame))
                .map_err(|_| compress_err(std::io::Error::other("compressors stopped")))?;
            sent += 1;
            Ok(())
        };
        let outcome = (|| {
            for (id, data) in rx.into_iter().flatten() {
                next(frames.add(id, &data), &mut assembler)?;
            }
            next(frames.finish(), &mut assembler)
        })();
        drop(work_tx);
        outcome?;
        while assembler.written < sent {
            let done = done_rx
                .recv()
                .map_err(|_| compress_err(std::io::Error::other("compressors stopped")))?;
            assembler.take(done)?;
        }
        assembler.finish()
    })
}

/// Appends compressed frames to packs in their order and uploads sealed packs.
struct Assembler<'s> {
    store: &'s Store,
    writer: PackWriter,
    /// Frames compressed out of order, by number.
    waiting: BTreeMap<u64, (PlainFrame, Vec<u8>)>,
    /// Frames appended so far.
    written: u64,
    uploads: Vec<PendingPut>,
    packed: Packed,
}

impl<'s> Assembler<'s> {
    fn new(store: &'s Store, salt: Option<[u8; 16]>) -> Result<Self, StoreError> {
        Ok(Assembler {
            store,
            writer: PackWriter::salted(salt).map_err(compress_err)?,
            waiting: BTreeMap::new(),
            written: 0,
            uploads: Vec::new(),
            packed: Packed {
                refs: Vec::new(),
                stored_bytes: 0,
            },
        })
    }

    /// Takes a compressed frame and appends every frame that is now next in order.
    fn take(&mut self, (seq, frame, compressed): Compressed) -> Result<(), StoreError> {
        self.waiting
            .insert(seq, (frame, compressed.map_err(compress_err)?));
        while let Some((frame, compressed)) = self.waiting.remove(&self.written) {
            self.written += 1;
            if let Some(pack) = self.writer.add_frame(&frame, &compressed).map_err(compress_err)? {
                self.ship(pack)?;
            }
        }
        Ok(())
    }

    fn ship(&mut self, pack: SealedPack) -> Result<(), StoreError> {
        let packed = &mut self.packed;
        packed.stored_bytes += pack.bytes.len() as u64;
        packed.refs.extend(pack.refs());
        if self.uploads.len() >= UPLOADS_IN_FLIGHT {
            self.uploads.remove(0).wait()?;
        }
        self.uploads.push(
            self.store
                .remote()
                .spawn_put(keys::pack(&pack.id), Bytes::from(pack.bytes)),
        );
        Ok(())
    }

    /// Seals the last pack and waits for every upload.
    fn finish(mut self) -> Result<Packed, StoreError> {
        if let Some(pack) = self.writer.finish().map_err(compress_err)? {
            self.ship(pack)?;
        }
        for upload in self.uploads {
            upload.wait()?;
        }
        Ok(self.packed)
    }
}
