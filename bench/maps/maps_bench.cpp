// Host-side map operations: ebpfrt's Map<K, V> (shared-memory arena) against the kernel's bpf() syscall
// doing the same operation on a kernel map of the same shape, in the same run. The kernel benchmarks
// are skipped when bpf() is not available.

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <benchmark/benchmark.h>

#include <ebpfrt/maps.hpp>

namespace {

constexpr std::uint32_t entries = 1024;

ebpfrt::MapSpec spec(ebpfrt::MapType type) {
    ebpfrt::MapSpec s;
    s.name = type == ebpfrt::MapType::array ? "bench_array" : "bench_hash";
    s.type = type;
    s.key_size = 4;
    s.value_size = 8;
    s.max_entries = entries;
    return s;
}

// One arena and one map per type, filled with keys 0..entries-1.
ebpfrt::Map<std::uint32_t, std::uint64_t>& host_map(ebpfrt::MapType type) {
    static ebpfrt::Arena arena = ebpfrt::Arena::create({.name = "", .size = 16u << 20}).value();
    static std::optional<ebpfrt::Map<std::uint32_t, std::uint64_t>> maps[2];
    auto& m = maps[type == ebpfrt::MapType::array ? 0 : 1];
    if (!m) {
        m = ebpfrt::Map<std::uint32_t, std::uint64_t>::from(arena.create_map(spec(type)).value()).value();
        for (std::uint32_t k = 0; k < entries; ++k) m->update(k, k).value();
    }
    return *m;
}

long bpf(int cmd, bpf_attr& attr) {
    long r = syscall(__NR_bpf, cmd, &attr, sizeof attr);
    return r < 0 ? -errno : r;
}

// A kernel map of the same shape, filled the same way; -errno if bpf() is not available.
int kernel_map(ebpfrt::MapType type) {
    static int fds[2] = {0, 0};
    int& fd = fds[type == ebpfrt::MapType::array ? 0 : 1];
    if (fd != 0) return fd;
    bpf_attr a{};
    a.map_type = static_cast<std::uint32_t>(type);
    a.key_size = 4;
    a.value_size = 8;
    a.max_entries = entries;
    long r = bpf(BPF_MAP_CREATE, a);
    fd = static_cast<int>(r);
    if (fd < 0) return fd;
    for (std::uint32_t k = 0; k < entries; ++k) {
        std::uint64_t v = k;
        bpf_attr u{};
        u.map_fd = static_cast<std::uint32_t>(fd);
        u.key = reinterpret_cast<std::uint64_t>(&k);
        u.value = reinterpret_cast<std::uint64_t>(&v);
        bpf(BPF_MAP_UPDATE_ELEM, u);
    }
    return fd;
}

void BM_HostLookup(benchmark::State& state, ebpfrt::MapType type) {
    auto& m = host_map(type);
    std::uint32_t k = 0;
    std::uint64_t sum = 0;
    for (auto _ : state) {
        sum += *m.lookup(k);
        k = (k + 1) & (entries - 1);
    }
    benchmark::DoNotOptimize(sum);
}

void BM_HostUpdate(benchmark::State& state, ebpfrt::MapType type) {
    auto& m = host_map(type);
    std::uint32_t k = 0;
    std::uint64_t v = 0;
    for (auto _ : state) {
        auto r = m.update(k, ++v);
        benchmark::DoNotOptimize(r);
        k = (k + 1) & (entries - 1);
    }
}

void BM_KernelLookup(benchmark::State& state, ebpfrt::MapType type) {
    int fd = kernel_map(type);
    if (fd < 0) {
        state.SkipWithError(("bpf(BPF_MAP_CREATE) failed: " + std::string(std::strerror(-fd))).c_str());
        return;
    }
    std::uint32_t k = 0;
    std::uint64_t v = 0, sum = 0;
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = reinterpret_cast<std::uint64_t>(&k);
    a.value = reinterpret_cast<std::uint64_t>(&v);
    for (auto _ : state) {
        bpf(BPF_MAP_LOOKUP_ELEM, a);
        sum += v;
        k = (k + 1) & (entries - 1);
    }
    benchmark::DoNotOptimize(sum);
}

void BM_KernelUpdate(benchmark::State& state, ebpfrt::MapType type) {
    int fd = kernel_map(type);
    if (fd < 0) {
        state.SkipWithError(("bpf(BPF_MAP_CREATE) failed: " + std::string(std::strerror(-fd))).c_str());
        return;
    }
    std::uint32_t k = 0;
    std::uint64_t v = 0;
    bpf_attr a{};
    a.map_fd = static_cast<std::uint32_t>(fd);
    a.key = reinterpret_cast<std::uint64_t>(&k);
    a.value = reinterpret_cast<std::uint64_t>(&v);
    for (auto _ : state) {
        ++v;
        benchmark::DoNotOptimize(bpf(BPF_MAP_UPDATE_ELEM, a));
        k = (k + 1) & (entries - 1);
    }
}

BENCHMARK_CAPTURE(BM_HostLookup, array, ebpfrt::MapType::array);
BENCHMARK_CAPTURE(BM_KernelLookup, array, ebpfrt::MapType::array);
BENCHMARK_CAPTURE(BM_HostUpdate, array, ebpfrt::MapType::array);
BENCHMARK_CAPTURE(BM_KernelUpdate, array, ebpfrt::MapType::array);
BENCHMARK_CAPTURE(BM_HostLookup, hash, ebpfrt::MapType::hash);
BENCHMARK_CAPTURE(BM_KernelLookup, hash, ebpfrt::MapType::hash);
BENCHMARK_CAPTURE(BM_HostUpdate, hash, ebpfrt::MapType::hash);
BENCHMARK_CAPTURE(BM_KernelUpdate, hash, ebpfrt::MapType::hash);

}  // namespace

BENCHMARK_MAIN();
