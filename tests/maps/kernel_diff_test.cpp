// Differential test: the same random operation sequences on kernel maps (raw bpf() syscall) and on ours,
// comparing return codes and values. Skips when bpf() is not available.

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::make_spec;

long sys_bpf(int cmd, bpf_attr& attr) {
    long r = syscall(__NR_bpf, cmd, &attr, sizeof attr);
    return r < 0 ? -errno : r;
}

class KernelMap {
public:
    static long create(const MapSpec& s, KernelMap& out) {
        bpf_attr a{};
        a.map_type = static_cast<std::uint32_t>(s.type);
        a.key_size = s.key_size;
        a.value_size = s.value_size;
        a.max_entries = s.max_entries;
        a.map_flags = s.flags;
        long fd = sys_bpf(BPF_MAP_CREATE, a);
        if (fd >= 0) out.fd_ = static_cast<int>(fd);
        return fd < 0 ? fd : 0;
    }
    KernelMap() = default;
    KernelMap(const KernelMap&) = delete;
    KernelMap& operator=(const KernelMap&) = delete;
    ~KernelMap() {
        if (fd_ >= 0) close(fd_);
    }
    long lookup(const void* key, void* value, std::uint64_t flags = 0) const {
        return elem(BPF_MAP_LOOKUP_ELEM, key, value, flags);
    }
    long update(const void* key, const void* value, std::uint64_t flags) const {
        return elem(BPF_MAP_UPDATE_ELEM, key, const_cast<void*>(value), flags);
    }
    long erase(const void* key) const { return elem(BPF_MAP_DELETE_ELEM, key, nullptr, 0); }
    long lookup_and_delete(const void* key, void* value) const {
        return elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, key, value, 0);
    }
    long next_key(const void* key, void* next) const {
        bpf_attr a{};
        a.map_fd = static_cast<std::uint32_t>(fd_);
        a.key = reinterpret_cast<std::uint64_t>(key);
        a.next_key = reinterpret_cast<std::uint64_t>(next);
        return sys_bpf(BPF_MAP_GET_NEXT_KEY, a);
    }

private:
    long elem(int cmd, const void* key, void* value, std::uint64_t flags) const {
        bpf_attr a{};
        a.map_fd = static_cast<std::uint32_t>(fd_);
        a.key = reinterpret_cast<std::uint64_t>(key);
        a.value = reinterpret_cast<std::uint64_t>(value);
        a.flags = flags;
        return sys_bpf(cmd, a);
    }
    int fd_ = -1;
};

// Both maps of one spec, and the comparison of one operation at a time.
struct Pair {
    KernelMap k;
    std::optional<Arena> arena;
    std::optional<MapRef> u;
    void* h = nullptr;
    std::size_t vsize = 0;
    std::size_t ops = 0;
};

// Creates the kernel map and ours. Returns the reason to skip when bpf() is not available here; other
// failures are reported as test failures (check HasFailure()).
std::string make_pair(Pair& p, const MapSpec& spec) {
    long rc = KernelMap::create(spec, p.k);
    if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES)
        return "bpf(BPF_MAP_CREATE) is not available here (" + std::string(strerror(int(-rc))) + ")";
    if (rc != 0) {
        ADD_FAILURE() << "kernel map create: " << strerror(int(-rc));
        return {};
    }
    p.arena.emplace(test::anon_arena(32u << 20));
    auto m = p.arena->create_map(spec);
    if (!m) {
        ADD_FAILURE() << m.error().message();
        return {};
    }
    p.u.emplace(*m);
    p.h = p.u->program_handle();
    p.vsize = p.u->value_buffer_size();
    return {};
}

// Runs `op` on both and compares the codes and the output buffers (values only when both succeeded).
template <class K, class U>
void same(Pair& p, const std::string& what, K&& kernel, U&& ours, std::vector<std::byte>* kout = nullptr,
          std::vector<std::byte>* uout = nullptr) {
    long krc = kernel();
    long urc = ours();
    ++p.ops;
    ASSERT_EQ(urc, krc) << what << " after " << p.ops << " operations: kernel " << strerror(int(-krc))
                        << ", ours " << strerror(int(-urc));
    if (krc == 0 && kout && uout) {
        ASSERT_EQ(*uout, *kout) << what << " values differ after " << p.ops << " operations";
    }
}

std::vector<std::byte> random_value(std::mt19937& rng, std::size_t n) {
    std::vector<std::byte> v(n);
    for (auto& b : v) b = std::byte(rng());
    return v;
}

// Keyed maps: update (random flags), lookup, delete, lookup_and_delete, and, for arrays, get_next_key.
void keyed_sequence(Pair& p, const MapSpec& s, std::uint32_t key_space, int n, bool exact_next_key,
                    bool and_delete, std::uint32_t seed) {
    std::mt19937 rng(seed);
    const std::uint64_t flag_choices[] = {BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_ANY, 3, BPF_F_LOCK};
    for (int i = 0; i < n; ++i) {
        std::uint32_t key = rng() % key_space;
        std::vector<std::byte> kv(p.vsize), uv(p.vsize);
        switch (rng() % 6) {
        case 0:
        case 1: {
            auto v = random_value(rng, p.vsize);
            // Per-CPU values: the kernel copies value_size bytes per CPU, so padding bytes do not round-trip.
            if (p.vsize != s.value_size)
                for (std::size_t c = 0; c < p.vsize; c += (s.value_size + 7) / 8 * 8)
                    std::fill(v.begin() + c + s.value_size, v.begin() + c + (s.value_size + 7) / 8 * 8,
                              std::byte{0});
            std::uint64_t f = flag_choices[rng() % std::size(flag_choices)];
            same(
                p, "update " + std::to_string(key) + " flags " + std::to_string(f),
                [&] { return p.k.update(&key, v.data(), f); },
                [&] { return maps::sys_update(p.h, &key, v.data(), f); });
            break;
        }
        case 2: {
            std::uint64_t f = rng() % 8 == 0 ? BPF_F_LOCK : 0;
            same(
                p, "lookup " + std::to_string(key), [&] { return p.k.lookup(&key, kv.data(), f); },
                [&] { return maps::sys_lookup(p.h, &key, uv.data(), f); }, &kv, &uv);
            break;
        }
        case 3:
            same(
                p, "delete " + std::to_string(key), [&] { return p.k.erase(&key); },
                [&] { return maps::sys_delete(p.h, &key); });
            break;
        case 4:
            if (and_delete)
                same(
                    p, "lookup_and_delete " + std::to_string(key),
                    [&] { return p.k.lookup_and_delete(&key, kv.data()); },
                    [&] { return maps::sys_lookup_and_delete(p.h, &key, uv.data(), 0); }, &kv, &uv);
            break;
        case 5:
            if (exact_next_key) {
                std::uint32_t kn = 0, un = 0;
                bool null_key = rng() % 4 == 0;
                same(
                    p, "next_key " + std::to_string(key),
                    [&] { return p.k.next_key(null_key ? nullptr : &key, &kn); },
                    [&] { return maps::sys_get_next_key(p.h, null_key ? nullptr : &key, &un); });
                ASSERT_EQ(un, kn) << "next_key of " << key;
            }
            break;
        }
        if (::testing::Test::HasFatalFailure()) return;
        if (i % 64 == 0 && !exact_next_key) {
            // Hash order differs (another hash function); the sets of keys and their values must not.
            std::map<std::uint32_t, std::vector<std::byte>> km, um;
            std::uint32_t cur = 0, next = 0;
            for (long rc = p.k.next_key(nullptr, &next); rc == 0; rc = p.k.next_key(&cur, &next)) {
                cur = next;
                std::vector<std::byte> v(p.vsize);
                ASSERT_EQ(p.k.lookup(&cur, v.data()), 0);
                km[cur] = v;
            }
            for (long rc = maps::sys_get_next_key(p.h, nullptr, &next); rc == 0;
                 rc = maps::sys_get_next_key(p.h, &cur, &next)) {
                cur = next;
                std::vector<std::byte> v(p.vsize);
                ASSERT_EQ(maps::sys_lookup(p.h, &cur, v.data(), 0), 0);
                ASSERT_TRUE(um.emplace(cur, v).second) << "key " << cur << " iterated twice";
            }
            ASSERT_EQ(um, km) << "contents differ after " << p.ops << " operations";
        }
    }
}

struct KeyedCase {
    MapSpec spec;
    std::uint32_t key_space;
    bool exact_next_key;
    bool and_delete;
};

class KernelDiffKeyed : public ::testing::TestWithParam<KeyedCase> {};

TEST_P(KernelDiffKeyed, RandomSequences) {
    const KeyedCase& c = GetParam();
    Pair p;
    if (auto why = make_pair(p, c.spec); !why.empty()) GTEST_SKIP() << why;
    ASSERT_FALSE(HasFailure());
    for (std::uint32_t seed = 1; seed <= 3; ++seed) {
        keyed_sequence(p, c.spec, c.key_space, 3000, c.exact_next_key, c.and_delete, seed);
        if (HasFatalFailure()) return;
    }
    EXPECT_EQ(maps::check_consistency(p.h), "");
}

INSTANTIATE_TEST_SUITE_P(
    Kernel, KernelDiffKeyed,
    ::testing::Values(KeyedCase{make_spec("hash", MapType::hash, 4, 12, 32), 48, false, true},
                      KeyedCase{make_spec("hash_np", MapType::hash, 4, 8, 32, BPF_F_NO_PREALLOC), 48, false,
                                true},
                      KeyedCase{make_spec("percpu_hash", MapType::percpu_hash, 4, 12, 32), 48, false, true},
                      // Fewer keys than entries: the kernel's LRU may evict early when its per-CPU free
                      // lists hold nodes, so stay well below max_entries.
                      KeyedCase{make_spec("lru_hash", MapType::lru_hash, 4, 8, 1024), 200, false, true},
                      KeyedCase{make_spec("array", MapType::array, 4, 12, 32), 40, true, false},
                      KeyedCase{make_spec("percpu_array", MapType::percpu_array, 4, 4, 16), 20, true, false}),
    [](const auto& param_info) { return param_info.param.spec.name; });

TEST(KernelDiff, QueueAndStack) {
    for (MapType t : {MapType::queue, MapType::stack}) {
        auto spec = make_spec(to_string(t), t, 0, 8, 16);
        Pair p;
        if (auto why = make_pair(p, spec); !why.empty()) GTEST_SKIP() << why;
        ASSERT_FALSE(HasFailure());
        std::mt19937 rng(9);
        for (int i = 0; i < 5000; ++i) {
            std::vector<std::byte> kv(8), uv(8);
            switch (rng() % 3) {
            case 0: {
                auto v = random_value(rng, 8);
                std::uint64_t f =
                    std::array<std::uint64_t, 5>{BPF_ANY, BPF_EXIST, BPF_EXIST, BPF_NOEXIST, 5}[rng() % 5];
                same(
                    p, "push", [&] { return p.k.update(nullptr, v.data(), f); },
                    [&] { return maps::sys_update(p.h, nullptr, v.data(), f); });
                break;
            }
            case 1:
                same(
                    p, "pop", [&] { return p.k.lookup_and_delete(nullptr, kv.data()); },
                    [&] { return maps::sys_lookup_and_delete(p.h, nullptr, uv.data(), 0); }, &kv, &uv);
                break;
            case 2:
                same(
                    p, "peek", [&] { return p.k.lookup(nullptr, kv.data()); },
                    [&] { return maps::sys_lookup(p.h, nullptr, uv.data(), 0); }, &kv, &uv);
                break;
            }
            if (HasFatalFailure()) return;
        }
    }
}

TEST(KernelDiff, LpmTrie) {
    auto spec = make_spec("lpm", MapType::lpm_trie, 8, 8, 64, BPF_F_NO_PREALLOC);
    Pair p;
    if (auto why = make_pair(p, spec); !why.empty()) GTEST_SKIP() << why;
    ASSERT_FALSE(HasFailure());
    std::mt19937 rng(11);
    struct Key {
        std::uint32_t prefixlen;
        std::uint32_t addr;
    };
    // Addresses from a small space so that prefixes nest and collide often.
    auto random_key = [&](bool lookup) {
        Key k{lookup ? 32 : static_cast<std::uint32_t>(rng() % 34),
              static_cast<std::uint32_t>(rng() & 0x0303f0ff)};
        return k;
    };
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::byte> kv(8), uv(8);
        Key k = random_key(false);
        switch (rng() % 5) {
        case 0:
        case 1: {
            auto v = random_value(rng, 8);
            std::uint64_t f =
                std::array<std::uint64_t, 5>{BPF_ANY, BPF_ANY, BPF_NOEXIST, BPF_EXIST, 3}[rng() % 5];
            same(
                p, "update", [&] { return p.k.update(&k, v.data(), f); },
                [&] { return maps::sys_update(p.h, &k, v.data(), f); });
            break;
        }
        case 2: {
            Key l = random_key(rng() % 2);
            same(
                p, "lookup", [&] { return p.k.lookup(&l, kv.data()); },
                [&] { return maps::sys_lookup(p.h, &l, uv.data(), 0); }, &kv, &uv);
            break;
        }
        case 3:
            same(
                p, "delete", [&] { return p.k.erase(&k); }, [&] { return maps::sys_delete(p.h, &k); });
            break;
        case 4: {
            // get_next_key follows the same post-order walk: sequences must match exactly.
            std::vector<Key> ks, us;
            Key cur{}, next{};
            for (long rc = p.k.next_key(nullptr, &next); rc == 0; rc = p.k.next_key(&cur, &next))
                ks.push_back(cur = next);
            for (long rc = maps::sys_get_next_key(p.h, nullptr, &next); rc == 0;
                 rc = maps::sys_get_next_key(p.h, &cur, &next))
                us.push_back(cur = next);
            ASSERT_EQ(us.size(), ks.size()) << "after " << p.ops << " operations";
            for (std::size_t j = 0; j < ks.size(); ++j)
                ASSERT_TRUE(us[j].prefixlen == ks[j].prefixlen && us[j].addr == ks[j].addr) << "key " << j;
            Key nk{}, nu{};
            same(
                p, "next_key", [&] { return p.k.next_key(&k, &nk); },
                [&] { return maps::sys_get_next_key(p.h, &k, &nu); });
            ASSERT_TRUE(nk.prefixlen == nu.prefixlen && nk.addr == nu.addr);
            break;
        }
        }
        if (HasFatalFailure()) return;
    }
    EXPECT_EQ(maps::check_consistency(p.h), "");
}

TEST(KernelDiff, BloomFilter) {
    auto spec = make_spec("bloom", MapType::bloom_filter, 0, 8, 256);
    Pair p;
    if (auto why = make_pair(p, spec); !why.empty()) GTEST_SKIP() << why;
    ASSERT_FALSE(HasFailure());
    std::mt19937 rng(13);
    std::vector<std::vector<std::byte>> pushed;
    for (int i = 0; i < 256; ++i) {
        auto v = random_value(rng, 8);
        std::uint64_t f = i % 10 == 0 ? BPF_EXIST : BPF_ANY;
        same(
            p, "push", [&] { return p.k.update(nullptr, v.data(), f); },
            [&] { return maps::sys_update(p.h, nullptr, v.data(), f); });
        if (f == BPF_ANY) pushed.push_back(v);
    }
    // Hash functions differ, so only the no-false-negative property is comparable.
    for (auto& v : pushed)
        same(
            p, "peek", [&] { return p.k.lookup(nullptr, v.data()); },
            [&] { return maps::sys_lookup(p.h, nullptr, v.data(), 0); });
}

TEST(KernelDiff, CreationRules) {
    // Specs the kernel rejects, we reject with the same errno class; specs it accepts, we accept.
    std::vector<MapSpec> specs = {
        make_spec("a", MapType::array, 8, 8, 4),
        make_spec("b", MapType::array, 4, 0, 4),
        make_spec("c", MapType::hash, 0, 8, 4),
        make_spec("d", MapType::hash, 4, 8, 0),
        make_spec("e", MapType::queue, 4, 8, 4),
        make_spec("f", MapType::lpm_trie, 8, 8, 4),
        make_spec("g", MapType::lpm_trie, 4, 8, 4, 1),
        make_spec("h", MapType::ringbuf, 0, 0, 4096),
        make_spec("i", MapType::ringbuf, 0, 0, 6000),
        make_spec("j", MapType::bloom_filter, 0, 8, 100),
        make_spec("k", MapType::hash, 4, 8, 4, 1u << 10),
        make_spec("l", MapType::lru_hash, 4, 8, 4, 1),
        make_spec("m", MapType::stack_trace, 4, 12, 4),
        make_spec("n", MapType::stack_trace, 4, 16, 4),
        make_spec("o", MapType::array, 4, 8, 4, 1u << 10),
        make_spec("p", MapType::percpu_array, 4, 8, 4, 1u << 10),
        make_spec("q", MapType::prog_array, 4, 8, 4),
        make_spec("r", MapType::stack, 0, 8, 4, 1),
    };
    auto arena = test::anon_arena(32u << 20);
    KernelMap probe;
    long rc0 = KernelMap::create(make_spec("probe", MapType::array, 4, 4, 1), probe);
    if (rc0 == -EPERM || rc0 == -ENOSYS) GTEST_SKIP() << "bpf() is not available here";
    for (auto& s : specs) {
        KernelMap k;
        long krc = KernelMap::create(s, k);
        auto m = arena.create_map(s);
        if (krc == 0) {
            EXPECT_TRUE(m) << s.name << ": the kernel accepts it, we say " << m.error().message();
        } else {
            ASSERT_FALSE(m) << s.name << ": the kernel rejects it with " << strerror(int(-krc));
            EXPECT_EQ(m.error().code(), errc_from_errno(int(-krc)) == Errc::io_error
                                            ? Errc::unsupported
                                            : errc_from_errno(int(-krc)))
                << s.name << ": " << m.error().message() << " vs kernel " << strerror(int(-krc));
        }
    }
}

}  // namespace
}  // namespace ebpfrt
