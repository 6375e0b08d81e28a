//! `wsfs generate`: writes the man pages or shell completions that `build.rs`
//! generated from the clap definition, for packaging.

use std::path::Path;

use anyhow::{Context, Result};

use crate::args::Generated;

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

/// Writes the files `what` names into `dir`, printing each path.
pub fn run(what: Generated, dir: &Path) -> Result<()> {
    let files = match what {
        Generated::Man => MAN_PAGES,
        Generated::Completions => COMPLETIONS,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
