#!/usr/bin/env bash
# Run the Go memberlist codec benchmarks (tests/interop/go/zz_ringswim_bench_test.go)
# inside the scratch memberlist package prepared by build.sh, and print Go's output.
#
# usage: tests/interop/bench.sh [OUT_DIR] [-- extra go test args, e.g. -benchtime=2s -count=3]
#   OUT_DIR defaults to <repo>/target/go-interop (same as build.sh).
#   Set RINGSWIM_BENCH_PACKETS_DIR=DIR to also get the exact benchmark packets
#   (typical.bin, typical_lzw.bin, typical_aesgcm.bin, typical_full.bin).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="$REPO/target/go-interop"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then OUT="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
GOCODE="${GOCODE:-/usr/share/gocode}"

"$HERE/build.sh" "$OUT" >/dev/null
OUT="$(cd "$OUT" && pwd)"
PKG="$OUT/gopath/src/github.com/hashicorp/memberlist"

if [ -n "${RINGSWIM_BENCH_PACKETS_DIR:-}" ]; then
  mkdir -p "$RINGSWIM_BENCH_PACKETS_DIR"
  RINGSWIM_BENCH_PACKETS_DIR="$(cd "$RINGSWIM_BENCH_PACKETS_DIR" && pwd)"
  export RINGSWIM_BENCH_PACKETS_DIR
fi

export GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off CGO_ENABLED=0
export GOPATH="$OUT/gopath:$GOCODE"
export GOCACHE="$OUT/gocache"

# Hold the build lock so a concurrent build.sh doesn't rewrite the package under us.
exec 9>"$OUT/.build.lock"
flock 9
cd "$PKG"
go test -run XXX -bench . -benchmem "$@"
