//! Writes the seed corpora of the fuzz targets: a few valid objects of each
//! kind, made by the real encoders. `cargo +nightly run --example seeds --
//! fuzz/corpus` (from the repository root, with `--manifest-path
//! fuzz/Cargo.toml`); the files are committed with what fuzzing added.

#[allow(dead_code)]
#[path = "../../daemon/src/mounts/record.rs"]
mod record;

use std::path::Path;

use prost::Message;
use wsfs_api::{csi, pb};
use wsfs_fs::ids::{ChunkId, LayerId, PackId};
use wsfs_fs::manifest::{encode, Entry, EntryKind, FileData, Manifest, Meta};
use wsfs_fs::markers::{condemned, corrupt, trace};
use wsfs_fs::pack::{Moved, PackWriter, Relocation, SealedPack};
use wsfs_fs::workspace::{encode_expiry, LayerRecord};
use wsfs_holder::wire::{self, Op};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// A pack of `chunks` (small, so that the corpus stays small).
fn pack(chunks: &[&[u8]]) -> SealedPack {
    let mut w = PackWriter::new().unwrap();
    for c in chunks {
        assert!(w.add(ChunkId::of(c), c).unwrap().is_none());
    }
    w.finish().unwrap().unwrap()
}

/// An entry owned by 1000:1000 with `mode`.
fn entry(path: &str, mode: u32, kind: EntryKind) -> Entry {
    let meta = Meta {
        mode,
        uid: 1000,
        gid: 1000,
        mtime_sec: 1_700_000_000,
        ..Meta::default()
    };
    Entry {
        path: path.into(),
        meta,
        kind,
    }
}

/// Every entry kind, a hard-link group and xattrs, chunks in `sealed`.
fn manifest(sealed: &SealedPack) -> Manifest {
    let chunks: Vec<_> = sealed.refs().collect();
    let size = chunks.iter().map(|c| u64::from(c.len)).sum();
    let file = FileData {
        size,
        chunks,
        link: 3,
    };
    let mut a = entry("a", 0o644, EntryKind::File(file.clone()));
    a.meta.xattrs = vec![(b"user.note".to_vec(), b"seed".to_vec())];
    let symlink = EntryKind::Symlink {
        target: b"../a".to_vec(),
    };
    Manifest {
        entries: vec![
            entry("", 0o755, EntryKind::Dir { opaque: false }),
            a,
            entry("d", 0o755, EntryKind::Dir { opaque: true }),
            entry("d/b", 0o644, EntryKind::File(file)),
            entry("d/ln", 0o777, symlink),
            entry("gone", 0, EntryKind::Whiteout),
        ],
    }
}

fn main() {
    let out = std::env::args().nth(1).expect("usage: seeds CORPUS_DIR");
    let out = Path::new(&out);

    let small = pack(&[b"hello ", b"world", b"hello again"]);
    let single = pack(&[&[7u8; 300]]);
    write(out, "pack_index", "three-chunks", &small.bytes);
    write(out, "pack_index", "one-chunk", &single.bytes);

    for (name, sealed) in [("three-chunks", &small), ("one-chunk", &single)] {
        let (_, len, loc) = sealed.chunks[0];
        let start = loc.frame_offset as usize;
        let mut framed = Vec::new();
        for v in [loc.frame_plain_len, loc.offset_in_frame, len] {
            framed.extend_from_slice(&v.to_le_bytes());
        }
        framed.extend_from_slice(&sealed.bytes[start..start + loc.frame_len as usize]);
        write(out, "pack_frame", name, &framed);
    }

    let every_kind = manifest(&small);
    wsfs_fs::manifest::validate(&every_kind).expect("the seed manifest is valid");
    write(out, "manifest", "every-kind", &encode(&every_kind));
    write(
        out,
        "manifest",
        "root-only",
        &encode(&Manifest {
            entries: vec![entry("", 0o755, EntryKind::Dir { opaque: false })],
        }),
    );

    let mut relocation = Relocation::default();
    for (old, new) in [(0u64, 4096u64), (120, 0)] {
        relocation.insert(
            old,
            Moved {
                len: 120,
                pack: PackId::of(&new.to_le_bytes()),
                offset: new,
            },
        );
    }
    write(out, "relocation", "two-frames", &relocation.encode());

    write(
        out,
        "trace",
        "three-paths",
        &trace::encode([&b"src/main.rs"[..], b"Cargo.toml", b"a/b/c"]),
    );

    let layer = LayerId::of(b"layer");
    let record = LayerRecord {
        layer,
        persisted_at_ms: 1_700_000_000_000,
        host: "ci-runner-7".into(),
        files: 12,
        bytes: 34_567,
    };
    write(out, "workspace_record", "record", record.encode().as_bytes());
    let key = format!(
        "workspaces/run-42/build/{:020}-{:016x}-{layer}",
        1_700_000_000_000_000_000u64, 42
    );
    write(out, "workspace_record", "key", key.as_bytes());

    write(
        out,
        "expiry",
        "expiry",
        encode_expiry(1_700_000_000_000).as_bytes(),
    );
    write(
        out,
        "condemned_marker",
        "marker",
        condemned::encode(1_700_000_000_000).as_bytes(),
    );
    let body = corrupt::encode(1_700_000_000_000, "ci-runner-7", "frame at 24 is corrupt");
    write(out, "corrupt_marker", "marker", body.as_bytes());

    for (name, op, key) in [
        ("hold", Op::Hold, "v-1.2_3"),
        ("take", Op::Take, ""),
        ("end", Op::End, ""),
    ] {
        write(out, "holder_wire", name, &wire::encode(op, key).unwrap());
    }

    let view = record::ViewRecord {
        state: record::ViewState::Attached,
        workspace: "run-42/src".into(),
        layers: vec![layer.to_hex()],
        kind: "isolated".into(),
        sub_path: b"docs".to_vec(),
        scratch: Some(b"/var/lib/wsfs/views/wsfs-view-1".to_vec()),
        created: true,
        prefetch_key: "run-42/src".into(),
        prefetch: true,
        note: Some(b"{}".to_vec()),
        owner: 1000,
    };
    write(out, "mount_record", "isolated", &view.encode());

    let request = |kind: u8, m: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = vec![kind];
        m(&mut bytes);
        bytes
    };
    let persist = pb::PersistRequest {
        workspace: "run-42/build".into(),
        root: b"/src".to_vec(),
        paths: vec![b"target".to_vec(), b"out/\xff".to_vec()],
        expire_after_ms: 3_600_000,
        prefetch_keys: Vec::new(),
        threads: 0,
    };
    let attach = pb::AttachRequest {
        workspace: "run-42/build".into(),
        mountpoint: "/mnt/ws".into(),
        view: "isolated".into(),
        sub_path: "docs/./api/".into(),
        upper_dir: "/var/tmp/upper".into(),
        prefetch: true,
        prefetch_key: "build-cache/linux".into(),
        no_prefetch: false,
    };
    let list = pb::ListRequest {
        namespace: "run-42".into(),
    };
    let publish = csi::NodePublishVolumeRequest {
        volume_id: "v1".into(),
        target_path: "/var/lib/kubelet/pods/p/volumes/v".into(),
        volume_context: [
            ("workspace", "run-42/src"),
            ("view", "isolated"),
            ("subPath", "docs"),
            ("files", "private-key=/id_ecdsa,known_hosts"),
            ("prefetchKey", "tests/unit"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    };
    let seeds: [(&str, Vec<u8>); 4] = [
        ("persist", request(0, &|b| persist.encode(b).unwrap())),
        ("attach", request(1, &|b| attach.encode(b).unwrap())),
        ("list", request(4, &|b| list.encode(b).unwrap())),
        ("publish", request(9, &|b| publish.encode(b).unwrap())),
    ];
    for (name, bytes) in seeds {
        write(out, "daemon_request", name, &bytes);
    }
}
