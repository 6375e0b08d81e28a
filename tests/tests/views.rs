//! Per-step views: a step attaches a workspace read-only, or isolated
//! (copy-on-write, private to the step), optionally only a sub-path of it;
//! `detach --persist` turns an isolated view's changes into a diff layer of
//! the workspace. Views of one version share one FUSE mount; `shutdown` and
//! a restarted daemon leave no overlay mount and no upper dir behind.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{lchown, symlink, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::Duration;

use serde_json::Value;
use wsfs_tests::compare::{assert_same_tree, compare_trees, format_differences, list_paths, CompareOptions};
use wsfs_tests::json::{array_of, is_hex64, str_of, u64_of};
use wsfs_tests::tree::{generate, random_bytes, set_mtime, write_file, TreeSpec};
use wsfs_tests::{mounts, process, Host, HostConfig, MIB};

const ISOLATED: &[&str] = &["--view", "isolated"];
const READ_ONLY: &[&str] = &["--view", "read-only"];

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The layer ids of a `log` JSON object, oldest first.
fn log_layers(log: &Value) -> Vec<String> {
    array_of(log, "layers")
        .iter()
        .map(|l| str_of(l, "layer").to_string())
        .collect()
}

/// `overrode` of a persist result, as strings.
fn overrode(persisted: &Value) -> Vec<String> {
    array_of(persisted, "overrode")
        .iter()
        .map(|p| {
            p.as_str()
                .unwrap_or_else(|| panic!("overrode holds a non-string: {persisted}"))
                .to_string()
        })
        .collect()
}

/// The `persisted` object of a `detach --persist` reply, checked for shape.
fn persisted<'a>(reply: &'a Value, workspace: &str) -> &'a Value {
    let p = &reply["persisted"];
    assert!(
        p.is_object(),
        "detach --persist did not report a persist: {reply}"
    );
    assert_eq!(str_of(p, "workspace"), workspace, "{reply}");
    assert!(
        is_hex64(str_of(p, "layer")),
        "layer id is not 64 hex digits: {reply}"
    );
    for field in ["files", "bytes", "new_bytes", "stored_bytes", "deleted"] {
        u64_of(p, field);
    }
    array_of(p, "skipped");
    array_of(p, "overrode");
    p
}

/// What is left in a directory that isolated views keep their changes in
/// (nothing when it does not exist).
fn entries_of(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {dir:?}: {e}"),
    }
}

/// FUSE mounts at or under `dir`.
fn fuse_mounts_under(dir: &Path) -> Vec<mounts::Mount> {
    mounts::mounts()
        .into_iter()
        .filter(|m| m.mount_point.starts_with(dir) && m.fs_type.starts_with("fuse"))
        .collect()
}

/// The mountpoints `status` lists.
fn status_mountpoints(status: &Value) -> BTreeSet<PathBuf> {
    array_of(status, "mounts")
        .iter()
        .map(|m| PathBuf::from(str_of(m, "mountpoint")))
        .collect()
}

/// `cp -a from to`: a faithful copy of what a step sees (content, modes,
/// owners, ns mtimes, xattrs, symlinks, hard links).
fn snapshot(from: &Path, to: &Path) {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(
        out.status.success(),
        "cp -a {from:?} {to:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `r` failed with EROFS.
fn assert_erofs<T: std::fmt::Debug>(what: &str, r: io::Result<T>) {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {}
        other => panic!("{what} in a read-only view: expected EROFS, got {other:?}"),
    }
}

fn append(path: &Path, data: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .unwrap_or_else(|e| panic!("append to {path:?}: {e}"));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {path:?}: {e}"));
}

/// A child process that is killed and reaped when dropped.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small workspace `ws` persisted from `<tmp>/src`: a README, `docs/` with
/// nested directories, `src/`, and a symlink to `docs`.
fn small_workspace(a: &Host, ws: &str) -> PathBuf {
    let src = a.path("src");
    let w = |rel: &str, data: &[u8]| write_file(&src.join(rel), data).unwrap();
    w("README.md", b"# project\n");
    w("docs/index.md", b"docs index\n");
    w("docs/api/index.html", b"<h1>api</h1>\n");
    w("docs/api/old.html", b"<h1>old</h1>\n");
    w("docs/api/v1/spec.json", b"{\"v\": 1}\n");
    w("docs/api/v0/legacy.json", b"{\"v\": 0}\n");
    w("docs/guide/intro.md", b"intro\n");
    w("src/main.rs", b"fn main() {}\n");
    w("common.txt", b"base\n");
    symlink("docs", src.join("link-to-docs")).unwrap();
    set_mtime(&src.join("docs/api"), 1_555_555_555, 5).unwrap();
    set_mtime(&src.join("docs"), 1_444_444_444, 4).unwrap();
    a.persist(
        ws,
        &src,
        &["README.md", "docs", "src", "common.txt", "link-to-docs"],
    );
    src
}

// ---------------------------------------------------------------------------
// Read-only views
// ---------------------------------------------------------------------------

/// A test step attaches the build's workspace read-only and tries to change
/// it: creating a file, writing to an existing one, deleting one, making a
/// directory, chmod (and rename, setxattr, symlink) all fail with EROFS. The
/// workspace is unchanged: same log, and a new attach shows the persisted tree.
#[test]
fn a_read_only_view_refuses_writes_with_erofs() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(11, 200)).unwrap();
    a.persist("ro/ws", &src, &tree.top_level());
    let log = a.log("ro/ws");

    let v = a.path("view");
    let att = a.attach_view("ro/ws", &v, READ_ONLY);
    assert_eq!(str_of(&att, "view"), "read-only", "{att}");
    assert_eq!(
        str_of(&att, "upper_dir"),
        "",
        "a read-only view has no upper dir: {att}"
    );
    let readme = v.join("README.md");
    let before = fs::read(&readme).unwrap();

    assert_erofs("create", fs::File::create(v.join("new-file")));
    assert_erofs(
        "open an existing file for writing",
        OpenOptions::new().write(true).open(&readme),
    );
    assert_erofs("append", OpenOptions::new().append(true).open(&readme));
    assert_erofs("unlink", fs::remove_file(&readme));
    assert_erofs("mkdir", fs::create_dir(v.join("dir-000/new-dir")));
    assert_erofs(
        "chmod",
        fs::set_permissions(&readme, fs::Permissions::from_mode(0o600)),
    );
    assert_erofs("chown", lchown(&readme, Some(1234), Some(1234)));
    assert_erofs("rename", fs::rename(&readme, v.join("README.old")));
    assert_erofs("setxattr", xattr::set(&readme, "user.x", b"y"));
    assert_erofs("symlink", symlink("README.md", v.join("new-link")));
    assert_erofs("rmdir -r", fs::remove_dir_all(v.join("dir-000")));

    assert_eq!(fs::read(&readme).unwrap(), before);
    assert!(!v.join("new-file").exists() && !v.join("new-link").exists());
    assert_same_tree(&src, &v, &CompareOptions::ignoring_root());
    a.detach(&v);
    assert_eq!(
        a.log("ro/ws"),
        log,
        "writes to a read-only view changed the workspace"
    );
    let again = a.path("again");
    a.attach("ro/ws", &again);
    assert_same_tree(&src, &again, &CompareOptions::ignoring_root());
}

// ---------------------------------------------------------------------------
// Isolated views: every kind of change, persisted
// ---------------------------------------------------------------------------

/// A build step attaches the workspace as an isolated view and changes it in
/// every way a step can: new files and directories, appends and truncation
/// (also in the middle of a big file), deleting a file and a whole directory,
/// renaming a file and lower directories (within their parent and into other
/// directories, two swapping names), chmod/chown of files, a symlink,
/// directories and the view's root, setting mtimes, setting and removing
/// xattrs, a new symlink, hard links to lower files, a deleted directory
/// replaced by a new one of the same name and one replaced by a file, and a
/// FIFO (reported as skipped). It snapshots what it sees and runs `detach
/// --persist`; a job on another host attaching the workspace then sees
/// exactly that tree (content, modes, owners, mtimes, xattrs, symlinks,
/// hard-link structure), and only the changed chunks were stored.
#[test]
fn an_isolated_views_changes_persist_exactly_as_the_step_saw_them() {
    let a = Host::new();
    let src = a.path("src");
    let spec = TreeSpec {
        files: 400,
        dirs: 40,
        big_file_bytes: Some(3 * MIB + 4321),
        ..TreeSpec::everything(21)
    };
    let tree = generate(&src, &spec).unwrap();
    let first = a.persist("iso/ws", &src, &tree.top_level());
    let first_layer = str_of(&first, "layer").to_string();

    let v = a.path("view");
    let att = a.attach_view("iso/ws", &v, ISOLATED);
    assert_eq!(str_of(&att, "view"), "isolated", "{att}");
    assert_eq!(str_of(&att, "sub_path"), "", "{att}");
    let upper = PathBuf::from(str_of(&att, "upper_dir"));
    assert!(
        upper.starts_with(a.views_dir()) && upper.is_dir(),
        "an isolated view's upper dir must be a directory under {:?}: {att}",
        a.views_dir()
    );
    assert_eq!(
        mounts::mount_at(&v).map(|m| m.fs_type),
        Some("overlay".to_string()),
        "an isolated view is an overlay mount"
    );
    assert_same_tree(&src, &v, &CompareOptions::ignoring_root());

    // Plain lower files (not hard-linked) outside the directories the step
    // deletes or moves, one per kind of change.
    let picked: Vec<PathBuf> = tree
        .small_files(4000)
        .map(|f| f.path.clone())
        .filter(|p| s(p).starts_with("dir-") && !p.starts_with("dir-003"))
        .take(8)
        .collect();
    assert_eq!(picked.len(), 8, "the generated tree has too few small files");
    let [appended, truncated, deleted, renamed, chowned, xattred, touched, linked] =
        <[PathBuf; 8]>::try_from(picked).unwrap();
    let at = |rel: &str| v.join(rel);

    // New files and directories.
    write_file(&at("new-dir/sub/new-file.txt"), b"made by the step\n").unwrap();
    fs::create_dir(at("new-dir/empty-new-dir")).unwrap();
    write_file(&at("dir-000/new-in-lower-dir.bin"), &random_bytes(5, 70_000)).unwrap();
    // Modified files: an append, a truncation, 4 bytes in the middle of the big file.
    append(&v.join(&appended), b"appended by the step\n");
    OpenOptions::new()
        .write(true)
        .open(v.join(&truncated))
        .and_then(|f| f.set_len(3))
        .unwrap();
    let big = v.join(tree.big_file.as_ref().unwrap());
    OpenOptions::new()
        .write(true)
        .open(&big)
        .and_then(|f| f.write_all_at(b"EDIT", MIB + 7))
        .unwrap();
    // Deletions: a file, a whole directory tree.
    fs::remove_file(v.join(&deleted)).unwrap();
    fs::remove_dir_all(at("dir-003")).unwrap();
    // Renames: a file into another directory, a lower directory within its
    // parent, one into a lower directory, one into a new directory.
    fs::rename(v.join(&renamed), at("dir-001/renamed-file.bin")).unwrap();
    fs::rename(at("xattrs"), at("xattrs-renamed")).unwrap();
    fs::rename(at("odd names/dir with spaces"), at("dir-002/moved dir")).unwrap();
    fs::create_dir(at("moved-here")).unwrap();
    fs::rename(at("modes/private-dir"), at("moved-here/private-dir")).unwrap();
    // Metadata only.
    chmod(&at("modes/private"), 0o644);
    lchown(v.join(&chowned), Some(1234), Some(5678)).unwrap();
    chmod(&at("dir-002"), 0o750);
    lchown(at("dir-001"), Some(4321), Some(8765)).unwrap();
    set_mtime(&v.join(&touched), 1_600_000_000, 123_456_789).unwrap();
    xattr::set(v.join(&xattred), "user.step", b"done").unwrap();
    xattr::set(at("odd names"), "user.dir-note", b"set by the step").unwrap();
    xattr::remove(at("xattrs-renamed/many"), "user.k03").unwrap();
    // A symlink; hard links to a plain lower file and to one name of a pair.
    symlink("../README.md", at("links/new-link")).unwrap();
    fs::hard_link(v.join(&linked), at("dir-000/hard-link-to-lower")).unwrap();
    fs::hard_link(at("other-hl/pair-b"), at("other-hl/pair-c")).unwrap();
    // A deleted directory replaced by a new one, another by a file.
    fs::remove_dir_all(at("empty")).unwrap();
    fs::create_dir(at("empty")).unwrap();
    write_file(&at("empty/replacement.txt"), b"a new dir where one was deleted\n").unwrap();
    fs::remove_dir_all(at("modes/sticky-dir")).unwrap();
    write_file(&at("modes/sticky-dir"), b"a file where a dir was\n").unwrap();
    // Two lower directories swap names.
    fs::rename(at("modes/setgid-dir"), at("modes/swapping")).unwrap();
    fs::rename(at("modes/readonly-dir"), at("modes/setgid-dir")).unwrap();
    fs::rename(at("modes/swapping"), at("modes/readonly-dir")).unwrap();
    // Metadata of one name of a lower hard-link group, of a lower symlink,
    // of the view's root, and a directory's mtime (last: changes inside set it).
    chmod(&at("hardlinks/same-dir-link"), 0o600);
    lchown(at("links/dangling"), Some(77), Some(88)).unwrap();
    chmod(&v, 0o711);
    set_mtime(&at("odd names"), 1_234_567_890, 987_654_321).unwrap();
    // A FIFO: not content a layer holds (reported as skipped).
    let fifo = std::ffi::CString::new(s(&at("dir-000/a-fifo"))).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) },
        0,
        "{}",
        io::Error::last_os_error()
    );

    // What the step sees.
    assert!(!at("dir-003").exists() && !v.join(&deleted).exists() && !at("xattrs").exists());
    assert!(!at("empty/empty-file").exists() && !at("empty/nested").exists());
    assert_eq!(fs::read(at("xattrs-renamed/many")).unwrap(), b"many xattrs\n");
    assert_eq!(fs::metadata(v.join(&truncated)).unwrap().len(), 3);
    assert_eq!(
        fs::read(at("other-hl/pair-c")).unwrap(),
        fs::read(src.join("hardlinks/pair-a")).unwrap()
    );
    assert!(
        !src.join("new-dir").exists() && src.join("dir-003").exists(),
        "the view wrote through to the source tree"
    );
    let seen = a.path("seen-by-the-step");
    snapshot(&v, &seen);
    // The view's own link counts are overlayfs's (stale where copy-up broke
    // a lower hard-link group): compared through the hard-link structure instead.
    let copy_diffs = compare_trees(
        &v,
        &seen,
        &CompareOptions {
            nlink: false,
            ..Default::default()
        },
    );
    assert!(
        copy_diffs.is_empty(),
        "cp -a did not copy the view faithfully:\n{}",
        format_differences(&copy_diffs, 40)
    );

    let reply = a.detach_persist(&v);
    eprintln!("detach --persist: {reply}");
    assert_eq!(PathBuf::from(str_of(&reply, "mountpoint")), v);
    let p = persisted(&reply, "iso/ws");
    let layer = str_of(p, "layer").to_string();
    assert_ne!(layer, first_layer);
    // Whiteouts: the deleted file and directory, the renamed file's and the
    // three moved directories' old paths (replaced paths need none).
    assert_eq!(u64_of(p, "deleted"), 6, "{p}");
    assert_eq!(overrode(p), Vec::<String>::new(), "nothing landed meanwhile: {p}");
    let skipped = array_of(p, "skipped");
    assert!(
        skipped.len() == 1 && skipped[0].as_str().is_some_and(|f| f.ends_with("dir-000/a-fifo")),
        "the FIFO must be reported as skipped, and only it: {p}"
    );
    // The workspace has no FIFO: neither has the expected tree (keeping the
    // directory's mtime as the step saw it).
    let dir_meta = fs::symlink_metadata(seen.join("dir-000")).unwrap();
    fs::remove_file(seen.join("dir-000/a-fifo")).unwrap();
    set_mtime(&seen.join("dir-000"), dir_meta.mtime(), dir_meta.mtime_nsec()).unwrap();
    let new_bytes = u64_of(p, "new_bytes");
    assert!(
        (70_000..MIB).contains(&new_bytes),
        "the step wrote ~70 KB of new data and changed one spot of the big file (chunks are at \
         most 256 KiB); metadata-only changes store no data: new_bytes {new_bytes}: {p}"
    );
    assert!(
        !mounts::is_mounted(&v),
        "{v:?} still mounted after detach --persist"
    );
    assert!(!upper.exists(), "the upper dir {upper:?} outlived its view");
    assert_eq!(entries_of(&a.views_dir()), Vec::<PathBuf>::new());
    assert_eq!(
        log_layers(&a.log("iso/ws")),
        [first_layer.clone(), layer.clone()],
        "the view's changes must be the workspace's second layer"
    );

    // A new user on another host sees what the step saw.
    let b = a.peer_named("b");
    let mb = a.path("attach-b");
    let att_b = b.attach("iso/ws", &mb);
    let layers_b: Vec<&str> = array_of(&att_b, "layers")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layers_b, [first_layer.as_str(), layer.as_str()], "{att_b}");
    assert_same_tree(&seen, &mb, &CompareOptions::default());
    assert_eq!(
        fs::read(mb.join("dir-000/new-in-lower-dir.bin")).unwrap(),
        random_bytes(5, 70_000)
    );
}

/// A step renames a directory holding some names of a hard-link group whose
/// other name stays outside it (`mv objs archive/objs`, with `bin/tool` a hard
/// link of `objs/tool.o`). In the view all three names are still one file
/// (overlayfs keeps the lower inode); after `detach --persist` the workspace
/// must show the same: one inode with three names, not a separate copy.
#[test]
fn renaming_a_directory_keeps_hard_links_to_names_outside_it() {
    let a = Host::new();
    let src = a.path("src");
    write_file(&src.join("objs/tool.o"), &random_bytes(3, 5000)).unwrap();
    fs::hard_link(src.join("objs/tool.o"), src.join("objs/tool-copy.o")).unwrap();
    fs::create_dir_all(src.join("bin")).unwrap();
    fs::hard_link(src.join("objs/tool.o"), src.join("bin/tool")).unwrap();
    write_file(&src.join("objs/other.o"), b"other\n").unwrap();
    a.persist("hl/ws", &src, &["objs", "bin"]);

    let v = a.path("view");
    a.attach_view("hl/ws", &v, ISOLATED);
    fs::create_dir(v.join("archive")).unwrap();
    fs::rename(v.join("objs"), v.join("archive/objs")).unwrap();
    let seen = a.path("seen-by-the-step");
    snapshot(&v, &seen);
    let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
    assert_eq!(
        ino(&seen.join("bin/tool")),
        ino(&seen.join("archive/objs/tool.o")),
        "in the view, bin/tool and archive/objs/tool.o are one file"
    );
    persisted(&a.detach_persist(&v), "hl/ws");

    let mnt = a.path("after");
    a.attach("hl/ws", &mnt);
    assert_same_tree(&seen, &mnt, &CompareOptions::default());
}

// ---------------------------------------------------------------------------
// Discarding
// ---------------------------------------------------------------------------

/// A step experiments in an isolated view (new, changed and deleted files)
/// and detaches without `--persist`: the changes are gone. The workspace log
/// is unchanged, a new attach shows the original tree, and nothing of the
/// view is left under `$WSFS_STATE_DIR/views`.
#[test]
fn a_discarded_isolated_view_leaves_the_workspace_unchanged() {
    let a = Host::new();
    let src = a.path("src");
    let tree = generate(&src, &TreeSpec::plain(31, 150)).unwrap();
    a.persist("discard/ws", &src, &tree.top_level());
    let log = a.log("discard/ws");

    let v = a.path("view");
    let att = a.attach_view("discard/ws", &v, ISOLATED);
    let upper = PathBuf::from(str_of(&att, "upper_dir"));
    write_file(&v.join("scratch/new.txt"), b"throwaway\n").unwrap();
    append(&v.join("README.md"), b"throwaway\n");
    fs::remove_dir_all(v.join("dir-000")).unwrap();
    assert!(
        upper.join("scratch/new.txt").is_file(),
        "the view's changes are not in its upper dir {upper:?}"
    );
    assert_eq!(
        entries_of(&a.views_dir()).len(),
        1,
        "one isolated view, one directory"
    );

    let reply = a.detach(&v);
    assert!(
        reply["persisted"].is_null(),
        "detach without --persist persisted: {reply}"
    );
    assert!(!mounts::is_mounted(&v));
    assert!(!upper.exists(), "discarded changes left on disk in {upper:?}");
    assert_eq!(
        entries_of(&a.views_dir()),
        Vec::<PathBuf>::new(),
        "leftovers under {:?}",
        a.views_dir()
    );
    assert_eq!(
        a.log("discard/ws"),
        log,
        "a discarded view changed the workspace log"
    );
    let again = a.path("again");
    a.attach_view("discard/ws", &again, ISOLATED);
    assert_same_tree(&src, &again, &CompareOptions::ignoring_root());
    assert!(!again.join("scratch").exists());
}

// ---------------------------------------------------------------------------
// Sub-path views
// ---------------------------------------------------------------------------

/// A docs step only needs `docs/`: a read-only `--sub-path docs` view shows
/// exactly that directory (its own metadata at the root) and nothing else,
/// and refuses writes.
#[test]
fn a_read_only_sub_path_view_shows_only_that_directory() {
    let a = Host::new();
    let src = small_workspace(&a, "sub/ro");
    let v = a.path("docs-view");
    let att = a.attach_view("sub/ro", &v, &["--sub-path", "docs"]);
    assert_eq!(str_of(&att, "sub_path"), "docs", "{att}");
    assert_eq!(str_of(&att, "view"), "read-only", "{att}");
    assert_eq!(list_paths(&v).unwrap(), list_paths(&src.join("docs")).unwrap());
    assert_same_tree(&src.join("docs"), &v, &CompareOptions::default());
    assert_erofs("create", fs::File::create(v.join("new.md")));
    let status = a.status();
    let m = array_of(&status, "mounts")
        .iter()
        .find(|m| str_of(m, "mountpoint") == s(&v))
        .unwrap_or_else(|| panic!("{v:?} not in status: {status}"));
    assert_eq!(str_of(m, "sub_path"), "docs", "{status}");
    assert_eq!(str_of(m, "view"), "read-only", "{status}");
}

/// An API-docs step attaches `--sub-path docs/api --view isolated`, sees only
/// that directory, adds, changes, deletes, renames (within a directory and
/// into another) and chmods there (also the view's root), and persists: in
/// the workspace the changes land under `docs/api` (as the step saw them),
/// and everything outside `docs/api` is as it was.
#[test]
fn an_isolated_sub_path_views_changes_land_under_the_sub_path() {
    let a = Host::new();
    let src = small_workspace(&a, "sub/iso");
    let first = log_layers(&a.log("sub/iso"));
    let v = a.path("api-view");
    let att = a.attach_view("sub/iso", &v, &["--view", "isolated", "--sub-path", "docs/api"]);
    assert_eq!(str_of(&att, "sub_path"), "docs/api", "{att}");
    assert_eq!(
        list_paths(&v).unwrap(),
        list_paths(&src.join("docs/api")).unwrap()
    );
    assert_same_tree(&src.join("docs/api"), &v, &CompareOptions::default());

    write_file(&v.join("new.html"), b"<h1>new</h1>\n").unwrap();
    append(&v.join("index.html"), b"<p>more</p>\n");
    fs::remove_file(v.join("old.html")).unwrap();
    write_file(&v.join("v2/spec.json"), b"{\"v\": 2}\n").unwrap();
    chmod(&v.join("v1/spec.json"), 0o600);
    fs::rename(v.join("v1"), v.join("v2/v1-archived")).unwrap();
    fs::rename(v.join("v0"), v.join("v0-renamed")).unwrap();
    chmod(&v, 0o750);
    let seen = a.path("seen-by-the-step");
    snapshot(&v, &seen);

    let reply = a.detach_persist(&v);
    let p = persisted(&reply, "sub/iso");
    assert_eq!(u64_of(p, "deleted"), 3, "old.html and the renamed v0 and v1: {p}");
    let layers = log_layers(&a.log("sub/iso"));
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert_eq!(layers[0], first[0]);
    assert_eq!(layers[1], str_of(p, "layer"));

    let mnt = a.path("whole");
    a.attach("sub/iso", &mnt);
    assert_same_tree(&seen, &mnt.join("docs/api"), &CompareOptions::default());
    assert!(
        !mnt.join("new.html").exists(),
        "sub-path changes landed at the workspace root"
    );
    let diffs = compare_trees(&src, &mnt, &CompareOptions::ignoring_root());
    assert!(
        !diffs.is_empty(),
        "the persisted changes are not in the workspace"
    );
    let outside: Vec<_> = diffs
        .iter()
        .filter(|d| !d.path.starts_with("docs/api"))
        .cloned()
        .collect();
    assert!(
        outside.is_empty(),
        "a sub-path view's persist changed the workspace outside docs/api:\n{}",
        format_differences(&outside, 40)
    );
}

/// An API-docs step has `--sub-path docs/api` attached isolated while another
/// step persists a change to `docs` itself (mode, xattr, mtime) and to
/// `docs/index.md`. When the API-docs step persists, its changes land under
/// `docs/api` and nothing else changes: `docs` keeps the other step's
/// metadata, which the sub-path view never even showed.
#[test]
fn a_sub_path_views_persist_leaves_the_directories_above_it_alone() {
    let a = Host::new();
    let src = small_workspace(&a, "sub/above");
    let v = a.path("api-view");
    a.attach_view("sub/above", &v, &["--view", "isolated", "--sub-path", "docs/api"]);

    chmod(&src.join("docs"), 0o700);
    xattr::set(src.join("docs"), "user.owner", b"the other step").unwrap();
    fs::write(src.join("docs/index.md"), b"changed by the other step\n").unwrap();
    set_mtime(&src.join("docs"), 1_500_000_000, 42).unwrap();
    a.persist("sub/above", &src, &["docs/index.md"]);
    let other = a.path("other");
    a.attach("sub/above", &other);
    let docs_then = fs::symlink_metadata(other.join("docs")).unwrap();
    assert_eq!(
        (
            docs_then.mode() & 0o7777,
            docs_then.mtime(),
            docs_then.mtime_nsec()
        ),
        (0o700, 1_500_000_000, 42),
        "the other step's persist did not record docs' metadata"
    );

    write_file(&v.join("new.html"), b"<h1>new</h1>\n").unwrap();
    persisted(&a.detach_persist(&v), "sub/above");
    let mnt = a.path("after");
    a.attach("sub/above", &mnt);
    assert_eq!(
        fs::read(mnt.join("docs/api/new.html")).unwrap(),
        b"<h1>new</h1>\n"
    );
    assert_eq!(
        fs::read(mnt.join("docs/index.md")).unwrap(),
        b"changed by the other step\n"
    );
    let docs = fs::symlink_metadata(mnt.join("docs")).unwrap();
    assert_eq!(
        (docs.mode() & 0o7777, docs.mtime(), docs.mtime_nsec()),
        (0o700, 1_500_000_000, 42),
        "a docs/api view's persist changed docs (mode, mtime) outside its sub-path"
    );
    assert_eq!(
        xattr::get(mnt.join("docs"), "user.owner").unwrap().as_deref(),
        Some(&b"the other step"[..]),
        "a docs/api view's persist dropped an xattr of docs, outside its sub-path"
    );
}

// ---------------------------------------------------------------------------
// Concurrent persists
// ---------------------------------------------------------------------------

/// Two parallel test steps work in isolated views of one version: each adds
/// its own file, and both rewrite `common.txt`. Their `wsfs detach --persist`
/// run at the same time. Both layers land; the workspace has both steps'
/// files; `common.txt` has the content of the layer later in `wsfs log`, and
/// exactly that later persist reports `common.txt` in `overrode`.
#[test]
fn parallel_isolated_views_both_land_and_the_later_reports_what_it_overrode() {
    let a = Host::new();
    small_workspace(&a, "par/ws");
    let base = log_layers(&a.log("par/ws"));
    let (va, vb) = (a.path("step-a"), a.path("step-b"));
    let att_a = a.attach_view("par/ws", &va, ISOLATED);
    let att_b = a.attach_view("par/ws", &vb, ISOLATED);
    assert_eq!(str_of(&att_a, "version"), str_of(&att_b, "version"));
    write_file(&va.join("src/only-a.rs"), b"// step a\n").unwrap();
    fs::write(va.join("common.txt"), b"from step a\n").unwrap();
    write_file(&vb.join("docs/only-b.md"), b"step b\n").unwrap();
    fs::write(vb.join("common.txt"), b"from step b, longer\n").unwrap();
    assert_eq!(
        fs::read(va.join("common.txt")).unwrap(),
        b"from step a\n",
        "isolated views must not see each other's changes"
    );
    assert!(!va.join("docs/only-b.md").exists());

    let start = Barrier::new(2);
    let (ra, rb) = std::thread::scope(|scope| {
        let ta = scope.spawn(|| {
            start.wait();
            a.detach_persist(&va)
        });
        let tb = scope.spawn(|| {
            start.wait();
            a.detach_persist(&vb)
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    eprintln!("step a: {ra}\nstep b: {rb}");
    let (pa, pb) = (persisted(&ra, "par/ws"), persisted(&rb, "par/ws"));
    let (la, lb) = (str_of(pa, "layer").to_string(), str_of(pb, "layer").to_string());
    assert_ne!(la, lb);

    let layers = log_layers(&a.log("par/ws"));
    assert_eq!(layers.len(), 3, "both layers must land: {layers:?}");
    assert_eq!(layers[0], base[0]);
    assert_eq!(
        BTreeSet::from([layers[1].clone(), layers[2].clone()]),
        BTreeSet::from([la.clone(), lb.clone()]),
        "log: {layers:?}"
    );
    let a_is_later = layers[2] == la;
    let (later, earlier) = if a_is_later { (pa, pb) } else { (pb, pa) };
    let later_content: &[u8] = if a_is_later {
        b"from step a\n"
    } else {
        b"from step b, longer\n"
    };

    let mnt = a.path("after");
    a.attach("par/ws", &mnt);
    assert_eq!(fs::read(mnt.join("src/only-a.rs")).unwrap(), b"// step a\n");
    assert_eq!(fs::read(mnt.join("docs/only-b.md")).unwrap(), b"step b\n");
    assert_eq!(fs::read(mnt.join("src/main.rs")).unwrap(), b"fn main() {}\n");
    assert_eq!(
        fs::read(mnt.join("common.txt")).unwrap(),
        later_content,
        "common.txt must have the content of the layer later in the log"
    );
    assert_eq!(
        overrode(later),
        ["common.txt"],
        "the later persist hides the other step's common.txt: {later}"
    );
    assert_eq!(
        overrode(earlier),
        Vec::<String>::new(),
        "the earlier persist hides nothing: {earlier}"
    );
}

/// A long step attaches an isolated view; meanwhile another step persists a
/// new layer (changing a file the long step also changes, and adding one).
/// The view keeps showing the version it attached; when it persists, its
/// layer lands on top of the other one: both steps' changes are in the
/// workspace, the view's win where both changed a path, and it says so.
#[test]
fn a_view_of_an_older_version_lands_on_top_of_newer_layers() {
    let a = Host::new();
    let src = small_workspace(&a, "old/ws");
    let first = log_layers(&a.log("old/ws"));
    let v = a.path("long-step");
    a.attach_view("old/ws", &v, ISOLATED);

    fs::write(src.join("common.txt"), b"from the other step\n").unwrap();
    write_file(&src.join("src/lib.rs"), b"// added by the other step\n").unwrap();
    let other = a.persist("old/ws", &src, &["common.txt", "src/lib.rs"]);
    assert!(
        !v.join("src/lib.rs").exists(),
        "an attached view must keep showing its version"
    );
    assert_eq!(fs::read(v.join("common.txt")).unwrap(), b"base\n");

    fs::write(v.join("common.txt"), b"from the long step\n").unwrap();
    write_file(&v.join("docs/long.md"), b"long step\n").unwrap();
    let reply = a.detach_persist(&v);
    let p = persisted(&reply, "old/ws");
    assert_eq!(
        log_layers(&a.log("old/ws")),
        [
            first[0].clone(),
            str_of(&other, "layer").to_string(),
            str_of(p, "layer").to_string()
        ],
        "the view's layer must land on top"
    );
    assert_eq!(overrode(p), ["common.txt"], "{p}");

    let mnt = a.path("after");
    a.attach("old/ws", &mnt);
    assert_eq!(fs::read(mnt.join("common.txt")).unwrap(), b"from the long step\n");
    assert_eq!(
        fs::read(mnt.join("src/lib.rs")).unwrap(),
        b"// added by the other step\n"
    );
    assert_eq!(fs::read(mnt.join("docs/long.md")).unwrap(), b"long step\n");
    assert_eq!(fs::read(mnt.join("README.md")).unwrap(), b"# project\n");
}

// ---------------------------------------------------------------------------
// Sharing one FUSE mount
// ---------------------------------------------------------------------------

/// Twenty parallel steps attach one workspace version, half read-only, half
/// isolated: there is one FUSE mount for all of them (`shared_mounts` has one
/// entry with 20 views; the mount table has one FUSE mount under
/// `$WSFS_STATE_DIR/mnt`), isolated views keep their writes private, and
/// detaching all 20 removes the shared mount.
#[test]
fn twenty_views_of_one_version_share_one_fuse_mount() {
    let a = Host::new();
    small_workspace(&a, "share/ws");
    let views: Vec<(PathBuf, bool)> = (0..20)
        .map(|i| (a.path(format!("view-{i:02}")), i % 2 == 1))
        .collect();
    let mut version = None;
    for (mnt, isolated) in &views {
        let att = a.attach_view("share/ws", mnt, if *isolated { ISOLATED } else { READ_ONLY });
        let ver = str_of(&att, "version").to_string();
        assert_eq!(
            version.get_or_insert(ver.clone()),
            &ver,
            "one version, one id: {att}"
        );
    }
    let version = version.unwrap();
    for (i, (mnt, isolated)) in views.iter().enumerate() {
        assert_eq!(fs::read(mnt.join("README.md")).unwrap(), b"# project\n");
        if *isolated {
            fs::write(mnt.join("mine.txt"), format!("view {i}\n")).unwrap();
        }
    }
    for (i, (mnt, isolated)) in views.iter().enumerate() {
        match isolated {
            true => assert_eq!(
                fs::read(mnt.join("mine.txt")).unwrap(),
                format!("view {i}\n").as_bytes()
            ),
            false => assert!(
                !mnt.join("mine.txt").exists(),
                "{mnt:?} sees an isolated view's write"
            ),
        }
    }

    let status = a.status();
    let shared = array_of(&status, "shared_mounts");
    assert_eq!(shared.len(), 1, "one version, one FUSE mount: {status}");
    assert_eq!(u64_of(&shared[0], "views"), 20, "{status}");
    assert_eq!(str_of(&shared[0], "version"), version, "{status}");
    assert_eq!(str_of(&shared[0], "workspace"), "share/ws", "{status}");
    let fuse = fuse_mounts_under(&a.shared_mounts_dir());
    assert_eq!(
        fuse.iter().map(|m| &m.mount_point).collect::<Vec<_>>(),
        [&PathBuf::from(str_of(&shared[0], "path"))],
        "exactly one FUSE mount under {:?}, the one status names",
        a.shared_mounts_dir()
    );
    let listed = array_of(&status, "mounts");
    assert_eq!(listed.len(), 20, "{status}");
    for m in listed {
        assert_eq!(str_of(m, "version"), version);
        let isolated = str_of(m, "view") == "isolated";
        assert_eq!(isolated, !str_of(m, "upper_dir").is_empty(), "{m}");
    }
    assert_eq!(
        listed.iter().filter(|m| str_of(m, "view") == "isolated").count(),
        10
    );

    for (mnt, _) in &views[..19] {
        a.detach(mnt);
    }
    let status = a.status();
    let shared = array_of(&status, "shared_mounts");
    assert_eq!(shared.len(), 1, "{status}");
    assert_eq!(u64_of(&shared[0], "views"), 1, "{status}");
    assert_eq!(fuse_mounts_under(&a.shared_mounts_dir()).len(), 1);
    a.detach(&views[19].0);
    let status = a.status();
    assert!(array_of(&status, "shared_mounts").is_empty(), "{status}");
    assert!(array_of(&status, "mounts").is_empty(), "{status}");
    assert_eq!(fuse_mounts_under(&a.shared_mounts_dir()), Vec::new());
    assert_eq!(mounts::mounts_under(a.test_dir()), Vec::<PathBuf>::new());
    assert_eq!(entries_of(&a.views_dir()), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------
// Shutdown, crashes, busy views
// ---------------------------------------------------------------------------

/// The runner calls `wsfs shutdown` while steps still have isolated views
/// (one with `--upper-dir`) and a read-only view attached: every mount is
/// gone (overlays and the FUSE mount), the daemon exits, and no upper dir is
/// left, neither under `$WSFS_STATE_DIR/views` nor under the `--upper-dir`.
#[test]
fn shutdown_with_isolated_views_leaves_no_mount_and_no_upper_dir() {
    let a = Host::new();
    small_workspace(&a, "down/ws");
    let own_uppers = a.path("uppers");
    fs::create_dir(&own_uppers).unwrap();
    let (i1, i2, ro) = (a.path("iso-1"), a.path("iso-2"), a.path("ro"));
    let u1 = PathBuf::from(str_of(&a.attach_view("down/ws", &i1, ISOLATED), "upper_dir"));
    let att2 = a.attach_view(
        "down/ws",
        &i2,
        &["--view", "isolated", "--upper-dir", s(&own_uppers)],
    );
    let u2 = PathBuf::from(str_of(&att2, "upper_dir"));
    assert!(u2.starts_with(&own_uppers), "--upper-dir not used: {att2}");
    a.attach("down/ws", &ro);
    write_file(&i1.join("out/one.txt"), b"one\n").unwrap();
    write_file(&i2.join("out/two.txt"), b"two\n").unwrap();
    assert!(u1.join("out/one.txt").is_file() && u2.join("out/two.txt").is_file());
    let pid = u64_of(&a.status(), "pid") as i32;

    a.shutdown();
    assert!(
        process::wait_for_exit(pid, Duration::from_secs(30)),
        "daemon {pid} still running 30 s after `wsfs shutdown` returned"
    );
    assert_eq!(
        mounts::mounts_under(a.test_dir()),
        Vec::<PathBuf>::new(),
        "mounts left after shutdown"
    );
    assert!(!u1.exists() && !u2.exists(), "upper dirs left after shutdown");
    assert_eq!(entries_of(&a.views_dir()), Vec::<PathBuf>::new());
    assert_eq!(entries_of(&own_uppers), Vec::<PathBuf>::new());
}

/// A step's process still has its working directory inside its isolated view
/// when the runner detaches it: `detach` (and `detach --persist`) fail naming
/// the process, and the view stays attached, with its changes, and usable.
/// Once the process is gone, `detach --persist` works and keeps every change.
#[test]
fn detaching_a_busy_isolated_view_names_the_process_and_keeps_the_view() {
    let a = Host::new();
    small_workspace(&a, "busy/ws");
    let log = a.log("busy/ws");
    let v = a.path("view");
    a.attach_view("busy/ws", &v, ISOLATED);
    write_file(&v.join("out/result.txt"), b"result\n").unwrap();
    let holder = Holder(
        Command::new("sleep")
            .arg("600")
            .current_dir(v.join("docs"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = holder.0.id();

    for args in [vec!["detach", s(&v)], vec!["detach", "--persist", s(&v)]] {
        let stderr = a.fails(&args);
        eprintln!("wsfs {args:?}\n  -> {}", stderr.trim_end());
        assert!(
            stderr.contains(&pid.to_string()) && stderr.contains("sleep"),
            "`wsfs {args:?}` does not name the process ({pid} sleep) keeping the view busy:\n{stderr}"
        );
        assert!(
            stderr.contains(s(&v)),
            "the error does not name the view:\n{stderr}"
        );
        assert!(mounts::is_mounted(&v), "a failed detach unmounted {v:?}");
        assert!(status_mountpoints(&a.status()).contains(&v));
        assert_eq!(
            a.log("busy/ws"),
            log,
            "a failed detach --persist changed the workspace"
        );
        assert_eq!(fs::read(v.join("out/result.txt")).unwrap(), b"result\n");
    }
    fs::write(v.join("after-the-failed-detach.txt"), b"still usable\n").unwrap();
    drop(holder);

    let p = a.detach_persist(&v);
    persisted(&p, "busy/ws");
    let mnt = a.path("after");
    a.attach("busy/ws", &mnt);
    assert_eq!(fs::read(mnt.join("out/result.txt")).unwrap(), b"result\n");
    assert_eq!(
        fs::read(mnt.join("after-the-failed-detach.txt")).unwrap(),
        b"still usable\n"
    );
}

/// The remote refuses writes while a step persists its isolated view (the
/// `file://` remote's `packs` is a file, not a directory): `detach --persist`
/// fails with an error, and the view stays attached with every change, usable,
/// and the workspace is unchanged. Once the remote is fixed, `detach
/// --persist` lands the changes.
#[test]
fn a_failed_persist_keeps_the_view_attached_with_its_changes() {
    // The file:// remote: the test breaks its packs directory.
    let a = Host::with_config(HostConfig::default().file_remote());
    small_workspace(&a, "fail/ws");
    let log = a.log("fail/ws");
    let v = a.path("view");
    let att = a.attach_view("fail/ws", &v, ISOLATED);
    let upper = PathBuf::from(str_of(&att, "upper_dir"));
    let data = random_bytes(7, 200_000);
    write_file(&v.join("out/new.bin"), &data).unwrap();
    chmod(&v.join("README.md"), 0o600);
    fs::remove_file(v.join("docs/index.md")).unwrap();

    let packs = a.remote_dir().join("packs");
    let away = a.remote_dir().join("packs.away");
    fs::rename(&packs, &away).unwrap();
    fs::write(&packs, b"not a directory\n").unwrap();
    let stderr = a.fails(["detach", "--persist", s(&v)]);
    eprintln!("detach --persist with a broken remote:\n{stderr}");
    assert!(
        stderr.contains(s(&v)),
        "the error does not name the view:\n{stderr}"
    );
    assert_eq!(
        mounts::mount_at(&v).map(|m| m.fs_type),
        Some("overlay".to_string()),
        "a failed persist must leave the view attached"
    );
    assert!(status_mountpoints(&a.status()).contains(&v));
    assert_eq!(a.log("fail/ws"), log, "a failed persist changed the workspace");
    assert!(upper.is_dir(), "a failed persist removed the view's changes");
    assert_eq!(fs::read(v.join("out/new.bin")).unwrap(), data);
    assert_eq!(
        fs::metadata(v.join("README.md")).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert!(!v.join("docs/index.md").exists());
    fs::write(v.join("after-the-failure.txt"), b"still usable\n").unwrap();

    fs::remove_file(&packs).unwrap();
    fs::rename(&away, &packs).unwrap();
    let p = a.detach_persist(&v);
    assert_eq!(u64_of(persisted(&p, "fail/ws"), "deleted"), 1, "{p}");
    assert_eq!(log_layers(&a.log("fail/ws")).len(), 2);
    let b = a.peer_named("b");
    let mnt = a.path("after");
    b.attach("fail/ws", &mnt);
    assert_eq!(fs::read(mnt.join("out/new.bin")).unwrap(), data);
    assert_eq!(
        fs::read(mnt.join("after-the-failure.txt")).unwrap(),
        b"still usable\n"
    );
    assert_eq!(
        fs::metadata(mnt.join("README.md")).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert!(!mnt.join("docs/index.md").exists());
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// What a refused command must leave as it was.
#[derive(Debug, PartialEq)]
struct World {
    log: Value,
    mounts: Vec<PathBuf>,
    views: BTreeSet<PathBuf>,
    upper_dirs: Vec<PathBuf>,
}

fn world(a: &Host, ws: &str) -> World {
    World {
        log: a.log(ws),
        mounts: mounts::mounts_under(a.test_dir()),
        views: status_mountpoints(&a.status()),
        upper_dirs: entries_of(&a.views_dir()),
    }
}

/// Runs a command that must fail, plain and with `--json`: an `error:`
/// message mentioning every one of `needles` (case-insensitively), and no
/// change to the workspace log, the mounts, the views or `$STATE/views`.
fn rejects(a: &Host, ws: &str, args: &[&str], needles: &[&str]) -> String {
    a.rejects(args, needles, || world(a, ws))
}

/// A CI config asks for a view kind that does not exist (`--view rw`):
/// refused by the argument parser, naming the value and the valid kinds.
#[test]
fn attach_rejects_an_unknown_view_kind() {
    let a = Host::new();
    small_workspace(&a, "bad/kind");
    let mnt = a.path("mnt");
    rejects(
        &a,
        "bad/kind",
        &["attach", "--workspace", "bad/kind", "--view", "rw", s(&mnt)],
        &["rw", "--view", "read-only", "isolated"],
    );
    assert!(!mnt.exists(), "a refused attach created its mountpoint");
}

/// A step gives `--sub-path` values that escape or do not name a directory of
/// the workspace: with `..`, absolute, missing, a file, through a symlink.
/// Each is refused (for both view kinds) naming the sub-path and the problem,
/// and nothing is mounted or created.
#[test]
fn attach_rejects_bad_sub_paths() {
    let a = Host::new();
    small_workspace(&a, "bad/sub");
    let mnt = a.path("mnt");
    let cases: &[(&str, &[&str])] = &[
        ("../outside", &["sub-path", "../outside", ".."]),
        ("docs/../../outside", &["sub-path", "docs/../../outside", ".."]),
        ("/docs", &["sub-path", "/docs", "absolute"]),
        ("nope", &["sub-path", "nope", "does not exist"]),
        (
            "docs/missing/deeper",
            &["sub-path", "docs/missing", "does not exist"],
        ),
        ("README.md", &["sub-path", "README.md", "not a directory"]),
        (
            "docs/api/index.html",
            &["sub-path", "docs/api/index.html", "not a directory"],
        ),
        ("link-to-docs", &["sub-path", "link-to-docs", "symlink"]),
        ("link-to-docs/api", &["sub-path", "link-to-docs", "symlink"]),
    ];
    for (sub, needles) in cases {
        for kind in ["read-only", "isolated"] {
            rejects(
                &a,
                "bad/sub",
                &[
                    "attach",
                    "--workspace",
                    "bad/sub",
                    "--view",
                    kind,
                    "--sub-path",
                    sub,
                    s(&mnt),
                ],
                needles,
            );
            assert!(!mnt.exists(), "a refused attach created its mountpoint");
        }
    }
}

/// A step attaches a workspace at a directory inside another wsfs view (a
/// read-only one, and a directory it made in an isolated one): refused,
/// naming the view; both views stay attached and unchanged.
#[test]
fn attach_rejects_a_mountpoint_inside_another_view() {
    let a = Host::new();
    small_workspace(&a, "bad/nest");
    let (ro, iso) = (a.path("ro"), a.path("iso"));
    a.attach("bad/nest", &ro);
    a.attach_view("bad/nest", &iso, ISOLATED);
    fs::create_dir(iso.join("empty-dir")).unwrap();
    for kind in ["read-only", "isolated"] {
        let inside_ro = ro.join("docs/guide");
        rejects(
            &a,
            "bad/nest",
            &["attach", "--workspace", "bad/nest", "--view", kind, s(&inside_ro)],
            &[s(&ro), "inside"],
        );
        let inside_iso = iso.join("empty-dir");
        rejects(
            &a,
            "bad/nest",
            &[
                "attach",
                "--workspace",
                "bad/nest",
                "--view",
                kind,
                s(&inside_iso),
            ],
            &[s(&iso), "inside"],
        );
        assert!(inside_iso.is_dir() && fs::read_dir(&inside_iso).unwrap().next().is_none());
    }
    assert_eq!(fs::read(ro.join("docs/guide/intro.md")).unwrap(), b"intro\n");
    assert_eq!(status_mountpoints(&a.status()), BTreeSet::from([ro, iso]));
}

/// A step gives `--upper-dir` where an isolated view cannot keep its changes:
/// inside a read-only wsfs view, on the FUSE mount of a workspace version,
/// on an overlayfs mount (overlayfs refuses such upper dirs), a path that
/// does not exist, and `--upper-dir` with a read-only view. Each is refused
/// naming the directory (or the flag), with nothing mounted or left behind.
#[test]
fn attach_rejects_unusable_upper_dirs() {
    let a = Host::new();
    small_workspace(&a, "bad/upper");
    let ro = a.path("ro");
    a.attach("bad/upper", &ro);
    let mnt = a.path("mnt");
    let iso = |upper: &Path| -> Vec<String> {
        [
            "attach",
            "--workspace",
            "bad/upper",
            "--view",
            "isolated",
            "--upper-dir",
            s(upper),
            s(&mnt),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&a, "bad/upper", &args, needles);
        assert!(!mnt.exists(), "a refused attach created its mountpoint");
    };

    let in_view = ro.join("docs");
    run(iso(&in_view), &["upper", s(&in_view)]);

    let status = a.status();
    let shared = PathBuf::from(str_of(&array_of(&status, "shared_mounts")[0], "path"));
    let on_fuse = shared.join("docs");
    assert!(on_fuse.is_dir());
    run(iso(&on_fuse), &["upper dir", s(&on_fuse)]);

    // An overlayfs mount of the test's own (not wsfs's).
    let ovl = a.path("ovl");
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir_all(ovl.join(d)).unwrap();
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        s(&ovl.join("lower")),
        s(&ovl.join("upper")),
        s(&ovl.join("work"))
    );
    let target = std::ffi::CString::new(s(&ovl.join("merged"))).unwrap();
    let data = std::ffi::CString::new(data).unwrap();
    // SAFETY: valid NUL-terminated strings; unmounted below.
    let r = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(r, 0, "mount overlay: {}", io::Error::last_os_error());
    let on_overlay = ovl.join("merged/uppers");
    fs::create_dir(&on_overlay).unwrap();
    run(iso(&on_overlay), &["upper dir", s(&on_overlay), "overlay"]);
    assert_eq!(
        entries_of(&on_overlay),
        Vec::<PathBuf>::new(),
        "a refused upper dir was left with the view's directories"
    );
    // SAFETY: the path mounted above.
    assert_eq!(unsafe { libc::umount(target.as_ptr()) }, 0);

    let missing = a.path("no-such-dir");
    run(iso(&missing), &["upper dir", s(&missing)]);
    assert!(!missing.exists());

    let fine = a.path("fine-uppers");
    fs::create_dir(&fine).unwrap();
    run(
        [
            "attach",
            "--workspace",
            "bad/upper",
            "--upper-dir",
            s(&fine),
            s(&mnt),
        ]
        .map(String::from)
        .to_vec(),
        &["--upper-dir", "isolated"],
    );
    run(
        [
            "attach",
            "--workspace",
            "bad/upper",
            "--view",
            "read-only",
            "--upper-dir",
            s(&fine),
            s(&mnt),
        ]
        .map(String::from)
        .to_vec(),
        &["--upper-dir", "isolated"],
    );
    assert_eq!(entries_of(&fine), Vec::<PathBuf>::new());
}

/// A step asks to persist its read-only view: refused, saying it is
/// read-only; the view stays attached and the workspace unchanged. Sibling
/// checks: `--persist` of a path that is no view at all.
#[test]
fn detach_persist_rejects_a_read_only_view() {
    let a = Host::new();
    small_workspace(&a, "bad/ro");
    let ro = a.path("ro");
    a.attach("bad/ro", &ro);
    rejects(
        &a,
        "bad/ro",
        &["detach", "--persist", s(&ro)],
        &["read-only", s(&ro)],
    );
    assert!(
        mounts::is_mounted(&ro),
        "a refused detach --persist detached {ro:?}"
    );
    assert_eq!(fs::read(ro.join("README.md")).unwrap(), b"# project\n");
    let plain = a.path("plain");
    fs::create_dir(&plain).unwrap();
    rejects(&a, "bad/ro", &["detach", "--persist", s(&plain)], &[s(&plain)]);
    a.detach(&ro);
}
