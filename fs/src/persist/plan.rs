//! The plan of a layer: its entries, and where the bytes of each regular
//! file come from (a file to read and chunk, or chunks the store already has).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::source::{source_err, stamp_of, Source};
use super::PersistError;
use crate::manifest::{path_cmp, Entry, EntryKind, FileData, Meta};
use crate::store::db::FileStamp;

/// Where a planned entry's content comes from.
pub enum Content {
    /// Nothing to read: not a regular file, or a file whose chunks are in its entry.
    Known,
    /// A regular file unchanged since the last persist (the stat cache gave
    /// its chunks, in its entry), still readable at `abs` should it be
    /// packed anew (see [`super::layout`]).
    Cached {
        /// Absolute path of the file.
        abs: PathBuf,
        /// Its stat stamp.
        stamp: FileStamp,
    },
    /// A regular file to read from `abs` and chunk.
    Read {
        /// Absolute path of the file.
        abs: PathBuf,
        /// Its stat stamp, for the stat cache and the progress total.
        stamp: FileStamp,
    },
}

/// One entry of the layer being built.
pub struct Planned {
    /// The entry; a file's chunks are filled in when its content is `Read`.
    pub entry: Entry,
    /// Where a regular file's bytes come from.
    pub content: Content,
    /// For a file that may have other names: its inode's identity. Files of
    /// the plan with the same identity become one hard-link group.
    pub inode: Option<(u64, u64)>,
}

/// The entries of a layer, and the paths left out of it.
#[derive(Default)]
pub struct Plan {
    /// The entries, in any order.
    pub entries: Vec<Planned>,
    /// Paths not persisted (sockets, devices, FIFOs), as given to the user.
    pub skipped: Vec<String>,
    /// Paths the layer deletes (whiteouts).
    pub deleted: u64,
}

impl Plan {
    /// Adds an entry whose content needs no reading.
    pub fn known(&mut self, entry: Entry, inode: Option<(u64, u64)>) {
        self.entries.push(Planned {
            entry,
            content: Content::Known,
            inode,
        });
    }

    /// Sorts the entries into manifest order.
    pub fn sort(&mut self) {
        self.entries
            .sort_by(|a, b| path_cmp(&a.entry.path, &b.entry.path));
    }
}

/// Plans a directory, symlink or regular file of the source at `path`; `None`
/// for sockets, FIFOs and devices, which have no content to persist.
pub fn plan_source(path: Vec<u8>, source: &Source, meta: Meta) -> Result<Option<Planned>, PersistError> {
    let ft = source.meta.file_type();
    let (kind, content) = if ft.is_dir() {
        (EntryKind::Dir { opaque: false }, Content::Known)
    } else if ft.is_symlink() {
        let target = fs::read_link(&source.abs).map_err(source_err(&source.abs))?;
        let target = target.as_os_str().as_bytes().to_vec();
        (EntryKind::Symlink { target }, Content::Known)
    } else if let Some(chunks) = source.cached.clone().filter(|_| ft.is_file()) {
        // Unchanged since the last persist: nothing to read.
        let size = chunks.iter().map(|c| u64::from(c.len)).sum();
        (
            EntryKind::File(FileData {
                size,
                chunks,
                link: 0,
            }),
            Content::Cached {
                abs: source.abs.clone(),
                stamp: stamp_of(&source.meta),
            },
        )
    } else if ft.is_file() {
        let data = FileData {
            size: 0,
            chunks: Vec::new(),
            link: 0,
        };
        let content = Content::Read {
            abs: source.abs.clone(),
            stamp: stamp_of(&source.meta),
        };
        (EntryKind::File(data), content)
    } else {
        return Ok(None);
    };
    let m = &source.meta;
    let inode = (ft.is_file() && m.nlink() > 1).then(|| (m.dev(), m.ino()));
    Ok(Some(Planned {
        entry: Entry { path, meta, kind },
        content,
        inode,
    }))
}
