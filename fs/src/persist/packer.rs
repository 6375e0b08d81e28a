//! Compressing and uploading new chunks on a thread of their own, so that
//! reading and chunking the next files overlaps with zstd and the network.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use bytes::Bytes;

use crate::error::StoreError;
use crate::ids::ChunkId;
use crate::manifest::ChunkRef;
use crate::pack::{pack_key, PackWriter, SealedPack};
use crate::store::remote::PendingPut;
use crate::store::Store;

/// Chunks queued for compression: bounds memory while the worker is busy.
const QUEUE: usize = 64;
/// Packs uploading while the next one is being filled.
const UPLOADS_IN_FLIGHT: usize = 2;

/// What the packer produced: where each new chunk lives, and the bytes uploaded.
pub struct Packed {
    /// Every chunk of the new packs.
    pub refs: Vec<ChunkRef>,
    /// Bytes of the pack objects.
    pub stored_bytes: u64,
}

/// The sending side of the packing thread.
pub struct Packer<'scope> {
    tx: SyncSender<(ChunkId, Vec<u8>)>,
    worker: ScopedJoinHandle<'scope, Result<Packed, StoreError>>,
}

impl<'scope> Packer<'scope> {
    /// Starts the packing thread in `scope`.
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>, store: &'env Store) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let worker = scope.spawn(move || pack(store, rx));
        Packer { tx, worker }
    }

    /// Queues a new chunk. Fails when the worker stopped on an error: call
    /// [`Packer::finish`] to get it.
    pub fn add(&self, id: ChunkId, data: Vec<u8>) -> Result<(), ()> {
        self.tx.send((id, data)).map_err(drop)
    }

    /// Seals the last pack, waits for every upload and returns the result.
    pub fn finish(self) -> Result<Packed, StoreError> {
        drop(self.tx);
        self.worker
            .join()
            .unwrap_or_else(|_| Err(StoreError::Internal("the packing thread panicked".into())))
    }
}

fn pack(store: &Store, rx: Receiver<(ChunkId, Vec<u8>)>) -> Result<Packed, StoreError> {
    let compress_err = |e: std::io::Error| StoreError::Internal(format!("compressing: {e}"));
    let mut writer = PackWriter::new().map_err(compress_err)?;
    let mut uploads: Vec<PendingPut> = Vec::new();
    let mut packed = Packed {
        refs: Vec::new(),
        stored_bytes: 0,
    };
    let mut ship = |pack: SealedPack, uploads: &mut Vec<PendingPut>| -> Result<(), StoreError> {
        packed.stored_bytes += pack.bytes.len() as u64;
        packed.refs.extend(
            pack.chunks
                .iter()
                .map(|&(id, len, loc)| ChunkRef { id, len, loc }),
        );
        store.count_put(pack.bytes.len());
        if uploads.len() >= UPLOADS_IN_FLIGHT {
            uploads.remove(0).wait()?;
        }
        uploads.push(
            store
                .remote()
                .spawn_put(pack_key(&pack.id), Bytes::from(pack.bytes)),
        );
        Ok(())
    };
    for (id, data) in rx {
        if let Some(pack) = writer.add(id, &data).map_err(compress_err)? {
            ship(pack, &mut uploads)?;
        }
    }
    if let Some(pack) = writer.finish().map_err(compress_err)? {
        ship(pack, &mut uploads)?;
    }
    for upload in uploads {
        upload.wait()?;
    }
    Ok(packed)
}
