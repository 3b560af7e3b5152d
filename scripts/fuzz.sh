#!/usr/bin/env bash
# Fuzzes the isa module and the checked interpreter with libFuzzer + ASan + UBSan (clang-19).
#   scripts/fuzz.sh [RUNS] [SHARED_DIR]     RUNS defaults to 1000000 executions.
# Seeds: every conformance program (when SHARED_DIR/conformance exists). Findings land in
# build-fuzz/findings/ and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
shared=${2:-../shared}

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined" \
    -DEBPFRT_BUILD_FUZZ=ON -DEBPFRT_BUILD_TESTS=OFF -DEBPFRT_BUILD_EXAMPLES=OFF -DEBPFRT_BUILD_BENCH=OFF \
    -DEBPFRT_INSTALL=OFF >/dev/null
cmake --build build-fuzz --target ebpfrt_fuzz_interpreter

seeds=build-fuzz/seeds
mkdir -p "$seeds" build-fuzz/corpus build-fuzz/findings
if [ -d "$shared/conformance/tests" ]; then
    python3 - "$shared/conformance/tests" "$seeds" <<'PY'
import glob, json, os, sys
src, dst = sys.argv[1], sys.argv[2]
for path in glob.glob(os.path.join(src, "*.json")):
    t = json.load(open(path))
    mem = bytes.fromhex(t.get("memory_hex") or "")[:16].ljust(16, b"\0")
    prog = bytes.fromhex(t.get("program_hex") or "")
    open(os.path.join(dst, t["name"]), "wb").write(b"\x01" + mem + prog)
PY
fi
./build-fuzz/bin/ebpfrt_fuzz_interpreter -runs="$runs" -max_len=2048 -timeout=10 \
    -artifact_prefix=build-fuzz/findings/ -print_final_stats=1 build-fuzz/corpus "$seeds" 2>&1 |
    tee build-fuzz/fuzz.log | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)' || true
if ls build-fuzz/findings/* >/dev/null 2>&1; then
    echo "fuzz: findings in build-fuzz/findings/" >&2
    exit 1
fi
