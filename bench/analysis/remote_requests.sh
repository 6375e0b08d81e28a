#!/usr/bin/env bash
# Remote requests by kind (PUT, GET, HEAD, LIST, DELETE) of each operation a
# pipeline makes, the counts `wsfs status` does not show: read from each
# daemon's Prometheus endpoint (`wsfs_remote_requests_total{op}` and
# `wsfs_remote_bytes_total{op}`, docs/metrics.md) on a file:// remote. Each
# host is a state dir of its own (own daemon, cold cache). docs/scale.md
# quotes the output. Root (attach mounts); the release binaries in
# $CARGO_TARGET_DIR (default /var/cache/wsfs/target). Takes a few seconds.
#
#   bench/analysis/remote_requests.sh [TREE]   # default: the bench's corpus tree
set -euo pipefail
TREE=${1:-/var/tmp/wsfs-bench-corpus/files-25000}
BIN=${CARGO_TARGET_DIR:-/var/cache/wsfs/target}/release
WORK=$(mktemp -d /var/tmp/wsfs-remote-requests-XXXXXX)
export PATH=$BIN:$PATH WSFS_CONFIG=none WSFS_REMOTE=file://$WORK/remote
PORT=19460
hosts=()
cleanup() {
    for h in "${hosts[@]}"; do WSFS_STATE_DIR=$WORK/$h wsfs shutdown >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# `on HOST CMD...`: runs a wsfs command against HOST's daemon (started on first use).
on() {
    local h=$1; shift
    if [[ ! " ${hosts[*]} " =~ " $h " ]]; then
        hosts+=("$h")
        eval "port_$h=$((PORT + ${#hosts[@]}))"
    fi
    local port_var=port_$h
    WSFS_STATE_DIR=$WORK/$h WSFS_METRICS_ADDR=127.0.0.1:${!port_var} "$@"
}
# `counts HOST`: its requests by kind since the previous `counts HOST`, and
# the bytes they moved.
counts() {
    local port_var=port_$1 was=$WORK/$1.counts
    [[ -f $was ]] || echo "none{op=\"none\"} 0" >"$was"
    curl -s "http://127.0.0.1:${!port_var}/metrics" | grep -E '^wsfs_remote_(requests|bytes)_total' >"$was.now"
    awk -F'[{}"= ]+' 'FNR == NR { was[$1 $3] = $NF; next }
        { d = $NF - was[$1 $3]; if ($1 ~ /requests/) n[$3] = d; else b[$3] = d }
        END { printf "PUT %d GET %d HEAD %d LIST %d DELETE %d; bytes up %d down %d\n",
              n["put"], n["get"], n["head"], n["list"], n["delete"], b["put"], b["get"] }' "$was" "$was.now"
    mv "$was.now" "$was"
}

echo "tree $TREE: $(find "$TREE" -type f | wc -l) files"
on producer wsfs persist -w scale/ws --root "$TREE" . >/dev/null
echo "persist, fresh host:                 $(counts producer)"
on producer wsfs persist -w scale/ws --root "$TREE" . >/dev/null
echo "re-persist, unchanged tree:          $(counts producer)"
small=$(find "$TREE" -mindepth 1 -maxdepth 1 -type d | sort | sed -n 1p)
on producer wsfs persist -w scale/small --root "$small" --expire-after 1s . >/dev/null
echo "persist --expire-after of a subtree: $(counts producer)"

mkdir -p "$WORK/mnt-a" "$WORK/mnt-b"
on a wsfs attach -w scale/ws "$WORK/mnt-a" >/dev/null
echo "attach, cold host (2 records):       $(counts a)"
head -c 1 "$(find "$WORK/mnt-a" -type f | sort | sed -n 1p)" >/dev/null
echo "first byte of one file:              $(counts a)"
find "$WORK/mnt-a" -type f -exec cat {} + >/dev/null
echo "every other file read:               $(counts a)"
on a wsfs detach "$WORK/mnt-a" >/dev/null
echo "detach:                              $(counts a)"

on b wsfs attach --prefetch -w scale/ws "$WORK/mnt-b" >/dev/null
until on b wsfs status --json | grep -q '"state": *"done"'; do sleep 0.5; done
echo "attach --prefetch, prefetch done:    $(counts b)"
on b wsfs detach "$WORK/mnt-b" >/dev/null
echo "detach:                              $(counts b)"

sleep 16 # older than gc's shortest grace period
on producer wsfs rm --expired >/dev/null
echo "rm --expired (one expired):          $(counts producer)"
on producer wsfs gc --grace 15s >/dev/null
echo "gc (condemns what rm left):          $(counts producer)"
sleep 16
on producer wsfs gc --grace 15s >/dev/null
echo "gc again (deletes it):               $(counts producer)"
