//! The harness itself, without wsfs: generated trees are deterministic and
//! complete, and the comparison sees every kind of difference the end-to-end
//! tests rely on. A comparison that cannot fail would make them pass vacuously.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use wsfs_tests::compare::{compare_trees, CompareOptions, Difference};
use wsfs_tests::tree::{generate, set_mtime, Tree, TreeSpec};
use wsfs_tests::MIB;

/// `cp -a`: a faithful copy (content, modes, owners, ns mtimes, xattrs, hard links).
fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success(), "cp -a failed");
}

fn small_everything(seed: u64) -> TreeSpec {
    TreeSpec {
        files: 300,
        dirs: 30,
        big_file_bytes: Some(3 * MIB + 17),
        ..TreeSpec::everything(seed)
    }
}

fn fresh(dir: &Path, name: &str, seed: u64) -> Tree {
    generate(&dir.join(name), &small_everything(seed)).unwrap()
}

fn expect_one(diffs: Vec<Difference>, path: &str, what: &str) {
    assert!(
        diffs
            .iter()
            .any(|d| d.path == Path::new(path) && d.what.contains(what)),
        "expected a {what:?} difference at {path:?}, got {diffs:#?}"
    );
}

/// The same seed gives the same tree, names, bytes and metadata; the tree has
/// every feature the spec asks for.
#[test]
fn generated_trees_are_deterministic_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let (t1, t2) = (fresh(tmp.path(), "one", 9), fresh(tmp.path(), "two", 9));
    assert_eq!(t1.files, t2.files);
    let diffs = compare_trees(&t1.root, &t2.root, &CompareOptions::default());
    assert!(diffs.is_empty(), "{diffs:#?}");
    let other = fresh(tmp.path(), "three", 10);
    assert!(!compare_trees(&t1.root, &other.root, &CompareOptions::default()).is_empty());

    let r = &t1.root;
    let big = r.join(t1.big_file.as_ref().unwrap());
    assert_eq!(big.metadata().unwrap().len(), 3 * MIB + 17);
    assert_eq!(r.join("modes/setuid").metadata().unwrap().mode() & 0o7777, 0o4755);
    assert_eq!(r.join("modes/setuid").metadata().unwrap().uid(), 1000);
    assert_eq!(
        r.join("modes/sticky-dir")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(r.join("links/to-file").symlink_metadata().unwrap().uid(), 4000);
    assert!(fs::read_link(r.join("links/dangling")).is_ok());
    assert!(r.join("odd names/new\nline").is_file());
    assert!(r.join("odd names/-leading-dash").is_file());
    assert_eq!(
        xattr::get(r.join("xattrs/empty-value"), "user.empty").unwrap(),
        Some(vec![])
    );
    assert!(r.join("empty/nested/a/b/c").is_dir());
    let h = r.join("hardlinks/original").metadata().unwrap();
    assert_eq!(h.nlink(), 4);
    assert!(r.metadata().unwrap().mtime_nsec() != 0 || r.metadata().unwrap().mtime() < 1_700_000_000);
    assert!(t1
        .top_level()
        .iter()
        .all(|n| !n.to_string_lossy().starts_with('-')));
    assert!(t1.distinct_files() < t1.file_names());
    assert!(t1.small_files(16 * 1024).next().is_some());
}

/// A faithful copy compares equal; each kind of change is reported at its path.
#[test]
fn comparison_reports_every_kind_of_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let t = fresh(tmp.path(), "src", 3);
    let copy = tmp.path().join("copy");
    copy_tree(&t.root, &copy);
    let opts = CompareOptions::default();
    let diffs = compare_trees(&t.root, &copy, &opts);
    assert!(diffs.is_empty(), "cp -a copy differs: {diffs:#?}");

    // Content, same size.
    let big = copy.join(t.big_file.as_ref().unwrap());
    let mut data = fs::read(&big).unwrap();
    data[2 * MIB as usize] ^= 1;
    let m = big.metadata().unwrap();
    fs::write(&big, &data).unwrap();
    set_mtime(&big, m.mtime(), m.mtime_nsec()).unwrap();
    expect_one(compare_trees(&t.root, &copy, &opts), "big/large.bin", "content");

    let c = tempfile::tempdir().unwrap();
    let fresh_copy = |tag: &str| {
        let p = c.path().join(tag);
        copy_tree(&t.root, &p);
        p
    };

    let p = fresh_copy("mode");
    fs::set_permissions(p.join("modes/setgid"), fs::Permissions::from_mode(0o755)).unwrap();
    expect_one(compare_trees(&t.root, &p, &opts), "modes/setgid", "mode");

    let p = fresh_copy("owner");
    std::os::unix::fs::lchown(p.join("links/to-file"), Some(0), None).unwrap();
    expect_one(compare_trees(&t.root, &p, &opts), "links/to-file", "uid");

    let p = fresh_copy("nsec");
    let m = p.join("README.md").metadata().unwrap();
    set_mtime(
        &p.join("README.md"),
        m.mtime(),
        (m.mtime_nsec() + 1) % 1_000_000_000,
    )
    .unwrap();
    expect_one(compare_trees(&t.root, &p, &opts), "README.md", "mtime");

    let p = fresh_copy("dir-mtime");
    set_mtime(&p.join("empty/empty-dir"), 1, 2).unwrap();
    expect_one(compare_trees(&t.root, &p, &opts), "empty/empty-dir", "mtime");

    let p = fresh_copy("xattr");
    xattr::set(p.join("xattrs/binary"), "user.bin", b"other").unwrap();
    expect_one(compare_trees(&t.root, &p, &opts), "xattrs/binary", "xattrs");

    let p = fresh_copy("symlink");
    let link = p.join("links/dangling");
    let m = link.symlink_metadata().unwrap();
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("another target", &link).unwrap();
    set_mtime(&link, m.mtime(), m.mtime_nsec()).unwrap();
    expect_one(
        compare_trees(&t.root, &p, &opts),
        "links/dangling",
        "symlink target",
    );

    // Breaking a hard link (same bytes, same metadata, separate inode).
    let p = fresh_copy("hardlink");
    let name = p.join("hardlinks/same-dir-link");
    fs::remove_file(&name).unwrap();
    copy_tree(&p.join("hardlinks/original"), &name);
    let diffs = compare_trees(&t.root, &p, &opts);
    assert!(
        diffs.iter().any(|d| d.what.contains("hard links")),
        "a broken hard link went unnoticed: {diffs:#?}"
    );

    let p = fresh_copy("extra-missing");
    fs::write(p.join("odd names/extra"), b"").unwrap();
    fs::remove_file(p.join("odd names/new\nline")).unwrap();
    let diffs = compare_trees(&t.root, &p, &opts);
    expect_one(diffs.clone(), "odd names/extra", "unexpected");
    expect_one(diffs, "odd names/new\nline", "missing");
}
