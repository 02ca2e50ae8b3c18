#!/usr/bin/env bash
# Real Go memberlist 0.2.2 and ringswim, the same cluster in one run, one
# after the other: N members in one process on 127.0.0.1, the local profile
# (Go's DefaultLocalConfig), compression on (Go's default), every member
# joining member 0, 16 joins at a time. One JSON line each, Go's first,
# appended to target/perf/cluster-vs-go.jsonl and printed:
#
#   impl        "go" or "ringswim"
#   start_s     first member started until the last join returned
#   converge_s  last join until every member counts N alive (Go: NumMembers,
#               polled every 0.1 s; ringswim: its event delegate, checked
#               every 10 ms); null when not within CONVERGE_BOUND_S
#   steady_window_s, steady_cpu_s, cpu_ms_per_node_per_s
#               once converged and no membership news is queued anywhere,
#               the process's CPU (utime + stime of /proc/PID/stat) over a
#               window of WINDOW_S; null (Go) or 0 (ringswim) when the
#               cluster did not converge
#   peak_rss_mb the process's VmHWM (Go: after the window; ringswim: at its
#               end)
# with the command, the commit, go_version and the memberlist package's
# version, and the 1-minute load average before and after each side
# (/proc/loadavg; every figure is CPU-bound on a 2-core machine: run it on an
# otherwise idle one).
#
# Go's side is `gonodes` (tests/interop/go/gonodes, built by
# tests/interop/build.sh): its "cluster" command starts and joins the
# members, "alive" counts; nodes run without RingswimTap ("tap":false), so
# Go's CPU is memberlist's alone. Go's log goes to
# target/perf/cluster-vs-go-go-N.log. ringswim's side is `ringswim cluster
# --broadcasts 0 --kill 0` (the same phases) with --duration CONVERGE_BOUND_S
# + WINDOW_S, which bounds its start, convergence and window together.
#
# usage: perf/cluster-vs-go.sh [N]     (default 128; Go takes about a minute
#                                       to converge at 128, see
#                                       docs/go-behaviour.md §1)
# Environment: RINGSWIM (default target/release/ringswim, built if missing),
#   CONVERGE_BOUND_S (default 150), WINDOW_S (default 10, ringswim's default
#   window).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OUT="$REPO/target/perf/cluster-vs-go.jsonl"
BIN="${RINGSWIM:-$REPO/target/release/ringswim}"
NODES="${1:-128}"
BOUND="${CONVERGE_BOUND_S:-150}"
WINDOW="${WINDOW_S:-10}"
mkdir -p "$(dirname "$OUT")"
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release --bin ringswim)
GONODES="$(dirname "$("$REPO/tests/interop/build.sh" | tail -1)")/gonodes"
GO_LOG="$REPO/target/perf/cluster-vs-go-go-$NODES.log"

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
go_version=$(go version | cut -d' ' -f3)
memberlist=$(dpkg-query -W -f '${Version}' golang-github-hashicorp-memberlist-dev 2>/dev/null || echo unknown)
load() { cut -d' ' -f1 /proc/loadavg; }

# One JSON line: the run's own JSON ($2) after the context fields.
emit() {
    python3 -c '
import json, sys
command, run, commit, load_before, load_after, go_version, memberlist = sys.argv[1:]
print(json.dumps({"command": command, "commit": commit, "load_before": float(load_before),
                  "load_after": float(load_after), "go_version": go_version,
                  "memberlist": memberlist, **json.loads(run)}))' \
        "$1" "$2" "$commit" "$3" "$(load)" "$go_version" "$memberlist" | tee -a "$OUT"
}

# Go: drive gonodes through the phases of `ringswim cluster`.
load_before=$(load)
go_json=$(python3 - "$GONODES" "$NODES" "$BOUND" "$WINDOW" 2>"$GO_LOG" <<'EOF'
import json, os, subprocess, sys, time

gonodes, nodes, bound, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
go = subprocess.Popen([gonodes], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

def ask(cmd):
    go.stdin.write(json.dumps(cmd) + "\n")
    go.stdin.flush()
    answer = json.loads(go.stdout.readline())
    if not answer["ok"]:
        sys.exit(f"gonodes: {cmd['cmd']}: {answer['error']}")
    return answer

def cpu_s():
    # utime and stime, fields 14 and 15 (after the command name's ')').
    fields = open(f"/proc/{go.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def peak_rss_mb():
    for line in open(f"/proc/{go.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

try:
    report = {"impl": "go", "nodes": nodes, "cores": len(os.sched_getaffinity(0)), "compression": True}
    started = ask({"cmd": "cluster", "nodes": nodes, "join_at_once": 16, "compression": True, "tap": False})
    joined = time.monotonic()
    report["start_s"] = round(started["start_s"], 3)
    report["join_failed"] = started["join_failed"]
    report["join_error"] = started.get("join_error")
    deadline = joined + bound
    converge_s, alive = None, {}
    while True:
        alive = ask({"cmd": "alive"})
        if all(n == nodes for n in alive["alive"].values()):
            converge_s = time.monotonic() - joined
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    report["converge_s"] = None if converge_s is None else round(converge_s, 3)
    report["converged"] = converge_s is not None
    # Members some member did not count alive when the wait ended.
    report["missing_pairs"] = sum(nodes - n for n in alive["alive"].values())
    report.update(steady_window_s=None, steady_cpu_s=None, cpu_ms_per_node_per_s=None)
    if converge_s is not None:
        while ask({"cmd": "alive"})["queued"] > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        cpu0, w0 = cpu_s(), time.monotonic()
        time.sleep(window)
        cpu1, secs = cpu_s(), time.monotonic() - w0
        report["steady_window_s"] = round(secs, 3)
        report["steady_cpu_s"] = round(cpu1 - cpu0, 3)
        report["cpu_ms_per_node_per_s"] = round((cpu1 - cpu0) * 1e3 / (nodes * secs), 5)
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["mb_per_member"] = round(report["peak_rss_mb"] / nodes, 4)
    go.stdin.write('{"cmd":"quit"}\n')
    go.stdin.close()
    go.wait(timeout=60)
    print(json.dumps(report))
finally:
    if go.poll() is None:
        go.kill()
EOF
)
emit "perf/cluster-vs-go.sh $NODES (Go: gonodes cluster)" "$go_json" "$load_before"

# ringswim.
args="--nodes $NODES --profile local --broadcasts 0 --kill 0 --window $WINDOW --duration $((BOUND + WINDOW))"
load_before=$(load)
# shellcheck disable=SC2086
rs_json=$("$BIN" cluster $args --progress never --json)
emit "ringswim cluster $args --json" "$rs_json" "$load_before"
