//! The parsers of setting values, shared by the environment, the config
//! file and flags.

use std::time::Duration;

/// How the daemon writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}")),
        }
    }
}

/// Parses `1048576`, `512K`, `64M`, `10G`, `1T` (binary multiples; `KiB`, `MB`... accepted too).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a size"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(format!("unknown unit {other:?}")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses whole seconds: `30` or `30s`.
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .trim_end_matches('s')
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a number of seconds"))
}

/// A count of threads, 1 to 1024.
pub(crate) fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(format!("{text:?} is not a thread count")),
    }
}

/// The id of group `text` (a name or a number).
pub(crate) fn group_id(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse() {
        return Ok(gid);
    }
    let no_such = || format!("no group {text:?}");
    let name = std::ffi::CString::new(text).map_err(|_| no_such())?;
    // SAFETY: a plain C struct, all zeroes valid; getgrnam_r fills it.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives its use.
    let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut group, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return Err(no_such());
    }
    Ok(group.gr_gid)
}

/// A URL with its user info and query (where credentials could hide)
/// replaced by `***`: `s3://KEY:SECRET@host/b?token=x` → `s3://***@host/b?***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest
        .find(['/', '?', '#'])
        .map_or((rest, ""), |i| rest.split_at(i));
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_bytes("4M").unwrap(), 4 << 20);
        assert_eq!(parse_bytes("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5X").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_seconds("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_seconds("5m").is_err());
    }

    #[test]
    fn groups_by_name_or_id() {
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-here").is_err());
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(redact_url("s3://KEY:SECRET@bucket/p"), "s3://***@bucket/p");
        assert_eq!(redact_url("https://h/b?sig=abc#x"), "https://h/b?***");
        assert_eq!(
            redact_url("file:///var/lib/wsfs/remote"),
            "file:///var/lib/wsfs/remote"
        );
        assert_eq!(redact_url("memory:"), "memory:");
    }
}
