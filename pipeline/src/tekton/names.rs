//! Names and paths: Tekton's name rules, wsfs workspace names, and the
//! normalization of sub paths, mount paths and persist paths.

use std::collections::HashSet;

use super::error::{DocPath, Fault, Problem};

const DNS_LABEL: &str =
    "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const PARAM_NAME: &str = "use letters, digits, '_', '-' and '.', starting with a letter or '_'";
const ENV_NAME: &str = "use letters, digits, '_', '-' and '.', not starting with a digit";

/// Tekton's names of tasks, steps and workspaces: lowercase DNS labels.
pub(crate) fn check_dns_label(what: &'static str, name: &str, at: &DocPath) -> Result<(), Fault> {
    let bytes = name.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    check(ok, what, name, DNS_LABEL, at)
}

/// Tekton's param names.
pub(crate) fn check_param_name(name: &str, at: &DocPath) -> Result<(), Fault> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    check(ok, "param", name, PARAM_NAME, at)
}

/// Environment variable names (Kubernetes' rule).
pub(crate) fn check_env_name(name: &str, at: &DocPath) -> Result<(), Fault> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    check(ok, "environment variable", name, ENV_NAME, at)
}

fn check(ok: bool, what: &'static str, name: &str, rule: &'static str, at: &DocPath) -> Result<(), Fault> {
    if ok {
        return Ok(());
    }
    Err(Fault::at(
        at,
        Problem::BadName {
            what,
            name: name.to_string(),
            rule,
        },
    ))
}

/// Refuses a name given twice among `items` (name, place), at the second.
pub(crate) fn check_unique<'a>(
    what: &'static str,
    items: impl IntoIterator<Item = (&'a str, DocPath)>,
) -> Result<(), Fault> {
    let mut seen = HashSet::new();
    for (name, at) in items {
        if !seen.insert(name) {
            let name = name.to_string();
            return Err(Fault::at(&at, Problem::Duplicate { what, name }));
        }
    }
    Ok(())
}

/// Whether `text` is a wsfs workspace name `NS/NAME`: each part 1-128
/// letters, digits, '.', '_', '-', not starting with '.' or '-'.
pub(crate) fn is_wsfs_workspace(text: &str) -> bool {
    let part = |p: &str| {
        (1..=128).contains(&p.len())
            && !p.starts_with(['.', '-'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    matches!(text.split_once('/'), Some((ns, name)) if part(ns) && part(name))
}

/// The components of a path, without empty ones and `.`; `..` is refused.
fn components(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("{text:?} holds '..': give a path without it")),
            p if p.contains('\0') => return Err(format!("{text:?} holds a NUL byte")),
            p => parts.push(p),
        }
    }
    Ok(parts)
}

/// A subPath, normalized to `a/b` (no leading `/`; empty: the root).
pub(crate) fn sub_path(text: &str) -> Result<String, String> {
    Ok(components(text)?.join("/"))
}

/// Two normalized sub paths, one under the other.
pub(crate) fn join_sub_paths(outer: &str, inner: &str) -> String {
    match (outer.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (_, true) => outer.to_string(),
        _ => format!("{outer}/{inner}"),
    }
}

/// An absolute path other than `/`, normalized to `/a/b`.
pub(crate) fn mount_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} is not absolute: give a path starting with '/'"));
    }
    let parts = components(text)?;
    if parts.is_empty() {
        return Err("\"/\" is the root of the host: give a directory under it".to_string());
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A persist path: relative to the working directory, normalized (`.` for
/// the directory itself); absolute paths, `..` and globs are refused.
pub(crate) fn persist_path(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        return Err(format!(
            "{text:?} is absolute: persist paths are relative to the step's workingDir"
        ));
    }
    if text.contains(['*', '?', '[']) {
        return Err(format!("{text:?}: globs are not expanded: list the paths"));
    }
    if text.is_empty() {
        return Err("an empty path: give a path relative to the step's workingDir".to_string());
    }
    let parts = components(text)?;
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_names() {
        let at = DocPath::root();
        for good in ["a", "build-1", "0x"] {
            check_dns_label("task", good, &at).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(check_dns_label("task", bad, &at).is_err(), "{bad}");
        }
        check_param_name("_a.b-c", &at).unwrap();
        assert!(check_param_name("1a", &at).is_err());
        assert!(is_wsfs_workspace("run-1/src.d"));
        for bad in ["a", "a/b/c", "-a/b", "a/.b", "/b", "a/"] {
            assert!(!is_wsfs_workspace(bad), "{bad}");
        }
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(sub_path("/a//./b/").unwrap(), "a/b");
        assert_eq!(sub_path("").unwrap(), "");
        assert!(sub_path("a/../b").is_err());
        assert_eq!(join_sub_paths("a", "b/c"), "a/b/c");
        assert_eq!(join_sub_paths("", "b"), "b");
        assert_eq!(mount_path("/w//x/").unwrap(), "/w/x");
        assert!(mount_path("w").is_err());
        assert!(mount_path("/").is_err());
        assert_eq!(persist_path("./out/").unwrap(), "out");
        assert_eq!(persist_path(".").unwrap(), ".");
        assert!(persist_path("out/*.o")
            .unwrap_err()
            .contains("globs are not expanded"));
        assert!(persist_path("/abs").is_err());
        assert!(persist_path("../x").is_err());
    }
}
