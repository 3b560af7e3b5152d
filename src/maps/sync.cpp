#include "maps/sync.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace ebpfrt::maps {

void RobustMutex::init(bool recursive) noexcept {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    if (recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&m_, &attr);
    pthread_mutexattr_destroy(&attr);
}

bool RobustMutex::lock() noexcept {
    int rc = pthread_mutex_lock(&m_);
    if (rc == EOWNERDEAD) {
        // We own it now; mark it usable again. Repairing the data is the caller's job.
        pthread_mutex_consistent(&m_);
        return true;
    }
    return false;
}

bool RobustMutex::try_lock(bool& owner_died) noexcept {
    int rc = pthread_mutex_trylock(&m_);
    owner_died = false;
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&m_);
        owner_died = true;
        return true;
    }
    return rc == 0;
}

// ---- OwnerLock ----

std::atomic<std::uint64_t> cached_owner_id{0};

namespace {

void reset_owner_id() noexcept { cached_owner_id.store(0, std::memory_order_relaxed); }

struct ProcStat {
    char state = 0;
    std::uint64_t num_threads = 0;
    std::uint64_t start_time = 0;
};

// Fields 3, 20 and 22 of /proc/<pid>/stat, without allocating. 0, or -errno (-ENOENT: no such process, or
// no /proc), -EINVAL if the line cannot be parsed.
int read_proc_stat(std::int32_t pid, ProcStat& out) noexcept {
    char path[32];
    *fmt::format_to_n(path, sizeof path - 1, "/proc/{}/stat", pid).out = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n <= 0) return n < 0 ? -err : -EINVAL;
    buf[n] = '\0';
    // Field 2 is the command name in parentheses, which may itself hold spaces and parentheses.
    const char* p = std::strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2]) return -EINVAL;
    out.state = p[2];
    p += 3;
    for (int field = 4; field <= 22; ++field) {
        char* end = nullptr;
        std::uint64_t v = std::strtoull(p, &end, 10);
        if (end == p) return -EINVAL;
        if (field == 20) out.num_threads = v;
        if (field == 22) out.start_time = v;
        p = end;
    }
    return 0;
}

// A waiter spins this many times before it sleeps: the hash map's critical sections take tens of
// nanoseconds, so the lock is usually free again well within it.
constexpr int spin_iterations = 64;
// Sleeps are cut into slices, after which a waiter checks whether the owner still lives: short at first,
// so that a lock left by a dead process is taken over quickly, longer while a live owner keeps it.
constexpr std::chrono::nanoseconds first_slice = std::chrono::milliseconds(1);
constexpr std::chrono::nanoseconds max_slice = std::chrono::milliseconds(32);

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

}  // namespace

std::uint64_t load_owner_id() noexcept {
    static const int registered = pthread_atfork(nullptr, nullptr, reset_owner_id);
    (void)registered;
    auto pid = static_cast<std::int32_t>(getpid());
    ProcStat st;
    std::uint64_t start = read_proc_stat(pid, st) == 0 ? static_cast<std::uint32_t>(st.start_time) : 0;
    std::uint64_t id = (start << 32) | static_cast<std::uint32_t>(pid);
    cached_owner_id.store(id, std::memory_order_relaxed);
    return id;
}

bool owner_dead(std::uint64_t owner_id) noexcept {
    auto pid = static_cast<std::int32_t>(owner_id & 0x3fffffffu);
    auto start = static_cast<std::uint32_t>(owner_id >> 32);
    if (pid <= 0) return false;
    ProcStat st;
    if (read_proc_stat(pid, st) != 0) return process_dead(pid);  // gone, or no /proc to ask
    // A SIGKILLed process stays a zombie until reaped. A zombie thread-group leader whose other threads
    // still run is alive: its thread count then includes them.
    if ((st.state == 'Z' || st.state == 'X') && st.num_threads <= 1) return true;
    return start != 0 && static_cast<std::uint32_t>(st.start_time) != start;  // the pid was reused
}

std::atomic<std::uint32_t>* OwnerLock::futex_word() noexcept {
    // The futex is the word's low half, where the pid and waiters_bit are.
    static_assert(std::endian::native == std::endian::little);
    static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && sizeof(std::atomic<std::uint32_t>) == 4);
    return reinterpret_cast<std::atomic<std::uint32_t>*>(&word_);
}

bool OwnerLock::lock_contended() noexcept {
    const std::uint64_t self = self_owner_id();
    for (int i = 0; i < spin_iterations; ++i) {
        cpu_relax();
        std::uint64_t cur = word_.load(std::memory_order_relaxed);
        if (cur == 0 &&
            word_.compare_exchange_weak(cur, self, std::memory_order_acquire, std::memory_order_relaxed))
            return false;
    }
    std::chrono::nanoseconds slice = first_slice;
    for (;;) {
        std::uint64_t cur = word_.load(std::memory_order_relaxed);
        if (cur == 0) {
            // Taken with waiters_bit set: others may still sleep, and we cannot tell, so our unlock wakes one.
            if (word_.compare_exchange_weak(cur, self | waiters_bit, std::memory_order_acquire,
                                            std::memory_order_relaxed))
                return false;
            continue;
        }
        if (!(cur & waiters_bit)) {
            if (!word_.compare_exchange_weak(cur, cur | waiters_bit, std::memory_order_relaxed,
                                             std::memory_order_relaxed))
                continue;
            cur |= waiters_bit;
        }
        futex_wait(futex_word(), static_cast<std::uint32_t>(cur), slice);
        if (word_.load(std::memory_order_relaxed) != cur) {
            slice = first_slice;
            continue;
        }
        // The same owner for a whole slice (or a wake meant for another waiter): is it still there?
        if (owner_dead(cur & ~waiters_bit)) {
            // Only one waiter's CAS succeeds; the others then wait for it like for any owner.
            if (word_.compare_exchange_strong(cur, self | waiters_bit, std::memory_order_acquire,
                                              std::memory_order_relaxed))
                return true;
            continue;
        }
        slice = std::min(slice * 2, max_slice);
    }
}

void OwnerLock::wake_one() noexcept {
    // FUTEX_WAKE (not _PRIVATE): the waiters may be in other processes.
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(futex_word()), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout.count() >= 0) {
        ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
        ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
        tsp = &ts;
    }
    // FUTEX_WAIT (not _PRIVATE): the word is in memory shared with other processes.
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, 0x7fffffff, nullptr, nullptr, 0);
}

bool process_dead(std::int32_t pid) noexcept {
    if (pid <= 0) return false;
    return kill(pid, 0) != 0 && errno == ESRCH;
}

std::uint32_t current_cpu(std::uint32_t nr_cpus) noexcept {
    int cpu = sched_getcpu();
    if (cpu < 0 || static_cast<std::uint32_t>(cpu) >= nr_cpus) return 0;
    return static_cast<std::uint32_t>(cpu);
}

void value_spin_lock(void* word) noexcept {
    auto* w = static_cast<std::atomic<std::uint32_t>*>(word);
    std::uint32_t expected = 0;
    for (int spins = 0; !w->compare_exchange_weak(expected, 1, std::memory_order_acquire); ++spins) {
        expected = 0;
        if (spins > 64) sched_yield();
    }
}

void value_spin_unlock(void* word) noexcept {
    static_cast<std::atomic<std::uint32_t>*>(word)->store(0, std::memory_order_release);
}

}  // namespace ebpfrt::maps
