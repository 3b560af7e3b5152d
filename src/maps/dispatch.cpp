// The process-local dispatch table and the program/syscall entry points: access-flag checks common to
// every type, then one indirect call through the map's ops.

#include <array>
#include <cerrno>

#include "maps/layout.hpp"
#include "maps/maps_internal.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::size_t n_types = 34;

// Indexed by MapType. Shared memory holds only the tag; each process points it at its own code.
constexpr std::array<const MapOps*, n_types> ops_table = {
    nullptr,                // unspec
    &hash_ops,              // hash
    &array_ops,             // array
    &prog_array_ops,        // prog_array
    &perf_event_array_ops,  // perf_event_array
    &percpu_hash_ops,       // percpu_hash
    &percpu_array_ops,      // percpu_array
    &stack_trace_ops,       // stack_trace
    nullptr,                // cgroup_array
    &lru_hash_ops,          // lru_hash
    &lru_percpu_hash_ops,   // lru_percpu_hash
    &lpm_trie_ops,          // lpm_trie
    &array_of_maps_ops,     // array_of_maps
    &hash_of_maps_ops,      // hash_of_maps
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,     // devmap .. percpu_cgroup_storage
    &queue_ops,  // queue
    &stack_ops,  // stack
    nullptr,
    nullptr,
    nullptr,       // sk_storage, devmap_hash, struct_ops
    &ringbuf_ops,  // ringbuf
    nullptr,
    nullptr,            // inode_storage, task_storage
    &bloom_filter_ops,  // bloom_filter
    nullptr,
    nullptr,
    nullptr,  // user_ringbuf, cgrp_storage, arena
};

const MapOps empty_ops{};

inline MapHeader* hdr(void* map) noexcept { return static_cast<MapHeader*>(map); }
inline const MapHeader* hdr(const void* map) noexcept { return static_cast<const MapHeader*>(map); }
inline const MapOps& ops(const MapHeader* h) noexcept {
    auto i = static_cast<std::uint32_t>(h->type);
    const MapOps* o = i < n_types ? ops_table[i] : nullptr;
    return o ? *o : empty_ops;
}

}  // namespace

const MapOps* ops_for(MapType type) noexcept {
    auto i = static_cast<std::uint32_t>(type);
    return i < n_types ? ops_table[i] : nullptr;
}

// ---- program side -----------------------------------------------------------------------------------------

void* map_lookup_elem(void* map, const void* key) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    return o.lookup ? o.lookup(h, key) : nullptr;
}

long map_update_elem(void* map, const void* key, const void* value, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    if (h->map_flags & map_flags::rdonly_prog) return -EPERM;  // the verifier's rule, enforced here too
    const MapOps& o = ops(h);
    return o.update ? o.update(h, key, value, flags) : -EINVAL;
}

long map_delete_elem(void* map, const void* key) noexcept {
    MapHeader* h = hdr(map);
    if (h->map_flags & map_flags::rdonly_prog) return -EPERM;
    const MapOps& o = ops(h);
    return o.erase ? o.erase(h, key) : -EINVAL;
}

long map_push_elem(void* map, const void* value, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    if (h->map_flags & map_flags::rdonly_prog) return -EPERM;
    const MapOps& o = ops(h);
    return o.push ? o.push(h, value, flags) : -EINVAL;
}

long map_pop_elem(void* map, void* value) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    return o.pop ? o.pop(h, value) : -EINVAL;
}

long map_peek_elem(void* map, void* value) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    return o.peek ? o.peek(h, value) : -EINVAL;
}

void* map_lookup_percpu_elem(void* map, const void* key, std::uint32_t cpu) noexcept {
    MapHeader* h = hdr(map);
    if (cpu >= h->nr_cpus) return nullptr;
    const MapOps& o = ops(h);
    return o.lookup_percpu ? o.lookup_percpu(h, key, cpu) : nullptr;
}

long for_each_map_elem(void* map, ForEachCallback cb, void* ctx, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    if (flags != 0 || !cb) return -EINVAL;
    const MapOps& o = ops(h);
    return o.for_each ? o.for_each(h, cb, ctx) : -EINVAL;
}

MapType map_type(const void* map) noexcept { return hdr(map)->type; }
std::uint32_t map_key_size(const void* map) noexcept { return hdr(map)->key_size; }
std::uint32_t map_value_size(const void* map) noexcept { return hdr(map)->value_size; }
bool value_window(void* map, ValueWindow* out) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    switch (h->type) {
    case MapType::array: return array_value_window(h, out);
    case MapType::hash:
    case MapType::lru_hash: return hash_value_window(h, out);
    default: return false;
    }
}
std::uint32_t map_max_entries(const void* map) noexcept { return hdr(map)->max_entries; }
std::uint32_t map_flags_of(const void* map) noexcept { return hdr(map)->map_flags; }
std::uint32_t map_nr_cpus(const void* map) noexcept { return hdr(map)->nr_cpus; }

std::uint32_t sys_value_size(const void* map) noexcept {
    const MapHeader* h = hdr(map);
    return is_percpu(h->type) ? h->value_stride * h->nr_cpus : h->value_size;
}

// ---- syscall side: the checks of kernel/bpf/syscall.c, then the type
// ---------------------------------------

long sys_lookup(void* map, const void* key, void* value, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    return sys_lookup_with(ops(h), h, key, value, flags);
}

long sys_update(void* map, const void* key, const void* value, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    return sys_update_with(ops(h), h, key, value, flags);
}

long sys_delete(void* map, const void* key) noexcept {
    MapHeader* h = hdr(map);
    if (!host_can_write(h)) return -EPERM;
    const MapOps& o = ops(h);
    return o.sys_delete ? o.sys_delete(h, key) : -EINVAL;
}

long sys_get_next_key(void* map, const void* key, void* next_key) noexcept {
    MapHeader* h = hdr(map);
    if (!host_can_read(h)) return -EPERM;
    const MapOps& o = ops(h);
    return o.sys_next_key ? o.sys_next_key(h, key, next_key) : -EINVAL;
}

long sys_lookup_and_delete(void* map, const void* key, void* value, std::uint64_t flags) noexcept {
    MapHeader* h = hdr(map);
    if (flags & ~update_flags::lock) return -EINVAL;
    if (!host_can_read(h) || !host_can_write(h)) return -EPERM;
    const MapOps& o = ops(h);
    if (h->type == MapType::queue || h->type == MapType::stack) {
        if (flags) return -EINVAL;
        return o.pop(h, value);
    }
    if ((flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;
    return o.sys_lookup_and_delete ? o.sys_lookup_and_delete(h, key, value, flags) : -EOPNOTSUPP;
}

long sys_freeze(void* map) noexcept {
    MapHeader* h = hdr(map);
    if (h->map_flags & map_flags::rdonly) return -EPERM;
    std::uint32_t expected = 0;
    return h->frozen.compare_exchange_strong(expected, 1, std::memory_order_acq_rel) ? 0 : -EBUSY;
}

long sys_lookup_batch(void* map, BatchCursor& cursor, void* keys, void* values, std::uint32_t* count,
                      std::uint64_t elem_flags, bool and_delete) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    std::uint32_t max = *count;
    *count = 0;
    if (elem_flags & ~update_flags::lock) return -EINVAL;
    if (!host_can_read(h) || (and_delete && !host_can_write(h))) return -EPERM;
    if ((elem_flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;
    if (o.lookup_batch) {
        *count = max;
        return o.lookup_batch(h, cursor, keys, values, count, and_delete, elem_flags);
    }
    if (and_delete || !o.generic_batch) return -EOPNOTSUPP;
    // generic_map_lookup_batch over array indices: the cursor is the next index.
    if (cursor.done) return -ENOENT;
    std::uint32_t vs = sys_value_size(h);
    std::uint32_t n = 0;
    std::uint64_t idx = cursor.position;
    for (; n < max && idx < h->max_entries; ++idx) {
        auto i = static_cast<std::uint32_t>(idx);
        if (o.sys_lookup(h, &i, static_cast<std::byte*>(values) + std::size_t(n) * vs, elem_flags) != 0) continue;
        std::memcpy(static_cast<std::byte*>(keys) + std::size_t(n) * 4, &i, 4);
        ++n;
    }
    cursor.position = idx;
    if (idx >= h->max_entries) cursor.done = true;
    *count = n;
    return 0;
}

long sys_update_batch(void* map, const void* keys, const void* values, std::uint32_t* count,
                      std::uint64_t elem_flags) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    std::uint32_t max = *count;
    *count = 0;
    if (!o.lookup_batch && !o.generic_batch) return -EOPNOTSUPP;
    std::uint32_t vs = sys_value_size(h);
    for (std::uint32_t i = 0; i < max; ++i) {
        long rc = sys_update(h, static_cast<const std::byte*>(keys) + std::size_t(i) * h->key_size,
                             static_cast<const std::byte*>(values) + std::size_t(i) * vs, elem_flags);
        if (rc != 0) return rc;
        *count = i + 1;
    }
    return 0;
}

long sys_delete_batch(void* map, const void* keys, std::uint32_t* count) noexcept {
    MapHeader* h = hdr(map);
    const MapOps& o = ops(h);
    std::uint32_t max = *count;
    *count = 0;
    if (!o.lookup_batch) return -EOPNOTSUPP;  // hash types only, as in the kernel
    for (std::uint32_t i = 0; i < max; ++i) {
        long rc = sys_delete(h, static_cast<const std::byte*>(keys) + std::size_t(i) * h->key_size);
        if (rc != 0) return rc;
        *count = i + 1;
    }
    return 0;
}

std::string check_consistency(void* map) {
    MapHeader* h = hdr(map);
    if (h->magic != map_magic) return "bad map header magic";
    const MapOps& o = ops(h);
    return o.check_consistency ? o.check_consistency(h) : std::string();
}

std::string check_arena_heap(void* map) {
    auto* h = static_cast<MapHeader*>(map);
    return heap_check(h->registry->heap.get());
}

}  // namespace ebpfrt::maps
