#!/usr/bin/env bash
# How many GETs a cold walk makes, by the order it reads the tree in: `find`
# order (depth-first, each directory in listing order), `os.walk` order (a
# directory's files, then its subdirectories) and a directory stack (last
# subdirectory first). Each walk attaches the workspace on a fresh host (empty
# caches) from a file:// remote, reads every file, and prints the host's
# remote_get_requests. Root; uses the release binaries in $CARGO_TARGET_DIR
# (default /var/cache/wsfs/target).
#
#   bench/analysis/walk_orders.sh [TREE]   # default: the bench's corpus tree
set -euo pipefail
TREE=${1:-/var/tmp/wsfs-bench-corpus/files-25000}
BIN=${CARGO_TARGET_DIR:-/var/cache/wsfs/target}/release
WORK=$(mktemp -d /var/tmp/wsfs-walk-orders-XXXXXX)
export PATH=$BIN:$PATH WSFS_REMOTE=file://$WORK/remote
MNT=$WORK/mnt
mkdir -p "$WORK/remote" "$MNT"
cleanup() { WSFS_STATE_DIR=$WORK/host wsfs shutdown >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

(cd "$(dirname "$TREE")" && WSFS_STATE_DIR=$WORK/persist wsfs persist --workspace bench/walk "$(basename "$TREE")" >/dev/null)
WSFS_STATE_DIR=$WORK/persist wsfs shutdown >/dev/null
for order in find os.walk stack; do
    export WSFS_STATE_DIR=$WORK/host
    rm -rf "$WSFS_STATE_DIR"
    wsfs attach --workspace bench/walk "$MNT" >/dev/null
    python3 - "$MNT" "$order" <<'PY'
import os, sys
root, order = sys.argv[1], sys.argv[2]
def read(path):
    with open(path, 'rb') as f:
        while f.read(1 << 20):
            pass
if order == 'stack':
    dirs = [root]
    while dirs:
        for e in os.scandir(dirs.pop()):
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.path)
            elif e.is_file(follow_symlinks=False):
                read(e.path)
elif order == 'os.walk':
    for d, _, files in os.walk(root):
        for name in files:
            if os.path.isfile(os.path.join(d, name)) and not os.path.islink(os.path.join(d, name)):
                read(os.path.join(d, name))
else:
    def walk(d):
        for e in os.scandir(d):
            if e.is_dir(follow_symlinks=False):
                walk(e.path)
            elif e.is_file(follow_symlinks=False):
                read(e.path)
    walk(root)
PY
    gets=$(wsfs status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["remote_get_requests"])')
    echo "$order: $gets GETs"
    wsfs detach "$MNT" >/dev/null
    wsfs shutdown >/dev/null
done
