//! The daemon's API requests as a client may send them: the first byte picks
//! a request type, the rest is decoded as that protobuf message (what tonic
//! does), then checked as the daemon's handlers check it before acting
//! (`daemon/src/requests.rs`, built here by path since the daemon is a binary,
//! and the library checks it calls).
#![no_main]

#[allow(dead_code)]
#[path = "../../daemon/src/requests.rs"]
mod requests;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wsfs_api::{csi, pb};
use wsfs_fs::manifest::manifest_path;
use wsfs_pipeline::workspace_files::parse_list;

fn persist(req: pb::PersistRequest) {
    let _ = requests::workspace_name(&req.workspace);
}

fn attach(req: pb::AttachRequest) {
    let _ = requests::workspace_name(&req.workspace);
    let _ = requests::absolute(&req.mountpoint, "mountpoint");
    let _ = manifest_path(Path::new(&req.sub_path));
    if !req.upper_dir.is_empty() {
        let _ = requests::absolute(&req.upper_dir, "--upper-dir");
    }
    if !req.prefetch_key.is_empty() {
        let _ = requests::prefetch_key(&req.prefetch_key);
    }
}

fn list(req: pb::ListRequest) {
    if let Ok(Some(ns)) = requests::namespace(&req.namespace) {
        assert_eq!(ns, req.namespace);
    }
}

fn publish(req: csi::NodePublishVolumeRequest) {
    let get = |key: &str| req.volume_context.get(key).map(String::as_str).unwrap_or("");
    let _ = requests::workspace_name(get("workspace"));
    let _ = manifest_path(Path::new(get("subPath")));
    let _ = parse_list(get("files"));
    if !get("prefetchKey").is_empty() {
        let _ = requests::prefetch_key(get("prefetchKey"));
    }
    let _ = requests::absolute(&req.target_path, "target_path");
}

fn decoded<M: Message + Default>(bytes: &[u8], check: fn(M)) {
    if let Ok(m) = M::decode(bytes) {
        check(m);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 11 {
        0 => decoded(bytes, persist),
        1 => decoded(bytes, attach),
        2 => decoded(bytes, |r: pb::DetachRequest| {
            let _ = requests::absolute(&r.mountpoint, "mountpoint");
        }),
        3 => decoded(bytes, |r: pb::LogRequest| {
            let _ = requests::workspace_name(&r.workspace);
        }),
        4 => decoded(bytes, list),
        5 => decoded(bytes, |r: pb::RemoveRequest| {
            let _ = requests::workspace_name(&r.workspace);
        }),
        6 => decoded(bytes, |r: pb::ExpireRequest| {
            let _ = requests::workspace_name(&r.workspace);
        }),
        7 => decoded(bytes, |_: pb::GcRequest| {}),
        8 => decoded(bytes, |_: pb::CheckRequest| {}),
        9 => decoded(bytes, publish),
        _ => decoded(bytes, |r: csi::NodeUnpublishVolumeRequest| {
            let _ = requests::absolute(&r.target_path, "target_path");
        }),
    }
});
