//! Version 1 of the layer manifest encoding (`docs/format.md`, "Layer manifest").
//!
//! An encoded manifest is a 20-byte header (magic, version, flags, plain body
//! length) followed by the body compressed as one zstd frame. The layer id is
//! the BLAKE3 digest of exactly these bytes, so [`encode`] is deterministic.
//!
//! [`decode`] reads bytes fetched from a remote object store: it treats them
//! as hostile. It never panics, bounds every allocation by the bytes actually
//! present, and accepts only valid, canonical manifests (see [`validate`]).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use super::{is_within, path_cmp, ChunkLocation, ChunkRef, Entry, EntryKind, FileData, Manifest, Meta};
use crate::ids::{ChunkId, PackId};

/// The manifest format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// The first 8 bytes of every encoded manifest.
pub const MAGIC: [u8; 8] = *b"WSFSLYR\0";

/// Largest plain body [`decode`] accepts (256 MiB: a few million entries;
/// decoded entries take up to ~20x their encoded size). Checked before
/// decompressing, so a hostile header cannot make us allocate more.
pub const MAX_BODY_LEN: u64 = 1 << 28;

/// Largest frame, compressed or plain, a chunk location may name: readers
/// allocate a frame's declared size, so an untrusted manifest must not be able
/// to ask for more. Writers close frames at about 1.25 MiB.
pub const MAX_FRAME_BYTES: u32 = 16 << 20;

/// Length of the fixed header: magic, version, flags, body length.
pub const HEADER_LEN: usize = 8 + 2 + 2 + 8;

/// Largest encoded manifest: the header and a body of at most
/// [`MAX_BODY_LEN`] plain bytes, which zstd never grows by more than 1/256
/// plus a little. Larger objects are refused before they are read.
pub const MAX_OBJECT_LEN: u64 = HEADER_LEN as u64 + MAX_BODY_LEN + MAX_BODY_LEN / 128 + (64 << 10);

/// zstd level of the body. Part of the format in practice: the layer id hashes
/// the compressed bytes, so writers must agree on it to share layer ids.
const ZSTD_LEVEL: i32 = 3;

/// Largest zstd window a reader accepts (2^23 = 8 MiB): level 3 never uses
/// more than 2 MiB, and the default limit (128 MiB) would let a hostile frame
/// make the decoder allocate that much.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Kind tags, one byte per entry.
const TAG_DIR: u8 = 0;
const TAG_OPAQUE_DIR: u8 = 1;
const TAG_FILE: u8 = 2;
const TAG_SYMLINK: u8 = 3;
const TAG_WHITEOUT: u8 = 4;

/// Smallest encoded size of each repeated element, used to reject counts that
/// the remaining bytes cannot hold before allocating for them.
const MIN_PACK_BYTES: usize = 32;
/// Path length, tag, mode, uid, gid, mtime_sec, mtime_nsec, xattr count.
const MIN_ENTRY_BYTES: usize = 8;
/// Name length, value length.
const MIN_XATTR_BYTES: usize = 2;
/// Id, then six varints.
const MIN_CHUNK_BYTES: usize = 32 + 6;

/// Why bytes are not a valid version-1 layer manifest.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The bytes do not start with [`MAGIC`]: not a layer manifest at all.
    #[error("not a wsfs layer manifest: it starts with \"{}\" instead of \"WSFSLYR\\0\"", .found.escape_ascii())]
    BadMagic {
        /// Up to the first 8 bytes.
        found: Vec<u8>,
    },
    /// Written by another (newer) version of the format.
    #[error(
        "layer manifest version {got} is not supported (this wsfs reads version {expected}): upgrade wsfs"
    )]
    UnsupportedVersion {
        /// The version in the header.
        got: u16,
        /// The version this code reads.
        expected: u16,
    },
    /// The header declares a body over [`MAX_BODY_LEN`].
    #[error("layer manifest body declares {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Declared plain body length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes end before the structure they declare.
    #[error("layer manifest truncated while reading {what}")]
    Truncated {
        /// What was being read, naming the entry when there is one.
        what: String,
    },
    /// Well-formed bytes that break a rule of the format.
    #[error("invalid layer manifest: {0}")]
    Invalid(String),
    /// The body is not one valid zstd frame.
    #[error("layer manifest body is not a valid zstd frame: {0}")]
    Compression(io::Error),
}

type Result<T> = std::result::Result<T, FormatError>;

/// Encodes `m` as a version-1 layer manifest object.
///
/// Deterministic: equal manifests give equal bytes (with the same zstd
/// library). It writes any manifest; [`decode`] accepts only those that pass
/// [`validate`], so writers should validate before publishing a layer.
pub fn encode(m: &Manifest) -> Vec<u8> {
    wrap_body(&encode_body(m))
}

/// Decodes and validates a version-1 layer manifest object.
///
/// `bytes` are untrusted: any input gives `Ok` or `Err`, never a panic. Memory
/// use is proportional to the plain body the frame really decompresses to,
/// which is at most the declared length, itself at most [`MAX_BODY_LEN`].
pub fn decode(bytes: &[u8]) -> Result<Manifest> {
    let (body_len, frame) = parse_header(bytes)?;
    let mut body = Vec::new();
    decompress_body(frame, body_len, &mut body)?;
    let m = parse_body(&body)?;
    validate(&m)?;
    Ok(m)
}

/// Checks the rules of the format that hold for a whole manifest: entry order
/// and paths, tree shape, metadata ranges, chunk geometry, hard-link groups.
///
/// [`decode`] applies it to everything it reads; writers call it to make sure
/// readers will accept what they publish.
pub fn validate(m: &Manifest) -> Result<()> {
    let mut links: HashMap<u32, usize> = HashMap::new();
    for (i, e) in m.entries.iter().enumerate() {
        check_path(i, &e.path)?;
        if e.path.is_empty() && !matches!(e.kind, EntryKind::Dir { .. }) {
            return Err(invalid(format!(
                "the root entry is a {}, not a directory",
                kind_name(&e.kind)
            )));
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| m.entries.get(p)) {
            if path_cmp(&prev.path, &e.path) != std::cmp::Ordering::Less {
                return Err(invalid(format!(
                    "entries are not in order: {} comes after {} (entries must be unique and sorted by path)",
                    show(&e.path),
                    show(&prev.path)
                )));
            }
            // Descendants of a path directly follow it in path order, so the
            // previous entry is the only possible non-directory ancestor.
            if is_within(&e.path, &prev.path) && !matches!(prev.kind, EntryKind::Dir { .. }) {
                return Err(invalid(format!(
                    "entry {} lies below {}, which is a {}, not a directory",
                    show(&e.path),
                    show(&prev.path),
                    kind_name(&prev.kind)
                )));
            }
        }
        check_meta(&e.path, &e.meta)?;
        match &e.kind {
            EntryKind::File(f) => {
                check_file(&e.path, f)?;
                if f.link != 0 {
                    if let Some(&first) = links.get(&f.link) {
                        let other = &m.entries[first];
                        // Metadata may differ (a file touched while a persist
                        // stats its names); readers use the first name's.
                        if other.kind != e.kind {
                            return Err(invalid(format!(
                                "entries {} and {} are in hard-link group {} but have different content",
                                show(&other.path),
                                show(&e.path),
                                f.link
                            )));
                        }
                    } else {
                        links.insert(f.link, i);
                    }
                }
            }
            EntryKind::Symlink { target } => {
                if target.is_empty() || target.contains(&0) {
                    return Err(invalid(format!(
                        "symlink {} has an empty target or one containing a NUL byte",
                        show(&e.path)
                    )));
                }
            }
            EntryKind::Dir { .. } | EntryKind::Whiteout => {}
        }
    }
    Ok(())
}

fn check_path(i: usize, path: &[u8]) -> Result<()> {
    if path.is_empty() {
        return if i == 0 {
            Ok(())
        } else {
            Err(invalid(format!(
                "the root (empty path) must be the first entry, found it at position {i}"
            )))
        };
    }
    let bad = path.contains(&0)
        || path
            .split(|&c| c == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(invalid(format!(
            "path {} is not a clean relative path (no leading or trailing '/', no empty, '.' or '..' components, no NUL byte)",
            show(path)
        )));
    }
    Ok(())
}

fn check_meta(path: &[u8], meta: &Meta) -> Result<()> {
    if meta.mode > 0o7777 {
        return Err(invalid(format!(
            "entry {} has mode {:#o}, over 0o7777",
            show(path),
            meta.mode
        )));
    }
    if meta.mtime_nsec >= 1_000_000_000 {
        return Err(invalid(format!(
            "entry {} has mtime nanoseconds {}, not below 1000000000",
            show(path),
            meta.mtime_nsec
        )));
    }
    let mut prev: Option<&[u8]> = None;
    for (name, _) in &meta.xattrs {
        if name.is_empty() || name.contains(&0) {
            return Err(invalid(format!(
                "entry {} has an extended attribute with an empty name or a NUL byte in its name",
                show(path)
            )));
        }
        if prev.is_some_and(|p| p >= name.as_slice()) {
            return Err(invalid(format!(
                "extended attributes of entry {} are not sorted by name or not unique (at {})",
                show(path),
                show(name)
            )));
        }
        prev = Some(name);
    }
    Ok(())
}

fn check_file(path: &[u8], f: &FileData) -> Result<()> {
    let mut total = Some(0u64);
    for (n, c) in f.chunks.iter().enumerate() {
        let l = &c.loc;
        let fits = u64::from(l.offset_in_frame) + u64::from(c.len) <= u64::from(l.frame_plain_len);
        if c.len == 0
            || l.frame_len == 0
            || l.frame_len > MAX_FRAME_BYTES
            || l.frame_plain_len > MAX_FRAME_BYTES
            || !fits
            || l.frame_offset.checked_add(u64::from(l.frame_len)).is_none()
        {
            return Err(invalid(format!(
                "chunk {n} of file {} has an impossible location (length {}, offset {} in a frame of {} plain bytes, frame of {} bytes at {})",
                show(path),
                c.len,
                l.offset_in_frame,
                l.frame_plain_len,
                l.frame_len,
                l.frame_offset
            )));
        }
        total = total.and_then(|t| t.checked_add(u64::from(c.len)));
    }
    if total != Some(f.size) {
        let held = total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string());
        return Err(invalid(format!(
            "file {} declares {} bytes but its chunks hold {held}",
            show(path),
            f.size
        )));
    }
    Ok(())
}

fn kind_name(kind: &EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir { .. } => "directory",
        EntryKind::File(_) => "file",
        EntryKind::Symlink { .. } => "symlink",
        EntryKind::Whiteout => "whiteout",
    }
}

/// A path for error messages: quoted, invalid UTF-8 and control bytes escaped.
fn show(path: &[u8]) -> String {
    format!("\"{}\"", path.escape_ascii())
}

fn invalid(msg: String) -> FormatError {
    FormatError::Invalid(msg)
}

fn truncated(what: impl Into<String>) -> FormatError {
    FormatError::Truncated { what: what.into() }
}

// ---------------------------------------------------------------- writing

/// The plain (uncompressed) body of `m`.
fn encode_body(m: &Manifest) -> Vec<u8> {
    // Pack table in first-use order: deterministic, and what readers require.
    let mut pack_index: HashMap<PackId, u64> = HashMap::new();
    let mut packs: Vec<PackId> = Vec::new();
    for e in &m.entries {
        if let EntryKind::File(f) = &e.kind {
            for c in &f.chunks {
                pack_index.entry(c.loc.pack).or_insert_with(|| {
                    packs.push(c.loc.pack);
                    (packs.len() - 1) as u64
                });
            }
        }
    }

    let mut w = Vec::new();
    put_varint(&mut w, packs.len() as u64);
    for p in &packs {
        w.extend_from_slice(&p.0);
    }
    put_varint(&mut w, m.entries.len() as u64);
    for e in &m.entries {
        put_bytes(&mut w, &e.path);
        w.push(match &e.kind {
            EntryKind::Dir { opaque: false } => TAG_DIR,
            EntryKind::Dir { opaque: true } => TAG_OPAQUE_DIR,
            EntryKind::File(_) => TAG_FILE,
            EntryKind::Symlink { .. } => TAG_SYMLINK,
            EntryKind::Whiteout => TAG_WHITEOUT,
        });
        let meta = &e.meta;
        put_varint(&mut w, meta.mode.into());
        put_varint(&mut w, meta.uid.into());
        put_varint(&mut w, meta.gid.into());
        put_varint(&mut w, zigzag(meta.mtime_sec));
        put_varint(&mut w, meta.mtime_nsec.into());
        put_varint(&mut w, meta.xattrs.len() as u64);
        for (name, value) in &meta.xattrs {
            put_bytes(&mut w, name);
            put_bytes(&mut w, value);
        }
        match &e.kind {
            EntryKind::File(f) => {
                put_varint(&mut w, f.size);
                put_varint(&mut w, f.link.into());
                put_varint(&mut w, f.chunks.len() as u64);
                for c in &f.chunks {
                    w.extend_from_slice(&c.id.0);
                    put_varint(&mut w, c.len.into());
                    put_varint(&mut w, pack_index[&c.loc.pack]);
                    put_varint(&mut w, c.loc.frame_offset);
                    put_varint(&mut w, c.loc.frame_len.into());
                    put_varint(&mut w, c.loc.frame_plain_len.into());
                    put_varint(&mut w, c.loc.offset_in_frame.into());
                }
            }
            EntryKind::Symlink { target } => put_bytes(&mut w, target),
            EntryKind::Dir { .. } | EntryKind::Whiteout => {}
        }
    }
    w
}

/// Header plus `body` compressed as one zstd frame.
fn wrap_body(body: &[u8]) -> Vec<u8> {
    let frame = zstd::bulk::compress(body, ZSTD_LEVEL)
        .expect("zstd compression into memory at a valid level cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + frame.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&frame);
    out
}

/// LEB128: 7 bits per byte, low bits first, high bit set on all but the last.
fn put_varint(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_varint(w, b.len() as u64);
    w.extend_from_slice(b);
}

/// Maps signed to unsigned so that small magnitudes stay short (0, -1, 1, -2 → 0, 1, 2, 3).
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

// ---------------------------------------------------------------- reading

/// Checks the header; returns the declared body length and the zstd frame.
fn parse_header(bytes: &[u8]) -> Result<(u64, &[u8])> {
    let Some(magic) = bytes.get(..MAGIC.len()) else {
        return Err(if MAGIC.starts_with(bytes) {
            truncated("the header")
        } else {
            FormatError::BadMagic {
                found: bytes.to_vec(),
            }
        });
    };
    if magic != MAGIC {
        return Err(FormatError::BadMagic {
            found: magic.to_vec(),
        });
    }
    // The version comes first: a later version may change everything after it.
    let version = match bytes.get(8..10) {
        Some(&[a, b]) => u16::from_le_bytes([a, b]),
        _ => return Err(truncated("the header")),
    };
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            got: version,
            expected: FORMAT_VERSION,
        });
    }
    let (Some(flags), Some(len), Some(frame)) = (
        bytes.get(10..12),
        bytes.get(12..HEADER_LEN),
        bytes.get(HEADER_LEN..),
    ) else {
        return Err(truncated("the header"));
    };
    let flags = u16::from_le_bytes([flags[0], flags[1]]);
    if flags != 0 {
        return Err(invalid(format!(
            "unknown header flags {flags:#06x} (version 1 defines none)"
        )));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(len);
    let body_len = u64::from_le_bytes(len8);
    if body_len > MAX_BODY_LEN {
        return Err(FormatError::TooLarge {
            len: body_len,
            max: MAX_BODY_LEN,
        });
    }
    Ok((body_len, frame))
}

/// Decompresses the single zstd frame `frame` into `out`, which must come to
/// exactly `body_len` bytes, with nothing after the frame.
///
/// `out` grows only with bytes the frame really produces, so a header that
/// lies about the length costs nothing; the caller passes it in so tests can
/// check its capacity.
fn decompress_body(frame: &[u8], body_len: u64, out: &mut Vec<u8>) -> Result<()> {
    let zstd_err = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            truncated("the compressed body")
        } else {
            FormatError::Compression(e)
        }
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(FormatError::Compression)?
        .single_frame();
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(FormatError::Compression)?;
    // One byte past the declared length is enough to notice a longer body.
    let mut limited = decoder.take(body_len.saturating_add(1));
    limited.read_to_end(out).map_err(zstd_err)?;
    if out.len() as u64 != body_len {
        return Err(invalid(if out.len() as u64 > body_len {
            format!("the body decompresses to more than the {body_len} bytes the header declares")
        } else {
            format!(
                "the body decompresses to {} bytes, the header declares {body_len}",
                out.len()
            )
        }));
    }
    let mut decoder = limited.into_inner();
    decoder.finish_frame().map_err(zstd_err)?;
    let rest = decoder.finish();
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} bytes follow the compressed body",
            rest.len()
        )));
    }
    Ok(())
}

/// Reads the plain body into a manifest. Checks structure (lengths, counts,
/// tags, integer ranges, the pack table); [`validate`] checks the rest.
fn parse_body(body: &[u8]) -> Result<Manifest> {
    let mut r = Reader {
        buf: body,
        pos: 0,
        entry: None,
    };

    let pack_count = r.count("the pack table", MIN_PACK_BYTES)?;
    let mut packs = Vec::with_capacity(pack_count);
    let mut seen = HashSet::with_capacity(pack_count);
    for n in 0..pack_count {
        let id = PackId(r.array32("the pack table")?);
        if !seen.insert(id) {
            return Err(invalid(format!(
                "pack {id} appears twice in the pack table (again at index {n})"
            )));
        }
        packs.push(id);
    }
    // Packs must appear in the order chunks first use them, all of them used:
    // with sorted entries this makes the body canonical.
    let mut packs_used = 0usize;

    let entry_count = r.count("the entry list", MIN_ENTRY_BYTES)?;
    let mut entries = Vec::with_capacity(entry_count);
    for i in 0..entry_count {
        r.entry = Some((i, None));
        let path = r.bytes("the path")?;
        r.entry = Some((i, Some(path)));
        let tag = r.u8("the kind")?;
        let meta = Meta {
            mode: r.varint_u32("the mode")?,
            uid: r.varint_u32("the uid")?,
            gid: r.varint_u32("the gid")?,
            mtime_sec: unzigzag(r.varint("the mtime")?),
            mtime_nsec: r.varint_u32("the mtime")?,
            xattrs: {
                let n = r.count("the extended attributes", MIN_XATTR_BYTES)?;
                let mut xattrs = Vec::with_capacity(n);
                for _ in 0..n {
                    let name = r.bytes("an extended attribute name")?.to_vec();
                    let value = r.bytes("an extended attribute value")?.to_vec();
                    xattrs.push((name, value));
                }
                xattrs
            },
        };
        let kind = match tag {
            TAG_DIR => EntryKind::Dir { opaque: false },
            TAG_OPAQUE_DIR => EntryKind::Dir { opaque: true },
            TAG_WHITEOUT => EntryKind::Whiteout,
            TAG_SYMLINK => EntryKind::Symlink {
                target: r.bytes("the symlink target")?.to_vec(),
            },
            TAG_FILE => {
                let size = r.varint("the file size")?;
                let link = r.varint_u32("the hard-link group")?;
                let n = r.count("the chunk list", MIN_CHUNK_BYTES)?;
                let mut chunks = Vec::with_capacity(n);
                for c in 0..n {
                    let id = ChunkId(r.array32("the chunk list")?);
                    let len = r.varint_u32("the chunk list")?;
                    let pack_ix = r.varint("the chunk list")?;
                    let pack = match usize::try_from(pack_ix).ok().and_then(|p| packs.get(p).map(|id| (p, *id))) {
                        Some((p, id)) if p <= packs_used => {
                            if p == packs_used {
                                packs_used += 1;
                            }
                            id
                        }
                        Some(_) => {
                            return Err(invalid(format!(
                                "chunk {c} of entry {} uses pack {pack_ix} before pack {packs_used}: the pack table is not in first-use order",
                                show(path)
                            )))
                        }
                        None => {
                            return Err(invalid(format!(
                                "chunk {c} of entry {} uses pack {pack_ix}, but the pack table has {} packs",
                                show(path),
                                packs.len()
                            )))
                        }
                    };
                    let loc = ChunkLocation {
                        pack,
                        frame_offset: r.varint("the chunk list")?,
                        frame_len: r.varint_u32("the chunk list")?,
                        frame_plain_len: r.varint_u32("the chunk list")?,
                        offset_in_frame: r.varint_u32("the chunk list")?,
                    };
                    chunks.push(ChunkRef { id, len, loc });
                }
                EntryKind::File(FileData { size, chunks, link })
            }
            other => {
                return Err(invalid(format!(
                    "entry {} has unknown kind tag {other}",
                    show(path)
                )))
            }
        };
        entries.push(Entry {
            path: path.to_vec(),
            meta,
            kind,
        });
    }
    r.entry = None;
    if packs_used != packs.len() {
        return Err(invalid(format!(
            "the pack table lists {} packs but chunks use only {packs_used}",
            packs.len()
        )));
    }
    if r.remaining() != 0 {
        return Err(invalid(format!("{} bytes follow the last entry", r.remaining())));
    }
    Ok(Manifest { entries })
}

/// A bounds-checked cursor over the plain body. Errors name what was being
/// read and, inside an entry, which entry.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The entry being read: its index, and its path once read.
    entry: Option<(usize, Option<&'a [u8]>)>,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn context(&self, what: &str) -> String {
        match self.entry {
            None => what.to_string(),
            Some((i, None)) => format!("{what} of entry {i}"),
            Some((_, Some(path))) => format!("{what} of entry {}", show(path)),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(truncated(self.context(what))),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn array32(&mut self, what: &str) -> Result<[u8; 32]> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32, what)?);
        Ok(a)
    }

    /// A LEB128 varint in its shortest form: readers reject padded encodings
    /// so that a manifest has exactly one body.
    fn varint(&mut self, what: &str) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what)?;
            let bits = u64::from(b & 0x7f);
            // The 10th byte holds bit 63 only.
            if i == 9 && bits > 1 {
                return Err(invalid(format!(
                    "{}: varint does not fit in 64 bits",
                    self.context(what)
                )));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(invalid(format!(
                        "{}: varint is not in its shortest form",
                        self.context(what)
                    )));
                }
                return Ok(v);
            }
        }
        Err(invalid(format!(
            "{}: varint is longer than 10 bytes",
            self.context(what)
        )))
    }

    fn varint_u32(&mut self, what: &str) -> Result<u32> {
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| invalid(format!("{}: {v} does not fit in 32 bits", self.context(what))))
    }

    /// An element count, refused when the remaining bytes cannot hold that
    /// many elements of at least `min_bytes` each: bounds `with_capacity`.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize> {
        let n = self.varint(what)?;
        let max = self.remaining() / min_bytes;
        match usize::try_from(n) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(truncated(format!(
                "{} (it declares {n}, only {} bytes remain)",
                self.context(what),
                self.remaining()
            ))),
        }
    }

    /// A varint length followed by that many bytes.
    fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.varint(what)?;
        match usize::try_from(n) {
            Ok(n) => self.take(n, what),
            Err(_) => Err(truncated(self.context(what))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 1000,
            gid: 1000,
            mtime_sec: 1_700_000_000,
            mtime_nsec: 0,
            xattrs: vec![],
        }
    }

    fn entry(path: &str, meta: Meta, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            meta,
            kind,
        }
    }

    fn chunk(data: &[u8], pack: PackId, frame_offset: u64, offset_in_frame: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId::of(data),
            len: data.len() as u32,
            loc: ChunkLocation {
                pack,
                frame_offset,
                frame_len: 100,
                frame_plain_len: offset_in_frame + data.len() as u32 + 7,
                offset_in_frame,
            },
        }
    }

    /// Every entry kind, two packs, a hard-link group, xattrs, negative mtime.
    fn sample() -> Manifest {
        let p1 = PackId::of(b"pack one");
        let p2 = PackId::of(b"pack two");
        let shared = FileData {
            size: 11,
            chunks: vec![chunk(b"hello ", p1, 0, 0), chunk(b"world", p2, 4096, 16)],
            link: 7,
        };
        let mut xmeta = meta(0o4755);
        xmeta.xattrs = vec![
            (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
            (b"user.note".to_vec(), b"".to_vec()),
        ];
        let mut old = meta(0o600);
        old.mtime_sec = -86_400 * 365;
        old.mtime_nsec = 999_999_999;
        Manifest {
            entries: vec![
                entry("", meta(0o755), EntryKind::Dir { opaque: false }),
                entry("a", xmeta.clone(), EntryKind::File(shared.clone())),
                entry("b", meta(0o644), EntryKind::Whiteout),
                entry("bin", meta(0o1777), EntryKind::Dir { opaque: true }),
                entry(
                    "bin/empty",
                    old,
                    EntryKind::File(FileData {
                        size: 0,
                        chunks: vec![],
                        link: 0,
                    }),
                ),
                entry(
                    "bin/ln",
                    meta(0o777),
                    EntryKind::Symlink {
                        target: b"../a".to_vec(),
                    },
                ),
                entry("bin/x", xmeta, EntryKind::File(shared)),
                entry("c", meta(0), EntryKind::Whiteout),
            ],
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let m = sample();
        validate(&m).unwrap();
        let bytes = encode(&m);
        assert_eq!(&bytes[..8], &MAGIC);
        assert_eq!(decode(&bytes).unwrap(), m);
        assert_eq!(encode(&m), bytes, "encoding is deterministic");
        // Pack ids are stored once, not per chunk.
        let body = encode_body(&m);
        assert_eq!(
            body.windows(32)
                .filter(|w| *w == PackId::of(b"pack one").0)
                .count(),
            1
        );
    }

    #[test]
    fn empty_manifest_round_trips() {
        let m = Manifest::default();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
    }

    #[test]
    fn varint_and_zigzag_edges() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut w = Vec::new();
            put_varint(&mut w, v);
            let mut r = Reader {
                buf: &w,
                pos: 0,
                entry: None,
            };
            assert_eq!(r.varint("x").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        for v in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        let padded = [0x80, 0x00];
        assert!(Reader {
            buf: &padded,
            pos: 0,
            entry: None
        }
        .varint("x")
        .is_err());
        let overlong = [0xff; 10];
        assert!(Reader {
            buf: &overlong,
            pos: 0,
            entry: None
        }
        .varint("x")
        .is_err());
    }

    fn header(version: u16, flags: u16, body_len: u64) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&version.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&body_len.to_le_bytes());
        h
    }

    #[test]
    fn header_errors() {
        let good = encode(&sample());
        assert!(matches!(decode(b""), Err(FormatError::Truncated { .. })));
        assert!(matches!(decode(b"WSFS"), Err(FormatError::Truncated { .. })));
        assert!(matches!(
            decode(b"PK\x03\x04 zip file"),
            Err(FormatError::BadMagic { .. })
        ));
        let mut v7 = good.clone();
        v7[8] = 7;
        let err = decode(&v7).unwrap_err();
        assert!(matches!(
            err,
            FormatError::UnsupportedVersion { got: 7, expected: 1 }
        ));
        assert_eq!(
            err.to_string(),
            "layer manifest version 7 is not supported (this wsfs reads version 1): upgrade wsfs"
        );
        let mut flagged = good.clone();
        flagged[10] = 1;
        assert!(matches!(decode(&flagged), Err(FormatError::Invalid(_))));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(
            matches!(decode(&trailing), Err(FormatError::Invalid(m)) if m.contains("follow the compressed body"))
        );
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&header(1, 0, 0)),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn huge_declared_body_is_rejected_without_allocating_it() {
        let mut bytes = header(1, 0, u64::MAX);
        bytes.extend_from_slice(&zstd::bulk::compress(b"x", 3).unwrap());
        assert!(matches!(
            decode(&bytes),
            Err(FormatError::TooLarge { len: u64::MAX, .. })
        ));

        // At the limit the header is believed, but only real bytes are stored.
        let frame = zstd::bulk::compress(b"tiny", 3).unwrap();
        let mut out = Vec::new();
        let err = decompress_body(&frame, MAX_BODY_LEN, &mut out).unwrap_err();
        assert!(err.to_string().contains("decompresses to 4 bytes"), "{err}");
        assert!(out.capacity() < 1 << 20, "allocated {}", out.capacity());
    }

    #[test]
    fn body_longer_than_declared_stops_at_the_declared_length() {
        // A 64 MiB bomb in a few KiB, declared as 1000 bytes.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let frame = enc.finish().unwrap();
        assert!(frame.len() < 1 << 16);
        let mut out = Vec::new();
        let err = decompress_body(&frame, 1000, &mut out).unwrap_err();
        assert!(err.to_string().contains("more than the 1000 bytes"), "{err}");
        assert!(out.capacity() < 1 << 20, "allocated {}", out.capacity());
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut body = Vec::new();
        put_varint(&mut body, u64::MAX / 2);
        let err = decode(&wrap_body(&body)).unwrap_err();
        assert!(matches!(err, FormatError::Truncated { .. }), "{err}");
        let mut body = Vec::new();
        put_varint(&mut body, 0);
        put_varint(&mut body, 1 << 40);
        let err = decode(&wrap_body(&body)).unwrap_err();
        assert!(err.to_string().contains("the entry list"), "{err}");
    }

    #[test]
    fn truncation_names_the_entry() {
        let body = encode_body(&sample());
        // Cut inside the chunk list of "a": after its path, tag and meta.
        let at = body
            .windows(b"user.note".len())
            .position(|w| w == b"user.note")
            .unwrap()
            + 20;
        let err = decode(&wrap_body(&body[..at])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer manifest truncated while reading the chunk list of entry \"a\" \
             (it declares 2, only 7 bytes remain)"
        );
        // Cut the last byte of the chunk list (frame offset 4096 takes two
        // bytes, so the count check passes): the plain message.
        let at = body
            .windows(32)
            .position(|w| w == ChunkId::of(b"world").0)
            .unwrap()
            + 38;
        let err = decode(&wrap_body(&body[..at])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer manifest truncated while reading the chunk list of entry \"a\""
        );
    }

    fn rejects(m: &Manifest, needle: &str) {
        let err = decode(&encode(m)).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err} does not mention {needle:?}"
        );
        assert!(validate(m).is_err());
    }

    #[test]
    fn semantic_rules() {
        let base = sample();
        let mut m = base.clone();
        m.entries.swap(1, 2);
        rejects(&m, "not in order");
        let mut m = base.clone();
        m.entries[2] = m.entries[1].clone();
        rejects(&m, "not in order");
        for bad in ["/z", "z/", "z//b", "./z", "z/..", "z\0b"] {
            let mut m = base.clone();
            m.entries.push(entry(bad, meta(0), EntryKind::Whiteout));
            rejects(&m, "not a clean relative path");
        }
        let mut m = base.clone();
        m.entries
            .push(entry("", meta(0o755), EntryKind::Dir { opaque: false }));
        rejects(&m, "must be the first entry");
        let mut m = base.clone();
        m.entries[0].kind = EntryKind::Whiteout;
        rejects(&m, "root entry");
        let mut m = base.clone();
        m.entries.insert(8, entry("c/d", meta(0), EntryKind::Whiteout));
        rejects(&m, "lies below \"c\"");
        let mut m = base.clone();
        m.entries[3].meta.mode = 0o10000;
        rejects(&m, "mode");
        let mut m = base.clone();
        m.entries[3].meta.mtime_nsec = 1_000_000_000;
        rejects(&m, "nanoseconds");
        let mut m = base.clone();
        m.entries[3].meta.xattrs = vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])];
        rejects(&m, "not sorted");
        let mut m = base.clone();
        m.entries[3].meta.xattrs = vec![(b"a".to_vec(), vec![]), (b"a".to_vec(), vec![1])];
        rejects(&m, "not sorted");
        let mut m = base.clone();
        if let EntryKind::File(f) = &mut m.entries[1].kind {
            f.size += 1;
        }
        rejects(&m, "declares 12 bytes");
        let mut m = base.clone();
        if let EntryKind::File(f) = &mut m.entries[1].kind {
            f.chunks[1].loc.frame_plain_len = 20;
        }
        rejects(&m, "impossible location");
        let mut m = base.clone();
        if let EntryKind::File(f) = &mut m.entries[6].kind {
            f.chunks[1].loc.frame_offset += 1;
        }
        rejects(&m, "hard-link group 7");
        // Metadata of one hard-link group may differ: readers use the first name's.
        let mut m = base.clone();
        m.entries[6].meta.uid = 0;
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        let mut m = base.clone();
        m.entries[5].kind = EntryKind::Symlink { target: vec![] };
        rejects(&m, "symlink");
    }

    #[test]
    fn structural_rules() {
        let body = encode_body(&sample());
        // Unknown kind tag: the tag of the root follows the pack table, the
        // entry count and the root's empty path.
        let tag_at = 1 + 2 * 32 + 1 + 1;
        assert_eq!(body[tag_at], TAG_DIR);
        let mut b = body.clone();
        b[tag_at] = 9;
        assert!(decode(&wrap_body(&b))
            .unwrap_err()
            .to_string()
            .contains("unknown kind tag 9"));
        // Pack table out of first-use order: the first chunk of "a" names
        // pack 1 while pack 0 is still unused.
        let mut b = body.clone();
        let id_at = b.windows(32).position(|w| w == ChunkId::of(b"hello ").0).unwrap();
        assert_eq!(b[id_at + 32..id_at + 34], [6, 0], "length 6, pack 0");
        b[id_at + 33] = 1;
        let err = decode(&wrap_body(&b)).unwrap_err().to_string();
        assert!(err.contains("first-use order"), "{err}");
        b[id_at + 33] = 2;
        let err = decode(&wrap_body(&b)).unwrap_err().to_string();
        assert!(err.contains("the pack table has 2 packs"), "{err}");
        let (p1, p2) = (body[1..33].to_vec(), body[33..65].to_vec());
        assert_ne!(p1, p2);
        // Duplicate or unused pack.
        let mut b = body.clone();
        b[33..65].copy_from_slice(&p1);
        assert!(decode(&wrap_body(&b))
            .unwrap_err()
            .to_string()
            .contains("appears twice"));
        let m = Manifest {
            entries: vec![entry("", meta(0), EntryKind::Dir { opaque: false })],
        };
        let mut b = vec![1];
        b.extend_from_slice(&[7; 32]);
        b.extend_from_slice(&encode_body(&m)[1..]);
        assert!(decode(&wrap_body(&b))
            .unwrap_err()
            .to_string()
            .contains("use only 0"));
        // Trailing bytes in the body.
        let mut b = body.clone();
        b.push(0);
        assert!(decode(&wrap_body(&b))
            .unwrap_err()
            .to_string()
            .contains("follow the last entry"));
    }

    // ------------------------------------------------------------ docs/format.md

    const FORMAT_MD: &str = include_str!("../../../docs/format.md");

    /// The contents of every fenced block tagged `hex` in `doc`, as bytes:
    /// text after `#` is a comment, tokens ending in `:` are offsets.
    fn hex_blocks(doc: &str) -> Vec<Vec<u8>> {
        let mut blocks = Vec::new();
        let mut current: Option<Vec<u8>> = None;
        for line in doc.lines() {
            let trimmed = line.trim();
            match &mut current {
                None if trimmed == "```hex" => current = Some(Vec::new()),
                None => {}
                Some(_) if trimmed == "```" => blocks.push(current.take().unwrap()),
                Some(bytes) => {
                    let code = line.split('#').next().unwrap();
                    for tok in code.split_whitespace().filter(|t| !t.ends_with(':')) {
                        bytes.push(
                            u8::from_str_radix(tok, 16)
                                .unwrap_or_else(|_| panic!("bad hex {tok:?} in {line:?}")),
                        );
                    }
                }
            }
        }
        blocks
    }

    /// The manifest the example in docs/format.md describes.
    fn doc_example() -> Manifest {
        let pack = PackId([0xaa; 32]);
        let t = 1_700_000_000;
        let m = |mode| Meta {
            mode,
            uid: 1000,
            gid: 1000,
            mtime_sec: t,
            mtime_nsec: 0,
            xattrs: vec![],
        };
        Manifest {
            entries: vec![
                entry("", m(0o755), EntryKind::Dir { opaque: false }),
                entry(
                    "hello.txt",
                    m(0o644),
                    EntryKind::File(FileData {
                        size: 6,
                        chunks: vec![ChunkRef {
                            id: ChunkId::of(b"hello\n"),
                            len: 6,
                            loc: ChunkLocation {
                                pack,
                                frame_offset: 0,
                                frame_len: 15,
                                frame_plain_len: 6,
                                offset_in_frame: 0,
                            },
                        }],
                        link: 0,
                    }),
                ),
                entry(
                    "link",
                    m(0o777),
                    EntryKind::Symlink {
                        target: b"hello.txt".to_vec(),
                    },
                ),
            ],
        }
    }

    #[test]
    fn format_doc_example_is_true() {
        let blocks = hex_blocks(FORMAT_MD);
        assert_eq!(
            blocks.len(),
            2,
            "docs/format.md: expected two ```hex blocks (object, annotated body)"
        );
        let (object, body) = (&blocks[0], &blocks[1]);
        assert_eq!(
            decode(object).unwrap(),
            doc_example(),
            "the example object decodes to the manifest the doc describes"
        );
        assert_eq!(
            body,
            &encode_body(&doc_example()),
            "the annotated body is what encode writes"
        );
        let mut plain = Vec::new();
        decompress_body(&object[HEADER_LEN..], body.len() as u64, &mut plain).unwrap();
        assert_eq!(&plain, body, "the annotated body is the example object's body");
        let id = crate::ids::LayerId::of(object).to_hex();
        assert!(
            FORMAT_MD.contains(&format!("`{id}`")),
            "docs/format.md should give the example's layer id {id}"
        );
    }

    // ------------------------------------------------------------ properties

    fn arb_component() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => prop::sample::select(vec!["a", "b", "a-b", "a.b", "é", "..."]).prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(1u8..=255, 1..6).prop_map(|mut c| {
                c.iter_mut().filter(|b| **b == b'/').for_each(|b| *b = b'_');
                if c == b"." || c == b".." {
                    c.push(b'x');
                }
                c
            }),
        ]
    }

    fn arb_meta() -> impl Strategy<Value = Meta> {
        (
            0u32..=0o7777,
            any::<u32>(),
            any::<u32>(),
            any::<i64>(),
            0u32..1_000_000_000,
            prop::collection::btree_map(
                prop::collection::vec(1u8..=255, 1..8),
                prop::collection::vec(any::<u8>(), 0..8),
                0..3,
            ),
        )
            .prop_map(|(mode, uid, gid, mtime_sec, mtime_nsec, x)| Meta {
                mode,
                uid,
                gid,
                mtime_sec,
                mtime_nsec,
                xattrs: x.into_iter().collect(),
            })
    }

    fn arb_chunk() -> impl Strategy<Value = ChunkRef> {
        (
            any::<[u8; 32]>(),
            1u32..1 << 20,
            0usize..3,
            0u64..u64::MAX / 2,
            1u32..=MAX_FRAME_BYTES,
            0u32..1 << 20,
            prop_oneof![Just(0u32), 0u32..1 << 20],
        )
            .prop_map(
                |(id, len, pack, frame_offset, frame_len, offset_in_frame, slack)| ChunkRef {
                    id: ChunkId(id),
                    len,
                    loc: ChunkLocation {
                        pack: PackId([pack as u8 + 1; 32]),
                        frame_offset,
                        frame_len,
                        frame_plain_len: offset_in_frame + len + slack,
                        offset_in_frame,
                    },
                },
            )
    }

    fn arb_kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            any::<bool>().prop_map(|opaque| EntryKind::Dir { opaque }),
            (
                prop::collection::vec(arb_chunk(), 0..4),
                prop_oneof![3 => Just(0u32), 1 => 1u32..3]
            )
                .prop_map(|(chunks, link)| EntryKind::File(FileData {
                    size: chunks.iter().map(|c| u64::from(c.len)).sum(),
                    chunks,
                    link
                })),
            prop::collection::vec(1u8..=255, 1..12).prop_map(|target| EntryKind::Symlink { target }),
            Just(EntryKind::Whiteout),
        ]
    }

    /// Valid manifests: paths plus their ancestors, sorted; entries with
    /// descendants become directories; hard-link groups share content.
    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        (
            any::<bool>(),
            prop::collection::vec(prop::collection::vec(arb_component(), 1..4), 0..8),
            prop::collection::vec((arb_meta(), arb_kind()), 1..8),
        )
            .prop_map(|(with_root, paths, seeds)| {
                let mut all: Vec<Vec<u8>> = Vec::new();
                if with_root {
                    all.push(Vec::new());
                }
                for comps in paths {
                    for depth in 1..=comps.len() {
                        all.push(comps[..depth].join(&b'/'));
                    }
                }
                all.sort_by(|a, b| path_cmp(a, b));
                all.dedup();
                let mut links: HashMap<u32, EntryKind> = HashMap::new();
                let mut entries: Vec<Entry> = Vec::new();
                for (i, path) in all.iter().enumerate() {
                    let (meta, mut kind) = seeds[i % seeds.len()].clone();
                    let has_children = all.get(i + 1).is_some_and(|next| is_within(next, path));
                    if path.is_empty() || has_children {
                        if !matches!(kind, EntryKind::Dir { .. }) {
                            kind = EntryKind::Dir { opaque: i % 2 == 1 };
                        }
                    } else if let EntryKind::File(f) = &kind {
                        if f.link != 0 {
                            kind = links.entry(f.link).or_insert_with(|| kind.clone()).clone();
                        }
                    }
                    entries.push(Entry {
                        path: path.clone(),
                        meta,
                        kind,
                    });
                }
                Manifest { entries }
            })
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Set(usize, u8),
        Truncate(usize),
        Insert(usize, u8),
        Remove(usize),
    }

    fn arb_mutations() -> impl Strategy<Value = Vec<Mutation>> {
        let m = prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            any::<usize>().prop_map(Mutation::Truncate),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Remove),
        ];
        prop::collection::vec(m, 1..4)
    }

    fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
        for m in ms {
            let n = b.len().max(1);
            match *m {
                Mutation::Flip(i, bit) if !b.is_empty() => b[i % n] ^= 1 << bit,
                Mutation::Set(i, v) if !b.is_empty() => b[i % n] = v,
                Mutation::Truncate(i) => b.truncate(i % n),
                Mutation::Insert(i, v) => b.insert(i % (b.len() + 1), v),
                Mutation::Remove(i) if !b.is_empty() => {
                    b.remove(i % n);
                }
                _ => {}
            }
        }
        b
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn valid_manifests_round_trip(m in arb_manifest()) {
            prop_assert!(validate(&m).is_ok(), "{:?}", validate(&m));
            let bytes = encode(&m);
            prop_assert_eq!(&encode(&m.clone()), &bytes);
            prop_assert_eq!(decode(&bytes).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
            let mut with_header = header(1, 0, bytes.len() as u64);
            with_header.extend_from_slice(&bytes);
            let _ = decode(&with_header);
            let _ = decode(&wrap_body(&bytes));
        }

        #[test]
        fn mutated_objects_never_panic(m in arb_manifest(), ms in arb_mutations()) {
            let _ = decode(&mutate(encode(&m), &ms));
        }

        /// Mutating the plain body reaches the parser (mutated compressed
        /// bytes mostly stop at zstd). Whatever it accepts is canonical: the
        /// encoder gives back exactly the same body.
        #[test]
        fn mutated_bodies_never_panic_and_accepted_ones_are_canonical(m in arb_manifest(), ms in arb_mutations()) {
            let body = mutate(encode_body(&m), &ms);
            if let Ok(decoded) = decode(&wrap_body(&body)) {
                prop_assert_eq!(encode_body(&decoded), body);
            }
        }
    }
}
