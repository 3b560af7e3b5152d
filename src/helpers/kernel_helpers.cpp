// Kernel-numbered helpers that need no map or runtime state: time, randomness, the current task,
// safe memory reads and writes, string formatting and comparison. Semantics and return values follow
// the kernel's (include/uapi/linux/bpf.h), as seen from a user-space task.

#include <ebpfrt/helpers.hpp>

#include <sched.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include <fmt/format.h>

#include "helpers/helpers_internal.hpp"

namespace ebpfrt {
namespace {

using u64 = std::uint64_t;

u64 neg(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

u64 clock_ns(clockid_t c) {
    struct timespec ts{};
    clock_gettime(c, &ts);
    return static_cast<u64>(ts.tv_sec) * 1'000'000'000u + static_cast<u64>(ts.tv_nsec);
}

u64 ktime_get_ns(u64, u64, u64, u64, u64) { return clock_ns(CLOCK_MONOTONIC); }
u64 ktime_get_boot_ns(u64, u64, u64, u64, u64) { return clock_ns(CLOCK_BOOTTIME); }
u64 ktime_get_coarse_ns(u64, u64, u64, u64, u64) { return clock_ns(CLOCK_MONOTONIC_COARSE); }
u64 ktime_get_tai_ns(u64, u64, u64, u64, u64) { return clock_ns(CLOCK_TAI); }

u64 get_prandom_u32(u64, u64, u64, u64, u64) {
    // One generator per thread, seeded once from the OS: no lock, no shared state.
    thread_local std::mt19937 gen{std::random_device{}()};
    return gen();
}

u64 get_smp_processor_id(u64, u64, u64, u64, u64) {
    const int cpu = sched_getcpu();
    return cpu < 0 ? 0 : static_cast<u64>(cpu);
}

u64 get_numa_node_id(u64, u64, u64, u64, u64) {
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, nullptr) != 0) return 0;
    return node;
}

u64 get_current_pid_tgid(u64, u64, u64, u64, u64) {
    // Kernel view: the upper half is the thread-group id (the process id), the lower the thread id.
    return static_cast<u64>(static_cast<std::uint32_t>(getpid())) << 32 |
           static_cast<std::uint32_t>(syscall(SYS_gettid));
}

u64 get_current_uid_gid(u64, u64, u64, u64, u64) {
    return static_cast<u64>(getgid()) << 32 | static_cast<std::uint32_t>(getuid());
}

u64 get_current_comm(u64 buf, u64 size, u64, u64, u64) {
    if (size == 0) return neg(EINVAL);
    auto* out = reinterpret_cast<char*>(buf);
    char comm[17] = {};
    if (FILE* f = std::fopen("/proc/thread-self/comm", "re")) {
        if (std::fgets(comm, sizeof comm, f)) comm[std::strcspn(comm, "\n")] = '\0';
        std::fclose(f);
    }
    // Like the kernel: copy at most size - 1 bytes and always NUL-terminate (strscpy_pad zero-fills).
    std::memset(out, 0, size);
    std::memcpy(out, comm, std::min<std::size_t>(std::strlen(comm), size - 1));
    return 0;
}

u64 probe_read(u64 dst, u64 size, u64 src, u64, u64) {
    auto* out = reinterpret_cast<void*>(dst);
    if (!detail::safe_read(out, reinterpret_cast<const void*>(src), size)) {
        std::memset(out, 0, size);  // the kernel zeroes the destination on failure
        return neg(EFAULT);
    }
    return 0;
}

// probe_read_str: copies up to size - 1 bytes and a NUL; returns the length including the NUL.
u64 probe_read_str(u64 dst, u64 size, u64 src, u64, u64) {
    if (size == 0) return 0;
    auto* out = reinterpret_cast<char*>(dst);
    std::size_t n = 0;
    // Read in chunks that never cross a page boundary, so a string ending just before an unmapped
    // page is still read in full.
    while (n < size - 1) {
        const u64 addr = src + n;
        const std::size_t page_left = 4096 - (addr & 4095);
        const std::size_t chunk = std::min<std::size_t>({page_left, size - 1 - n, 256});
        if (!detail::safe_read(out + n, reinterpret_cast<const void*>(addr), chunk)) {
            // As the kernel: a fault anywhere before the NUL is -EFAULT with the destination zeroed.
            std::memset(out, 0, size);
            return neg(EFAULT);
        }
        if (void* z = std::memchr(out + n, '\0', chunk)) return static_cast<u64>(static_cast<char*>(z) - out) + 1;
        n += chunk;
    }
    out[n] = '\0';
    return n + 1;
}

u64 probe_write_user(u64 dst, u64 src, u64 size, u64, u64) {
    return detail::safe_write(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), size) ? 0 : neg(EFAULT);
}

u64 strncmp_helper(u64 s1, u64 s1_sz, u64 s2, u64, u64) {
    const int r = std::strncmp(reinterpret_cast<const char*>(s1), reinterpret_cast<const char*>(s2), s1_sz);
    return static_cast<u64>(static_cast<std::int64_t>(r < 0 ? -1 : r > 0 ? 1 : 0));
}

u64 snprintf_helper(u64 str, u64 str_size, u64 fmt_ptr, u64 data, u64 data_len) {
    if (data_len % 8 != 0 || data_len / 8 > 12) return neg(EINVAL);
    std::string out;
    auto r = detail::format_printk(reinterpret_cast<const char*>(fmt_ptr),
                                   std::span(reinterpret_cast<const u64*>(data), data_len / 8), out);
    if (!r) return neg(EINVAL);
    if (str_size > 0) {
        auto* s = reinterpret_cast<char*>(str);
        const std::size_t n = std::min<std::size_t>(out.size(), str_size - 1);
        std::memcpy(s, out.data(), n);
        s[n] = '\0';
    }
    return out.size() + 1;  // like the kernel: the length the whole output needs, with its NUL
}

constexpr std::array<Arg, 5> args(Arg a = Arg::none, Arg b = Arg::none, Arg c = Arg::none, Arg d = Arg::none,
                                  Arg e = Arg::none) {
    return {a, b, c, d, e};
}

}  // namespace

namespace detail {

bool safe_read(void* dst, const void* src, std::size_t n) noexcept {
    if (n == 0) return true;
    // process_vm_readv on ourselves reports EFAULT for unmapped memory instead of faulting.
    struct iovec local{dst, n}, remote{const_cast<void*>(src), n};
    const ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return got == static_cast<ssize_t>(n);
}

bool safe_write(void* dst, const void* src, std::size_t n) noexcept {
    if (n == 0) return true;
    struct iovec local{const_cast<void*>(src), n}, remote{dst, n};
    const ssize_t put = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
    return put == static_cast<ssize_t>(n);
}

Result<void> format_printk(const char* fmt_str, std::span<const std::uint64_t> args, std::string& out) {
    // The kernel's bpf_printf subset: %d %i %u %x %X %o %c %s %p(x) %% with l/ll/h/hh, width,
    // flags and precision; %s and %p arguments are read safely.
    std::size_t next = 0;
    for (const char* p = fmt_str; *p; ++p) {
        if (*p != '%') {
            out += *p;
            continue;
        }
        ++p;
        if (*p == '%') {
            out += '%';
            continue;
        }
        std::string spec = "%";
        while (*p && std::strchr("-+ #0", *p)) spec += *p++;
        while (*p >= '0' && *p <= '9') spec += *p++;
        if (*p == '.') {
            spec += *p++;
            while (*p >= '0' && *p <= '9') spec += *p++;
        }
        int longs = 0;
        bool half = false;
        while (*p == 'l') ++longs, ++p;
        while (*p == 'h') half = true, ++p;
        if (!*p) return Error(Errc::invalid_argument, "format ends inside a conversion");
        if (next >= args.size()) return Error(Errc::invalid_argument, "format has more conversions than arguments");
        const std::uint64_t v = args[next++];
        char buf[512];
        const char conv = *p;
        switch (conv) {
        case 'd':
        case 'i': {
            std::int64_t s = longs >= 1 ? static_cast<std::int64_t>(v) : static_cast<std::int32_t>(v);
            if (half) s = static_cast<std::int16_t>(v);
            std::snprintf(buf, sizeof buf, (spec + "lld").c_str(), static_cast<long long>(s));
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            std::uint64_t u = longs >= 1 ? v : static_cast<std::uint32_t>(v);
            if (half) u = static_cast<std::uint16_t>(v);
            std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), static_cast<unsigned long long>(u));
            break;
        }
        case 'c': std::snprintf(buf, sizeof buf, (spec + "c").c_str(), static_cast<int>(v & 0xff)); break;
        case 'p':
            // %pK/%px/%ps... : print the address; the kernel's pointer extensions need kernel data.
            while (std::isalnum(static_cast<unsigned char>(p[1])) && p[1] != ' ') ++p;
            // As the kernel's %px: 16 hex digits, zero-padded, no 0x.
            std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
            break;
        case 's': {
            char str[256];
            // An unreadable string prints as nothing, as in the kernel.
            if (probe_read_str(reinterpret_cast<u64>(str), sizeof str, v, 0, 0) > sizeof str) str[0] = '\0';
            std::snprintf(buf, sizeof buf, (spec + "s").c_str(), str);
            break;
        }
        default: return Error(Errc::invalid_argument, fmt::format("unsupported conversion %{}", conv));
        }
        out += buf;
    }
    return {};
}

}  // namespace detail

void add_kernel_helpers(HelperTable& t) {
    namespace id = helper_ids;
    const auto any = Arg::scalar;
    auto add = [&](std::uint32_t id, const char* name, HelperFn fn, std::array<Arg, 5> a) {
        t.set(id, HelperProto{.name = name, .fn = fn, .args = a}).value();
    };
    add(id::probe_read, "probe_read", probe_read, args(Arg::mem, Arg::size, any));
    add(id::ktime_get_ns, "ktime_get_ns", ktime_get_ns, args());
    add(id::get_prandom_u32, "get_prandom_u32", get_prandom_u32, args());
    add(id::get_smp_processor_id, "get_smp_processor_id", get_smp_processor_id, args());
    add(id::get_current_pid_tgid, "get_current_pid_tgid", get_current_pid_tgid, args());
    add(id::get_current_uid_gid, "get_current_uid_gid", get_current_uid_gid, args());
    add(id::get_current_comm, "get_current_comm", get_current_comm, args(Arg::mem, Arg::size));
    add(id::probe_write_user, "probe_write_user", probe_write_user, args(any, Arg::mem_ro, Arg::size));
    add(id::get_numa_node_id, "get_numa_node_id", get_numa_node_id, args());
    add(id::probe_read_str, "probe_read_str", probe_read_str, args(Arg::mem, Arg::size, any));
    add(id::probe_read_user, "probe_read_user", probe_read, args(Arg::mem, Arg::size, any));
    add(id::probe_read_kernel, "probe_read_kernel", probe_read, args(Arg::mem, Arg::size, any));
    add(id::probe_read_user_str, "probe_read_user_str", probe_read_str, args(Arg::mem, Arg::size, any));
    add(id::probe_read_kernel_str, "probe_read_kernel_str", probe_read_str, args(Arg::mem, Arg::size, any));
    add(id::ktime_get_boot_ns, "ktime_get_boot_ns", ktime_get_boot_ns, args());
    add(id::ktime_get_coarse_ns, "ktime_get_coarse_ns", ktime_get_coarse_ns, args());
    add(id::snprintf, "snprintf", snprintf_helper, args(Arg::mem, Arg::size, Arg::cstr, Arg::mem_ro, Arg::size));
    add(id::strncmp, "strncmp", strncmp_helper, args(Arg::mem_ro, Arg::size, Arg::cstr));
    add(id::ktime_get_tai_ns, "ktime_get_tai_ns", ktime_get_tai_ns, args());
}

}  // namespace ebpfrt
