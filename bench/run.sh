#!/usr/bin/env bash
# Runs the benchmarks of a build and writes bench/RESULTS.md: the interpreter-vs-native section,
# generated from this run (bench/interp/report.py), followed by bench/maps/RESULTS-maps.md (static).
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
echo "run: $interp ${args[*]}" >&2
"$interp" "${args[@]}" >"$build/bench-interp.json"

maps=$(find_bin ebpfrt_bench_maps)
if [[ -n "$maps" ]]; then
    echo "run: $maps --benchmark_repetitions=3 --benchmark_format=json" >&2
    "$maps" --benchmark_repetitions=3 --benchmark_format=json >"$build/bench-maps.json" ||
        echo "run: the maps bench failed; bench/maps/RESULTS-maps.md is static and is kept as is" >&2
fi

root=$(cd "$here/.." && pwd)
python3 "$here/interp/report.py" \
    --json "$build/bench-interp.json" \
    --build-dir "$build" \
    --command "bench/run.sh $build_arg${*:+ $*}" \
    --bench-command "${interp#"$root"/} ${args[*]}" \
    --append "$here/maps/RESULTS-maps.md" \
    --out "$here/RESULTS.md"
echo "run: wrote $here/RESULTS.md" >&2
