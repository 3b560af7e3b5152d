// array, percpu_array, prog_array, array_of_maps: kernel semantics through MapRef, Map<K, V> and the
// program ABI.

#include <algorithm>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

TEST(Array, ElementsExistAndStartZero) {
    auto a = test::anon_arena();
    auto m = Map<std::uint32_t, std::uint64_t>::from(
        a.create_map(make_spec("arr", MapType::array, 4, 8, 10)).value());
    ASSERT_TRUE(m) << m.error().message();
    for (std::uint32_t i = 0; i < 10; ++i) EXPECT_EQ(m->lookup(i), 0u);
    EXPECT_EQ(m->lookup(10), std::nullopt);
    ASSERT_TRUE(m->update(3, 33));
    EXPECT_EQ(m->lookup(3), 33u);
    ASSERT_TRUE(m->update(3, 34, update_flags::exist));
    EXPECT_EQ(m->lookup(3), 34u);
}

TEST(Array, KernelErrors) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("arr", MapType::array, 4, 8, 10)).value();
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    auto r = m.update(1, 1, update_flags::noexist);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::already_exists);
    EXPECT_EQ(r.error().message(), "update map \"arr\": array elements always exist (update_flags::noexist)");
    r = m.update(10, 1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::out_of_memory);  // E2BIG
    EXPECT_EQ(r.error().message(), "update map \"arr\": index out of range (max_entries 10)");
    std::uint32_t k = 10;
    std::uint64_t v = 1;
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(v)), -E2BIG);
    k = 1;
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(v), 3), -EINVAL);
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(v), update_flags::lock), -EINVAL);
    EXPECT_EQ(ref.error_from("update", -E2BIG).message(),
              "update map \"arr\": index out of range (max_entries 10)");
    r = m.erase(1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_EQ(r.error().message(), "erase map \"arr\": array elements cannot be deleted");
    EXPECT_EQ(ref.raw_lookup(bytes(k), wbytes(v), 1), -EINVAL);
    // Size checks of the byte API.
    std::uint64_t wide = 0;
    auto bad = ref.lookup(bytes(wide), wbytes(v));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "lookup map \"arr\": key is 8 bytes, the map's key size is 4");
}

TEST(Array, NextKey) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("arr", MapType::array, 4, 4, 3)).value();
    std::uint32_t next = 99, k;
    ASSERT_TRUE(ref.next_key({}, wbytes(next)));
    EXPECT_EQ(next, 0u);
    k = 0;
    ASSERT_TRUE(ref.next_key(bytes(k), wbytes(next)));
    EXPECT_EQ(next, 1u);
    k = 1;
    ASSERT_TRUE(ref.next_key(bytes(k), wbytes(next)));
    EXPECT_EQ(next, 2u);
    k = 2;
    auto end = ref.next_key(bytes(k), wbytes(next));
    ASSERT_FALSE(end);
    EXPECT_EQ(end.error().code(), Errc::not_found);
    EXPECT_EQ(end.error().message(), "next_key map \"arr\": no more keys");
    k = 1000;  // out of range restarts at 0, as the kernel does
    ASSERT_TRUE(ref.next_key(bytes(k), wbytes(next)));
    EXPECT_EQ(next, 0u);
    auto m = Map<std::uint32_t, std::uint32_t>::from(ref).value();
    std::vector<std::uint32_t> keys;
    for (auto [key, value] : m.entries()) keys.push_back(key);
    EXPECT_EQ(keys, (std::vector<std::uint32_t>{0, 1, 2}));
}

TEST(Array, ProgramAbiPointersAreStable) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("arr", MapType::array, 4, 8, 4)).value();
    void* h = ref.program_handle();
    std::uint32_t k = 2;
    auto* p = static_cast<std::uint64_t*>(maps::map_lookup_elem(h, &k));
    ASSERT_NE(p, nullptr);
    *p = 42;
    EXPECT_EQ(maps::map_lookup_elem(h, &k), p);
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    EXPECT_EQ(m.lookup(2), 42u);
    std::uint64_t v = 7;
    EXPECT_EQ(maps::map_update_elem(h, &k, &v, 0), 0);
    EXPECT_EQ(*p, 7u);
    k = 4;
    EXPECT_EQ(maps::map_lookup_elem(h, &k), nullptr);
    EXPECT_EQ(maps::map_delete_elem(h, &k), -EINVAL);
    EXPECT_EQ(maps::map_type(h), MapType::array);
    EXPECT_EQ(maps::map_value_size(h), 8u);
}

TEST(Array, ForEach) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("arr", MapType::array, 4, 8, 5)).value();
    auto m = Map<std::uint32_t, std::uint64_t>::from(ref).value();
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(m.update(i, i * 10));
    struct Ctx {
        std::uint64_t sum = 0;
    } ctx;
    auto cb = [](void*, const void* key, void* value, void* c) -> long {
        auto* x = static_cast<Ctx*>(c);
        x->sum += *static_cast<std::uint64_t*>(value);
        return *static_cast<const std::uint32_t*>(key) == 2 ? 1 : 0;
    };
    EXPECT_EQ(maps::for_each_map_elem(ref.program_handle(), cb, &ctx, 0), 3);
    EXPECT_EQ(ctx.sum, 0u + 10 + 20);
    EXPECT_EQ(maps::for_each_map_elem(ref.program_handle(), cb, &ctx, 1), -EINVAL);
}

TEST(Array, MmapableDataAndGlobalData) {
    auto a = test::anon_arena();
    auto s = make_spec(".data", MapType::array, 4, 12, 1, map_flags::mmapable);
    s.origin = MapOrigin::data;
    s.initial_value = std::vector<std::byte>(12, std::byte{0x5a});
    auto ref = a.create_map(s).value();
    auto d = ref.data();
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(d->data()) % 4096, 0u);
    EXPECT_EQ(d->size(), 16u);  // value size rounded up to 8
    EXPECT_EQ((*d)[0], std::byte{0x5a});
    EXPECT_EQ((*d)[11], std::byte{0x5a});
    EXPECT_EQ((*d)[12], std::byte{0});
    EXPECT_EQ(ref.spec().origin, MapOrigin::data);
    auto plain = a.create_map(make_spec("plain", MapType::array, 4, 8, 1)).value();
    EXPECT_EQ(plain.data().error().code(), Errc::unsupported);
    // A read-only global-data map still gets its initial value.
    auto ro = make_spec(".rodata", MapType::array, 4, 4, 1, map_flags::rdonly | map_flags::rdonly_prog);
    ro.initial_value = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    auto rom = Map<std::uint32_t, std::uint32_t>::from(a.create_map(ro).value()).value();
    EXPECT_EQ(rom.lookup(0), 0x04030201u);
    auto bad = make_spec("bad", MapType::array, 4, 8, 1);
    bad.initial_value = {std::byte{1}};
    auto e = a.create_map(bad);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().message(), "create map \"bad\": the initial value is 1 bytes, the value size is 8");
    auto h = make_spec("h", MapType::hash, 4, 1, 1);
    h.initial_value = {std::byte{1}};
    EXPECT_EQ(a.create_map(h).error().message(),
              "create map \"h\": an initial value is only valid for array, not hash");
}

TEST(Array, AccessFlagsAndFreeze) {
    auto a = test::anon_arena();
    auto ro = Map<std::uint32_t, std::uint32_t>::from(
                  a.create_map(make_spec("ro", MapType::array, 4, 4, 2, map_flags::rdonly)).value())
                  .value();
    auto r = ro.update(0, 1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::permission_denied);
    EXPECT_EQ(r.error().message(),
              "update map \"ro\": the map is read-only for the host (map_flags::rdonly or frozen)");
    EXPECT_EQ(ro.lookup(0), 0u);
    // Programs may still write a host-read-only map.
    std::uint32_t k = 0, v = 5;
    EXPECT_EQ(maps::map_update_elem(ro.ref().program_handle(), &k, &v, 0), 0);
    EXPECT_EQ(ro.lookup(0), 5u);

    auto wo = a.create_map(make_spec("wo", MapType::array, 4, 4, 2, map_flags::wronly)).value();
    EXPECT_TRUE(wo.update(bytes(k), bytes(v)));
    auto l = wo.lookup(bytes(k), wbytes(v));
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().message(),
              "lookup map \"wo\": the map is write-only for the host (map_flags::wronly)");

    auto rp = a.create_map(make_spec(".rodata", MapType::array, 4, 4, 1, map_flags::rdonly_prog)).value();
    EXPECT_EQ(maps::map_update_elem(rp.program_handle(), &k, &v, 0), -EPERM);
    EXPECT_TRUE(rp.update(bytes(k), bytes(v)));
    ASSERT_TRUE(rp.freeze());
    EXPECT_EQ(rp.freeze().error().code(), Errc::busy);
    EXPECT_EQ(rp.update(bytes(k), bytes(v)).error().code(), Errc::permission_denied);
    std::uint32_t out = 0;
    EXPECT_TRUE(rp.lookup(bytes(k), wbytes(out)));
    EXPECT_EQ(out, 5u);
}

TEST(Array, TypedViewChecksSizes) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("counts", MapType::array, 4, 8, 4)).value();
    auto bad = Map<std::uint64_t, std::uint64_t>::from(ref);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "map \"counts\": key size 4 in the spec does not match sizeof(K) = 8");
    auto badv = Map<std::uint32_t, std::uint32_t>::from(ref);
    ASSERT_FALSE(badv);
    EXPECT_EQ(badv.error().message(),
              "map \"counts\": value size 8 in the spec does not match sizeof(V) = 4");
    auto pc = a.create_map(make_spec("pc", MapType::percpu_array, 4, 8, 4)).value();
    auto notpc = Map<std::uint32_t, std::uint64_t>::from(pc);
    ASSERT_FALSE(notpc);
    EXPECT_EQ(notpc.error().message(), "map \"pc\": percpu_array is per-CPU (use PerCpuMap<K, V>)");
    EXPECT_FALSE(Queue<std::uint64_t>::from(ref));
}

TEST(PercpuArray, ValuesPerCpu) {
    auto a = test::anon_arena();
    unsigned cpus = MapRef::possible_cpus();
    auto ref = a.create_map(make_spec("pc", MapType::percpu_array, 4, 4, 4)).value();
    EXPECT_TRUE(ref.per_cpu());
    EXPECT_EQ(ref.value_buffer_size(), 8u * cpus);  // 4 rounded up to 8, per CPU
    auto m = PerCpuMap<std::uint32_t, std::uint32_t>::from(ref).value();
    std::vector<std::uint32_t> vals(cpus);
    for (unsigned c = 0; c < cpus; ++c) vals[c] = 100 + c;
    ASSERT_TRUE(m.update(1, vals));
    EXPECT_EQ(m.lookup(1).value(), vals);
    // The program side sees the slot of the CPU it runs on; lookup_percpu_elem any CPU.
    void* h = ref.program_handle();
    std::uint32_t k = 1;
    for (unsigned c = 0; c < cpus; ++c)
        EXPECT_EQ(*static_cast<std::uint32_t*>(maps::map_lookup_percpu_elem(h, &k, c)), 100 + c);
    EXPECT_EQ(maps::map_lookup_percpu_elem(h, &k, cpus), nullptr);
    auto* mine = static_cast<std::uint32_t*>(maps::map_lookup_elem(h, &k));
    ASSERT_NE(mine, nullptr);
    EXPECT_GE(*mine, 100u);
    EXPECT_LT(*mine, 100u + cpus);
    // A program update writes one CPU's slot only.
    std::uint32_t v = 7;
    EXPECT_EQ(maps::map_update_elem(h, &k, &v, 0), 0);
    auto after = m.lookup(1).value();
    EXPECT_EQ(std::count(after.begin(), after.end(), 7u), 1);
    ASSERT_TRUE(m.update_all(2, 9));
    auto all = m.lookup(2).value();
    EXPECT_EQ(std::count(all.begin(), all.end(), 9u), static_cast<long>(cpus));
    auto wrong = m.update(1, std::vector<std::uint32_t>(cpus + 1));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.error().code(), Errc::invalid_argument);
    std::vector<std::byte> small(4);
    std::uint32_t key = 0;
    auto bad = ref.lookup(bytes(key), small);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("value size 4 rounded up to 8, times"), std::string::npos);
}

TEST(ProgArray, IdsAndTailCallSlots) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("jumps", MapType::prog_array, 4, 4, 8)).value();
    void* h = ref.program_handle();
    std::uint32_t k = 3, id = 17, out = 0;
    EXPECT_EQ(maps::prog_array_get(h, 3), 0u);
    EXPECT_EQ(ref.raw_lookup(bytes(k), wbytes(out)), -ENOENT);
    ASSERT_TRUE(ref.update(bytes(k), bytes(id)));
    EXPECT_EQ(maps::prog_array_get(h, 3), 17u);
    EXPECT_EQ(maps::prog_array_get(h, 8), 0u);
    ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
    EXPECT_EQ(out, 17u);
    EXPECT_EQ(maps::map_lookup_elem(h, &k), nullptr);  // programs only tail-call through it
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(id), update_flags::noexist), -EINVAL);
    std::uint32_t zero = 0;
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(zero)), -EBADF);
    std::uint32_t big = 8;
    EXPECT_EQ(ref.raw_update(bytes(big), bytes(id)), -E2BIG);
    ASSERT_TRUE(ref.erase(bytes(k)));
    EXPECT_EQ(ref.raw_erase(bytes(k)), -ENOENT);
    EXPECT_EQ(maps::prog_array_get(h, 3), 0u);
}

TEST(ArrayOfMaps, InnerMapsByReference) {
    auto a = test::anon_arena();
    auto outer_spec = make_spec("outer", MapType::array_of_maps, 4, 4, 4);
    outer_spec.inner = std::make_shared<MapSpec>(make_spec("", MapType::array, 4, 8, 16));
    auto outer = a.create_map(outer_spec).value();
    auto inner = a.create_map(make_spec("inner", MapType::array, 4, 8, 16)).value();
    auto wrong = a.create_map(make_spec("wrong", MapType::array, 4, 4, 16)).value();
    std::uint32_t k = 1;
    ASSERT_TRUE(outer.set_map(bytes(k), inner));
    auto bad = outer.set_map(bytes(k), wrong);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
    EXPECT_NE(bad.error().message().find("does not match the inner spec"), std::string::npos);
    std::uint32_t wid = wrong.id();
    EXPECT_EQ(outer.raw_update(bytes(k), bytes(wid)), -EINVAL);
    std::uint32_t id = 0;
    ASSERT_TRUE(outer.lookup(bytes(k), wbytes(id)));
    EXPECT_EQ(id, inner.id());
    // Programs get the inner map's handle and use it with the map helpers.
    void* ih = maps::map_lookup_elem(outer.program_handle(), &k);
    EXPECT_EQ(ih, inner.program_handle());
    std::uint32_t ik = 5;
    std::uint64_t v = 55;
    EXPECT_EQ(maps::map_update_elem(ih, &ik, &v, 0), 0);
    auto got = outer.get_map(bytes(k));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->name(), "inner");
    auto typed = Map<std::uint32_t, std::uint64_t>::from(*got).value();
    EXPECT_EQ(typed.lookup(5), 55u);
    // The slot keeps the inner map alive after its name is removed.
    std::size_t free_before = a.free_bytes();
    ASSERT_TRUE(a.remove_map("inner"));
    {
        auto drop1 = std::move(inner);
        auto drop2 = std::move(*got);
        auto drop3 = std::move(typed);
    }
    EXPECT_EQ(a.free_bytes(), free_before);
    EXPECT_EQ(maps::map_lookup_elem(outer.program_handle(), &k), ih);
    ASSERT_TRUE(outer.erase(bytes(k)));
    EXPECT_GT(a.free_bytes(), free_before);
    EXPECT_EQ(outer.raw_erase(bytes(k)), -ENOENT);
    EXPECT_EQ(maps::map_lookup_elem(outer.program_handle(), &k), nullptr);
    std::uint32_t missing = 9999;
    EXPECT_EQ(outer.raw_update(bytes(k), bytes(missing)), -EBADF);
}

TEST(ArrayOfMaps, InnerMapFlagAllowsOtherSizes) {
    auto a = test::anon_arena();
    auto outer_spec = make_spec("outer", MapType::array_of_maps, 4, 4, 2);
    outer_spec.inner =
        std::make_shared<MapSpec>(make_spec("", MapType::array, 4, 8, 16, map_flags::inner_map));
    auto outer = a.create_map(outer_spec).value();
    auto inner = a.create_map(make_spec("inner", MapType::array, 4, 8, 100, map_flags::inner_map)).value();
    std::uint32_t k = 0;
    EXPECT_TRUE(outer.set_map(bytes(k), inner));
}

}  // namespace
}  // namespace ebpfrt
