#include "maps/sync.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

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

}  // namespace ebpfrt::maps
