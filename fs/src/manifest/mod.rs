//! Layer manifests: the sorted tree of one layer, and its versioned binary encoding.
//!
//! A manifest lists every entry of a layer in [`path_cmp`] order (a directory
//! before its children, siblings by bytes), starting with the root (empty path).
//! The encoding lives in [`v1`]; `docs/format.md` documents it.

pub mod v1;

use std::cmp::Ordering;

use crate::ids::{ChunkId, PackId};

pub use v1::{decode, encode, validate, FormatError, FORMAT_VERSION, MAX_OBJECT_LEN};

/// One layer's tree: entries sorted by [`path_cmp`], unique paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The entries, root (empty path) first when present.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Every chunk reference of the layer's files, in entry order.
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkRef> {
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File(data) => Some(data.chunks.iter()),
                _ => None,
            })
            .flatten()
    }

    /// Every pack the layer's files have chunks in.
    pub fn packs(&self) -> std::collections::HashSet<PackId> {
        self.chunks().map(|c| c.loc.pack).collect()
    }
}

/// One path of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path, components joined by `/`, no leading or trailing `/`,
    /// no `.` or `..` components; the root is the empty path.
    pub path: Vec<u8>,
    /// Ownership, permissions, time and extended attributes.
    pub meta: Meta,
    /// What the path is.
    pub kind: EntryKind,
}

/// An extended attribute: name and value.
pub type Xattr = (Vec<u8>, Vec<u8>);

/// Metadata of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime_sec: i64,
    /// Modification time, nanoseconds part (< 1e9).
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by name, unique names.
    pub xattrs: Vec<Xattr>,
}

/// The kind of an entry and its kind-specific data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory. `opaque`: entries of lower layers below this path are hidden.
    Dir {
        /// Hide everything lower layers have below this directory.
        opaque: bool,
    },
    /// A regular file.
    File(FileData),
    /// A symbolic link to `target` (bytes as stored, not resolved).
    Symlink {
        /// The link's target.
        target: Vec<u8>,
    },
    /// The path was deleted: lower layers' entry at this path (and below) is hidden.
    Whiteout,
}

/// Content of a regular file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileData {
    /// File size in bytes: the sum of the chunk lengths.
    pub size: u64,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkRef>,
    /// Hard-link group within this layer: 0 when the file has a single name;
    /// files of one layer with the same non-zero `link` are one inode, whose
    /// metadata is that of the group's first entry.
    pub link: u32,
}

/// One chunk of a file and where its bytes live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    /// Digest of the chunk's plain bytes.
    pub id: ChunkId,
    /// Plain length in bytes.
    pub len: u32,
    /// The compressed frame holding the chunk.
    pub loc: ChunkLocation,
}

/// Where a chunk lives: a zstd frame of a pack, and the chunk's offset in the
/// frame's decompressed bytes. One ranged read of the frame returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkLocation {
    /// The pack object.
    pub pack: PackId,
    /// Byte offset of the frame in the pack.
    pub frame_offset: u64,
    /// Compressed length of the frame.
    pub frame_len: u32,
    /// Decompressed length of the frame.
    pub frame_plain_len: u32,
    /// Offset of the chunk in the decompressed frame.
    pub offset_in_frame: u32,
}

/// The time `sec` seconds (may be negative) and `nsec` nanoseconds after the epoch.
pub fn system_time(sec: i64, nsec: u32) -> std::time::SystemTime {
    use std::time::{Duration, UNIX_EPOCH};
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec.into())
    }
}

/// Orders paths component by component, so that a directory sorts right
/// before its descendants (`a` < `a/b` < `a/c` < `a-b`). Defined for valid
/// manifest paths (no empty components).
pub fn path_cmp(a: &[u8], b: &[u8]) -> Ordering {
    // Comparing bytes with `/` ranked below every other byte is the same as
    // comparing component by component (names never contain NUL), in one pass.
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let rank = |c: u8| if c == b'/' { 0 } else { c };
    match (a.get(common), b.get(common)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(&x), Some(&y)) => rank(x).cmp(&rank(y)),
    }
}

/// True when `path` is `dir` itself or lies below it (`dir` empty = root).
pub fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// The last component of `path` (`a/b` → `b`; the root's is empty).
pub fn name_of(path: &[u8]) -> &[u8] {
    path.rsplit(|&c| c == b'/').next().unwrap_or_default()
}

/// `rel` below directory `dir` (either may be the empty root path).
pub fn join_path(dir: &[u8], rel: &[u8]) -> Vec<u8> {
    match (dir.is_empty(), rel.is_empty()) {
        (_, true) => dir.to_vec(),
        (true, false) => rel.to_vec(),
        (false, false) => [dir, b"/", rel].concat(),
    }
}

/// Why a path given as relative cannot name a place inside a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelativePathError {
    /// It has a `..` component.
    ParentDir,
    /// It is absolute.
    Absolute,
}

/// A relative filesystem path as a manifest path: `.` and empty components
/// dropped (`./a//b/` → `a/b`), `..` and absolute paths refused.
pub fn manifest_path(path: &std::path::Path) -> Result<Vec<u8>, RelativePathError> {
    use std::os::unix::ffi::OsStrExt;
    use std::path::Component;
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.as_bytes()),
            Component::CurDir => {}
            Component::ParentDir => return Err(RelativePathError::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(RelativePathError::Absolute),
        }
    }
    Ok(parts.join(&b'/'))
}

/// The parent path of `path` (`a/b` → `a`, `a` → root), `None` for the root.
pub fn parent_of(path: &[u8]) -> Option<&[u8]> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[..i],
        None => &[],
    })
}

/// Builders shared by the unit tests of the crate.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ChunkLocation, ChunkRef, Entry, EntryKind, FileData, Meta};
    use crate::ids::{ChunkId, PackId};

    /// A file entry at `path` made of chunks with these bytes (at a dummy location).
    pub(crate) fn file(path: &str, parts: &[&[u8]], link: u32) -> Entry {
        let chunks: Vec<ChunkRef> = parts
            .iter()
            .map(|p| ChunkRef {
                id: ChunkId::of(p),
                len: p.len() as u32,
                loc: ChunkLocation {
                    pack: PackId([0; 32]),
                    frame_offset: 0,
                    frame_len: 0,
                    frame_plain_len: 0,
                    offset_in_frame: 0,
                },
            })
            .collect();
        let size = parts.iter().map(|p| p.len() as u64).sum();
        entry(path, EntryKind::File(FileData { size, chunks, link }))
    }

    /// A layer of `entries` (in manifest order) under a root directory.
    pub(crate) fn layer(entries: Vec<Entry>) -> super::Manifest {
        let mut all = vec![entry("", EntryKind::Dir { opaque: false })];
        all.extend(entries);
        super::Manifest { entries: all }
    }

    /// An entry at `path` with mode 0644 and otherwise default metadata.
    pub(crate) fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            meta: Meta {
                mode: 0o644,
                ..Meta::default()
            },
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_sort_before_their_children() {
        let mut paths: Vec<&[u8]> = vec![b"a-b", b"a/c", b"", b"a", b"a/b", b"b"];
        paths.sort_by(|a, b| path_cmp(a, b));
        assert_eq!(paths, vec![&b""[..], b"a", b"a/b", b"a/c", b"a-b", b"b"]);
    }

    #[test]
    fn within_and_parent() {
        assert!(is_within(b"a/b", b"a"));
        assert!(!is_within(b"ab", b"a"));
        assert!(is_within(b"x", b""));
        assert_eq!(parent_of(b"a/b/c"), Some(&b"a/b"[..]));
        assert_eq!(parent_of(b"a"), Some(&b""[..]));
        assert_eq!(parent_of(b""), None);
        assert_eq!(name_of(b"a/b"), b"b");
        assert_eq!(join_path(b"a", b"b/c"), b"a/b/c");
        assert_eq!(join_path(b"", b"b"), b"b");
        assert_eq!(join_path(b"a", b""), b"a");
    }

    #[test]
    fn relative_paths_become_manifest_paths() {
        use std::path::Path;
        assert_eq!(manifest_path(Path::new("./a//b/")), Ok(b"a/b".to_vec()));
        assert_eq!(manifest_path(Path::new("")), Ok(Vec::new()));
        assert_eq!(
            manifest_path(Path::new("a/../b")),
            Err(RelativePathError::ParentDir)
        );
        assert_eq!(manifest_path(Path::new("/a")), Err(RelativePathError::Absolute));
    }
}
