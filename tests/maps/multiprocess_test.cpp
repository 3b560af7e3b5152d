// Several processes on one named arena: exact atomic counts, survival of a process SIGKILLed in the
// middle of updates, and a ringbuf carrying 10^7 records across processes.

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "maps/layout.hpp"
#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::make_spec;

// Runs fn in a child process; the child exits with fn's return value and never returns into gtest.
template <class F>
pid_t spawn(F&& fn) {
    pid_t pid = fork();
    if (pid == 0) {
        int rc = 1;
        try {
            rc = fn();
        } catch (...) {
            rc = 3;
        }
        _exit(rc);
    }
    return pid;
}

int wait_exit(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

Arena open_arena(const std::string& name) {
    auto a = Arena::create({.name = name, .size = 0, .create = false});
    if (!a) throw std::runtime_error(a.error().message());
    return *a;
}

TEST(MultiProcess, AtomicIncrementsAreExact) {
    test::ShmName shm("incr");
    auto arena = Arena::create({.name = shm.name, .size = 8u << 20}).value();
    auto hash = arena.create_map(make_spec("hits", MapType::hash, 4, 8, 1024)).value();
    auto array = arena.create_map(make_spec("slots", MapType::array, 4, 8, 16)).value();
    constexpr std::uint32_t keys = 16;
    constexpr int procs = 4, threads = 2, iters = 1000000;
    for (std::uint32_t k = 0; k < keys; ++k) {
        std::uint64_t zero = 0;
        ASSERT_TRUE(hash.update(test::bytes(k), test::bytes(zero)));
    }
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; ++p) {
        kids.push_back(spawn([&, p] {
            // Open by name: a new mapping, at another address than the parent's.
            Arena a = open_arena(shm.name);
            void* h = a.map("hits").value().program_handle();
            void* arr = a.map("slots").value().program_handle();
            std::atomic<int> bad{0};
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    for (int i = 0; i < iters; ++i) {
                        std::uint32_t k = static_cast<std::uint32_t>(i + p + t) % keys;
                        auto* v = static_cast<std::uint64_t*>(maps::map_lookup_elem(h, &k));
                        auto* w = static_cast<std::uint64_t*>(maps::map_lookup_elem(arr, &k));
                        if (!v || !w) {
                            ++bad;
                            continue;
                        }
                        __atomic_fetch_add(v, 1, __ATOMIC_RELAXED);
                        __atomic_fetch_add(w, 1, __ATOMIC_RELAXED);
                    }
                });
            for (auto& t : ts) t.join();
            return bad.load() ? 1 : 0;
        }));
    }
    // Meanwhile the parent churns other keys of the hash map, so lock-free lookups race with writers.
    std::mt19937 rng(1);
    void* h = hash.program_handle();
    std::vector<int> status(kids.size(), -1);
    std::size_t done = 0;
    while (done < kids.size()) {
        for (int i = 0; i < 200; ++i) {
            std::uint32_t k = 100 + rng() % 500;
            std::uint64_t v = k;
            if (rng() % 2)
                (void)maps::map_update_elem(h, &k, &v, 0);
            else
                (void)maps::map_delete_elem(h, &k);
        }
        for (std::size_t i = 0; i < kids.size(); ++i) {
            int st = 0;
            if (status[i] == -1 && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
                status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                ++done;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int st : status) EXPECT_EQ(st, 0);
    auto hm = Map<std::uint32_t, std::uint64_t>::from(hash).value();
    auto am = Map<std::uint32_t, std::uint64_t>::from(array).value();
    constexpr std::uint64_t per_key = std::uint64_t{procs} * threads * iters / keys;
    for (std::uint32_t k = 0; k < keys; ++k) {
        EXPECT_EQ(hm.lookup(k), per_key) << "hash key " << k;
        EXPECT_EQ(am.lookup(k), per_key) << "array key " << k;
    }
    EXPECT_EQ(maps::check_consistency(h), "");
}

// What a process that gets killed does: random updates and deletes on every kind of locked map.
struct Churn {
    std::vector<MapRef> maps;
    void run(std::uint32_t seed, std::size_t iters) {
        std::mt19937 rng(seed);
        std::vector<std::byte> value(4096);
        for (std::size_t i = 0; i < iters; ++i) {
            for (auto& m : maps) {
                void* h = m.program_handle();
                std::uint32_t k = rng() % 300;
                std::uint64_t v = k;
                switch (m.type()) {
                case MapType::lpm_trie: {
                    struct {
                        std::uint32_t len;
                        std::uint32_t addr;
                    } key{static_cast<std::uint32_t>(8 + rng() % 25), static_cast<std::uint32_t>(rng())};
                    if (rng() % 2)
                        (void)maps::sys_update(h, &key, &v, 0);
                    else
                        (void)maps::sys_delete(h, &key);
                    break;
                }
                case MapType::queue:
                    if (rng() % 2)
                        (void)maps::map_push_elem(h, &v, update_flags::exist);
                    else
                        (void)maps::map_pop_elem(h, &v);
                    break;
                case MapType::stack_trace: {
                    std::uint64_t ips[4] = {rng() % 50, 2, 3, 4};
                    (void)maps::get_stackid(h, ips, 4, maps::f_reuse_stackid);
                    if (rng() % 4 == 0) (void)maps::sys_delete(h, &k);
                    break;
                }
                default:
                    if (rng() % 3)
                        (void)maps::sys_update(h, &k, value.data(), 0);
                    else
                        (void)maps::sys_delete(h, &k);
                }
            }
        }
    }
};

TEST(MultiProcess, SigkillMidUpdateLeavesMapsUsable) {
    test::ShmName shm("kill");
    auto arena = Arena::create({.name = shm.name, .size = 32u << 20}).value();
    std::vector<MapSpec> specs = {
        make_spec("hash", MapType::hash, 4, 8, 256),
        make_spec("hash_np", MapType::hash, 4, 8, 256, map_flags::no_prealloc),
        make_spec("lru", MapType::lru_hash, 4, 8, 128),
        make_spec("pcpu", MapType::percpu_hash, 4, 8, 256),
        make_spec("lpm", MapType::lpm_trie, 8, 8, 256, map_flags::no_prealloc),
        make_spec("queue", MapType::queue, 0, 8, 64),
        make_spec("stacks", MapType::stack_trace, 4, 32, 64),
    };
    Churn churn;
    for (auto& s : specs) churn.maps.push_back(arena.create_map(s).value());
    std::mt19937 rng(42);
    for (int round = 0; round < 25; ++round) {
        pid_t kid = spawn([&, round] {
            Arena a = open_arena(shm.name);
            Churn c;
            for (auto& s : specs) c.maps.push_back(a.map(s.name).value());
            c.run(static_cast<std::uint32_t>(round), ~std::size_t{0});
            return 0;
        });
        std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 15000));
        kill(kid, SIGKILL);
        EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
        // The survivors keep working right away (locks held by the dead child are recovered).
        churn.run(1000 + round, 50);
    }
    for (auto& m : churn.maps) EXPECT_EQ(maps::check_consistency(m.program_handle()), "") << m.name();
    // How often a child died holding a hash map's stripe lock (probabilistic; shows the path is taken).
    for (auto& m : churn.maps)
        if (m.type() == MapType::hash || m.type() == MapType::lru_hash || m.type() == MapType::percpu_hash)
            std::printf("[ sigkill ] %s: %u repairs after 25 kills\n", m.name().c_str(),
                        maps::hash_repairs(static_cast<maps::MapHeader*>(m.program_handle())));

    // Another process uses them normally, and no capacity leaked: each hash map takes exactly max_entries.
    pid_t kid = spawn([&] {
        Arena a = open_arena(shm.name);
        for (const char* name : {"hash", "hash_np", "pcpu"}) {
            MapRef m = a.map(name).value();
            std::vector<std::byte> v(m.value_buffer_size());
            for (std::uint32_t k = 0; k < 300; ++k) (void)m.raw_erase(test::bytes(k));
            for (std::uint32_t k = 0; k < m.max_entries(); ++k)
                if (m.raw_update(test::bytes(k), v) != 0) return 10;
            std::uint32_t extra = 100000;
            if (m.raw_update(test::bytes(extra), v) != -E2BIG) return 11;
            if (!maps::check_consistency(m.program_handle()).empty()) return 12;
        }
        MapRef lru = a.map("lru").value();
        for (std::uint32_t k = 5000; k < 5500; ++k) {
            std::uint64_t v = k;
            if (lru.raw_update(test::bytes(k), test::bytes(v)) != 0) return 13;
        }
        std::uint32_t last = 5499;
        std::uint64_t got = 0;
        if (lru.raw_lookup(test::bytes(last), test::wbytes(got)) != 0 || got != 5499) return 14;
        Churn c;
        for (auto& s : specs) c.maps.push_back(a.map(s.name).value());
        c.run(7, 200);
        for (auto& m : c.maps)
            if (!maps::check_consistency(m.program_handle()).empty()) return 15;
        return 0;
    });
    EXPECT_EQ(wait_exit(kid), 0);
}

// A process SIGKILLed while it holds a hash map's stripe lock: the next process to lock that stripe takes
// the lock over within a bounded time, the map is repaired once, and it stays consistent and full-sized.
TEST(MultiProcess, HashStripeLockOfKilledProcessIsTakenOver) {
    test::ShmName shm("stripe");
    auto arena = Arena::create({.name = shm.name, .size = 8u << 20}).value();
    auto ref = arena.create_map(make_spec("h", MapType::hash, 4, 8, 256)).value();
    auto map = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    auto* hdr = static_cast<maps::MapHeader*>(ref.program_handle());
    for (std::uint32_t k = 0; k < 200; ++k) ASSERT_TRUE(map.update(k, k));
    const std::uint32_t victim = 7;
    for (bool reap : {false, true}) {
        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        pid_t kid = fork();
        if (kid == 0) {
            // Another mapping of the arena, as an unrelated process would have.
            Arena a = open_arena(shm.name);
            auto* h = static_cast<maps::MapHeader*>(a.map("h").value().program_handle());
            (void)maps::hash_stripe_lock(h, &victim).lock();
            char c = 1;
            (void)!write(fds[1], &c, 1);
            for (;;) pause();
        }
        close(fds[1]);
        char c = 0;
        ASSERT_EQ(read(fds[0], &c, 1), 1);
        close(fds[0]);
        EXPECT_EQ(maps::hash_stripe_lock(hdr, &victim).owner() & 0x3fffffff, static_cast<std::uint64_t>(kid));
        std::uint32_t repairs = maps::hash_repairs(hdr);
        kill(kid, SIGKILL);
        siginfo_t info{};
        if (reap) {
            EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
        } else {
            ASSERT_EQ(waitid(P_PID, static_cast<id_t>(kid), &info, WEXITED | WNOWAIT), 0);  // a zombie
        }
        auto start = std::chrono::steady_clock::now();
        ASSERT_TRUE(map.update(victim, 700 + reap));
        EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
        EXPECT_EQ(maps::hash_repairs(hdr), repairs + 1) << "the update that took the lock over repairs";
        EXPECT_EQ(maps::hash_stripe_lock(hdr, &victim).owner(), 0u);
        if (!reap) {
            EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
        }
        EXPECT_EQ(maps::check_consistency(hdr), "");
        EXPECT_EQ(maps::hash_repairs(hdr), repairs + 1) << "nothing else needed repair";
    }
    for (std::uint32_t k = 0; k < 200; ++k) EXPECT_EQ(map.lookup(k), k == victim ? 701 : k) << k;
    // No capacity leaked: after the takeovers the map still holds exactly max_entries.
    for (std::uint32_t k = 200; k < 256; ++k) ASSERT_TRUE(map.update(k, k)) << k;
    auto full = map.update(1000, 1);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code(), Errc::out_of_memory);
    EXPECT_EQ(maps::check_consistency(hdr), "");
}

// A process killed in the middle of an in-place value write leaves the element's generation odd and the
// stripe locked: a host lookup of that key in another process must not spin on the odd generation. It
// takes the stripe lock over, the map is repaired (generation even again), and it returns the value.
TEST(MultiProcess, ValueWriteOfKilledProcessDoesNotBlockLookups) {
    test::ShmName shm("halfwrite");
    auto arena = Arena::create({.name = shm.name, .size = 8u << 20}).value();
    auto ref = arena.create_map(make_spec("h", MapType::hash, 4, 8, 64)).value();
    auto map = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    auto* hdr = static_cast<maps::MapHeader*>(ref.program_handle());
    for (std::uint32_t k = 0; k < 32; ++k) ASSERT_TRUE(map.update(k, k + 100));
    const std::uint32_t victim = 5;
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t kid = fork();
    if (kid == 0) {
        Arena a = open_arena(shm.name);
        auto* h = static_cast<maps::MapHeader*>(a.map("h").value().program_handle());
        // What write_in_place has done when it is killed between its first and last store.
        (void)maps::hash_stripe_lock(h, &victim).lock();
        maps::hash_generation(h, &victim)->fetch_add(1);
        char c = 1;
        (void)!write(fds[1], &c, 1);
        for (;;) pause();
    }
    close(fds[1]);
    char c = 0;
    ASSERT_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    ASSERT_EQ(maps::hash_generation(hdr, &victim)->load() & 1, 1u);
    const std::uint32_t repairs = maps::hash_repairs(hdr);
    kill(kid, SIGKILL);
    EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
    auto start = std::chrono::steady_clock::now();
    auto got = map.lookup(victim);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, victim + 100);
    EXPECT_EQ(maps::hash_repairs(hdr), repairs + 1);
    EXPECT_EQ(maps::hash_generation(hdr, &victim)->load() & 1, 0u);
    EXPECT_EQ(maps::hash_stripe_lock(hdr, &victim).owner(), 0u);
    for (std::uint32_t k = 0; k < 32; ++k) EXPECT_EQ(map.lookup(k), k + 100) << k;
    ASSERT_TRUE(map.update(victim, 1));
    EXPECT_EQ(map.lookup(victim), 1u);
    EXPECT_EQ(maps::check_consistency(hdr), "");
}

// A process killed while it allocates or frees arena memory (creating and removing maps, growing
// no_prealloc pools) leaves the arena's allocator usable by the others.
TEST(MultiProcess, SigkillMidAllocationLeavesArenaUsable) {
    test::ShmName shm("killalloc");
    auto arena = Arena::create({.name = shm.name, .size = 16u << 20}).value();
    auto anchor = arena.create_map(make_spec("anchor", MapType::array, 4, 8, 1)).value();
    void* h = anchor.program_handle();
    std::mt19937 rng(7);
    auto work = [](Arena& a, const std::string& prefix, std::uint32_t seed, int iters) {
        std::mt19937 r(seed);
        for (int i = 0; i < iters; ++i) {
            std::string name = prefix + std::to_string(i);
            std::uint32_t n = 64 + r() % 1024;
            auto m = r() % 2 ? a.create_map(make_spec(name, MapType::hash, 4, 8, n, map_flags::no_prealloc))
                             : a.create_map(make_spec(name, MapType::array, 4, 8, n, map_flags::mmapable));
            if (!m) continue;
            if (m->type() == MapType::hash)
                for (std::uint32_t k = 0; k < n; ++k) {
                    std::uint64_t v = k;
                    (void)m->raw_update(test::bytes(k), test::bytes(v));
                }
            (void)a.remove_map(name);
        }
    };
    for (int round = 0; round < 30; ++round) {
        pid_t kid = spawn([&, round] {
            Arena a = open_arena(shm.name);
            work(a, "kid" + std::to_string(round) + "-", static_cast<std::uint32_t>(round), 1 << 30);
            return 0;
        });
        std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 8000));
        kill(kid, SIGKILL);
        EXPECT_EQ(wait_exit(kid), 128 + SIGKILL);
        ASSERT_EQ(maps::check_arena_heap(h), "") << "round " << round;
        work(arena, "parent" + std::to_string(round) + "-", 100 + static_cast<std::uint32_t>(round), 3);
        ASSERT_EQ(maps::check_arena_heap(h), "") << "round " << round;
    }
}

TEST(MultiProcess, AnonymousArenaIsSharedWithForkChildren) {
    auto arena = test::anon_arena(1u << 20);
    auto m = Map<std::uint32_t, std::uint64_t>::from(
                 arena.create_map(make_spec("h", MapType::hash, 4, 8, 16)).value())
                 .value();
    pid_t kid = spawn([&] {
        for (std::uint32_t k = 0; k < 10; ++k)
            if (!m.update(k, k * k)) return 1;
        return 0;
    });
    ASSERT_EQ(wait_exit(kid), 0);
    for (std::uint32_t k = 0; k < 10; ++k) EXPECT_EQ(m.lookup(k), k * k);
}

struct Record {
    std::uint32_t producer;
    std::uint32_t reserved;
    std::uint64_t seq;
};

TEST(MultiProcess, RingbufTenMillionRecords) {
    test::ShmName shm("ring");
    auto arena = Arena::create({.name = shm.name, .size = 8u << 20}).value();
    auto ring = arena.create_map(make_spec("events", MapType::ringbuf, 0, 0, 1u << 16))
                    .value();  // small: producers do fill it
    auto retries = arena.create_map(make_spec("retries", MapType::array, 4, 8, 4)).value();
    constexpr std::uint32_t producers = 2;
    constexpr std::uint64_t per_producer = 5000000;  // 10^7 in all
    std::vector<pid_t> kids;
    for (std::uint32_t p = 0; p < producers; ++p) {
        kids.push_back(spawn([&, p] {
            Arena a = open_arena(shm.name);
            void* rb = a.map("events").value().program_handle();
            void* counters = a.map("retries").value().program_handle();
            std::uint64_t full = 0;
            for (std::uint64_t seq = 0; seq < per_producer; ++seq) {
                void* slot;
                while (!(slot = maps::ringbuf_reserve(rb, sizeof(Record), 0))) {
                    ++full;  // the ring is full: let the consumer run, then retry
                    sched_yield();
                }
                auto* r = static_cast<Record*>(slot);
                r->producer = p;
                r->reserved = 0;
                r->seq = seq;
                maps::ringbuf_submit(slot, 0);
            }
            *static_cast<std::uint64_t*>(maps::map_lookup_elem(counters, &p)) = full;
            return 0;
        }));
    }
    auto rb = RingBuffer::from(ring).value();
    std::vector<std::uint64_t> next(producers, 0);
    std::uint64_t total = 0, errors = 0;
    auto on_record = [&](std::span<const std::byte> d) {
        Record r;
        if (d.size() != sizeof r) {
            ++errors;
            return 0;
        }
        std::memcpy(&r, d.data(), sizeof r);
        if (r.producer >= producers || r.seq != next[r.producer])
            ++errors;  // lost, duplicated or reordered
        else
            ++next[r.producer];
        ++total;
        return 0;
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (total < producers * per_producer && std::chrono::steady_clock::now() < deadline && errors == 0)
        ASSERT_TRUE(rb.poll(std::chrono::milliseconds(1000), on_record));
    for (pid_t k : kids) EXPECT_EQ(wait_exit(k), 0);
    EXPECT_EQ(errors, 0u);
    EXPECT_EQ(total, producers * per_producer);
    for (std::uint32_t p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer) << "producer " << p;
    auto counts = Map<std::uint32_t, std::uint64_t>::from(retries).value();
    std::printf("[ ringbuf ] 10^7 records; producer retries on a full ring: %llu, %llu\n",
                static_cast<unsigned long long>(counts.lookup(0).value_or(0)),
                static_cast<unsigned long long>(counts.lookup(1).value_or(0)));
    EXPECT_EQ(rb.available(), 0u);
}

TEST(MultiProcess, RingbufSkipsRecordOfDeadProducer) {
    test::ShmName shm("ringdead");
    auto arena = Arena::create({.name = shm.name, .size = 1u << 20}).value();
    auto ring = arena.create_map(make_spec("events", MapType::ringbuf, 0, 0, 1u << 16)).value();
    // A producer reserves a record and dies before submitting it.
    pid_t dead = spawn([&] {
        Arena a = open_arena(shm.name);
        void* rb = a.map("events").value().program_handle();
        return maps::ringbuf_reserve(rb, 16, 0) ? 0 : 1;
    });
    ASSERT_EQ(wait_exit(dead), 0);
    std::uint64_t v = 42;
    ASSERT_TRUE(ring.output(test::bytes(v)));
    auto rb = RingBuffer::from(ring).value();
    std::vector<std::uint64_t> got;
    auto cb = [&](std::span<const std::byte> d) {
        std::uint64_t x;
        std::memcpy(&x, d.data(), 8);
        got.push_back(x);
        return 0;
    };
    EXPECT_EQ(rb.consume(cb).value(), 0u);  // stuck behind the busy record for now
    auto n = rb.poll(std::chrono::seconds(5), cb);
    ASSERT_TRUE(n);
    EXPECT_EQ(got, std::vector<std::uint64_t>{42});
    EXPECT_EQ(rb.available(), 0u);
}

}  // namespace
}  // namespace ebpfrt
