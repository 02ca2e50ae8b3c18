#!/usr/bin/env bash
# False deaths with slow nodes across cluster sizes: for every N, profile and
# seed, `ringswim sim --nodes N --profile P --slow 0.1 --duration 240 --seed S
# --json`, one line each: N, profile, seed, false_deaths, false_suspicions,
# wall seconds. Then one summary line per profile. Long at large N (a
# 1,000-node run takes several minutes on 2 cores).
#
# usage: perf/false-deaths-sweep.sh [N ...]
# Environment: RINGSWIM (default target/release/ringswim, built if missing),
# PROFILES (default "lan local"), SEEDS (default "1 2 3"), EXTRA (more sim
# flags, e.g. "--behaviour go").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${RINGSWIM:-$REPO/target/release/ringswim}"
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release --bin ringswim)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(3 4 5 8 10 16 20 32 50 64 99 100 128 200 256 500 1000)

printf '%-6s %-7s %-5s %-12s %-17s %s\n' nodes profile seed false_deaths false_suspicions wall_s
declare -A TOTAL
for p in ${PROFILES:-lan local}; do
  TOTAL[$p]=0
  for n in "${SIZES[@]}"; do
    for s in ${SEEDS:-1 2 3}; do
      # shellcheck disable=SC2086
      line=$("$BIN" sim --nodes "$n" --profile "$p" --slow 0.1 --duration 240 --seed "$s" ${EXTRA:-} --json)
      read -r fd fs wall < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["false_deaths"], d["false_suspicions"], d["wall_s"])' "$line")
      printf '%-6s %-7s %-5s %-12s %-17s %s\n' "$n" "$p" "$s" "$fd" "$fs" "$wall"
      TOTAL[$p]=$(( TOTAL[$p] + fd ))
    done
  done
done
for p in ${PROFILES:-lan local}; do
  echo "{\"profile\":\"$p\",\"sizes\":\"${SIZES[*]}\",\"seeds\":\"${SEEDS:-1 2 3}\",\"false_deaths\":${TOTAL[$p]}}"
done
