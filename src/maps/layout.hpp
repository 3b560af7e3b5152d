#pragma once
// What the arena holds. Everything here lives in shared memory, mapped at different addresses in
// different processes: plain standard-layout structs, offsets instead of pointers (boost offset_ptr for
// links set once, AtomicRel for links published or swapped atomically, 32-bit element indices inside a
// map), a MapType tag instead of a vtable. Private to src/maps.

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <boost/interprocess/offset_ptr.hpp>

#include <ebpfrt/maps.hpp>

#include "maps/maps_internal.hpp"
#include "maps/sync.hpp"

namespace ebpfrt::maps {

template <class T>
using OffsetPtr = boost::interprocess::offset_ptr<T>;

/// A pointer published with one atomic store: the distance from the field to its target (equal in every
/// mapping), 0 for null.
template <class T>
class AtomicRel {
public:
    T* load(std::memory_order mo = std::memory_order_acquire) const noexcept { return decode(off_.load(mo)); }
    void store(T* p, std::memory_order mo = std::memory_order_release) noexcept { off_.store(encode(p), mo); }
    T* exchange(T* p, std::memory_order mo = std::memory_order_acq_rel) noexcept {
        return decode(off_.exchange(encode(p), mo));
    }
    /// What store(p) writes, for a store made by someone else (the heap publishes blocks this way).
    std::int64_t encoded(const void* p) const noexcept {
        return encode(static_cast<T*>(const_cast<void*>(p)));
    }
    std::atomic<std::int64_t>& raw() noexcept { return off_; }

private:
    T* decode(std::int64_t off) const noexcept {
        if (off == 0) return nullptr;
        return reinterpret_cast<T*>(const_cast<char*>(reinterpret_cast<const char*>(this)) + off);
    }
    std::int64_t encode(T* p) const noexcept {
        return p ? reinterpret_cast<const char*>(p) - reinterpret_cast<const char*>(this) : 0;
    }
    std::atomic<std::int64_t> off_{0};
};

inline constexpr std::uint64_t registry_magic = 0x3170616d74727065ULL;  // "eprtmap1"
/// Bumped whenever a shared structure or the hash function changes: processes built from different
/// layouts must not share an arena.
inline constexpr std::uint32_t layout_version = 5;
inline constexpr std::uint64_t map_magic = 0x5244484d54525045ULL;  // "EPRTMHDR"
inline constexpr std::size_t max_name_len = 127;
inline constexpr std::size_t page_size = 4096;
inline constexpr std::uint32_t no_index = 0xffffffffu;

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t a) noexcept { return (v + a - 1) / a * a; }
constexpr bool is_pow2(std::uint64_t v) noexcept { return v && !(v & (v - 1)); }
constexpr std::uint64_t next_pow2(std::uint64_t v) noexcept {
    std::uint64_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

struct MapHeader;

/// The arena's allocator for everything the maps use (see heap.cpp): first fit over an address-ordered
/// free list, under one robust mutex. Every change is a short list of word stores that is first written
/// to `writes` and committed with one store of n_writes, then applied; whoever inherits the mutex from a
/// dead owner replays a committed list. So a process killed at any instruction leaves the heap either
/// before or after its last operation, never in between (the Boost allocator, which cannot be repaired,
/// is only used to set up the arena).
struct HeapWrite {
    std::uint64_t off;  // from the heap's start
    std::uint64_t value;
};
struct Heap {
    static constexpr std::uint32_t max_writes = 12;
    std::uint64_t magic;
    std::uint64_t size;        // bytes from the Heap to the end of its last block
    std::uint64_t first;       // offset of the first block
    std::uint64_t free_head;   // offset of the first free block, 0: none (address order)
    std::uint64_t free_bytes;  // free blocks, headers included
    RobustMutex lock;
    std::atomic<std::uint32_t> n_writes;  // != 0: a committed transaction that may be half applied
    std::uint32_t reserved;
    HeapWrite writes[max_writes];
};

/// Builds a heap over [mem, mem + bytes); nullptr if that is too small.
Heap* heap_init(void* mem, std::size_t bytes) noexcept;
/// A block of at least `bytes` whose address is a multiple of `align` (a power of two, at most a page),
/// or nullptr. In the same transaction, so that a dying caller cannot leak it: when `owner_list` is set
/// the block goes to the front of that list (an offset from the heap, 0 = empty; heap_owned_next walks
/// it), and when `publish` is set it gets the block's address.
void* heap_allocate(Heap* heap, std::size_t bytes, std::size_t align, std::uint64_t* owner_list,
                    AtomicRel<std::byte>* publish) noexcept;
/// Frees a block; in the same transaction, `*also = also_value` when `also` is set.
void heap_free(Heap* heap, void* p, std::uint64_t* also = nullptr, std::uint64_t also_value = 0) noexcept;
/// The first block of an owner list (`list`: its head) and the list's next block after `p`, or nullptr.
void* heap_owned_first(Heap* heap, std::uint64_t list) noexcept;
std::uint64_t heap_owned_next(Heap* heap, void* p) noexcept;
std::size_t heap_free_bytes(Heap* heap) noexcept;
/// For checks: "" or what is wrong with the heap (under its mutex, so after any replay).
std::string heap_check(Heap* heap);

/// The root object of an arena: the map registry.
struct Registry {
    explicit Registry(void* segment_manager) noexcept
        : magic(registry_magic), version(layout_version), next_id(0), segment(segment_manager) {
        lock.init();
    }
    std::uint64_t magic;
    std::uint32_t version;
    std::uint32_t next_id;       // under lock
    RobustMutex lock;            // registry list, ids, map creation and reclamation
    OffsetPtr<MapHeader> first;  // maps in creation order (under lock)
    OffsetPtr<MapHeader> last;
    OffsetPtr<void> segment;  // the Boost segment manager (only used to set up the heap)
    OffsetPtr<Heap> heap;     // all map memory; set once, under lock, before any map exists
};

/// The common header at the start of every map; its address is the map's program handle.
struct MapHeader {
    std::uint64_t magic;
    MapType type;  // dispatch tag: index into the process-local ops table
    std::uint32_t id;
    std::uint32_t key_size;
    std::uint32_t value_size;
    std::uint32_t max_entries;
    std::uint32_t map_flags;
    std::uint32_t numa_node;
    std::uint32_t btf_key_type_id;
    std::uint32_t btf_value_type_id;
    std::int32_t spin_lock_off;  // the value's bpf_spin_lock, -1: none (MapSpec::spin_lock_off)
    std::uint32_t nr_cpus;       // per-CPU slots
    std::uint32_t value_stride;  // round_up(value_size, 8): per-CPU slot size
    Pinning pinning;
    MapOrigin origin;
    std::uint8_t has_inner;
    // map-in-map: the inner spec every inner map must match (bpf_map_meta_equal)
    MapType inner_type;
    std::uint32_t inner_key_size, inner_value_size, inner_max_entries, inner_flags;
    std::atomic<std::uint32_t> refs;  // registry entry + MapRef handles + map-in-map slots
    std::atomic<std::uint32_t> frozen;
    std::atomic<std::uint32_t> removed;  // no longer in the registry; freed when refs reaches 0
    std::uint64_t seed;                  // hash seed (0 with map_flags::zero_seed)
    OffsetPtr<Registry> registry;
    OffsetPtr<MapHeader> next;  // registry list
    std::uint64_t allocs;       // the heap blocks the map owns besides this one (a heap owner list)
    char name[max_name_len + 1];
};

template <class T>
T* body(MapHeader* h) noexcept {
    static_assert(std::is_standard_layout_v<T>);
    return reinterpret_cast<T*>(h);
}
template <class T>
const T* body(const MapHeader* h) noexcept {
    return reinterpret_cast<const T*>(h);
}

inline std::byte* at(void* base, std::uint64_t off) noexcept { return static_cast<std::byte*>(base) + off; }

/// A fixed-capacity pool of equal elements, allocated all at once (preallocated maps) or a chunk at a
/// time (no_prealloc, lpm_trie). Every element starts with PoolLink. The free list is a tagged Treiber
/// stack (index + ABA tag in one 64-bit word) so pops and pushes under different lock stripes do not
/// race. Elements are never returned to the arena while the map lives, so pointers into them stay valid.
struct PoolLink {
    // Free-list link. Only pops, pushes and repair (which excludes both) touch it, so repair also uses it
    // to mark live elements (pool_live); lock-free readers never read it.
    std::atomic<std::uint32_t> free_next;
    std::atomic<std::uint32_t> aux;  // the element type's own (hash: generation)
};
inline constexpr std::uint32_t pool_unmarked = 0xfffffffeu;
inline constexpr std::uint32_t pool_live = 0xfffffffdu;

struct Pool {
    std::uint32_t elem_size;  // multiple of 8
    std::uint32_t capacity;   // elements at most
    std::uint32_t chunk_shift;
    std::uint32_t n_chunk_slots;
    std::atomic<std::uint32_t> n_chunks;   // chunks published (release) in chunks[]
    std::atomic<std::uint64_t> free_head;  // (tag << 32) | index
    RobustMutex grow_lock;
    // followed by AtomicRel<std::byte> chunks[n_chunk_slots] (see chunk_table())

    static std::size_t bytes(std::uint32_t n_chunk_slots) noexcept {
        return round_up(sizeof(Pool), 8) + n_chunk_slots * sizeof(AtomicRel<std::byte>);
    }
    AtomicRel<std::byte>* chunk_table() noexcept {
        return reinterpret_cast<AtomicRel<std::byte>*>(reinterpret_cast<std::byte*>(this) +
                                                       round_up(sizeof(Pool), 8));
    }
    std::uint32_t chunk_elems(std::uint32_t chunk) const noexcept {
        std::uint64_t first = std::uint64_t{chunk} << chunk_shift;
        std::uint64_t n = std::uint64_t{1} << chunk_shift;
        return static_cast<std::uint32_t>(first + n > capacity ? capacity - first : n);
    }
    std::byte* elem(std::uint32_t idx) noexcept {
        std::byte* c = chunk_table()[idx >> chunk_shift].load(std::memory_order_acquire);
        return c + std::size_t(idx & ((1u << chunk_shift) - 1)) * elem_size;
    }
    /// Whether `idx` names an element of a published chunk (for readers that may see stale indices).
    bool valid(std::uint32_t idx) const noexcept {
        return idx < capacity && (idx >> chunk_shift) < n_chunks.load(std::memory_order_acquire);
    }
    std::uint32_t allocated() const noexcept {
        std::uint32_t n = n_chunks.load(std::memory_order_acquire);
        std::uint32_t total = 0;
        for (std::uint32_t c = 0; c < n; ++c) total += chunk_elems(c);
        return total;
    }
};

/// Sets up a pool in place (`preallocate`: all chunks now). -ENOMEM if the arena is full.
long pool_init(MapHeader* owner, Pool* pool, std::uint32_t elem_size, std::uint32_t capacity,
               bool preallocate) noexcept;
/// Takes a free element; grows by a chunk if none is free and the pool is not at capacity.
/// no_index when empty (*oom set when growing failed for lack of arena memory).
std::uint32_t pool_pop(MapHeader* owner, Pool* pool, bool* oom) noexcept;
void pool_push(Pool* pool, std::uint32_t idx) noexcept;

/// Marks the live elements of a pool while the caller holds all of the map's locks: in place for repair
/// (no allocation; free_next is rebuilt by pool_rebuild_free afterwards), or in a side table for checks,
/// which leave the pool as it is (side: 1 = on the free list, 2 = live).
class PoolMarker {
public:
    /// In place: every element starts unmarked.
    explicit PoolMarker(Pool* pool) noexcept;
    /// Side table: `free_states` from pool_free_states.
    PoolMarker(Pool* pool, std::vector<std::uint8_t>* free_states) noexcept;
    /// Marks idx live; false if it is out of range, already live, or on the free list.
    bool mark(std::uint32_t idx) noexcept;
    bool live(std::uint32_t idx) const noexcept;

private:
    Pool* pool_;
    std::vector<std::uint8_t>* side_;
    std::uint32_t total_;
};
/// Rebuilds the free list from every element not marked live in place. Returns its length.
std::uint32_t pool_rebuild_free(Pool* pool) noexcept;
/// For checks: 1 for every element on the free list; "" or what is wrong with the list.
std::string pool_free_states(Pool* pool, std::vector<std::uint8_t>& states);
/// Bytes of the pool's chunks for `capacity` elements (for Arena::bytes_for), and how many allocations.
std::uint64_t pool_chunk_bytes(std::uint32_t elem_size, std::uint32_t capacity,
                               std::uint32_t* n_allocs) noexcept;
/// The chunk layout chosen for a capacity.
std::uint32_t pool_chunk_shift(std::uint32_t capacity, bool preallocate) noexcept;

// ---- arena services (arena.cpp) ----------------------------------------------------------------------

/// Allocates from the arena of `owner` and records the block in owner->allocs (freed with the map), and
/// stores its address in `*publish` if set, all at once: a caller killed at any point leaks nothing.
/// nullptr when the arena is full.
void* arena_allocate(MapHeader* owner, std::size_t bytes, std::size_t align,
                     AtomicRel<std::byte>* publish = nullptr) noexcept;
/// Map references for map-in-map slots: the map with `id` with one more reference, or nullptr.
MapHeader* acquire_map_by_id(Registry* reg, std::uint32_t id) noexcept;
void acquire_map(MapHeader* m) noexcept;
/// Drops a reference; the last one of a removed map frees its memory.
void release_map(MapHeader* m) noexcept;
/// Whether `inner` may go into a slot of map-in-map `outer` (the kernel's bpf_map_meta_equal).
bool inner_map_compatible(const MapHeader* outer, const MapHeader* inner) noexcept;

/// The offset of a map header from its registry, and back (map-in-map slots store these; 0 = empty).
inline std::uint64_t map_offset(MapHeader* m) noexcept {
    return m ? static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(m) -
                                          reinterpret_cast<std::byte*>(m->registry.get()))
             : 0;
}
inline MapHeader* map_at(Registry* reg, std::uint64_t off) noexcept {
    return off ? reinterpret_cast<MapHeader*>(reinterpret_cast<std::byte*>(reg) + off) : nullptr;
}

// ---- hashing -------------------------------------------------------------------------------------------

inline std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/// The hash of keys, values (bloom) and stacks. Part of the shared layout (see layout_version).
inline std::uint32_t hash_bytes(const void* data, std::uint32_t n, std::uint64_t seed) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (n + 1));
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ (w * 0xbf58476d1ce4e5b9ULL)) * 0x94d049bb133111ebULL;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        // The last 1..7 bytes with at most two loads (overlapping for 5..7): a byte-wise copy into a
        // word would stall on store forwarding, which costs more than the rest of a lookup.
        std::uint64_t w;
        if (n >= 4) {
            std::uint32_t a, b;
            std::memcpy(&a, p, 4);
            std::memcpy(&b, p + n - 4, 4);
            w = (std::uint64_t{a} << 32) | b;
        } else {
            w = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n / 2]} << 8) | p[n - 1];
        }
        h = (h ^ (w * 0xbf58476d1ce4e5b9ULL)) * 0x94d049bb133111ebULL;
    }
    return static_cast<std::uint32_t>(mix64(h) >> 32);
}

// ---- per-type operations --------------------------------------------------------------------------------

/// Sizes of a map's first allocation (header + body + inline data) and of its later allocations.
struct MapLayout {
    std::uint64_t header_bytes = 0;
    std::uint64_t header_align = 8;
    std::uint64_t extra_bytes = 0;  // pools, buffers: allocated by init
    std::uint32_t extra_allocs = 0;
};

/// What a map type does. One const instance per type; dispatched through the process-local table
/// (ops_for), so shared memory holds only the MapType tag. nullptr entries get the kernel's answer for
/// an operation the type lacks (-EINVAL, or -EOPNOTSUPP where the kernel says ENOTSUPP).
struct MapOps {
    /// Validates a spec beyond the common rules; "" or the reason ("key size 8 is invalid for array
    /// (must be 4)"). *err gets the errno (EINVAL, E2BIG, ...).
    std::string (*check)(const MapSpec& spec, int* err) = nullptr;
    void (*layout)(const MapSpec& spec, std::uint32_t nr_cpus, MapLayout& out) = nullptr;
    /// Builds the body in place after the common header; may allocate through arena_allocate. 0 or -ENOMEM.
    long (*init)(MapHeader* h, const MapSpec& spec) noexcept = nullptr;

    void* (*lookup)(MapHeader*, const void* key) noexcept = nullptr;
    long (*update)(MapHeader*, const void* key, const void* value, std::uint64_t flags) noexcept = nullptr;
    long (*erase)(MapHeader*, const void* key) noexcept = nullptr;
    void* (*lookup_percpu)(MapHeader*, const void* key, std::uint32_t cpu) noexcept = nullptr;
    long (*push)(MapHeader*, const void* value, std::uint64_t flags) noexcept = nullptr;
    long (*pop)(MapHeader*, void* value) noexcept = nullptr;
    long (*peek)(MapHeader*, void* value) noexcept = nullptr;
    long (*for_each)(MapHeader*, ForEachCallback cb, void* ctx) noexcept = nullptr;

    long (*sys_lookup)(MapHeader*, const void* key, void* value, std::uint64_t flags) noexcept = nullptr;
    long (*sys_update)(MapHeader*, const void* key, const void* value,
                       std::uint64_t flags) noexcept = nullptr;
    long (*sys_delete)(MapHeader*, const void* key) noexcept = nullptr;
    long (*sys_next_key)(MapHeader*, const void* key, void* next) noexcept = nullptr;
    long (*sys_lookup_and_delete)(MapHeader*, const void* key, void* value,
                                  std::uint64_t flags) noexcept = nullptr;
    /// Bucket-wise batch lookup (hash types). Without it, arrays use the generic get_next_key walk.
    long (*lookup_batch)(MapHeader*, BatchCursor& cursor, void* keys, void* values, std::uint32_t* count,
                         bool and_delete, std::uint64_t elem_flags) noexcept = nullptr;
    bool generic_batch = false;  // arrays: lookup_batch walks get_next_key like the kernel's generic batch

    /// Repairs after a lock owner died, holding all of the map's locks.
    std::string (*check_consistency)(MapHeader*) = nullptr;
    /// Before the memory is freed: drop references the map holds (map-in-map slots).
    void (*release)(MapHeader*) noexcept = nullptr;
};

/// The ops of a type, or nullptr for a type user space cannot have.
const MapOps* ops_for(MapType type) noexcept;

/// Keys and values of 4, 8 or 16 bytes (ids, counters, pointers, pairs) are copied with a load and a store
/// (or two), not a call to memcpy.
inline void copy_bytes(void* dst, const void* src, std::size_t n) noexcept {
    switch (n) {
    case 4: std::memcpy(dst, src, 4); return;
    case 8: std::memcpy(dst, src, 8); return;
    case 16: std::memcpy(dst, src, 16); return;
    default: std::memcpy(dst, src, n); return;
    }
}

/// Value copies of maps whose value may hold a bpf_spin_lock (copy_map_value and friends): into the map,
/// every byte but the lock's, which stays as it is (a new element's is zeroed by the caller); out of the
/// map, the lock reads as 0. With update_flags::lock, both happen holding the value's lock.
inline void copy_value_in(const MapHeader* h, std::byte* dst, const void* src, std::uint64_t flags = 0) noexcept {
    const std::int32_t off = h->spin_lock_off;
    if (off < 0) {
        copy_bytes(dst, src, h->value_size);
        return;
    }
    const auto* s = static_cast<const std::byte*>(src);
    if (flags & update_flags::lock) value_spin_lock(dst + off);
    std::memcpy(dst, s, static_cast<std::size_t>(off));
    std::memcpy(dst + off + 4, s + off + 4, h->value_size - static_cast<std::size_t>(off) - 4);
    if (flags & update_flags::lock) value_spin_unlock(dst + off);
}
inline void copy_value_out(const MapHeader* h, void* dst, const std::byte* src, std::uint64_t flags = 0) noexcept {
    const std::int32_t off = h->spin_lock_off;
    if (off < 0) {
        copy_bytes(dst, src, h->value_size);
        return;
    }
    auto* d = static_cast<std::byte*>(dst);
    if (flags & update_flags::lock) value_spin_lock(const_cast<std::byte*>(src) + off);
    std::memcpy(d, src, static_cast<std::size_t>(off));
    std::memcpy(d + off + 4, src + off + 4, h->value_size - static_cast<std::size_t>(off) - 4);
    if (flags & update_flags::lock) value_spin_unlock(const_cast<std::byte*>(src) + off);
    std::memset(d + off, 0, 4);
}

/// Access-flag checks common to every type.
inline bool host_can_write(const MapHeader* h) noexcept {
    return !(h->map_flags & map_flags::rdonly) && !h->frozen.load(std::memory_order_relaxed);
}
inline bool host_can_read(const MapHeader* h) noexcept { return !(h->map_flags & map_flags::wronly); }

/// bpf(BPF_MAP_LOOKUP_ELEM / UPDATE_ELEM) with the map's ops already known: maps::sys_lookup and
/// sys_update look them up by type first, MapRef passes the ones its handle cached (one call less on the
/// host's hottest paths).
inline long sys_lookup_with(const MapOps& o, MapHeader* h, const void* key, void* value,
                            std::uint64_t flags) noexcept {
    if (flags & ~update_flags::lock) return -EINVAL;
    if (!host_can_read(h)) return -EPERM;
    if ((flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;  // no bpf_spin_lock to take
    return o.sys_lookup ? o.sys_lookup(h, key, value, flags) : -EOPNOTSUPP;
}
inline long sys_update_with(const MapOps& o, MapHeader* h, const void* key, const void* value,
                            std::uint64_t flags) noexcept {
    if (!host_can_write(h)) return -EPERM;
    // The syscall refuses BPF_F_LOCK without a bpf_spin_lock before the map type's own checks.
    if ((flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;
    return o.sys_update ? o.sys_update(h, key, value, flags) : -EOPNOTSUPP;
}

// One per type family (defined in the type's file).
extern const MapOps array_ops, percpu_array_ops, prog_array_ops, array_of_maps_ops, perf_event_array_ops;
extern const MapOps hash_ops, percpu_hash_ops, lru_hash_ops, lru_percpu_hash_ops, hash_of_maps_ops;
extern const MapOps lpm_trie_ops, queue_ops, stack_ops, bloom_filter_ops, ringbuf_ops, stack_trace_ops;

/// For tests of a hash map's recovery from a dead lock owner (hash.cpp): the lock of the stripe that
/// guards `key`, and how many times the map has been repaired.
OwnerLock& hash_stripe_lock(MapHeader* h, const void* key) noexcept;
std::uint32_t hash_repairs(MapHeader* h) noexcept;
/// For tests of in-place value writes: the generation word of `key`'s element (odd while its value is
/// being written), nullptr when the key is absent.
std::atomic<std::uint32_t>* hash_generation(MapHeader* h, const void* key) noexcept;

/// value_window of the array and hash families (array.cpp, hash.cpp).
bool array_value_window(MapHeader* h, ValueWindow* out) noexcept;
bool hash_value_window(MapHeader* h, ValueWindow* out) noexcept;

/// The value area of an array (max_entries * round_up(value_size, 8) bytes), for MapRef::data().
std::byte* array_data(MapHeader* h, std::size_t* bytes) noexcept;

/// For value buffers of the syscall side: round_up(value_size, 8) * nr_cpus for per-CPU maps.
inline bool is_percpu(MapType t) noexcept {
    return t == MapType::percpu_array || t == MapType::percpu_hash || t == MapType::lru_percpu_hash;
}

}  // namespace ebpfrt::maps
