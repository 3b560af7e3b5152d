#pragma once
// Synchronisation that lives in shared memory and survives a process dying at any instruction:
// robust process-shared mutexes, futex waits on shared words, and a sequence counter for lock-free readers.

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ebpfrt::maps {

/// A pthread mutex with PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST, placed in shared memory.
/// If its owner dies, the next lock() gets the mutex back (the kernel walks the dead thread's robust
/// list) and returns true so that the caller can repair what the owner may have left half done.
class RobustMutex {
public:
    /// Initialises the mutex in place; call once, before the memory is visible to anyone else.
    void init(bool recursive = false) noexcept;
    void destroy() noexcept { pthread_mutex_destroy(&m_); }

    /// Locks; true when the previous owner died holding it (the mutex is then held and consistent again).
    [[nodiscard]] bool lock() noexcept;
    /// Like lock() but gives up at once: returns false if the mutex is held; sets `owner_died`.
    bool try_lock(bool& owner_died) noexcept;
    void unlock() noexcept { pthread_mutex_unlock(&m_); }

private:
    pthread_mutex_t m_;
};

/// A RobustMutex padded to a cache line, for arrays of lock stripes.
struct alignas(64) LockSlot {
    RobustMutex m;
};

/// Holds a RobustMutex for a scope. `owner_died()` tells whether the previous owner died holding it.
class LockGuard {
public:
    explicit LockGuard(RobustMutex& m) noexcept : m_(&m), died_(m.lock()) {}
    ~LockGuard() {
        if (m_) m_->unlock();
    }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
    bool owner_died() const noexcept { return died_; }
    void unlock() noexcept {
        m_->unlock();
        m_ = nullptr;
    }

private:
    RobustMutex* m_;
    bool died_;
};

/// Waits while *word == expected, at most `timeout` (negative: no limit). Shared (not process-private)
/// futex, so a wake from another process that maps the same memory reaches us.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                std::chrono::nanoseconds timeout) noexcept;
/// Wakes every waiter on `word`.
void futex_wake_all(std::atomic<std::uint32_t>* word) noexcept;

/// True if process `pid` no longer exists (kill(pid, 0) fails with ESRCH).
bool process_dead(std::int32_t pid) noexcept;

/// The CPU this thread runs on (sched_getcpu), clamped below `nr_cpus`.
std::uint32_t current_cpu(std::uint32_t nr_cpus) noexcept;

}  // namespace ebpfrt::maps
