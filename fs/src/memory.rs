//! How much memory this process may still fill: what the kernel reports
//! available, lowered to what the limits of its cgroup leave (a daemon in a
//! container whose `memory.max` is far below the host's memory).

use std::path::Path;

/// Bytes this process may still fill: `MemAvailable`, but at most the room
/// left under `memory.max` in its cgroup and every ancestor (cgroup v2);
/// 0 when `/proc/meminfo` cannot be read.
pub fn available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let host = mem_available(&meminfo).unwrap_or(0);
    match cgroup_path(&cgroup) {
        Some(path) => host.min(cgroup_room(Path::new("/sys/fs/cgroup"), path)),
        None => host,
    }
}

/// `MemAvailable` of a `/proc/meminfo`, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The cgroup v2 path of a `/proc/self/cgroup` (its `0::/path` line).
fn cgroup_path(cgroup: &str) -> Option<&str> {
    cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The least room (`memory.max` − `memory.current`) of the cgroup at
/// `path` under `root` and its ancestors; `u64::MAX` when none has a limit.
fn cgroup_room(root: &Path, path: &str) -> u64 {
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let mut room = u64::MAX;
    let mut dir = Some(Path::new(path.trim_start_matches('/')));
    while let Some(rel) = dir {
        let at = root.join(rel);
        let max = read(&at, "memory.max").and_then(|m| m.trim().parse::<u64>().ok());
        if let Some(max) = max {
            let current = read(&at, "memory.current")
                .and_then(|c| c.trim().parse::<u64>().ok())
                .unwrap_or(0);
            room = room.min(max.saturating_sub(current));
        }
        dir = rel.parent();
    }
    room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_cgroup_lines_are_parsed() {
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(mem_available(meminfo), Some(2000 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        let cgroup = "1:name=systemd:/x\n0::/kubepods/pod1/ctr\n";
        assert_eq!(cgroup_path(cgroup), Some("/kubepods/pod1/ctr"));
        assert_eq!(cgroup_path("1:cpu:/x\n"), None);
    }

    #[test]
    fn the_tightest_ancestor_limit_wins() {
        let root = std::env::temp_dir().join(format!("wsfs-cgroup-{}", std::process::id()));
        let write = |rel: &str, file: &str, value: &str| {
            let dir = root.join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file), value).unwrap();
        };
        write("", "memory.max", "max\n");
        write("pods", "memory.max", "1000\n");
        write("pods", "memory.current", "900\n");
        write("pods/ctr", "memory.max", "5000\n");
        write("pods/ctr", "memory.current", "10\n");
        assert_eq!(cgroup_room(&root, "/pods/ctr"), 100);
        // No limit anywhere: no bound.
        assert_eq!(cgroup_room(&root, "/"), u64::MAX);
        // Over its limit: no room, not an underflow.
        write("pods", "memory.current", "2000\n");
        assert_eq!(cgroup_room(&root, "/pods/ctr"), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
