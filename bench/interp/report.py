#!/usr/bin/env python3
"""Writes bench/RESULTS.md from a Google Benchmark JSON run of ebpfrt_bench_interp.

The interpreter-vs-native section is generated: the machine, the commands, and per kernel the time
(fastest of the repetitions) of native code built by two compilers and of the interpreter in checked
and unchecked mode, the ratios, and their geometric means. bench/interp/notes.md (hand-written analysis), when present, follows
the table; then each --append file (the JIT section from bench/report_jit.py, static sections such as
bench/maps/RESULTS-maps.md) as is.
Called by bench/run.sh.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys

KERNELS = ["sum", "fnv1a", "bubble_sort", "crc32", "collatz", "sieve", "memcpy", "strcmp"]
VARIANTS = ["BM_native", "BM_interp", "BM_interp_unchecked", "BM_jit", "BM_jit_unchecked"]
TARGET = 20.0  # interpreter geomean must be <= 20x native
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        return out.splitlines()[0].strip() if out else "?"
    except OSError:
        return "?"


def short_name(version_line, path=""):
    """"gcc 12.2" or "clang 19.1" from a --version first line and the compiler's path ("cc" -> gcc)."""
    words = version_line.replace("(", " ").replace(")", " ").split()
    real = os.path.basename(os.path.realpath(path)) if path else ""
    if "clang" in version_line or "clang" in real:
        kind = "clang"
    elif "gcc" in version_line or "GCC" in version_line or "gcc" in real:
        kind = "gcc"
    else:
        kind = "cc"
    nums = [x for x in words if x[:1].isdigit() and x.count(".") >= 1]
    if kind == "gcc" and nums:
        nums = [nums[-1]]  # "cc (Debian 12.2.0-14) 12.2.0": the last one is the version
    return f"{kind} {'.'.join(nums[0].split('.')[:2])}" if nums else kind


def lscpu():
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return info
    for line in out.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cmake_cache(build_dir):
    cache = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
            for line in f:
                if line.startswith(("#", "//")) or "=" not in line:
                    continue
                key, _, value = line.rstrip("\n").partition("=")
                cache[key.split(":")[0]] = value
    except OSError:
        pass
    return cache


def best_times(data):
    """{(variant, kernel): (time in ns, entry)}: the fastest repetition (the minimum over repetitions of
    each repetition's mean time per iteration). Interference from other load on a shared machine only
    ever slows a repetition down, so the minimum is the estimate least affected by it; the median
    aggregate is the fallback for JSON without per-repetition entries (--benchmark_report_aggregates_only)."""
    out, reps = {}, {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        variant, _, kernel = name.partition("/")
        if b.get("error_occurred"):
            out[(variant, kernel)] = (None, b)
            continue
        t = b["real_time"] * UNIT_NS[b.get("time_unit", "ns")]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                out.setdefault((variant, kernel), (t, b))
        else:
            reps.setdefault((variant, kernel), []).append((t, b))
    for key, rs in reps.items():
        if out.get(key, (0,))[0] is not None:
            out[key] = min(rs, key=lambda r: r[0])
    return out


def fmt_time(ns):
    if ns is None:
        return "error"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", required=True, help="ebpfrt_bench_interp --benchmark_format=json output")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--command", required=True, help="the command that produced the run")
    ap.add_argument("--bench-command", default="", help="the benchmark command line")
    ap.add_argument("--append", action="append", default=[], help="static sections to append")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    with open(a.json, encoding="utf-8") as f:
        data = json.load(f)
    ctx = data.get("context", {})
    med = best_times(data)
    cache = cmake_cache(a.build_dir)
    cpu = lscpu()
    here = os.path.dirname(os.path.abspath(__file__))

    c_compiler = cache.get("CMAKE_C_COMPILER", "cc")
    cxx_compiler = cache.get("CMAKE_CXX_COMPILER", "c++")
    bpf_clang = cache.get("EBPFRT_BPF_CLANG", "clang-19")
    threads = cpu.get("Thread(s) per core", "?")
    lines = []
    w = lines.append
    w("<!-- Generated by bench/run.sh (bench/interp/report.py); do not edit by hand. The analysis below the")
    w("     table is bench/interp/notes.md; the JIT section is bench/report_jit.py with bench/interp/jit_notes.md;")
    w("     the maps section is bench/maps/RESULTS-maps.md. -->")
    w("# Interpreter vs native: compute kernels")
    w("")
    w("Command (Release build, from the repository root):")
    w("")
    w("```sh")
    w("cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DEBPFRT_BUILD_BENCH=ON")
    w("ninja -C build-bench ebpfrt_bench_interp")
    w(a.command)
    w("```")
    if a.bench_command:
        w("")
        w(f"which ran `{a.bench_command}`.")
    w("")
    w("| machine | |")
    w("|---|---|")
    mhz = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            mhz = next(l.split(":")[1].strip() for l in f if l.startswith("cpu MHz"))
    except (OSError, StopIteration):
        pass
    virt = "yes (hypervisor CPU flag)" if "hypervisor" in cpu.get("Flags", "").split() else "no"
    w(f"| CPU | {cpu.get('Model name', platform.processor() or '?')} (family {cpu.get('CPU family', '?')}, "
      f"model {cpu.get('Model', '?')}), {cpu.get('CPU(s)', ctx.get('num_cpus', '?'))} CPUs, "
      f"{threads} thread(s) per core, {mhz} MHz |")
    w(f"| virtual machine | {virt} |")
    w(f"| kernel | Linux {platform.release()} |")
    cc_version = first_line([c_compiler, "--version"])
    clang_version = first_line([bpf_clang, "--version"])
    cc_name, clang_name = short_name(cc_version, c_compiler), short_name(clang_version, bpf_clang)
    w(f"| native kernels | `{cc_version}`, `-O2` (the build's C compiler); `{clang_version}`, `-O2` |")
    w(f"| BPF kernels | `{clang_version}`, `-target bpf -mcpu=v4 -O2` |")
    w(f"| interpreter | `{first_line([cxx_compiler, '--version'])}`, "
      f"CMAKE_BUILD_TYPE={cache.get('CMAKE_BUILD_TYPE', '?')} |")
    w(f"| Google Benchmark | Debian's libbenchmark, which reports itself as a {ctx.get('library_build_type', '?')} "
      f"build (the timed loop is inlined from the header and built with the flags above) |")
    load = ctx.get("load_avg")
    w(f"| date | {ctx.get('date', '?')}; load average at start "
      f"{', '.join(f'{x:.2f}' for x in load) if load else '?'} |")
    w("")
    interleaved = "random_interleaving=true" in a.bench_command
    w("Each kernel in `bench/kernels/` is one C function, compiled from the same source for BPF (its")
    w("`.text` run as raw bytecode, r1 = context, r2 = its size) and natively, twice: with the build's C")
    w(f"compiler ({cc_name}) and with the clang that compiles the BPF code ({clang_name}), each called through a")
    w("volatile function pointer. All variants get the same 4 KiB input (fixed-seed pseudo-random bytes;")
    w("strcmp gets pairs of strings with long common prefixes), and before timing the benchmark checks")
    w("that both native builds and both interpreter modes return the same value and leave the context")
    w("the same. Checked mode (the default) bounds-checks every load and store against the context and")
    if interleaved:
        w("the stack; unchecked mode is for verified programs. Each time is the fastest of 3 repetitions")
        w("(interleaved at random with the repetitions of the other benchmarks, so that drift falls on both")
        w("sides of a ratio); on this shared 2-CPU VM other load slows single repetitions by up to 4x, which")
        w("a median of 3 does not filter out when it hits two of them.")
    else:
        w("the stack; unchecked mode is for verified programs. Each time is the fastest of 3 repetitions.")
    w("\"insns/run\" is the number of BPF instructions one run executes (found with")
    w("`VmOptions::insn_budget`); ns/insn is interpreter time divided by it.")
    w("")
    rows = []
    for k in KERNELS:
        if ("BM_native", k) not in med:
            continue
        nat = med[("BM_native", k)][0]
        nat_clang = med.get(("BM_native_clang", k), (None, {}))[0]
        chk, chk_b = med.get(("BM_interp", k), (None, {}))
        unc, _ = med.get(("BM_interp_unchecked", k), (None, {}))
        insns = chk_b.get("bpf_insns") if isinstance(chk_b, dict) else None
        binpath = os.path.join(a.build_dir, "bench", "interp", f"bench_{k}.bin")
        slots = os.path.getsize(binpath) // 8 if os.path.exists(binpath) else None
        best = min(t for t in (nat, nat_clang) if t) if nat or nat_clang else None
        rows.append(dict(k=k, slots=slots, insns=insns, nat=nat, nat_clang=nat_clang, best=best, chk=chk, unc=unc))

    w(f"| kernel | code (slots) | insns/run | native {cc_name} | native {clang_name} | interp checked "
      "| interp unchecked | ns/insn checked | ns/insn unchecked |")
    w("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        per = lambda t: f"{t / r['insns']:.2f}" if t and r["insns"] else "?"
        w(f"| {r['k']} | {r['slots'] if r['slots'] is not None else '?'} | "
          f"{int(r['insns']) if r['insns'] else '?'} | {fmt_time(r['nat'])} | {fmt_time(r['nat_clang'])} "
          f"| {fmt_time(r['chk'])} | {fmt_time(r['unc'])} | {per(r['chk'])} | {per(r['unc'])} |")
    w("")

    def ratio(x, y):
        return x / y if x and y else None

    cols = [("chk", "nat"), ("chk", "nat_clang"), ("chk", "best"), ("unc", "nat"), ("unc", "nat_clang"),
            ("unc", "best")]
    w("Ratios, interpreter time / native time (\"faster native\": the faster of the two native builds, per"
      " kernel):")
    w("")
    w(f"| kernel | checked / {cc_name} | checked / {clang_name} | checked / faster native "
      f"| unchecked / {cc_name} | unchecked / {clang_name} | unchecked / faster native |")
    w("|---|--:|--:|--:|--:|--:|--:|")
    ratios = {c: [] for c in cols}
    for r in rows:
        cells = []
        for c in cols:
            x = ratio(r[c[0]], r[c[1]])
            ratios[c].append(x)
            cells.append(f"{x:.1f}x" if x else "?")
        w(f"| {r['k']} | " + " | ".join(cells) + " |")
    g = {c: geomean(v) for c, v in ratios.items()}
    w("| **geomean** | " + " | ".join(f"**{g[c]:.1f}x**" if g[c] else "?" for c in cols) + " |")
    w("")
    if all(g.values()):
        def verdict(x):
            return "met" if x <= TARGET else "not met"
        w(f"Target: interpreter geomean <= {TARGET:.0f}x native. Checked mode: {g[('chk', 'nat')]:.1f}x against "
          f"{cc_name}, {g[('chk', 'nat_clang')]:.1f}x against {clang_name}, {g[('chk', 'best')]:.1f}x against the "
          f"faster native build ({verdict(g[('chk', 'best')])}); unchecked mode: {g[('unc', 'best')]:.1f}x against "
          f"the faster native build ({verdict(g[('unc', 'best')])}).")
        w("")
    notes = os.path.join(here, "notes.md")
    if os.path.exists(notes):
        with open(notes, encoding="utf-8") as f:
            w(f.read().rstrip("\n"))
        w("")
    text = "\n".join(lines)
    for path in a.append:
        with open(path, encoding="utf-8") as f:
            text += "\n" + f.read().rstrip("\n") + "\n"
    if not text.endswith("\n"):
        text += "\n"
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    if all(g.values()):
        print(f"geomean interp/native ({cc_name}, {clang_name}, faster): checked {g[('chk', 'nat')]:.1f}x, "
              f"{g[('chk', 'nat_clang')]:.1f}x, {g[('chk', 'best')]:.1f}x; unchecked {g[('unc', 'nat')]:.1f}x, "
              f"{g[('unc', 'nat_clang')]:.1f}x, {g[('unc', 'best')]:.1f}x", file=sys.stderr)


if __name__ == "__main__":
    main()
