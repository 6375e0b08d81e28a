#!/usr/bin/env bash
# One /dev/fuse descriptor per connection (what the holder needs: see
# ARCHITECTURE.md, "Mounts outlive the daemon") against one cloned descriptor
# per FUSE thread (fuser's clone_fd, what wsfsd used before): the bench's main
# phase with each, alternating, ROUNDS times. Builds the clone_fd variant of
# wsfsd from this checkout into a scratch dir (the checkout is left as it was).
# Root; uses $CARGO_TARGET_DIR (default /var/cache/wsfs/target).
#
#   bench/analysis/clone_fd_ab.sh [ROUNDS]   # default 2; prints each run's table
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/wsfs/target}
BIN=$CARGO_TARGET_DIR/release
AB=$(mktemp -d /var/tmp/wsfs-clone-fd-XXXXXX)
trap 'git checkout -- fs/src/fuse.rs; rm -rf "$AB"' EXIT
cargo build --release -p wsfs-cli -p wsfs-daemon -p wsfs-holder -p wsfs-bench >/dev/null
mkdir -p "$AB/one-fd" "$AB/clone-fd"
cp "$BIN"/{wsfs,wsfsd,wsfs-holder,wsfs-bench} "$AB/one-fd/"
sed -i 's/    config.clone_fd = false;/    config.clone_fd = true;/' fs/src/fuse.rs
grep -q 'config.clone_fd = true;' fs/src/fuse.rs
cargo build --release -p wsfs-daemon >/dev/null
cp "$BIN"/{wsfs,wsfsd,wsfs-holder,wsfs-bench} "$AB/clone-fd/"
git checkout -- fs/src/fuse.rs
cargo build --release -p wsfs-daemon >/dev/null
for round in $(seq "$ROUNDS"); do
  for variant in one-fd clone-fd; do
    echo "== $variant (round $round)"
    "$AB/$variant/wsfs-bench" --only main --runs 3 --bin-dir "$AB/$variant" 2>/dev/null
  done
done
