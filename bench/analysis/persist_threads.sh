#!/bin/bash
# persist_threads.sh ROUNDS TREE...: persist and an unchanged re-persist vs `tar -c | zstd -3 -T1`,
# interleaved, ROUNDS rounds. Per round and tree: with the binaries in $BASE (when set: an
# older build, default threads), then `wsfs persist --threads 1`, then `--threads 2` (those
# from $BIN, default target/release). Each on a fresh state dir and `file://` remote, after
# its own tar | zstd of the same tree. Prints wall ms of each and CPU ms (tar + zstd; the
# daemon's user + sys during each persist), and `uptime` per round.
set -e
BIN=${BIN:-target/release}
ROUNDS=$1; shift
TCK=$(getconf CLK_TCK)
ms() { date +%s%N | cut -c1-13; }
one() { # one BIN TREE LABEL [persist args]
  local B=$1 TREE=$2 LABEL=$3; shift 3
  local D; D=$(mktemp -d /var/tmp/persist-threads.XXXX)
  export WSFS_STATE_DIR=$D/state WSFS_REMOTE=file://$D/remote WSFS_DAEMON=$B/wsfsd WSFS_CONFIG=none
  unset WSFS_SOCKET
  "$B/wsfs" status >/dev/null
  local pid; pid=$(pgrep -x wsfsd | while read -r p; do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "WSFS_STATE_DIR=$D/state" && echo $p; done | head -1)
  cpu() { awk -v t=$TCK '{print int(($14+$15)*1000/t)}' /proc/$pid/stat; }
  local t0 t1 t2 t3 t4 c0 c1 c2
  t0=$(ms); /usr/bin/time -f "%U %S" -o $D/tar.cpu bash -c "tar -c -C '$TREE' . | zstd -3 -T1 -q -c > $D/t.tar.zst"; t1=$(ms)
  c0=$(cpu); t2=$(ms); "$B/wsfs" persist --workspace p/a --root "$TREE" . "$@" >/dev/null
  t3=$(ms); c1=$(cpu); "$B/wsfs" persist --workspace p/b --root "$TREE" . "$@" >/dev/null; t4=$(ms); c2=$(cpu)
  echo "$LABEL tar1=$((t1-t0)) cpu_tar1=$(awk '{print int(($1+$2)*1000)}' $D/tar.cpu)" \
    "persist=$((t3-t2)) again=$((t4-t3)) cpu_persist=$((c1-c0)) cpu_again=$((c2-c1))"
  "$B/wsfs" shutdown >/dev/null
  rm -rf "$D"
}
for r in $(seq "$ROUNDS"); do
  echo "round $r $(uptime)"
  for tree in "$@"; do
    n=$(basename "$tree")
    [ -n "$BASE" ] && one "$BASE" "$tree" "$n base"
    one "$BIN" "$tree" "$n t1" --threads 1
    one "$BIN" "$tree" "$n t2" --threads 2
  done
done
