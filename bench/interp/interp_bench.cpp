// Our engines against native code and against the Linux kernel's BPF JIT, in the same run.
//
// Compute kernels (bench/kernels/<name>.c): one C function compiled for BPF (clang-19 -target bpf
// -mcpu=v4 -O2, raw .text, run as r1 = ctx, r2 = ctx size) and natively at -O2, both with the C
// compiler of the build and with clang-19 (the compiler of the BPF code).
// Map kernels (bench/kernels/map_*.c): BPF objects with an array or a hash map, loaded through the
// public Runtime API; natively the same source over a plain C array and an open-addressing table
// (bench/kernels/map_common.h).
//
// For each kernel:
//   BM_native/<name>                    the native function (build's C compiler), through a volatile pointer
//   BM_native_clang/<name>              the same, compiled by clang-19
//   BM_interp/<name>                    the interpreter in checked mode (the default)
//   BM_interp_unchecked/<name>          the interpreter, unchecked
//   BM_jit/<name>/load<i>               our LLVM JIT, checked mode, the i-th of --loads=N separate compiles
//   BM_jit_unchecked/<name>/load<i>     the same, unchecked
//   BM_kernel/<name>/load<i>            the kernel's JIT: the same bytecode loaded with bpf(BPF_PROG_LOAD)
//                                       (i-th of N loads) and run with BPF_PROG_TEST_RUN and `repeat`
// plus BM_jit_unchecked/empty/load0 and BM_kernel/empty/load0: a program that returns at once (per-run
// overhead of each harness). Separate loads matter because code placement moves results.
//
// Before any timing, every variant runs once from the same state and its result (and the context, or
// the map contents) is compared with native; a mismatch ends the program with a message. Kernel
// benchmarks need bpf() (root): when it is unavailable, or the kernel's verifier rejects a program,
// those benchmarks are not registered and the reason is printed (and recorded in the JSON context).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <linux/bpf.h>

#include <benchmark/benchmark.h>
#include <fmt/core.h>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/runtime.hpp>
#include <ebpfrt/vm.hpp>

#include "kernel_bpf.hpp"

extern "C" {
#define EBPFRT_BENCH_DECLARE(name)                                               \
    unsigned long long bench_##name(unsigned char* ctx, unsigned long long len); \
    unsigned long long bench_##name##_clang(unsigned char* ctx, unsigned long long len);
EBPFRT_BENCH_DECLARE(sum)
EBPFRT_BENCH_DECLARE(fnv1a)
EBPFRT_BENCH_DECLARE(bubble_sort)
EBPFRT_BENCH_DECLARE(crc32)
EBPFRT_BENCH_DECLARE(collatz)
EBPFRT_BENCH_DECLARE(sieve)
EBPFRT_BENCH_DECLARE(memcpy)
EBPFRT_BENCH_DECLARE(strcmp)
#undef EBPFRT_BENCH_DECLARE
#define EBPFRT_BENCH_DECLARE_MAP(name)                   \
    unsigned long long bench_##name(unsigned char* ctx); \
    unsigned long long bench_##name##_clang(unsigned char* ctx);
EBPFRT_BENCH_DECLARE_MAP(map_array)
EBPFRT_BENCH_DECLARE_MAP(map_array_update)
EBPFRT_BENCH_DECLARE_MAP(map_hash)
#undef EBPFRT_BENCH_DECLARE_MAP

// The native stand-ins of the maps (bench/kernels/native_maps.c, layout as in map_common.h).
struct bench_hash_slot {
    unsigned int key;
    unsigned int used;
    unsigned long long value;
};
extern unsigned long long bench_native_array[256];
extern struct bench_hash_slot bench_native_hash[2048];
}

namespace {

namespace kbpf = bench::kbpf;
using NativeFn = unsigned long long (*)(unsigned char*, unsigned long long);
using NativeMapFn = unsigned long long (*)(unsigned char*);

constexpr std::size_t ctx_size = 4096;
constexpr std::uint32_t array_entries = 256;  // map_common.h BENCH_ARRAY_ENTRIES
constexpr std::uint32_t hash_entries = 1024;  // BENCH_HASH_ENTRIES
constexpr std::uint32_t hash_slots = 2048;    // BENCH_HASH_SLOTS
constexpr std::size_t packet_size = 64;       // data_in of BPF_PROG_TEST_RUN (>= ETH_HLEN for skb programs)

int loads = 5;  // --loads=N: separate compiles per kernel for our JIT and the kernel's

struct Kernel {
    const char* name;
    NativeFn native;        // the build's C compiler, -O2
    NativeFn native_clang;  // clang-19, -O2
    bool strings = false;   // input is pairs of strings (strcmp) rather than random bytes
};

#define EBPFRT_BENCH_KERNEL(name, ...) \
    { #name, bench_##name, bench_##name##_clang __VA_OPT__(, ) __VA_ARGS__ }
const Kernel kernels[] = {
    EBPFRT_BENCH_KERNEL(sum),    EBPFRT_BENCH_KERNEL(fnv1a),        EBPFRT_BENCH_KERNEL(bubble_sort),
    EBPFRT_BENCH_KERNEL(crc32),  EBPFRT_BENCH_KERNEL(collatz),      EBPFRT_BENCH_KERNEL(sieve),
    EBPFRT_BENCH_KERNEL(memcpy), EBPFRT_BENCH_KERNEL(strcmp, true),
};
#undef EBPFRT_BENCH_KERNEL

struct MapKernel {
    const char* name;
    NativeMapFn native;
    NativeMapFn native_clang;
};
const MapKernel map_kernels[] = {
    {"map_array", bench_map_array, bench_map_array_clang},
    {"map_array_update", bench_map_array_update, bench_map_array_update_clang},
    {"map_hash", bench_map_hash, bench_map_hash_clang},
};

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
                b[at] =
                    static_cast<std::byte>(1 + (std::to_integer<unsigned>(a[at]) + rng.next() % 254) % 255);
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

template <class T>
std::span<const std::byte> bytes_of(const T& v) {
    return std::as_bytes(std::span(&v, 1));
}
template <class T>
std::span<std::byte> writable_bytes_of(T& v) {
    return std::as_writable_bytes(std::span(&v, 1));
}

[[noreturn]] void fail(const std::string& what) {
    fmt::print(stderr, "{}\n", what);
    std::exit(1);
}

ebpfrt::Interpreter prepare(const std::vector<ebpfrt::Insn>& insns, const char* name,
                            const ebpfrt::VmOptions& options) {
    auto interp = ebpfrt::Interpreter::create(insns, ebpfrt::HelperTable{}, options);
    if (!interp) fail(fmt::format("prepare kernel \"{}\": {}", name, interp.error().message()));
    return std::move(*interp);
}

// --- the kernel's JIT ---

// Whether bpf() works, and why not; filled once in main.
struct KernelStatus {
    bool usable = false;
    std::string why;
    int jit_enable = -1;
};
KernelStatus kernel_status;

// One load of a program into the kernel, with the maps it uses (its own, filled by the bench).
struct KernelLoad {
    kbpf::Fd prog;
    std::vector<kbpf::Fd> maps;  // compute kernels: [0] is the 4 KiB input (+ 8 bytes for the result)
    std::uint32_t repeat = 1;    // runs per BPF_PROG_TEST_RUN call while timing
};

ebpfrt::Insn insn(std::uint8_t opcode, std::uint8_t dst, std::uint8_t src, std::int16_t off,
                  std::int32_t imm) {
    ebpfrt::Insn i;
    i.opcode = opcode;
    i.dst = dst;
    i.src = src;
    i.offset = off;
    i.imm = imm;
    return i;
}

// The kernel gives an entry program r1 = ctx only, and BPF_PROG_TEST_RUN with `repeat` runs only
// skb/XDP programs, whose linear data is at most ~3.5 KiB. So a compute kernel runs in the kernel as
// a BPF-to-BPF call from a SCHED_CLS entry that looks up the 4 KiB input in an array map (value
// size 4096 + 8) and calls the unchanged kernel bytecode with r1 = that value, r2 = 4096; the 64-bit
// result is stored after the input (the kernel reports only 32 bits of r0). The entry costs an
// inlined array lookup, a call and a store per run (BM_kernel/empty measures it with a body that
// returns at once).
std::vector<ebpfrt::Insn> kernel_wrapper(int map_fd, std::span<const ebpfrt::Insn> body) {
    namespace isa = ebpfrt::isa;
    std::vector<ebpfrt::Insn> w = {
        insn(0x62, 10, 0, -4, 0),                                  // *(u32 *)(r10 - 4) = 0
        insn(isa::opcode_lddw, 1, isa::pseudo_map_fd, 0, map_fd),  // r1 = map
        insn(0, 0, 0, 0, 0),
        insn(0xbf, 2, 10, 0, 0),                                   // r2 = r10
        insn(0x07, 2, 0, 0, -4),                                   // r2 += -4
        insn(isa::opcode_call, 0, 0, 0, 1),                        // call bpf_map_lookup_elem
        insn(0x15, 0, 0, 5, 0),                                    // if r0 == 0 goto out
        insn(0xbf, 6, 0, 0, 0),                                    // r6 = r0
        insn(0xbf, 1, 0, 0, 0),                                    // r1 = r0
        insn(0xb7, 2, 0, 0, static_cast<std::int32_t>(ctx_size)),  // r2 = 4096
        insn(isa::opcode_call, 0, isa::call_local, 0, 3),          // call body
        insn(0x7b, 6, 0, static_cast<std::int16_t>(ctx_size), 0),  // *(u64 *)(r6 + 4096) = r0
        insn(0xb7, 0, 0, 0, 0),                                    // out: r0 = 0
        insn(isa::opcode_exit, 0, 0, 0, 0),
    };
    w.insert(w.end(), body.begin(), body.end());
    return w;
}

// Runs per BPF_PROG_TEST_RUN call so that one call takes about a millisecond.
std::uint32_t calibrate_repeat(const kbpf::Fd& prog) {
    std::vector<std::byte> data(packet_size);
    auto r = kbpf::test_run(prog, data, 64);
    double per_run = r ? std::max(1.0, r->wall_ns / 64) : 1000.0;
    return static_cast<std::uint32_t>(std::clamp(1e6 / per_run, 64.0, 1e6));
}

// Loads a compute kernel (raw bytecode) into the kernel with its input; checks one run against the
// native result and context. Errors name the verifier's reason.
ebpfrt::Result<KernelLoad> kernel_load_compute(const std::string& name, std::span<const ebpfrt::Insn> body,
                                               const std::vector<std::byte>& input, std::uint64_t want,
                                               const std::vector<std::byte>* want_ctx) {
    ebpfrt::MapSpec spec;
    spec.type = ebpfrt::MapType::array;
    spec.key_size = 4;
    spec.value_size = static_cast<std::uint32_t>(ctx_size + 8);
    spec.max_entries = 1;
    auto map = kbpf::map_create(spec);
    if (!map) return map.error();
    std::vector<std::byte> value(ctx_size + 8);
    std::copy(input.begin(), input.end(), value.begin());
    const std::uint32_t zero = 0;
    if (auto ok = kbpf::map_update(*map, bytes_of(zero), value); !ok) return ok.error();
    auto code = kernel_wrapper(map->get(), body);
    auto prog = kbpf::prog_load(BPF_PROG_TYPE_SCHED_CLS, code, name);
    if (!prog) return prog.error();
    std::vector<std::byte> data(packet_size);
    auto run = kbpf::test_run(*prog, data, 1);
    if (!run) return run.error();
    if (auto ok = kbpf::map_lookup(*map, bytes_of(zero), value); !ok) return ok.error();
    std::uint64_t got = 0;
    std::memcpy(&got, value.data() + ctx_size, 8);
    if (got != want ||
        (want_ctx != nullptr && !std::equal(want_ctx->begin(), want_ctx->end(), value.begin())))
        fail(fmt::format(
            "kernel \"{}\": the kernel's run returned {:#x} (native {:#x}) or left the input different", name,
            got, want));
    KernelLoad out;
    out.prog = std::move(*prog);
    out.maps.push_back(std::move(*map));
    out.repeat = calibrate_repeat(out.prog);
    return out;
}

// --- map kernels: filling and reading back maps of every flavour identically ---

std::uint32_t hash_key(std::uint32_t j) { return j * 2654435761u + 1u; }  // bench_hash_key
std::uint64_t hash_value(std::uint32_t j) { return std::uint64_t{j} * j + 1; }
std::uint64_t array_value(std::uint32_t k) { return std::uint64_t{k} * 3; }

void fill_native() {
    for (std::uint32_t k = 0; k < array_entries; ++k) bench_native_array[k] = array_value(k);
    std::memset(bench_native_hash, 0, sizeof bench_native_hash);
    for (std::uint32_t j = 0; j < hash_entries; ++j) {
        std::uint32_t key = hash_key(j);
        std::uint32_t s = key;  // bench_hash_slot_of: murmur3's finalizer
        s ^= s >> 16;
        s *= 0x85ebca6bu;
        s ^= s >> 13;
        s *= 0xc2b2ae35u;
        s ^= s >> 16;
        s %= hash_slots;
        while (bench_native_hash[s].used) s = (s + 1) % hash_slots;
        bench_native_hash[s] = {key, 1, hash_value(j)};
    }
}

std::vector<std::uint64_t> native_array_state() {
    return {bench_native_array, bench_native_array + array_entries};
}

// Fills the maps of a loaded collection ("bench_array", "bench_hash" when present).
void fill_collection(const ebpfrt::Collection& c, const char* name) {
    if (auto a = c.map<std::uint32_t, std::uint64_t>("bench_array")) {
        for (std::uint32_t k = 0; k < array_entries; ++k)
            if (auto ok = a->update(k, array_value(k)); !ok)
                fail(fmt::format("fill \"{}\": {}", name, ok.error().message()));
    }
    if (auto h = c.map<std::uint32_t, std::uint64_t>("bench_hash")) {
        for (std::uint32_t j = 0; j < hash_entries; ++j)
            if (auto ok = h->update(hash_key(j), hash_value(j)); !ok)
                fail(fmt::format("fill \"{}\": {}", name, ok.error().message()));
    }
}

std::vector<std::uint64_t> collection_array_state(const ebpfrt::Collection& c) {
    std::vector<std::uint64_t> out;
    if (auto a = c.map<std::uint32_t, std::uint64_t>("bench_array"))
        for (std::uint32_t k = 0; k < array_entries; ++k) out.push_back(a->lookup(k).value_or(~0ull));
    return out;
}

// Fills a kernel map made from `spec` as fill_collection fills ours.
ebpfrt::Result<void> fill_kernel_map(const kbpf::Fd& fd, const ebpfrt::MapSpec& spec) {
    if (spec.name == "bench_array") {
        for (std::uint32_t k = 0; k < array_entries; ++k) {
            std::uint64_t v = array_value(k);
            if (auto ok = kbpf::map_update(fd, bytes_of(k), bytes_of(v)); !ok) return ok.error();
        }
    } else if (spec.name == "bench_hash") {
        for (std::uint32_t j = 0; j < hash_entries; ++j) {
            std::uint32_t key = hash_key(j);
            std::uint64_t v = hash_value(j);
            if (auto ok = kbpf::map_update(fd, bytes_of(key), bytes_of(v)); !ok) return ok.error();
        }
    }
    return {};
}

// Loads a map kernel's program into the kernel: its maps created with the object's specs and filled,
// map references (lddw src=pseudo_map_idx, imm = map index) turned into map fds. Checks one run.
ebpfrt::Result<KernelLoad> kernel_load_object(const ebpfrt::Object& obj, const ebpfrt::ProgramSpec& spec,
                                              std::uint32_t want,
                                              const std::vector<std::uint64_t>& want_array) {
    namespace isa = ebpfrt::isa;
    KernelLoad out;
    std::vector<int> fd_of(obj.maps().size(), -1);
    int array_fd = -1;
    std::vector<ebpfrt::Insn> code = spec.insns;
    for (std::size_t i = 0; i < code.size(); ++i) {
        if (code[i].opcode != isa::opcode_lddw) continue;
        if (code[i].src == isa::pseudo_map_idx) {
            auto idx = static_cast<std::size_t>(code[i].imm);
            if (fd_of[idx] < 0) {
                const ebpfrt::MapSpec& ms = obj.maps()[idx];
                auto fd = kbpf::map_create(ms);
                if (!fd) return fd.error();
                if (auto ok = fill_kernel_map(*fd, ms); !ok) return ok.error();
                fd_of[idx] = fd->get();
                if (ms.name == "bench_array") array_fd = fd->get();
                out.maps.push_back(std::move(*fd));
            }
            code[i].src = isa::pseudo_map_fd;
            code[i].imm = fd_of[idx];
        } else if (code[i].src != isa::pseudo_imm64) {
            return ebpfrt::Error(ebpfrt::Errc::unsupported,
                                 fmt::format("insn {}: lddw src {} not handled", i, unsigned{code[i].src}));
        }
        ++i;
    }
    auto prog = kbpf::prog_load(BPF_PROG_TYPE_SCHED_CLS, code, spec.name);
    if (!prog) return prog.error();
    std::vector<std::byte> data(packet_size);
    auto run = kbpf::test_run(*prog, data, 1);
    if (!run) return run.error();
    if (run->retval != want)
        fail(fmt::format("kernel \"{}\": the kernel's run returned {:#x}, native {:#x}", spec.name,
                         run->retval, want));
    if (array_fd >= 0) {
        for (std::uint32_t k = 0; k < array_entries; ++k) {
            std::uint64_t v = 0;
            for (const auto& fd : out.maps) {
                if (fd.get() != array_fd) continue;
                if (auto ok = kbpf::map_lookup(fd, bytes_of(k), writable_bytes_of(v)); !ok) return ok.error();
            }
            if (v != want_array[k])
                fail(fmt::format("kernel \"{}\": array element {} is {} after a run, native {}", spec.name, k,
                                 v, want_array[k]));
        }
    }
    out.prog = std::move(*prog);
    out.repeat = calibrate_repeat(out.prog);
    return out;
}

// --- compute kernels ---

// A kernel ready to run: its input, our engines (JIT: `loads` separate compiles per mode), and the
// kernel's loads.
struct Prepared {
    const Kernel* kernel;
    std::vector<std::byte> input;
    std::optional<ebpfrt::Interpreter> checked;
    std::optional<ebpfrt::Interpreter> unchecked;
    std::vector<ebpfrt::JitProgram> jit_checked;
    std::vector<ebpfrt::JitProgram> jit_unchecked;
    std::vector<KernelLoad> kernel_loads;
    std::string kernel_error;          // why there are no kernel loads
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

// Distinct VmOptions::env values: env is part of the JIT's compile-cache key, so each load of the
// same bytecode is compiled (and placed) anew. The kernels call no helpers, so env is never read.
int env_tags[64];

std::vector<ebpfrt::JitProgram> jit_loads(const std::vector<ebpfrt::Insn>& insns, const char* name,
                                          bool checked) {
    std::vector<ebpfrt::JitProgram> out;
    for (int l = 0; l < loads; ++l) {
        ebpfrt::VmOptions options{.checked = checked};
        options.env = &env_tags[(checked ? 32 : 0) + l % 32];
        auto j = ebpfrt::JitProgram::create(insns, ebpfrt::HelperTable{}, options);
        if (!j) fail(fmt::format("jit kernel \"{}\": {}", name, j.error().message()));
        if (j->compile_us() == 0)
            fail(fmt::format("jit kernel \"{}\": load {} came from the compile cache", name, l));
        out.push_back(std::move(*j));
    }
    return out;
}

std::vector<Prepared> prepare_all() {
    std::vector<Prepared> out;
    bool ok = true;
    for (const Kernel& k : kernels) {
        std::string path = fmt::format("{}/bench_{}.bin", EBPFRT_BENCH_KERNEL_DIR, k.name);
        auto code = read_file(path);
        auto insns = ebpfrt::isa::decode(code);
        if (!insns) fail(fmt::format("decode \"{}\": {}", path, insns.error().message()));
        Prepared p{&k, make_input(k)};
        p.checked = prepare(*insns, k.name, ebpfrt::VmOptions{});
        p.unchecked = prepare(*insns, k.name, ebpfrt::VmOptions{.checked = false});
        if (ebpfrt::jit_available()) {
            p.jit_checked = jit_loads(*insns, k.name, true);
            p.jit_unchecked = jit_loads(*insns, k.name, false);
            fmt::print(stderr, "kernel {:<12} jit compile {:.0f} us (checked), {:.0f} us (unchecked)\n",
                       k.name, p.jit_checked[0].compile_us(), p.jit_unchecked[0].compile_us());
        }

        auto native_ctx = p.input;
        std::uint64_t native =
            k.native(reinterpret_cast<unsigned char*>(native_ctx.data()), native_ctx.size());
        auto clang_ctx = p.input;
        std::uint64_t native_clang =
            k.native_clang(reinterpret_cast<unsigned char*>(clang_ctx.data()), clang_ctx.size());
        if (native_clang != native || clang_ctx != native_ctx) {
            fmt::print(stderr, "kernel \"{}\": the two native builds disagree ({:#x}, clang {:#x})\n", k.name,
                       native, native_clang);
            ok = false;
        }
        for (const auto* set : {&p.jit_checked, &p.jit_unchecked}) {
            for (const auto& jit : *set) {
                auto ctx = p.input;
                auto r = jit.run(ctx);
                if (!r || *r != native || ctx != native_ctx) {
                    fmt::print(stderr, "kernel \"{}\": jit {} differs from native\n", k.name,
                               jit.options().checked ? "checked" : "unchecked");
                    ok = false;
                }
            }
        }
        const std::pair<const char*, const ebpfrt::Interpreter*> variants[] = {{"checked", &*p.checked},
                                                                               {"unchecked", &*p.unchecked}};
        for (auto [mode, interp] : variants) {
            auto ctx = p.input;
            auto r = interp->run(ctx);
            if (!r) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) failed: {}\n", k.name, mode,
                           r.error().message());
                ok = false;
            } else if (*r != native) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) returned {:#x}, native {:#x}\n", k.name,
                           mode, *r, native);
                ok = false;
            } else if (ctx != native_ctx) {
                fmt::print(stderr, "kernel \"{}\": interpreter ({}) left the context different from native\n",
                           k.name, mode);
                ok = false;
            }
        }
        if (kernel_status.usable) {
            for (int l = 0; l < loads; ++l) {
                auto kl = kernel_load_compute(fmt::format("bench_{}", k.name), *insns, p.input, native,
                                              &native_ctx);
                if (!kl) {
                    p.kernel_error = kl.error().message();
                    p.kernel_loads.clear();
                    fmt::print(stderr, "kernel {:<12} not run in the kernel: {}\n", k.name, p.kernel_error);
                    break;
                }
                p.kernel_loads.push_back(std::move(*kl));
            }
        } else {
            p.kernel_error = kernel_status.why;
        }
        p.insns_executed = count_insns(*insns, p.input);
        fmt::print(stderr, "kernel {:<12} {:>5} insns  result {:#018x}  {:>8} insns/run\n", k.name,
                   insns->size(), native, p.insns_executed);
        out.push_back(std::move(p));
    }
    if (!ok) fail("results differ between native and interpreted runs: not timing");
    return out;
}

// --- map kernels ---

struct PreparedMap {
    const MapKernel* kernel;
    std::vector<ebpfrt::Program> interp;  // [0] checked, [1] unchecked
    std::vector<ebpfrt::Program> jit_checked;
    std::vector<ebpfrt::Program> jit_unchecked;
    std::vector<KernelLoad> kernel_loads;
    std::string kernel_error;
};

// Runtimes by engine and mode, alive for the whole run (programs hold their own state, but the
// runtimes also own the helpers).
std::vector<ebpfrt::Runtime> runtimes;

ebpfrt::Runtime& runtime(ebpfrt::Engine engine, bool checked) {
    for (auto& rt : runtimes)
        if (rt.options().engine == engine && rt.options().checked == checked) return rt;
    auto rt = ebpfrt::Runtime::create({.engine = engine, .checked = checked});
    if (!rt) fail(fmt::format("create runtime: {}", rt.error().message()));
    runtimes.push_back(std::move(*rt));
    return runtimes.back();
}

std::vector<PreparedMap> prepare_maps() {
    std::vector<PreparedMap> out;
    for (const MapKernel& k : map_kernels) {
        std::string path = fmt::format("{}/bench_{}.bpf.o", EBPFRT_BENCH_KERNEL_DIR, k.name);
        auto obj = ebpfrt::Object::open(path);
        if (!obj) fail(obj.error().message());
        std::string prog_name = fmt::format("bench_{}", k.name);
        auto spec = obj->program(prog_name);
        if (!spec) fail(fmt::format("\"{}\": {}", path, spec.error().message()));

        std::vector<std::byte> ctx(packet_size);
        fill_native();
        const auto want = static_cast<std::uint32_t>(k.native(reinterpret_cast<unsigned char*>(ctx.data())));
        const auto want_array = native_array_state();
        fill_native();
        if (k.native_clang(reinterpret_cast<unsigned char*>(ctx.data())) != want ||
            native_array_state() != want_array)
            fail(fmt::format("kernel \"{}\": the two native builds disagree", k.name));
        fill_native();

        PreparedMap p{&k};
        auto load = [&](ebpfrt::Engine engine, bool checked) {
            auto c = runtime(engine, checked).load(*obj);
            if (!c) fail(fmt::format("load \"{}\": {}", path, c.error().message()));
            fill_collection(*c, k.name);
            auto prog = c->program(prog_name);
            if (!prog) fail(prog.error().message());
            auto r = prog->try_run(ctx);
            const char* mode = engine == ebpfrt::Engine::jit
                                   ? (checked ? "jit checked" : "jit unchecked")
                                   : (checked ? "interp checked" : "interp unchecked");
            if (!r) fail(fmt::format("kernel \"{}\" ({}): {}", k.name, mode, r.error().message()));
            if (*r != want || collection_array_state(*c) != want_array)
                fail(fmt::format(
                    "kernel \"{}\" ({}): returned {:#x} (native {:#x}) or left the array different", k.name,
                    mode, *r, want));
            return *prog;
        };
        p.interp.push_back(load(ebpfrt::Engine::interpreter, true));
        p.interp.push_back(load(ebpfrt::Engine::interpreter, false));
        if (ebpfrt::jit_available()) {
            for (int l = 0; l < loads; ++l) {
                p.jit_checked.push_back(load(ebpfrt::Engine::jit, true));
                p.jit_unchecked.push_back(load(ebpfrt::Engine::jit, false));
            }
        }
        if (kernel_status.usable) {
            for (int l = 0; l < loads; ++l) {
                auto kl = kernel_load_object(*obj, **spec, want, want_array);
                if (!kl) {
                    p.kernel_error = kl.error().message();
                    p.kernel_loads.clear();
                    fmt::print(stderr, "kernel {:<12} not run in the kernel: {}\n", k.name, p.kernel_error);
                    break;
                }
                p.kernel_loads.push_back(std::move(*kl));
            }
        } else {
            p.kernel_error = kernel_status.why;
        }
        fmt::print(stderr, "kernel {:<16} {:>5} insns  result {:#010x}\n", k.name, (*spec)->insns.size(),
                   want);
        out.push_back(std::move(p));
    }
    return out;
}

// --- timed loops ---

void bm_native(benchmark::State& state, const std::vector<std::byte>* input, NativeFn native) {
    auto ctx = *input;
    NativeFn volatile fn = native;  // opaque to the optimizer: no folding, no hoisting
    for (auto _ : state) {
        unsigned long long r = fn(reinterpret_cast<unsigned char*>(ctx.data()), ctx.size());
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
}

void bm_native_map(benchmark::State& state, NativeMapFn native) {
    std::vector<std::byte> ctx(packet_size);
    NativeMapFn volatile fn = native;
    for (auto _ : state) {
        unsigned long long r = fn(reinterpret_cast<unsigned char*>(ctx.data()));
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
}

void bm_jit(benchmark::State& state, const std::vector<std::byte>* input, const ebpfrt::JitProgram* jit) {
    auto ctx = *input;
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

// A program of our runtime (map kernels): Program::run, as an embedder calls it.
void bm_program(benchmark::State& state, const ebpfrt::Program* prog) {
    std::vector<std::byte> ctx(packet_size);
    for (auto _ : state) {
        std::uint64_t r = prog->run(ctx);
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
}

// The kernel's JIT. Each iteration is one BPF_PROG_TEST_RUN call of `repeat` runs; its time is the
// kernel's own measurement (`duration`, the mean ns per run over the call, taken with ktime around
// the run loop, so it excludes the system call, the copy of the input and time the task was
// rescheduled), times `repeat`. report_jit.py divides by the runs_per_iter counter. The wall clock
// around the call, per run, is the wall_ns_per_run counter.
void bm_kernel(benchmark::State& state, const KernelLoad* k) {
    std::vector<std::byte> data(packet_size);
    double wall = 0, runs = 0;
    for (auto _ : state) {
        auto r = kbpf::test_run(k->prog, data, k->repeat);
        if (!r) {
            state.SkipWithError(r.error().message().c_str());
            break;
        }
        state.SetIterationTime(double(r->duration) * k->repeat * 1e-9);
        wall += r->wall_ns;
        runs += k->repeat;
    }
    state.counters["runs_per_iter"] = k->repeat;
    state.counters["wall_ns_per_run"] = runs > 0 ? wall / runs : 0;
}

// Takes --loads=N out of argv (Google Benchmark rejects flags it does not know).
void parse_loads(int& argc, char** argv) {
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.starts_with("--loads=")) {
            loads = std::atoi(argv[i] + 8);
            if (loads < 1 || loads > 32) fail("--loads: 1..32");
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
}

}  // namespace

int main(int argc, char** argv) {
    parse_loads(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    kernel_status.jit_enable = kbpf::jit_enable();
    if (auto ok = kbpf::available(); !ok) {
        kernel_status.why =
            fmt::format("bpf() unavailable ({}); the kernel JIT baseline is skipped", ok.error().message());
        fmt::print(stderr, "{}\n", kernel_status.why);
    } else {
        kernel_status.usable = true;
        if (kernel_status.jit_enable != 1)
            fmt::print(
                stderr, "note: /proc/sys/net/core/bpf_jit_enable is {}, not 1: the kernel baseline is {}\n",
                kernel_status.jit_enable, kernel_status.jit_enable == 0 ? "its interpreter" : "its JIT");
    }
    benchmark::AddCustomContext("ebpfrt_loads", std::to_string(loads));
    benchmark::AddCustomContext("bpf_jit_enable", std::to_string(kernel_status.jit_enable));
    benchmark::AddCustomContext("kernel_bpf", kernel_status.usable ? "available" : kernel_status.why);

    static const std::vector<Prepared> prepared = prepare_all();
    static const std::vector<PreparedMap> prepared_maps = prepare_maps();
    for (const Prepared& p : prepared) {
        std::string name = p.kernel->name;
        benchmark::RegisterBenchmark(("BM_native/" + name).c_str(), bm_native, &p.input, p.kernel->native);
        benchmark::RegisterBenchmark(("BM_native_clang/" + name).c_str(), bm_native, &p.input,
                                     p.kernel->native_clang);
        benchmark::RegisterBenchmark(("BM_interp/" + name).c_str(), bm_interp, &p, &*p.checked);
        benchmark::RegisterBenchmark(("BM_interp_unchecked/" + name).c_str(), bm_interp, &p, &*p.unchecked);
        for (std::size_t l = 0; l < p.jit_checked.size(); ++l) {
            benchmark::RegisterBenchmark(fmt::format("BM_jit/{}/load{}", name, l).c_str(), bm_jit, &p.input,
                                         &p.jit_checked[l]);
            benchmark::RegisterBenchmark(fmt::format("BM_jit_unchecked/{}/load{}", name, l).c_str(), bm_jit,
                                         &p.input, &p.jit_unchecked[l]);
        }
        for (std::size_t l = 0; l < p.kernel_loads.size(); ++l)
            benchmark::RegisterBenchmark(fmt::format("BM_kernel/{}/load{}", name, l).c_str(), bm_kernel,
                                         &p.kernel_loads[l])
                ->UseManualTime();
        if (!p.kernel_error.empty()) benchmark::AddCustomContext("kernel_skip/" + name, p.kernel_error);
    }
    for (const PreparedMap& p : prepared_maps) {
        std::string name = p.kernel->name;
        benchmark::RegisterBenchmark(("BM_native/" + name).c_str(), bm_native_map, p.kernel->native);
        benchmark::RegisterBenchmark(("BM_native_clang/" + name).c_str(), bm_native_map,
                                     p.kernel->native_clang);
        benchmark::RegisterBenchmark(("BM_interp/" + name).c_str(), bm_program, &p.interp[0]);
        benchmark::RegisterBenchmark(("BM_interp_unchecked/" + name).c_str(), bm_program, &p.interp[1]);
        for (std::size_t l = 0; l < p.jit_checked.size(); ++l) {
            benchmark::RegisterBenchmark(fmt::format("BM_jit/{}/load{}", name, l).c_str(), bm_program,
                                         &p.jit_checked[l]);
            benchmark::RegisterBenchmark(fmt::format("BM_jit_unchecked/{}/load{}", name, l).c_str(),
                                         bm_program, &p.jit_unchecked[l]);
        }
        for (std::size_t l = 0; l < p.kernel_loads.size(); ++l)
            benchmark::RegisterBenchmark(fmt::format("BM_kernel/{}/load{}", name, l).c_str(), bm_kernel,
                                         &p.kernel_loads[l])
                ->UseManualTime();
        if (!p.kernel_error.empty()) benchmark::AddCustomContext("kernel_skip/" + name, p.kernel_error);
    }

    // Per-run overhead of the harnesses: a program that returns at once.
    static const std::vector<ebpfrt::Insn> empty = {insn(0xb7, 0, 0, 0, 0),
                                                    insn(ebpfrt::isa::opcode_exit, 0, 0, 0, 0)};
    static const std::vector<std::byte> empty_input(ctx_size);
    static std::vector<ebpfrt::JitProgram> empty_jit;
    static std::vector<KernelLoad> empty_kernel;
    if (ebpfrt::jit_available()) {
        auto j =
            ebpfrt::JitProgram::create(empty, ebpfrt::HelperTable{}, ebpfrt::VmOptions{.checked = false});
        if (!j) fail(fmt::format("jit empty program: {}", j.error().message()));
        empty_jit.push_back(std::move(*j));
        benchmark::RegisterBenchmark("BM_jit_unchecked/empty/load0", bm_jit, &empty_input, &empty_jit[0]);
    }
    if (kernel_status.usable) {
        auto kl = kernel_load_compute("bench_empty", empty, empty_input, 0, nullptr);
        if (kl) {
            empty_kernel.push_back(std::move(*kl));
            benchmark::RegisterBenchmark("BM_kernel/empty/load0", bm_kernel, &empty_kernel[0])
                ->UseManualTime();
        }
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
