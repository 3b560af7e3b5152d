// stack_trace (kernel/bpf/stackmap.c): stack id = hash of the instruction pointers & (n_buckets - 1).
// Each bucket holds its stack inline behind a sequence counter: writers (under a lock stripe) make it odd,
// write, make it even; readers compare or copy and check the counter did not move. A writer that dies
// leaves its bucket odd: the next locker of the stripe clears such buckets.

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint32_t max_stripes = 64;

struct StackMap {
    MapHeader h;
    std::uint32_t n_buckets;  // power of two
    std::uint32_t max_depth;   // value_size / entry_size
    std::uint32_t n_locks;
    std::uint32_t entry_size;  // 8 (an address), 32 (StackBuildId: map_flags::stack_build_id)
    std::uint64_t bucket_stride;
    std::uint64_t locks_off;
    std::uint64_t buckets_off;
};

struct StackBucket {
    std::atomic<std::uint32_t> seq;
    std::uint32_t nr;  // 0: empty
    std::uint32_t hash;
    std::uint32_t reserved;
    // std::uint64_t ips[max_depth]
};

StackMap* sm(MapHeader* h) noexcept { return body<StackMap>(h); }
StackBucket* bucket(StackMap* m, std::uint32_t id) noexcept {
    return reinterpret_cast<StackBucket*>(at(m, m->buckets_off + id * m->bucket_stride));
}
std::byte* entries_of(StackBucket* b) noexcept { return reinterpret_cast<std::byte*>(b) + sizeof(StackBucket); }
RobustMutex& stripe(StackMap* m, std::uint32_t id) noexcept {
    return reinterpret_cast<LockSlot*>(at(m, m->locks_off))[id & (m->n_locks - 1)].m;
}

// Locks the stripe of `id`; after a dead owner, clears the buckets it left half written.
struct StripeLock {
    StripeLock(StackMap* m, std::uint32_t id) noexcept : lock(stripe(m, id)) {
        if (!lock.lock()) return;
        for (std::uint32_t b = id & (m->n_locks - 1); b < m->n_buckets; b += m->n_locks) {
            StackBucket* bk = bucket(m, b);
            std::uint32_t s = bk->seq.load(std::memory_order_relaxed);
            if (s & 1) {
                bk->nr = 0;
                bk->seq.store(s + 1, std::memory_order_release);
            }
        }
    }
    ~StripeLock() { lock.unlock(); }
    StripeLock(const StripeLock&) = delete;
    StripeLock& operator=(const StripeLock&) = delete;
    RobustMutex& lock;
};

// Runs fn(bucket) on a stable snapshot (fn must only read); false if the bucket never settled.
template <class F>
bool read_stable(StackBucket* b, F&& fn) noexcept {
    for (int attempt = 0; attempt < 64; ++attempt) {
        std::uint32_t s = b->seq.load(std::memory_order_acquire);
        if (s & 1) continue;
        fn(b);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (b->seq.load(std::memory_order_relaxed) == s) return true;
    }
    return false;
}

// `entries`: nr frames of the map's entry size.
void write_bucket(StackBucket* b, const void* entries, std::uint32_t nr, std::uint32_t hash,
                  std::uint32_t entry_size) noexcept {
    b->seq.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    b->nr = nr;
    b->hash = hash;
    if (nr) std::memcpy(entries_of(b), entries, std::size_t(nr) * entry_size);
    b->seq.fetch_add(1, std::memory_order_release);
}

std::uint32_t entry_size_of(const MapSpec& s) noexcept {
    return (s.flags & map_flags::stack_build_id) ? sizeof(StackBuildId) : 8;
}

std::string check_stack(const MapSpec& s, int* err) {
    if (auto why = check_flags(s, map_flags::numa_node | map_flags::rdonly | map_flags::wronly | map_flags::stack_build_id, err);
        !why.empty())
        return why;
    if (auto why = check_key_size(s, 4, err); !why.empty()) return why;
    if (auto why = check_nonzero(s, false, true, err); !why.empty()) return why;
    const std::uint32_t entry = entry_size_of(s);
    if (s.value_size < entry || s.value_size % entry) {
        *err = EINVAL;
        return fmt::format("value size {} is invalid for stack_trace{} (a non-zero multiple of {})", s.value_size,
                           entry == 8 ? "" : " with build ids", entry);
    }
    if (s.max_entries > (1u << 30)) {
        *err = E2BIG;
        return fmt::format("max_entries {} is too large for stack_trace", s.max_entries);
    }
    return {};
}

struct Geometry {
    std::uint32_t n_buckets, n_locks;
    std::uint64_t stride, locks_off, buckets_off, bytes;
};
Geometry geometry(const MapSpec& s) noexcept {
    Geometry g{};
    g.n_buckets = static_cast<std::uint32_t>(next_pow2(s.max_entries));
    g.n_locks = g.n_buckets < max_stripes ? g.n_buckets : max_stripes;
    g.stride = sizeof(StackBucket) + s.value_size;
    g.locks_off = round_up(sizeof(StackMap), 64);
    g.buckets_off = g.locks_off + std::uint64_t{g.n_locks} * sizeof(LockSlot);
    g.bytes = g.buckets_off + g.stride * g.n_buckets;
    return g;
}

void layout_stack(const MapSpec& s, std::uint32_t, MapLayout& out) {
    out.header_align = 64;
    out.header_bytes = geometry(s).bytes;
}

long init_stack(MapHeader* h, const MapSpec& s) noexcept {
    StackMap* m = sm(h);
    Geometry g = geometry(s);
    m->n_buckets = g.n_buckets;
    m->n_locks = g.n_locks;
    m->entry_size = entry_size_of(s);
    m->max_depth = s.value_size / m->entry_size;
    m->bucket_stride = g.stride;
    m->locks_off = g.locks_off;
    m->buckets_off = g.buckets_off;
    for (std::uint32_t i = 0; i < m->n_locks; ++i) {
        auto* slot = new (at(m, m->locks_off) + i * sizeof(LockSlot)) LockSlot();
        slot->m.init();
    }
    for (std::uint32_t b = 0; b < m->n_buckets; ++b) new (&bucket(m, b)->seq) std::atomic<std::uint32_t>(0);
    return 0;
}

long stack_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    StackMap* m = sm(h);
    std::uint32_t id;
    std::memcpy(&id, key, 4);
    if (id >= m->n_buckets) return -ENOENT;
    StackBucket* b = bucket(m, id);
    std::uint32_t nr = 0;
    auto copy = [&](StackBucket* bk) {
        nr = bk->nr > m->max_depth ? m->max_depth : bk->nr;
        std::memcpy(value, entries_of(bk), std::size_t(nr) * m->entry_size);
    };
    if (!read_stable(b, copy)) {
        StripeLock lock(m, id);
        copy(b);
    }
    if (!nr) return -ENOENT;
    const std::size_t used = std::size_t(nr) * m->entry_size;
    std::memset(static_cast<std::byte*>(value) + used, 0, h->value_size - used);
    return 0;
}

long stack_sys_update(MapHeader*, const void*, const void*, std::uint64_t) noexcept { return -EINVAL; }

long stack_sys_delete(MapHeader* h, const void* key) noexcept {
    StackMap* m = sm(h);
    std::uint32_t id;
    std::memcpy(&id, key, 4);
    if (id >= m->n_buckets) return -E2BIG;
    StripeLock lock(m, id);
    StackBucket* b = bucket(m, id);
    if (!b->nr) return -ENOENT;
    write_bucket(b, nullptr, 0, 0, m->entry_size);
    return 0;
}

long stack_next_key(MapHeader* h, const void* key, void* next) noexcept {
    StackMap* m = sm(h);
    std::uint32_t id = 0;
    if (key) {
        std::memcpy(&id, key, 4);
        if (id >= m->n_buckets || !bucket(m, id)->nr)
            id = 0;
        else
            id++;
    }
    while (id < m->n_buckets && !bucket(m, id)->nr) id++;
    if (id >= m->n_buckets) return -ENOENT;
    std::memcpy(next, &id, 4);
    return 0;
}

std::string stack_check_consistency(MapHeader* h) {
    StackMap* m = sm(h);
    for (std::uint32_t s = 0; s < m->n_locks; ++s) {
        StripeLock lock(m, s);
        for (std::uint32_t b = s; b < m->n_buckets; b += m->n_locks) {
            StackBucket* bk = bucket(m, b);
            if (bk->seq.load() & 1) return fmt::format("bucket {} is half written", b);
            if (bk->nr > m->max_depth)
                return fmt::format("bucket {} holds {} frames, max {}", b, bk->nr, m->max_depth);
        }
    }
    return {};
}

}  // namespace

long get_stackid(void* map, const std::uint64_t* ips, std::uint32_t n, std::uint64_t flags,
                 const StackBuildId* frames) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (h->type != MapType::stack_trace) return -EINVAL;
    if (flags & ~(f_skip_field_mask | f_user_stack | f_fast_stack_cmp | f_reuse_stackid)) return -EINVAL;
    StackMap* m = sm(h);
    const bool build_ids = m->entry_size == sizeof(StackBuildId);
    if (build_ids && frames == nullptr) return -EINVAL;
    std::uint32_t skip = static_cast<std::uint32_t>(flags & f_skip_field_mask);
    if (skip >= n) return -EFAULT;
    std::uint32_t nr = n - skip;
    if (nr > m->max_depth) nr = m->max_depth;
    ips += skip;
    // What the bucket stores: the addresses, or their build ids and offsets (ids still come from the
    // addresses, and a build-id map always compares the stored frames, as __bpf_get_stackid does).
    const void* entries = build_ids ? static_cast<const void*>(frames + skip) : static_cast<const void*>(ips);
    const std::size_t bytes = std::size_t(nr) * m->entry_size;
    std::uint32_t hash = hash_bytes(ips, nr * 8, h->seed);
    std::uint32_t id = hash & (m->n_buckets - 1);
    StackBucket* b = bucket(m, id);
    bool fast = (flags & f_fast_stack_cmp) && !build_ids;
    // Lock-free check first, as the kernel's READ_ONCE of the bucket.
    bool same = false, occupied = false;
    auto compare = [&](StackBucket* bk) {
        occupied = bk->nr != 0;
        bool hash_matches = occupied && bk->hash == hash;
        same = hash_matches && (fast || (bk->nr == nr && std::memcmp(entries_of(bk), entries, bytes) == 0));
    };
    if (read_stable(b, compare)) {
        if (same) return id;
        if (occupied && !(flags & f_reuse_stackid)) return -EEXIST;
    }
    StripeLock lock(m, id);
    compare(b);
    if (same) return id;
    if (occupied && !(flags & f_reuse_stackid)) return -EEXIST;
    write_bucket(b, entries, nr, hash, m->entry_size);
    return id;
}

const MapOps stack_trace_ops = {
    .check = check_stack,
    .layout = layout_stack,
    .init = init_stack,
    .sys_lookup = stack_sys_lookup,
    .sys_update = stack_sys_update,
    .sys_delete = stack_sys_delete,
    .sys_next_key = stack_next_key,
    .check_consistency = stack_check_consistency,
};

}  // namespace ebpfrt::maps
