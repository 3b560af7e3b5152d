// Hash maps: hash, percpu_hash, lru_hash, lru_percpu_hash, hash_of_maps.
//
// Buckets are "nulls" lists of pool element indices (like the kernel's hlist_nulls): a chain ends in
// null_bit | bucket, so a lock-free reader that followed an element which was freed and reused in another
// bucket notices (wrong end marker) and restarts. Writers hold the bucket's lock stripe and change a chain
// only by publishing a fully built element with one release store (insert at head, replace in place) or
// unlinking with one store; so whatever instruction a process dies at, chains are well formed. What a dead
// writer can leave behind is an element that is neither linked nor free, and a wrong count: the next
// locker of that stripe sees EOWNERDEAD, and repair() rebuilds the free list and the count (and the LRU
// list) holding every stripe, from what is reachable.
//
// As in the kernel's preallocated maps, freed elements are reused at once: a program's value pointer stays
// valid memory but may come to show another element. Host lookups copy, then check the element's
// generation (bumped on unlink) and retry, so they never return a mix of two elements.

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint32_t null_bit = 0x80000000u;
constexpr std::uint32_t max_hash_entries = 1u << 30;  // element indices must stay below null_bit
constexpr std::uint32_t max_key_size = 512;           // MAX_BPF_STACK
constexpr std::uint32_t percpu_min_unit_size = 32768;
constexpr std::uint32_t max_lock_stripes = 256;
constexpr std::uint32_t htab_create_flags = map_flags::no_prealloc | map_flags::no_common_lru |
                                            map_flags::numa_node | access_flags | map_flags::zero_seed;

// 16 bytes, so that an element with a u32 key and a u64 value is 32 bytes: half a cache line.
struct HashElem {
    PoolLink link;                    // pool free list; link.aux is the generation, bumped (release) when
                                      // the element is unlinked, before it can be reused
    std::atomic<std::uint32_t> next;  // bucket chain: an index, or null_bit | bucket
    std::uint32_t hash;
    // LRU maps only: LruLinks; then the key at HashMap::key_off, the value at HashMap::value_off
};
static_assert(sizeof(HashElem) == 16);

struct LruLinks {
    std::uint32_t prev, next;        // LRU list, under the map's single lock
    std::atomic<std::uint32_t> ref;  // looked up by a program since the last eviction scan
    std::uint32_t reserved;
};

// A lock stripe and the one spare element it may keep: replacing a key takes the spare and leaves the old
// element as the new spare, so the common update never touches the shared free list.
// The lock is an OwnerLock, not a RobustMutex: an update holds it for a few tens of nanoseconds, and the
// robust pthread mutex (out-of-line calls, robust-list bookkeeping, an atomic on both sides) was half of it.
// Four to a cache line, like the kernel's bucket locks: 256 stripes on their own lines were 16 KiB, which
// with the elements of a 1024-entry map no longer fit in L1, and each update's locked CAS then waited for
// the previous update's stores to miss to L2.
struct alignas(16) HashStripe {
    OwnerLock m;
    std::uint32_t spare;  // no_index, or an element that is neither linked nor free
};

struct HashMap {
    MapHeader h;
    std::uint32_t n_buckets;  // power of two
    std::uint32_t n_locks;    // power of two; bucket b is guarded by stripe b & (n_locks - 1)
    std::uint32_t key_off;
    std::uint32_t value_off;
    std::uint32_t elem_value_bytes;  // value_size; stride * nr_cpus (per-CPU); 8 (hash_of_maps: a map offset)
    std::uint8_t lru, percpu, of_maps, prealloc;
    std::atomic<std::uint32_t> count;         // linked elements (repaired by repair())
    std::atomic<std::uint32_t> needs_repair;  // set by whoever inherits a lock from a dead owner
    std::atomic<std::uint32_t> repairs;       // repairs done (for tests and diagnostics)
    std::uint32_t lru_head, lru_tail;         // most and least recently inserted (under the single lock)
    std::uint64_t buckets_off;                // std::atomic<std::uint32_t>[n_buckets], from the header
    std::uint64_t locks_off;                  // HashStripe[n_locks]
    Pool pool;                                // last: its chunk table follows
};

HashMap* hm(MapHeader* h) noexcept { return body<HashMap>(h); }
std::atomic<std::uint32_t>* buckets(HashMap* m) noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(at(m, m->buckets_off));
}
HashStripe* locks(HashMap* m) noexcept { return reinterpret_cast<HashStripe*>(at(m, m->locks_off)); }
HashElem* elem(HashMap* m, std::uint32_t idx) noexcept {
    return reinterpret_cast<HashElem*>(m->pool.elem(idx));
}
// Elements by index for the length of one operation. A preallocated pool is a single chunk
// (pool_chunk_shift), so its base is loaded once here instead of once per element visited: that load sat on
// the dependency chain of every bucket walk.
class Elems {
public:
    explicit Elems(HashMap* m) noexcept
        : pool_(&m->pool), size_(m->pool.elem_size),
          base_(m->pool.n_chunk_slots == 1 ? m->pool.chunk_table()[0].load(std::memory_order_acquire)
                                           : nullptr) {}
    HashElem* operator[](std::uint32_t idx) const noexcept {
        // No base: several chunks, or the only one is not published yet (then pool_->elem sees it if it
        // was published since, as an index into it implies).
        if (base_) [[likely]]
            return reinterpret_cast<HashElem*>(base_ + std::size_t(idx) * size_);
        return reinterpret_cast<HashElem*>(pool_->elem(idx));
    }

private:
    Pool* pool_;
    std::uint32_t size_;
    std::byte* base_;
};

std::byte* key_of(HashMap* m, HashElem* e) noexcept { return reinterpret_cast<std::byte*>(e) + m->key_off; }
std::byte* value_of(HashMap* m, HashElem* e) noexcept {
    return reinterpret_cast<std::byte*>(e) + m->value_off;
}
LruLinks* lru_of(HashElem* e) noexcept { return reinterpret_cast<LruLinks*>(e + 1); }
std::atomic<std::uint32_t>& gen_of(HashElem* e) noexcept { return e->link.aux; }
// Keys of 4 and 8 bytes (most maps: pids, addresses, ids) are hashed with one 64x64->128-bit multiply by a
// seeded odd constant, folding the halves: every output bit depends on every key bit, and the latency is a
// multiply and a xor instead of hash_bytes' chain of four (it sits in front of the bucket load, on the
// critical path of every lookup and update).
std::uint32_t mul_fold(std::uint64_t w, std::uint64_t seed) noexcept {
    const unsigned __int128 p =
        static_cast<unsigned __int128>(w ^ seed) * ((seed >> 7) ^ 0x9e3779b97f4a7c15ULL | 1);
    const std::uint64_t x = static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
    return static_cast<std::uint32_t>(x ^ (x >> 32));
}
[[gnu::always_inline]] inline std::uint32_t hash_key(HashMap* m, const void* key) noexcept {
    switch (m->h.key_size) {
    case 4: {
        std::uint32_t w;
        std::memcpy(&w, key, 4);
        return mul_fold(w, m->h.seed);
    }
    case 8: {
        std::uint64_t w;
        std::memcpy(&w, key, 8);
        return mul_fold(w, m->h.seed);
    }
    default:
        return hash_bytes(key, m->h.key_size, m->h.seed);
    }
}
std::uint32_t bucket_of(HashMap* m, std::uint32_t hash) noexcept { return hash & (m->n_buckets - 1); }
bool is_null(std::uint32_t idx) noexcept { return idx & null_bit; }

template <std::size_t N>
bool bytes_eq(const void* a, const void* b) noexcept {
    // Fixed-size compares compile to a load and a compare each, instead of a call to memcmp.
    if constexpr (N == 4) {
        std::uint32_t x, y;
        std::memcpy(&x, a, 4);
        std::memcpy(&y, b, 4);
        return x == y;
    } else {
        std::uint64_t x, y;
        std::memcpy(&x, a, 8);
        std::memcpy(&y, b, 8);
        if constexpr (N == 8)
            return x == y;
        else
            return x == y && bytes_eq<N - 8>(static_cast<const std::byte*>(a) + 8,
                                             static_cast<const std::byte*>(b) + 8);
    }
}

bool key_eq(HashMap* m, HashElem* e, std::uint32_t hash, const void* key) noexcept {
    if (e->hash != hash) return false;
    const std::byte* k = key_of(m, e);
    switch (m->h.key_size) {
    case 4:
        return bytes_eq<4>(k, key);
    case 8:
        return bytes_eq<8>(k, key);
    case 16:
        return bytes_eq<16>(k, key);
    default:
        return std::memcmp(k, key, m->h.key_size) == 0;
    }
}

// ---- locking and repair ----

void repair(HashMap* m) noexcept;

void lock_stripe(HashMap* m, std::uint32_t s) noexcept {
    for (;;) {
        if (!locks(m)[s].m.lock()) return;
        // The previous owner died mid-update: rebuild the shared state first (needs every stripe, which
        // we may only take in order, so let this one go).
        m->needs_repair.store(1, std::memory_order_relaxed);
        locks(m)[s].m.unlock();
        repair(m);
    }
}
void unlock_stripe(HashMap* m, std::uint32_t s) noexcept { locks(m)[s].m.unlock(); }

struct StripeGuard {
    StripeGuard(HashMap* m, std::uint32_t bucket) noexcept : m_(m), s_(bucket & (m->n_locks - 1)) {
        lock_stripe(m_, s_);
    }
    ~StripeGuard() { unlock_stripe(m_, s_); }
    StripeGuard(const StripeGuard&) = delete;
    StripeGuard& operator=(const StripeGuard&) = delete;
    HashMap* m_;
    std::uint32_t s_;
};

void lock_all(HashMap* m) noexcept {
    for (std::uint32_t s = 0; s < m->n_locks; ++s)
        if (locks(m)[s].m.lock()) m->needs_repair.store(1, std::memory_order_relaxed);
}
void unlock_all(HashMap* m) noexcept {
    for (std::uint32_t s = m->n_locks; s-- > 0;) locks(m)[s].m.unlock();
}

// LRU list (doubly linked by index, under the map's single lock).
LruLinks* lru(HashMap* m, std::uint32_t idx) noexcept { return lru_of(elem(m, idx)); }
void lru_unlink(HashMap* m, std::uint32_t idx) noexcept {
    LruLinks* l = lru(m, idx);
    if (l->prev != no_index)
        lru(m, l->prev)->next = l->next;
    else
        m->lru_head = l->next;
    if (l->next != no_index)
        lru(m, l->next)->prev = l->prev;
    else
        m->lru_tail = l->prev;
    l->prev = l->next = no_index;
}
void lru_push_head(HashMap* m, std::uint32_t idx) noexcept {
    LruLinks* l = lru(m, idx);
    l->prev = no_index;
    l->next = m->lru_head;
    if (m->lru_head != no_index)
        lru(m, m->lru_head)->prev = idx;
    else
        m->lru_tail = idx;
    m->lru_head = idx;
}

// Marks every linked element live and returns how many; cuts a chain that is not well formed (which the
// update protocol never produces) so that the map stays usable.
std::uint32_t mark_linked(HashMap* m, PoolMarker& marks, std::string* problem) noexcept {
    std::uint32_t linked = 0;
    for (std::uint32_t b = 0; b < m->n_buckets; ++b) {
        std::atomic<std::uint32_t>* link = &buckets(m)[b];
        std::uint32_t idx = link->load(std::memory_order_relaxed);
        while (!is_null(idx)) {
            if (!marks.mark(idx) || bucket_of(m, elem(m, idx)->hash) != b) {
                if (problem && problem->empty())
                    *problem = fmt::format("bucket {} has a bad element {}", b, idx);
                link->store(null_bit | b, std::memory_order_release);
                break;
            }
            HashElem* e = elem(m, idx);
            ++linked;
            link = &e->next;
            idx = link->load(std::memory_order_relaxed);
        }
        if (is_null(idx) && idx != (null_bit | b)) {
            if (problem && problem->empty())
                *problem = fmt::format("bucket {} ends in the marker of another", b);
            link->store(null_bit | b, std::memory_order_release);
        }
    }
    return linked;
}

void repair(HashMap* m) noexcept {
    lock_all(m);
    if (m->needs_repair.load(std::memory_order_relaxed)) {
        PoolMarker marks(&m->pool);
        std::uint32_t linked = mark_linked(m, marks, nullptr);
        if (m->lru) {
            // The order is lost; rebuild it bucket by bucket, all unreferenced.
            m->lru_head = m->lru_tail = no_index;
            for (std::uint32_t b = 0; b < m->n_buckets; ++b)
                for (std::uint32_t idx = buckets(m)[b].load(); !is_null(idx);
                     idx = elem(m, idx)->next.load()) {
                    lru(m, idx)->ref.store(0, std::memory_order_relaxed);
                    lru_push_head(m, idx);
                }
        }
        // A writer that died in write_in_place left its element's generation odd: the value is what it
        // wrote so far (as with an array map), and readers must stop treating it as being written.
        for (std::uint32_t b = 0; b < m->n_buckets; ++b)
            for (std::uint32_t idx = buckets(m)[b].load(); !is_null(idx); idx = elem(m, idx)->next.load()) {
                std::atomic<std::uint32_t>& g = gen_of(elem(m, idx));
                if (g.load(std::memory_order_relaxed) & 1) g.fetch_add(1, std::memory_order_relaxed);
            }
        // Spares, and elements a dead owner held in flight, go back to the free list.
        pool_rebuild_free(&m->pool);
        for (std::uint32_t s = 0; s < m->n_locks; ++s) locks(m)[s].spare = no_index;
        m->count.store(linked, std::memory_order_relaxed);
        m->needs_repair.store(0, std::memory_order_relaxed);
        m->repairs.fetch_add(1, std::memory_order_relaxed);
    }
    unlock_all(m);
}

// ---- lookup ----

// Lock-free search. Restarts when the walk ends in another bucket's marker (we followed a reused element).
// With `gen`, also the element's generation, read before its key was compared: a caller that copies the
// value and finds the generation unchanged afterwards copied the element it matched.
HashElem* find(HashMap* m, const void* key, std::uint32_t hash, std::uint32_t* gen = nullptr) noexcept {
    std::uint32_t b = bucket_of(m, hash);
    std::uint32_t limit = m->pool.capacity + 1;
    Elems elems(m);
    for (;;) {
        std::uint32_t idx = buckets(m)[b].load(std::memory_order_acquire);
        std::uint32_t steps = 0;
        while (!is_null(idx) && steps++ < limit) {
            HashElem* e = elems[idx];
            if (gen) *gen = gen_of(e).load(std::memory_order_acquire);
            if (key_eq(m, e, hash, key)) return e;
            idx = e->next.load(std::memory_order_acquire);
        }
        if (idx == (null_bit | b)) return nullptr;
    }
}

// Under the stripe lock: the element and the link that points to it.
[[gnu::always_inline]] inline HashElem* find_locked(HashMap* m, const Elems& elems, std::uint32_t b,
                                                    const void* key, std::uint32_t hash,
                                                    std::atomic<std::uint32_t>** link) noexcept {
    std::atomic<std::uint32_t>* l = &buckets(m)[b];
    for (std::uint32_t idx = l->load(std::memory_order_relaxed); !is_null(idx);
         idx = l->load(std::memory_order_relaxed)) {
        HashElem* e = elems[idx];
        if (key_eq(m, e, hash, key)) {
            *link = l;
            return e;
        }
        l = &e->next;
    }
    return nullptr;
}

void mark_ref(HashMap* m, HashElem* e) noexcept {
    // Like bpf_lru_node_set_ref: only write when it changes, to keep the line shared.
    if (m->lru && !lru_of(e)->ref.load(std::memory_order_relaxed))
        lru_of(e)->ref.store(1, std::memory_order_relaxed);
}

void* hash_lookup(MapHeader* h, const void* key) noexcept {
    HashMap* m = hm(h);
    HashElem* e = find(m, key, hash_key(m, key));
    if (!e) return nullptr;
    mark_ref(m, e);
    if (m->percpu) return value_of(m, e) + std::size_t(current_cpu(h->nr_cpus)) * h->value_stride;
    if (m->of_maps) {
        std::uint64_t off;
        std::memcpy(&off, value_of(m, e), 8);
        return map_at(h->registry.get(), off);
    }
    return value_of(m, e);
}

void* hash_lookup_percpu(MapHeader* h, const void* key, std::uint32_t cpu) noexcept {
    HashMap* m = hm(h);
    HashElem* e = find(m, key, hash_key(m, key));
    if (!e) return nullptr;
    mark_ref(m, e);
    return value_of(m, e) + std::size_t(cpu) * h->value_stride;
}

// The syscall's value: all CPUs, a map id, or the value.
void copy_out(HashMap* m, HashElem* e, void* out, std::uint64_t flags = 0) noexcept {
    if (m->of_maps) {
        std::uint64_t off;
        std::memcpy(&off, value_of(m, e), 8);
        MapHeader* inner = map_at(m->h.registry.get(), off);
        std::uint32_t id = inner ? inner->id : 0;
        std::memcpy(out, &id, 4);
    } else if (m->percpu) {
        std::memcpy(out, value_of(m, e), m->elem_value_bytes);
    } else {
        copy_value_out(&m->h, out, value_of(m, e), flags);
    }
}

long hash_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t flags) noexcept {
    HashMap* m = hm(h);
    std::uint32_t hash = hash_key(m, key);
    for (;;) {
        std::uint32_t g = 0;
        HashElem* e = find(m, key, hash, &g);
        if (!e) return -ENOENT;
        if (g & 1) [[unlikely]] {
            // A value write in progress, or left half done by a writer that died (the lock's next owner
            // repairs that): read under the lock instead of spinning on a generation that may stay odd.
            const std::uint32_t b = bucket_of(m, hash);
            StripeGuard guard(m, b);
            std::atomic<std::uint32_t>* link = nullptr;
            e = find_locked(m, Elems(m), b, key, hash, &link);
            if (!e) return -ENOENT;
            copy_out(m, e, value, flags);
            return 0;
        }
        copy_out(m, e, value, flags);
        // seqlock-style check: if the element was unlinked meanwhile, what we copied may be torn.
        std::atomic_thread_fence(std::memory_order_acquire);
        if (gen_of(e).load(std::memory_order_relaxed) == g) return 0;
    }
}

// ---- update ----

enum class Source { program, syscall };

// Fills a fresh element's value. Per-CPU from a program: this CPU's slot, the others zero (pcpu_init_value).
long fill_value(HashMap* m, HashElem* e, const void* value, Source src, MapHeader** inner) noexcept {
    std::byte* v = value_of(m, e);
    if (m->of_maps) {
        std::uint64_t off = map_offset(*inner);
        std::memcpy(v, &off, 8);
    } else if (m->percpu) {
        std::uint32_t stride = m->h.value_stride;
        if (src == Source::syscall) {
            const auto* s = static_cast<const std::byte*>(value);
            for (std::uint32_t c = 0; c < m->h.nr_cpus; ++c) {
                std::memcpy(v + std::size_t(c) * stride, s + std::size_t(c) * stride, m->h.value_size);
                std::memset(v + std::size_t(c) * stride + m->h.value_size, 0, stride - m->h.value_size);
            }
        } else {
            std::memset(v, 0, m->elem_value_bytes);
            std::memcpy(v + std::size_t(current_cpu(m->h.nr_cpus)) * stride, value, m->h.value_size);
        }
    } else {
        copy_value_in(&m->h, v, value);
        if (m->h.spin_lock_off >= 0) std::memset(v + m->h.spin_lock_off, 0, 4);  // a new element's lock is free
    }
    return 0;
}

// Per-CPU maps update an existing element in place, as the kernel does.
void update_in_place(HashMap* m, HashElem* e, const void* value, Source src) noexcept {
    std::byte* v = value_of(m, e);
    std::uint32_t stride = m->h.value_stride;
    if (src == Source::syscall) {
        const auto* s = static_cast<const std::byte*>(value);
        for (std::uint32_t c = 0; c < m->h.nr_cpus; ++c)
            std::memcpy(v + std::size_t(c) * stride, s + std::size_t(c) * stride, m->h.value_size);
    } else {
        std::memcpy(v + std::size_t(current_cpu(m->h.nr_cpus)) * stride, value, m->h.value_size);
    }
}

// Takes an element for a new entry in stripe `st`: its spare if it has one, else one from the pool.
std::uint32_t take_element(HashMap* m, HashStripe& st, bool* oom) noexcept {
    if (st.spare != no_index) {
        std::uint32_t idx = st.spare;
        st.spare = no_index;
        return idx;
    }
    return pool_pop(&m->h, &m->pool, oom);
}

// Recycles an unlinked element: it becomes the stripe's spare, or goes back to the pool. Only preallocated
// pools keep spares: their capacity (max_entries + one per stripe) covers every stripe holding one, while
// a no_prealloc pool that cannot grow (arena full) must not leave free elements stranded in other stripes.
void recycle(HashMap* m, HashStripe& st, std::uint32_t idx) noexcept {
    if (m->prealloc && st.spare == no_index)
        st.spare = idx;
    else
        pool_push(&m->pool, idx);
}

// Readers that copied from e compare its generation before and after; the fence orders the bump before
// any write by the element's next owner. The generation is even when no write is in progress: retiring
// adds 2, an in-place value write makes it odd for its duration (write_in_place).
void retire(HashElem* e) noexcept {
    // Only the stripe's lock holder writes the generation, so a plain increment (no locked RMW) will do.
    gen_of(e).store(gen_of(e).load(std::memory_order_relaxed) + 2, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
}

// Replaces a linked element's value where it is, as a seqlock writer (caller holds the stripe): host readers
// that copied while the generation was odd, or changed, copy again. Programs see the new value through
// pointers they hold, as with BPF_F_LOCK updates and array maps; the element is not swapped, so an update
// of an existing key writes one line instead of filling the spare, relinking, and recycling the old one.
// A bpf_spin_lock in the value is left as it is; update_flags::lock copies holding it.
void write_in_place(HashMap* m, HashElem* e, const void* value, std::uint64_t flags) noexcept {
    const std::uint32_t g = gen_of(e).load(std::memory_order_relaxed);
    gen_of(e).store(g + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    copy_value_in(&m->h, value_of(m, e), value, flags);
    gen_of(e).store(g + 2, std::memory_order_release);
}

MapHeader* inner_of(HashMap* m, HashElem* e) noexcept {
    if (!m->of_maps) return nullptr;
    std::uint64_t off;
    std::memcpy(&off, value_of(m, e), 8);
    return map_at(m->h.registry.get(), off);
}

// Unlinks e (`link` points to it) and recycles it. Caller holds the stripe. Returns the inner map a
// hash_of_maps element referenced, to be released once the lock is dropped.
MapHeader* unlink_and_free(HashMap* m, HashStripe& st, std::atomic<std::uint32_t>* link, HashElem* e,
                           std::uint32_t idx) noexcept {
    MapHeader* inner = inner_of(m, e);
    link->store(e->next.load(std::memory_order_relaxed), std::memory_order_release);
    retire(e);
    if (m->lru) lru_unlink(m, idx);
    recycle(m, st, idx);
    m->count.fetch_sub(1, std::memory_order_relaxed);
    return inner;
}

// LRU: takes the least recently used element out of the map for reuse, giving referenced ones a second
// chance (the kernel's LRU rotates referenced nodes to the active list). Caller holds the single lock.
std::uint32_t evict(HashMap* m) noexcept {
    std::uint32_t budget = 2 * m->count.load(std::memory_order_relaxed) + 2;
    while (m->lru_tail != no_index && budget--) {
        std::uint32_t idx = m->lru_tail;
        HashElem* e = elem(m, idx);
        if (lru_of(e)->ref.load(std::memory_order_relaxed)) {
            lru_of(e)->ref.store(0, std::memory_order_relaxed);
            lru_unlink(m, idx);
            lru_push_head(m, idx);
            continue;
        }
        std::uint32_t b = bucket_of(m, e->hash);
        std::atomic<std::uint32_t>* link = &buckets(m)[b];
        while (link->load(std::memory_order_relaxed) != idx) {
            std::uint32_t cur = link->load(std::memory_order_relaxed);
            if (is_null(cur)) return no_index;  // not linked: the list is stale (repair rebuilds it)
            link = &elem(m, cur)->next;
        }
        link->store(e->next.load(std::memory_order_relaxed), std::memory_order_release);
        retire(e);
        lru_unlink(m, idx);
        m->count.fetch_sub(1, std::memory_order_relaxed);
        return idx;
    }
    return no_index;
}

long do_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags, Source src) noexcept {
    HashMap* m = hm(h);
    if ((flags & ~update_flags::lock) > update_flags::exist) return -EINVAL;
    if ((flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;  // no bpf_spin_lock to take
    const std::uint64_t mode = flags & ~update_flags::lock;
    MapHeader* inner = nullptr;
    if (m->of_maps) {
        if (src == Source::program) return -EINVAL;  // programs cannot update map-in-map (verifier rule)
        std::uint32_t id;
        std::memcpy(&id, value, 4);
        inner = acquire_map_by_id(h->registry.get(), id);
        if (!inner) return -EBADF;
        if (!inner_map_compatible(h, inner)) {
            release_map(inner);
            return -EINVAL;
        }
    }
    std::uint32_t hash = hash_key(m, key);
    std::uint32_t b = bucket_of(m, hash);
    MapHeader* drop = nullptr;
    long rc = 0;
    {
        StripeGuard guard(m, b);
        HashStripe& st = locks(m)[guard.s_];
        std::atomic<std::uint32_t>* link = nullptr;
        Elems elems(m);
        HashElem* old = find_locked(m, elems, b, key, hash, &link);
        if (old && mode == update_flags::noexist) {
            rc = -EEXIST;
        } else if (!old && mode == update_flags::exist) {
            rc = -ENOENT;
        } else if (old && m->percpu) {
            update_in_place(m, old, value, src);
            mark_ref(m, old);
        } else if (old && !m->lru && !m->of_maps) {
            write_in_place(m, old, value, flags);
        } else {
            std::uint32_t idx = no_index;
            bool oom = false;
            if (!old) {
                if (m->lru && m->count.load(std::memory_order_relaxed) >= h->max_entries) {
                    idx = evict(m);  // an LRU map is never full: the least recently used element goes
                } else if (!m->lru && m->count.fetch_add(1, std::memory_order_relaxed) >= h->max_entries) {
                    m->count.fetch_sub(1, std::memory_order_relaxed);
                    rc = -E2BIG;
                }
            }
            if (rc == 0 && idx == no_index) {
                // The pool holds max_entries + one element per stripe, so with the count checked above
                // this only fails when a no_prealloc pool cannot grow.
                idx = take_element(m, st, &oom);
                if (idx == no_index) {
                    if (!old && !m->lru) m->count.fetch_sub(1, std::memory_order_relaxed);
                    rc = oom ? -ENOMEM : -E2BIG;
                }
            }
            if (rc == 0) {
                HashElem* e = elems[idx];
                e->hash = hash;
                if (m->lru) lru_of(e)->ref.store(0, std::memory_order_relaxed);
                copy_bytes(key_of(m, e), key, h->key_size);
                fill_value(m, e, value, src, &inner);
                inner = nullptr;  // the element owns the reference now
                if (old) {
                    // Replace in place: one store swaps old for the complete new element.
                    std::uint32_t old_idx = link->load(std::memory_order_relaxed);
                    e->next.store(old->next.load(std::memory_order_relaxed), std::memory_order_relaxed);
                    drop = inner_of(m, old);
                    link->store(idx, std::memory_order_release);
                    retire(old);
                    if (m->lru) lru_unlink(m, old_idx);
                    recycle(m, st, old_idx);
                } else {
                    e->next.store(buckets(m)[b].load(std::memory_order_relaxed), std::memory_order_relaxed);
                    buckets(m)[b].store(idx, std::memory_order_release);
                    if (m->lru) m->count.fetch_add(1, std::memory_order_relaxed);
                }
                if (m->lru) lru_push_head(m, idx);
            }
        }
    }
    if (inner) release_map(inner);  // not stored (error)
    if (drop) release_map(drop);
    return rc;
}

long hash_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    return do_update(h, key, value, flags, Source::program);
}
long hash_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    return do_update(h, key, value, flags, Source::syscall);
}

long hash_delete(MapHeader* h, const void* key) noexcept {
    HashMap* m = hm(h);
    std::uint32_t hash = hash_key(m, key);
    std::uint32_t b = bucket_of(m, hash);
    MapHeader* drop = nullptr;
    {
        StripeGuard guard(m, b);
        std::atomic<std::uint32_t>* link = nullptr;
        HashElem* e = find_locked(m, Elems(m), b, key, hash, &link);
        if (!e) return -ENOENT;
        drop = unlink_and_free(m, locks(m)[guard.s_], link, e, link->load(std::memory_order_relaxed));
    }
    if (drop) release_map(drop);
    return 0;
}

long hash_lookup_and_delete(MapHeader* h, const void* key, void* value, std::uint64_t flags) noexcept {
    HashMap* m = hm(h);
    std::uint32_t hash = hash_key(m, key);
    std::uint32_t b = bucket_of(m, hash);
    MapHeader* drop = nullptr;
    {
        StripeGuard guard(m, b);
        std::atomic<std::uint32_t>* link = nullptr;
        HashElem* e = find_locked(m, Elems(m), b, key, hash, &link);
        if (!e) return -ENOENT;
        copy_out(m, e, value, flags);
        drop = unlink_and_free(m, locks(m)[guard.s_], link, e, link->load(std::memory_order_relaxed));
    }
    if (drop) release_map(drop);
    return 0;
}

// htab_map_get_next_key: the element after `key` in its bucket, else the first of the next non-empty
// bucket; a missing key restarts from the first bucket.
long hash_next_key(MapHeader* h, const void* key, void* next) noexcept {
    HashMap* m = hm(h);
    std::uint32_t b = 0;
    if (key) {
        std::uint32_t hash = hash_key(m, key);
        if (HashElem* e = find(m, key, hash)) {
            std::uint32_t n = e->next.load(std::memory_order_acquire);
            if (!is_null(n)) {
                std::memcpy(next, key_of(m, elem(m, n)), h->key_size);
                return 0;
            }
            b = bucket_of(m, hash) + 1;
        }
    }
    for (; b < m->n_buckets; ++b) {
        std::uint32_t idx = buckets(m)[b].load(std::memory_order_acquire);
        if (!is_null(idx)) {
            std::memcpy(next, key_of(m, elem(m, idx)), h->key_size);
            return 0;
        }
    }
    return -ENOENT;
}

long hash_for_each(MapHeader* h, ForEachCallback cb, void* ctx) noexcept {
    HashMap* m = hm(h);
    if (m->of_maps) return -EINVAL;
    std::uint32_t cpu = m->percpu ? current_cpu(h->nr_cpus) : 0;
    long n = 0;
    for (std::uint32_t b = 0; b < m->n_buckets; ++b) {
        std::uint32_t idx = buckets(m)[b].load(std::memory_order_acquire);
        while (!is_null(idx)) {
            HashElem* e = elem(m, idx);
            ++n;
            std::byte* v = value_of(m, e) + (m->percpu ? std::size_t(cpu) * h->value_stride : 0);
            if (cb(h, key_of(m, e), v, ctx)) return n;
            idx = e->next.load(std::memory_order_acquire);
        }
    }
    return n;
}

// htab_map_lookup_batch: whole buckets under their lock; the cursor is the next bucket.
long hash_lookup_batch(MapHeader* h, BatchCursor& cursor, void* keys, void* values, std::uint32_t* count,
                       bool and_delete, std::uint64_t elem_flags) noexcept {
    HashMap* m = hm(h);
    std::uint32_t max = *count;
    *count = 0;
    if (cursor.done || cursor.position >= m->n_buckets) {
        cursor.done = true;
        return -ENOENT;
    }
    std::uint32_t vs = sys_value_size(h);
    std::uint32_t n = 0;
    auto b = static_cast<std::uint32_t>(cursor.position);
    for (; b < m->n_buckets; ++b) {
        if (is_null(buckets(m)[b].load(std::memory_order_acquire))) continue;
        StripeGuard guard(m, b);
        std::uint32_t in_bucket = 0;
        for (std::uint32_t idx = buckets(m)[b].load(); !is_null(idx); idx = elem(m, idx)->next.load())
            ++in_bucket;
        if (in_bucket > max - n) {
            if (n == 0) return -ENOSPC;
            break;
        }
        std::atomic<std::uint32_t>* link = &buckets(m)[b];
        for (std::uint32_t idx = link->load(); !is_null(idx);) {
            HashElem* e = elem(m, idx);
            std::memcpy(static_cast<std::byte*>(keys) + std::size_t(n) * h->key_size, key_of(m, e),
                        h->key_size);
            copy_out(m, e, static_cast<std::byte*>(values) + std::size_t(n) * vs, elem_flags);
            ++n;
            std::uint32_t next = e->next.load(std::memory_order_relaxed);
            if (and_delete) {
                if (MapHeader* d = unlink_and_free(m, locks(m)[guard.s_], link, e, idx)) release_map(d);
            } else {
                link = &e->next;
            }
            idx = next;
        }
    }
    cursor.position = b;
    if (b >= m->n_buckets) cursor.done = true;
    *count = n;
    return 0;
}

std::string hash_check_consistency(MapHeader* h) {
    HashMap* m = hm(h);
    repair(m);  // also clears any needs_repair left by a dead owner
    lock_all(m);
    std::vector<std::uint8_t> states;
    std::string problem = pool_free_states(&m->pool, states);
    std::uint32_t free_n = static_cast<std::uint32_t>(std::count(states.begin(), states.end(), 1));
    PoolMarker marks(&m->pool, &states);
    std::uint32_t linked = problem.empty() ? mark_linked(m, marks, &problem) : 0;
    std::uint32_t count = m->count.load();
    if (problem.empty() && linked != count)
        problem = fmt::format("count is {} but {} elements are linked", count, linked);
    if (problem.empty() && linked > h->max_entries)
        problem = fmt::format("{} elements linked, max_entries {}", linked, h->max_entries);
    std::uint32_t spares = 0;
    for (std::uint32_t s = 0; s < m->n_locks && problem.empty(); ++s) {
        std::uint32_t sp = locks(m)[s].spare;
        if (sp == no_index) continue;
        if (sp >= states.size() || states[sp] != 0)
            problem = fmt::format("stripe {} has a bad spare {}", s, sp);
        ++spares;
    }
    if (problem.empty() && free_n + linked + spares != m->pool.allocated())
        problem = fmt::format("{} free + {} linked + {} spare != {} allocated elements (leak)", free_n,
                              linked, spares, m->pool.allocated());
    if (problem.empty() && m->lru) {
        std::uint32_t n = 0, prev = no_index;
        for (std::uint32_t idx = m->lru_head; idx != no_index && n <= linked; idx = lru(m, idx)->next, ++n) {
            if (!marks.live(idx))
                problem = fmt::format("LRU list holds unlinked element {}", idx);
            else if (lru(m, idx)->prev != prev)
                problem = "LRU list back links are broken";
            prev = idx;
            if (!problem.empty()) break;
        }
        if (problem.empty() && (n != linked || m->lru_tail != prev))
            problem = fmt::format("LRU list has {} elements, {} are linked", n, linked);
    }
    unlock_all(m);
    return problem;
}

// ---- creation ----

std::string check_hash(const MapSpec& s, int* err) {
    bool lru = s.type == MapType::lru_hash || s.type == MapType::lru_percpu_hash;
    bool percpu = s.type == MapType::percpu_hash || s.type == MapType::lru_percpu_hash;
    if (auto why = check_flags(s, htab_create_flags, err); !why.empty()) return why;
    if (lru && (s.flags & map_flags::no_prealloc)) {
        *err = EOPNOTSUPP;
        return fmt::format("{} cannot be no_prealloc", to_string(s.type));
    }
    if ((s.flags & map_flags::no_common_lru) && !lru) {
        *err = EINVAL;
        return fmt::format("flag no_common_lru is only valid for LRU maps, not {}", to_string(s.type));
    }
    if (s.key_size == 0) {
        *err = EINVAL;
        return fmt::format("key size 0 is invalid for {}", to_string(s.type));
    }
    if (auto why = check_nonzero(s, true, true, err); !why.empty()) return why;
    if (s.key_size > max_key_size) {
        *err = E2BIG;
        return fmt::format("key size {} is too large for {} (at most {})", s.key_size, to_string(s.type),
                           max_key_size);
    }
    if (s.max_entries > max_hash_entries) {
        *err = E2BIG;
        return fmt::format("max_entries {} is too large for {} (at most {})", s.max_entries,
                           to_string(s.type), max_hash_entries);
    }
    if (percpu && round_up(s.value_size, 8) > percpu_min_unit_size) {
        *err = E2BIG;
        return fmt::format("value size {} is too large for {} (at most {})", s.value_size, to_string(s.type),
                           percpu_min_unit_size);
    }
    if (s.type == MapType::hash_of_maps) {
        if (s.value_size != 4) {
            *err = EINVAL;
            return fmt::format("value size {} is invalid for hash_of_maps (must be 4)", s.value_size);
        }
        if (!s.inner) {
            *err = EINVAL;
            return "hash_of_maps needs an inner map spec";
        }
        if (s.inner->type == MapType::array_of_maps || s.inner->type == MapType::hash_of_maps ||
            !ops_for(s.inner->type)) {
            *err = EINVAL;
            return fmt::format("inner map type {} is invalid for hash_of_maps", to_string(s.inner->type));
        }
    }
    return {};
}

struct Geometry {
    std::uint32_t n_buckets, n_locks, key_off, value_off, elem_value_bytes, elem_size, capacity;
    std::uint64_t buckets_off, locks_off, header_bytes;
};

Geometry geometry(const MapSpec& s, std::uint32_t nr_cpus) noexcept {
    Geometry g{};
    bool lru = s.type == MapType::lru_hash || s.type == MapType::lru_percpu_hash;
    bool percpu = s.type == MapType::percpu_hash || s.type == MapType::lru_percpu_hash;
    g.n_buckets = static_cast<std::uint32_t>(next_pow2(s.max_entries));
    // LRU maps evict across buckets, so they take one lock (ordering several stripes would deadlock).
    g.n_locks = lru ? 1 : (g.n_buckets < max_lock_stripes ? g.n_buckets : max_lock_stripes);
    g.key_off = sizeof(HashElem) + (lru ? sizeof(LruLinks) : 0);
    g.value_off = g.key_off + static_cast<std::uint32_t>(round_up(s.key_size, 8));
    g.elem_value_bytes = s.type == MapType::hash_of_maps ? 8
                         : percpu ? static_cast<std::uint32_t>(round_up(s.value_size, 8)) * nr_cpus
                                  : s.value_size;
    g.elem_size = static_cast<std::uint32_t>(round_up(std::uint64_t{g.value_off} + g.elem_value_bytes, 8));
    // Room for every entry plus one element in flight per stripe (a replacement is built before the old
    // element is freed), so an update of an existing key never fails on a full map.
    g.capacity = s.max_entries + g.n_locks;
    std::uint32_t n_slots = static_cast<std::uint32_t>(
        (std::uint64_t{g.capacity} +
         (1u << pool_chunk_shift(g.capacity, !(s.flags & map_flags::no_prealloc))) - 1) >>
        pool_chunk_shift(g.capacity, !(s.flags & map_flags::no_prealloc)));
    std::uint64_t off = round_up(offsetof(HashMap, pool) + Pool::bytes(n_slots), 64);
    g.locks_off = off;
    off += std::uint64_t{g.n_locks} * sizeof(HashStripe);
    g.buckets_off = round_up(off, 64);
    g.header_bytes = g.buckets_off + std::uint64_t{g.n_buckets} * 4;
    return g;
}

void layout_hash(const MapSpec& s, std::uint32_t nr_cpus, MapLayout& out) {
    Geometry g = geometry(s, nr_cpus);
    out.header_bytes = g.header_bytes;
    out.header_align = 64;
    out.extra_bytes = pool_chunk_bytes(g.elem_size, g.capacity, &out.extra_allocs);
}

long init_hash(MapHeader* h, const MapSpec& s) noexcept {
    HashMap* m = hm(h);
    Geometry g = geometry(s, h->nr_cpus);
    m->n_buckets = g.n_buckets;
    m->n_locks = g.n_locks;
    m->key_off = g.key_off;
    m->value_off = g.value_off;
    m->elem_value_bytes = g.elem_value_bytes;
    m->lru = s.type == MapType::lru_hash || s.type == MapType::lru_percpu_hash;
    m->percpu = s.type == MapType::percpu_hash || s.type == MapType::lru_percpu_hash;
    m->of_maps = s.type == MapType::hash_of_maps;
    m->prealloc = !(s.flags & map_flags::no_prealloc);
    new (&m->count) std::atomic<std::uint32_t>(0);
    new (&m->needs_repair) std::atomic<std::uint32_t>(0);
    new (&m->repairs) std::atomic<std::uint32_t>(0);
    m->lru_head = m->lru_tail = no_index;
    m->buckets_off = g.buckets_off;
    m->locks_off = g.locks_off;
    for (std::uint32_t s2 = 0; s2 < m->n_locks; ++s2) {
        new (&locks(m)[s2]) HashStripe();
        locks(m)[s2].m.init();
        locks(m)[s2].spare = no_index;
    }
    for (std::uint32_t b = 0; b < m->n_buckets; ++b)
        new (&buckets(m)[b]) std::atomic<std::uint32_t>(null_bit | b);
    return pool_init(h, &m->pool, g.elem_size, g.capacity, !(s.flags & map_flags::no_prealloc));
}

void hash_release(MapHeader* h) noexcept {
    HashMap* m = hm(h);
    if (!m->of_maps) return;
    for (std::uint32_t b = 0; b < m->n_buckets; ++b)
        for (std::uint32_t idx = buckets(m)[b].load(); !is_null(idx); idx = elem(m, idx)->next.load()) {
            std::uint64_t off;
            std::memcpy(&off, value_of(m, elem(m, idx)), 8);
            if (MapHeader* inner = map_at(h->registry.get(), off)) release_map(inner);
        }
}

}  // namespace

OwnerLock& hash_stripe_lock(MapHeader* h, const void* key) noexcept {
    HashMap* m = hm(h);
    return locks(m)[bucket_of(m, hash_key(m, key)) & (m->n_locks - 1)].m;
}
std::uint32_t hash_repairs(MapHeader* h) noexcept { return hm(h)->repairs.load(std::memory_order_relaxed); }
bool hash_value_window(MapHeader* h, ValueWindow* out) noexcept {
    HashMap* m = hm(h);
    if (m->percpu || m->of_maps || !m->prealloc || m->pool.n_chunk_slots != 1) return false;
    std::byte* base = m->pool.chunk_table()[0].load(std::memory_order_acquire);
    if (base == nullptr) return false;
    *out = {base, m->pool.capacity, m->pool.elem_size, m->value_off, h->value_size};
    return true;
}

std::atomic<std::uint32_t>* hash_generation(MapHeader* h, const void* key) noexcept {
    HashMap* m = hm(h);
    HashElem* e = find(m, key, hash_key(m, key));
    return e ? &gen_of(e) : nullptr;
}

namespace {
// Every hash type shares the code; the flags in the body (lru, percpu, of_maps) select the behaviour.
constexpr MapOps make_hash_ops(void* (*percpu_lookup)(MapHeader*, const void*, std::uint32_t) noexcept) {
    MapOps o{
        .check = check_hash,
        .layout = layout_hash,
        .init = init_hash,
        .lookup = hash_lookup,
        .update = hash_update,
        .erase = hash_delete,
        .for_each = hash_for_each,
        .sys_lookup = hash_sys_lookup,
        .sys_update = hash_sys_update,
        .sys_delete = hash_delete,
        .sys_next_key = hash_next_key,
        .sys_lookup_and_delete = hash_lookup_and_delete,
        .lookup_batch = hash_lookup_batch,
        .check_consistency = hash_check_consistency,
        .release = hash_release,
    };
    o.lookup_percpu = percpu_lookup;
    return o;
}
}  // namespace

const MapOps hash_ops = make_hash_ops(nullptr);
const MapOps percpu_hash_ops = make_hash_ops(hash_lookup_percpu);
const MapOps lru_hash_ops = make_hash_ops(nullptr);
const MapOps lru_percpu_hash_ops = make_hash_ops(hash_lookup_percpu);
const MapOps hash_of_maps_ops = make_hash_ops(nullptr);

}  // namespace ebpfrt::maps
