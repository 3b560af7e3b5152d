// JIT compile latency: a 1000-instruction program (ALU work, loads and stores on the stack and the
// context, forward branches; the 60 stack slots it reads are written first, so nothing folds to an
// undefined value), compiled fresh each iteration (an immediate changes, so the compile cache misses),
// and the same program loaded again (a cache hit).

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>

namespace {

std::string program_text(std::uint32_t seed, int blocks) {
    std::string s = "mov %r0, 0\nmov %r6, 0\n";
    for (int slot = 1; slot <= 60; ++slot) s += fmt::format("stdw [%r10-{}], {}\n", 8 * slot, seed + slot);
    for (int b = 0; b < blocks; ++b) {
        s += fmt::format("add %r0, {}\n", seed + b);
        s += "mov %r2, %r0\nlsh %r2, 3\nxor %r2, %r6\n";
        s += fmt::format("stxdw [%r10-{}], %r2\n", 8 * (1 + b % 60));
        s += fmt::format("ldxdw %r3, [%r10-{}]\n", 8 * (1 + (b + 7) % 60));
        s += "add %r6, %r3\n";
        s += fmt::format("jgt %r6, {}, +2\n", 1000 + b);
        s += "mul %r6, 3\nja +1\nrsh %r6, 1\n";
        s += "jlt %r2, 2, +1\nldxb %r4, [%r1+0]\n";  // a context load on one side
    }
    s += "exit\n";
    return s;
}

void BM_jit_compile_1000(benchmark::State& state) {
    std::uint32_t seed = 1;
    std::size_t insns = 0;
    for (auto _ : state) {
        state.PauseTiming();
        auto prog = ebpfrt::isa::assemble(program_text(seed++ * 7919, 72)).value();
        insns = prog.size();
        state.ResumeTiming();
        auto jit = ebpfrt::JitProgram::create(prog, {}, {.checked = state.range(0) != 0});
        if (!jit) {
            state.SkipWithError(jit.error().message().c_str());
            break;
        }
        benchmark::DoNotOptimize(jit);
    }
    state.counters["insns"] = static_cast<double>(insns);
}
BENCHMARK(BM_jit_compile_1000)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->Iterations(30);

void BM_jit_cached_load_1000(benchmark::State& state) {
    auto prog = ebpfrt::isa::assemble(program_text(424242, 72)).value();
    auto first = ebpfrt::JitProgram::create(prog, {});
    if (!first) {
        state.SkipWithError(first.error().message().c_str());
        return;
    }
    for (auto _ : state) {
        auto again = ebpfrt::JitProgram::create(prog, {});
        benchmark::DoNotOptimize(again);
    }
    state.counters["insns"] = static_cast<double>(prog.size());
}
BENCHMARK(BM_jit_cached_load_1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
