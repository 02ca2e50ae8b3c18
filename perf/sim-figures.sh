#!/usr/bin/env bash
# The simulator figures quoted in the README, one JSON line each, with the
# command that made it, in target/perf/sim-figures.jsonl (appended) and on
# stdout. Long: about an hour on 2 cores (the 1,000-node slow-node runs take
# ~10 min each); the large-cluster runs (join*) only when named.
#
# usage: perf/sim-figures.sh [NAME...]   (default: all; names below)
# Environment: RINGSWIM (default target/release/ringswim, built if missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$REPO/target/perf/sim-figures.jsonl"
BIN="${RINGSWIM:-$REPO/target/release/ringswim}"
mkdir -p "$(dirname "$OUT")"
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release --bin ringswim)

declare -A RUNS=(
  [loss1000]="--nodes 1000 --profile local --loss 0.1 --kill 1 --duration 600"
  [loss1000-go]="--nodes 1000 --profile local --loss 0.1 --kill 1 --duration 600 --behaviour go"
  [partition1000]="--nodes 1000 --profile lan --partition 60 --duration 300 --no-compression"
  [partition1000-go]="--nodes 1000 --profile lan --partition 60 --duration 300 --no-compression --behaviour go"
  [churn1000]="--nodes 1000 --profile local --churn 1 --user-rate 5 --broadcasts 0 --duration 300 --no-compression"
  [churn1000-go]="--nodes 1000 --profile local --churn 1 --user-rate 5 --broadcasts 0 --duration 300 --no-compression --behaviour go"
  [slow1000-go]="--nodes 1000 --profile local --slow 0.05 --duration 240 --no-compression --behaviour go"
  [slow1000-go-nolg]="--nodes 1000 --profile local --slow 0.05 --duration 240 --no-compression --behaviour go --no-lifeguard"
  [slow1000]="--nodes 1000 --profile local --slow 0.05 --duration 240 --no-compression"
  [slow1000-nolg]="--nodes 1000 --profile local --slow 0.05 --duration 240 --no-compression --no-lifeguard"
  [join2000]="--nodes 2000 --profile local --kill 1 --duration 120 --no-compression"
  [join2000-go]="--nodes 2000 --profile local --kill 1 --duration 120 --no-compression --behaviour go"
  [join5000]="--nodes 5000 --join-spread 10 --profile local --kill 1 --duration 600 --no-compression"
  [join10000]="--nodes 10000 --join-spread 10 --profile local --kill 1 --duration 600 --no-compression"
  [join10000-skip]="--nodes 10000 --join-spread 10 --profile local --kill 1 --duration 600 --no-compression --skip-wire"
)
ORDER=(loss1000 partition1000 partition1000-go churn1000 churn1000-go slow1000-go slow1000-go-nolg slow1000 slow1000-nolg loss1000-go)
# Run by name only (long; README "Large clusters" has their time and memory):
# join2000 join2000-go join5000 join10000 join10000-skip.
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=("${ORDER[@]}")
for name in "${NAMES[@]}"; do
    args="${RUNS[$name]:?unknown run $name}"
    # shellcheck disable=SC2086
    json=$("$BIN" sim $args --json)
    line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[3]); print(json.dumps({"name": sys.argv[1], "command": "ringswim sim " + sys.argv[2] + " --json", **d}))' "$name" "$args" "$json")
    echo "$line" | tee -a "$OUT"
done
