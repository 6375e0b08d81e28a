//! The build id of the wsfs binaries (`wsfs`, `wsfsd`, `wsfs-holder`): a
//! hash of the sources they are built from (see `build.rs`), shown by their
//! `--version`. The end-to-end tests depend on this crate too, and refuse to
//! run binaries whose `--version` shows another id: binaries built from other
//! sources than the tests.

/// The hash of the sources (16 hex digits).
pub const BUILD_ID: &str = env!("WSFS_BUILD_ID");

/// `--version` of the binaries: the package version, then the build id.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (build ", env!("WSFS_BUILD_ID"), ")");

/// The build id a `--version` line shows, if any.
pub fn of_version(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("(build ")?;
    rest.split_once(')').map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_shows_the_build_id() {
        assert_eq!(BUILD_ID.len(), 16);
        assert_eq!(of_version(&format!("wsfs {VERSION}")), Some(BUILD_ID));
        assert_eq!(of_version("wsfs 0.1.0"), None);
    }
}
