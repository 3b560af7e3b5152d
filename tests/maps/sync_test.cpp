// OwnerLock: mutual exclusion between threads and processes, owner identity, and the takeover of a lock
// whose owner was SIGKILLed while holding it (reaped or still a zombie, with or without a waiter asleep).

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "maps/sync.hpp"

namespace ebpfrt::maps {
namespace {

using namespace std::chrono_literals;

// What the lock guards, in memory shared with fork() children.
struct Shared {
    OwnerLock lock;
    std::uint64_t counter;  // plain: only written under the lock
};

class SharedMemory {
public:
    SharedMemory() {
        void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
        s_ = new (p) Shared();
        s_->lock.init();
        s_->counter = 0;
    }
    ~SharedMemory() { munmap(s_, sizeof(Shared)); }
    SharedMemory(const SharedMemory&) = delete;
    SharedMemory& operator=(const SharedMemory&) = delete;
    Shared* operator->() const { return s_; }

private:
    Shared* s_;
};

int wait_exit(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// A child that takes the lock, tells the parent through a pipe, and then holds it until it is killed.
pid_t spawn_holder(OwnerLock& lock) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        (void)lock.lock();
        char c = 1;
        (void)!write(fds[1], &c, 1);
        for (;;) pause();
    }
    close(fds[1]);
    char c = 0;
    bool ok = read(fds[0], &c, 1) == 1;
    close(fds[0]);
    return ok ? pid : -1;
}

// The state of a process as /proc shows it ('Z' for a zombie), or 0 when it is gone.
char proc_state(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "r");
    if (!f) return 0;
    char buf[512] = {};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    const char* p = n ? std::strrchr(buf, ')') : nullptr;
    return p && p[1] && p[2] ? p[2] : 0;
}

// Waits until the kernel has finished killing `pid` (it is a zombie), without reaping it.
bool wait_zombie(pid_t pid) {
    siginfo_t info{};
    return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0;
}

TEST(OwnerLock, NamesItsOwner) {
    SharedMemory mem;
    std::uint64_t self = self_owner_id();
    EXPECT_EQ(static_cast<pid_t>(self & 0x3fffffff), getpid());
    EXPECT_EQ(self & OwnerLock::waiters_bit, 0u);
    EXPECT_EQ(mem->lock.owner(), 0u);
    EXPECT_FALSE(mem->lock.lock());
    EXPECT_EQ(mem->lock.owner(), self);
    mem->lock.unlock();
    EXPECT_EQ(mem->lock.owner(), 0u);

    // A fork child has its own identity, not its parent's cached one.
    pid_t kid = fork();
    if (kid == 0) {
        std::uint64_t id = self_owner_id();
        _exit(static_cast<pid_t>(id & 0x3fffffff) == getpid() && id != self ? 0 : 1);
    }
    EXPECT_EQ(wait_exit(kid), 0);
}

TEST(OwnerLock, OwnerDeadTellsLiveDeadZombieAndReusedPids) {
    std::uint64_t self = self_owner_id();
    EXPECT_FALSE(owner_dead(self));
    if (self >> 32) {
        // Our pid with another start time: the process that owned the lock had our pid before us.
        EXPECT_TRUE(owner_dead(self ^ (std::uint64_t{1} << 40)));
    }
    pid_t kid = fork();
    if (kid == 0) {
        for (;;) pause();
    }
    // The child's id as it computes it: its pid and its own start time, which we cannot know here, so
    // take the pid alone (start time 0: not recorded).
    auto id = static_cast<std::uint64_t>(kid);
    EXPECT_FALSE(owner_dead(id));
    kill(kid, SIGKILL);
    ASSERT_TRUE(wait_zombie(kid));
    EXPECT_EQ(proc_state(kid), 'Z');
    EXPECT_TRUE(owner_dead(id)) << "a SIGKILLed child that is not reaped yet is a zombie";
    EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
    EXPECT_TRUE(owner_dead(id));
}

TEST(OwnerLock, ExcludesThreads) {
    SharedMemory mem;
    constexpr int threads = 4, iters = 200000;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < iters; ++i) {
                EXPECT_FALSE(mem->lock.lock());
                std::uint64_t v = mem->counter;
                if (i % 1024 == 0) std::this_thread::yield();  // sometimes hold it long: waiters sleep
                mem->counter = v + 1;
                mem->lock.unlock();
            }
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(mem->counter, std::uint64_t{threads} * iters);
    EXPECT_EQ(mem->lock.owner(), 0u);
}

TEST(OwnerLock, ExcludesProcesses) {
    SharedMemory mem;
    constexpr int procs = 3, iters = 200000;
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; ++p) {
        pid_t kid = fork();
        if (kid == 0) {
            for (int i = 0; i < iters; ++i) {
                if (mem->lock.lock()) _exit(2);  // nobody died: no takeover may happen
                std::uint64_t v = mem->counter;
                if (i % 1024 == 0) sched_yield();
                mem->counter = v + 1;
                mem->lock.unlock();
            }
            _exit(0);
        }
        kids.push_back(kid);
    }
    for (pid_t k : kids) EXPECT_EQ(wait_exit(k), 0);
    EXPECT_EQ(mem->counter, std::uint64_t{procs} * iters);
}

// The next locker takes over a lock whose owner was killed: `reap` whether the parent reaps the child
// first (else it is still a zombie), `waiting` whether a waiter was already asleep on it when it died.
void check_takeover(bool reap, bool waiting) {
    SharedMemory mem;
    pid_t kid = spawn_holder(mem->lock);
    ASSERT_GT(kid, 0);
    EXPECT_EQ(mem->lock.owner() & 0x3fffffff, static_cast<std::uint64_t>(kid));
    auto start = std::chrono::steady_clock::now();
    std::thread waiter;
    std::atomic<int> waiter_result{-1};
    if (waiting) {
        waiter = std::thread([&] { waiter_result = mem->lock.lock() ? 1 : 0; });
        std::this_thread::sleep_for(20ms);  // past the spin: asleep on the futex
        EXPECT_EQ(waiter_result.load(), -1) << "the lock is held by a live process";
    }
    kill(kid, SIGKILL);
    if (reap) {
        EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
    } else {
        ASSERT_TRUE(wait_zombie(kid));
    }
    bool died;
    if (waiting) {
        waiter.join();
        died = waiter_result.load() == 1;
    } else {
        died = mem->lock.lock();
    }
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(died) << "the lock must report its owner's death";
    EXPECT_LT(took, 2s);
    EXPECT_EQ(mem->lock.owner() & ~OwnerLock::waiters_bit, self_owner_id());
    mem->lock.unlock();
    EXPECT_FALSE(mem->lock.lock()) << "after a takeover the lock works as before";
    mem->lock.unlock();
    if (!reap) {
        EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
    }
}

TEST(OwnerLock, TakesOverFromKilledOwnerReaped) { check_takeover(true, false); }
TEST(OwnerLock, TakesOverFromKilledOwnerZombie) { check_takeover(false, false); }
TEST(OwnerLock, WakesSleepingWaiterWhenOwnerKilled) { check_takeover(false, true); }

TEST(OwnerLock, OnlyOneWaiterTakesOver) {
    SharedMemory mem;
    pid_t kid = spawn_holder(mem->lock);
    ASSERT_GT(kid, 0);
    constexpr int waiters = 3;
    std::atomic<int> takeovers{0}, done{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < waiters; ++i)
        ts.emplace_back([&] {
            if (mem->lock.lock()) ++takeovers;
            std::uint64_t v = mem->counter;
            std::this_thread::sleep_for(1ms);
            mem->counter = v + 1;
            ++done;
            mem->lock.unlock();
        });
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(done.load(), 0);
    kill(kid, SIGKILL);
    EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
    for (auto& t : ts) t.join();
    EXPECT_EQ(takeovers.load(), 1);
    EXPECT_EQ(mem->counter, std::uint64_t{waiters});
}

}  // namespace
}  // namespace ebpfrt::maps
