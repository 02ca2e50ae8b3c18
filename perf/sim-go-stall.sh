#!/usr/bin/env bash
# docs/go-behaviour.md §1 and §3 in the simulator: Go memberlist 0.2.2's behaviour
# (`--behaviour go`, default and "tuned" RetransmitMult 4) against ringswim's
# (`--behaviour ringswim`), same seeds, same mass join (every node joins
# node 0 at t = 0), then node 0 sends 200 user broadcasts of 7 bytes (the
# payload of docs/go-behaviour.md §3) once the cluster has settled.
#
# usage: perf/sim-go-stall.sh [SEEDS...]      (default seeds: 1 2 3)
#
# Prints a Markdown table (also in target/perf/sim-go-stall.md) with, per
# run: converge_s (until every node counts every node alive), broadcast_all_s
# (until every node has all 200), bytes_per_node_per_s (a 120 s steady-state
# window once every queue is empty, long enough to span a few push/pull
# rounds), streams_opened.
# Environment: NODES (default "128 512"), DURATION (default 360), RINGSWIM
# (default target/release/ringswim, built if missing).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT_DIR="$REPO/target/perf"
REPORT="$OUT_DIR/sim-go-stall.md"
BIN="${RINGSWIM:-$REPO/target/release/ringswim}"
NODES="${NODES:-128 512}"
DURATION="${DURATION:-360}"
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
mkdir -p "$OUT_DIR"
if [ ! -x "$BIN" ]; then
    (cd "$REPO" && cargo build --release --bin ringswim)
fi

{
    echo "| nodes | behaviour | seed | converge_s | broadcast_all_s (200 × 7 B) | steady B/node/s | streams |"
    echo "|---|---|---|---|---|---|---|"
    for n in $NODES; do
        for variant in "go" "go --retransmit-mult 4" "ringswim"; do
            label="$variant"
            [ "$variant" = "go --retransmit-mult 4" ] && label="go tuned (RetransmitMult 4)"
            for seed in "${SEEDS[@]}"; do
                # shellcheck disable=SC2086
                json=$("$BIN" sim --nodes "$n" --profile local --duration "$DURATION" --seed "$seed" \
                    --broadcasts 200 --broadcast-bytes 7 --window 120 --no-compression --behaviour $variant --json)
                python3 - "$n" "$label" "$seed" "$json" <<'PY'
import json, sys
n, label, seed, raw = sys.argv[1:]
d = json.loads(raw)
fmt = lambda v: "never" if v is None else f"{v:.1f}"
print(f"| {n} | {label} | {seed} | {fmt(d['converge_s'])} | {fmt(d['broadcast_all_s'])} | "
      f"{d['bytes_per_node_per_s']:.1f} | {d['streams_opened']} |")
PY
            done
        done
    done
} | tee "$REPORT"
