//! Layer merge: stacking a workspace's layers into the one tree a mount shows.
//!
//! Layers apply in order, lowest first, and later layers win:
//!
//! - a whiteout at `P` removes `P` and everything below it; whiteouts never
//!   appear in the output;
//! - a directory with `opaque: true` at `P` removes everything lower layers
//!   have below `P`, then `P` becomes this directory;
//! - a directory over a directory replaces its metadata and merges children;
//! - a directory over a non-directory, or a file or symlink over anything,
//!   replaces it, and a replaced directory loses its whole subtree.
//!
//! **Orphans are dropped eagerly.** An entry is applied only if, at the moment
//! its layer applies it, its parent is a directory of the tree built so far
//! (entries of the same layer that come before it included). Otherwise it is
//! dropped for good, together with its descendants: a directory declared at
//! its parent path by a *later* layer does not bring it back. So the tree is a
//! proper tree after every step, and the output is one: every entry's parent
//! is a directory that is also in the output.
//!
//! **The root is always a directory.** A layer's root entry (empty path) that
//! is a directory acts as any directory. One that is not (a whiteout, or a
//! file or symlink, which a validated manifest should not hold) acts as a
//! whiteout of the whole tree followed by a fresh [`root_entry`]: everything of
//! lower layers goes, and the same layer's further entries apply to the new
//! root. With no root entry at all, the root is [`root_entry`].
//!
//! The implementation is a k-way merge of the sorted layers (a binary heap of
//! one cursor per layer) that resolves each path once from the entries all
//! layers have at it, knowing, for each directory on the way from the root,
//! from which layer on its children can be visible. That is
//! O(total entries · log layers) time and memory for the output only.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::manifest::{is_within, parent_of, path_cmp, Entry, EntryKind, Manifest, Meta};

/// One entry of the merged tree and the index of the layer it came from.
///
/// Files of one layer with the same non-zero `link` are one inode, so callers
/// group hard links by (`layer`, `link`). A directory's entry is the one of
/// the topmost layer declaring it (its `opaque` flag means nothing here). The
/// default root has `layer` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergedEntry<'a> {
    /// The winning entry.
    pub entry: &'a Entry,
    /// Index in the `layers` slice given to [`merge`] of the layer holding it.
    pub layer: usize,
}

static DEFAULT_ROOT: Entry = Entry {
    path: Vec::new(),
    meta: Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_sec: 0,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    },
    kind: EntryKind::Dir { opaque: false },
};

/// The root directory used when no layer supplies one: mode 0o755, owned by
/// 0:0, mtime 0, no xattrs.
pub fn root_entry() -> &'static Entry {
    &DEFAULT_ROOT
}

/// Merges `layers`, lowest first, into one tree sorted by
/// [`path_cmp`](crate::manifest::path_cmp), starting with the root. See the
/// [module documentation](self) for the rules.
pub fn merge<'a>(layers: &[&'a Manifest]) -> Vec<MergedEntry<'a>> {
    let largest = layers.iter().map(|m| m.entries.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(largest + 1);
    let mut paths = Groups::new(layers);
    // Directories of the output on the way from the root to the current path,
    // root at the bottom, each with the lowest layer whose entries below it
    // can be visible (its "cutoff").
    let mut dirs: Vec<(&'a [u8], usize)> = Vec::new();
    let mut prev: Option<&'a [u8]> = None;

    while let Some((path, group)) = paths.next_group() {
        // Validated manifests are sorted and unique; never emit an unsorted
        // tree should one slip through.
        if let Some(p) = prev {
            if path_cmp(path, p) != Ordering::Greater {
                continue;
            }
        }
        prev = Some(path);

        if dirs.is_empty() {
            if path.is_empty() {
                let (root, cutoff) = resolve_root(group);
                out.push(root);
                dirs.push((&[], cutoff));
                continue;
            }
            out.push(MergedEntry {
                entry: root_entry(),
                layer: 0,
            });
            dirs.push((&[], 0));
        }

        // Leave the directories `path` is not below; the root always stays.
        while let Some(&(dir, _)) = dirs.last() {
            if !dir.is_empty() && !is_within(path, dir) {
                dirs.pop();
            } else {
                break;
            }
        }
        let &(parent, parent_cutoff) = dirs.last().expect("the root stays on the stack");
        if parent_of(path) != Some(parent) {
            // The parent is missing or not a directory: an orphan.
            continue;
        }
        match resolve(group, parent_cutoff) {
            Resolved::Absent => {}
            Resolved::Leaf(e) => out.push(e),
            Resolved::Dir(e, cutoff) => {
                out.push(e);
                dirs.push((path, cutoff));
            }
        }
    }
    if dirs.is_empty() {
        out.push(MergedEntry {
            entry: root_entry(),
            layer: 0,
        });
    }
    out
}

/// An entry and the index of its layer.
type Layered<'a> = (usize, &'a Entry);

/// What one path becomes in the merged tree.
enum Resolved<'a> {
    Absent,
    Leaf(MergedEntry<'a>),
    /// A directory, with the lowest layer whose entries below it are visible.
    Dir(MergedEntry<'a>, usize),
}

/// Resolves a non-root path from the entries layers have at it (lowest layer
/// first), given that its parent's children are visible from layer `cutoff` on.
fn resolve<'a>(group: &[Layered<'a>], cutoff: usize) -> Resolved<'a> {
    // Entries below the cutoff were hidden, or dropped as orphans, before
    // anything visible happened at this path.
    let visible = &group[group.partition_point(|&(layer, _)| layer < cutoff)..];
    let Some(&(top, top_entry)) = visible.last() else {
        return Resolved::Absent;
    };
    let winner = MergedEntry {
        entry: top_entry,
        layer: top,
    };
    match top_entry.kind {
        EntryKind::Whiteout => Resolved::Absent,
        EntryKind::File(_) | EntryKind::Symlink { .. } => Resolved::Leaf(winner),
        EntryKind::Dir { .. } => {
            // The path has been this directory since the lowest layer of the
            // unbroken run of directories ending at the top; before that it
            // was absent, not a directory, or (opaque) emptied, so children of
            // lower layers are gone.
            let mut since = top;
            for &(layer, entry) in visible.iter().rev() {
                match entry.kind {
                    EntryKind::Dir { opaque } => {
                        since = layer;
                        if opaque {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            Resolved::Dir(winner, since)
        }
    }
}

/// Resolves the root from the root entries of the layers (lowest first). The
/// root always exists, so unlike [`resolve`] only an opaque directory or a
/// non-directory ends the visibility of lower layers.
fn resolve_root<'a>(group: &[Layered<'a>]) -> (MergedEntry<'a>, usize) {
    let default = MergedEntry {
        entry: root_entry(),
        layer: 0,
    };
    let Some(&(top, top_entry)) = group.last() else {
        return (default, 0);
    };
    let root = match top_entry.kind {
        EntryKind::Dir { .. } => MergedEntry {
            entry: top_entry,
            layer: top,
        },
        _ => default,
    };
    let cutoff = group
        .iter()
        .rev()
        .find(|(_, e)| !matches!(e.kind, EntryKind::Dir { opaque: false }))
        .map_or(0, |&(layer, _)| layer);
    (root, cutoff)
}

/// The next entry of one layer, ordered for a min-heap by (path, layer).
struct Head<'a> {
    path: &'a [u8],
    layer: usize,
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` pops the greatest.
        path_cmp(other.path, self.path).then(other.layer.cmp(&self.layer))
    }
}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

/// K-way merge of the layers: yields each path once, with the entries all
/// layers have at it, lowest layer first.
struct Groups<'a, 'l> {
    layers: &'l [&'a Manifest],
    /// Index of the next entry to push, per layer.
    next: Vec<usize>,
    heap: BinaryHeap<Head<'a>>,
    group: Vec<Layered<'a>>,
}

impl<'a, 'l> Groups<'a, 'l> {
    fn new(layers: &'l [&'a Manifest]) -> Self {
        let mut groups = Groups {
            layers,
            next: vec![0; layers.len()],
            heap: BinaryHeap::with_capacity(layers.len()),
            group: Vec::with_capacity(layers.len()),
        };
        for layer in 0..layers.len() {
            groups.advance(layer);
        }
        groups
    }

    /// Pushes the next entry of `layer`, if any, onto the heap.
    fn advance(&mut self, layer: usize) {
        if let Some(e) = self.layers[layer].entries.get(self.next[layer]) {
            self.next[layer] += 1;
            self.heap.push(Head { path: &e.path, layer });
        }
    }

    /// The next path and the entries layers have at it, lowest layer first.
    fn next_group(&mut self) -> Option<(&'a [u8], &[Layered<'a>])> {
        let first = self.heap.pop()?;
        self.group.clear();
        self.take(first.layer);
        while let Some(head) = self.heap.peek() {
            if head.path != first.path {
                break;
            }
            let layer = head.layer;
            self.heap.pop();
            self.take(layer);
        }
        Some((first.path, &self.group))
    }

    /// Adds the entry of `layer` just popped from the heap to the group.
    fn take(&mut self, layer: usize) {
        let entry = &self.layers[layer].entries[self.next[layer] - 1];
        self.group.push((layer, entry));
        self.advance(layer);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;

    use super::*;
    use crate::manifest::testing::entry;
    use crate::manifest::FileData;

    // ---- helpers -------------------------------------------------------

    fn dir() -> EntryKind {
        EntryKind::Dir { opaque: false }
    }
    fn opaque() -> EntryKind {
        EntryKind::Dir { opaque: true }
    }
    fn file() -> EntryKind {
        EntryKind::File(FileData {
            size: 0,
            chunks: Vec::new(),
            link: 0,
        })
    }
    fn symlink() -> EntryKind {
        EntryKind::Symlink {
            target: b"t".to_vec(),
        }
    }
    fn whiteout() -> EntryKind {
        EntryKind::Whiteout
    }

    /// A layer from (path, kind) pairs in any order.
    fn layer(entries: Vec<(&str, EntryKind)>) -> Manifest {
        let mut entries: Vec<Entry> = entries.into_iter().map(|(p, k)| entry(p, k)).collect();
        entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
        Manifest { entries }
    }

    /// The merge as `path:kind@layer` strings (`/` for the root, `default`
    /// for the default root) for readable assertions.
    fn show(layers: &[&Manifest]) -> Vec<String> {
        let out = merge(layers);
        check_invariants(&out);
        out.iter()
            .map(|m| {
                if std::ptr::eq(m.entry, root_entry()) {
                    return "/:default".to_string();
                }
                let kind = match m.entry.kind {
                    EntryKind::Dir { opaque: false } => "d",
                    EntryKind::Dir { opaque: true } => "o",
                    EntryKind::File(_) => "f",
                    EntryKind::Symlink { .. } => "l",
                    EntryKind::Whiteout => "w",
                };
                let path = String::from_utf8_lossy(&m.entry.path);
                let path = if path.is_empty() { "/".into() } else { path };
                format!("{path}:{kind}@{}", m.layer)
            })
            .collect()
    }

    fn check_invariants(out: &[MergedEntry<'_>]) {
        assert!(out[0].entry.path.is_empty(), "root first");
        assert!(
            matches!(out[0].entry.kind, EntryKind::Dir { .. }),
            "root is a directory"
        );
        let mut is_dir: HashMap<&[u8], bool> = HashMap::new();
        for (i, m) in out.iter().enumerate() {
            let path = &m.entry.path[..];
            if i > 0 {
                let before = &out[i - 1].entry.path;
                assert_eq!(path_cmp(before, path), Ordering::Less, "strictly sorted at {i}");
                let parent = parent_of(path).expect("only the root has no parent");
                assert_eq!(
                    is_dir.get(parent),
                    Some(&true),
                    "parent of {path:?} is an output dir"
                );
            }
            assert!(!matches!(m.entry.kind, EntryKind::Whiteout), "no whiteouts");
            is_dir.insert(path, matches!(m.entry.kind, EntryKind::Dir { .. }));
        }
    }

    // ---- one test per rule ---------------------------------------------

    #[test]
    fn no_layers_give_the_default_root() {
        assert_eq!(show(&[]), ["/:default"]);
        let empty = Manifest::default();
        assert_eq!(show(&[&empty, &empty]), ["/:default"]);
        let root = root_entry();
        assert_eq!(root.meta.mode, 0o755);
        assert_eq!((root.meta.uid, root.meta.gid, root.meta.mtime_sec), (0, 0, 0));
        assert!(root.meta.xattrs.is_empty());
    }

    #[test]
    fn root_entry_of_the_topmost_layer_wins() {
        let l0 = layer(vec![("", dir()), ("a", file())]);
        let l1 = layer(vec![("b", file())]);
        let l2 = layer(vec![("", dir())]);
        assert_eq!(show(&[&l0, &l1]), ["/:d@0", "a:f@0", "b:f@1"]);
        assert_eq!(show(&[&l0, &l1, &l2]), ["/:d@2", "a:f@0", "b:f@1"]);
        assert_eq!(show(&[&l1]), ["/:default", "b:f@0"]);
    }

    #[test]
    fn whiteout_removes_the_path_and_its_subtree() {
        let l0 = layer(vec![
            ("a", dir()),
            ("a/b", dir()),
            ("a/b/c", file()),
            ("a-b", file()),
            ("x", file()),
        ]);
        let l1 = layer(vec![("a", whiteout()), ("x", whiteout())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a-b:f@0"]);
    }

    #[test]
    fn whiteout_never_appears_even_over_nothing() {
        let l0 = layer(vec![("a", whiteout()), ("b", dir()), ("b/c", whiteout())]);
        assert_eq!(show(&[&l0]), ["/:default", "b:d@0"]);
    }

    #[test]
    fn path_whited_out_then_recreated_has_no_old_children() {
        let l0 = layer(vec![("a", dir()), ("a/old", file())]);
        let l1 = layer(vec![("a", whiteout())]);
        let l2 = layer(vec![("a", dir()), ("a/new", file())]);
        assert_eq!(show(&[&l0, &l1, &l2]), ["/:default", "a:d@2", "a/new:f@2"]);
    }

    #[test]
    fn opaque_dir_hides_lower_children_and_keeps_its_own() {
        let l0 = layer(vec![
            ("a", dir()),
            ("a/x", file()),
            ("a/y", dir()),
            ("a/y/z", file()),
            ("b", file()),
        ]);
        let l1 = layer(vec![("a", opaque()), ("a/n", file())]);
        let l2 = layer(vec![("a/m", file())]);
        assert_eq!(
            show(&[&l0, &l1, &l2]),
            ["/:default", "a:o@1", "a/m:f@2", "a/n:f@1", "b:f@0"]
        );
    }

    #[test]
    fn opaque_root_hides_everything_below() {
        let l0 = layer(vec![("a", file()), ("b", dir())]);
        let l1 = layer(vec![("", opaque()), ("c", file())]);
        assert_eq!(show(&[&l0, &l1]), ["/:o@1", "c:f@1"]);
    }

    #[test]
    fn root_whiteout_empties_the_tree_and_resets_the_root() {
        let l0 = layer(vec![("", dir()), ("a", file())]);
        let l1 = layer(vec![("", whiteout()), ("b", file())]);
        let l2 = layer(vec![("c", file())]);
        assert_eq!(show(&[&l0, &l1, &l2]), ["/:default", "b:f@1", "c:f@2"]);
    }

    #[test]
    fn dir_over_dir_takes_upper_metadata_and_merges_children() {
        let mut l0 = layer(vec![
            ("a", dir()),
            ("a/x", file()),
            ("a/s", dir()),
            ("a/s/1", file()),
        ]);
        let mut l1 = layer(vec![
            ("a", dir()),
            ("a/y", file()),
            ("a/s", dir()),
            ("a/s/2", file()),
        ]);
        l0.entries[0].meta.mode = 0o700;
        l1.entries[0].meta.mode = 0o750;
        let out = merge(&[&l0, &l1]);
        assert_eq!(out[1].entry.meta.mode, 0o750);
        assert_eq!(
            show(&[&l0, &l1]),
            [
                "/:default",
                "a:d@1",
                "a/s:d@1",
                "a/s/1:f@0",
                "a/s/2:f@1",
                "a/x:f@0",
                "a/y:f@1"
            ]
        );
    }

    #[test]
    fn dir_over_non_dir_replaces_it() {
        let l0 = layer(vec![("a", file()), ("b", symlink())]);
        let l1 = layer(vec![("a", dir()), ("a/x", file()), ("b", dir())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a:d@1", "a/x:f@1", "b:d@1"]);
    }

    #[test]
    fn file_over_dir_drops_the_dir_subtree() {
        let l0 = layer(vec![
            ("a", dir()),
            ("a/x", file()),
            ("a/y", dir()),
            ("a/y/z", file()),
            ("a-b", file()),
        ]);
        let l1 = layer(vec![("a", file())]);
        let l2 = layer(vec![("a", dir())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a:f@1", "a-b:f@0"]);
        // Re-declaring the directory later does not bring the old children back.
        assert_eq!(show(&[&l0, &l1, &l2]), ["/:default", "a:d@2", "a-b:f@0"]);
    }

    #[test]
    fn file_or_symlink_over_anything_replaces_it() {
        let l0 = layer(vec![("a", file()), ("b", file()), ("c", symlink()), ("d", dir())]);
        let l1 = layer(vec![
            ("a", file()),
            ("b", symlink()),
            ("c", file()),
            ("d", symlink()),
        ]);
        assert_eq!(
            show(&[&l0, &l1]),
            ["/:default", "a:f@1", "b:l@1", "c:f@1", "d:l@1"]
        );
    }

    #[test]
    fn entry_with_missing_parent_is_dropped_with_its_descendants() {
        let l0 = layer(vec![("a/b", dir()), ("a/b/c", file()), ("x", file())]);
        assert_eq!(show(&[&l0]), ["/:default", "x:f@0"]);
    }

    #[test]
    fn entry_below_a_lower_layers_file_is_dropped() {
        let l0 = layer(vec![("a", file())]);
        let l1 = layer(vec![("a/b", file())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a:f@0"]);
        // ...and below a file of its own layer.
        let l2 = layer(vec![("c", symlink()), ("c/d", file())]);
        assert_eq!(show(&[&l2]), ["/:default", "c:l@0"]);
    }

    #[test]
    fn orphans_are_dropped_eagerly_and_not_revived_by_a_later_parent() {
        let l0 = layer(vec![("a/b", file())]);
        let l1 = layer(vec![("a", dir()), ("a/c", file())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a:d@1", "a/c:f@1"]);
    }

    #[test]
    fn entry_may_rely_on_a_parent_from_a_lower_layer() {
        let l0 = layer(vec![("a", dir())]);
        let l1 = layer(vec![("a/b", dir()), ("a/b/c", file())]);
        assert_eq!(show(&[&l0, &l1]), ["/:default", "a:d@0", "a/b:d@1", "a/b/c:f@1"]);
    }

    #[test]
    fn hard_links_report_their_layer() {
        let linked = || {
            EntryKind::File(FileData {
                size: 0,
                chunks: Vec::new(),
                link: 7,
            })
        };
        let l0 = layer(vec![("a", linked()), ("b", linked())]);
        let l1 = layer(vec![("b", linked())]);
        let out = merge(&[&l0, &l1]);
        let layers: Vec<usize> = out.iter().map(|m| m.layer).collect();
        assert_eq!(
            layers,
            [0, 0, 1],
            "`a` stays with layer 0's group, `b` is layer 1's"
        );
    }

    #[test]
    fn large_layers_merge_quickly() {
        // 3 layers of 3 · 110 · 110 ≈ 36k entries each, overlapping.
        let big = |files: &str| {
            let mut entries = Vec::new();
            for d in 0..110 {
                entries.push(entry(&format!("d{d}"), dir()));
                for s in 0..110 {
                    entries.push(entry(&format!("d{d}/s{s}"), dir()));
                    entries.push(entry(&format!("d{d}/s{s}/{files}"), file()));
                }
            }
            entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
            Manifest { entries }
        };
        let (l0, l1, l2) = (big("x"), big("y"), big("x"));
        let start = std::time::Instant::now();
        let out = merge(&[&l0, &l1, &l2]);
        assert_eq!(out.len(), 1 + 110 + 110 * 110 * 3);
        assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
        check_invariants(&out);
    }

    // ---- the reference model -------------------------------------------

    /// A deliberately naive tree: each entry is applied as an operation on a
    /// nested map, exactly as the rules read.
    enum Node<'a> {
        /// `None`: the default root.
        Dir(Option<(&'a Entry, usize)>, BTreeMap<Vec<u8>, Node<'a>>),
        Leaf(&'a Entry, usize),
    }

    fn model<'a>(layers: &[&'a Manifest]) -> Vec<(&'a Entry, usize)> {
        let mut root = Node::Dir(None, BTreeMap::new());
        for (l, m) in layers.iter().enumerate() {
            for e in &m.entries {
                apply(&mut root, e, l);
            }
        }
        let mut out = Vec::new();
        flatten(&root, &mut out);
        out
    }

    fn apply<'a>(root: &mut Node<'a>, e: &'a Entry, l: usize) {
        let Node::Dir(root_entry, root_children) = root else {
            unreachable!()
        };
        if e.path.is_empty() {
            match e.kind {
                EntryKind::Dir { opaque } => {
                    if opaque {
                        root_children.clear();
                    }
                    *root_entry = Some((e, l));
                }
                _ => {
                    root_children.clear();
                    *root_entry = None;
                }
            }
            return;
        }
        let parts: Vec<&[u8]> = e.path.split(|&c| c == b'/').collect();
        let (name, ancestors) = parts.split_last().unwrap();
        let mut children = root_children;
        for part in ancestors {
            match children.get_mut(*part) {
                Some(Node::Dir(_, c)) => children = c,
                _ => return, // orphan: dropped
            }
        }
        match e.kind {
            EntryKind::Whiteout => {
                children.remove(*name);
            }
            EntryKind::Dir { opaque } => match children.get_mut(*name) {
                Some(Node::Dir(entry, _)) if !opaque => *entry = Some((e, l)),
                _ => {
                    children.insert(name.to_vec(), Node::Dir(Some((e, l)), BTreeMap::new()));
                }
            },
            _ => {
                children.insert(name.to_vec(), Node::Leaf(e, l));
            }
        }
    }

    fn flatten<'a>(node: &Node<'a>, out: &mut Vec<(&'a Entry, usize)>) {
        match node {
            Node::Leaf(e, l) => out.push((e, *l)),
            Node::Dir(entry, children) => {
                out.push(entry.unwrap_or((root_entry(), 0)));
                children.values().for_each(|c| flatten(c, out));
            }
        }
    }

    // ---- property tests ------------------------------------------------

    fn arb_path() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            12 => prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
                .prop_map(|parts| parts.join("/")),
        ]
    }

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            3 => Just(dir()),
            1 => Just(opaque()),
            3 => (0u32..3).prop_map(|link| EntryKind::File(FileData { size: 0, chunks: Vec::new(), link })),
            1 => Just(symlink()),
            2 => Just(whiteout()),
        ]
    }

    /// A sorted, unique layer; with `fill`, missing ancestors are added as
    /// plain directories so that deeper trees survive often.
    fn arb_layer() -> impl Strategy<Value = Manifest> {
        (
            prop::collection::vec((arb_path(), arb_kind()), 0..10),
            any::<bool>(),
        )
            .prop_map(|(raw, fill)| {
                let mut by_path: BTreeMap<String, EntryKind> = raw.into_iter().collect();
                if fill {
                    let paths: Vec<String> = by_path.keys().cloned().collect();
                    for p in paths {
                        let mut a = p.as_str();
                        while let Some(i) = a.rfind('/') {
                            a = &a[..i];
                            by_path.entry(a.to_string()).or_insert_with(dir);
                        }
                    }
                }
                let mut entries: Vec<Entry> = by_path
                    .into_iter()
                    .enumerate()
                    .map(|(i, (p, k))| {
                        let mut e = entry(&p, k);
                        e.meta.mtime_sec = i as i64; // tells entries apart
                        e
                    })
                    .collect();
                entries.sort_by(|a, b| path_cmp(&a.path, &b.path));
                Manifest { entries }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn merge_matches_the_naive_model(layers in prop::collection::vec(arb_layer(), 1..=4)) {
            let refs: Vec<&Manifest> = layers.iter().collect();
            let out = merge(&refs);
            check_invariants(&out);
            let got: Vec<(&Entry, usize)> = out.iter().map(|m| (m.entry, m.layer)).collect();
            prop_assert_eq!(got, model(&refs));
        }
    }
}
