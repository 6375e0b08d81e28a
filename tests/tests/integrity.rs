//! Corrupted data in the remote is never served: the reader gets `EIO`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use wsfs_tests::json::u64_of;
use wsfs_tests::tree::{random_bytes, write_file};
use wsfs_tests::{Host, HostConfig};

/// Flips `len` bytes in the middle of the file.
fn flip_middle(path: &std::path::Path, len: usize) {
    let mut data = fs::read(path).unwrap();
    assert!(data.len() > 2 * len, "{path:?} is too small to corrupt");
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + len] {
        *b ^= 0xff;
    }
    fs::write(path, data).unwrap();
}

/// Someone (or a broken disk) corrupts the pack holding file A in the remote;
/// a job on a fresh host attaches the workspace: reading A fails with `EIO`
/// (every time, never wrong bytes), reading B, stored in another pack, works,
/// and the daemon keeps serving.
#[test]
fn a_corrupted_pack_gives_eio_for_its_file_and_right_bytes_for_others() {
    // The file:// remote: the test damages a pack file.
    let a = Host::with_config(HostConfig::default().file_remote());
    let src = a.path("src");
    let (data_a, data_b) = (random_bytes(71, 2_000_000), random_bytes(72, 1_500_000));
    write_file(&src.join("a.bin"), &data_a).unwrap();
    write_file(&src.join("b.bin"), &data_b).unwrap();

    let before: BTreeSet<PathBuf> = a.remote_objects("packs").into_iter().collect();
    a.persist("corrupt/ws", &src, &["a.bin"]);
    let after_a: BTreeSet<PathBuf> = a.remote_objects("packs").into_iter().collect();
    let packs_a: Vec<&PathBuf> = after_a.difference(&before).collect();
    assert!(
        !packs_a.is_empty(),
        "persisting a.bin added no object under packs/"
    );
    let pb = a.persist("corrupt/ws", &src, &["b.bin"]);
    assert!(
        u64_of(&pb, "new_bytes") >= data_b.len() as u64,
        "b.bin shares data with a.bin? {pb}"
    );
    let after_b: BTreeSet<PathBuf> = a.remote_objects("packs").into_iter().collect();
    assert!(after_b.len() > after_a.len(), "persisting b.bin added no pack");

    for pack in &packs_a {
        flip_middle(&a.remote_dir().join(pack), 64);
    }

    let c = a.peer_named("fresh");
    let mnt = a.path("mnt");
    c.attach("corrupt/ws", &mnt);
    assert_eq!(
        fs::metadata(mnt.join("a.bin")).unwrap().len(),
        data_a.len() as u64
    );
    for attempt in 0..2 {
        match fs::read(mnt.join("a.bin")) {
            Ok(got) => panic!(
                "attempt {attempt}: reading a.bin from a corrupted pack succeeded ({} bytes, {})",
                got.len(),
                if got == data_a {
                    "right bytes: corruption not detected?"
                } else {
                    "WRONG BYTES"
                }
            ),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "attempt {attempt}: {e}"),
        }
    }
    let got_b = fs::read(mnt.join("b.bin")).expect("b.bin lives in an intact pack");
    assert!(got_b == data_b, "b.bin read wrong bytes");
    c.status(); // the daemon is still alive
}

/// A layer object in the remote is replaced by one of 1 TiB (a sparse file:
/// a damaged or hostile store): a fresh host's attach fails naming the object
/// and its size, without reading it (the daemon neither hangs nor runs out
/// of memory), and the daemon keeps serving.
#[test]
fn a_layer_object_too_large_for_a_manifest_is_refused_before_it_is_read() {
    let a = Host::with_config(HostConfig::default().file_remote());
    let src = a.path("src");
    write_file(&src.join("a.txt"), b"a\n").unwrap();
    let layer = a.persist("huge/ws", &src, &["a.txt"])["layer"]
        .as_str()
        .unwrap()
        .to_string();
    let object = a.remote_dir().join("layers").join(&layer);
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&object)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();

    let fresh = a.peer_named("fresh");
    let err = fresh.fails([
        "attach",
        "--workspace",
        "huge/ws",
        fresh.path("mnt").to_str().unwrap(),
    ]);
    for needle in [
        &format!("layers/{layer}") as &str,
        "1099511627776 bytes",
        "more than",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    fresh.status(); // the daemon is still alive
}
