//! Generates the man pages (`wsfs.1`, `wsfs-COMMAND.1`) and the bash, zsh
//! and fish completions of `wsfs` from its clap definition (`src/args.rs`)
//! into `OUT_DIR`, and `generated.rs` listing them, which the binary embeds
//! for `wsfs generate` (how packaging finds them).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[path = "src/args.rs"]
#[allow(dead_code)]
mod args;
#[path = "../daemon/src/args.rs"]
#[allow(dead_code)]
mod daemon_args;
#[path = "src/step_user.rs"]
#[allow(dead_code)]
mod step_user;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/args.rs");
    println!("cargo:rerun-if-changed=src/step_user.rs");
    println!("cargo:rerun-if-changed=../daemon/src/args.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    clap_mangen::generate_to(args::Cli::command(), &man)?;
    write_main_page(&man.join("wsfs.1"))?;
    write_daemon_page(&man.join("wsfsd.8"))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut args::Cli::command(), "wsfs", &completions)?;
    }
    let mut listing = String::new();
    for (name, dir) in [("MAN_PAGES", &man), ("COMPLETIONS", &completions)] {
        writeln!(listing, "/// Generated files: name and content.").unwrap();
        writeln!(listing, "pub const {name}: &[(&str, &[u8])] = &[").unwrap();
        for file in sorted_files(dir)? {
            let file_name = file.file_name().unwrap().to_str().expect("ASCII names");
            writeln!(
                listing,
                "    ({file_name:?}, include_bytes!({:?})),",
                file.display().to_string()
            )
            .unwrap();
        }
        writeln!(listing, "];").unwrap();
    }
    std::fs::write(out.join("generated.rs"), listing)
}

/// `wsfs.1` with an ENVIRONMENT section in place of the help's plain-text list.
fn write_main_page(path: &Path) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(args::Cli::command().disable_help_subcommand(true));
    let mut out = Vec::new();
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    page.render_subcommands_section(&mut out)?;
    out.extend_from_slice(b".SH ENVIRONMENT\n");
    for (name, what) in args::ENVIRONMENT {
        let what = what.replace('\\', "\\\\").replace('-', "\\-");
        out.extend_from_slice(format!(".TP\n\\fB{name}\\fR\n{what}\n").as_bytes());
    }
    page.render_version_section(&mut out)?;
    std::fs::write(path, out)
}

/// `wsfsd.8`: the daemon's flags, and where its settings are described.
fn write_daemon_page(path: &Path) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(daemon_args::Args::command()).section("8");
    let mut out = Vec::new();
    page.render(&mut out)?;
    out.extend_from_slice(
        b".SH SEE ALSO\n\\fBwsfs\\fR(1), \\fBwsfs\\-config\\fR(1) (every setting, its value and source); \
          /usr/share/doc/wsfs/config.md, install.md and metrics.md\n",
    );
    std::fs::write(path, out)
}

/// The files of `dir`, by name.
fn sorted_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    files.sort();
    Ok(files)
}
