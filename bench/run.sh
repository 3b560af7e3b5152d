#!/usr/bin/env bash
# Runs the benchmarks of a build and writes bench/RESULTS.md: the interpreter-vs-native section,
# generated from this run (bench/interp/report.py); our JIT against native and against the kernel's
# JIT, same run (bench/report_jit.py, which also draws bench/jit_vs_native.png with gnuplot when it is
# installed: apt-get install gnuplot-nox); bench/maps/RESULTS-maps.md (static); JIT compile latency
# (generated, then bench/jit/compile_notes.md, static).
# The kernel JIT baseline needs bpf() (root); without it those benchmarks are skipped with a message.
#
#   bench/run.sh BUILD_DIR [extra Google Benchmark arguments for the interpreter bench]
#
# BUILD_DIR is a Release build configured with -DEBPFRT_BUILD_BENCH=ON, e.g.
#   cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBPFRT_BUILD_BENCH=ON
#   ninja -C build-bench ebpfrt_bench_interp
# Repetitions of different benchmarks are interleaved at random, so that drift in the machine
# (other load, clock changes) does not fall on one side of a ratio. Raw JSON goes to
# BUILD_DIR/bench-interp.json (and BUILD_DIR/bench-maps.json when the maps bench was built).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 BUILD_DIR [benchmark arguments]" >&2
    exit 2
fi
build_arg=$1
build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# CMAKE_RUNTIME_OUTPUT_DIRECTORY is BUILD_DIR/bin; look elsewhere for builds that override it.
find_bin() {
    if [[ -x "$build/bin/$1" ]]; then
        echo "$build/bin/$1"
    else
        find "$build" -type f -name "$1" -perm -u+x -print -quit
    fi
}

interp=$(find_bin ebpfrt_bench_interp)
if [[ -z "$interp" ]]; then
    echo "run: ebpfrt_bench_interp not found in $build (ninja -C $build ebpfrt_bench_interp)" >&2
    exit 1
fi

args=(--benchmark_repetitions=3 --benchmark_enable_random_interleaving=true --benchmark_format=json "$@")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "run: $interp ${args[*]} (load average $load_before)" >&2
"$interp" "${args[@]}" >"$build/bench-interp.json"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if ! command -v gnuplot >/dev/null; then
    echo "run: gnuplot not found (apt-get install gnuplot-nox): bench/jit_vs_native.png is not redrawn" >&2
fi
root=$(cd "$here/.." && pwd)
python3 "$here/report_jit.py" \
    --json "$build/bench-interp.json" \
    --out "$build/bench-jit-kernel.md" \
    --png "$here/jit_vs_native.png" \
    --data "$build/bench-jit-kernel.dat" \
    --load-before "$load_before" --load-after "$load_after" \
    --command "${interp#"$root"/} ${args[*]}"

maps=$(find_bin ebpfrt_bench_maps)
if [[ -n "$maps" ]]; then
    echo "run: $maps --benchmark_repetitions=3 --benchmark_format=json" >&2
    "$maps" --benchmark_repetitions=3 --benchmark_format=json >"$build/bench-maps.json" ||
        echo "run: the maps bench failed; bench/maps/RESULTS-maps.md is static and is kept as is" >&2
fi

# JIT compile latency (when built with LLVM): a markdown section appended after the maps section.
appends=(--append "$build/bench-jit-kernel.md" --append "$here/maps/RESULTS-maps.md")
jitc=$(find_bin ebpfrt_bench_jit_compile)
if [[ -n "$jitc" ]]; then
    echo "run: $jitc --benchmark_format=json" >&2
    "$jitc" --benchmark_format=json >"$build/bench-jit-compile.json"
    python3 - "$build/bench-jit-compile.json" "$build/bench-jit-compile.md" "${jitc#"$here/../"}" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
rows = []
for b in data["benchmarks"]:
    if b.get("run_type") == "aggregate":
        continue
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    rows.append((b["name"], b["real_time"] * unit, b["cpu_time"] * unit, int(b.get("insns", 0))))
out = ["# JIT compile latency", "",
       f"`{sys.argv[3]}` (same machine and run as above): `JitProgram::create` of a generated "
       "1000-instruction program (ALU work, stack and context accesses, branches), a fresh compile per "
       "iteration (the compile cache misses), and a load of the same bytecode again (cache hit). "
       "Targets (issue 4): <= 5 ms median for a fresh compile, <= 0.2 ms for a cached load.", "",
       "| benchmark | instructions | wall time | CPU time |", "|---|--:|--:|--:|"]
for name, real, cpu, n in rows:
    label = name.replace("BM_jit_compile_1000/1", "fresh compile, checked mode") \
                .replace("BM_jit_compile_1000/0", "fresh compile, unchecked mode") \
                .replace("BM_jit_cached_load_1000", "cached load")
    label = label.split("/iterations")[0]
    out.append(f"| {label} | {n} | {real:.3f} ms | {cpu:.3f} ms |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
    appends+=(--append "$build/bench-jit-compile.md")
    # Hand-written analysis of the compile time, kept across runs (like bench/interp/jit_notes.md).
    [[ -f "$here/jit/compile_notes.md" ]] && appends+=(--append "$here/jit/compile_notes.md")
fi

python3 "$here/interp/report.py" \
    --json "$build/bench-interp.json" \
    --build-dir "$build" \
    --command "bench/run.sh $build_arg${*:+ $*}" \
    --bench-command "${interp#"$root"/} ${args[*]}" \
    "${appends[@]}" \
    --out "$here/RESULTS.md"
echo "run: wrote $here/RESULTS.md" >&2
