#!/usr/bin/env bash
# Build the Go side of ringswim's interop harness: the `gointerop` tool and
# the `gonodes` live-node helper (tests/go_live.rs), both into OUT_DIR.
#
# usage: tests/interop/build.sh [OUT_DIR]      (default OUT_DIR: <repo>/target/go-interop)
#
# Prints the absolute path of gointerop as the LAST line of stdout (gonodes
# lies next to it; progress messages go to stderr). Idempotent and safe to
# run concurrently (serialised with flock on OUT_DIR/.build.lock); skips the
# rebuild when both binaries are newer than every file in tests/interop/go/
# and this script.
#
# How it works: memberlist's codec helpers are unexported, so we build INSIDE A
# SCRATCH COPY of Debian's golang-github-hashicorp-memberlist-dev (0.2.2):
#   OUT/gopath/src/github.com/hashicorp/memberlist/  = Debian's non-test *.go
#       + its vendor/ + tests/interop/go/*.go (zz_ringswim_interop.go = the
#       tool, zz_ringswim_bench_test.go = Go benchmarks, see bench.sh)
#   OUT/gopath/src/ringswim-interop/main.go          = tests/interop/go/cmd/main.go
#   OUT/gopath/src/ringswim-gonodes/main.go          = tests/interop/go/gonodes/main.go
#       (public API + zz_ringswim_nodes.go's RingswimMemberStates and
#       RingswimTap; commands at the top of that file)
# and build offline in GOPATH mode (GO111MODULE=off, GOPATH=OUT/gopath:/usr/share/gocode).
#
# gointerop subcommands (details at the top of tests/interop/go/zz_ringswim_interop.go):
#   decode [--key B64]... [--label TEXT] [--stream] [--hex]  < bytes   -> decode JSON
#       decode one UDP packet / TCP stream message exactly as Go memberlist does
#   encode [--compress] [--crc] [--key B64]... [--encryption-version 0|1]
#          [--label TEXT] [--stream] [--compound] [--hex]  < {"messages":[...]} -> bytes
#       build a packet / stream with Go memberlist's own encoders
#   batch-decode / batch-encode   JSON lines in, one JSON line out per input
#       (avoid one process per packet in Rust tests; output flushed per line)
#   batch-lzw   JSON lines {"op":"compress"|"decompress","hex"}: memberlist's
#       compressPayload / decompressBuffer alone
#   gen --seed S --out DIR [--count N]   golden vectors (DIR/NNNN.bin + manifest.json)
#   selfcheck DIR                        verify a golden dir against Go (exit 1 on mismatch)
#
# Environment overrides: MEMBERLIST_SRC (default
# /usr/share/gocode/src/github.com/hashicorp/memberlist), GOCODE (default /usr/share/gocode).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SRC_DIR="$HERE/go"
OUT="${1:-$REPO/target/go-interop}"
GOCODE="${GOCODE:-/usr/share/gocode}"
MEMBERLIST_SRC="${MEMBERLIST_SRC:-$GOCODE/src/github.com/hashicorp/memberlist}"

die() { echo "build.sh: error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "'go' not found in PATH (need Go >= 1.18; Debian: apt-get install golang-go)"
[ -f "$MEMBERLIST_SRC/net.go" ] && [ -f "$MEMBERLIST_SRC/util.go" ] && [ -f "$MEMBERLIST_SRC/security.go" ] \
  || die "memberlist sources not found at $MEMBERLIST_SRC (Debian: apt-get install golang-github-hashicorp-memberlist-dev)"
[ -d "$GOCODE/src/github.com/hashicorp/go-msgpack/codec" ] \
  || die "go-msgpack not found under $GOCODE/src (Debian: apt-get install golang-github-hashicorp-go-msgpack-dev)"
command -v flock >/dev/null 2>&1 || die "'flock' not found (Debian: util-linux)"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BIN="$OUT/gointerop"
GOPATH_DIR="$OUT/gopath"
PKG="$GOPATH_DIR/src/github.com/hashicorp/memberlist"
MAIN_DIR="$GOPATH_DIR/src/ringswim-interop"
GONODES_BIN="$OUT/gonodes"
GONODES_DIR="$GOPATH_DIR/src/ringswim-gonodes"
STAMP="$PKG/.ringswim-scratch"

exec 9>"$OUT/.build.lock"
flock 9

up_to_date() {
  local bin
  for bin in "$BIN" "$GONODES_BIN"; do
    [ -x "$bin" ] && [ -f "$STAMP" ] || return 1
    [ -z "$(find "$SRC_DIR" "$HERE/build.sh" -newer "$bin" -print -quit 2>/dev/null)" ] || return 1
  done
}

if up_to_date; then
  echo "build.sh: $BIN is up to date" >&2
  echo "$BIN"
  exit 0
fi

echo "build.sh: preparing scratch memberlist package in $PKG" >&2
rm -rf "$PKG" "$MAIN_DIR" "$GONODES_DIR"
mkdir -p "$PKG" "$MAIN_DIR" "$GONODES_DIR"
for f in "$MEMBERLIST_SRC"/*.go; do
  case "$f" in *_test.go) continue ;; esac
  cp "$f" "$PKG/"
done
if [ -d "$MEMBERLIST_SRC/vendor" ]; then
  cp -r "$MEMBERLIST_SRC/vendor" "$PKG/vendor"
fi
cp "$SRC_DIR"/*.go "$PKG/"
cp "$SRC_DIR/cmd/main.go" "$MAIN_DIR/main.go"
cp "$SRC_DIR/gonodes/main.go" "$GONODES_DIR/main.go"
touch "$STAMP"

export GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off CGO_ENABLED=0
export GOPATH="$GOPATH_DIR:$GOCODE"
export GOCACHE="$OUT/gocache"

echo "build.sh: go build ringswim-interop -> $BIN" >&2
(cd "$MAIN_DIR" && go build -o "$BIN.tmp.$$" .) || { rm -f "$BIN.tmp.$$"; die "go build failed"; }
echo "build.sh: go build ringswim-gonodes -> $GONODES_BIN" >&2
(cd "$GONODES_DIR" && go build -o "$GONODES_BIN.tmp.$$" .) || { rm -f "$BIN.tmp.$$" "$GONODES_BIN.tmp.$$"; die "go build failed"; }
mv -f "$GONODES_BIN.tmp.$$" "$GONODES_BIN"
mv -f "$BIN.tmp.$$" "$BIN"
echo "$BIN"
