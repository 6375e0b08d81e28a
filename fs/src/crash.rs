//! Fault points: named steps of the writes (persist, `detach --persist`,
//! `rm`, gc and repack) where crash tests kill the process, to show that
//! every step leaves the store consistent (`docs/format.md`, "Durability and crash points").
//!
//! Without the `crash-points` feature, [`point`] and [`arm`] do nothing and
//! compile away. With it, once [`arm`]ed with the daemon's state dir, a point
//! reached while `<state dir>/crash-at` names it removes that file and kills
//! the process with SIGKILL: one crash per file written, so the daemon the
//! holder starts next does not die again. A point named by
//! `<state dir>/pause-at` writes `<state dir>/paused-at` (the name) and
//! waits until `pause-at` is removed, so a test can act while a write is at a
//! known step.

use std::path::Path;

#[cfg(feature = "crash-points")]
mod armed {
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;
    use std::time::Duration;

    static STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

    pub fn arm(state_dir: &Path) {
        let _ = STATE_DIR.set(state_dir.to_path_buf());
    }

    /// Whether the control file `dir/file` names `name`.
    fn names(dir: &Path, file: &str, name: &str) -> bool {
        std::fs::read_to_string(dir.join(file)).is_ok_and(|text| text.trim() == name)
    }

    pub fn point(name: &str) {
        let Some(dir) = STATE_DIR.get() else { return };
        if names(dir, "crash-at", name) && std::fs::remove_file(dir.join("crash-at")).is_ok() {
            tracing::warn!(point = name, "crash point: SIGKILL");
            // SAFETY: raising a signal has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        if names(dir, "pause-at", name) {
            tracing::warn!(point = name, "crash point: paused until pause-at is removed");
            let _ = std::fs::write(dir.join("paused-at"), name);
            while names(dir, "pause-at", name) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_file(dir.join("paused-at"));
            tracing::warn!(point = name, "crash point: resumed");
        }
    }
}

/// Lets the fault points of this process obey the control files of `state_dir`.
#[inline(always)]
pub fn arm(state_dir: &Path) {
    #[cfg(feature = "crash-points")]
    armed::arm(state_dir);
    #[cfg(not(feature = "crash-points"))]
    let _ = state_dir;
}

/// A fault point: the write it sits in has done everything before it and
/// nothing after it (the points: `docs/format.md`, "Durability and crash points").
#[inline(always)]
pub fn point(name: &'static str) {
    #[cfg(feature = "crash-points")]
    armed::point(name);
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}
