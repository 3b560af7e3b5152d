// bloom_filter (kernel/bpf/bloom_filter.c): a bit array sized like the kernel's, set and tested with
// atomic bit operations, so it needs no lock and nothing can be left half done. Never a false negative.

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

// MapSpec has no map_extra, so the number of hash functions is the kernel's default.
constexpr std::uint32_t default_hash_funcs = 5;

struct BloomMap {
    MapHeader h;
    std::uint32_t nr_hash_funcs;
    std::uint32_t bitset_mask;  // number of bits - 1
    std::uint64_t bits_off;     // std::atomic<std::uint64_t>[]
};

BloomMap* bm(MapHeader* h) noexcept { return body<BloomMap>(h); }
std::atomic<std::uint64_t>* words(BloomMap* b) noexcept {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(at(b, b->bits_off));
}

// bloom_map_alloc: n * k / ln 2 bits (7/5 approximates 1/ln 2), a power of two, at least 64.
std::uint64_t bitset_bits(std::uint32_t max_entries, std::uint32_t k) noexcept {
    std::uint64_t nr_bits = std::uint64_t{max_entries} * k;
    nr_bits = nr_bits / 5 * 7;
    if (nr_bits > (std::uint64_t{1} << 31)) return std::uint64_t{1} << 32;
    if (nr_bits <= 64) return 64;
    return next_pow2(nr_bits);
}

std::uint32_t bit_of(BloomMap* b, const void* value, std::uint32_t i) noexcept {
    return hash_bytes(value, b->h.value_size, b->h.seed + i) & b->bitset_mask;
}

std::string check_bloom(const MapSpec& s, int* err) {
    if (auto why = check_key_size(s, 0, err); !why.empty()) return why;
    if (auto why = check_nonzero(s, true, true, err); !why.empty()) return why;
    return check_flags(s, map_flags::numa_node | map_flags::zero_seed | access_flags, err);
}

void layout_bloom(const MapSpec& s, std::uint32_t, MapLayout& out) {
    out.header_align = 64;
    out.header_bytes =
        round_up(sizeof(BloomMap), 64) + round_up(bitset_bits(s.max_entries, default_hash_funcs) / 8, 8);
}

long init_bloom(MapHeader* h, const MapSpec& s) noexcept {
    BloomMap* b = bm(h);
    b->nr_hash_funcs = default_hash_funcs;
    std::uint64_t bits = bitset_bits(s.max_entries, default_hash_funcs);
    b->bitset_mask = static_cast<std::uint32_t>(bits - 1);
    b->bits_off = round_up(sizeof(BloomMap), 64);
    for (std::uint64_t w = 0; w < bits / 64; ++w) new (&words(b)[w]) std::atomic<std::uint64_t>(0);
    return 0;
}

long bloom_push(MapHeader* h, const void* value, std::uint64_t flags) noexcept {
    if (flags != update_flags::any) return -EINVAL;
    BloomMap* b = bm(h);
    for (std::uint32_t i = 0; i < b->nr_hash_funcs; ++i) {
        std::uint32_t bit = bit_of(b, value, i);
        std::uint64_t mask = std::uint64_t{1} << (bit & 63);
        std::atomic<std::uint64_t>& w = words(b)[bit >> 6];
        if (!(w.load(std::memory_order_relaxed) & mask)) w.fetch_or(mask, std::memory_order_relaxed);
    }
    return 0;
}

long bloom_peek(MapHeader* h, void* value) noexcept {
    BloomMap* b = bm(h);
    for (std::uint32_t i = 0; i < b->nr_hash_funcs; ++i) {
        std::uint32_t bit = bit_of(b, value, i);
        if (!(words(b)[bit >> 6].load(std::memory_order_relaxed) & (std::uint64_t{1} << (bit & 63))))
            return -ENOENT;
    }
    return 0;
}

long bloom_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    return key ? -EINVAL : bloom_peek(h, value);
}
long bloom_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    return key ? -EINVAL : bloom_push(h, value, flags);
}
// Values cannot be taken out of a bloom filter, nor its keys listed: -EOPNOTSUPP, as in the kernel.
long bloom_pop(MapHeader*, void*) noexcept { return -EOPNOTSUPP; }
long bloom_erase(MapHeader*, const void*) noexcept { return -EOPNOTSUPP; }
long bloom_next_key(MapHeader*, const void*, void*) noexcept { return -EOPNOTSUPP; }

}  // namespace

const MapOps bloom_filter_ops = {
    .check = check_bloom,
    .layout = layout_bloom,
    .init = init_bloom,
    .erase = bloom_erase,
    .push = bloom_push,
    .pop = bloom_pop,
    .peek = bloom_peek,
    .sys_lookup = bloom_sys_lookup,
    .sys_update = bloom_sys_update,
    .sys_delete = bloom_erase,
    .sys_next_key = bloom_next_key,
};

}  // namespace ebpfrt::maps
