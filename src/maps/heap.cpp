// The arena's crash-safe allocator (see Heap in layout.hpp).
//
// Blocks are 16-byte aligned and start with a 16-byte header: the block's size in bytes (header included,
// a multiple of 16) with bit 0 set while it is allocated, then a link: the next free block for a free
// block, the next block of the same owner for an allocated one. Offsets are from the Heap, so every
// mapping agrees. Free blocks form one list in address order; freeing merges with free neighbours.
//
// Crash safety: an operation reads the heap, computes every word it will change (at most
// Heap::max_writes), writes that list to the heap's journal, commits it with one store of n_writes, applies
// it and clears n_writes. Applying is idempotent (absolute values), so whoever inherits the mutex from an
// owner that died replays a committed list and finds the heap exactly as after that operation; an
// uncommitted one changed nothing.

#include <new>

#include <fmt/format.h>

#include "maps/layout.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint64_t heap_magic = 0x5041454854525045ULL;  // "EPRTHEAP"
constexpr std::uint64_t header_bytes = 16;
constexpr std::uint64_t min_block = 32;
constexpr std::uint64_t allocated_bit = 1;

struct Block {
    std::uint64_t size;  // | allocated_bit
    std::uint64_t link;
};

std::byte* base(Heap* h) noexcept { return reinterpret_cast<std::byte*>(h); }
Block* blk(Heap* h, std::uint64_t off) noexcept { return reinterpret_cast<Block*>(base(h) + off); }
std::uint64_t size_of(Heap* h, std::uint64_t off) noexcept { return blk(h, off)->size & ~allocated_bit; }

void replay(Heap* h) noexcept {
    std::uint32_t n = h->n_writes.load(std::memory_order_acquire);
    if (n > Heap::max_writes) n = 0;  // cannot happen: commit never stores more
    for (std::uint32_t i = 0; i < n; ++i) {
        const HeapWrite& w = h->writes[i];
        std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base(h) + w.off))
            .store(w.value, std::memory_order_relaxed);
    }
    h->n_writes.store(0, std::memory_order_release);
}

// Holds the heap's mutex; finishes the operation of an owner that died.
struct HeapGuard {
    explicit HeapGuard(Heap* h) noexcept : h_(h) {
        (void)h->lock.lock();
        if (h->n_writes.load(std::memory_order_relaxed) != 0) replay(h);
    }
    ~HeapGuard() { h_->lock.unlock(); }
    HeapGuard(const HeapGuard&) = delete;
    HeapGuard& operator=(const HeapGuard&) = delete;
    Heap* h_;
};

// The words one operation changes, then committed as a whole.
class Transaction {
public:
    explicit Transaction(Heap* h) noexcept : h_(h) {}
    void set(void* where, std::uint64_t value) noexcept {
        auto off = static_cast<std::uint64_t>(static_cast<std::byte*>(where) - base(h_));
        w_[n_++] = HeapWrite{off, value};  // n_ <= max_writes: every caller sets a fixed few
    }
    void commit() noexcept {
        for (std::uint32_t i = 0; i < n_; ++i) h_->writes[i] = w_[i];
        // release: the list is complete before it counts as committed
        h_->n_writes.store(n_, std::memory_order_release);
        replay(h_);
    }

private:
    Heap* h_;
    HeapWrite w_[Heap::max_writes];
    std::uint32_t n_ = 0;
};

}  // namespace

Heap* heap_init(void* mem, std::size_t bytes) noexcept {
    auto addr = reinterpret_cast<std::uintptr_t>(mem);
    std::uintptr_t start = round_up(addr, 64);
    if (bytes < start - addr + sizeof(Heap) + 64 + min_block) return nullptr;
    bytes -= start - addr;
    auto* h = new (reinterpret_cast<void*>(start)) Heap();
    h->first = round_up(sizeof(Heap), 64);
    h->size = h->first + (bytes - h->first) / 16 * 16;
    h->lock.init();
    h->n_writes.store(0, std::memory_order_relaxed);
    Block* b = blk(h, h->first);
    b->size = h->size - h->first;
    b->link = 0;
    h->free_head = h->first;
    h->free_bytes = b->size;
    h->magic = heap_magic;
    return h;
}

void* heap_allocate(Heap* h, std::size_t bytes, std::size_t align, std::uint64_t* owner_list,
                    AtomicRel<std::byte>* publish) noexcept {
    if (align < 16) align = 16;
    if (!is_pow2(align) || align > page_size || bytes > h->size) return nullptr;
    std::uint64_t need = round_up(bytes ? bytes : 1, 16) + header_bytes;
    auto haddr = reinterpret_cast<std::uintptr_t>(h);
    HeapGuard guard(h);
    std::uint64_t* prev_link = &h->free_head;
    for (std::uint64_t f = h->free_head; f != 0; prev_link = &blk(h, f)->link, f = blk(h, f)->link) {
        std::uint64_t end = f + size_of(h, f);
        // The block goes where its payload is aligned, leaving in front either nothing or a free block.
        std::uint64_t pos = round_up(haddr + f + header_bytes, align) - header_bytes - haddr;
        while (pos != f && pos - f < min_block) pos += align;
        if (pos + need > end) continue;
        std::uint64_t bsize = need, tail = end - (pos + need);
        if (tail < min_block) {
            bsize += tail;
            tail = 0;
        }
        std::uint64_t next_free = blk(h, f)->link;
        std::uint64_t t = pos + bsize;
        Transaction tx(h);
        if (pos == f) {
            if (tail) {
                tx.set(&blk(h, t)->size, tail);
                tx.set(&blk(h, t)->link, next_free);
                tx.set(prev_link, t);
            } else {
                tx.set(prev_link, next_free);
            }
        } else {  // f stays on the list, shortened to the part in front
            tx.set(&blk(h, f)->size, pos - f);
            if (tail) {
                tx.set(&blk(h, t)->size, tail);
                tx.set(&blk(h, t)->link, next_free);
                tx.set(&blk(h, f)->link, t);
            }
        }
        tx.set(&blk(h, pos)->size, bsize | allocated_bit);
        tx.set(&blk(h, pos)->link, owner_list ? *owner_list : 0);
        if (owner_list) tx.set(owner_list, pos);
        std::byte* payload = base(h) + pos + header_bytes;
        if (publish) tx.set(&publish->raw(), static_cast<std::uint64_t>(publish->encoded(payload)));
        tx.set(&h->free_bytes, h->free_bytes - bsize);
        tx.commit();
        return payload;
    }
    return nullptr;
}

void heap_free(Heap* h, void* p, std::uint64_t* also, std::uint64_t also_value) noexcept {
    if (!p) return;
    auto b = static_cast<std::uint64_t>(static_cast<std::byte*>(p) - base(h)) - header_bytes;
    HeapGuard guard(h);
    if (b < h->first || b >= h->size || !(blk(h, b)->size & allocated_bit)) return;  // not a live block
    std::uint64_t bsize = size_of(h, b);
    // The free neighbours: pf before b (0: none), n after it.
    std::uint64_t* prev_link = &h->free_head;
    std::uint64_t pf = 0, n = h->free_head;
    while (n != 0 && n < b) {
        pf = n;
        prev_link = &blk(h, n)->link;
        n = blk(h, n)->link;
    }
    std::uint64_t merged = bsize, link = n;
    if (n != 0 && b + bsize == n) {
        merged += size_of(h, n);
        link = blk(h, n)->link;
    }
    Transaction tx(h);
    if (pf != 0 && pf + size_of(h, pf) == b) {
        tx.set(&blk(h, pf)->size, size_of(h, pf) + merged);
        tx.set(&blk(h, pf)->link, link);
        tx.set(&blk(h, b)->size, 0);  // no longer a block header: a second free is ignored
    } else {
        tx.set(&blk(h, b)->size, merged);
        tx.set(&blk(h, b)->link, link);
        tx.set(prev_link, b);
    }
    if (also) tx.set(also, also_value);
    tx.set(&h->free_bytes, h->free_bytes + bsize);
    tx.commit();
}

void* heap_owned_first(Heap* h, std::uint64_t list) noexcept {
    return list ? base(h) + list + header_bytes : nullptr;
}

std::uint64_t heap_owned_next(Heap*, void* p) noexcept {
    return reinterpret_cast<Block*>(static_cast<std::byte*>(p) - header_bytes)->link;
}

std::string heap_check(Heap* h) {
    HeapGuard guard(h);
    if (h->magic != heap_magic) return "bad heap magic";
    // Blocks tile [first, size); the free ones are exactly the free list, in address order, never two in
    // a row (they would have been merged).
    std::uint64_t next_free = h->free_head, free_bytes = 0;
    bool prev_free = false;
    for (std::uint64_t b = h->first; b != h->size;) {
        std::uint64_t sz = size_of(h, b);
        if (sz < min_block || sz % 16 || b + sz > h->size)
            return fmt::format("block at {} has a bad size {}", b, sz);
        bool is_free = !(blk(h, b)->size & allocated_bit);
        if (is_free != (b == next_free))
            return fmt::format("block at {} is {} but {} the free list", b, is_free ? "free" : "allocated",
                               is_free ? "not on" : "on");
        if (is_free) {
            if (prev_free) return fmt::format("free block at {} follows a free block", b);
            free_bytes += sz;
            next_free = blk(h, b)->link;
            if (next_free != 0 && next_free <= b) return fmt::format("free list goes back at {}", b);
        }
        prev_free = is_free;
        b += sz;
    }
    if (next_free != 0) return fmt::format("free list points to {}, not a block", next_free);
    if (free_bytes != h->free_bytes)
        return fmt::format("free_bytes is {} but the free blocks hold {}", h->free_bytes, free_bytes);
    return {};
}

std::size_t heap_free_bytes(Heap* h) noexcept {
    HeapGuard guard(h);
    return h->free_bytes;
}

}  // namespace ebpfrt::maps
