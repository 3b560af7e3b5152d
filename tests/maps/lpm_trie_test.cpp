// lpm_trie: longest-prefix match, exact delete, the kernel's post-order get_next_key, flags, full trie.

#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

struct Key4 {
    std::uint32_t prefixlen;
    std::uint8_t addr[4];
};
static_assert(sizeof(Key4) == 8);

Key4 key(std::uint32_t len, std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    return {len, {a, b, c, d}};
}

class LpmTest : public ::testing::Test {
protected:
    void SetUp() override {
        arena_.emplace(test::anon_arena());
        ref_.emplace(
            arena_->create_map(make_spec("routes", MapType::lpm_trie, 8, 8, 16, map_flags::no_prealloc))
                .value());
    }
    Result<void> put(const Key4& k, std::uint64_t v, std::uint64_t flags = 0) {
        return ref_->update(bytes(k), bytes(v), flags);
    }
    std::optional<std::uint64_t> get(const Key4& k) {
        std::uint64_t v = 0;
        if (!ref_->lookup(bytes(k), wbytes(v))) return std::nullopt;
        return v;
    }
    std::optional<Arena> arena_;
    std::optional<MapRef> ref_;
};

TEST_F(LpmTest, LongestPrefixMatch) {
    ASSERT_TRUE(put(key(8, 10, 0, 0, 0), 8));
    ASSERT_TRUE(put(key(16, 10, 1, 0, 0), 16));
    ASSERT_TRUE(put(key(24, 10, 1, 2, 0), 24));
    ASSERT_TRUE(put(key(32, 10, 1, 2, 3), 32));
    ASSERT_TRUE(put(key(0, 0, 0, 0, 0), 0));
    EXPECT_EQ(get(key(32, 10, 1, 2, 3)), 32u);
    EXPECT_EQ(get(key(32, 10, 1, 2, 4)), 24u);
    EXPECT_EQ(get(key(32, 10, 1, 3, 4)), 16u);
    EXPECT_EQ(get(key(32, 10, 2, 3, 4)), 8u);
    EXPECT_EQ(get(key(32, 11, 2, 3, 4)), 0u);
    // The lookup key's own prefix length limits the match.
    EXPECT_EQ(get(key(20, 10, 1, 2, 3)), 16u);
    ASSERT_TRUE(ref_->erase(bytes(key(0, 0, 0, 0, 0))));
    EXPECT_EQ(get(key(32, 11, 2, 3, 4)), std::nullopt);
    // The program ABI returns a pointer to the value.
    Key4 k = key(32, 10, 1, 2, 99);
    auto* p = static_cast<std::uint64_t*>(maps::map_lookup_elem(ref_->program_handle(), &k));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(*p, 24u);
    EXPECT_EQ(maps::check_consistency(ref_->program_handle()), "");
}

TEST_F(LpmTest, DeleteIsExact) {
    ASSERT_TRUE(put(key(16, 192, 168, 0, 0), 1));
    ASSERT_TRUE(put(key(24, 192, 168, 1, 0), 2));
    auto r = ref_->erase(bytes(key(24, 192, 168, 0, 0)));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::not_found);
    EXPECT_EQ(ref_->raw_erase(bytes(key(17, 192, 168, 0, 0))), -ENOENT);
    EXPECT_EQ(ref_->raw_erase(bytes(key(33, 192, 168, 0, 0))), -EINVAL);
    ASSERT_TRUE(ref_->erase(bytes(key(16, 192, 168, 0, 0))));
    EXPECT_EQ(get(key(32, 192, 168, 1, 1)), 2u);
    EXPECT_EQ(get(key(32, 192, 168, 2, 1)), std::nullopt);
    EXPECT_EQ(maps::check_consistency(ref_->program_handle()), "");
}

TEST_F(LpmTest, FlagsAndFull) {
    ASSERT_TRUE(put(key(8, 1, 0, 0, 0), 1));
    EXPECT_EQ(put(key(8, 1, 0, 0, 0), 2, update_flags::noexist).error().code(), Errc::already_exists);
    EXPECT_EQ(put(key(8, 2, 0, 0, 0), 2, update_flags::exist).error().code(), Errc::not_found);
    EXPECT_TRUE(put(key(8, 1, 0, 0, 0), 3, update_flags::exist));
    EXPECT_EQ(get(key(8, 1, 0, 0, 0)), 3u);
    EXPECT_EQ(put(key(33, 1, 0, 0, 0), 1).error().code(), Errc::invalid_argument);
    EXPECT_EQ(ref_->raw_update(bytes(key(8, 1, 0, 0, 0)), bytes(std::uint64_t{1}), 4), -EINVAL);
    for (std::uint8_t i = 2; i <= 16; ++i) ASSERT_TRUE(put(key(16, 1, i, 0, 0), i)) << int(i);
    auto full = put(key(16, 1, 100, 0, 0), 1);
    ASSERT_FALSE(full);
    EXPECT_EQ(full.error().code(), Errc::out_of_memory);
    EXPECT_EQ(full.error().message(), "update map \"routes\": map \"routes\" is full (max_entries 16)");
    EXPECT_EQ(ref_->raw_update(bytes(key(16, 1, 100, 0, 0)), bytes(std::uint64_t{1})), -ENOSPC);
    EXPECT_TRUE(put(key(16, 1, 5, 0, 0), 55));  // replacing still works when full
    EXPECT_EQ(maps::check_consistency(ref_->program_handle()), "");
}

TEST_F(LpmTest, NextKeyPostOrder) {
    // The kernel's example: more specific prefixes come before less specific ones.
    ASSERT_TRUE(put(key(16, 192, 168, 0, 0), 1));
    ASSERT_TRUE(put(key(24, 192, 168, 0, 0), 2));
    ASSERT_TRUE(put(key(24, 192, 168, 1, 0), 3));
    ASSERT_TRUE(put(key(24, 192, 168, 128, 0), 4));
    std::vector<std::pair<std::uint32_t, std::uint8_t>> order;
    Key4 k{}, next{};
    ASSERT_TRUE(ref_->next_key({}, wbytes(next)));
    for (;;) {
        order.emplace_back(next.prefixlen, next.addr[2]);
        k = next;
        if (ref_->raw_next_key(bytes(k), wbytes(next)) != 0) break;
    }
    std::vector<std::pair<std::uint32_t, std::uint8_t>> want = {{24, 0}, {24, 1}, {24, 128}, {16, 0}};
    EXPECT_EQ(order, want);
    // A key not in the trie restarts from the leftmost node.
    ASSERT_TRUE(ref_->next_key(bytes(key(24, 10, 0, 0, 0)), wbytes(next)));
    EXPECT_EQ(next.prefixlen, 24u);
    EXPECT_EQ(next.addr[2], 0);
}

TEST(LpmTrie, RandomAgainstModel) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("rand", MapType::lpm_trie, 8, 4, 200, map_flags::no_prealloc)).value();
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> model;  // (len, masked addr) -> value
    std::mt19937 rng(7);
    auto mask = [](std::uint32_t addr, std::uint32_t len) {
        return len == 0 ? 0 : addr & ~((1ull << (32 - len)) - 1);
    };
    auto to_key = [](std::uint32_t len, std::uint32_t addr) {
        Key4 k{len,
               {std::uint8_t(addr >> 24), std::uint8_t(addr >> 16), std::uint8_t(addr >> 8),
                std::uint8_t(addr)}};
        return k;
    };
    for (int i = 0; i < 5000; ++i) {
        std::uint32_t len = rng() % 33, addr = mask(rng() & 0xfff0f0ff, len);
        Key4 k = to_key(len, addr);
        if (rng() % 3) {
            std::uint32_t v = rng();
            int rc = ref.raw_update(bytes(k), bytes(v));
            if (rc == 0)
                model[{len, addr}] = v;
            else
                ASSERT_EQ(rc, -ENOSPC);
        } else {
            int rc = ref.raw_erase(bytes(k));
            ASSERT_EQ(rc == 0, model.erase({len, addr}) == 1);
        }
        std::uint32_t probe = rng() & 0xfff0f0ff;
        std::optional<std::uint32_t> want;
        for (int l = 32; l >= 0 && !want; --l)
            if (auto it = model.find({std::uint32_t(l), mask(probe, l)}); it != model.end())
                want = it->second;
        std::uint32_t got = 0;
        Key4 pk = to_key(32, probe);
        int rc = ref.raw_lookup(bytes(pk), wbytes(got));
        ASSERT_EQ(rc == 0, want.has_value()) << i;
        if (want) {
            ASSERT_EQ(got, *want) << i;
        }
    }
    std::size_t n = 0;
    Key4 k{}, next{};
    for (int rc = ref.raw_next_key({}, wbytes(next)); rc == 0;
         rc = ref.raw_next_key(bytes(k), wbytes(next))) {
        k = next;
        ++n;
    }
    EXPECT_EQ(n, model.size());
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");
}

TEST(LpmTrie, ConcurrentReadersAndWriters) {
    auto a = test::anon_arena();
    auto ref = a.create_map(make_spec("conc", MapType::lpm_trie, 8, 8, 1000, map_flags::no_prealloc)).value();
    // A /8 that always stays: readers must always find at least it.
    Key4 base = key(8, 10, 0, 0, 0);
    std::uint64_t bv = 8;
    ASSERT_TRUE(ref.update(bytes(base), bytes(bv)));
    std::atomic<bool> done{false}, bad{false};
    std::thread writer([&] {
        std::mt19937 rng(3);
        for (int i = 0; i < 100000; ++i) {
            Key4 k = key(16 + rng() % 17, 10, std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng()));
            std::uint64_t v = k.prefixlen;
            if (rng() % 2)
                (void)ref.raw_update(bytes(k), bytes(v));
            else
                (void)ref.raw_erase(bytes(k));
        }
        done = true;
    });
    std::thread reader([&] {
        std::mt19937 rng(4);
        while (!done) {
            Key4 k = key(32, 10, std::uint8_t(rng()), std::uint8_t(rng()), std::uint8_t(rng()));
            std::uint64_t v = 0;
            if (ref.raw_lookup(bytes(k), wbytes(v)) != 0 || v < 8 || v > 32) bad = true;
        }
    });
    writer.join();
    reader.join();
    EXPECT_FALSE(bad.load());
    EXPECT_EQ(maps::check_consistency(ref.program_handle()), "");
}

}  // namespace
}  // namespace ebpfrt
