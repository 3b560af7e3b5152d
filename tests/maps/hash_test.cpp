// hash, percpu_hash, lru_hash, lru_percpu_hash, hash_of_maps: kernel semantics, iteration, batch ops,
// the program ABI, and concurrent use.

#include <chrono>
#include <algorithm>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "maps/layout.hpp"
#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

class HashTest : public ::testing::TestWithParam<std::uint32_t> {};  // map flags: prealloc or not

TEST_P(HashTest, FlagsAndFull) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("counts", MapType::hash, 4, 8, 4, GetParam())).value();
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    EXPECT_EQ(m.lookup(1), std::nullopt);
    auto r = m.update(1, 10, update_flags::exist);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::not_found);
    EXPECT_EQ(r.error().message(), "update map \"counts\": key not found (update_flags::exist)");
    ASSERT_TRUE(m.update(1, 10, update_flags::noexist));
    r = m.update(1, 11, update_flags::noexist);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::already_exists);
    EXPECT_EQ(r.error().message(), "update map \"counts\": key already exists (update_flags::noexist)");
    ASSERT_TRUE(m.update(1, 12, update_flags::exist));
    EXPECT_EQ(m.lookup(1), 12u);
    for (std::uint32_t k = 2; k <= 4; ++k) ASSERT_TRUE(m.update(k, k));
    r = m.update(5, 5);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::out_of_memory);
    EXPECT_EQ(r.error().message(), "update map \"counts\": map \"counts\" is full (max_entries 4)");
    std::uint32_t k5 = 5;
    std::uint64_t v = 5;
    EXPECT_EQ(ref.raw_update(bytes(k5), bytes(v)), -E2BIG);
    // Replacing an existing key works on a full map, as often as we like.
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(m.update(2, 200 + i));
    EXPECT_EQ(m.lookup(2), 299u);
    ASSERT_TRUE(m.erase(3));
    auto e = m.erase(3);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), Errc::not_found);
    EXPECT_EQ(e.error().message(), "erase map \"counts\": key not found");
    ASSERT_TRUE(m.update(5, 5));
    EXPECT_EQ(ref.raw_update(bytes(k5), bytes(v), 3), -EINVAL);
    EXPECT_EQ(ref.raw_update(bytes(k5), bytes(v), update_flags::lock), -EINVAL);
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");
}

TEST_P(HashTest, NextKeyOrderAndRestart) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("h", MapType::hash, 4, 4, 64, GetParam())).value();
    auto m = Map<std::uint32_t, std::uint32_t>::from(ref).value();
    std::set<std::uint32_t> want;
    for (std::uint32_t k = 0; k < 50; ++k) {
        ASSERT_TRUE(m.update(k * 7, k));
        want.insert(k * 7);
    }
    std::set<std::uint32_t> seen;
    std::uint32_t key = 0, next = 0;
    ASSERT_TRUE(ref.next_key({}, wbytes(next)));
    std::uint32_t first = next;
    seen.insert(next);
    for (;;) {
        key = next;
        auto r = ref.next_key(bytes(key), wbytes(next));
        if (!r) {
            EXPECT_EQ(r.error().code(), Errc::not_found);
            break;
        }
        EXPECT_TRUE(seen.insert(next).second) << "key " << next << " returned twice";
    }
    EXPECT_EQ(seen, want);
    // A key that is not in the map restarts from the first key (htab_map_get_next_key).
    std::uint32_t missing = 1000;
    ASSERT_TRUE(ref.next_key(bytes(missing), wbytes(next)));
    EXPECT_EQ(next, first);
    std::set<std::uint32_t> typed;
    for (auto [k, v] : m.entries()) {
        EXPECT_EQ(k, v * 7);
        typed.insert(k);
    }
    EXPECT_EQ(typed, want);
    // Empty map.
    auto empty = a.create_map(make_spec("e", MapType::hash, 4, 4, 4, GetParam())).value();
    EXPECT_EQ(empty.raw_next_key({}, wbytes(next)), -ENOENT);
}

TEST_P(HashTest, LookupAndErase) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("h", MapType::hash, 8, 16, 8, GetParam())).value();
    std::uint64_t k = 77;
    std::array<std::uint64_t, 2> v{1, 2}, out{};
    ASSERT_TRUE(ref.update(bytes(k), bytes(v)));
    ASSERT_TRUE(ref.lookup_and_erase(bytes(k), wbytes(out)));
    EXPECT_EQ(out, v);
    EXPECT_EQ(ref.raw_lookup(bytes(k), wbytes(out)), -ENOENT);
    EXPECT_EQ(ref.lookup_and_erase(bytes(k), wbytes(out)).error().code(), Errc::not_found);
}

TEST_P(HashTest, LargeKeysAndValues) {
    auto a = test::anon_arena();
    struct Key {
        std::array<std::uint8_t, 61> bytes;
    };
    auto ref = a.create_map(make_spec("big", MapType::hash, sizeof(Key), 100, 256, GetParam())).value();
    std::mt19937 rng(1);
    std::vector<std::pair<Key, std::array<std::uint8_t, 100>>> items(200);
    for (auto& [k, v] : items) {
        for (auto& b : k.bytes) b = static_cast<std::uint8_t>(rng());
        for (auto& b : v) b = static_cast<std::uint8_t>(rng());
        ASSERT_TRUE(ref.update(bytes(k), bytes(v)));
    }
    for (auto& [k, v] : items) {
        std::array<std::uint8_t, 100> out{};
        ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
        EXPECT_EQ(out, v);
    }
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");
}

INSTANTIATE_TEST_SUITE_P(Prealloc, HashTest, ::testing::Values(0u, map_flags::no_prealloc),
                         [](const auto& param_info) {
                             return param_info.param ? "no_prealloc" : "prealloc";
                         });

TEST(Hash, ProgramAbi) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("h", MapType::hash, 4, 8, 16)).value();
    void* h = ref.program_handle();
    std::uint32_t k = 9;
    std::uint64_t v = 1;
    EXPECT_EQ(maps::map_lookup_elem(h, &k), nullptr);
    EXPECT_EQ(maps::map_update_elem(h, &k, &v, update_flags::exist), -ENOENT);
    EXPECT_EQ(maps::map_update_elem(h, &k, &v, 0), 0);
    auto* p = static_cast<std::uint64_t*>(maps::map_lookup_elem(h, &k));
    ASSERT_NE(p, nullptr);
    __atomic_fetch_add(p, 5, __ATOMIC_RELAXED);
    auto typed = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    EXPECT_EQ(typed.lookup(9), 6u);
    EXPECT_EQ(maps::map_delete_elem(h, &k), 0);
    EXPECT_EQ(maps::map_delete_elem(h, &k), -ENOENT);
    // The pointer a program got stays valid memory after the delete (never unmapped).
    *p = 3;
    EXPECT_EQ(maps::map_lookup_elem(h, &k), nullptr);
    EXPECT_EQ(maps::map_lookup_percpu_elem(h, &k, 0), nullptr);
    EXPECT_EQ(maps::map_push_elem(h, &v, 0), -EINVAL);
}

TEST(Hash, ForEach) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("h", MapType::hash, 4, 8, 16)).value();
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    for (std::uint32_t k = 1; k <= 10; ++k) ASSERT_TRUE(m.update(k, k));
    std::uint64_t sum = 0;
    auto cb = [](void*, const void*, void* value, void* ctx) -> long {
        *static_cast<std::uint64_t*>(ctx) += *static_cast<std::uint64_t*>(value);
        *static_cast<std::uint64_t*>(value) *= 2;  // programs may write values in the callback
        return 0;
    };
    EXPECT_EQ(maps::for_each_map_elem(ref.program_handle(), cb, &sum, 0), 10);
    EXPECT_EQ(sum, 55u);
    EXPECT_EQ(m.lookup(10), 20u);
}

TEST(Hash, BatchOps) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("b", MapType::hash, 4, 8, 1000)).value();
    std::vector<std::uint32_t> keys(500);
    std::vector<std::uint64_t> vals(500);
    for (std::uint32_t i = 0; i < 500; ++i) {
        keys[i] = i * 3;
        vals[i] = i * 1000;
    }
    auto n = ref.update_batch(std::as_bytes(std::span(keys)), std::as_bytes(std::span(vals)));
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(*n, 500u);

    std::map<std::uint32_t, std::uint64_t> got;
    BatchCursor cur;
    std::vector<std::uint32_t> kb(64);
    std::vector<std::uint64_t> vb(64);
    int calls = 0;
    while (!cur.done) {
        auto c = ref.lookup_batch(cur, std::as_writable_bytes(std::span(kb)),
                                  std::as_writable_bytes(std::span(vb)));
        ASSERT_TRUE(c) << c.error().message();
        EXPECT_LE(*c, 64u);
        for (std::size_t i = 0; i < *c; ++i) EXPECT_TRUE(got.emplace(kb[i], vb[i]).second);
        ++calls;
    }
    EXPECT_GT(calls, 1);
    EXPECT_EQ(got.size(), 500u);
    for (auto& [k, v] : got) EXPECT_EQ(v, std::uint64_t(k / 3) * 1000);
    auto again =
        ref.lookup_batch(cur, std::as_writable_bytes(std::span(kb)), std::as_writable_bytes(std::span(vb)));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), Errc::not_found);

    // A buffer smaller than a bucket: ENOSPC.
    std::uint32_t k1;
    std::uint64_t v1;
    BatchCursor c0;
    auto tiny = ref.lookup_batch(c0, wbytes(k1), wbytes(v1));
    if (!tiny) {
        EXPECT_EQ(tiny.error().code(), Errc::out_of_memory);
    }

    // delete_batch stops at the first missing key and says how far it got.
    std::vector<std::uint32_t> del = {0, 3, 4, 6};
    auto d = ref.delete_batch(std::as_bytes(std::span(del)));
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().code(), Errc::not_found);
    EXPECT_EQ(d.error().message(), "delete_batch map \"b\": key not found (after 2 of 4 elements)");

    // lookup_and_delete_batch empties the map.
    std::size_t total = 0;
    BatchCursor c2;
    while (!c2.done) {
        auto c = ref.lookup_and_delete_batch(c2, std::as_writable_bytes(std::span(kb)),
                                             std::as_writable_bytes(std::span(vb)));
        ASSERT_TRUE(c) << c.error().message();
        total += *c;
    }
    EXPECT_EQ(total, 498u);
    std::uint32_t next;
    EXPECT_EQ(ref.raw_next_key({}, wbytes(next)), -ENOENT);
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");

    // Arrays: generic batch lookup over indices; no lookup_and_delete.
    auto arr = a.create_map(make_spec("arr", MapType::array, 4, 8, 10)).value();
    BatchCursor ac;
    std::vector<std::uint32_t> ak(4);
    std::vector<std::uint64_t> av(4);
    std::size_t seen = 0;
    while (!ac.done) {
        auto c = arr.lookup_batch(ac, std::as_writable_bytes(std::span(ak)),
                                  std::as_writable_bytes(std::span(av)));
        ASSERT_TRUE(c);
        for (std::size_t i = 0; i < *c; ++i) EXPECT_EQ(ak[i], seen + i);
        seen += *c;
    }
    EXPECT_EQ(seen, 10u);
    BatchCursor ad;
    EXPECT_EQ(arr.lookup_and_delete_batch(ad, std::as_writable_bytes(std::span(ak)),
                                          std::as_writable_bytes(std::span(av)))
                  .error()
                  .code(),
              Errc::unsupported);
}

TEST(PercpuHash, Values) {
    auto a = test::anon_arena();
    unsigned cpus = MapRef::possible_cpus();
    auto ref = a.create_map(make_spec("pch", MapType::percpu_hash, 4, 8, 16)).value();
    auto m = PerCpuMap<std::uint32_t, std::uint64_t>::from(ref).value();
    std::vector<std::uint64_t> vals(cpus);
    for (unsigned c = 0; c < cpus; ++c) vals[c] = c + 1;
    ASSERT_TRUE(m.update(4, vals));
    EXPECT_EQ(m.lookup(4).value(), vals);
    void* h = ref.program_handle();
    std::uint32_t k = 4;
    for (unsigned c = 0; c < cpus; ++c)
        EXPECT_EQ(*static_cast<std::uint64_t*>(maps::map_lookup_percpu_elem(h, &k, c)), c + 1);
    // From a program: a new element holds the value on this CPU and zero elsewhere.
    std::uint32_t k2 = 5;
    std::uint64_t v = 77;
    ASSERT_EQ(maps::map_update_elem(h, &k2, &v, 0), 0);
    auto got = m.lookup(5).value();
    EXPECT_EQ(std::count(got.begin(), got.end(), 77u), 1);
    EXPECT_EQ(std::count(got.begin(), got.end(), 0u), static_cast<long>(cpus) - 1);
    ASSERT_TRUE(m.erase(4));
    EXPECT_EQ(m.lookup(4), std::nullopt);
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(LruHash, EvictsLeastRecentlyUsedAndNeverFills) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("lru", MapType::lru_hash, 4, 8, 8)).value();
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    void* h = ref.program_handle();
    for (std::uint32_t k = 0; k < 8; ++k) ASSERT_TRUE(m.update(k, k));
    // Programs touch keys 0..3 (the host's lookups do not count, like the syscall's).
    for (std::uint32_t k = 0; k < 4; ++k) ASSERT_NE(maps::map_lookup_elem(h, &k), nullptr);
    for (std::uint32_t k = 100; k < 104; ++k) ASSERT_TRUE(m.update(k, k, update_flags::noexist));
    for (std::uint32_t k = 0; k < 4; ++k)
        EXPECT_EQ(m.lookup(k), k) << "referenced key " << k << " was evicted";
    for (std::uint32_t k = 4; k < 8; ++k)
        EXPECT_EQ(m.lookup(k), std::nullopt) << "key " << k << " should be gone";
    for (std::uint32_t k = 100; k < 104; ++k) EXPECT_EQ(m.lookup(k), k);
    // Many more inserts: never E2BIG, always max_entries elements.
    for (std::uint32_t k = 1000; k < 2000; ++k) ASSERT_TRUE(m.update(k, k));
    std::size_t n = 0;
    for (auto kv : m.entries()) {
        (void)kv;
        ++n;
    }
    EXPECT_EQ(n, 8u);
    for (std::uint32_t k = 1992; k < 2000; ++k) EXPECT_EQ(m.lookup(k), k);
    // Updating an existing key of a full map evicts nothing.
    ASSERT_TRUE(m.update(1995, 1, update_flags::exist));
    for (std::uint32_t k = 1992; k < 2000; ++k) EXPECT_TRUE(m.lookup(k).has_value());
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(LruHash, Percpu) {
    auto a = test::anon_arena();
    unsigned cpus = MapRef::possible_cpus();
    auto ref = a.create_map(make_spec("lpc", MapType::lru_percpu_hash, 4, 4, 4)).value();
    auto m = PerCpuMap<std::uint32_t, std::uint32_t>::from(ref).value();
    for (std::uint32_t k = 0; k < 10; ++k) ASSERT_TRUE(m.update_all(k, k));
    EXPECT_EQ(m.lookup(9).value(), std::vector<std::uint32_t>(cpus, 9));
    EXPECT_EQ(m.lookup(0), std::nullopt);
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");
}

TEST(HashOfMaps, InnerMaps) {
    auto a = test::anon_arena();
    auto spec = make_spec("hom", MapType::hash_of_maps, 8, 4, 4);
    spec.inner = std::make_shared<MapSpec>(make_spec("", MapType::hash, 4, 4, 8));
    auto outer = a.create_map(spec).value();
    auto in1 = a.create_map(make_spec("in1", MapType::hash, 4, 4, 8)).value();
    auto in2 = a.create_map(make_spec("in2", MapType::hash, 4, 4, 8)).value();
    std::uint64_t k = 0xdeadbeef;
    ASSERT_TRUE(outer.set_map(bytes(k), in1));
    EXPECT_EQ(maps::map_lookup_elem(outer.program_handle(), &k), in1.program_handle());
    ASSERT_TRUE(outer.set_map(bytes(k), in2, update_flags::exist));
    EXPECT_EQ(maps::map_lookup_elem(outer.program_handle(), &k), in2.program_handle());
    EXPECT_EQ(outer.set_map(bytes(k), in1, update_flags::noexist).error().code(), Errc::already_exists);
    std::uint32_t id = 0;
    ASSERT_TRUE(outer.lookup(bytes(k), wbytes(id)));
    EXPECT_EQ(id, in2.id());
    EXPECT_EQ(outer.get_map(bytes(k)).value().name(), "in2");
    // Programs cannot store into a map-in-map.
    std::uint32_t idv = in1.id();
    EXPECT_EQ(maps::map_update_elem(outer.program_handle(), &k, &idv, 0), -EINVAL);
    std::size_t before = a.free_bytes();
    ASSERT_TRUE(a.remove_map("in2"));
    { auto drop = std::move(in2); }
    EXPECT_EQ(a.free_bytes(), before);  // the outer map still holds it
    ASSERT_TRUE(outer.erase(bytes(k)));
    EXPECT_GT(a.free_bytes(), before);
    EXPECT_EQ(maps::check_consistency(outer.program_handle()), "");
}

// Values with a bpf_spin_lock (MapSpec::spin_lock_off, from the value's BTF): copies into the map leave the
// lock word alone, copies out read it as 0, a new hash element's lock is free, and BPF_F_LOCK copies
// holding it (array_map_update_elem, htab_map_update_elem, copy_map_value_locked in the kernel).
TEST(SpinLockValue, CopiesLeaveTheLockAloneAndFLockTakesIt) {
    auto a = test::anon_arena(16u << 20);
    struct Locked {
        std::uint32_t lock, pad;
        std::uint64_t x, y;
    };
    auto spec = [](std::string name, MapType t) {
        MapSpec s = make_spec(std::move(name), t, 4, sizeof(Locked), 8);
        s.spin_lock_off = 0;
        return s;
    };
    // Only hash and array values may hold one; it must fit the value, 4-byte aligned.
    auto lru = a.create_map(spec("lru_locked", MapType::lru_hash));
    ASSERT_FALSE(lru);
    EXPECT_EQ(lru.error().code(), Errc::unsupported);
    MapSpec past = spec("past", MapType::hash);
    past.spin_lock_off = 24;
    EXPECT_EQ(a.create_map(past).error().code(), Errc::invalid_argument);
    MapSpec odd = spec("odd", MapType::hash);
    odd.spin_lock_off = 2;
    EXPECT_EQ(a.create_map(odd).error().code(), Errc::invalid_argument);
    // BPF_F_LOCK on a map whose value has no lock: EINVAL, as before.
    auto plain = a.create_map(make_spec("plain", MapType::hash, 4, 8, 8)).value();
    const std::uint32_t k1 = 1;
    const std::uint64_t v8 = 5;
    auto no_lock = plain.update(bytes(k1), bytes(v8), update_flags::lock);
    ASSERT_FALSE(no_lock);
    EXPECT_EQ(no_lock.error().code(), Errc::invalid_argument);

    for (MapType t : {MapType::hash, MapType::array}) {
        SCOPED_TRACE(to_string(t));
        MapRef ref = a.create_map(spec(std::string("locked_") + to_string(t), t)).value();
        EXPECT_EQ(ref.spec().spin_lock_off, 0);
        void* h = ref.program_handle();
        Locked in{0xdeadbeef, 7, 10, 20}, out{};
        ASSERT_TRUE(ref.update(bytes(k1), bytes(in)));
        auto* raw = static_cast<Locked*>(maps::map_lookup_elem(h, &k1));
        ASSERT_NE(raw, nullptr);
        EXPECT_EQ(raw->lock, 0u) << "the caller's lock bytes are not copied in";
        EXPECT_EQ(raw->pad, 7u);
        // A program holds the lock: a plain update does not touch it, a lookup shows it as 0.
        raw->lock = 1;
        in.x = 11;
        ASSERT_TRUE(ref.update(bytes(k1), bytes(in)));
        EXPECT_EQ(raw->lock, 1u);
        ASSERT_TRUE(ref.lookup(bytes(k1), wbytes(out)));
        EXPECT_EQ(out.lock, 0u);
        EXPECT_EQ(out.x, 11u);
        // BPF_F_LOCK waits for the holder: the update lands only after the program unlocks.
        std::atomic<bool> released{false}, updated{false};
        std::thread writer([&] {
            Locked w{0, 0, 12, 24};
            EXPECT_TRUE(ref.update(bytes(k1), bytes(w), update_flags::lock));
            EXPECT_TRUE(released.load()) << "BPF_F_LOCK update ran while the lock was held";
            updated = true;
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        EXPECT_FALSE(updated.load());
        EXPECT_EQ(raw->x, 11u);
        released = true;
        maps::value_spin_unlock(&raw->lock);
        writer.join();
        EXPECT_EQ(raw->x, 12u);
        EXPECT_EQ(raw->lock, 0u) << "BPF_F_LOCK released the lock";
        ASSERT_TRUE(ref.lookup(bytes(k1), wbytes(out), update_flags::lock));
        EXPECT_EQ(out.y, 24u);
        EXPECT_EQ(out.lock, 0u);
        // With the lock flag the update's own flags still apply.
        auto exists = ref.update(bytes(k1), bytes(in), update_flags::lock | update_flags::noexist);
        ASSERT_FALSE(exists);
        EXPECT_EQ(exists.error().code(), Errc::already_exists);
        // Batches take the flag too.
        BatchCursor cursor{};
        std::vector<std::byte> keys(8 * 4), values(8 * sizeof(Locked));
        auto n = ref.lookup_batch(cursor, keys, values, update_flags::lock);
        ASSERT_TRUE(n) << n.error().message();
        EXPECT_GE(*n, 1u);
    }

    // Hash: a new element's lock is free even when its memory held a locked value before.
    MapRef hash = a.create_map(spec("locked_reuse", MapType::hash)).value();
    void* h = hash.program_handle();
    for (std::uint32_t k = 0; k < 8; ++k) {
        ASSERT_TRUE(hash.update(bytes(k), bytes(Locked{0, 0, k, k})));
        static_cast<Locked*>(maps::map_lookup_elem(h, &k))->lock = 1;  // held, then the key is deleted
        Locked got{};
        ASSERT_TRUE(hash.lookup_and_erase(bytes(k), wbytes(got)));
        EXPECT_EQ(got.x, k);
        EXPECT_EQ(got.lock, 0u);
    }
    for (std::uint32_t k = 10; k < 18; ++k) {
        ASSERT_TRUE(hash.update(bytes(k), bytes(Locked{1, 0, k, k}), update_flags::noexist | update_flags::lock));
        EXPECT_EQ(static_cast<Locked*>(maps::map_lookup_elem(h, &k))->lock, 0u) << k;
    }
    Locked got{};
    ASSERT_TRUE(hash.lookup_and_erase(bytes(std::uint32_t{10}), wbytes(got), update_flags::lock));
    EXPECT_EQ(got.y, 10u);
    EXPECT_EQ(maps::check_consistency(h), "");
}

// Replacing an existing key writes the value in place (a seqlock on the element's generation): host
// lookups running beside the writers must never return a value half of one update and half of another.
TEST(Hash, InPlaceUpdatesAreNeverSeenTorn) {
    auto a = test::anon_arena(16u << 20);
    struct Wide {
        std::uint64_t w[6];
    };
    auto ref = a.create_map(make_spec("wide", MapType::hash, 4, sizeof(Wide), 64)).value();
    auto map = Map<std::uint32_t, Wide>::from(ref).value();
    auto fill = [](std::uint64_t v) {
        Wide x;
        for (auto& w : x.w) w = v;
        return x;
    };
    for (std::uint32_t k = 0; k < 4; ++k) ASSERT_TRUE(map.update(k, fill(k)));
    void* h = ref.program_handle();
    std::uint32_t k0 = 0;
    const std::uint32_t before = maps::hash_generation(static_cast<maps::MapHeader*>(h), &k0)->load();
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> torn{0}, reads{0};
    std::vector<std::thread> readers;
    for (int r = 0; r < 2; ++r)
        readers.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                for (std::uint32_t k = 0; k < 4; ++k) {
                    auto got = map.lookup(k);
                    if (!got) {
                        torn.fetch_add(1);  // an update of an existing key never makes it disappear
                        continue;
                    }
                    reads.fetch_add(1, std::memory_order_relaxed);
                    for (auto w : got->w)
                        if (w != got->w[0]) torn.fetch_add(1);
                }
            }
        });
    std::thread writer([&] {
        for (std::uint64_t i = 1; i <= 300000; ++i) (void)map.update(static_cast<std::uint32_t>(i % 4), fill(i));
        stop = true;
    });
    writer.join();
    for (auto& t : readers) t.join();
    EXPECT_EQ(torn.load(), 0u) << "of " << reads.load() << " reads";
    EXPECT_GT(reads.load(), 0u);
    // The element was updated where it is (no replacement element): its generation moved on by two per
    // update and is even (no write in progress).
    const std::uint32_t after = maps::hash_generation(static_cast<maps::MapHeader*>(h), &k0)->load();
    EXPECT_EQ(after - before, 2u * 75000u);
    EXPECT_EQ(map.lookup(0)->w[5], 300000u);
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(Hash, ConcurrentThreadsStayConsistent) {
    auto a = test::anon_arena(64u << 20);
    for (MapType t : {MapType::hash, MapType::lru_hash, MapType::percpu_hash}) {
        std::string name = to_string(t);
        name += "_concurrent";  // (not "c" + to_string(t): g++ 12 warns falsely, -Wrestrict)
        auto ref = a.create_map(make_spec(name, t, 4, 8, 512)).value();
        void* h = ref.program_handle();
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int t_i = 0; t_i < 4; ++t_i) {
            threads.emplace_back([&, t_i] {
                std::mt19937 rng(t_i);
                std::vector<std::byte> buf(ref.value_buffer_size());
                for (int i = 0; i < 100000; ++i) {
                    std::uint32_t k = rng() % 700;
                    std::uint64_t v = k * 3;
                    switch (rng() % 4) {
                    case 0:
                        (void)maps::map_update_elem(h, &k, &v, 0);
                        break;
                    case 1:
                        (void)maps::map_delete_elem(h, &k);
                        break;
                    case 2:
                        if (auto* p = static_cast<std::uint64_t*>(maps::map_lookup_elem(h, &k));
                            p && t == MapType::hash)
                            (void)*p;
                        break;
                    case 3:
                        if (t == MapType::hash && maps::sys_lookup(h, &k, buf.data(), 0) == 0) {
                            std::uint64_t got;
                            std::memcpy(&got, buf.data(), 8);
                            if (got != k * 3) stop = true;  // a host lookup never sees another key's value
                        }
                        break;
                    }
                }
            });
        }
        for (auto& th : threads) th.join();
        EXPECT_FALSE(stop.load()) << to_string(t);
        EXPECT_EQ(maps::check_consistency(h), "") << to_string(t);
    }
}

}  // namespace
}  // namespace ebpfrt
