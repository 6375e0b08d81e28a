//! The inode table of a mounted workspace version: the merged tree of its
//! layers, answering lookups, attributes, directory listings and reads
//! without any FUSE type, so it is tested without mounting.
//!
//! Inode numbers are dense (`1` is the root) and never change while the
//! tree lives: layers are immutable, so is the tree built from them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use thiserror::Error;

use crate::error::StoreError;
use crate::ids::PackId;
use crate::manifest::{name_of, parent_of, ChunkRef, Entry, EntryKind, FileData, Manifest, Meta, Xattr};
use crate::merge::merge;
use crate::pack::{Frame, FrameIndex};
use crate::store::Store;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;

/// A directory entry: name and inode number.
pub type Child = (Box<[u8]>, u64);

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// The attributes of an inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: NodeType,
    /// Size in bytes (file length, symlink target length, 0 for directories).
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Number of names (directories: 2 + subdirectories).
    pub nlink: u32,
}

enum Data {
    /// Children sorted by name.
    Dir(Vec<Child>),
    /// The file's range in `Tree::chunks` and `Tree::ends`.
    File(std::ops::Range<usize>),
    Symlink(Box<[u8]>),
}

struct Node {
    attr: Attr,
    data: Data,
    xattrs: Box<[Xattr]>,
}

/// Where the bytes of chunks come from: the store, or a fake in unit tests.
pub trait ChunkSource: Send + Sync {
    /// The verified plain bytes of `chunk`; `frames` is the layout of the
    /// reader's packs, from which a miss may fetch neighbouring frames too.
    fn chunk(&self, chunk: &ChunkRef, frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError>;

    /// As [`ChunkSource::chunk`], for a bulk reader: the chunk is not kept
    /// in memory on the way (where it would evict what readers use).
    fn chunk_passing(&self, chunk: &ChunkRef, frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.chunk(chunk, frames)
    }

    /// Brings consecutive frames of `pack` into the local cache, coalesced
    /// into as few requests as possible.
    fn fetch_frames(&self, pack: PackId, frames: &[Frame]) -> Result<(), StoreError>;
}

impl ChunkSource for Store {
    fn chunk(&self, chunk: &ChunkRef, frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.read_chunk(chunk, frames)
    }

    fn chunk_passing(&self, chunk: &ChunkRef, frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
        self.read_chunk_passing(chunk, frames)
    }

    fn fetch_frames(&self, pack: PackId, frames: &[Frame]) -> Result<(), StoreError> {
        Store::fetch_frames(self, pack, frames)
    }
}

/// Why a tree operation failed.
#[derive(Debug, Error)]
pub enum TreeError {
    /// No such inode (ENOENT).
    #[error("no inode {0}")]
    NoInode(u64),
    /// The inode is not of the kind the operation needs (EINVAL / EISDIR / ENOTDIR).
    #[error("inode {0} is a {1:?}")]
    WrongKind(u64, NodeType),
    /// A chunk could not be read (EIO).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The merged, immutable tree of one workspace version.
pub struct Tree {
    nodes: Vec<Node>,
    /// The chunks of every file, file after file (one allocation, not one per file).
    chunks: Vec<ChunkRef>,
    /// `ends[i]`: offset in its file just past `chunks[i]`.
    ends: Vec<u64>,
    /// The frames `chunks` are in, by pack.
    frames: FrameIndex,
    files: u64,
    bytes: u64,
}

impl Tree {
    /// Merges `layers` (lowest first) into an inode table.
    pub fn build(layers: &[Manifest]) -> Tree {
        let refs: Vec<&Manifest> = layers.iter().collect();
        let merged = merge(&refs);
        let mut tree = Tree {
            nodes: Vec::with_capacity(merged.len()),
            chunks: Vec::new(),
            ends: Vec::new(),
            frames: FrameIndex::default(),
            files: 0,
            bytes: 0,
        };
        // Entries come in preorder with every parent present, so the parent of
        // an entry is on this stack of open directories: no path lookups.
        let mut open_dirs: Vec<(&[u8], u64)> = Vec::new();
        let mut links: HashMap<(usize, u32), u64> = HashMap::new();
        for m in &merged {
            let entry = m.entry;
            let parent_path = parent_of(&entry.path);
            while open_dirs
                .last()
                .is_some_and(|(path, _)| Some(*path) != parent_path)
            {
                open_dirs.pop();
            }
            let parent = open_dirs.last().map(|(_, ino)| *ino);
            let name = name_of(&entry.path);
            let linked = match &entry.kind {
                EntryKind::File(f) => {
                    tree.files += 1;
                    tree.bytes += f.size;
                    (f.link != 0).then_some((m.layer, f.link))
                }
                _ => None,
            };
            let ino = match linked.and_then(|key| links.get(&key)) {
                Some(&ino) => {
                    tree.nodes[ino as usize - 1].attr.nlink += 1;
                    ino
                }
                None => {
                    let ino = tree.push_node(entry);
                    if let Some(key) = linked {
                        links.insert(key, ino);
                    }
                    ino
                }
            };
            if let Some(p) = parent {
                let is_dir = matches!(entry.kind, EntryKind::Dir { .. });
                let parent = &mut tree.nodes[p as usize - 1];
                parent.attr.nlink += u32::from(is_dir);
                if let Data::Dir(children) = &mut parent.data {
                    children.push((name.into(), ino));
                }
            }
            if matches!(entry.kind, EntryKind::Dir { .. }) {
                open_dirs.push((&entry.path, ino));
            }
        }
        tree.frames = FrameIndex::of(&tree.chunks);
        tree
    }

    /// Adds the inode of `entry` and returns its number.
    fn push_node(&mut self, entry: &Entry) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        let (kind, size, data) = match &entry.kind {
            EntryKind::Dir { .. } => (NodeType::Dir, 0, Data::Dir(Vec::new())),
            EntryKind::File(f) => {
                let first = self.chunks.len();
                let mut end = 0;
                for c in &f.chunks {
                    end += u64::from(c.len);
                    self.ends.push(end);
                }
                self.chunks.extend_from_slice(&f.chunks);
                (NodeType::File, f.size, Data::File(first..self.chunks.len()))
            }
            EntryKind::Symlink { target } => (
                NodeType::Symlink,
                target.len() as u64,
                Data::Symlink(target.clone().into()),
            ),
            EntryKind::Whiteout => unreachable!("merge removes whiteouts"),
        };
        let meta = &entry.meta;
        self.nodes.push(Node {
            attr: Attr {
                ino,
                kind,
                size,
                perm: (meta.mode & 0o7777) as u16,
                uid: meta.uid,
                gid: meta.gid,
                mtime_sec: meta.mtime_sec,
                mtime_nsec: meta.mtime_nsec,
                nlink: if kind == NodeType::Dir { 2 } else { 1 },
            },
            data,
            xattrs: meta.xattrs.clone().into(),
        });
        ino
    }

    fn node(&self, ino: u64) -> Result<&Node, TreeError> {
        ino.checked_sub(1)
            .and_then(|i| self.nodes.get(i as usize))
            .ok_or(TreeError::NoInode(ino))
    }

    /// Regular files (names) and their total size.
    pub fn totals(&self) -> (u64, u64) {
        (self.files, self.bytes)
    }

    /// Number of inodes.
    pub fn inodes(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The attributes of `ino`.
    pub fn attr(&self, ino: u64) -> Result<&Attr, TreeError> {
        Ok(&self.node(ino)?.attr)
    }

    /// The child `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<&Attr>, TreeError> {
        let children = self.children(parent)?;
        Ok(children
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &self.nodes[children[i].1 as usize - 1].attr))
    }

    /// The children of directory `ino`, sorted by name.
    pub fn children(&self, ino: u64) -> Result<&[Child], TreeError> {
        let node = self.node(ino)?;
        match &node.data {
            Data::Dir(children) => Ok(children),
            _ => Err(TreeError::WrongKind(ino, node.attr.kind)),
        }
    }

    /// The target of symlink `ino`.
    pub fn read_link(&self, ino: u64) -> Result<&[u8], TreeError> {
        let node = self.node(ino)?;
        match &node.data {
            Data::Symlink(target) => Ok(target),
            _ => Err(TreeError::WrongKind(ino, node.attr.kind)),
        }
    }

    /// The extended attributes of `ino`, sorted by name.
    pub fn xattrs(&self, ino: u64) -> Result<&[Xattr], TreeError> {
        Ok(&self.node(ino)?.xattrs)
    }

    /// Every chunk the tree's files use (with repeats), in file order.
    pub fn chunk_refs(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The frames of the packs this tree's files are in.
    pub fn frames(&self) -> &FrameIndex {
        &self.frames
    }

    /// The manifest entry that describes `ino` at `path` (hard-link groups
    /// are not kept: the entry's `link` is 0).
    pub fn entry(&self, ino: u64, path: Vec<u8>) -> Result<Entry, TreeError> {
        let node = self.node(ino)?;
        let a = &node.attr;
        let kind = match &node.data {
            Data::Dir(_) => EntryKind::Dir { opaque: false },
            Data::File(range) => EntryKind::File(FileData {
                size: a.size,
                chunks: self.chunks[range.clone()].to_vec(),
                link: 0,
            }),
            Data::Symlink(target) => EntryKind::Symlink {
                target: target.to_vec(),
            },
        };
        let meta = Meta {
            mode: u32::from(a.perm),
            uid: a.uid,
            gid: a.gid,
            mtime_sec: a.mtime_sec,
            mtime_nsec: a.mtime_nsec,
            xattrs: node.xattrs.to_vec(),
        };
        Ok(Entry { path, meta, kind })
    }

    /// The inode at `path` (`/`-separated, relative to the root), not following symlinks.
    pub fn resolve(&self, path: &[u8]) -> Result<Option<u64>, TreeError> {
        let mut ino = ROOT_INO;
        for part in path.split(|&c| c == b'/').filter(|p| !p.is_empty()) {
            match self.lookup(ino, part) {
                Ok(Some(attr)) => ino = attr.ino,
                Ok(None) | Err(TreeError::WrongKind(..)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(ino))
    }

    /// The chunks of regular file `ino`, in file order.
    pub fn file_chunks(&self, ino: u64) -> Result<&[ChunkRef], TreeError> {
        let node = self.node(ino)?;
        match &node.data {
            Data::File(range) => Ok(&self.chunks[range.clone()]),
            _ => Err(TreeError::WrongKind(ino, node.attr.kind)),
        }
    }

    /// Every regular file's inode, in tree order (directories before their children).
    pub fn file_inodes(&self) -> impl Iterator<Item = u64> + '_ {
        (1..=self.nodes.len() as u64)
            .filter(|&ino| matches!(self.nodes[ino as usize - 1].data, Data::File(_)))
    }

    /// A path (from the root, `a/b`) of each of `inodes` (one name of a hard-linked file).
    pub fn paths_of(&self, inodes: &HashSet<u64>) -> HashMap<u64, Vec<u8>> {
        self.paths_from(ROOT_INO, |ino| inodes.contains(&ino))
    }

    /// A path (relative to directory `dir`) of each inode below it.
    pub fn paths_below(&self, dir: u64) -> HashMap<u64, Vec<u8>> {
        self.paths_from(dir, |_| true)
    }

    /// A path relative to `dir` of each inode below it that `wanted` takes.
    fn paths_from(&self, dir: u64, wanted: impl Fn(u64) -> bool) -> HashMap<u64, Vec<u8>> {
        let mut found = HashMap::new();
        let mut stack: Vec<(u64, Vec<u8>)> = vec![(dir, Vec::new())];
        while let Some((dir, path)) = stack.pop() {
            for (name, child) in self.children(dir).unwrap_or_default() {
                let child_path = if path.is_empty() {
                    name.to_vec()
                } else {
                    [&path[..], b"/", name].concat()
                };
                if wanted(*child) {
                    found.entry(*child).or_insert_with(|| child_path.clone());
                }
                if self.attr(*child).is_ok_and(|a| a.kind == NodeType::Dir) {
                    stack.push((*child, child_path));
                }
            }
        }
        found
    }

    /// A directory holding each inode (indexed by inode; 0 for the root and
    /// for index 0): where a listing makes the kernel know it.
    pub fn parents(&self) -> Vec<u64> {
        let mut parents = vec![0; self.nodes.len() + 1];
        for dir in 1..=self.nodes.len() as u64 {
            for (_, child) in self.children(dir).unwrap_or_default() {
                if parents[*child as usize] == 0 {
                    parents[*child as usize] = dir;
                }
            }
        }
        parents
    }

    /// Up to `size` bytes of file `ino` from `offset`, fetching only the chunks they touch.
    pub fn read(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
        source: &dyn ChunkSource,
    ) -> Result<Vec<u8>, TreeError> {
        let node = self.node(ino)?;
        let Data::File(range) = &node.data else {
            return Err(TreeError::WrongKind(ino, node.attr.kind));
        };
        let (chunks, ends) = (&self.chunks[range.clone()], &self.ends[range.clone()]);
        let end = node.attr.size.min(offset.saturating_add(u64::from(size)));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        let mut i = ends.partition_point(|&e| e <= offset);
        while pos < end && i < chunks.len() {
            let start = ends[i] - u64::from(chunks[i].len);
            let bytes = source.chunk(&chunks[i], &self.frames)?;
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
            pos = start + to as u64;
            i += 1;
        }
        Ok(out)
    }
}

/// A chunk source for the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::ids::ChunkId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves chunks from memory and counts requests.
    #[derive(Default)]
    pub(crate) struct FakeSource {
        pub chunks: HashMap<ChunkId, Arc<[u8]>>,
        pub requests: AtomicUsize,
    }

    impl FakeSource {
        /// A file entry at `path` made of `parts`, whose chunks it serves.
        pub fn file(&mut self, path: &str, parts: &[&[u8]], link: u32) -> Entry {
            for p in parts {
                self.chunks.insert(ChunkId::of(p), Arc::from(*p));
            }
            crate::manifest::testing::file(path, parts, link)
        }
    }

    impl ChunkSource for FakeSource {
        fn chunk(&self, chunk: &ChunkRef, _frames: &FrameIndex) -> Result<Arc<[u8]>, StoreError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            Ok(self.chunks[&chunk.id].clone())
        }

        fn fetch_frames(&self, _pack: PackId, _frames: &[Frame]) -> Result<(), StoreError> {
            unreachable!("trees never prefetch")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeSource;
    use super::*;
    use crate::manifest::testing::entry;
    use crate::manifest::Entry;
    use std::sync::atomic::Ordering;

    fn dir(path: &str) -> Entry {
        entry(path, EntryKind::Dir { opaque: false })
    }

    fn file(source: &mut FakeSource, path: &str, parts: &[&[u8]], link: u32) -> Entry {
        source.file(path, parts, link)
    }

    fn sample() -> (Tree, FakeSource) {
        let mut src = FakeSource::default();
        let layer = Manifest {
            entries: vec![
                dir(""),
                dir("d"),
                file(&mut src, "d/big", &[b"hello ", b"wonderful ", b"world"], 0),
                file(&mut src, "d/link1", &[b"same"], 1),
                dir("d/sub"),
                file(&mut src, "d/sub/link2", &[b"same"], 1),
                entry(
                    "s",
                    EntryKind::Symlink {
                        target: b"d/big".to_vec(),
                    },
                ),
            ],
        };
        (Tree::build(&[layer]), src)
    }

    #[test]
    fn lookups_listings_and_links() {
        let (tree, _) = sample();
        let d = tree.lookup(ROOT_INO, b"d").unwrap().unwrap().ino;
        let names: Vec<&[u8]> = tree.children(d).unwrap().iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, [&b"big"[..], b"link1", b"sub"]);
        assert_eq!(tree.attr(d).unwrap().nlink, 3);
        let l1 = tree.resolve(b"d/link1").unwrap().unwrap();
        assert_eq!(tree.resolve(b"d/sub/link2").unwrap(), Some(l1));
        assert_eq!(tree.attr(l1).unwrap().nlink, 2);
        let s = tree.resolve(b"s").unwrap().unwrap();
        assert_eq!(tree.read_link(s).unwrap(), b"d/big");
        assert_eq!(tree.resolve(b"d/big/x").unwrap(), None);
        assert_eq!(tree.resolve(b"nope").unwrap(), None);
        assert!(matches!(tree.attr(999), Err(TreeError::NoInode(999))));
        assert_eq!(tree.totals(), (3, 29));
    }

    /// A daemon that takes a mount over rebuilds its tree: every entry must
    /// get the inode number the kernel already knows.
    #[test]
    fn the_same_layers_always_give_the_same_inode_numbers() {
        let (first, _) = sample();
        let (again, _) = sample();
        let all: HashSet<u64> = (1..=first.inodes()).collect();
        assert_eq!(first.paths_of(&all), again.paths_of(&all));
        assert_eq!(
            first.paths_of(&all).len() as u64,
            first.inodes() - 1,
            "every inode but the root has a path"
        );
    }

    /// Two layers: the upper one replaces `d/big` (with xattrs, an owner, a
    /// mode and a negative mtime) and whites out `d/gone`.
    fn with_metadata() -> Tree {
        let mut src = FakeSource::default();
        let mut tagged = file(&mut src, "d/big", &[b"new"], 0);
        tagged.meta = Meta {
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            mtime_sec: -5,
            mtime_nsec: 7,
            xattrs: vec![
                (b"user.a".to_vec(), b"1".to_vec()),
                (b"user.b".to_vec(), Vec::new()),
            ],
        };
        let lower = Manifest {
            entries: vec![
                dir(""),
                dir("d"),
                file(&mut src, "d/big", &[b"old"], 0),
                file(&mut src, "d/gone", &[b"x"], 0),
            ],
        };
        let upper = Manifest {
            entries: vec![dir(""), dir("d"), tagged, entry("d/gone", EntryKind::Whiteout)],
        };
        Tree::build(&[lower, upper])
    }

    #[test]
    fn the_upper_layer_gives_bytes_and_metadata_and_hides_what_it_whites_out() {
        let tree = with_metadata();
        let big = tree.resolve(b"d/big").unwrap().unwrap();
        let attr = tree.attr(big).unwrap();
        assert_eq!(
            (
                attr.perm,
                attr.uid,
                attr.gid,
                attr.mtime_sec,
                attr.mtime_nsec,
                attr.size
            ),
            (0o4755, 1000, 100, -5, 7, 3)
        );
        assert_eq!(
            tree.xattrs(big).unwrap(),
            [
                (b"user.a".to_vec(), b"1".to_vec()),
                (b"user.b".to_vec(), Vec::new())
            ]
        );
        assert!(tree.xattrs(ROOT_INO).unwrap().is_empty());
        assert!(matches!(tree.xattrs(99), Err(TreeError::NoInode(99))));
        assert_eq!(tree.resolve(b"d/gone").unwrap(), None);
        assert_eq!(tree.totals(), (1, 3));
    }

    /// What `detach --persist` and `check` rebuild from a mounted tree: the
    /// entry of an inode carries its metadata and chunks, with no hard-link group.
    #[test]
    fn entries_rebuilt_from_the_tree_carry_metadata_and_chunks() {
        let tree = with_metadata();
        let big = tree.resolve(b"d/big").unwrap().unwrap();
        let e = tree.entry(big, b"d/big".to_vec()).unwrap();
        assert_eq!(e.path, b"d/big");
        assert_eq!((e.meta.mode, e.meta.uid, e.meta.mtime_sec), (0o4755, 1000, -5));
        assert_eq!(e.meta.xattrs.len(), 2);
        match &e.kind {
            EntryKind::File(f) => {
                assert_eq!((f.size, f.link), (3, 0));
                assert_eq!(f.chunks, tree.file_chunks(big).unwrap());
            }
            other => panic!("not a file: {other:?}"),
        }
        let (linked, _) = sample();
        let l1 = linked.resolve(b"d/link1").unwrap().unwrap();
        assert!(matches!(
            linked.entry(l1, b"d/link1".to_vec()).unwrap().kind,
            EntryKind::File(FileData { link: 0, .. })
        ));
        let s = linked.resolve(b"s").unwrap().unwrap();
        assert!(matches!(
            linked.entry(s, b"s".to_vec()).unwrap().kind,
            EntryKind::Symlink { ref target } if target == b"d/big"
        ));
        let d = linked.resolve(b"d").unwrap().unwrap();
        assert!(matches!(
            linked.entry(d, b"d".to_vec()).unwrap().kind,
            EntryKind::Dir { opaque: false }
        ));
        assert!(matches!(
            linked.entry(99, Vec::new()),
            Err(TreeError::NoInode(99))
        ));
    }

    #[test]
    fn every_inode_has_its_directory_and_a_hard_link_one_path() {
        let (tree, _) = sample();
        let parents = tree.parents();
        assert_eq!(parents.len() as u64, tree.inodes() + 1);
        assert_eq!((parents[0], parents[ROOT_INO as usize]), (0, 0));
        let ino = |path: &[u8]| tree.resolve(path).unwrap().unwrap();
        let (d, sub) = (ino(b"d"), ino(b"d/sub"));
        assert_eq!(parents[d as usize], ROOT_INO);
        assert_eq!(parents[ino(b"d/big") as usize], d);
        assert_eq!(parents[sub as usize], d);
        assert_eq!(parents[ino(b"s") as usize], ROOT_INO);
        // The hard link's first name in a walk of the tree is in `d`.
        let link = ino(b"d/link1");
        assert_eq!(parents[link as usize], d);
        let paths = tree.paths_of(&HashSet::from([link, sub]));
        assert_eq!(paths.len(), 2);
        assert!(paths[&link] == b"d/link1" || paths[&link] == b"d/sub/link2");
        assert_eq!(paths[&sub], b"d/sub");
        let files: Vec<u64> = tree.file_inodes().collect();
        assert_eq!(files, [ino(b"d/big"), link], "each file once, in tree order");
    }

    #[test]
    fn lookups_of_what_is_not_a_directory_fail_as_such() {
        let (tree, src) = sample();
        let big = tree.resolve(b"d/big").unwrap().unwrap();
        assert!(matches!(
            tree.lookup(big, b"x"),
            Err(TreeError::WrongKind(_, NodeType::File))
        ));
        assert!(matches!(tree.children(big), Err(TreeError::WrongKind(..))));
        assert!(matches!(tree.read_link(big), Err(TreeError::WrongKind(..))));
        assert!(matches!(
            tree.file_chunks(ROOT_INO),
            Err(TreeError::WrongKind(..))
        ));
        assert!(matches!(tree.lookup(0, b"d"), Err(TreeError::NoInode(0))));
        let s = tree.resolve(b"s").unwrap().unwrap();
        assert!(matches!(tree.read(s, 0, 1, &src), Err(TreeError::WrongKind(..))));
        assert_eq!(
            tree.attr(s).unwrap().size,
            5,
            "a symlink's size is its target's length"
        );
    }

    #[test]
    fn reads_fetch_only_the_chunks_they_touch() {
        let (tree, src) = sample();
        let big = tree.resolve(b"d/big").unwrap().unwrap();
        assert_eq!(tree.read(big, 0, 100, &src).unwrap(), b"hello wonderful world");
        src.requests.store(0, Ordering::SeqCst);
        assert_eq!(tree.read(big, 8, 4, &src).unwrap(), b"nder");
        assert_eq!(src.requests.load(Ordering::SeqCst), 1);
        assert_eq!(tree.read(big, 4, 4, &src).unwrap(), b"o wo");
        assert_eq!(tree.read(big, 21, 10, &src).unwrap(), b"");
        assert_eq!(tree.read(big, 100, 10, &src).unwrap(), b"");
        assert!(matches!(
            tree.read(ROOT_INO, 0, 1, &src),
            Err(TreeError::WrongKind(..))
        ));
    }
}
