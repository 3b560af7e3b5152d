// The interpreter against native code, in the same run, on the compute kernels of bench/kernels:
// each kernel is one C function compiled for BPF (clang-19 -target bpf -mcpu=v4 -O2, raw .text,
// run as r1 = ctx, r2 = ctx size) and natively at -O2, both with the C compiler of the build and with
// clang-19 (the compiler of the BPF code). For each kernel:
//   BM_native/<name>            the native function (build's C compiler), called through a volatile pointer
//   BM_native_clang/<name>      the same, compiled by clang-19
//   BM_interp/<name>            Interpreter::run in checked mode (the default)
//   BM_interp_unchecked/<name>  Interpreter::run with VmOptions{.checked = false}
//   BM_jit/<name>               JitProgram::run (LLVM ORC, O3) in checked mode
//   BM_jit_unchecked/<name>     JitProgram::run with VmOptions{.checked = false}
// All four get the same input. Before any timing, the four results are compared; a mismatch
// is an interpreter bug and ends the program with a message.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/vm.hpp>

extern "C" {
unsigned long long bench_sum(unsigned char* ctx, unsigned long long len);
unsigned long long bench_sum_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_fnv1a(unsigned char* ctx, unsigned long long len);
unsigned long long bench_fnv1a_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_bubble_sort(unsigned char* ctx, unsigned long long len);
unsigned long long bench_bubble_sort_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_crc32(unsigned char* ctx, unsigned long long len);
unsigned long long bench_crc32_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_collatz(unsigned char* ctx, unsigned long long len);
unsigned long long bench_collatz_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_sieve(unsigned char* ctx, unsigned long long len);
unsigned long long bench_sieve_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_memcpy(unsigned char* ctx, unsigned long long len);
unsigned long long bench_memcpy_clang(unsigned char* ctx, unsigned long long len);
unsigned long long bench_strcmp(unsigned char* ctx, unsigned long long len);
unsigned long long bench_strcmp_clang(unsigned char* ctx, unsigned long long len);
}

namespace {

using NativeFn = unsigned long long (*)(unsigned char*, unsigned long long);

constexpr std::size_t ctx_size = 4096;

struct Kernel {
    const char* name;
    NativeFn native;        // the build's C compiler, -O2
    NativeFn native_clang;  // clang-19, -O2
    bool strings = false;   // input is pairs of strings (strcmp) rather than random bytes
};

#define EBPFRT_BENCH_KERNEL(name, ...) {#name, bench_##name, bench_##name##_clang __VA_OPT__(, ) __VA_ARGS__}
const Kernel kernels[] = {
    EBPFRT_BENCH_KERNEL(sum),   EBPFRT_BENCH_KERNEL(fnv1a),   EBPFRT_BENCH_KERNEL(bubble_sort),
    EBPFRT_BENCH_KERNEL(crc32), EBPFRT_BENCH_KERNEL(collatz), EBPFRT_BENCH_KERNEL(sieve),
    EBPFRT_BENCH_KERNEL(memcpy), EBPFRT_BENCH_KERNEL(strcmp, true),
};
#undef EBPFRT_BENCH_KERNEL

// xorshift64*: a fixed seed, so every run (and every machine) times the same input.
struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545f4914f6cdd1dULL;
    }
};

std::vector<std::byte> make_input(const Kernel& k) {
    std::vector<std::byte> buf(ctx_size);
    Rng rng{0x9e3779b97f4a7c15ULL};
    for (auto& b : buf) b = static_cast<std::byte>(rng.next() >> 56);
    if (k.strings) {
        // 16 pairs at 256 * i and 256 * i + 128: a string of 96..127 non-NUL characters, and a copy
        // of it that is equal for even pairs and differs in one of its last 8 characters for odd ones.
        for (std::size_t pair = 0; pair < 16; ++pair) {
            std::byte* a = buf.data() + pair * 256;
            std::byte* b = a + 128;
            std::size_t len = 96 + rng.next() % 32;
            for (std::size_t i = 0; i < len; ++i) a[i] = static_cast<std::byte>(1 + rng.next() % 255);
            a[len] = std::byte{0};
            for (std::size_t i = 0; i <= len; ++i) b[i] = a[i];
            if (pair % 2 == 1) {
                std::size_t at = len - 1 - rng.next() % 8;
                b[at] = static_cast<std::byte>(1 + (std::to_integer<unsigned>(a[at]) + rng.next() % 254) % 255);
            }
        }
    }
    return buf;
}

std::vector<std::byte> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        fmt::print(stderr, "read \"{}\": cannot open\n", path);
        std::exit(1);
    }
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(chars.size());
    for (std::size_t i = 0; i < chars.size(); ++i) bytes[i] = static_cast<std::byte>(chars[i]);
    return bytes;
}

ebpfrt::Interpreter prepare(const std::vector<ebpfrt::Insn>& insns, const char* name,
                            const ebpfrt::VmOptions& options) {
    auto interp = ebpfrt::Interpreter::create(insns, ebpfrt::HelperTable{}, options);
    if (!interp) {
        fmt::print(stderr, "prepare kernel \"{}\": {}\n", name, interp.error().message());
        std::exit(1);
    }
    return std::move(*interp);
}

// A kernel ready to run: its input and both interpreter variants.
struct Prepared {
    const Kernel* kernel;
    std::vector<std::byte> input;
    std::optional<ebpfrt::Interpreter> checked;
    std::optional<ebpfrt::Interpreter> unchecked;
    std::optional<ebpfrt::JitProgram> jit_checked;
    std::optional<ebpfrt::JitProgram> jit_unchecked;
    std::uint64_t insns_executed = 0;  // BPF instructions one run executes; 0 if unknown
};

// Instructions one run executes: the smallest insn_budget the run succeeds with (binary search).
// 0 when the budget does not behave so (e.g. not enforced).
std::uint64_t count_insns(const std::vector<ebpfrt::Insn>& insns, const std::vector<std::byte>& input) {
    auto succeeds = [&](std::uint64_t budget) {
        ebpfrt::VmOptions options;
        options.checked = false;
        options.insn_budget = budget;
        auto interp = ebpfrt::Interpreter::create(insns, ebpfrt::HelperTable{}, options);
        if (!interp) return false;
        auto ctx = input;
        return interp->run(ctx).has_value();
    };
    std::uint64_t lo = 1, hi = std::uint64_t{1} << 26;
    if (succeeds(lo) || !succeeds(hi)) return 0;
    while (hi - lo > 1) {  // invariant: lo fails, hi succeeds
        std::uint64_t mid = lo + (hi - lo) / 2;
        (succeeds(mid) ? hi : lo) = mid;
    }
    return hi;
}

std::vector<Prepared> prepare_all() {
    std::vector<Prepared> out;
    bool ok = true;
    for (const Kernel& k : kernels) {
        std::string path = fmt::format("{}/bench_{}.bin", EBPFRT_BENCH_KERNEL_DIR, k.name);
        auto code = read_file(path);
        auto insns = ebpfrt::isa::decode(code);
        if (!insns) {
            fmt::print(stderr, "decode \"{}\": {}\n", path, insns.error().message());
            std::exit(1);
        }
        Prepared p{&k, make_input(k), std::nullopt, std::nullopt};
        p.checked = prepare(*insns, k.name, ebpfrt::VmOptions{});
        p.unchecked = prepare(*insns, k.name, ebpfrt::VmOptions{.checked = false});
        if (ebpfrt::jit_available()) {
            auto jc = ebpfrt::JitProgram::create(*insns, ebpfrt::HelperTable{}, ebpfrt::VmOptions{});
            auto ju = ebpfrt::JitProgram::create(*insns, ebpfrt::HelperTable{}, ebpfrt::VmOptions{.checked = false});
            if (!jc || !ju) {
                fmt::print(stderr, "jit kernel \"{}\": {}\n", k.name, (jc ? ju.error() : jc.error()).message());
                std::exit(1);
            }
            fmt::print(stderr, "kernel {:<12} jit compile {:.0f} us (checked), {:.0f} us (unchecked)\n", k.name,
                       jc->compile_us(), ju->compile_us());
            p.jit_checked = std::move(*jc);
            p.jit_unchecked = std::move(*ju);
        }

        auto native_ctx = p.input;
        std::uint64_t native = k.native(reinterpret_cast<unsigned char*>(native_ctx.data()), native_ctx.size());
        auto clang_ctx = p.input;
        std::uint64_t native_clang =
            k.native_clang(reinterpret_cast<unsigned char*>(clang_ctx.data()), clang_ctx.size());
        if (native_clang != native || clang_ctx != native_ctx) {
            fmt::print(stderr, "kernel \"{}\": the two native builds disagree ({:#x}, clang {:#x})\n", k.name, native,
                       native_clang);
            ok = false;
        }
        const std::pair<const char*, const ebpfrt::Interpreter*> variants[] = {{"checked", &*p.checked},
                                                                               {"unchecked", &*p.unchecked}};
        const std::pair<const char*, const ebpfrt::JitProgram*> jits[] = {
            {"jit checked", p.jit_checked ? &*p.jit_checked : nullptr},
            {"jit unchecked", p.jit_unchecked ? &*p.jit_unchecked : nullptr}};
        for (auto [mode, jit] : jits) {
            if (jit == nullptr) continue;
            auto ctx = p.input;
            auto r = jit->run(ctx);
            if (!r || *r != native || ctx != native_ctx) {
                fmt::print(stderr, "kernel \"{}\": {} differs from native\n", k.name, mode);
                ok = false;
            }
        }
        for (auto [mode, interp] : variants) {
            auto ctx = p.input;
            auto r = interp->run(ctx);
            if (!r) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) failed: {}\n", k.name, mode, r.error().message());
                ok = false;
            } else if (*r != native) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) returned {:#x}, native {:#x}\n", k.name, mode, *r,
                           native);
                ok = false;
            } else if (ctx != native_ctx) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) left the context different from native\n",
                           k.name, mode);
                ok = false;
            }
        }
        p.insns_executed = count_insns(*insns, p.input);
        fmt::print(stderr, "kernel {:<12} {:>5} insns  result {:#018x}  {:>8} insns/run\n", k.name, insns->size(),
                   native, p.insns_executed);
        out.push_back(std::move(p));
    }
    if (!ok) {
        fmt::print(stderr, "results differ between native and interpreted runs: not timing\n");
        std::exit(1);
    }
    return out;
}

void bm_native(benchmark::State& state, const Prepared* p, NativeFn native) {
    auto ctx = p->input;
    NativeFn volatile fn = native;  // opaque to the optimizer: no folding, no hoisting
    for (auto _ : state) {
        unsigned long long r = fn(reinterpret_cast<unsigned char*>(ctx.data()), ctx.size());
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
}

void bm_jit(benchmark::State& state, const Prepared* p, const ebpfrt::JitProgram* jit) {
    auto ctx = p->input;
    for (auto _ : state) {
        auto r = jit->run(ctx);
        if (!r) {
            state.SkipWithError(r.error().message().c_str());
            break;
        }
        benchmark::DoNotOptimize(*r);
        benchmark::ClobberMemory();
    }
}

void bm_interp(benchmark::State& state, const Prepared* p, const ebpfrt::Interpreter* interp) {
    auto ctx = p->input;
    for (auto _ : state) {
        auto r = interp->run(ctx);
        if (!r) {
            state.SkipWithError(r.error().message().c_str());
            break;
        }
        benchmark::DoNotOptimize(*r);
        benchmark::ClobberMemory();
    }
    if (p->insns_executed != 0) state.counters["bpf_insns"] = static_cast<double>(p->insns_executed);
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    static const std::vector<Prepared> prepared = prepare_all();
    for (const Prepared& p : prepared) {
        std::string name = p.kernel->name;
        benchmark::RegisterBenchmark(("BM_native/" + name).c_str(), bm_native, &p, p.kernel->native);
        benchmark::RegisterBenchmark(("BM_native_clang/" + name).c_str(), bm_native, &p, p.kernel->native_clang);
        benchmark::RegisterBenchmark(("BM_interp/" + name).c_str(), bm_interp, &p, &*p.checked);
        benchmark::RegisterBenchmark(("BM_interp_unchecked/" + name).c_str(), bm_interp, &p, &*p.unchecked);
        if (p.jit_checked) {
            benchmark::RegisterBenchmark(("BM_jit/" + name).c_str(), bm_jit, &p, &*p.jit_checked);
            benchmark::RegisterBenchmark(("BM_jit_unchecked/" + name).c_str(), bm_jit, &p, &*p.jit_unchecked);
        }
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
