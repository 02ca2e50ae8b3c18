#!/usr/bin/env bash
# The engine figures quoted in the README: `ringswim cluster` runs (real
# sockets on 127.0.0.1, N members in one process), one JSON line each with
# the command that made it and the commit, appended to
# target/perf/cluster-figures.jsonl and printed. Run them on an otherwise
# idle machine: every figure is CPU-bound on this 2-core one (`uptime` is
# recorded with each line).
#
# usage: perf/cluster-figures.sh [NAME...]   (default: the ORDER below)
# Environment: RINGSWIM (default target/release/ringswim, built if missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$REPO/target/perf/cluster-figures.jsonl"
BIN="${RINGSWIM:-$REPO/target/release/ringswim}"
mkdir -p "$(dirname "$OUT")"
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release --bin ringswim)

declare -A RUNS=(
  [500-portable]="--nodes 500 --backend portable"
  [500-uring]="--nodes 500 --backend uring"
  [1000-portable]="--nodes 1000 --backend portable"
  [1000-uring]="--nodes 1000 --backend uring"
  [1000-portable-plain]="--nodes 1000 --backend portable --no-compression"
  [1000-uring-plain]="--nodes 1000 --backend uring --no-compression"
  [2000]="--nodes 2000 --backend portable --no-compression"
  [5000]="--nodes 5000 --no-compression --duration 120"
  [10000]="--nodes 10000 --no-compression --duration 180"
)
ORDER=(500-portable 500-uring 1000-portable 1000-uring 1000-portable-plain 1000-uring-plain)
# By name only (long, and beyond what 2 cores carry: see the README):
# 2000 5000 10000.
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=("${ORDER[@]}")
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
for name in "${NAMES[@]}"; do
    args="${RUNS[$name]:?unknown run $name}"
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    json=$("$BIN" cluster $args --progress never --json)
    line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[3]); print(json.dumps({"name": sys.argv[1], "command": "ringswim cluster " + sys.argv[2] + " --json", "commit": sys.argv[4], "load_before": float(sys.argv[5]), **d}))' "$name" "$args" "$json" "$commit" "$load")
    echo "$line" | tee -a "$OUT"
done
