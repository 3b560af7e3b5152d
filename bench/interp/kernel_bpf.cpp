#include "kernel_bpf.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <vector>

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/core.h>

namespace bench::kbpf {

using ebpfrt::Errc;
using ebpfrt::Error;
using ebpfrt::Result;

namespace {

long sys_bpf(int cmd, union bpf_attr& attr) { return syscall(SYS_bpf, cmd, &attr, sizeof attr); }

std::uint64_t ptr(const void* p) { return reinterpret_cast<std::uint64_t>(p); }

Error errno_error(const char* what) {
    int e = errno;
    Errc code = (e == EPERM || e == EACCES)                       ? Errc::permission_denied
                : (e == ENOSYS || e == EINVAL || e == EOPNOTSUPP) ? Errc::unsupported
                                                                  : Errc::invalid_argument;
    return Error(code, fmt::format("bpf({}): {}", what, std::strerror(e)));
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) close(fd_);
        fd_ = o.fd_;
        o.fd_ = -1;
    }
    return *this;
}

Fd::~Fd() {
    if (fd_ >= 0) close(fd_);
}

Result<void> available() {
    ebpfrt::MapSpec spec;
    spec.type = ebpfrt::MapType::array;
    spec.key_size = 4;
    spec.value_size = 8;
    spec.max_entries = 1;
    auto m = map_create(spec);
    if (!m) return m.error();
    return {};
}

int jit_enable() {
    std::ifstream in("/proc/sys/net/core/bpf_jit_enable");
    int v = -1;
    if (!(in >> v)) return -1;
    return v;
}

Result<Fd> map_create(const ebpfrt::MapSpec& spec) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_type = static_cast<std::uint32_t>(spec.type);
    attr.key_size = spec.key_size;
    attr.value_size = spec.value_size;
    attr.max_entries = spec.max_entries;
    long fd = sys_bpf(BPF_MAP_CREATE, attr);
    if (fd < 0) return errno_error("BPF_MAP_CREATE");
    return Fd(static_cast<int>(fd));
}

Result<void> map_update(const Fd& map, std::span<const std::byte> key, std::span<const std::byte> value) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<std::uint32_t>(map.get());
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    attr.flags = BPF_ANY;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, attr) < 0) return errno_error("BPF_MAP_UPDATE_ELEM");
    return {};
}

Result<void> map_lookup(const Fd& map, std::span<const std::byte> key, std::span<std::byte> value) {
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<std::uint32_t>(map.get());
    attr.key = ptr(key.data());
    attr.value = ptr(value.data());
    if (sys_bpf(BPF_MAP_LOOKUP_ELEM, attr) < 0) return errno_error("BPF_MAP_LOOKUP_ELEM");
    return {};
}

Result<Fd> prog_load(std::uint32_t prog_type, std::span<const ebpfrt::Insn> insns, const std::string& name) {
    static const char license[] = "GPL";
    // Without a log first: a log of every instruction can fill the buffer
    // (ENOSPC) on programs that load. On failure, load again with a log for the
    // reason, which is at its end.
    auto load = [&](std::string* log) {
        union bpf_attr attr;
        std::memset(&attr, 0, sizeof attr);
        attr.prog_type = prog_type;
        attr.insns = ptr(insns.data());
        attr.insn_cnt = static_cast<std::uint32_t>(insns.size());
        attr.license = ptr(license);
        std::strncpy(attr.prog_name, name.c_str(), sizeof attr.prog_name - 1);
        if (log != nullptr) {
            attr.log_buf = ptr(log->data());
            attr.log_size = static_cast<std::uint32_t>(log->size());
            attr.log_level = 1;
        }
        return sys_bpf(BPF_PROG_LOAD, attr);
    };
    long fd = load(nullptr);
    if (fd >= 0) return Fd(static_cast<int>(fd));
    Error e = errno_error("BPF_PROG_LOAD");
    std::string log(16u << 20, '\0');
    long again = load(&log);
    if (again >= 0) close(static_cast<int>(again));
    log.resize(std::strlen(log.c_str()));
    // Keep the last lines, which say why (the rotating log holds the end of a
    // long log).
    std::size_t cut = log.size();
    for (int lines = 0; lines < 3 && cut > 0; ++lines) {
        std::size_t nl = log.rfind('\n', cut - 1);
        cut = nl == std::string::npos ? 0 : nl;
    }
    std::string tail = log.substr(cut);
    for (char& c : tail)
        if (c == '\n') c = ' ';
    while (!tail.empty() && tail.front() == ' ') tail.erase(0, 1);
    while (!tail.empty() && tail.back() == ' ') tail.pop_back();
    return Error(e.code(), fmt::format("{}: verifier log: {}", e.message(), tail));
}

Result<TestRun> test_run(const Fd& prog, std::span<const std::byte> data, std::uint32_t repeat) {
    std::vector<std::byte> in(data.begin(), data.end());
    union bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.test.prog_fd = static_cast<std::uint32_t>(prog.get());
    attr.test.data_in = ptr(in.data());
    attr.test.data_size_in = static_cast<std::uint32_t>(in.size());
    attr.test.repeat = repeat;
    auto t0 = std::chrono::steady_clock::now();
    long r = sys_bpf(BPF_PROG_TEST_RUN, attr);
    auto t1 = std::chrono::steady_clock::now();
    if (r < 0) return errno_error("BPF_PROG_TEST_RUN");
    TestRun out;
    out.retval = attr.test.retval;
    out.duration = attr.test.duration;
    out.wall_ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
    return out;
}

}  // namespace bench::kbpf
