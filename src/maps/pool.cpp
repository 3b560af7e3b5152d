// Element pools: fixed-size elements in chunks, a tagged lock-free free list. See layout.hpp.

#include <new>

#include "maps/layout.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint64_t pack(std::uint32_t tag, std::uint32_t idx) noexcept {
    return (std::uint64_t{tag} << 32) | idx;
}
constexpr std::uint32_t head_idx(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }
constexpr std::uint32_t head_tag(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h >> 32); }

PoolLink* link_of(Pool* p, std::uint32_t idx) noexcept { return reinterpret_cast<PoolLink*>(p->elem(idx)); }

// Pushes the chain first..last (already linked through free_next) onto the free list.
void push_chain(Pool* p, std::uint32_t first, std::uint32_t last) noexcept {
    std::uint64_t head = p->free_head.load(std::memory_order_acquire);
    for (;;) {
        link_of(p, last)->free_next.store(head_idx(head), std::memory_order_relaxed);
        // release: the element's contents (and its chunk) are visible to whoever pops it
        if (p->free_head.compare_exchange_weak(head, pack(head_tag(head) + 1, first),
                                               std::memory_order_release, std::memory_order_acquire))
            return;
    }
}

// Adds one chunk; caller holds grow_lock. false when at capacity (*oom false) or the arena is full (*oom
// true). A grower that died left chunk c either unallocated or allocated and in the table (the heap does
// both at once) but unpublished: then it is built again here. One that died after publishing it may have
// left its elements off the free list; the map's repair (the grower also held a map lock) finds them.
bool grow(MapHeader* owner, Pool* p, bool* oom) noexcept {
    std::uint32_t c = p->n_chunks.load(std::memory_order_relaxed);
    if (c >= p->n_chunk_slots) return false;
    std::uint32_t n = p->chunk_elems(c);
    std::size_t bytes = std::size_t(n) * p->elem_size;
    std::byte* mem = p->chunk_table()[c].load(std::memory_order_acquire);
    if (!mem) mem = static_cast<std::byte*>(arena_allocate(owner, bytes, 64, &p->chunk_table()[c]));
    if (!mem) {
        if (oom) *oom = true;
        return false;
    }
    std::memset(mem, 0, bytes);
    std::uint32_t base = c << p->chunk_shift;
    for (std::uint32_t i = 0; i < n; ++i) {
        auto* l = new (mem + std::size_t(i) * p->elem_size) PoolLink();
        l->free_next.store(i + 1 < n ? base + i + 1 : no_index, std::memory_order_relaxed);
    }
    // Publish the chunk before any of its indices can be seen (readers check n_chunks, then load it).
    p->n_chunks.store(c + 1, std::memory_order_release);
    push_chain(p, base, base + n - 1);
    return true;
}

}  // namespace

std::uint32_t pool_chunk_shift(std::uint32_t capacity, bool preallocate) noexcept {
    std::uint64_t per = preallocate ? next_pow2(capacity ? capacity : 1) : next_pow2(capacity) / 16;
    if (!preallocate) per = per < 16 ? 16 : (per > 4096 ? 4096 : per);
    std::uint32_t shift = 0;
    while ((std::uint64_t{1} << shift) < per) ++shift;
    return shift;
}

long pool_init(MapHeader* owner, Pool* p, std::uint32_t elem_size, std::uint32_t capacity,
               bool preallocate) noexcept {
    p->elem_size = elem_size;
    p->capacity = capacity;
    p->chunk_shift = pool_chunk_shift(capacity, preallocate);
    p->n_chunk_slots =
        static_cast<std::uint32_t>((std::uint64_t{capacity} + (1u << p->chunk_shift) - 1) >> p->chunk_shift);
    new (&p->n_chunks) std::atomic<std::uint32_t>(0);
    new (&p->free_head) std::atomic<std::uint64_t>(pack(0, no_index));
    p->grow_lock.init();
    for (std::uint32_t c = 0; c < p->n_chunk_slots; ++c) new (&p->chunk_table()[c]) AtomicRel<std::byte>();
    if (preallocate) {
        while (p->n_chunks.load(std::memory_order_relaxed) < p->n_chunk_slots) {
            bool oom = false;
            if (!grow(owner, p, &oom)) return -ENOMEM;
        }
    }
    return 0;
}

std::uint64_t pool_chunk_bytes(std::uint32_t elem_size, std::uint32_t capacity,
                               std::uint32_t* n_allocs) noexcept {
    // Preallocated pools are one chunk; lazily grown ones may end up with every chunk.
    std::uint32_t shift = pool_chunk_shift(capacity, false);
    std::uint64_t chunks = (std::uint64_t{capacity} + (1u << shift) - 1) >> shift;
    if (n_allocs) *n_allocs = static_cast<std::uint32_t>(chunks);
    return std::uint64_t{elem_size} * capacity;
}

std::uint32_t pool_pop(MapHeader* owner, Pool* p, bool* oom) noexcept {
    for (;;) {
        std::uint64_t head = p->free_head.load(std::memory_order_acquire);
        std::uint32_t idx = head_idx(head);
        if (idx == no_index) {
            LockGuard g(p->grow_lock);  // a dead owner left at most an unpublished chunk: see grow
            if (head_idx(p->free_head.load(std::memory_order_acquire)) == no_index && !grow(owner, p, oom))
                return no_index;
            continue;
        }
        // free_next may be stale if idx was popped meanwhile; the tag makes the CAS fail then (no ABA).
        std::uint32_t next = link_of(p, idx)->free_next.load(std::memory_order_relaxed);
        if (p->free_head.compare_exchange_weak(head, pack(head_tag(head) + 1, next),
                                               std::memory_order_acq_rel, std::memory_order_acquire))
            return idx;
    }
}

void pool_push(Pool* p, std::uint32_t idx) noexcept { push_chain(p, idx, idx); }

PoolMarker::PoolMarker(Pool* pool) noexcept : pool_(pool), side_(nullptr), total_(pool->allocated()) {
    for (std::uint32_t i = 0; i < total_; ++i)
        link_of(pool_, i)->free_next.store(pool_unmarked, std::memory_order_relaxed);
}

PoolMarker::PoolMarker(Pool* pool, std::vector<std::uint8_t>* free_states) noexcept
    : pool_(pool), side_(free_states), total_(static_cast<std::uint32_t>(free_states->size())) {}

bool PoolMarker::mark(std::uint32_t idx) noexcept {
    if (idx >= total_) return false;
    if (side_) {
        if ((*side_)[idx] != 0) return false;
        (*side_)[idx] = 2;
        return true;
    }
    PoolLink* l = link_of(pool_, idx);
    if (l->free_next.load(std::memory_order_relaxed) == pool_live) return false;
    l->free_next.store(pool_live, std::memory_order_relaxed);
    return true;
}

bool PoolMarker::live(std::uint32_t idx) const noexcept {
    if (idx >= total_) return false;
    if (side_) return (*side_)[idx] == 2;
    return link_of(pool_, idx)->free_next.load(std::memory_order_relaxed) == pool_live;
}

std::uint32_t pool_rebuild_free(Pool* p) noexcept {
    std::uint32_t total = p->allocated();
    std::uint32_t first = no_index, n = 0;
    // Build the list back to front so that it pops in index order.
    for (std::uint32_t i = total; i-- > 0;) {
        PoolLink* l = link_of(p, i);
        if (l->free_next.load(std::memory_order_relaxed) == pool_live) continue;
        l->free_next.store(first, std::memory_order_relaxed);
        first = i;
        ++n;
    }
    std::uint64_t head = p->free_head.load(std::memory_order_relaxed);
    p->free_head.store(pack(head_tag(head) + 1, first), std::memory_order_release);
    return n;
}

std::string pool_free_states(Pool* p, std::vector<std::uint8_t>& states) {
    std::uint32_t total = p->allocated();
    states.assign(total, 0);
    std::uint32_t idx = head_idx(p->free_head.load(std::memory_order_acquire));
    while (idx != no_index) {
        if (idx >= total) return "the free list points outside the pool";
        if (states[idx]) return "the free list has a cycle";
        states[idx] = 1;
        idx = link_of(p, idx)->free_next.load(std::memory_order_relaxed);
    }
    return {};
}

}  // namespace ebpfrt::maps
