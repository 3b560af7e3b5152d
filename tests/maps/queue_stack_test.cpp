// queue, stack and bloom_filter.

#include <random>
#include <set>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

TEST(Queue, FifoFullAndOverwrite) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("q", MapType::queue, 0, 4, 3)).value();
    auto q = Queue<std::uint32_t>::from(ref).value();
    EXPECT_EQ(q.pop(), std::nullopt);
    EXPECT_EQ(q.peek(), std::nullopt);
    std::uint32_t out = 1;
    auto e = ref.pop(wbytes(out));
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), Errc::not_found);
    EXPECT_EQ(e.error().message(), "pop map \"q\": the map is empty");
    EXPECT_EQ(out, 0u);  // the kernel zeroes the value on ENOENT
    for (std::uint32_t i = 1; i <= 3; ++i) ASSERT_TRUE(q.push(i));
    auto full = q.push(4);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code(), Errc::out_of_memory);
    EXPECT_EQ(
        full.error().message(),
        "push map \"q\": map \"q\" is full (max_entries 3; push with update_flags::exist to overwrite)");
    ASSERT_TRUE(q.push(4, update_flags::exist));  // drops the oldest (1)
    EXPECT_EQ(q.peek(), 2u);
    EXPECT_EQ(q.pop(), 2u);
    EXPECT_EQ(q.pop(), 3u);
    EXPECT_EQ(q.pop(), 4u);
    EXPECT_EQ(q.pop(), std::nullopt);
    EXPECT_EQ(q.push(1, update_flags::noexist).error().code(), Errc::invalid_argument);
    EXPECT_EQ(q.push(1, 7).error().code(), Errc::invalid_argument);
}

TEST(Stack, LifoFullAndOverwrite) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("s", MapType::stack, 0, 8, 3)).value();
    auto s = Queue<std::uint64_t>::from(ref).value();
    for (std::uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(s.push(i));
    EXPECT_EQ(s.push(4).error().code(), Errc::out_of_memory);
    ASSERT_TRUE(s.push(4, update_flags::exist));  // the oldest (1) goes, as in the kernel
    EXPECT_EQ(s.peek(), 4u);
    EXPECT_EQ(s.pop(), 4u);
    EXPECT_EQ(s.pop(), 3u);
    EXPECT_EQ(s.pop(), 2u);
    EXPECT_EQ(s.pop(), std::nullopt);
}

TEST(Queue, ProgramAbiAndSyscallForms) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("q", MapType::queue, 0, 8, 100)).value();
    void* h = ref.program_handle();
    std::uint64_t v = 5, out = 0;
    EXPECT_EQ(maps::map_push_elem(h, &v, 0), 0);
    v = 6;
    EXPECT_EQ(maps::map_push_elem(h, &v, 0), 0);
    EXPECT_EQ(maps::map_peek_elem(h, &out), 0);
    EXPECT_EQ(out, 5u);
    // The syscall's lookup is peek, lookup_and_delete is pop, update is push.
    ASSERT_TRUE(ref.lookup({}, wbytes(out)));
    EXPECT_EQ(out, 5u);
    ASSERT_TRUE(ref.lookup_and_erase({}, wbytes(out)));
    EXPECT_EQ(out, 5u);
    v = 7;
    ASSERT_TRUE(ref.update({}, bytes(v)));
    EXPECT_EQ(maps::map_pop_elem(h, &out), 0);
    EXPECT_EQ(out, 6u);
    EXPECT_EQ(maps::map_pop_elem(h, &out), 0);
    EXPECT_EQ(out, 7u);
    EXPECT_EQ(maps::map_pop_elem(h, &out), -ENOENT);
    EXPECT_EQ(maps::map_lookup_elem(h, nullptr), nullptr);
    std::uint32_t k = 0;
    EXPECT_EQ(ref.raw_next_key({}, wbytes(k)), -EINVAL);
    EXPECT_EQ(maps::map_delete_elem(h, nullptr), -EINVAL);
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(Queue, WrapsManyTimes) {
    auto a = test::anon_arena();
    auto q =
        Queue<std::uint32_t>::from(a.create_map(make_spec("q", MapType::queue, 0, 4, 7)).value()).value();
    std::uint32_t next_in = 0, next_out = 0;
    std::mt19937 rng(5);
    for (int i = 0; i < 10000; ++i) {
        if (rng() % 2) {
            if (q.push(next_in)) ++next_in;
        } else if (auto v = q.pop()) {
            ASSERT_EQ(*v, next_out++);
        }
    }
}

TEST(BloomFilter, NoFalseNegatives) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("bf", MapType::bloom_filter, 0, 8, 1000)).value();
    auto bf = BloomFilter<std::uint64_t>::from(ref).value();
    for (std::uint64_t i = 0; i < 1000; ++i) ASSERT_TRUE(bf.add(i * 0x9e3779b97f4a7c15ULL));
    for (std::uint64_t i = 0; i < 1000; ++i) EXPECT_TRUE(bf.maybe_contains(i * 0x9e3779b97f4a7c15ULL)) << i;
    int false_positives = 0;
    for (std::uint64_t i = 0; i < 10000; ++i) false_positives += bf.maybe_contains(i * 7 + 1000000);
    EXPECT_LT(false_positives, 500);  // 5 hashes, ~7 bits per entry: a few percent
    std::uint64_t v = 1;
    auto r = ref.push(bytes(v), update_flags::noexist);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    std::uint64_t absent = 0xabcdef;
    if (!bf.maybe_contains(absent)) {
        auto p = ref.peek(wbytes(absent));
        ASSERT_FALSE(p);
        EXPECT_EQ(p.error().message(), "peek map \"bf\": the value is not in the filter");
    }
    void* h = ref.program_handle();
    std::uint64_t pv = 424242;
    EXPECT_EQ(maps::map_push_elem(h, &pv, 0), 0);
    EXPECT_EQ(maps::map_peek_elem(h, &pv), 0);
    EXPECT_EQ(maps::map_pop_elem(h, &pv), -EOPNOTSUPP);  // kernel bloom_map_pop_elem
    EXPECT_EQ(maps::map_delete_elem(h, nullptr), -EOPNOTSUPP);
    EXPECT_FALSE(Queue<std::uint32_t>::from(ref));
}

}  // namespace
}  // namespace ebpfrt
