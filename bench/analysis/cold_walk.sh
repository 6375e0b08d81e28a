#!/usr/bin/env bash
# Where a cold walk's time goes: one reader walking a workspace attached from a
# file:// remote, with the frames already in the host's cache (so no fetch),
# the kernel's caches cold (a fresh mount); counted FUSE requests by opcode
# (perf, fuse:fuse_request_send); the same walk with the reader and the daemon
# pinned to one CPU (no cross-CPU wake-ups); and after `attach --prefetch`
# finished (files pushed into the page cache). Root; builds with the release
# binaries in $CARGO_TARGET_DIR (default /var/cache/wsfs/target).
#
#   bench/analysis/cold_walk.sh [TREE]   # default: the bench's corpus tree
set -euo pipefail
TREE=${1:-/var/tmp/wsfs-bench-corpus/files-25000}
BIN=${CARGO_TARGET_DIR:-/var/cache/wsfs/target}/release
WORK=$(mktemp -d /var/tmp/wsfs-cold-walk-XXXXXX)
export PATH=$BIN:$PATH WSFS_REMOTE=file://$WORK/remote WSFS_STATE_DIR=$WORK/host
MNT=$WORK/mnt
mkdir -p "$WORK/remote" "$MNT"
cleanup() { wsfs shutdown >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
rustc -O -o "$WORK/walk" "$(dirname "$0")/walk.rs"
walk() { "$WORK/walk" "$@"; }

(cd "$(dirname "$TREE")" && wsfs persist --workspace bench/walk "$(basename "$TREE")" >/dev/null)
echo "native, page cache warm: $(walk "$TREE")"
attach() { wsfs attach --workspace bench/walk "$MNT" "$@" >/dev/null; }
detach() { wsfs detach "$MNT" >/dev/null; }

attach; echo "first walk (frames fetched from file://): $(walk "$MNT")"; detach
attach
if command -v perf >/dev/null; then
  perf record -q -e fuse:fuse_request_send -a -o "$WORK/perf.data" -- "$WORK/walk" "$MNT" 2>/dev/null \
    | sed 's/^/frames cached, fresh mount: /'
  perf script -i "$WORK/perf.data" 2>/dev/null | grep -o '(FUSE_[A-Z]*)' | sort | uniq -c | sed 's/^/  requests: /'
else
  echo "frames cached, fresh mount: $(walk "$MNT")"
fi
detach; wsfs shutdown >/dev/null
taskset -c 0 wsfs attach --workspace bench/walk "$MNT" >/dev/null
echo "the same, reader and daemon pinned to CPU 0: $(taskset -c 0 "$WORK/walk" "$MNT")"
detach; wsfs shutdown >/dev/null
taskset -c 1 wsfs attach --workspace bench/walk "$MNT" >/dev/null
echo "the same, reader on CPU 0, daemon on CPU 1: $(taskset -c 0 "$WORK/walk" "$MNT")"
detach; wsfs shutdown >/dev/null

attach --prefetch
until wsfs status --json | grep -q '"state": *"done"'; do sleep 0.1; done
echo "after attach --prefetch is done: $(walk "$MNT")"
detach
rm -rf "$WORK/host"
start=$(date +%s%N)
attach --prefetch
echo "attach --prefetch (empty cache), walking at once: $(walk "$MNT") ($(( ($(date +%s%N) - start) / 1000000 )) ms with the attach)"
