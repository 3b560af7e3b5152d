#pragma once
// The Linux kernel's BPF as a baseline for the benchmarks: thin wrappers around
// the bpf() system call (map create/update/lookup, program load,
// BPF_PROG_TEST_RUN with `repeat`). Needs root (or CAP_BPF + CAP_NET_ADMIN) and
// a kernel with bpf(); every call reports failure as an Error, so the
// benchmarks that need it are skipped, never failed.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ebpfrt/isa.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>

namespace bench::kbpf {

/// An owned file descriptor (a kernel map or program); closed with the last
/// move.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int get() const noexcept { return fd_; }

private:
    int fd_ = -1;
};

/// Whether bpf() works here: creates and frees a one-element array map. Errors:
/// the errno as permission_denied / unsupported with the reason.
ebpfrt::Result<void> available();

/// /proc/sys/net/core/bpf_jit_enable: 0 (interpreter), 1 (JIT), 2 (JIT with
/// debug output), or -1 when it cannot be read.
int jit_enable();

/// BPF_MAP_CREATE of a map with this type and shape (name and flags are
/// ignored).
ebpfrt::Result<Fd> map_create(const ebpfrt::MapSpec& spec);
/// BPF_MAP_UPDATE_ELEM with BPF_ANY.
ebpfrt::Result<void> map_update(const Fd& map, std::span<const std::byte> key,
                                std::span<const std::byte> value);
/// BPF_MAP_LOOKUP_ELEM into `value`.
ebpfrt::Result<void> map_lookup(const Fd& map, std::span<const std::byte> key, std::span<std::byte> value);

/// BPF_PROG_LOAD (license "GPL"); on a verifier rejection the error carries the
/// last lines of the verifier log.
ebpfrt::Result<Fd> prog_load(std::uint32_t prog_type, std::span<const ebpfrt::Insn> insns,
                             const std::string& name);

/// One BPF_PROG_TEST_RUN call.
struct TestRun {
    std::uint32_t retval = 0;    ///< r0 of the last run, truncated to 32 bits by the kernel
    std::uint32_t duration = 0;  ///< the kernel's mean time per run, ns (total / repeat, rounded down)
    double wall_ns = 0;          ///< wall clock around the system call, ns (all runs plus the call)
};
/// Runs `prog` `repeat` times on a copy of `data` (packet data for skb/XDP
/// programs).
ebpfrt::Result<TestRun> test_run(const Fd& prog, std::span<const std::byte> data, std::uint32_t repeat);

}  // namespace bench::kbpf
