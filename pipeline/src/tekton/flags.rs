//! `wsfs run`'s `--workspace NAME=DIR|NAME=NS/WS` and `--param NAME=VALUE`.

use std::path::{Path, PathBuf};

use super::names::is_wsfs_workspace;
use crate::plan::Source;

const WORKSPACE_RULE: &str =
    "a wsfs workspace NS/NAME (each part 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-')";

/// `--workspace NAME=VALUE`: VALUE starting with `/`, `./`, `../`, `~/`
/// (or `.`, `..`, `~`) is a directory, resolved against `cwd` and
/// canonicalized; otherwise a wsfs workspace `NS/NAME`. A value that could
/// be both (a directory `./NS/NAME` exists) is refused, naming both.
pub fn parse_workspace_flag(text: &str, cwd: &Path) -> Result<(String, Source), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err("expected NAME=DIR or NAME=NS/WS".to_string());
    };
    if name.is_empty() {
        return Err("the workspace name is empty: give NAME=DIR or NAME=NS/WS".to_string());
    }
    let name = name.to_string();
    let dir_like =
        ["/", "./", "../", "~/"].iter().any(|p| value.starts_with(p)) || matches!(value, "." | ".." | "~");
    if dir_like {
        return directory(value, cwd).map(|dir| (name, Source::Directory(dir)));
    }
    let relative = cwd.join(value);
    if is_wsfs_workspace(value) {
        if relative.is_dir() {
            return Err(format!(
                "{value:?} is ambiguous: it names the wsfs workspace {value} and the directory ./{value}: write \
                 ./{value} for the directory; to bind the workspace, run wsfs from a directory without ./{value}"
            ));
        }
        return Ok((name, Source::Workspace(value.to_string())));
    }
    let hint = if relative.is_dir() {
        format!("; for the directory, write ./{value}")
    } else {
        String::new()
    };
    Err(format!(
        "{value:?} is neither a directory (give a path starting with /, ./, ../ or ~/) nor {WORKSPACE_RULE}{hint}"
    ))
}

/// The directory `value` (`~` is `$HOME`, relative paths are under `cwd`), canonical.
fn directory(value: &str, cwd: &Path) -> Result<PathBuf, String> {
    let path = match value.strip_prefix('~') {
        Some(rest) => {
            let home = std::env::var_os("HOME").ok_or("$HOME is not set: give the directory's full path")?;
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        None => cwd.join(value),
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {
            std::fs::canonicalize(&path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))
        }
        Ok(_) => Err(format!("{} is not a directory: give a directory", path.display())),
        Err(e) => Err(format!("directory {}: {e}", path.display())),
    }
}

/// `--param NAME=VALUE` (VALUE may be empty, and may hold `=`).
pub fn parse_param_flag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("", _)) => Err("the param name is empty: give NAME=VALUE".to_string()),
        Some((name, value)) => Ok((name.to_string(), value.to_string())),
        None => Err("expected NAME=VALUE".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_directories_from_workspaces() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        std::fs::create_dir_all(cwd.join("repo")).unwrap();
        std::fs::create_dir_all(cwd.join("run-1/src")).unwrap();
        std::fs::write(cwd.join("file"), b"").unwrap();
        let canonical = std::fs::canonicalize(cwd.join("repo")).unwrap();
        assert_eq!(
            parse_workspace_flag("src=./repo", cwd).unwrap(),
            ("src".into(), Source::Directory(canonical.clone()))
        );
        assert_eq!(
            parse_workspace_flag(&format!("src={}", canonical.display()), cwd)
                .unwrap()
                .1,
            Source::Directory(canonical)
        );
        assert_eq!(
            parse_workspace_flag("src=.", cwd).unwrap().1,
            Source::Directory(std::fs::canonicalize(cwd).unwrap())
        );
        assert_eq!(
            parse_workspace_flag("src=run-42/src", cwd).unwrap().1,
            Source::Workspace("run-42/src".into())
        );
        let ambiguous = parse_workspace_flag("src=run-1/src", cwd).unwrap_err();
        assert!(
            ambiguous.contains("write ./run-1/src for the directory"),
            "{ambiguous}"
        );
        let bare = parse_workspace_flag("src=repo", cwd).unwrap_err();
        assert!(bare.ends_with("for the directory, write ./repo"), "{bare}");
        assert!(parse_workspace_flag("src=./missing", cwd)
            .unwrap_err()
            .contains("missing"));
        assert!(parse_workspace_flag("src=./file", cwd)
            .unwrap_err()
            .contains("is not a directory"));
        assert!(parse_workspace_flag("src", cwd).is_err());
        assert!(parse_workspace_flag("=./repo", cwd).is_err());
    }

    #[test]
    fn parses_params() {
        assert_eq!(parse_param_flag("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_param_flag("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_param_flag("a").is_err());
        assert!(parse_param_flag("=a").is_err());
    }
}
