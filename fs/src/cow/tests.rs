//! The copy-on-write logic on a real upper directory and a tree built
//! from test manifests; what it leaves is read by persist's planner.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::sync::Arc;

use super::edit::{New, SetAttr};
use super::inodes::UPPER_ONLY;
use super::*;
use crate::fuse::{Readers, Shown};
use crate::manifest::testing::entry;
use crate::manifest::{EntryKind, Manifest};
use crate::persist::changes::plan;
use crate::tree::testing::FakeSource;
use crate::tree::ROOT_INO;

const ME: (u32, u32) = (4242, 4242);

/// A version: `c`, `gone`, `d/a` (with a user xattr and an mtime), `d/e/b`, `old/x`.
fn version() -> (Arc<Tree>, Arc<FakeSource>) {
    let mut source = FakeSource::default();
    let dir = |path: &str| entry(path, EntryKind::Dir { opaque: false });
    let mut a = source.file("d/a", &[b"lower ", b"a"], 0);
    a.meta.mtime_sec = 1_600_000_000;
    a.meta.xattrs = vec![
        (b"user.overlay.opaque".to_vec(), b"y".to_vec()),
        (b"user.kept".to_vec(), b"1".to_vec()),
    ];
    let entries = vec![
        dir(""),
        source.file("c", &[b"c"], 0),
        dir("d"),
        a,
        dir("d/e"),
        source.file("d/e/b", &[b"b"], 0),
        source.file("gone", &[b"g"], 0),
        dir("old"),
        source.file("old/x", &[b"x"], 0),
    ];
    (Arc::new(Tree::build(&[Manifest { entries }])), Arc::new(source))
}

struct View {
    scratch: tempfile::TempDir,
    tree: Arc<Tree>,
    source: Arc<FakeSource>,
}

impl View {
    fn new() -> View {
        let (tree, source) = version();
        let scratch = tempfile::tempdir().unwrap();
        std::fs::create_dir(scratch.path().join("upper")).unwrap();
        View {
            scratch,
            tree,
            source,
        }
    }

    /// A file system serving the view (a new one: as a restarted daemon's).
    fn fs(&self) -> CowFs {
        let shown = Shown {
            root: ROOT_INO,
            owner: Some(ME),
        };
        let dir = self.scratch.path();
        let source: Arc<dyn ChunkSource> = self.source.clone();
        CowFs::new(
            self.tree.clone(),
            shown,
            source,
            dir.join("upper"),
            dir.join("work"),
            Readers {
                trace: Arc::new(crate::prefetch::AccessTrace::new(self.tree.inodes())),
                busy: Arc::default(),
                metrics: Arc::default(),
            },
        )
        .unwrap()
    }

    fn upper(&self, rel: &str) -> std::path::PathBuf {
        self.scratch.path().join("upper").join(rel)
    }
}

fn ino(fs: &CowFs, rel: &str) -> u64 {
    fs.existing(rel.as_bytes()).unwrap().ino
}

fn names(fs: &CowFs, rel: &str) -> Vec<String> {
    fs.children(rel.as_bytes())
        .unwrap()
        .into_iter()
        .map(|(n, _)| String::from_utf8(n).unwrap())
        .collect()
}

fn read(fs: &CowFs, rel: &str) -> Vec<u8> {
    fs.read_file(ino(fs, rel), 0, 1 << 20).unwrap()
}

fn errno_of<T: std::fmt::Debug>(r: std::io::Result<T>) -> i32 {
    r.unwrap_err().raw_os_error().unwrap()
}

/// Writing to a lower file copies it up whole (bytes, mode, mtime, user
/// xattrs but the overlay's), and it keeps its number.
#[test]
fn a_write_copies_the_file_up_and_it_keeps_its_number() {
    let view = View::new();
    let fs = view.fs();
    let before = ino(&fs, "d/a");
    assert!(before < UPPER_ONLY);
    assert_eq!(read(&fs, "d/a"), b"lower a");
    assert!(!view.upper("d").exists(), "reads copy nothing up");

    assert_eq!(fs.write_file(before, 6, b"A!").unwrap(), 2);
    assert_eq!(std::fs::read(view.upper("d/a")).unwrap(), b"lower A!");
    assert_eq!(read(&fs, "d/a"), b"lower A!");
    assert_eq!(ino(&fs, "d/a"), before);
    let meta = std::fs::metadata(view.upper("d/a")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o644);
    assert_eq!(xattr::get(view.upper("d/a"), "user.kept").unwrap().unwrap(), b"1");
    let attr = fs.attr_of(before).unwrap();
    assert_eq!((attr.uid, attr.gid), ME);
    // The parent was copied up with it, and keeps its number and mtime.
    assert_eq!(
        ino(&fs, "d"),
        fs.shown.swap(fs.tree.resolve(b"d").unwrap().unwrap())
    );
    let xattrs: Vec<_> = fs
        .xattrs_of(before)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(xattrs, [b"user.kept".to_vec()], "the overlay's xattrs are hidden");
}

/// Deletions leave whiteouts, a re-made directory is opaque, listings
/// merge both layers, and persist's planner reads it all as a diff layer.
#[test]
fn changes_are_left_as_persist_reads_an_overlay_upper_dir() {
    let view = View::new();
    let fs = view.fs();
    fs.remove(b"gone", false).unwrap();
    assert_eq!(errno_of(fs.remove(b"old", true)), libc::ENOTEMPTY);
    fs.remove(b"old/x", false).unwrap();
    fs.remove(b"old", true).unwrap();
    fs.make(b"old", New::Dir, 0o750).unwrap();
    fs.make(b"old/y", New::File, 0o640).unwrap();
    fs.make(b"new", New::File, 0o644).unwrap();
    let new = ino(&fs, "new");
    fs.write_file(new, 0, b"fresh").unwrap();
    fs.rename(b"d/a", b"a2", false).unwrap();
    assert_eq!(errno_of(fs.rename(b"d", b"d2", false)), libc::EXDEV);
    assert_eq!(errno_of(fs.rename(b"c", b"new", true)), libc::EEXIST);
    fs.make(b"c-link", New::Link(ino(&fs, "c")), 0).unwrap();
    assert_eq!(ino(&fs, "c-link"), ino(&fs, "c"));
    assert_eq!(
        errno_of(fs.change_xattr(b"c", OsStr::new("user.overlay.opaque"), Some(b"y"), 0)),
        libc::EPERM
    );
    fs.change_xattr(b"c", OsStr::new("user.label"), Some(b"v"), 0)
        .unwrap();

    assert_eq!(names(&fs, ""), ["a2", "c", "c-link", "d", "new", "old"]);
    assert_eq!(names(&fs, "d"), ["e"]);
    assert_eq!(names(&fs, "old"), ["y"], "the deleted lower x stays hidden");
    let gone = std::fs::symlink_metadata(view.upper("gone")).unwrap();
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "a whiteout"
    );

    let plan = plan(&view.upper(""), OVERLAY_XATTRS, &view.tree, &[], b"").unwrap();
    let by_path: HashMap<String, &crate::manifest::Entry> = plan
        .entries
        .iter()
        .map(|p| (String::from_utf8_lossy(&p.entry.path).into_owned(), &p.entry))
        .collect();
    assert!(matches!(by_path["gone"].kind, EntryKind::Whiteout));
    assert!(matches!(by_path["d/a"].kind, EntryKind::Whiteout));
    assert!(matches!(by_path["old"].kind, EntryKind::Dir { opaque: true }));
    assert!(matches!(by_path["d"].kind, EntryKind::Dir { opaque: false }));
    assert!(matches!(by_path["a2"].kind, EntryKind::File(_)));
    assert_eq!(by_path["old"].meta.mode & 0o7777, 0o750);
    for e in by_path.values() {
        assert!(
            e.meta.xattrs.iter().all(|(n, _)| !n.starts_with(OVERLAY_XATTRS)),
            "{:?} keeps an overlay xattr",
            String::from_utf8_lossy(&e.path)
        );
    }
    assert_eq!(
        by_path["c"].meta.xattrs,
        [(b"user.label".to_vec(), b"v".to_vec())]
    );
}

/// A new process over the same upper directory (a restarted daemon) gives
/// every entry the number the kernel knows, and finds each number's file.
#[test]
fn a_new_process_keeps_every_number_the_kernel_knows() {
    let view = View::new();
    let fs = view.fs();
    fs.make(b"d/e/new", New::File, 0o644).unwrap();
    fs.make(b"made", New::Dir, 0o755).unwrap();
    fs.set_attr(
        ino(&fs, "c"),
        b"c",
        &SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
    )
    .unwrap();
    fs.rename(b"d/e/b", b"made/b", false).unwrap();
    fs.rename(b"made", b"made2", false).unwrap();
    let paths = ["", "c", "d", "d/e", "d/e/new", "made2", "made2/b", "old/x"];
    let before: Vec<u64> = paths.iter().map(|p| ino(&fs, p)).collect();
    assert!(before[4] & UPPER_ONLY != 0 && before[5] & UPPER_ONLY != 0);
    assert!(before[6] < UPPER_ONLY, "a moved lower file keeps its number");
    drop(fs);

    // The kernel asks by number first (a write to a file held open).
    let next = view.fs();
    for (path, ino) in paths.iter().zip(&before) {
        assert_eq!(next.path_of(*ino).unwrap(), path.as_bytes(), "{path}");
    }
    for (path, ino) in paths.iter().zip(&before) {
        assert_eq!(self::ino(&next, path), *ino, "{path}");
    }
    assert_eq!(next.attr_of(before[1]).unwrap().perm, 0o600);
    let work: Vec<_> = std::fs::read_dir(view.scratch.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(work, ["orphans"], "nothing half-made is left");
}

/// chmod, truncate and utimens copy up; chown to anyone else is refused.
#[test]
fn setattr_copies_up_and_refuses_giving_files_away() {
    let view = View::new();
    let fs = view.fs();
    let c = ino(&fs, "c");
    let other = SetAttr {
        uid: Some(0),
        ..SetAttr::default()
    };
    assert_eq!(errno_of(fs.set_attr(c, b"c", &other)), libc::EPERM);
    assert!(!view.upper("c").exists());
    let mine = SetAttr {
        uid: Some(ME.0),
        gid: Some(ME.1),
        ..SetAttr::default()
    };
    fs.set_attr(c, b"c", &mine).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    let change = SetAttr {
        size: Some(0),
        mode: Some(0o4755),
        mtime: Some(when),
        ..SetAttr::default()
    };
    let attr = fs.set_attr(c, b"c", &change).unwrap();
    assert_eq!((attr.size, attr.perm, attr.mtime), (0, 0o4755, when));
    let meta = std::fs::metadata(view.upper("c")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(meta.len(), 0);
}

/// A file unlinked while open (no OPEN tells the view which are) still
/// reads and writes by its number until the kernel forgets it.
#[test]
fn an_unlinked_file_lives_until_the_kernel_forgets_it() {
    let view = View::new();
    let fs = view.fs();
    fs.make(b"tmp", New::File, 0o600).unwrap();
    let tmp = ino(&fs, "tmp");
    fs.write_file(tmp, 0, b"scratch").unwrap();
    fs.remove(b"tmp", false).unwrap();
    assert!(fs.find(b"tmp").unwrap().is_none());
    assert!(!view.upper("tmp").exists(), "persist never sees it");
    fs.write_file(tmp, 7, b"!").unwrap();
    assert_eq!(fs.read_file(tmp, 0, 100).unwrap(), b"scratch!");
    assert_eq!(fs.attr_of(tmp).unwrap().size, 8);
    fs.orphans.forget(tmp);
    assert_eq!(errno_of(fs.read_file(tmp, 0, 100)), libc::ENOENT);
    let orphans = view.scratch.path().join("work/orphans");
    assert_eq!(std::fs::read_dir(orphans).unwrap().count(), 0);
}

/// A file replaced by a rename, or deleted, while a reader has it open
/// reads on as the file it was (as on a native file system): never as what
/// took its name; writes to a replaced lower file are refused, not sent to
/// the newcomer.
#[test]
fn a_replaced_or_deleted_file_reads_on_as_what_it_was() {
    let view = View::new();
    let fs = view.fs();
    fs.make(b"log", New::File, 0o644).unwrap();
    let old_log = ino(&fs, "log");
    fs.write_file(old_log, 0, b"old log").unwrap();
    fs.make(b"log.new", New::File, 0o644).unwrap();
    fs.write_file(ino(&fs, "log.new"), 0, b"new log").unwrap();
    fs.rename(b"log.new", b"log", false).unwrap();
    assert_eq!(read(&fs, "log"), b"new log");
    assert_eq!(fs.read_file(old_log, 0, 100).unwrap(), b"old log");
    fs.write_file(old_log, 0, b"OLD").unwrap();
    assert_eq!(
        read(&fs, "log"),
        b"new log",
        "a write to the replaced file reached its successor"
    );

    let lower = ino(&fs, "c");
    let before = read(&fs, "c");
    fs.make(b"c.new", New::File, 0o644).unwrap();
    fs.rename(b"c.new", b"c", false).unwrap();
    assert_eq!(fs.read_file(lower, 0, 100).unwrap(), before);
    assert_eq!(errno_of(fs.write_file(lower, 0, b"x")), libc::ESTALE);
    assert!(read(&fs, "c").is_empty(), "the successor changed");
}
