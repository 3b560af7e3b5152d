#!/usr/bin/env python3
"""Writes the "our JIT vs native vs the kernel's JIT" section of bench/RESULTS.md, and its plot.

Reads the Google Benchmark JSON of ebpfrt_bench_interp (BM_native*, BM_interp*, BM_jit*/<k>/load<i>,
BM_kernel/<k>/load<i>) and writes a markdown section (--out), a data file and, when gnuplot is
installed, a PNG bar chart (--png): per kernel, each engine's time as a ratio to native clang -O2 on a
log scale. bench/interp/jit_notes.md (hand-written analysis), when present, follows the tables.
Called by bench/run.sh.

Per load, a time is the fastest of its repetitions (other load on a shared machine only slows a
repetition down); across the loads of one kernel the table gives the median and the range.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

COMPUTE = ["sum", "fnv1a", "bubble_sort", "crc32", "collatz", "sieve", "memcpy", "strcmp"]
MAPS = ["map_array", "map_array_update", "map_hash"]
TARGET = 1.10  # our JIT (unchecked) geomean / native clang -O2
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
ENGINES = [  # (key, label in tables and the plot)
    ("jit_u", "our JIT, unchecked"),
    ("jit_c", "our JIT, checked"),
    ("interp", "interpreter, checked"),
    ("kernel", "kernel JIT"),
]


def per_run_ns(b):
    t = b["real_time"] * UNIT_NS[b.get("time_unit", "ns")]
    return t / b["runs_per_iter"] if "runs_per_iter" in b else t


def collect(data):
    """{(variant, kernel): {load: (best ns, entry)}}; load is 0 for benchmarks without loads."""
    out = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        name = b.get("run_name", b["name"]).replace("/manual_time", "")
        parts = name.split("/")
        variant, kernel = parts[0], parts[1] if len(parts) > 1 else ""
        load = int(parts[2][4:]) if len(parts) > 2 and parts[2].startswith("load") else 0
        t = per_run_ns(b)
        slot = out.setdefault((variant, kernel), {})
        if load not in slot or t < slot[load][0]:
            slot[load] = (t, b)
    return out


class Stat:
    """Median and range over the loads of one engine on one kernel."""

    def __init__(self, times):
        self.times = sorted(times)
        self.med = statistics.median(self.times) if self.times else None
        self.lo = self.times[0] if self.times else None
        self.hi = self.times[-1] if self.times else None


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns" if ns >= 10 else f"{ns:.1f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def fmt_stat(s):
    if s is None or s.med is None:
        return "-"
    if len(s.times) == 1:
        return fmt_ns(s.med)
    return f"{fmt_ns(s.med)} ({fmt_ns(s.lo)}..{fmt_ns(s.hi)})"


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fx(x, bold=False):
    if x is None:
        return "-"
    s = f"{x:.2f}x"
    return f"**{s}**" if bold else s


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", required=True)
    ap.add_argument("--out", required=True, help="markdown section to write")
    ap.add_argument("--png", required=True, help="plot to write (skipped without gnuplot)")
    ap.add_argument("--data", required=True, help="plot data file to write")
    ap.add_argument("--load-before", default="?", help="/proc/loadavg before the run")
    ap.add_argument("--load-after", default="?", help="/proc/loadavg after the run")
    ap.add_argument("--command", default="", help="the benchmark command line")
    a = ap.parse_args()

    with open(a.json, encoding="utf-8") as f:
        data = json.load(f)
    ctx = data.get("context", {})
    res = collect(data)

    def stat(variant, kernel):
        loads = res.get((variant, kernel), {})
        return Stat([t for t, _ in loads.values()]) if loads else None

    rows = []
    for k in COMPUTE + MAPS:
        if ("BM_native_clang", k) not in res:
            continue
        kernel_loads = res.get(("BM_kernel", k), {})
        wall = [b.get("wall_ns_per_run") for _, b in kernel_loads.values() if b.get("wall_ns_per_run")]
        rows.append(dict(
            k=k,
            native=stat("BM_native_clang", k).med,
            native_gcc=stat("BM_native", k).med if stat("BM_native", k) else None,
            jit_u=stat("BM_jit_unchecked", k),
            jit_c=stat("BM_jit", k),
            interp=stat("BM_interp", k),
            kernel=stat("BM_kernel", k),
            kernel_wall=statistics.median(wall) if wall else None,
            skip=ctx.get(f"kernel_skip/{k}"),
        ))

    def med(r, key):
        s = r[key]
        return s.med if s is not None else None

    def ratio(x, y):
        return x / y if x and y else None

    loads = ctx.get("ebpfrt_loads", "?")
    jit_enable = ctx.get("bpf_jit_enable", "?")
    kernel_bpf = ctx.get("kernel_bpf", "?")
    lines = []
    w = lines.append
    w("# Our JIT vs native and vs the kernel's JIT")
    w("")
    w("Same run, binary and machine as the interpreter section above"
      + (f" (`{a.command}`)" if a.command else "") + ". Load average (1, 5, 15 min) before the run "
      f"{a.load_before}, after it {a.load_after}: other jobs (builds, tests of other engineers) shared the "
      "2 vCPUs during the run, so single repetitions are noisy; each load's time is its fastest of 3 "
      "repetitions, interleaved at random with all other benchmarks.")
    w("")
    w("Engines, per kernel, all in one process and one run:")
    w("")
    w("- **native**: the kernel's C source at `-O2` with clang 19 (the compiler of the BPF code; the ratios"
      " are to it) and with the build's gcc, called through a volatile function pointer.")
    w(f"- **our JIT**: LLVM ORC (O3), unchecked and checked mode; each kernel compiled {loads} times as separate"
      " programs (separate code placement; for the raw compute kernels a distinct `VmOptions::env` keeps the"
      " compile cache from returning the same code, and the bench checks each load was compiled).")
    w("- **interpreter**: checked mode (the default).")
    w(f"- **kernel JIT**: the same bytecode loaded {loads} times with `bpf(BPF_PROG_LOAD)` as"
      " `BPF_PROG_TYPE_SCHED_CLS` and run with `BPF_PROG_TEST_RUN` and `repeat` (about 1 ms of runs per"
      " call) on 64 bytes of packet data. Compute kernels take r1 = a 4 KiB buffer and r2 = its size, which"
      " no kernel program type gets at entry (skb/XDP linear data is at most ~3.5 KiB, and `repeat` is"
      " refused for SYSCALL programs), so a 14-instruction entry looks the buffer up in a one-element"
      " array map (value 4096 + 8 bytes, filled with the same input), calls the unchanged kernel bytecode"
      " as a BPF-to-BPF subprogram and stores its 64-bit r0 after the buffer. Map kernels are the ELF"
      " program with its map references turned into fds of kernel maps of the same type and shape, filled"
      " identically. Time per run is the kernel's `duration` (ktime around its run loop divided by"
      " `repeat`, so it leaves out the system call, the copy of the packet and time the task was"
      " rescheduled); the wall clock around the call, per run, is also given.")
    w("")
    w(f"Kernel BPF here: {kernel_bpf}; `/proc/sys/net/core/bpf_jit_enable` = {jit_enable}"
      + (" (JIT on)." if jit_enable == "1" else "."))
    w("Before timing, every engine and every load runs once from the same state and must return native's"
      " result and leave the same context or map contents (the kernel's 64-bit result and buffer are"
      " read back from its map), so no baseline times a wrong program.")
    w("")
    empty_j = stat("BM_jit_unchecked", "empty")
    empty_k = stat("BM_kernel", "empty")
    if empty_j or empty_k:
        w(f"Per-run overhead of the harnesses, a program that returns at once: `JitProgram::run` "
          f"{fmt_ns(empty_j.med) if empty_j else '-'}; the kernel's test-run loop with the entry above "
          f"{fmt_ns(empty_k.med) if empty_k else '-'}. Both are included in the times below.")
        w("")
    w("The map kernels (`bench/kernels/map_*.c`, one source for BPF and native, `map_common.h`):")
    w("")
    w("- **map_array**: 4096 x (array lookup of key i % 256, `*v += i`, sum the new values).")
    w("- **map_array_update**: 1024 x (array lookup, then `bpf_map_update_elem` of the value plus i).")
    w("- **map_hash**: 2048 lookups of present keys in a full 1024-entry u32 -> u64 hash map.")
    w("")
    w("Native for them is the same C over plain data structures of the same shape: a `u64[256]` for the"
      " array (lookup = bounds check and index, update = store) and an open-addressing table for the hash"
      " map (2048 slots, murmur3 finaliser, linear probing). That is the cost of the work in C without any"
      " map semantics (no concurrency, no RCU, no per-element locking); our runtime and the kernel pay for"
      " those.")
    w("")
    w("## Time per run")
    w("")
    w("Median over loads (min..max) where an engine was loaded several times.")
    w("")
    w("| kernel | native clang | native gcc | our JIT unchecked | our JIT checked | interpreter | kernel JIT "
      "| kernel JIT, wall |")
    w("|---|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        kern = (fmt_stat(r["kernel"]) if r["kernel"] else "skipped" if kernel_bpf != "available"
                else "rejected" if r["skip"] else "-")
        w(f"| {r['k']} | {fmt_ns(r['native'])} | {fmt_ns(r['native_gcc'])} | {fmt_stat(r['jit_u'])} "
          f"| {fmt_stat(r['jit_c'])} | {fmt_stat(r['interp'])} | {kern} | {fmt_ns(r['kernel_wall'])} |")
    w("")

    # Ratios.
    cols = [("jit_u", "native"), ("jit_c", "native"), ("interp", "native"), ("kernel", "native"),
            ("jit_u", "kernel"), ("jit_c", "kernel"), ("interp", "kernel")]
    w("## Ratios")
    w("")
    w("Time / time of native clang -O2, and time / time of the kernel's JIT (medians over loads; for our JIT"
      " against the kernel, the range is min/max of ours over max/min of the kernel's).")
    w("")
    w("| kernel | JIT unchecked / native | JIT checked / native | interp / native | kernel JIT / native "
      "| JIT unchecked / kernel JIT | JIT checked / kernel JIT | interp / kernel JIT |")
    w("|---|--:|--:|--:|--:|--:|--:|--:|")
    vals = {c: {} for c in cols}
    for r in rows:
        cells = []
        for c in cols:
            x = ratio(med(r, c[0]) if c[0] != "native" else r["native"],
                      r["native"] if c[1] == "native" else med(r, "kernel"))
            vals[c][r["k"]] = x
            cell = fx(x)
            if x and c[1] == "kernel" and c[0] in ("jit_u", "jit_c") and len(r[c[0]].times) > 1:
                cell += f" ({r[c[0]].lo / r['kernel'].hi:.2f}..{r[c[0]].hi / r['kernel'].lo:.2f})"
            cells.append(cell)
        w(f"| {r['k']} | " + " | ".join(cells) + " |")
    groups = [("compute kernels", [r["k"] for r in rows if r["k"] in COMPUTE]),
              ("map kernels", [r["k"] for r in rows if r["k"] in MAPS]),
              ("all", [r["k"] for r in rows])]
    gm = {}
    for label, ks in groups:
        g = {c: geomean([vals[c].get(k) for k in ks]) for c in cols}
        gm[label] = g
        counts = {c: sum(1 for k in ks if vals[c].get(k)) for c in cols}
        w(f"| **geomean, {label}** | " + " | ".join(
            fx(g[c], True) + (f" ({counts[c]})" if counts[c] != len(ks) and g[c] else "") for c in cols) + " |")
    w("")
    w("A count in parentheses after a geomean: the number of kernels it covers (the others have no kernel JIT"
      " time).")
    w("")

    # Targets.
    w("## Targets (issue 4)")
    w("")
    gc = gm["compute kernels"][("jit_u", "native")]
    ga = gm["all"][("jit_u", "native")]
    gcc_ = gm["compute kernels"][("jit_c", "native")]
    if gc:
        w(f"- **JIT geomean <= {TARGET:.2f}x native** (unchecked mode, against clang -O2): {gc:.2f}x on the compute"
          f" kernels ({'met' if gc <= TARGET else 'not met'}); {ga:.2f}x with the map kernels included "
          f"({'met' if ga <= TARGET else 'not met'}). Checked mode: {gcc_:.2f}x on the compute kernels.")
    slower = [(k, x) for k, x in vals[("jit_u", "kernel")].items() if x and x > 1.0]
    slower_c = [(k, x) for k, x in vals[("jit_c", "kernel")].items() if x and x > 1.0]
    compared = [k for k, x in vals[("jit_u", "kernel")].items() if x]
    rejected = [r["k"] for r in rows if not r["kernel"] and r["skip"] and kernel_bpf == "available"]
    if compared:
        if slower:
            w(f"- **No kernel slower under our JIT than under the kernel's**: not met. Unchecked, slower on "
              + ", ".join(f"{k} ({x:.2f}x the kernel's time)" for k, x in slower)
              + f"; faster on the other {len(compared) - len(slower)} of the {len(compared)} kernels the kernel"
              " ran.")
        else:
            w(f"- **No kernel slower under our JIT than under the kernel's**: met in unchecked mode on all"
              f" {len(compared)} kernels the kernel ran.")
        if slower_c:
            w("  Checked mode is slower than the kernel's JIT on "
              + ", ".join(f"{k} ({x:.2f}x)" for k, x in slower_c) + ".")
    if rejected:
        w(f"- The kernel's verifier rejected {len(rejected)} of the compute kernels, so they have no kernel JIT"
          " time: " + "; ".join(f"{k}: `{ctx.get('kernel_skip/' + k)}`" for k in rejected) + ".")
    if kernel_bpf != "available":
        w(f"- No kernel JIT baseline in this run: {kernel_bpf}.")
    w("")

    # Plot.
    png_rel = os.path.basename(a.png)
    with open(a.data, "w", encoding="utf-8") as f:
        f.write("# kernel " + " ".join(k for k, _ in ENGINES) + "  (ratio to native clang -O2; ? = none)\n")
        for r in rows:
            f.write(r["k"] + " " + " ".join(
                f"{ratio(med(r, key), r['native']):.4f}" if ratio(med(r, key), r["native"]) else "?"
                for key, _ in ENGINES) + "\n")
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        titles = [t for _, t in ENGINES]
        script = f"""
set terminal pngcairo size 1200,560 font ",10" noenhanced
set output '{a.png}'
set title "Time per run / native clang -O2 (log scale; lower is better; median over {loads} loads for the JITs)"
set logscale y 10
set yrange [0.1:*]
set grid ytics mytics
set ylabel "ratio to native clang -O2"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set key top left
set datafile missing "?"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "black"
plot '{a.data}' using 2:xtic(1) title "{titles[0]}" lc rgb "#1f77b4", \\
     '' using 3 title "{titles[1]}" lc rgb "#aec7e8", \\
     '' using 4 title "{titles[2]}" lc rgb "#ff7f0e", \\
     '' using 5 title "{titles[3]}" lc rgb "#2ca02c"
"""
        p = subprocess.run([gnuplot], input=script, text=True, capture_output=True, check=False)
        if p.returncode != 0 or not os.path.exists(a.png):
            print(f"report_jit: gnuplot failed: {p.stderr.strip()}", file=sys.stderr)
        else:
            print(f"report_jit: wrote {a.png}", file=sys.stderr)
    else:
        print("report_jit: gnuplot not installed (apt-get install gnuplot-nox): the plot is not redrawn",
              file=sys.stderr)
    w(f"![time per run / native clang -O2, log scale, per kernel and engine]({png_rel})")
    w("")
    w(f"`{png_rel}`: bars per kernel for our JIT (unchecked, checked), the interpreter and the kernel's JIT;"
      " a missing green bar is a kernel the kernel's verifier rejected.")
    w("")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interp", "jit_notes.md")
    if os.path.exists(notes):
        with open(notes, encoding="utf-8") as f:
            w(f.read().rstrip("\n"))
        w("")
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    if gc:
        print(f"report_jit: geomean JIT unchecked / native clang: compute {gc:.2f}x, all {ga:.2f}x; slower than "
              f"the kernel's JIT: {', '.join(k for k, _ in slower) or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
