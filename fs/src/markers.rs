//! The formats of the small text objects garbage collection, check and
//! prefetch keep in the remote: condemnation markers (`gc/condemned/<key>`),
//! corrupt-pack markers (`corrupt/<pack id>`) and access traces
//! (`traces/<key>`). Anyone with write access to the remote may have written
//! them, so decoding never trusts them: a body that does not parse is `None`
//! (or an empty trace). Kept apart from their modules so that they build
//! without the store (see `fuzz/`).

/// Condemnation markers: `wsfs-condemned 1\ncondemned_at_ms <unix ms>\n`.
pub mod condemned {
    const HEADER: &str = "wsfs-condemned 1";

    /// The body of a marker written at `at_ms`.
    pub fn encode(at_ms: u64) -> String {
        format!("{HEADER}\ncondemned_at_ms {at_ms}\n")
    }

    /// When a marker was written (`None`: not a marker).
    pub fn decode(body: &[u8]) -> Option<u64> {
        let text = std::str::from_utf8(body).ok()?;
        let mut lines = text.lines();
        (lines.next()? == HEADER).then_some(())?;
        lines.next()?.strip_prefix("condemned_at_ms ")?.parse().ok()
    }
}

/// Corrupt-pack markers: when, where and what was found, a line each.
pub mod corrupt {
    const HEADER: &str = "wsfs-corrupt 1";

    /// One line: no line break of `text` survives.
    fn one_line(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The body of a marker: `problem` was found by `host` at `at_ms`.
    pub fn encode(at_ms: u64, host: &str, problem: &str) -> String {
        format!(
            "{HEADER}\nfound_at_ms {at_ms}\nhost {}\nproblem {}\n",
            one_line(host),
            one_line(problem)
        )
    }

    /// The host and the problem a marker names (`None`: not a marker).
    pub fn decode(body: &[u8]) -> Option<(String, String)> {
        let mut lines = std::str::from_utf8(body).ok()?.lines();
        (lines.next()? == HEADER).then_some(())?;
        lines.next()?.strip_prefix("found_at_ms ")?.parse::<u64>().ok()?;
        let host = lines.next()?.strip_prefix("host ")?;
        let problem = lines.next()?.strip_prefix("problem ")?;
        Some((host.to_string(), problem.to_string()))
    }
}

/// Access traces: `wsfs-trace 1\n`, then paths (from the workspace root) in
/// first-read order, each ended by a NUL byte.
pub mod trace {
    const HEADER: &[u8] = b"wsfs-trace 1\n";

    /// The trace of `paths`, in their order.
    pub fn encode<'a>(paths: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for path in paths {
            out.extend_from_slice(path);
            out.push(0);
        }
        out
    }

    /// The paths of a stored trace (empty when it is not one).
    pub fn decode(bytes: &[u8]) -> Vec<&[u8]> {
        match bytes.strip_prefix(HEADER) {
            Some(body) => body.split(|&b| b == 0).filter(|p| !p.is_empty()).collect(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condemnation_markers_round_trip() {
        assert_eq!(condemned::decode(condemned::encode(42).as_bytes()), Some(42));
        assert_eq!(condemned::decode(b"condemned_at_ms 42\n"), None);
    }

    #[test]
    fn corrupt_markers_round_trip_on_one_line_each() {
        let body = corrupt::encode(42, "build 7", "frame at 24\nis corrupt");
        assert_eq!(
            body,
            "wsfs-corrupt 1\nfound_at_ms 42\nhost build 7\nproblem frame at 24 is corrupt\n"
        );
        let (host, problem) = corrupt::decode(body.as_bytes()).unwrap();
        assert_eq!(
            (host.as_str(), problem.as_str()),
            ("build 7", "frame at 24 is corrupt")
        );
        assert_eq!(
            corrupt::decode(b"wsfs-corrupt 2\nfound_at_ms 1\nhost h\nproblem p\n"),
            None
        );
        assert_eq!(corrupt::decode(b"wsfs-corrupt 1\nhost h\nproblem p\n"), None);
    }

    #[test]
    fn traces_round_trip() {
        let stored = trace::encode([&b"b/c"[..], b"a"]);
        assert_eq!(stored, b"wsfs-trace 1\nb/c\0a\0");
        assert_eq!(trace::decode(&stored), [&b"b/c"[..], b"a"]);
        assert!(trace::decode(b"garbage").is_empty());
    }
}
