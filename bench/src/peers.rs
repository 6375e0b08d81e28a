//! The baselines a user would otherwise run: `tar | zstd` and back.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// `tar -c -C TREE . | zstd -3 -T{threads} > OUT` (`threads` 0: one per core).
pub fn tar_zstd(tree: &Path, out: &Path, threads: u32) -> Result<()> {
    let mut tar = Command::new("tar");
    tar.arg("-c").arg("-C").arg(tree).arg(".");
    let mut zstd = Command::new("zstd");
    zstd.args(["-3", &format!("-T{threads}"), "-q", "-c"]);
    zstd.stdout(File::create(out).with_context(|| format!("cannot create {}", out.display()))?);
    pipe(tar, zstd)
}

/// `zstd -d -c ARCHIVE | tar -x -C DEST`.
pub fn extract(archive: &Path, dest: &Path) -> Result<()> {
    let mut zstd = Command::new("zstd");
    zstd.args(["-d", "-q", "-c"]).arg(archive);
    let mut tar = Command::new("tar");
    tar.arg("-x").arg("-C").arg(dest);
    pipe(zstd, tar)
}

/// Runs `first | second`; both must succeed.
fn pipe(mut first: Command, mut second: Command) -> Result<()> {
    let mut a = first
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {:?}", first.get_program()))?;
    let b = second
        .stdin(a.stdout.take().expect("piped"))
        .spawn()
        .with_context(|| format!("cannot run {:?}", second.get_program()));
    let b_status = match b {
        Ok(mut b) => b.wait()?,
        Err(e) => {
            let _ = a.kill();
            let _ = a.wait();
            return Err(e);
        }
    };
    let a_status = a.wait()?;
    for (command, status) in [(&first, a_status), (&second, b_status)] {
        if !status.success() {
            bail!("{:?} failed: {status}", command.get_program());
        }
    }
    Ok(())
}

/// Flushes and drops the kernel's page, dentry and inode caches (needs root);
/// false when that is not allowed here.
pub fn drop_caches() -> bool {
    sync() && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// `sync`: writes every dirty page back (so one measurement's writeback does
/// not land on the next); false when it failed.
pub fn sync() -> bool {
    Command::new("sync").status().is_ok_and(|s| s.success())
}
