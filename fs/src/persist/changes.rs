//! The changes of an isolated view, read from its overlayfs upper directory
//! as a diff layer over the tree the view was based on.
//!
//! Overlayfs (mounted with `redirect_dir=on,metacopy=on`) records a step's
//! changes in the upper directory:
//! - a new or rewritten file is a file; a file whose metadata alone changed
//!   carries `trusted.overlay.metacopy` and its bytes are still the lower file's;
//! - a deleted path is a whiteout: a character device 0:0;
//! - a directory that replaced a deleted one carries `trusted.overlay.opaque=y`;
//! - a renamed lower directory (or metacopy file) carries
//!   `trusted.overlay.redirect`: its lower path from the view's root (`/a/b`),
//!   or a name in its parent's lower directory.
//!
//! The layer gets the upper entries (without `trusted.overlay.*` xattrs);
//! a moved directory becomes an opaque directory listing what it brought
//! along from the base, since the manifest has no notion of a rename. Files
//! the step did not change are never read: their chunks come from the base.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::plan::{plan_source, Plan};
use super::source::{collect_all, metas_of, source_err};
use super::PersistError;
use crate::ids::LayerId;
use crate::manifest::{parent_of, Entry, EntryKind, Meta, Xattr};
use crate::tree::{NodeType, Tree};
use crate::workspace::WorkspaceName;

/// The prefix of the xattrs overlayfs keeps its bookkeeping in.
const OVERLAY_XATTR: &[u8] = b"trusted.overlay.";

/// What to persist from an isolated view.
pub struct ChangesRequest<'a> {
    /// The view's overlayfs upper directory (not mounted any more).
    pub upper: &'a Path,
    /// The tree the view was based on.
    pub base: &'a Tree,
    /// The layers of that tree.
    pub base_layers: &'a [LayerId],
    /// The workspace path the view shows at its root (empty: the whole workspace).
    pub sub_path: &'a [u8],
    /// The workspace that gets the layer.
    pub workspace: &'a WorkspaceName,
    /// This host's name, for the workspace record.
    pub host: &'a str,
}

/// The overlayfs bookkeeping of one upper path.
#[derive(Default)]
struct Overlay {
    opaque: bool,
    metacopy: bool,
    redirect: Option<Vec<u8>>,
}

/// Removes the overlayfs xattrs from `xattrs` and returns what they said.
fn take_overlay(xattrs: &mut Vec<Xattr>) -> Overlay {
    let mut overlay = Overlay::default();
    xattrs.retain(|(name, value)| match name.strip_prefix(OVERLAY_XATTR) {
        None => true,
        Some(b"opaque") => {
            overlay.opaque = value == b"y";
            false
        }
        Some(b"metacopy") => {
            overlay.metacopy = true;
            false
        }
        Some(b"redirect") => {
            overlay.redirect = Some(value.clone());
            false
        }
        Some(_) => false,
    });
    overlay
}

fn join(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    match (dir.is_empty(), rel.is_empty()) {
        (_, true) => dir.to_vec(),
        (true, false) => rel.to_vec(),
        (false, false) => [dir, b"/", rel].concat(),
    }
}

fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|&c| c == b'/').next().unwrap_or_default()
}

/// The base tree, looked up by workspace path.
struct Base<'a>(&'a Tree);

impl Base<'_> {
    fn find(&self, path: &[u8]) -> Option<(u64, NodeType)> {
        let ino = self.0.resolve(path).ok()??;
        Some((ino, self.0.attr(ino).ok()?.kind))
    }

    fn is_dir(&self, path: &[u8]) -> bool {
        matches!(self.find(path), Some((_, NodeType::Dir)))
    }

    /// Adds the base subtree of `ino` to `plan`, at `path`.
    fn copy(&self, ino: u64, path: Vec<u8>, plan: &mut Plan) -> Result<(), PersistError> {
        let tree = self.0;
        let attr = tree.attr(ino).map_err(internal)?;
        let inode = (attr.kind == NodeType::File && attr.nlink > 1).then_some((u64::MAX, ino));
        let children = if attr.kind == NodeType::Dir {
            tree.children(ino).map_err(internal)?
        } else {
            &[]
        };
        for (name, child) in children {
            self.copy(*child, join(&path, name), plan)?;
        }
        plan.known(tree.entry(ino, path).map_err(internal)?, inode);
        Ok(())
    }
}

fn internal(e: impl std::fmt::Display) -> PersistError {
    PersistError::Store(crate::error::StoreError::Internal(format!("base tree: {e}")))
}

/// Plans the layer that turns `base` into what the view shows, from the
/// view's upper directory. `sub_path` is the workspace path of the view's root.
pub fn plan(upper: &Path, base: &Tree, sub_path: &[u8]) -> Result<Plan, PersistError> {
    let base = Base(base);
    let mut plan = Plan::default();
    // The view's root needs its ancestors in the layer, as they are in the base.
    let mut ancestor = parent_of(sub_path);
    while let Some(path) = ancestor {
        let (ino, _) = base
            .find(path)
            .ok_or_else(|| internal("sub-path ancestor missing"))?;
        plan.known(base.0.entry(ino, path.to_vec()).map_err(internal)?, None);
        ancestor = parent_of(path);
    }
    let sources = collect_all(upper)?;
    // For each upper directory: the base directory it shows (merged with it),
    // if any. Moved directories show one at another path.
    let mut lower_dirs: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    for ((rel, source), mut meta) in sources.iter().zip(metas_of(&sources)?) {
        let rel = &rel.0;
        let overlay = take_overlay(&mut meta.xattrs);
        let path = join(sub_path, rel);
        let parent_lower = parent_of(rel).and_then(|p| lower_dirs.get(p).cloned().flatten());
        let natural = if rel.is_empty() {
            Some(sub_path.to_vec())
        } else {
            parent_lower.as_ref().map(|dir| join(dir, name_of(rel)))
        };
        let origin = match &overlay.redirect {
            Some(r) if r.starts_with(b"/") => Some(join(sub_path, r.strip_prefix(b"/").unwrap_or(r))),
            Some(r) => parent_lower.as_ref().map(|dir| join(dir, r)),
            None => natural,
        };
        let ft = source.meta.file_type();
        if ft.is_char_device() && source.meta.rdev() == 0 {
            if base.find(&path).is_some() {
                let kind = EntryKind::Whiteout;
                plan.known(
                    Entry {
                        path,
                        meta: Meta::default(),
                        kind,
                    },
                    None,
                );
                plan.deleted += 1;
            }
            continue;
        }
        if ft.is_dir() {
            let lower = origin.filter(|o| !overlay.opaque && base.is_dir(o));
            let moved = lower.as_ref().is_some_and(|o| *o != path);
            let opaque = base.is_dir(&path) && (overlay.opaque || moved);
            if moved {
                let present: HashSet<Vec<u8>> = std::fs::read_dir(&source.abs)
                    .map_err(source_err(&source.abs))?
                    .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
                    .collect::<Result<_, _>>()
                    .map_err(source_err(&source.abs))?;
                let (dir_ino, _) = base.find(lower.as_deref().unwrap_or_default()).expect("checked");
                for (name, child) in base.0.children(dir_ino).map_err(internal)? {
                    if !present.contains(&name[..]) {
                        base.copy(*child, join(&path, name), &mut plan)?;
                    }
                }
            }
            lower_dirs.insert(rel.clone(), lower);
            let kind = EntryKind::Dir { opaque };
            plan.known(Entry { path, meta, kind }, None);
            continue;
        }
        if ft.is_file() && overlay.metacopy {
            // Only the metadata changed: the bytes are those of the base file.
            let Some((ino, NodeType::File)) = origin.as_deref().and_then(|o| base.find(o)) else {
                return Err(PersistError::Source {
                    path: source.abs.clone(),
                    source: std::io::Error::other("a metadata-only copy of a file the view's base lacks"),
                });
            };
            let mut entry = base.0.entry(ino, path).map_err(internal)?;
            entry.meta = meta;
            let m = &source.meta;
            plan.known(entry, (m.nlink() > 1).then(|| (m.dev(), m.ino())));
            continue;
        }
        match plan_source(path, source, meta)? {
            Some(planned) => plan.entries.push(planned),
            None => plan.skipped.push(String::from_utf8_lossy(rel).into_owned()),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChunkId;
    use crate::manifest::testing::{self, entry};
    use crate::manifest::Manifest;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn dir(path: &str) -> Entry {
        entry(path, EntryKind::Dir { opaque: false })
    }

    fn file(path: &str, content: &[u8]) -> Entry {
        testing::file(path, &[content], 0)
    }

    fn base() -> Tree {
        Tree::build(&[Manifest {
            entries: vec![
                dir(""),
                dir("ws"),
                file("ws/c", b"c"),
                dir("ws/d"),
                file("ws/d/a", b"a"),
                dir("ws/d/e"),
                file("ws/d/e/b", b"b"),
                file("ws/gone", b"g"),
                dir("ws/old"),
                file("ws/old/x", b"x"),
            ],
        }])
    }

    fn whiteout(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; a 0:0 character device is what overlayfs calls a whiteout.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, 0) }, 0);
    }

    fn by_path(plan: &Plan) -> HashMap<String, &Entry> {
        plan.entries
            .iter()
            .map(|p| (String::from_utf8_lossy(&p.entry.path).into_owned(), &p.entry))
            .collect()
    }

    /// What a step leaves in the upper directory of a view of `ws/`: a new
    /// file, a deletion, a re-created directory, a chmod (metadata copy), and
    /// `d` renamed to `d2` after moving `d/e` out to `f`.
    #[test]
    fn an_upper_directory_becomes_a_diff_layer() {
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        fs::write(u.join("new"), b"fresh").unwrap();
        whiteout(&u.join("gone"));
        fs::create_dir(u.join("old")).unwrap();
        xattr::set(u.join("old"), "trusted.overlay.opaque", b"y").unwrap();
        fs::write(u.join("old/y"), b"y").unwrap();
        fs::write(u.join("c"), b"").unwrap();
        fs::set_permissions(u.join("c"), fs::Permissions::from_mode(0o600)).unwrap();
        xattr::set(u.join("c"), "trusted.overlay.metacopy", b"").unwrap();
        xattr::set(u.join("c"), "user.kept", b"1").unwrap();
        fs::create_dir(u.join("d2")).unwrap();
        xattr::set(u.join("d2"), "trusted.overlay.redirect", b"d").unwrap();
        whiteout(&u.join("d2/e"));
        fs::create_dir(u.join("f")).unwrap();
        xattr::set(u.join("f"), "trusted.overlay.redirect", b"/d/e").unwrap();
        whiteout(&u.join("d"));

        let plan = plan(u, &base(), b"ws").unwrap();
        let e = by_path(&plan);
        assert!(matches!(e[""].kind, EntryKind::Dir { opaque: false }));
        assert!(matches!(e["ws"].kind, EntryKind::Dir { opaque: false }));
        assert!(matches!(e["ws/gone"].kind, EntryKind::Whiteout));
        assert!(matches!(e["ws/d"].kind, EntryKind::Whiteout));
        assert!(matches!(e["ws/old"].kind, EntryKind::Dir { opaque: true }));
        assert!(matches!(e["ws/old/y"].kind, EntryKind::File(_)));
        // The chmod: new mode, the base's chunks, overlay xattrs dropped.
        let EntryKind::File(c) = &e["ws/c"].kind else {
            panic!()
        };
        assert_eq!(c.chunks[0].id, ChunkId::of(b"c"));
        assert_eq!(e["ws/c"].meta.mode, 0o600);
        assert_eq!(
            e["ws/c"].meta.xattrs,
            vec![(b"user.kept".to_vec(), b"1".to_vec())]
        );
        // Moved directories list what they brought from the base.
        let EntryKind::File(a) = &e["ws/d2/a"].kind else {
            panic!()
        };
        assert_eq!(a.chunks[0].id, ChunkId::of(b"a"));
        assert!(
            !e.contains_key("ws/d2/e"),
            "moved away, and nothing there in the base"
        );
        let EntryKind::File(b) = &e["ws/f/b"].kind else {
            panic!()
        };
        assert_eq!(b.chunks[0].id, ChunkId::of(b"b"));
        assert_eq!(plan.deleted, 2);
        // Only the new files are read.
        let reads: Vec<_> = plan
            .entries
            .iter()
            .filter(|p| matches!(p.content, super::super::plan::Content::Read { .. }))
            .map(|p| String::from_utf8_lossy(&p.entry.path).into_owned())
            .collect();
        assert_eq!(reads.len(), 2);
        assert!(reads.contains(&"ws/new".to_string()) && reads.contains(&"ws/old/y".to_string()));
    }

    #[test]
    fn a_directory_new_to_the_base_is_not_opaque() {
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir(upper.path().join("reports")).unwrap();
        xattr::set(upper.path().join("reports"), "trusted.overlay.opaque", b"y").unwrap();
        let plan = plan(upper.path(), &base(), b"").unwrap();
        // Parallel steps that both create it must both show up.
        assert!(matches!(
            by_path(&plan)["reports"].kind,
            EntryKind::Dir { opaque: false }
        ));
    }
}
