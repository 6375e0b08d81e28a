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
use super::source::{collect_all, source_err, Source, SourceTree, TreePath};
use super::PersistError;
use crate::ids::LayerId;
use crate::manifest::{
    is_within, join_path, name_of, parent_of, path_cmp, Entry, EntryKind, Manifest, Meta, Xattr,
};
use crate::tree::{NodeType, Tree};
use crate::workspace::WorkspaceName;

/// The prefix of the xattrs kernel overlayfs (mounted by root) keeps its
/// bookkeeping in; a view of an ordinary user's daemon uses
/// [`crate::cow::OVERLAY_XATTRS`].
pub const ROOT_OVERLAY_XATTRS: &[u8] = b"trusted.overlay.";

/// What to persist from an isolated view.
pub struct ChangesRequest<'a> {
    /// The view's overlayfs upper directory (not mounted any more).
    pub upper: &'a Path,
    /// The prefix of its overlay xattrs ([`ROOT_OVERLAY_XATTRS`] or
    /// [`crate::cow::OVERLAY_XATTRS`]).
    pub overlay_xattrs: &'a [u8],
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
    /// The order to pack changed files in (see [`super::layout`]).
    pub layout: &'a super::layout::Layout,
}

/// The overlayfs bookkeeping of one upper path.
#[derive(Default)]
struct Overlay {
    opaque: bool,
    metacopy: bool,
    redirect: Option<Vec<u8>>,
}

/// Removes the overlay xattrs (named `prefix*`) from `xattrs` and returns what they said.
fn take_overlay(xattrs: &mut Vec<Xattr>, prefix: &[u8]) -> Overlay {
    let mut overlay = Overlay::default();
    xattrs.retain(|(name, value)| match name.strip_prefix(prefix) {
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

/// The base tree, looked up by workspace path.
struct Base<'a> {
    tree: &'a Tree,
    /// Layers that landed on the workspace after the base, oldest first.
    newer: &'a [Manifest],
}

impl Base<'_> {
    fn find(&self, path: &[u8]) -> Option<(u64, NodeType)> {
        let ino = self.tree.resolve(path).ok()??;
        Some((ino, self.tree.attr(ino).ok()?.kind))
    }

    fn is_dir(&self, path: &[u8]) -> bool {
        matches!(self.find(path), Some((_, NodeType::Dir)))
    }

    fn entry(&self, ino: u64, path: Vec<u8>) -> Result<Entry, PersistError> {
        self.tree.entry(ino, path).map_err(internal)
    }

    /// A base directory the layer needs only for its shape (the view root's
    /// ancestors, directories above other names of a hard-link group), with
    /// its metadata as the workspace has it now: a layer landed since the
    /// base may have changed it, and this layer must not undo that.
    fn structural_dir(&self, ino: u64, path: &[u8]) -> Result<Entry, PersistError> {
        let mut entry = self.entry(ino, path.to_vec())?;
        let newest = self.newer.iter().rev().find_map(|m| {
            let i = m.entries.binary_search_by(|e| path_cmp(&e.path, path)).ok()?;
            Some(&m.entries[i])
        });
        if let Some(Entry {
            meta,
            kind: EntryKind::Dir { .. },
            ..
        }) = newest
        {
            entry.meta = meta.clone();
        }
        Ok(entry)
    }
}

impl Base<'_> {
    /// True when a layer landed since the base changed `path`, or replaced
    /// or deleted a directory above it.
    fn touched_since(&self, path: &[u8]) -> bool {
        self.newer.iter().any(|m| {
            let at = |p: &[u8]| {
                m.entries
                    .binary_search_by(|e| path_cmp(&e.path, p))
                    .ok()
                    .map(|i| &m.entries[i])
            };
            if at(path).is_some() {
                return true;
            }
            let mut ancestor = parent_of(path);
            while let Some(dir) = ancestor {
                if at(dir).is_some_and(|e| !matches!(e.kind, EntryKind::Dir { opaque: false })) {
                    return true;
                }
                ancestor = parent_of(dir);
            }
            false
        })
    }
}

fn internal(e: impl std::fmt::Display) -> PersistError {
    PersistError::Store(crate::error::StoreError::Internal(format!("base tree: {e}")))
}

/// What a view's upper directory says, walked in tree order.
struct Planner<'a> {
    base: Base<'a>,
    /// Workspace path of the view's root.
    sub_path: &'a [u8],
    /// The prefix of the upper directory's overlay xattrs.
    overlay_xattrs: &'a [u8],
    /// For each upper directory (path relative to the view root): the base
    /// directory it shows merged with it, if any. Moved directories show one
    /// at another path.
    lower_dirs: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Base inodes with several names that moved directories brought along.
    linked: Vec<u64>,
    plan: Plan,
}

impl Planner<'_> {
    /// Adds the base subtree of `ino` to the plan, at `path`.
    fn copy(&mut self, ino: u64, path: Vec<u8>) -> Result<(), PersistError> {
        let tree = self.base.tree;
        let attr = tree.attr(ino).map_err(internal)?;
        let inode = (attr.kind == NodeType::File && attr.nlink > 1).then_some((u64::MAX, ino));
        if inode.is_some() {
            self.linked.push(ino);
        }
        if attr.kind == NodeType::Dir {
            for (name, child) in tree.children(ino).map_err(internal)? {
                self.copy(*child, join_path(&path, name))?;
            }
        }
        let entry = self.base.entry(ino, path)?;
        self.plan.known(entry, inode);
        Ok(())
    }

    /// True when the view still shows the base entry at workspace path `path`
    /// where it was: nothing in the upper directory at it, and only plain
    /// merged directories above it.
    fn shows_unchanged(&self, upper: &SourceTree, path: &[u8]) -> bool {
        let Some(rel) = relative_to(path, self.sub_path) else {
            // Outside the view: the step could not change it.
            return true;
        };
        let mut prefix: Vec<u8> = Vec::new();
        let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').filter(|p| !p.is_empty()).collect();
        for (depth, part) in std::iter::once(&b""[..]).chain(parts.iter().copied()).enumerate() {
            if depth > 1 {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
            let Some(source) = upper.get(&TreePath(prefix.clone())) else {
                return true;
            };
            let merged_in_place = source.meta.is_dir()
                && self.lower_dirs.get(&prefix) == Some(&Some(join_path(self.sub_path, &prefix)));
            if depth == parts.len() || !merged_in_place {
                return false;
            }
        }
        false
    }

    /// Keeps hard-link groups whole: a moved directory re-states the files it
    /// brought along in this layer, so their other names, which the view
    /// still shows as the same inode, must be re-stated with them (links
    /// cannot span layers). A name some layer changed since the base is left
    /// alone: the link breaks, but nobody's change is undone.
    fn complete_link_groups(&mut self, upper: &SourceTree) -> Result<(), PersistError> {
        if self.linked.is_empty() {
            return Ok(());
        }
        let wanted: HashSet<u64> = self.linked.iter().copied().collect();
        let mut names: Vec<(u64, Vec<u8>)> = Vec::new();
        let tree = self.base.tree;
        let mut pending = vec![(crate::tree::ROOT_INO, Vec::new())];
        while let Some((dir, path)) = pending.pop() {
            for (name, child) in tree.children(dir).map_err(internal)? {
                let child_path = join_path(&path, name);
                match tree.attr(*child).map_err(internal)?.kind {
                    NodeType::Dir => pending.push((*child, child_path)),
                    NodeType::File if wanted.contains(child) => names.push((*child, child_path)),
                    _ => {}
                }
            }
        }
        let mut planned: HashSet<Vec<u8>> = self.plan.entries.iter().map(|p| p.entry.path.clone()).collect();
        for (ino, path) in names {
            if planned.contains(&path)
                || !self.shows_unchanged(upper, &path)
                || self.base.touched_since(&path)
            {
                continue;
            }
            let mut ancestor = parent_of(&path);
            while let Some(dir) = ancestor.filter(|d| !planned.contains(*d)) {
                let (dir_ino, _) = self.base.find(dir).ok_or_else(|| internal("ancestor missing"))?;
                self.plan.known(self.base.structural_dir(dir_ino, dir)?, None);
                planned.insert(dir.to_vec());
                ancestor = parent_of(dir);
            }
            planned.insert(path.clone());
            let entry = self.base.entry(ino, path)?;
            self.plan.known(entry, Some((u64::MAX, ino)));
        }
        Ok(())
    }
}

/// `path` relative to `dir`, when it lies within it.
fn relative_to<'p>(path: &'p [u8], dir: &[u8]) -> Option<&'p [u8]> {
    if !is_within(path, dir) {
        None
    } else if dir.is_empty() || path.len() == dir.len() {
        Some(if dir.is_empty() { path } else { &[] })
    } else {
        Some(&path[dir.len() + 1..])
    }
}

/// Plans the layer that turns `base` into what the view shows, from the
/// view's upper directory. `sub_path` is the workspace path of the view's
/// root; `newer` are the layers that landed on the workspace since `base`;
/// the upper directory's overlay xattrs are named `overlay_xattrs*`.
pub fn plan(
    upper: &Path,
    overlay_xattrs: &[u8],
    base: &Tree,
    newer: &[Manifest],
    sub_path: &[u8],
) -> Result<Plan, PersistError> {
    let mut planner = Planner {
        base: Base { tree: base, newer },
        sub_path,
        overlay_xattrs,
        lower_dirs: HashMap::new(),
        linked: Vec::new(),
        plan: Plan::default(),
    };
    // The view's root needs its ancestors in the layer.
    let mut ancestor = parent_of(sub_path);
    while let Some(path) = ancestor {
        let (ino, _) = planner
            .base
            .find(path)
            .ok_or_else(|| internal("sub-path ancestor missing"))?;
        let entry = planner.base.structural_dir(ino, path)?;
        planner.plan.known(entry, None);
        ancestor = parent_of(path);
    }
    let sources = collect_all(upper)?;
    for (rel, source) in &sources {
        planner.add(&rel.0, source, source.attrs.clone())?;
    }
    planner.complete_link_groups(&sources)?;
    Ok(planner.plan)
}

impl Planner<'_> {
    /// Deletes `path` in the layer, when the base has something there.
    fn delete(&mut self, path: Vec<u8>) {
        if self.base.find(&path).is_some() {
            let entry = Entry {
                path,
                meta: Meta::default(),
                kind: EntryKind::Whiteout,
            };
            self.plan.known(entry, None);
            self.plan.deleted += 1;
        }
    }

    /// Plans the upper entry at `rel` (relative to the view's root).
    fn add(&mut self, rel: &[u8], source: &Source, mut meta: Meta) -> Result<(), PersistError> {
        let overlay = take_overlay(&mut meta.xattrs, self.overlay_xattrs);
        let path = join_path(self.sub_path, rel);
        let parent_lower = parent_of(rel).and_then(|p| self.lower_dirs.get(p).cloned().flatten());
        let natural = if rel.is_empty() {
            Some(self.sub_path.to_vec())
        } else {
            parent_lower.as_ref().map(|dir| join_path(dir, name_of(rel)))
        };
        let origin = match &overlay.redirect {
            Some(r) if r.starts_with(b"/") => {
                Some(join_path(self.sub_path, r.strip_prefix(b"/").unwrap_or(r)))
            }
            Some(r) => parent_lower.as_ref().map(|dir| join_path(dir, r)),
            None => natural,
        };
        let ft = source.meta.file_type();
        if ft.is_char_device() && source.meta.rdev() == 0 {
            self.delete(path);
            return Ok(());
        }
        if ft.is_dir() {
            let lower = origin.filter(|o| !overlay.opaque && self.base.is_dir(o));
            let moved = lower.as_ref().is_some_and(|o| *o != path);
            let opaque = self.base.is_dir(&path) && (overlay.opaque || moved);
            if let Some(from) = lower.as_deref().filter(|_| moved) {
                let present: HashSet<Vec<u8>> = std::fs::read_dir(&source.abs)
                    .map_err(source_err(&source.abs))?
                    .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
                    .collect::<Result<_, _>>()
                    .map_err(source_err(&source.abs))?;
                let (dir_ino, _) = self.base.find(from).expect("checked to be a directory");
                for (name, child) in self.base.tree.children(dir_ino).map_err(internal)? {
                    if !present.contains(&name[..]) {
                        self.copy(*child, join_path(&path, name))?;
                    }
                }
            }
            self.lower_dirs.insert(rel.to_vec(), lower);
            self.plan.known(
                Entry {
                    path,
                    meta,
                    kind: EntryKind::Dir { opaque },
                },
                None,
            );
            return Ok(());
        }
        if ft.is_file() && overlay.metacopy {
            // Only the metadata changed: the bytes are those of the base file.
            let Some((ino, NodeType::File)) = origin.as_deref().and_then(|o| self.base.find(o)) else {
                return Err(PersistError::Source {
                    path: source.abs.clone(),
                    source: std::io::Error::other(
                        "a metadata-only copy of a file the view's base lacks (a wsfs bug: please report it; \
                         `wsfs detach` without --persist discards the view)",
                    ),
                });
            };
            let mut entry = self.base.entry(ino, path)?;
            entry.meta = meta;
            let m = &source.meta;
            self.plan
                .known(entry, (m.nlink() > 1).then(|| (m.dev(), m.ino())));
            return Ok(());
        }
        match plan_source(path.clone(), source, meta)? {
            Some(planned) => self.plan.entries.push(planned),
            None => {
                // A socket, FIFO or device is not persisted, but what it replaced is gone.
                self.plan.skipped.push(String::from_utf8_lossy(rel).into_owned());
                self.delete(path);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ChunkId;
    use crate::manifest::testing::{self, entry};
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

        let plan = plan(u, ROOT_OVERLAY_XATTRS, &base(), &[], b"ws").unwrap();
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

    /// `mkdir archive; mv objs archive/objs`, where `objs/a` and `bin/t` are one inode.
    #[test]
    fn moving_a_directory_keeps_hard_links_to_names_outside_it() {
        let base = Tree::build(&[Manifest {
            entries: vec![
                dir(""),
                dir("bin"),
                testing::file("bin/t", &[b"x"], 1),
                dir("objs"),
                testing::file("objs/a", &[b"x"], 1),
            ],
        }]);
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        fs::create_dir_all(u.join("archive/objs")).unwrap();
        xattr::set(u.join("archive"), "trusted.overlay.opaque", b"y").unwrap();
        xattr::set(u.join("archive/objs"), "trusted.overlay.redirect", b"/objs").unwrap();
        whiteout(&u.join("objs"));
        let plan = plan(u, ROOT_OVERLAY_XATTRS, &base, &[], b"").unwrap();
        let inode_of = |path: &[u8]| {
            plan.entries
                .iter()
                .find(|p| p.entry.path == path)
                .map(|p| p.inode)
        };
        assert_eq!(inode_of(b"archive/objs/a"), inode_of(b"bin/t"));
        assert!(inode_of(b"bin/t").flatten().is_some());
        assert!(
            inode_of(b"bin").is_some(),
            "the directory above the other name comes along"
        );
    }

    /// `rm c; mkfifo c`: the FIFO is not persisted, but `c` is gone.
    #[test]
    fn a_special_file_over_a_base_file_deletes_it() {
        let upper = tempfile::tempdir().unwrap();
        let fifo = std::ffi::CString::new(upper.path().join("c").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let plan = plan(upper.path(), ROOT_OVERLAY_XATTRS, &base(), &[], b"ws").unwrap();
        assert!(matches!(by_path(&plan)["ws/c"].kind, EntryKind::Whiteout));
        assert_eq!(plan.skipped, ["c"]);
    }

    #[test]
    fn a_directory_new_to_the_base_is_not_opaque() {
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir(upper.path().join("reports")).unwrap();
        xattr::set(upper.path().join("reports"), "trusted.overlay.opaque", b"y").unwrap();
        let plan = plan(upper.path(), ROOT_OVERLAY_XATTRS, &base(), &[], b"").unwrap();
        // Parallel steps that both create it must both show up.
        assert!(matches!(
            by_path(&plan)["reports"].kind,
            EntryKind::Dir { opaque: false }
        ));
    }
}
