// Arena: creation, opening by name, the map registry, spec validation, out-of-memory reporting.

#include <atomic>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::make_spec;

TEST(Arena, AnonymousCreateAndList) {
    auto a = test::anon_arena(1u << 20);
    EXPECT_EQ(a.name(), "");
    EXPECT_GE(a.size(), 1u << 20);
    std::size_t before = a.free_bytes();
    auto m1 = a.create_map(make_spec("counts", MapType::hash, 4, 8, 128));
    ASSERT_TRUE(m1) << m1.error().message();
    auto m2 = a.create_map(make_spec("arr", MapType::array, 4, 8, 16));
    ASSERT_TRUE(m2) << m2.error().message();
    EXPECT_LT(a.free_bytes(), before);
    EXPECT_EQ(a.map_names(), (std::vector<std::string>{"counts", "arr"}));
    EXPECT_EQ(m1->name(), "counts");
    EXPECT_EQ(m1->type(), MapType::hash);
    EXPECT_NE(m1->id(), m2->id());
    auto again = a.map("counts");
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *m1);
    auto by_id = a.map_by_id(m2->id());
    ASSERT_TRUE(by_id);
    EXPECT_EQ(by_id->name(), "arr");
}

TEST(Arena, SizeTooSmall) {
    auto a = Arena::create({.name = "", .size = 100});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), Errc::invalid_argument);
    EXPECT_NE(a.error().message().find("too small"), std::string::npos) << a.error().message();
}

TEST(Arena, NameTaken) {
    auto a = test::anon_arena(1u << 20);
    ASSERT_TRUE(a.create_map(make_spec("x", MapType::array, 4, 4, 1)));
    auto dup = a.create_map(make_spec("x", MapType::hash, 4, 4, 1));
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().code(), Errc::already_exists);
    EXPECT_EQ(dup.error().message(), "create map \"x\": a map with that name already exists in the arena");
}

TEST(Arena, MapNotFound) {
    auto a = test::anon_arena(1u << 20);
    auto m = a.map("nope");
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().code(), Errc::not_found);
    EXPECT_EQ(m.error().message(), "open map \"nope\": no such map in the arena");
    EXPECT_EQ(a.remove_map("nope").error().code(), Errc::not_found);
    EXPECT_FALSE(a.map_by_id(12345));
}

TEST(Arena, RemoveMapKeepsHandlesWorking) {
    auto a = test::anon_arena(1u << 20);
    auto m = a.create_map(make_spec("gone", MapType::hash, 4, 8, 64)).value();
    std::size_t with_map = a.free_bytes();
    std::uint32_t k = 1;
    std::uint64_t v = 7;
    ASSERT_TRUE(m.update(test::bytes(k), test::bytes(v)));
    ASSERT_TRUE(a.remove_map("gone"));
    EXPECT_FALSE(a.map("gone"));
    EXPECT_TRUE(a.map_names().empty());
    // The handle still works: the memory goes when the last reference does.
    std::uint64_t out = 0;
    ASSERT_TRUE(m.lookup(test::bytes(k), test::wbytes(out)));
    EXPECT_EQ(out, 7u);
    EXPECT_EQ(a.free_bytes(), with_map);
    { auto drop = std::move(m); }
    EXPECT_GT(a.free_bytes(), with_map);
    // The name can be used again.
    EXPECT_TRUE(a.create_map(make_spec("gone", MapType::array, 4, 8, 4)));
}

TEST(Arena, NamedSharedByTwoArenaObjects) {
    test::ShmName shm("named");
    auto a = Arena::create({.name = shm.name, .size = 1u << 20});
    ASSERT_TRUE(a) << a.error().message();
    auto b = Arena::create({.name = shm.name, .size = 0, .create = false});
    ASSERT_TRUE(b) << b.error().message();
    auto m = a->create_map(make_spec("shared", MapType::hash, 4, 8, 32)).value();
    std::uint32_t k = 3;
    std::uint64_t v = 99;
    ASSERT_TRUE(m.update(test::bytes(k), test::bytes(v)));
    auto mb = b->map("shared");
    ASSERT_TRUE(mb) << mb.error().message();
    std::uint64_t out = 0;
    ASSERT_TRUE(mb->lookup(test::bytes(k), test::wbytes(out)));
    EXPECT_EQ(out, 99u);
    // A third open_or_create with a size opens the existing arena.
    auto c = Arena::create({.name = shm.name, .size = 4u << 20});
    ASSERT_TRUE(c);
    EXPECT_EQ(c->map_names(), std::vector<std::string>{"shared"});
}

TEST(Arena, ConcurrentLoadersOnOneArena) {
    test::ShmName shm("loaders");
    auto first = Arena::create({.name = shm.name, .size = 8u << 20}).value();
    std::atomic<int> created{0}, taken{0}, other{0};
    std::vector<std::thread> loaders;
    for (int t = 0; t < 4; ++t)
        loaders.emplace_back([&] {
            // Each loader has its own Arena object (its own mapping) on the same shared memory.
            auto a = Arena::create({.name = shm.name, .size = 8u << 20}).value();
            for (int i = 0; i < 25; ++i) {
                std::string name = std::to_string(i);
                name += "_map";  // (not "m" + std::to_string(i): g++ 12 warns falsely, -Wrestrict)
                auto m = a.create_map(make_spec(name, MapType::hash, 4, 8, 64));
                if (m)
                    ++created;
                else if (m.error().code() == Errc::already_exists)
                    ++taken;
                else
                    ++other;
            }
        });
    for (auto& t : loaders) t.join();
    EXPECT_EQ(created.load(), 25);
    EXPECT_EQ(taken.load(), 75);
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(first.map_names().size(), 25u);
}

TEST(Arena, OpenMissing) {
    test::ShmName shm("missing");
    auto a = Arena::create({.name = shm.name, .size = 0, .create = false});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), Errc::not_found);
    EXPECT_EQ(a.error().message(), "open arena \"" + shm.name + "\": no such shared-memory object");
    EXPECT_EQ(Arena::remove(shm.name).error().code(), Errc::not_found);
    EXPECT_EQ(Arena::create({.name = "a/b", .size = 1u << 20}).error().code(), Errc::invalid_argument);
}

TEST(Arena, OutOfMemoryNamesTheMap) {
    auto a = test::anon_arena(256 * 1024);
    auto big = a.create_map(make_spec("huge", MapType::array, 4, 1024, 1024));
    ASSERT_FALSE(big);
    EXPECT_EQ(big.error().code(), Errc::out_of_memory);
    EXPECT_NE(big.error().message().find("create map \"huge\": arena is out of memory"), std::string::npos)
        << big.error().message();
    // The failed creation left nothing behind and smaller maps still fit.
    EXPECT_TRUE(a.map_names().empty());
    EXPECT_TRUE(a.create_map(make_spec("small", MapType::array, 4, 8, 16)));
}

TEST(Arena, NoPreallocGrowthOutOfMemory) {
    auto a = test::anon_arena(2u << 20);
    auto m = a.create_map(make_spec("grow", MapType::hash, 8, 256, 100000, map_flags::no_prealloc)).value();
    std::uint64_t k = 0;
    std::array<std::byte, 256> v{};
    Result<void> last;
    for (; k < 100000; ++k) {
        last = m.update(test::bytes(k), v);
        if (!last) break;
    }
    ASSERT_FALSE(last);
    EXPECT_GT(k, 100u);
    EXPECT_EQ(last.error().code(), Errc::out_of_memory);
    EXPECT_EQ(last.error().message(), "update map \"grow\": the arena is out of memory");
    EXPECT_EQ(maps::check_consistency(m.program_handle()), "");
    // Deleting makes room again.
    std::uint64_t first = 0;
    ASSERT_TRUE(m.erase(test::bytes(first)));
    EXPECT_TRUE(m.update(test::bytes(k), v));
}

// The arena's allocator under a random mix of map sizes and alignments (page-aligned mmapable arrays and
// ringbufs, 64-byte headers, pool chunks): blocks stay well formed, and freeing everything gives every
// byte back.
TEST(Arena, HeapReusesAndMergesFreedMemory) {
    auto a = test::anon_arena(8u << 20);
    auto anchor = a.create_map(make_spec("anchor", MapType::array, 4, 8, 1)).value();
    void* h = anchor.program_handle();
    const std::size_t baseline = a.free_bytes();
    std::mt19937 rng(5);
    std::vector<std::string> live;
    for (int i = 0; i < 600; ++i) {
        if (!live.empty() && (rng() % 3 == 0 || live.size() > 40)) {
            std::size_t at = rng() % live.size();
            ASSERT_TRUE(a.remove_map(live[at]));
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
        } else {
            std::string name = "m" + std::to_string(i);
            std::uint32_t n = 1 + rng() % 2000;
            MapSpec s;
            switch (rng() % 4) {
            case 0:
                s = make_spec(name, MapType::array, 4, 8 * (1 + rng() % 8), n, map_flags::mmapable);
                break;
            case 1:
                s = make_spec(name, MapType::hash, 4, 8, n, map_flags::no_prealloc);
                break;
            case 2:
                s = make_spec(name, MapType::ringbuf, 0, 0, 4096u << (rng() % 3));
                break;
            default:
                s = make_spec(name, MapType::queue, 0, 16, n);
            }
            auto m = a.create_map(s);
            if (!m) {
                EXPECT_EQ(m.error().code(), Errc::out_of_memory) << m.error().message();
                continue;
            }
            if (s.type == MapType::hash)  // grows the pool a chunk at a time
                for (std::uint32_t k = 0; k < n; k += 1 + rng() % 3) {
                    std::uint64_t v = k;
                    ASSERT_TRUE(m->update(test::bytes(k), test::bytes(v)));
                }
            live.push_back(name);
        }
        ASSERT_EQ(maps::check_arena_heap(h), "") << "step " << i;
    }
    for (auto& name : live) ASSERT_TRUE(a.remove_map(name));
    EXPECT_EQ(maps::check_arena_heap(h), "");
    EXPECT_EQ(a.free_bytes(), baseline);
    // All free memory is one block again: one map can take nearly all of it.
    auto n = static_cast<std::uint32_t>(baseline / 1024 - 8);
    auto big = a.create_map(make_spec("big", MapType::array, 4, 1024, n));
    EXPECT_TRUE(big) << big.error().message();
}

TEST(Arena, BytesForIsEnough) {
    std::vector<MapSpec> specs = {
        make_spec("h", MapType::hash, 8, 16, 10000),
        make_spec("a", MapType::array, 4, 64, 1000, map_flags::mmapable),
        make_spec("p", MapType::percpu_hash, 4, 8, 1000),
        make_spec("l", MapType::lpm_trie, 8, 8, 1000, map_flags::no_prealloc),
        make_spec("r", MapType::ringbuf, 0, 0, 1u << 16),
        make_spec("q", MapType::queue, 0, 8, 100),
    };
    std::size_t total = 64 * 1024;
    for (auto& s : specs) {
        std::size_t n = Arena::bytes_for(s);
        EXPECT_GT(n, 0u) << s.name;
        total += n;
    }
    auto a = test::anon_arena(total);
    for (auto& s : specs) {
        auto m = a.create_map(s);
        ASSERT_TRUE(m) << m.error().message();
    }
    // Fill the no_prealloc trie completely: growth must fit too.
    auto l = a.map("l").value();
    for (std::uint32_t i = 0; i < 1000; ++i) {
        struct {
            std::uint32_t prefixlen;
            std::uint32_t addr;
        } key{32, i * 2654435761u};
        std::uint64_t v = i;
        ASSERT_TRUE(l.update(test::bytes(key), test::bytes(v))) << i;
    }
    EXPECT_EQ(Arena::bytes_for(make_spec("bad", MapType::array, 8, 8, 1)), 0u);
}

struct SpecCase {
    MapSpec spec;
    Errc code;
    std::string message;
};

TEST(Arena, BadSpecsFollowKernelRules) {
    std::vector<SpecCase> cases = {
        {make_spec("counts", MapType::array, 8, 8, 4), Errc::invalid_argument,
         "create map \"counts\": key size 8 is invalid for array (must be 4)"},
        {make_spec("a0", MapType::array, 4, 0, 4), Errc::invalid_argument,
         "create map \"a0\": value size 0 is invalid for array"},
        {make_spec("m0", MapType::array, 4, 4, 0), Errc::invalid_argument,
         "create map \"m0\": max_entries 0 is invalid for array"},
        {make_spec("pm", MapType::percpu_array, 4, 4, 4, map_flags::mmapable), Errc::invalid_argument,
         "create map \"pm\": flags mmapable and inner_map are only valid for array, not percpu_array"},
        {make_spec("pbig", MapType::percpu_array, 4, 40000, 4), Errc::out_of_memory,
         "create map \"pbig\": value size 40000 is too large for percpu_array (at most 32768)"},
        {make_spec("hk0", MapType::hash, 0, 4, 4), Errc::invalid_argument,
         "create map \"hk0\": key size 0 is invalid for hash"},
        {make_spec("hflags", MapType::hash, 4, 4, 4, map_flags::mmapable), Errc::invalid_argument,
         "create map \"hflags\": flags 0x400 are invalid for hash (allowed: 0x1df)"},
        {make_spec("lru", MapType::lru_hash, 4, 4, 4, map_flags::no_prealloc), Errc::unsupported,
         "create map \"lru\": lru_hash cannot be no_prealloc"},
        {make_spec("ncl", MapType::hash, 4, 4, 4, map_flags::no_common_lru), Errc::invalid_argument,
         "create map \"ncl\": flag no_common_lru is only valid for LRU maps, not hash"},
        {make_spec("q", MapType::queue, 4, 4, 4), Errc::invalid_argument,
         "create map \"q\": key size 4 is invalid for queue (must be 0)"},
        {make_spec("st", MapType::stack, 0, 0, 4), Errc::invalid_argument,
         "create map \"st\": value size 0 is invalid for stack"},
        {make_spec("bf", MapType::bloom_filter, 4, 4, 4), Errc::invalid_argument,
         "create map \"bf\": key size 4 is invalid for bloom_filter (must be 0)"},
        {make_spec("lpm", MapType::lpm_trie, 8, 4, 4), Errc::invalid_argument,
         "create map \"lpm\": lpm_trie needs map_flags::no_prealloc"},
        {make_spec("lpmk", MapType::lpm_trie, 4, 4, 4, map_flags::no_prealloc), Errc::invalid_argument,
         "create map \"lpmk\": key size 4 is invalid for lpm_trie (must be 5 to 260: a u32 prefix length and "
         "1 "
         "to 256 bytes of data)"},
        {make_spec("rb", MapType::ringbuf, 0, 0, 5000), Errc::invalid_argument,
         "create map \"rb\": max_entries 5000 is invalid for ringbuf (must be a power of 2 multiple of the "
         "page "
         "size 4096)"},
        {make_spec("rbk", MapType::ringbuf, 4, 0, 4096), Errc::invalid_argument,
         "create map \"rbk\": key size 4 and value size 0 are invalid for ringbuf (both must be 0)"},
        {make_spec("pa", MapType::prog_array, 4, 8, 4), Errc::invalid_argument,
         "create map \"pa\": value size 8 is invalid for prog_array (must be 4)"},
        {make_spec("aom", MapType::array_of_maps, 4, 4, 4), Errc::invalid_argument,
         "create map \"aom\": array_of_maps needs an inner map spec"},
        {make_spec("stk", MapType::stack_trace, 4, 12, 4), Errc::invalid_argument,
         "create map \"stk\": value size 12 is invalid for stack_trace (a non-zero multiple of 8)"},
        {make_spec("cg", MapType::cgroup_array, 4, 4, 4), Errc::unsupported,
         "create map \"cg\": map type cgroup_array is not supported in user space"},
        {make_spec("rw", MapType::array, 4, 4, 4, map_flags::rdonly | map_flags::wronly),
         Errc::invalid_argument, "create map \"rw\": flags rdonly and wronly exclude each other"},
        {make_spec("", MapType::array, 4, 4, 4), Errc::invalid_argument, "create map: the map has no name"},
    };
    auto a = test::anon_arena(1u << 20);
    for (auto& c : cases) {
        auto m = a.create_map(c.spec);
        ASSERT_FALSE(m) << c.spec.name;
        EXPECT_EQ(m.error().code(), c.code) << c.spec.name;
        EXPECT_EQ(m.error().message(), c.message);
    }
    EXPECT_TRUE(a.map_names().empty());
}

TEST(Arena, MapTypeNames) {
    EXPECT_EQ(to_string(MapType::lru_percpu_hash), "lru_percpu_hash");
    EXPECT_EQ(to_string(MapType::bloom_filter), "bloom_filter");
    EXPECT_EQ(to_string(static_cast<MapType>(99)), "unknown(99)");
}

TEST(Arena, ErrnoMapping) {
    EXPECT_EQ(errc_from_errno(EEXIST), Errc::already_exists);
    EXPECT_EQ(errc_from_errno(-ENOENT), Errc::not_found);
    EXPECT_EQ(errc_from_errno(E2BIG), Errc::out_of_memory);
    EXPECT_EQ(errc_from_errno(EINVAL), Errc::invalid_argument);
    EXPECT_EQ(errno_value(Error(Errc::not_found, "x")), ENOENT);
    EXPECT_EQ(errno_value(Error(Errc::already_exists, "x")), EEXIST);
    EXPECT_EQ(errno_value(Error(Errc::out_of_memory, "x")), E2BIG);
    EXPECT_EQ(errno_value(Error(Errc::invalid_argument, "x")), EINVAL);
}

TEST(Arena, PossibleCpus) {
    unsigned n = MapRef::possible_cpus();
    EXPECT_GE(n, 1u);
    EXPECT_GE(n, static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN)));
}

}  // namespace
}  // namespace ebpfrt
