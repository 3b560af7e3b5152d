// stack_trace: get_stackid flags (skip, fast compare, reuse), lookup with zero padding, delete,
// get_next_key.

#include <array>
#include <cstring>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

// map_flags::stack_build_id: values are struct bpf_stack_build_id frames (32 bytes); ids still come from the
// addresses, and the stored frames are compared before an id is reused (no fast compare).
TEST(StackTrace, BuildIdFrames) {
    auto a = test::anon_arena();
    MapSpec bad = make_spec("bid_bad", MapType::stack_trace, 4, 40, 64, map_flags::stack_build_id);
    EXPECT_EQ(a.create_map(bad).error().code(), Errc::invalid_argument) << "40 bytes is not whole frames";
    auto ref = a.create_map(make_spec("bid", MapType::stack_trace, 4, 4 * 32, 1u << 14, map_flags::stack_build_id)).value();
    void* h = ref.program_handle();
    std::uint64_t ips[] = {0x1000, 0x2000, 0x3000};
    maps::StackBuildId frames[3]{};
    for (int i = 0; i < 3; ++i) {
        frames[i].status = i == 2 ? maps::build_id_ip : maps::build_id_valid;
        std::memset(frames[i].build_id, 0x11 * (i + 1), 20);
        frames[i].offset_or_ip = i == 2 ? ips[i] : 0x100u * (i + 1);
    }
    EXPECT_EQ(maps::get_stackid(h, ips, 3, 0), -EINVAL) << "a build-id map needs the frames";
    long id = maps::get_stackid(h, ips, 3, 0, frames);
    ASSERT_GE(id, 0);
    EXPECT_EQ(maps::get_stackid(h, ips, 3, 0, frames), id);
    std::array<maps::StackBuildId, 4> out{};
    const auto k = static_cast<std::uint32_t>(id);
    ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(out[i].status, frames[i].status) << i;
        EXPECT_EQ(std::memcmp(out[i].build_id, frames[i].build_id, 20), 0) << i;
        EXPECT_EQ(out[i].offset_or_ip, frames[i].offset_or_ip) << i;
    }
    EXPECT_EQ(out[3].status, maps::build_id_empty) << "unused frames are zero";
    // Same addresses, other frames (a library reloaded elsewhere): the bucket is taken, even with
    // BPF_F_FAST_STACK_CMP, which build-id maps ignore; BPF_F_REUSE_STACKID replaces it.
    frames[0].offset_or_ip = 0x999;
    EXPECT_EQ(maps::get_stackid(h, ips, 3, maps::f_fast_stack_cmp, frames), -EEXIST);
    EXPECT_EQ(maps::get_stackid(h, ips, 3, maps::f_reuse_stackid, frames), id);
    ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
    EXPECT_EQ(out[0].offset_or_ip, 0x999u);
    // Skipping frames skips build-id frames too.
    long skipped = maps::get_stackid(h, ips, 3, 1, frames);
    ASSERT_GE(skipped, 0);
    const auto ks = static_cast<std::uint32_t>(skipped);
    ASSERT_TRUE(ref.lookup(bytes(ks), wbytes(out)));
    EXPECT_EQ(out[0].offset_or_ip, 0x200u);
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(StackTrace, StackIds) {
    auto a = test::anon_arena();
    // Stack ids are a seeded hash (random per map, as in the kernel): with 2^14 buckets the three stacks
    // below collide with probability ~2e-4, with 128 it was ~2% (a flaky test).
    auto ref = a.create_map(make_spec("stacks", MapType::stack_trace, 4, 8 * 8, 1u << 14)).value();
    void* h = ref.program_handle();
    std::uint64_t ips[] = {0x1000, 0x2000, 0x3000, 0x4000};
    long id = maps::get_stackid(h, ips, 4, 0);
    ASSERT_GE(id, 0);
    EXPECT_LT(id, 1 << 14);
    EXPECT_EQ(maps::get_stackid(h, ips, 4, 0), id);  // the same stack, the same id
    std::array<std::uint64_t, 8> out{};
    std::uint32_t k = static_cast<std::uint32_t>(id);
    ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
    EXPECT_EQ(out, (std::array<std::uint64_t, 8>{0x1000, 0x2000, 0x3000, 0x4000, 0, 0, 0, 0}));
    // Skipping frames gives another stack.
    long skipped = maps::get_stackid(h, ips, 4, 2);
    ASSERT_GE(skipped, 0);
    std::uint32_t ks = static_cast<std::uint32_t>(skipped);
    ASSERT_TRUE(ref.lookup(bytes(ks), wbytes(out)));
    EXPECT_EQ(out[0], 0x3000u);
    EXPECT_EQ(out[2], 0u);
    EXPECT_EQ(maps::get_stackid(h, ips, 4, 4), -EFAULT);
    EXPECT_EQ(maps::get_stackid(h, ips, 4, 1u << 11), -EINVAL);
    // Deeper than the map: truncated to max depth.
    std::uint64_t deep[20];
    for (int i = 0; i < 20; ++i) deep[i] = 0x100 + i;
    long did = maps::get_stackid(h, deep, 20, 0);
    ASSERT_GE(did, 0);
    std::uint32_t kd = static_cast<std::uint32_t>(did);
    ASSERT_TRUE(ref.lookup(bytes(kd), wbytes(out)));
    EXPECT_EQ(out[7], 0x107u);
    // Host-side: iteration, delete, no update.
    std::uint32_t next, cur;
    int n = 0;
    for (int rc = ref.raw_next_key({}, wbytes(next)); rc == 0;
         rc = ref.raw_next_key(bytes(cur), wbytes(next))) {
        cur = next;
        ++n;
    }
    EXPECT_EQ(n, 3);
    EXPECT_EQ(ref.raw_update(bytes(k), bytes(out)), -EINVAL);
    ASSERT_TRUE(ref.erase(bytes(k)));
    EXPECT_EQ(ref.raw_erase(bytes(k)), -ENOENT);
    EXPECT_EQ(ref.raw_lookup(bytes(k), wbytes(out)), -ENOENT);
    std::uint32_t big = 1u << 14;  // past the last bucket
    EXPECT_EQ(ref.raw_erase(bytes(big)), -E2BIG);
    EXPECT_EQ(ref.raw_lookup(bytes(big), wbytes(out)), -ENOENT);
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(StackTrace, CollisionsAndReuse) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("stacks", MapType::stack_trace, 4, 16, 1)).value();  // one bucket
    void* h = ref.program_handle();
    std::uint64_t s1[] = {1, 2}, s2[] = {3, 4};
    ASSERT_EQ(maps::get_stackid(h, s1, 2, 0), 0);
    EXPECT_EQ(maps::get_stackid(h, s2, 2, 0), -EEXIST);
    EXPECT_EQ(maps::get_stackid(h, s2, 2, maps::f_reuse_stackid), 0);
    std::array<std::uint64_t, 2> out{};
    std::uint32_t k = 0;
    ASSERT_TRUE(ref.lookup(bytes(k), wbytes(out)));
    EXPECT_EQ(out, (std::array<std::uint64_t, 2>{3, 4}));
    EXPECT_EQ(maps::get_stackid(h, s2, 2, maps::f_fast_stack_cmp), 0);
}

}  // namespace
}  // namespace ebpfrt
