//! Persist a working tree, attach it, and see exactly the same tree: on the
//! same host and on another host sharing the remote; named paths, stacked
//! layers, and re-persisting unchanged trees.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, compare_random_ranges, hash_file, list_paths, CompareOptions};
use wsfs_tests::json::{array_of, is_hex64, str_of, u64_of};
use wsfs_tests::tree::{generate, random_bytes, set_mtime, write_file, Tree, TreeSpec};
use wsfs_tests::{mounts, Host, HostConfig, MIB};

/// The layer ids of an `attach` or `log` JSON object, as strings.
fn layer_ids(v: &Value) -> Vec<String> {
    array_of(v, "layers")
        .iter()
        .map(|l| match l {
            Value::String(s) => s.clone(),
            other => str_of(other, "layer").to_string(),
        })
        .collect()
}

/// `files`/`bytes` of a persist count every name of the tree, a hard-linked
/// file once per name (README, "persist"; `docs/format.md`).
fn assert_counts(persist: &Value, tree: &Tree) {
    assert!(
        tree.distinct_files() < tree.file_names(),
        "the tree has no hard links: the counts would not tell names from inodes"
    );
    let got = (u64_of(persist, "files"), u64_of(persist, "bytes"));
    assert_eq!(
        got,
        (tree.file_names(), tree.name_bytes()),
        "persist's (files, bytes) must count every name; counting hard-linked inodes once gives {:?}: {persist}",
        (tree.distinct_files(), tree.distinct_bytes())
    );
}

/// Every hard-link group of the tree is one inode on the mount, with the right link count.
fn assert_hard_links(tree: &Tree, mnt: &Path) {
    assert!(!tree.hard_links.is_empty());
    for group in &tree.hard_links {
        let metas: Vec<_> = group
            .iter()
            .map(|p| mnt.join(p).symlink_metadata().unwrap())
            .collect();
        for (p, m) in group.iter().zip(&metas) {
            assert_eq!(
                (m.dev(), m.ino()),
                (metas[0].dev(), metas[0].ino()),
                "{p:?} and {:?} are hard links in the source but not on the mount",
                group[0]
            );
            assert_eq!(m.nlink(), group.len() as u64, "link count of {p:?} on the mount");
        }
    }
}

/// The mount answers statfs and refuses writes.
fn assert_read_only(mnt: &Path) {
    let c = std::ffi::CString::new(mnt.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(r, 0, "statfs on {mnt:?}: {}", std::io::Error::last_os_error());
    let err = fs::write(mnt.join("new-file"), b"x").expect_err("wrote a file into a read-only mount");
    assert!(
        !mnt.join("new-file").exists(),
        "a failed write left a file ({err})"
    );
    fs::create_dir(mnt.join("README.md.d")).expect_err("made a dir in a read-only mount");
}

/// A CI job persists its whole working tree (thousands of files, a 50 MiB
/// file, symlinks, hard links, xattrs, odd names, special modes, owners,
/// nanosecond mtimes); a later job on the same host, and a job on another host
/// sharing the remote, attach it and see the same bytes and metadata.
#[test]
fn a_persisted_tree_attaches_identically_here_and_on_another_host() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::everything(1)).unwrap();
    assert!(tree.file_names() >= 3000);

    let p = a.persist("run-1/build", &src, &tree.top_level());
    eprintln!("persist: {p}");
    let layer = str_of(&p, "layer").to_string();
    assert!(is_hex64(&layer), "layer id is not 64 hex digits: {p}");
    assert_eq!(str_of(&p, "workspace"), "run-1/build");
    assert_counts(&p, &tree);
    let new_bytes = u64_of(&p, "new_bytes");
    assert!(
        new_bytes >= 30 * MIB && new_bytes <= u64_of(&p, "bytes"),
        "a first persist stores its unique data (> 30 MiB are random), never more than the tree: {p}"
    );

    let big = tree.big_file.clone().unwrap();
    let same_host = a.path("attach-a");
    let att = a.attach("run-1/build", &same_host);
    assert_eq!(layer_ids(&att), [layer.as_str()], "attach JSON: {att}");
    assert_eq!(str_of(&att, "workspace"), "run-1/build");
    assert!(
        mounts::is_mounted(&same_host),
        "attach returned but nothing is mounted at {same_host:?}"
    );
    assert_same_tree(&src, &same_host, &CompareOptions::ignoring_root());
    assert_hard_links(&tree, &same_host);
    compare_random_ranges(&src.join(&big), &same_host.join(&big), 1, 200, 300_000).unwrap();
    assert_read_only(&same_host);

    let b = a.peer_named("b");
    let other_host = a.path("attach-b");
    fs::create_dir(&other_host).unwrap(); // an existing empty dir is a valid mountpoint too
    let att = b.attach("run-1/build", &other_host);
    assert_eq!(layer_ids(&att), [layer.as_str()]);
    assert_same_tree(&src, &other_host, &CompareOptions::ignoring_root());
    assert_hard_links(&tree, &other_host);
    compare_random_ranges(&src.join(&big), &other_host.join(&big), 2, 200, 300_000).unwrap();
}

/// `cd my-build && wsfs persist --workspace run-42/build target/release
/// node_modules README.md`: the mount holds exactly those paths (and their
/// parent dirs), with their content and metadata, and nothing else.
#[test]
fn persisting_named_paths_attaches_exactly_those_paths() {
    let a = Host::new();
    let src = a.path("my-build");
    let w = |rel: &str, data: &[u8]| write_file(&src.join(rel), data).unwrap();
    w("target/release/app", &random_bytes(1, 300_000));
    w("target/release/deps/libfoo-1234.rlib", &random_bytes(2, 70_000));
    w(
        "target/release/.fingerprint/foo-1234/lib-foo",
        b"0123456789abcdef",
    );
    w(
        "target/release/build/foo/out/generated.rs",
        b"pub const X: u32 = 1;\n",
    );
    w("target/debug/app", &random_bytes(3, 50_000));
    w(
        "target/CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    w("node_modules/left-pad/index.js", b"module.exports = leftPad;\n");
    w("node_modules/left-pad/package.json", b"{\"name\":\"left-pad\"}\n");
    w("node_modules/@scope/pkg/lib/index.js", b"export {};\n");
    fs::create_dir_all(src.join("node_modules/empty-pkg")).unwrap();
    std::os::unix::fs::symlink("../left-pad/index.js", src.join("node_modules/@scope/link.js")).unwrap();
    w("README.md", b"# my build\n");
    w("src/main.rs", b"fn main() {}\n");
    w("Cargo.toml", b"[package]\n");
    set_mtime(&src.join("README.md"), 1_234_567_890, 123_456_789).unwrap();
    set_mtime(&src.join("node_modules"), 1_300_000_000, 5).unwrap();

    let persisted = ["target/release", "node_modules", "README.md"];
    let p = a.ok_json_in(
        Some(&src),
        [
            "persist",
            "--workspace",
            "run-42/build",
            "target/release",
            "node_modules",
            "README.md",
        ],
    );
    let mut expected: BTreeSet<PathBuf> = ["README.md", "node_modules", "target", "target/release"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let (mut files, mut bytes) = (1u64, fs::metadata(src.join("README.md")).unwrap().len());
    for dir in ["target/release", "node_modules"] {
        for rel in list_paths(&src.join(dir)).unwrap() {
            let m = src.join(dir).join(&rel).symlink_metadata().unwrap();
            if m.is_file() {
                files += 1;
                bytes += m.len();
            }
            expected.insert(Path::new(dir).join(rel));
        }
    }
    assert_eq!(
        (u64_of(&p, "files"), u64_of(&p, "bytes")),
        (files, bytes),
        "persist of {persisted:?}: {p}"
    );

    let mnt = a.path("ws");
    a.attach("run-42/build", &mnt);
    let got: BTreeSet<PathBuf> = list_paths(&mnt).unwrap().into_iter().collect();
    assert_eq!(
        got.difference(&expected).collect::<Vec<_>>(),
        Vec::<&PathBuf>::new(),
        "paths in the mount that were not persisted"
    );
    assert_eq!(
        expected.difference(&got).collect::<Vec<_>>(),
        Vec::<&PathBuf>::new(),
        "persisted paths missing from the mount"
    );
    assert!(mnt.join("target").symlink_metadata().unwrap().is_dir());
    for path in persisted {
        assert_same_tree(&src.join(path), &mnt.join(path), &CompareOptions::default());
    }
}

/// A pipeline's second step persists a changed file and a new one to the same
/// workspace: attaching shows the second step's version of the changed file,
/// the first step's other files, and the new file; `wsfs log` lists both
/// layers oldest first; a mount made before the second persist keeps showing
/// the version it attached.
#[test]
fn a_second_persist_stacks_on_the_first() {
    let a = Host::new();
    let src = a.path("src");
    let one = random_bytes(1, 100_000);
    let two_v1 = random_bytes(2, 150_000);
    let two_v2 = random_bytes(3, 90_000);
    let three = b"added by the second step\n".to_vec();
    write_file(&src.join("dir/one"), &one).unwrap();
    write_file(&src.join("dir/two"), &two_v1).unwrap();
    write_file(&src.join("top.txt"), b"top\n").unwrap();
    let pa = a.persist("run-7/ws", &src, &["dir", "top.txt"]);
    let before = a.path("before");
    a.attach("run-7/ws", &before);

    write_file(&src.join("dir/two"), &two_v2).unwrap();
    write_file(&src.join("dir/three"), &three).unwrap();
    let pb = a.persist("run-7/ws", &src, &["dir/two", "dir/three"]);
    let (la, lb) = (str_of(&pa, "layer"), str_of(&pb, "layer"));
    assert_ne!(la, lb, "different content, same layer id");
    assert_eq!(
        (u64_of(&pb, "files"), u64_of(&pb, "bytes")),
        (2, (two_v2.len() + three.len()) as u64)
    );

    let after = a.path("after");
    let att = a.attach("run-7/ws", &after);
    let ids: BTreeSet<String> = layer_ids(&att).into_iter().collect();
    assert_eq!(
        ids,
        BTreeSet::from([la.to_string(), lb.to_string()]),
        "attach JSON: {att}"
    );
    assert_eq!(fs::read(after.join("dir/one")).unwrap(), one);
    assert_eq!(
        fs::read(after.join("dir/two")).unwrap(),
        two_v2,
        "the later layer wins"
    );
    assert_eq!(fs::read(after.join("dir/three")).unwrap(), three);
    assert_eq!(fs::read(after.join("top.txt")).unwrap(), b"top\n");
    let names: Vec<PathBuf> = list_paths(&after).unwrap();
    assert_eq!(
        names,
        ["dir", "dir/one", "dir/three", "dir/two", "top.txt"].map(PathBuf::from),
    );

    assert_eq!(
        fs::read(before.join("dir/two")).unwrap(),
        two_v1,
        "an attached version is immutable"
    );
    assert!(
        !before.join("dir/three").exists(),
        "an attached version is immutable"
    );

    let log = a.log("run-7/ws");
    assert_eq!(str_of(&log, "workspace"), "run-7/ws");
    let entries = array_of(&log, "layers");
    assert_eq!(
        layer_ids(&log),
        [la, lb],
        "log must list layers oldest first: {log}"
    );
    for (entry, p) in entries.iter().zip([&pa, &pb]) {
        assert_eq!(u64_of(entry, "files"), u64_of(p, "files"), "log entry {entry}");
        assert_eq!(u64_of(entry, "bytes"), u64_of(p, "bytes"), "log entry {entry}");
    }

    let ls = a.ok_json(["ls", "run-7"]);
    let listed: Vec<&str> = array_of(&ls, "workspaces")
        .iter()
        .map(|w| str_of(w, "workspace"))
        .collect();
    assert_eq!(listed, ["run-7/ws"], "ls run-7: {ls}");
    let ls_all = a.ok_json(["ls"]);
    assert!(
        array_of(&ls_all, "workspaces")
            .iter()
            .any(|w| str_of(w, "workspace") == "run-7/ws"),
        "ls: {ls_all}"
    );
}

/// A job re-persists a tree nothing changed in: same layer id, no new bytes,
/// (almost) nothing uploaded, no new pack; touching a file's mtime makes a new
/// layer that still stores no new chunk data.
#[test]
fn re_persisting_an_unchanged_tree_uploads_nothing_new() {
    // The file:// remote: the test compares its pack files.
    let a = Host::with_config(HostConfig::default().file_remote());
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(4, 2000).with_big_file(8 * MIB)).unwrap();
    let top = tree.top_level();

    let first = a.persist("run-9/ws", &src, &top);
    let packs = a.remote_objects("packs");
    assert!(
        !packs.is_empty(),
        "no pack under {:?}/packs after a persist",
        a.remote_dir()
    );
    let again = a.persist("run-9/ws", &src, &top);
    eprintln!("first: {first}\nagain: {again}");
    assert_eq!(
        str_of(&again, "layer"),
        str_of(&first, "layer"),
        "same tree, different layer id"
    );
    assert_eq!(
        u64_of(&again, "new_bytes"),
        0,
        "unchanged tree stored new bytes: {again}"
    );
    assert!(
        u64_of(&again, "stored_bytes") * 20 <= u64_of(&first, "stored_bytes"),
        "re-persist uploaded {} bytes, first persist {}",
        u64_of(&again, "stored_bytes"),
        u64_of(&first, "stored_bytes")
    );
    assert_eq!(
        (u64_of(&again, "files"), u64_of(&again, "bytes")),
        (u64_of(&first, "files"), u64_of(&first, "bytes"))
    );
    assert_eq!(a.remote_objects("packs"), packs, "re-persist wrote a pack");

    let elsewhere = a.persist("run-10/ws", &src, &top);
    assert_eq!(str_of(&elsewhere, "layer"), str_of(&first, "layer"));
    assert_eq!(u64_of(&elsewhere, "new_bytes"), 0);

    let some = &tree.files[tree.files.len() / 2].path;
    set_mtime(&src.join(some), 1_700_000_000, 42).unwrap();
    let touched = a.persist("run-9/ws", &src, &top);
    assert_ne!(
        str_of(&touched, "layer"),
        str_of(&first, "layer"),
        "mtime is part of the layer"
    );
    assert_eq!(
        u64_of(&touched, "new_bytes"),
        0,
        "only an mtime changed: {touched}"
    );
    let mnt = a.path("mnt");
    a.attach("run-9/ws", &mnt);
    let m = mnt.join(some).metadata().unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 42));
    assert_eq!(
        hash_file(&mnt.join(some)).unwrap(),
        hash_file(&src.join(some)).unwrap()
    );
}

/// A pipeline's clean-up removes its workspace: `rm` reports its layers,
/// after which another host neither lists nor attaches it, a view attached
/// before keeps working, and removing it again is an error naming it.
#[test]
fn a_removed_workspace_is_gone_for_every_host_but_attached_views_keep_working() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(21, 30)).unwrap();
    a.persist("rm/ws", &src, &tree.top_level());
    a.persist("rm/ws", &src, &tree.top_level());
    a.persist("rm/other", &src, &tree.top_level());
    let mnt = a.path("mnt");
    a.attach("rm/ws", &mnt);

    let removed = a.ok_json(["rm", "rm/ws"]);
    assert_eq!(str_of(&removed, "workspace"), "rm/ws", "{removed}");
    assert_eq!(u64_of(&removed, "layers"), 2, "{removed}");
    let b = a.peer_named("b");
    assert_eq!(b.workspace_names(Some("rm")), ["rm/other"]);
    let err = b.fails(["attach", "--workspace", "rm/ws", b.path("m").to_str().unwrap()]);
    assert!(err.contains("rm/ws") && err.contains("does not exist"), "{err}");
    assert_same_tree(&src, &mnt, &CompareOptions::ignoring_root());
    let again = a.fails(["rm", "rm/ws"]);
    assert!(
        again.contains("rm/ws") && again.contains("does not exist"),
        "{again}"
    );
}

/// A job persists scratch output that should not outlive the week: with
/// `--expire-after`, the result says when the workspace expires, and
/// `wsfs rm --expired` deletes it once that time has passed, not before.
#[test]
fn a_workspace_persisted_with_an_expiry_is_deleted_once_expired() {
    let a = Host::new();
    let src = a.path("src");
    write_file(&src.join("out.txt"), b"scratch\n").unwrap();
    let root = src.to_str().unwrap();
    let week = a.ok_json([
        "persist",
        "-w",
        "tmp/week",
        "--root",
        root,
        "--expire-after",
        "7d",
        "out.txt",
    ]);
    assert!(str_of(&week, "expires_at").starts_with("20"), "{week}");
    let short = a.ok_json([
        "persist",
        "-w",
        "tmp/short",
        "--root",
        root,
        "--expire-after",
        "1ms",
        "out.txt",
    ]);
    assert!(short["expires_at"].is_string(), "{short}");
    let plain = a.ok_json(["persist", "-w", "tmp/plain", "--root", root, "out.txt"]);
    assert!(plain["expires_at"].is_null(), "{plain}");

    let removed = a.ok_json(["rm", "--expired"]);
    let names: Vec<&str> = array_of(&removed, "removed")
        .iter()
        .map(|r| str_of(r, "workspace"))
        .collect();
    assert_eq!(names, ["tmp/short"], "{removed}");
    assert_eq!(a.workspace_names(Some("tmp")), ["tmp/plain", "tmp/week"]);
    let err = a.fails([
        "persist",
        "-w",
        "tmp/x",
        "--root",
        root,
        "--expire-after",
        "soon",
        "out.txt",
    ]);
    assert!(err.contains("--expire-after"), "{err}");
}
