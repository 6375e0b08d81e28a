//! `wsfs check`: a damaged or missing object of the remote is named with the
//! layers and workspaces it hits, and the exit code says so; a pack found
//! corrupt is marked, so that persists on every host store its chunks anew.
//!
//! The tests damage the remote's objects as files: they stay on `file://`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, CompareOptions};
use wsfs_tests::json::{array_of, str_of, u64_of};
use wsfs_tests::tree::{generate, TreeSpec};
use wsfs_tests::{Host, HostConfig};

/// `wsfs check --json EXTRA...`: the report, after asserting that the exit
/// code is zero exactly when nothing is broken (and that a failure says so
/// on stderr).
fn check(host: &Host, extra: &[&str]) -> Value {
    let mut args = vec!["check", "--json"];
    args.extend(extra);
    let out = host.wsfs(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("`wsfs {args:?}` printed no JSON ({e}):\n{stdout}\n{stderr}"));
    eprintln!("wsfs {args:?}: {report}");
    let broken = !array_of(&report, "broken").is_empty();
    assert_eq!(
        out.status.success(),
        !broken,
        "exit code vs report: {report}\n{stderr}"
    );
    assert_eq!(report["clean"], !broken, "{report}");
    if broken {
        assert!(stderr.contains("error:"), "{stderr}");
    }
    report
}

/// One broken object of a report: problem, layers and workspaces.
#[derive(Debug, PartialEq, Eq)]
struct Broken {
    key: String,
    problem: String,
    layers: BTreeSet<String>,
    workspaces: BTreeSet<String>,
}

fn strings(v: &Value, key: &str) -> BTreeSet<String> {
    array_of(v, key)
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn broken(report: &Value) -> Vec<Broken> {
    array_of(report, "broken")
        .iter()
        .map(|b| Broken {
            key: str_of(b, "key").to_string(),
            problem: str_of(b, "problem").to_string(),
            layers: strings(b, "layers"),
            workspaces: strings(b, "workspaces"),
        })
        .collect()
}

fn set<const N: usize>(items: [&str; N]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn persist_all(host: &Host, ws: &str, src: &Path) -> Value {
    host.persist(ws, src, &["."])
}

/// Flips one byte in the middle of a pack's frames, before its index (the
/// footer's first field, `docs/format.md`), so that the index still decodes.
fn flip_frame_byte(pack: &Path) {
    let mut data = fs::read(pack).unwrap();
    let footer = data.len() - 24;
    assert_eq!(&data[data.len() - 8..], b"WSFSPAK1", "{pack:?} is not a pack");
    let index_offset = u64::from_le_bytes(data[footer..footer + 8].try_into().unwrap()) as usize;
    data[index_offset / 2] ^= 0xff;
    fs::write(pack, data).unwrap();
}

fn packs(host: &Host) -> BTreeSet<PathBuf> {
    host.remote_objects("packs").into_iter().collect()
}

/// Three workspaces (two layers) share one pack; a byte of it flips. `check`
/// without `--read-data` still passes (the index decodes); `--read-data`
/// names the pack with both layers and all three workspaces, exits non-zero
/// and marks the pack; from then on even `check` names it. The same tree
/// persisted again, on the host that wrote the pack and on another one whose
/// local index also points into it, is stored anew: with the damaged pack
/// deleted, the new workspaces read back exactly and check clean while the
/// old ones are named.
#[test]
fn a_flipped_byte_in_a_pack_is_named_with_its_workspaces_and_never_reused() {
    let a = Host::with_config(HostConfig::default().file_remote());
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(31, 300)).unwrap();
    let one = persist_all(&a, "check/one", &src);
    let damaged = packs(&a);
    assert_eq!(damaged.len(), 1, "the tree fits one pack: {damaged:?}");
    let top = tree.top_level();
    let two = a.persist("check/two", &src, &top[..top.len() / 2]);
    assert_eq!(u64_of(&two, "new_bytes"), 0, "two shares one's chunks: {two}");
    let b = a.peer_named("b");
    let three = persist_all(&b, "check/three", &src);
    assert_eq!(
        packs(&a),
        damaged,
        "b stored the same pack (pack ids are the digest of deterministic bytes)"
    );
    let layers = set([str_of(&one, "layer"), str_of(&two, "layer")]);
    assert_eq!(str_of(&three, "layer"), str_of(&one, "layer"));
    let workspaces = set(["check/one", "check/three", "check/two"]);

    let clean = check(&a, &["--read-data"]);
    assert_eq!(
        (
            u64_of(&clean, "workspaces"),
            u64_of(&clean, "layers"),
            u64_of(&clean, "packs")
        ),
        (3, 2, 1),
        "{clean}"
    );
    assert!(u64_of(&clean, "chunks") > 0 && u64_of(&clean, "pack_bytes_read") > 0);

    let pack = damaged.first().unwrap();
    let pack_key = pack.display().to_string();
    let pack_id = &pack_key["packs/".len()..];
    flip_frame_byte(&a.remote_dir().join(pack));
    let index_only = check(&a, &[]);
    assert!(
        broken(&index_only).is_empty(),
        "the index still decodes: {index_only}"
    );

    let found = check(&a, &["--read-data"]);
    let expected = Broken {
        key: pack_key.clone(),
        problem: "corrupt".into(),
        layers: layers.clone(),
        workspaces: workspaces.clone(),
    };
    assert_eq!(broken(&found), [expected], "{found}");
    assert_eq!(strings(&found, "marked"), set([&format!("corrupt/{pack_id}")]));
    assert!(
        u64_of(&found, "forgotten") > 0,
        "a's index pointed into the pack: {found}"
    );
    assert!(a.remote_dir().join("corrupt").join(pack_id).is_file());

    // The marker is enough for a check without --read-data, in words too.
    let out = a.wsfs(["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for needle in [
        &pack_key,
        "marked corrupt",
        "check/one",
        "check/two",
        "check/three",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }

    let again_a = persist_all(&a, "check/one-again", &src);
    let again_b = persist_all(&b, "check/three-again", &src);
    for again in [&again_a, &again_b] {
        assert_eq!(
            u64_of(again, "new_bytes"),
            u64_of(&one, "new_bytes"),
            "every chunk stored anew: {again}"
        );
        assert!(!layers.contains(str_of(again, "layer")), "{again}");
    }
    fs::remove_file(a.remote_dir().join(pack)).unwrap();
    let c = a.peer_named("c");
    for ws in ["check/one-again", "check/three-again"] {
        let mnt = c.path(format!("mnt-{}", &ws["check/".len()..]));
        c.attach(ws, &mnt);
        assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
        c.detach(&mnt);
    }
    let after = check(&c, &["--read-data"]);
    let expected = Broken {
        key: pack_key,
        problem: "missing".into(),
        layers,
        workspaces,
    };
    assert_eq!(broken(&after), [expected], "only the old workspaces: {after}");
    assert_eq!(u64_of(&after, "workspaces"), 5, "{after}");
}

/// A layer object gone from the remote is named with the workspace that
/// needs it, even on the host whose local database still caches it; the
/// other workspace is not named.
#[test]
fn a_missing_layer_is_named_with_its_workspace() {
    let a = Host::with_config(HostConfig::default().file_remote());
    let (lost, kept) = (a.path("lost"), a.path("kept"));
    generate(&lost, &TreeSpec::plain(32, 20)).unwrap();
    generate(&kept, &TreeSpec::plain(33, 20)).unwrap();
    let gone = persist_all(&a, "check/lost", &lost);
    persist_all(&a, "check/kept", &kept);
    assert!(broken(&check(&a, &[])).is_empty());

    let layer = str_of(&gone, "layer");
    fs::remove_file(a.remote_dir().join("layers").join(layer)).unwrap();
    let report = check(&a, &[]);
    let expected = Broken {
        key: format!("layers/{layer}"),
        problem: "missing".into(),
        layers: set([layer]),
        workspaces: set(["check/lost"]),
    };
    assert_eq!(broken(&report), [expected], "{report}");
    assert!(strings(&report, "marked").is_empty(), "{report}");
}
