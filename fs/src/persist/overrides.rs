//! Which changes of concurrent persists a new layer hides.
//!
//! Two steps may persist to one workspace at once; both layers land and the
//! later one wins where they touch the same paths. The later persist reports
//! those paths, so a user learns what was overridden instead of finding out.

use std::collections::{HashMap, HashSet};

use crate::error::StoreError;
use crate::ids::LayerId;
use crate::manifest::{parent_of, path_cmp, Entry, EntryKind, Manifest};
use crate::store::Store;

/// True for entries that change what is at their path; a plain directory
/// entry only carries metadata (every layer has one for each ancestor of
/// what it changes), so it is not a change of its own.
fn is_change(entry: &Entry) -> bool {
    !matches!(entry.kind, EntryKind::Dir { opaque: false })
}

/// The paths `theirs` changed that `ours`, stacked on top of it, hides: a
/// change of ours at the same path or at an ancestor (a deletion, an opaque
/// directory, a file where they had a directory), or any entry of ours where
/// they left a file, a symlink or a deletion (a directory of ours brings the
/// path back).
pub fn overridden<'a>(ours: &Manifest, theirs: &'a Manifest) -> Vec<&'a [u8]> {
    let paths: std::collections::HashSet<&[u8]> = ours.entries.iter().map(|e| &e.path[..]).collect();
    let changes: HashMap<&[u8], &Entry> = ours
        .entries
        .iter()
        .filter(|e| is_change(e))
        .map(|e| (&e.path[..], e))
        .collect();
    let hidden = |path: &[u8]| {
        let mut at = Some(path);
        while let Some(p) = at {
            if changes.contains_key(p) {
                return true;
            }
            at = parent_of(p);
        }
        false
    };
    theirs
        .entries
        .iter()
        .filter(|e| {
            let replaced = !matches!(e.kind, EntryKind::Dir { .. }) && paths.contains(&e.path[..]);
            is_change(e) && (replaced || hidden(&e.path))
        })
        .map(|e| &e.path[..])
        .collect()
}

/// The paths changed by the layers of `stack` (a workspace's records, keys
/// and layers) that sort before the record `key` but are not in `base`, and
/// that `ours` (the layer of `key`) hides.
pub fn find(
    store: &Store,
    stack: &[(String, LayerId)],
    key: &str,
    base: &[LayerId],
    ours: &Manifest,
) -> Result<Vec<String>, StoreError> {
    let base: HashSet<&LayerId> = base.iter().collect();
    let mut paths: Vec<Vec<u8>> = Vec::new();
    for (_, layer) in stack
        .iter()
        .filter(|(k, layer)| k.as_str() < key && !base.contains(layer))
    {
        let theirs = store.manifest(layer)?;
        paths.extend(overridden(ours, &theirs).into_iter().map(<[u8]>::to_vec));
    }
    paths.sort_by(|a, b| path_cmp(a, b));
    paths.dedup();
    Ok(paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::testing::{self, entry};

    fn file(path: &str) -> Entry {
        testing::file(path, &[], 0)
    }

    fn dir(path: &str, opaque: bool) -> Entry {
        entry(path, EntryKind::Dir { opaque })
    }

    fn layer(entries: Vec<Entry>) -> Manifest {
        Manifest { entries }
    }

    #[test]
    fn same_paths_and_paths_below_deletions_are_overridden() {
        let theirs = layer(vec![
            dir("", false),
            dir("a", false),
            file("a/x"),
            file("a/y"),
            dir("b", false),
            file("b/z"),
            dir("c", false),
            file("c/w"),
            file("d"),
        ]);
        let ours = layer(vec![
            dir("", false),
            dir("a", false),
            file("a/x"),
            entry("b", EntryKind::Whiteout),
            dir("c", true),
            file("e"),
        ]);
        let hidden: Vec<&[u8]> = overridden(&ours, &theirs);
        assert_eq!(hidden, [&b"a/x"[..], b"b/z", b"c/w"]);
    }

    #[test]
    fn a_directory_of_ours_overrides_their_file_or_deletion_there() {
        let theirs = layer(vec![
            dir("", false),
            file("out"),
            entry("gone", EntryKind::Whiteout),
        ]);
        let ours = layer(vec![
            dir("", false),
            dir("gone", false),
            file("gone/x"),
            dir("out", false),
            file("out/log"),
        ]);
        assert_eq!(overridden(&ours, &theirs), [&b"out"[..], b"gone"]);
    }

    #[test]
    fn directories_both_layers_only_pass_through_are_not_conflicts() {
        let theirs = layer(vec![dir("", false), dir("a", false), file("a/x")]);
        let ours = layer(vec![dir("", false), dir("a", false), file("a/y")]);
        assert!(overridden(&ours, &theirs).is_empty());
    }
}
