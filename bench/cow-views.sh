#!/bin/sh
# Small-file writes and warm reads in an isolated view, in one run each:
# wsfs's own copy-on-write FUSE file system (an ordinary user's daemon) vs
# kernel overlayfs over wsfs's FUSE mount (root's daemon) vs the native
# file system the upper directories are on. Prints seconds and the ratios
# to native of each run (the machine may be shared: compare ratios within
# a run). ARCHITECTURE.md, "Views of an ordinary user's daemon", quotes it.
#
#   bench/cow-views.sh [RUNS] [FILES]     (as root; default 3 runs of 10000 files)
#
# WSFS_BIN_DIR: where wsfs, wsfsd and wsfs-holder are (default target/release);
# WSFS_BENCH_USER: the ordinary user (default wsfs-tester).
set -eu
runs=${1:-3}
files=${2:-10000}
here=$(cd "$(dirname "$0")" && pwd)
bin=${WSFS_BIN_DIR:-$here/../target/release}
user=${WSFS_BENCH_USER:-wsfs-tester}
uid=$(id -u "$user")
gid=$(id -g "$user")
dir=$(mktemp -d /var/tmp/wsfs-cow-bench.XXXXXX)
chmod 755 "$dir"
as_user() { setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="$dir/home" "$@"; }
as_root() { env WSFS_CONFIG=none WSFS_STATE_DIR="$dir/root-state" WSFS_REMOTE="file://$dir/remote" "$@"; }
cleanup() {
    as_user "$bin/wsfs" shutdown >/dev/null 2>&1 || true
    as_root "$bin/wsfs" shutdown >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

# The user's laptop persists a small workspace; root's daemon reads the same remote.
mkdir -p "$dir/home/.config/wsfs" "$dir/remote" "$dir/src/base"
echo "remote = \"file://$dir/remote\"" >"$dir/home/.config/wsfs/config.toml"
echo hello >"$dir/src/base/readme"
chown -R "$uid:$gid" "$dir/home" "$dir/remote" "$dir/src"
as_user "$bin/wsfs" persist --workspace bench/cow --root "$dir/src" base >/dev/null

echo "run  files  cow-write  overlay-write  native-write  cow-read  overlay-read  native-read  (seconds; ratios to native)"
for run in $(seq "$runs"); do
    cow="$dir/home/cow-$run" overlay="$dir/overlay-$run" native="$dir/native-$run"
    as_user mkdir "$cow"
    mkdir "$overlay" "$native"
    as_user "$bin/wsfs" attach --workspace bench/cow --view isolated "$cow" >/dev/null
    as_root "$bin/wsfs" attach --workspace bench/cow --view isolated "$overlay" >/dev/null
    cw=$(as_user python3 "$here/cow/workload.py" write "$cow" "$files")
    ow=$(python3 "$here/cow/workload.py" write "$overlay" "$files")
    nw=$(python3 "$here/cow/workload.py" write "$native" "$files")
    cr=$(as_user python3 "$here/cow/workload.py" read "$cow")
    or=$(python3 "$here/cow/workload.py" read "$overlay")
    nr=$(python3 "$here/cow/workload.py" read "$native")
    as_user "$bin/wsfs" detach "$cow" >/dev/null
    as_root "$bin/wsfs" detach "$overlay" >/dev/null
    rm -rf "$native"
    awk -v r="$run" -v f="$files" -v cw="$cw" -v ow="$ow" -v nw="$nw" -v cr="$cr" -v or="$or" -v nr="$nr" 'BEGIN {
        printf "%-4s %-6s %s (%.1fx)  %s (%.1fx)  %s  %s (%.1fx)  %s (%.1fx)  %s\n",
            r, f, cw, cw / nw, ow, ow / nw, nw, cr, cr / nr, or, or / nr, nr }'
done
