#!/usr/bin/env bash
# Fuzzes the wire decoders: runs every cargo-fuzz target in fuzz/ for SECONDS
# (default 60) and fails if any of them finds a crash, a leak past the RSS
# limit or a hang.
#
#   .ci/fuzz.sh [SECONDS]
#
# Needs a nightly toolchain (cargo-fuzz builds with -Zsanitizer=address):
# rustup's `nightly`, or a `cargo` that is itself nightly. Without one it
# prints one line saying what to install and exits 3 (.ci/install installs
# nightly where rustup is; .ci/run fails then). Installs cargo-fuzz when it is
# missing.
#
# Exit codes: 0 no crash; 1 a target crashed, leaked or hung; 2 usage or
# setup error; 3 no nightly toolchain. Corpora live in fuzz/corpus/<target>
# (gitignored) and are seeded from fuzz/seeds/<target> and, when present, from
# the Go-made vectors in tests/interop/golden/. Crashes land in
# fuzz/artifacts/<target>/ and are printed in hex; logs go to fuzz/logs/.
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS]  (seconds per target, default 60)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Nightly: through rustup when it has one, else `cargo` if it is nightly.
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    cargo=(cargo +nightly)
elif cargo --version 2>/dev/null | grep -q -- '-nightly'; then
    cargo=(cargo)
else
    if command -v rustup >/dev/null 2>&1; then
        hint="rustup toolchain install nightly --profile minimal"
    else
        hint="a nightly Rust toolchain, e.g. with rustup (https://rustup.rs): rustup toolchain install nightly"
    fi
    echo "fuzz.sh: no nightly Rust toolchain (cargo-fuzz needs one for -Zsanitizer); install: $hint" >&2
    exit 3
fi

if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=(packet_decode stream_decode message_decode json_encode)
listed="$("${cargo[@]}" fuzz list)"
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$listed" || { echo "fuzz target $t missing from fuzz/Cargo.toml" >&2; exit 2; }
done

# Seed corpora (never committed: fuzz/corpus is gitignored).
golden="tests/interop/golden"
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    for f in fuzz/seeds/"$t"/*; do
        [ -f "$f" ] && cp "$f" "fuzz/corpus/$t/seed-$(basename "$f")"
    done
done
if compgen -G "$golden/*.bin" >/dev/null; then
    n=0
    for f in "$golden"/*.bin; do
        for t in packet_decode stream_decode message_decode; do
            cp "$f" "fuzz/corpus/$t/golden-$(basename "$f")"
        done
        n=$((n + 1))
    done
    echo "== seeded $n Go vectors from $golden"
    # The JSON each vector decodes to is a seed for the encoder.
    if [ -f "$golden/manifest.json" ] && command -v python3 >/dev/null 2>&1; then
        python3 - "$golden/manifest.json" fuzz/corpus/json_encode <<'EOF'
import json, os, sys
manifest, out = sys.argv[1], sys.argv[2]
for entry in json.load(open(manifest)):
    expect = entry.get("expect") or {}
    if "messages" in expect:
        path = os.path.join(out, "golden-" + entry["file"].replace(".bin", ".json"))
        with open(path, "w") as f:
            json.dump({"messages": expect["messages"]}, f)
EOF
    fi
else
    echo "== no Go vectors in $golden; fuzzing from fuzz/seeds only"
fi

echo "== building fuzz targets"
"${cargo[@]}" fuzz build

mkdir -p fuzz/logs
touch fuzz/logs/.start
failed=()
for t in "${targets[@]}"; do
    dict="fuzz/dict/wire.dict"
    [ "$t" = json_encode ] && dict="fuzz/dict/json.dict"
    echo "== fuzzing $t for ${secs}s"
    start=$(date +%s)
    # -max_len: room for a full UDP packet's worth of structure.
    if "${cargo[@]}" fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=16384 \
        -dict="$dict" -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1; then
        echo "   ok after $(( $(date +%s) - start ))s: $(grep -E '^stat::number_of_executed_units' "fuzz/logs/$t.log" | awk '{print $2}') runs, corpus $(find "fuzz/corpus/$t" -type f | wc -l) files"
    else
        failed+=("$t")
        echo "   FAILED: $t (log: fuzz/logs/$t.log)"
        grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY|Test unit written' "fuzz/logs/$t.log" | head -20 || true
        for a in $(find "fuzz/artifacts/$t" -type f -newer "fuzz/logs/.start" 2>/dev/null); do
            echo "   artifact $a:"
            od -An -tx1 -v "$a" | head -20
        done
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "== fuzzing found problems in: ${failed[*]}"
    exit 1
fi
echo "== all ${#targets[@]} fuzz targets ran ${secs}s without a crash"
