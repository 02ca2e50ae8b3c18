#!/usr/bin/env bash
# Codec speed, ringswim vs Go memberlist 0.2.2, in one run, on identical packets.
#
# usage: perf/codec-vs-go.sh
#
# 1. Go: tests/interop/bench.sh (Go memberlist's own encode/decode/compress/
#    encrypt functions, in a scratch copy of Debian's memberlist package) with
#    RINGSWIM_BENCH_PACKETS_DIR=target/perf/packets, so Go writes the exact
#    packets it benchmarks (typical*.bin).
# 2. ringswim: `cargo bench --bench codec` with the same RINGSWIM_BENCH_PACKETS_DIR,
#    so the Rust decode benches decode Go's bytes and the Rust encode benches
#    encode the messages decoded from Go's typical.bin.
# 3. A Markdown table (Go: median ns/op of GO_COUNT runs; ringswim: criterion's
#    point estimate from target/criterion/<group>/<bench>/new/estimates.json,
#    the middle number criterion prints), on stdout and in target/perf/codec-vs-go.md.
#
# Both run pinned to one CPU (taskset -c $RINGSWIM_PERF_CORE, default 1) and Go
# with GOMAXPROCS=1, so "per core" means one core, GC included.
#
# Environment: GO_BENCHTIME (default 1s), GO_COUNT (default 3),
# RINGSWIM_PERF_CORE (default 1), CARGO (default cargo).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT_DIR="$REPO/target/perf"
PACKETS="$OUT_DIR/packets"
REPORT="$OUT_DIR/codec-vs-go.md"
GO_LOG="$OUT_DIR/go-bench.txt"
RS_LOG="$OUT_DIR/rust-bench.txt"
GO_BENCHTIME="${GO_BENCHTIME:-1s}"
GO_COUNT="${GO_COUNT:-3}"
CARGO="${CARGO:-cargo}"

die() {
  echo "codec-vs-go.sh: error: $*" >&2
  exit 1
}

GO_HINT="run .ci/run, or: apt-get install golang-go golang-github-hashicorp-memberlist-dev"
command -v go >/dev/null 2>&1 || die "Go is not installed ('go' not in PATH); $GO_HINT"
[ -f /usr/share/gocode/src/github.com/hashicorp/memberlist/net.go ] || [ -n "${MEMBERLIST_SRC:-}" ] \
  || die "Go memberlist sources not found (/usr/share/gocode/src/github.com/hashicorp/memberlist); $GO_HINT"
[ -x "$REPO/tests/interop/bench.sh" ] || die "tests/interop/bench.sh is missing: the Go benchmarks are not in this checkout"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to parse the results"

# One core, honestly.
PIN=()
if command -v taskset >/dev/null 2>&1; then
  CORE="${RINGSWIM_PERF_CORE:-1}"
  if [ "$(nproc --all 2>/dev/null || echo 1)" -le "$CORE" ]; then CORE=0; fi
  PIN=(taskset -c "$CORE")
  PIN_NOTE="pinned with taskset -c $CORE"
else
  PIN_NOTE="NOT pinned (taskset not found): numbers are per process, not per core"
  echo "codec-vs-go.sh: warning: taskset not found; running unpinned" >&2
fi

mkdir -p "$OUT_DIR" "$PACKETS"
rm -f "$PACKETS"/*.bin
STAMP="$OUT_DIR/.run-stamp"
touch "$STAMP"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- Go
echo "== Go memberlist codec benchmarks ($PIN_NOTE, GOMAXPROCS=1, -benchtime=$GO_BENCHTIME -count=$GO_COUNT)" >&2
# Build first, unpinned (bench.sh calls build.sh again, which is then a no-op).
"$REPO/tests/interop/build.sh" >/dev/null || die "building the Go interop package failed; $GO_HINT"
RINGSWIM_BENCH_PACKETS_DIR="$PACKETS" GOMAXPROCS=1 "${PIN[@]}" \
  "$REPO/tests/interop/bench.sh" -- -benchtime="$GO_BENCHTIME" -count="$GO_COUNT" 2>&1 | tee "$GO_LOG" >&2 \
  || die "Go benchmarks failed (log: $GO_LOG)"
grep -q '^PASS' "$GO_LOG" || die "Go benchmarks did not pass (log: $GO_LOG)"
for f in typical.bin typical_lzw.bin typical_full.bin; do
  [ -s "$PACKETS/$f" ] || die "Go did not write $PACKETS/$f (RINGSWIM_BENCH_PACKETS_DIR support missing in the Go bench?)"
done

# ---------------------------------------------------------------- ringswim
echo "== ringswim codec benchmarks ($PIN_NOTE)" >&2
(cd "$REPO" && "$CARGO" bench --bench codec --no-run >&2) || die "cargo bench --no-run failed"
(cd "$REPO" && RINGSWIM_BENCH_PACKETS_DIR="$PACKETS" "${PIN[@]}" "$CARGO" bench --bench codec 2>&1) | tee "$RS_LOG" >&2 \
  || die "cargo bench failed (log: $RS_LOG)"
grep -q "Go-made packets from" "$RS_LOG" || die "the Rust bench did not pick up Go's packets (log: $RS_LOG)"

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# ---------------------------------------------------------------- table
export REPO GO_LOG RS_LOG STAMP REPORT PIN_NOTE LOAD_BEFORE LOAD_AFTER GO_BENCHTIME GO_COUNT
python3 - <<'PY'
import json, os, re, statistics, subprocess, datetime

repo, go_log, rs_log = os.environ["REPO"], os.environ["GO_LOG"], os.environ["RS_LOG"]
stamp = os.path.getmtime(os.environ["STAMP"])

ROWS = [  # (criterion group/bench, Go benchmark)
    ("encode/typical", "BenchmarkGoEncodeTypical"),
    ("decode/typical", "BenchmarkGoDecodeTypical"),
    ("encode/typical_lzw", "BenchmarkGoEncodeTypicalLZW"),
    ("decode/typical_lzw", "BenchmarkGoDecodeTypicalLZW"),
    ("encode/typical_aes_gcm", "BenchmarkGoEncodeTypicalAESGCM"),
    ("decode/typical_aes_gcm", "BenchmarkGoDecodeTypicalAESGCM"),
    ("receive_path/full", "BenchmarkGoReceivePath"),
]

go = {}
line_re = re.compile(r"^(Benchmark\w+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$")
for line in open(go_log):
    m = line_re.match(line.strip())
    if m:
        allocs = re.search(r"(\d+) allocs/op", m.group(3))
        go.setdefault(m.group(1), []).append((float(m.group(2)), int(allocs.group(1)) if allocs else None))

def rust_ns(bench):
    path = os.path.join(repo, "target", "criterion", *bench.split("/"), "new", "estimates.json")
    if not os.path.exists(path) or os.path.getmtime(path) < stamp:
        raise SystemExit(f"codec-vs-go.sh: error: no fresh criterion result at {path}")
    est = json.load(open(path))
    stat = est.get("slope") or est["mean"]  # what criterion prints as the middle value
    return stat["point_estimate"]

def fmt_ns(ns):
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:,.1f}"

def fmt_rate(ns):
    return f"{1e9 / ns:,.0f}"

def tool(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"

cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

rows, missing, speedups = [], [], {}
for bench, gobench in ROWS:
    runs = go.get(gobench)
    if not runs:
        missing.append(gobench)
        continue
    go_ns = statistics.median(r[0] for r in runs)
    go_allocs = runs[0][1]
    rs_ns = rust_ns(bench)
    speedups[bench] = go_ns / rs_ns
    rows.append(
        f"| {bench} | {fmt_ns(go_ns)} | {fmt_ns(rs_ns)} | {fmt_rate(go_ns)} | {fmt_rate(rs_ns)} "
        f"| {go_ns / rs_ns:,.1f}× | {go_allocs if go_allocs is not None else '?'} |"
    )
if missing:
    raise SystemExit("codec-vs-go.sh: error: Go benchmarks missing from the output: " + ", ".join(missing))

decode_rate = 1e9 / rust_ns("decode/typical")
slowest = min(speedups, key=speedups.get)
goal1 = decode_rate >= 1_000_000
goal2 = speedups[slowest] >= 5.0
yes = lambda ok: "MET" if ok else "NOT MET"

commit = tool("git", "-C", repo, "rev-parse", "--short", "HEAD")
out = []
out.append("# ringswim codec vs Go memberlist 0.2.2")
out.append("")
out.append(f"- run: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, commit {commit} (+ work tree), `perf/codec-vs-go.sh`")
out.append(f"- CPU: {cpu}; {os.environ['PIN_NOTE']}; Go with GOMAXPROCS=1")
out.append(f"- {tool('go', 'version')}; {tool('rustc', '--version')}")
load = os.environ["LOAD_BEFORE"].split()[0]
busy = load != "?" and float(load) > 0.5 * (os.cpu_count() or 1)
out.append(f"- load average before/after: {os.environ['LOAD_BEFORE']} / {os.environ['LOAD_AFTER']}"
           + (" — BUSY MACHINE: other processes share the pinned core, both sides read slower than on a quiet one" if busy else ""))
out.append(f"- Go: median of {os.environ['GO_COUNT']} runs of -benchtime={os.environ['GO_BENCHTIME']}; ringswim: criterion point estimate")
out.append("- packets: made by Go (target/perf/packets); ringswim decodes the same bytes and encodes the same messages")
out.append("")
out.append("| benchmark | Go ns/packet | ringswim ns/packet | Go packets/s/core | ringswim packets/s/core | speed-up | Go allocs/packet |")
out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
out.extend(rows)
out.append("")
out.append(f"- goal ≥ 1,000,000 typical packets/s decoded per core (decode/typical): {decode_rate:,.0f}/s — {yes(goal1)}")
out.append(f"- goal ≥ 5× Go per packet on every row: lowest is {slowest} at {speedups[slowest]:,.1f}× — {yes(goal2)}")
text = "\n".join(out) + "\n"
open(os.environ["REPORT"], "w").write(text)
print(text, end="")
PY
echo "(written to $REPORT; raw logs: $GO_LOG, $RS_LOG)" >&2
