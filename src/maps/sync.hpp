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

/// The identity a process writes into an OwnerLock it takes: its pid in the low 32 bits, the low 32 bits
/// of its start time (clock ticks since boot, /proc/<pid>/stat field 22; 0 if /proc is unreadable) in the
/// high ones, so that a waiter can tell a dead owner from a later process that was given the same pid.
/// Cached per process (getpid() is a system call since glibc 2.25) and refreshed in fork() children.
extern std::atomic<std::uint64_t> cached_owner_id;
std::uint64_t load_owner_id() noexcept;
inline std::uint64_t self_owner_id() noexcept {
    std::uint64_t id = cached_owner_id.load(std::memory_order_relaxed);
    return id ? id : load_owner_id();
}

/// True if the process an owner id names is gone: no such pid, a zombie (SIGKILLed, not reaped yet), or
/// the pid now belongs to a process with another start time. Processes must share a pid namespace.
bool owner_dead(std::uint64_t owner_id) noexcept;

/// A lock for short critical sections in shared memory that survives its owner being SIGKILLed at any
/// instruction, cheaper than RobustMutex: taking a free lock is one CAS of the owner's id into the word,
/// releasing is one store (an exchange and a futex wake when someone sleeps on it). There is no kernel
/// robust list, so a dead owner is found by its waiters: they spin briefly, then sleep on the futex in
/// time slices, and after each slice in which the word did not change they check the owner with
/// owner_dead() and take the lock over with a CAS. A thread must not exit while holding the lock (only
/// process death is detected: the owner id names a process, and a live one is always waited for).
class OwnerLock {
public:
    /// Set in the word's low half (the futex) while someone sleeps on it; pids stay below 2^22.
    static constexpr std::uint64_t waiters_bit = 1u << 31;

    /// Unlocked; call once, before the memory is visible to anyone else.
    void init() noexcept { word_.store(0, std::memory_order_relaxed); }

    /// Locks; true when the previous owner died holding it (the caller then owns the lock and should
    /// repair what the owner may have left half done).
    [[nodiscard]] bool lock() noexcept {
        std::uint64_t expected = 0;
        if (word_.compare_exchange_strong(expected, self_owner_id(), std::memory_order_acquire,
                                          std::memory_order_relaxed)) [[likely]]
            return false;
        return lock_contended();
    }
    void unlock() noexcept {
        // A plain store when nobody sleeps, instead of a locked exchange (which costs as much as the CAS).
        // A waiter that sets waiters_bit between the load and the store fails its futex_wait (the word is
        // not what it expects any more), unless it got into the kernel before the store landed, which
        // takes an interrupt between these two instructions; it then oversleeps one first slice (1 ms).
        if (!(word_.load(std::memory_order_relaxed) & waiters_bit)) [[likely]] {
            word_.store(0, std::memory_order_release);
            return;
        }
        word_.exchange(0, std::memory_order_release);
        wake_one();
    }
    /// The owner's id (without waiters_bit), 0 when free. For checks and tests.
    std::uint64_t owner() const noexcept {
        return word_.load(std::memory_order_relaxed) & ~waiters_bit;
    }

private:
    bool lock_contended() noexcept;
    void wake_one() noexcept;
    std::atomic<std::uint32_t>* futex_word() noexcept;

    std::atomic<std::uint64_t> word_;  // 0: free; else the owner's id, | waiters_bit
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
