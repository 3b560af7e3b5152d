// bloom_filter maps through MapRef and BloomFilter<V>, with the kernel's semantics
// (kernel/bpf/bloom_filter.c, kernel/bpf/syscall.c): push adds, peek answers "possibly present" (0) or
// "certainly absent" (-ENOENT), nothing can be removed, keys do not exist (key_size must be 0).

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <unordered_set>

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::bytes;
using test::make_spec;
using test::wbytes;

MapRef make_bloom(Arena& a, std::string name, std::uint32_t value_size, std::uint32_t max_entries) {
    auto m = a.create_map(make_spec(std::move(name), MapType::bloom_filter, 0, value_size, max_entries));
    if (!m) throw std::runtime_error(m.error().message());
    return *m;
}

TEST(Bloom, EmptyFilterHasNothing) {
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    auto bf = BloomFilter<std::uint64_t>::from(ref).value();
    for (std::uint64_t v : {0ull, 1ull, 42ull, ~0ull}) {
        EXPECT_FALSE(bf.maybe_contains(v)) << v;
        std::uint64_t probe = v;
        auto p = ref.peek(wbytes(probe));
        ASSERT_FALSE(p);
        EXPECT_EQ(p.error().code(), Errc::not_found);
        EXPECT_EQ(ref.raw_lookup({}, wbytes(probe)), -ENOENT);
        // peek does not modify its buffer: it is the element tested.
        EXPECT_EQ(probe, v);
    }
}

TEST(Bloom, PushAddsAndPeekFindsIt) {
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    auto bf = BloomFilter<std::uint64_t>::from(ref).value();
    ASSERT_TRUE(bf.add(7));
    EXPECT_TRUE(bf.maybe_contains(7));
    std::uint64_t v = 7;
    EXPECT_TRUE(ref.peek(wbytes(v)));
    EXPECT_EQ(ref.raw_lookup({}, wbytes(v)), 0);
    // The byte API: update with an empty key pushes, lookup with an empty key peeks.
    std::uint64_t w = 99;
    ASSERT_TRUE(ref.update({}, bytes(w)));
    EXPECT_TRUE(ref.lookup({}, wbytes(w)));
    ASSERT_TRUE(ref.push(bytes(std::uint64_t{123})));
    EXPECT_TRUE(bf.maybe_contains(123));
    // Pushing the same value twice is fine: a bloom filter has no "exists" error.
    EXPECT_TRUE(bf.add(7));
}

TEST(Bloom, NoFalseNegativesAndFewFalsePositives) {
    constexpr std::uint32_t n = 10'000;
    auto a = test::anon_arena(32u << 20);
    auto ref = make_bloom(a, "bf", 8, n);  // sized for the count, default 5 hash functions
    auto bf = BloomFilter<std::uint64_t>::from(ref).value();
    std::mt19937_64 rng(20240607);
    std::unordered_set<std::uint64_t> in;
    while (in.size() < n) in.insert(rng());
    for (auto v : in) ASSERT_TRUE(bf.add(v));
    std::size_t missing = 0;
    for (auto v : in) missing += !bf.maybe_contains(v);
    EXPECT_EQ(missing, 0u) << "a bloom filter never forgets an element";

    constexpr int trials = 100'000;
    int positives = 0, tested = 0;
    while (tested < trials) {
        const std::uint64_t v = rng();
        if (in.count(v)) continue;
        ++tested;
        positives += bf.maybe_contains(v);
    }
    const double rate = static_cast<double>(positives) / trials;
    EXPECT_LT(rate, 0.10) << positives << " false positives in " << trials;
    RecordProperty("false_positive_rate", std::to_string(rate));
}

TEST(Bloom, OddSizedValues) {
    struct Triple {
        std::uint32_t a, b, c;
    };
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", sizeof(Triple), 1000);
    auto bf = BloomFilter<Triple>::from(ref).value();
    for (std::uint32_t i = 0; i < 1000; ++i) ASSERT_TRUE(bf.add(Triple{i, i * 3, i ^ 0x5555}));
    for (std::uint32_t i = 0; i < 1000; ++i) EXPECT_TRUE(bf.maybe_contains(Triple{i, i * 3, i ^ 0x5555})) << i;
    int positives = 0;
    for (std::uint32_t i = 0; i < 1000; ++i) positives += bf.maybe_contains(Triple{i, i * 3 + 1, i});
    EXPECT_LT(positives, 100);
}

TEST(Bloom, PushTakesNoFlags) {
    // bloom_map_push_elem: flags != BPF_ANY is -EINVAL.
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    std::uint64_t v = 5;
    for (std::uint64_t f : {update_flags::noexist, update_flags::exist, update_flags::lock}) {
        auto r = ref.push(bytes(v), f);
        ASSERT_FALSE(r) << "flags " << f;
        EXPECT_EQ(r.error().code(), Errc::invalid_argument) << "flags " << f;
    }
    EXPECT_FALSE(BloomFilter<std::uint64_t>::from(ref).value().maybe_contains(5)) << "a rejected push added";
}

TEST(Bloom, NothingCanBeRemoved) {
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    auto bf = BloomFilter<std::uint64_t>::from(ref).value();
    ASSERT_TRUE(bf.add(11));
    std::uint64_t v = 11, next = 0;
    EXPECT_FALSE(ref.pop(wbytes(v)));
    EXPECT_FALSE(ref.erase({}));
    EXPECT_NE(ref.raw_erase({}), 0);
    EXPECT_NE(ref.raw_next_key({}, wbytes(next)), 0);
    // BPF_MAP_LOOKUP_AND_DELETE_ELEM on a bloom filter: the kernel's -ENOTSUPP.
    auto lae = ref.lookup_and_erase({}, wbytes(v));
    ASSERT_FALSE(lae);
    EXPECT_EQ(lae.error().code(), Errc::unsupported) << lae.error().message();
    EXPECT_TRUE(bf.maybe_contains(11)) << "a failed removal removed the element";
}

TEST(Bloom, RemovalIsUnsupported) {
    // kernel/bpf/bloom_filter.c: bloom_map_pop_elem, bloom_map_delete_elem and bloom_map_get_next_key
    // return -EOPNOTSUPP (ErrorCodesMatchTheKernel checks delete and get_next_key against bpf()).
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    std::uint64_t v = 11, next = 0;
    ASSERT_TRUE(ref.push(bytes(v)));
    auto pop = ref.pop(wbytes(v));
    ASSERT_FALSE(pop);
    EXPECT_EQ(pop.error().code(), Errc::unsupported) << pop.error().message();
    auto erase = ref.erase({});
    ASSERT_FALSE(erase);
    EXPECT_EQ(erase.error().code(), Errc::unsupported) << erase.error().message();
    EXPECT_EQ(ref.raw_erase({}), -EOPNOTSUPP);
    EXPECT_EQ(ref.raw_next_key({}, wbytes(next)), -EOPNOTSUPP);
}

TEST(Bloom, CreationRules) {
    // bloom_map_alloc: key_size must be 0, value_size and max_entries must not be 0.
    auto a = test::anon_arena();
    struct Case {
        std::uint32_t key, value, max;
    };
    for (Case c : {Case{4, 8, 100}, Case{8, 8, 100}, Case{0, 0, 100}, Case{0, 8, 0}}) {
        auto m = a.create_map(make_spec("bad", MapType::bloom_filter, c.key, c.value, c.max));
        ASSERT_FALSE(m) << c.key << "/" << c.value << "/" << c.max;
        EXPECT_EQ(m.error().code(), Errc::invalid_argument) << m.error().message();
    }
    EXPECT_TRUE(a.create_map(make_spec("ok", MapType::bloom_filter, 0, 1, 1)));
    // Typed views: a bloom filter has no keys, so it is no Map<K, V> or Queue<V>.
    auto ref = make_bloom(a, "bf", 8, 10);
    EXPECT_FALSE((Map<std::uint32_t, std::uint64_t>::from(ref)));
    EXPECT_FALSE(Queue<std::uint64_t>::from(ref));
    EXPECT_FALSE(BloomFilter<std::uint32_t>::from(ref)) << "value size 4 vs 8";
    auto q = a.create_map(make_spec("q", MapType::queue, 0, 8, 10)).value();
    EXPECT_FALSE(BloomFilter<std::uint64_t>::from(q));
}

// The same operations on a kernel bloom filter give the same codes (when bpf() is available).
long sys_bpf(int cmd, bpf_attr& attr) {
    const long r = syscall(__NR_bpf, cmd, &attr, sizeof attr);
    return r < 0 ? -errno : r;
}

TEST(Bloom, ErrorCodesMatchTheKernel) {
    bpf_attr c{};
    c.map_type = BPF_MAP_TYPE_BLOOM_FILTER;
    c.key_size = 0;
    c.value_size = 8;
    c.max_entries = 100;
    const long fd = sys_bpf(BPF_MAP_CREATE, c);
    if (fd == -EPERM || fd == -ENOSYS || fd == -EACCES)
        GTEST_SKIP() << "bpf(BPF_MAP_CREATE) is not available here (" << strerror(static_cast<int>(-fd)) << ")";
    ASSERT_GE(fd, 0) << strerror(static_cast<int>(-fd));
    auto elem = [&](int cmd, void* value, std::uint64_t flags) {
        bpf_attr e{};
        e.map_fd = static_cast<std::uint32_t>(fd);
        e.value = reinterpret_cast<std::uint64_t>(value);
        e.flags = flags;
        return sys_bpf(cmd, e);
    };
    auto a = test::anon_arena();
    auto ref = make_bloom(a, "bf", 8, 100);
    std::uint64_t v = 77, next = 0;

    EXPECT_EQ(ref.raw_lookup({}, wbytes(v)), elem(BPF_MAP_LOOKUP_ELEM, &v, 0)) << "peek on empty";
    EXPECT_EQ(ref.raw_update({}, bytes(v), BPF_EXIST), elem(BPF_MAP_UPDATE_ELEM, &v, BPF_EXIST)) << "push EXIST";
    EXPECT_EQ(ref.raw_update({}, bytes(v), BPF_ANY), elem(BPF_MAP_UPDATE_ELEM, &v, BPF_ANY)) << "push";
    EXPECT_EQ(ref.raw_lookup({}, wbytes(v)), elem(BPF_MAP_LOOKUP_ELEM, &v, 0)) << "peek";
    const long kdel = elem(BPF_MAP_DELETE_ELEM, nullptr, 0);
    bpf_attr nk{};
    nk.map_fd = static_cast<std::uint32_t>(fd);
    nk.next_key = reinterpret_cast<std::uint64_t>(&next);
    const long knext = sys_bpf(BPF_MAP_GET_NEXT_KEY, nk);
    close(static_cast<int>(fd));
    EXPECT_EQ(kdel, -EOPNOTSUPP);
    EXPECT_EQ(knext, -EOPNOTSUPP);
    EXPECT_EQ(ref.raw_erase({}), kdel);
    EXPECT_EQ(ref.raw_next_key({}, wbytes(next)), knext);
}

}  // namespace
}  // namespace ebpfrt
