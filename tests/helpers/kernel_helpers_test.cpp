#include <ebpfrt/helpers.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>
#include <string>

namespace ebpfrt {
namespace {

using u64 = std::uint64_t;

class KernelHelpers : public ::testing::Test {
protected:
    void SetUp() override { add_kernel_helpers(table_); }
    u64 call(std::uint32_t id, u64 a = 0, u64 b = 0, u64 c = 0, u64 d = 0, u64 e = 0) {
        const HelperProto* h = table_.find(id);
        EXPECT_NE(h, nullptr) << "helper " << id;
        return h ? h->fn(a, b, c, d, e) : ~u64{0};
    }
    template <class T> static u64 addr(T* p) { return reinterpret_cast<u64>(p); }
    static u64 err(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }
    HelperTable table_;
};

// A readable page followed by an inaccessible one.
struct GuardedPage {
    GuardedPage() {
        base = static_cast<char*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        mprotect(base + 4096, 4096, PROT_NONE);
    }
    ~GuardedPage() { munmap(base, 8192); }
    char* base;
    char* guard() const { return base + 4096; }
};

TEST_F(KernelHelpers, ProbeReadCopiesOrFaultsWithoutCrashing) {
    const char src[] = "payload";
    char dst[8] = {};
    EXPECT_EQ(call(helper_ids::probe_read, addr(dst), sizeof dst, addr(src)), 0u);
    EXPECT_STREQ(dst, "payload");

    GuardedPage g;
    std::memset(dst, 'x', sizeof dst);
    EXPECT_EQ(call(helper_ids::probe_read, addr(dst), sizeof dst, addr(g.guard())), err(EFAULT));
    EXPECT_EQ(std::string(dst, sizeof dst), std::string(8, '\0'));  // zeroed on failure
    EXPECT_EQ(call(helper_ids::probe_read_kernel, addr(dst), 4, 0), err(EFAULT));
    // Straddling the end of readable memory fails as a whole.
    EXPECT_EQ(call(helper_ids::probe_read_user, addr(dst), 8, addr(g.guard() - 4)), err(EFAULT));
}

TEST_F(KernelHelpers, ProbeReadStrLengthsAndEdges) {
    const char src[] = "hello";
    char dst[16];
    EXPECT_EQ(call(helper_ids::probe_read_str, addr(dst), sizeof dst, addr(src)), 6u);
    EXPECT_STREQ(dst, "hello");
    EXPECT_EQ(call(helper_ids::probe_read_user_str, addr(dst), 4, addr(src)), 4u);  // truncated, NUL included
    EXPECT_STREQ(dst, "hel");

    GuardedPage g;
    std::memcpy(g.guard() - 3, "ab", 3);  // a string that ends right before the guard page
    EXPECT_EQ(call(helper_ids::probe_read_kernel_str, addr(dst), sizeof dst, addr(g.guard() - 3)), 3u);
    EXPECT_STREQ(dst, "ab");
    // Runs into the guard page before its NUL: -EFAULT and the destination zeroed, as the kernel does
    // (tests/runtime/helpers_test.cpp checks this against the kernel itself).
    std::memcpy(g.guard() - 3, "abc", 3);
    std::memset(dst, 'x', sizeof dst);
    EXPECT_EQ(call(helper_ids::probe_read_str, addr(dst), sizeof dst, addr(g.guard() - 3)), err(EFAULT));
    EXPECT_EQ(std::count(dst, dst + sizeof dst, '\0'), static_cast<long>(sizeof dst));
    EXPECT_EQ(call(helper_ids::probe_read_str, addr(dst), sizeof dst, addr(g.guard())), err(EFAULT));
}

TEST_F(KernelHelpers, ProbeWriteUser) {
    char target[8] = {};
    const char src[] = "hey";
    EXPECT_EQ(call(helper_ids::probe_write_user, addr(target), addr(src), 4), 0u);
    EXPECT_STREQ(target, "hey");
    GuardedPage g;
    EXPECT_EQ(call(helper_ids::probe_write_user, addr(g.guard()), addr(src), 4), err(EFAULT));
}

TEST_F(KernelHelpers, CurrentTask) {
    const u64 pid_tgid = call(helper_ids::get_current_pid_tgid);
    EXPECT_EQ(pid_tgid >> 32, static_cast<u64>(getpid()));
    EXPECT_EQ(pid_tgid & 0xffffffff, static_cast<u64>(syscall(SYS_gettid)));
    const u64 uid_gid = call(helper_ids::get_current_uid_gid);
    EXPECT_EQ(uid_gid & 0xffffffff, getuid());
    EXPECT_EQ(uid_gid >> 32, getgid());

    char old[17] = {};
    prctl(PR_GET_NAME, old);
    prctl(PR_SET_NAME, "ebpfrt-comm");
    char comm[16];
    EXPECT_EQ(call(helper_ids::get_current_comm, addr(comm), sizeof comm), 0u);
    EXPECT_STREQ(comm, "ebpfrt-comm");
    char small[4];
    EXPECT_EQ(call(helper_ids::get_current_comm, addr(small), sizeof small), 0u);
    EXPECT_STREQ(small, "ebp");
    prctl(PR_SET_NAME, old);
}

TEST_F(KernelHelpers, ClocksCpusAndRandomness) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const u64 before = static_cast<u64>(ts.tv_sec) * 1000000000u + static_cast<u64>(ts.tv_nsec);
    const u64 t = call(helper_ids::ktime_get_ns);
    EXPECT_GE(t, before);
    EXPECT_LT(t - before, 1000000000u);
    EXPECT_GE(call(helper_ids::ktime_get_boot_ns), t - 1000000000u);
    EXPECT_GT(call(helper_ids::ktime_get_coarse_ns), 0u);
    EXPECT_GT(call(helper_ids::ktime_get_tai_ns), 0u);
    EXPECT_LT(call(helper_ids::get_smp_processor_id), static_cast<u64>(sysconf(_SC_NPROCESSORS_CONF)));
    EXPECT_LT(call(helper_ids::get_numa_node_id), 1024u);
    std::set<u64> seen;
    for (int i = 0; i < 100; ++i) {
        const u64 r = call(helper_ids::get_prandom_u32);
        EXPECT_LE(r, 0xffffffffu);
        seen.insert(r);
    }
    EXPECT_GT(seen.size(), 90u);
}

TEST_F(KernelHelpers, SnprintfAndStrncmp) {
    char out[64];
    const char fmt[] = "pid %d comm %s hex %llx %u%%";
    const char name[] = "bash";
    const u64 data[] = {static_cast<u64>(-12), addr(name), 0xdeadbeefcafeULL, 0xffffffffffULL};
    EXPECT_EQ(call(helper_ids::snprintf, addr(out), sizeof out, addr(fmt), addr(data), sizeof data),
              std::strlen("pid -12 comm bash hex deadbeefcafe 4294967295%") + 1);
    EXPECT_STREQ(out, "pid -12 comm bash hex deadbeefcafe 4294967295%");
    char tiny[5];
    EXPECT_EQ(call(helper_ids::snprintf, addr(tiny), sizeof tiny, addr(fmt), addr(data), sizeof data), 47u);
    EXPECT_STREQ(tiny, "pid ");
    const char bad_fmt[] = "%d %d";
    EXPECT_EQ(call(helper_ids::snprintf, addr(out), sizeof out, addr(bad_fmt), addr(data), 8), err(EINVAL));
    const char unsupported[] = "%f";
    EXPECT_EQ(call(helper_ids::snprintf, addr(out), sizeof out, addr(unsupported), addr(data), 8), err(EINVAL));

    const char a[] = "abcd", b[] = "abce";
    EXPECT_EQ(call(helper_ids::strncmp, addr(a), 3, addr(b)), 0u);
    EXPECT_EQ(static_cast<std::int64_t>(call(helper_ids::strncmp, addr(a), 4, addr(b))), -1);
    EXPECT_EQ(static_cast<std::int64_t>(call(helper_ids::strncmp, addr(b), 4, addr(a))), 1);
}

TEST_F(KernelHelpers, PrototypesDescribePointerArguments) {
    EXPECT_EQ(table_.find(helper_ids::probe_read)->args[0], Arg::mem);
    EXPECT_EQ(table_.find(helper_ids::probe_read)->args[1], Arg::size);
    EXPECT_EQ(table_.find(helper_ids::snprintf)->args[2], Arg::cstr);
    EXPECT_EQ(table_.find(helper_ids::probe_write_user)->args[1], Arg::mem_ro);
    EXPECT_EQ(table_.find(helper_ids::ktime_get_ns)->name, "ktime_get_ns");
}

}  // namespace
}  // namespace ebpfrt
