// Arrays: array, percpu_array, and the id arrays prog_array and array_of_maps. All elements exist from
// creation (zeroed); a lookup is a bounds check plus address arithmetic, with no lock: like the kernel,
// concurrent updates of one element may interleave, and programs update values in place.

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

struct ArrayMap {
    MapHeader h;
    std::uint32_t
        elem_size;  // bytes per index: stride, stride * nr_cpus (per-CPU), 4 (prog ids), 8 (map offsets)
    std::uint32_t reserved;
    std::uint64_t values_off;  // from the header; a page boundary for mmapable arrays
};

constexpr std::uint32_t array_create_flags = map_flags::numa_node | map_flags::mmapable | access_flags |
                                             map_flags::preserve_elems | map_flags::inner_map;
constexpr std::uint32_t percpu_min_unit_size = 32768;  // PCPU_MIN_UNIT_SIZE

ArrayMap* arr(MapHeader* h) noexcept { return body<ArrayMap>(h); }
std::byte* values(MapHeader* h) noexcept { return at(h, arr(h)->values_off); }
std::byte* slot(MapHeader* h, std::uint32_t idx) noexcept {
    return values(h) + std::size_t(idx) * arr(h)->elem_size;
}
std::uint32_t index_of(const void* key) noexcept {
    std::uint32_t i;
    std::memcpy(&i, key, 4);
    return i;
}

std::uint32_t elem_size_for(const MapSpec& s, std::uint32_t nr_cpus) noexcept {
    switch (s.type) {
    case MapType::percpu_array:
        return static_cast<std::uint32_t>(round_up(s.value_size, 8)) * nr_cpus;
    case MapType::prog_array:
        return 4;
    case MapType::array_of_maps:
        return 8;
    default:
        return static_cast<std::uint32_t>(round_up(s.value_size, 8));
    }
}

// array_map_alloc_check (kernel/bpf/arraymap.c)
std::string check_array(const MapSpec& s, int* err) {
    if (auto why = check_key_size(s, 4, err); !why.empty()) return why;
    if (auto why = check_nonzero(s, true, true, err); !why.empty()) return why;
    if (auto why = check_flags(s, array_create_flags, err); !why.empty()) return why;
    bool percpu = s.type == MapType::percpu_array;
    if (s.type != MapType::array && (s.flags & (map_flags::mmapable | map_flags::inner_map))) {
        *err = EINVAL;
        return fmt::format("flags mmapable and inner_map are only valid for array, not {}",
                           to_string(s.type));
    }
    if (s.flags & map_flags::preserve_elems) {
        *err = EINVAL;
        return fmt::format("flag preserve_elems is only valid for perf_event_array, not {}",
                           to_string(s.type));
    }
    if (s.value_size > 0x7fffffffu) {
        *err = E2BIG;
        return fmt::format("value size {} is too large", s.value_size);
    }
    if (percpu && round_up(s.value_size, 8) > percpu_min_unit_size) {
        *err = E2BIG;
        return fmt::format("value size {} is too large for percpu_array (at most {})", s.value_size,
                           percpu_min_unit_size);
    }
    return {};
}

// fd_array_map_alloc_check: the value is an id (a file descriptor in the kernel's syscall).
std::string check_fd_array(const MapSpec& s, int* err) {
    if (s.value_size != 4) {
        *err = EINVAL;
        return fmt::format("value size {} is invalid for {} (must be 4)", s.value_size, to_string(s.type));
    }
    if (s.type == MapType::array_of_maps) {
        if (!s.inner) {
            *err = EINVAL;
            return "array_of_maps needs an inner map spec";
        }
        MapType it = s.inner->type;
        if (it == MapType::array_of_maps || it == MapType::hash_of_maps || !ops_for(it)) {
            *err = EINVAL;
            return fmt::format("inner map type {} is invalid for array_of_maps", to_string(it));
        }
    }
    if (s.flags & map_flags::mmapable) {
        *err = EINVAL;
        return fmt::format("flag mmapable is invalid for {}", to_string(s.type));
    }
    return check_array(s, err);
}

void layout_array(const MapSpec& s, std::uint32_t nr_cpus, MapLayout& out) {
    std::uint64_t bytes = std::uint64_t{s.max_entries} * elem_size_for(s, nr_cpus);
    if (s.flags & map_flags::mmapable) {
        out.header_align = page_size;
        out.header_bytes = round_up(sizeof(ArrayMap), page_size) + round_up(bytes, page_size);
    } else {
        out.header_align = 64;
        out.header_bytes = round_up(sizeof(ArrayMap), 64) + bytes;
    }
}

long init_array(MapHeader* h, const MapSpec& s) noexcept {
    ArrayMap* a = arr(h);
    a->elem_size = elem_size_for(s, h->nr_cpus);
    a->values_off = (s.flags & map_flags::mmapable) ? round_up(sizeof(ArrayMap), page_size)
                                                    : round_up(sizeof(ArrayMap), 64);
    if (s.type == MapType::prog_array || s.type == MapType::array_of_maps) {
        for (std::uint32_t i = 0; i < s.max_entries; ++i) {
            if (s.type == MapType::prog_array)
                new (slot(h, i)) std::atomic<std::uint32_t>(0);
            else
                new (slot(h, i)) std::atomic<std::uint64_t>(0);
        }
    }
    return 0;  // values were zeroed with the header block
}

// ---- array and percpu_array ----

void* array_lookup(MapHeader* h, const void* key) noexcept {
    std::uint32_t i = index_of(key);
    return i < h->max_entries ? slot(h, i) : nullptr;
}

void* percpu_array_lookup_cpu(MapHeader* h, const void* key, std::uint32_t cpu) noexcept {
    std::uint32_t i = index_of(key);
    return i < h->max_entries ? slot(h, i) + std::size_t(cpu) * h->value_stride : nullptr;
}

void* percpu_array_lookup(MapHeader* h, const void* key) noexcept {
    return percpu_array_lookup_cpu(h, key, current_cpu(h->nr_cpus));
}

// array_map_update_elem: the checks in the kernel's order.
long array_check_update(MapHeader* h, std::uint32_t i, std::uint64_t flags) noexcept {
    if ((flags & ~update_flags::lock) > update_flags::exist) return -EINVAL;
    if (i >= h->max_entries) return -E2BIG;
    if (flags & update_flags::noexist) return -EEXIST;
    if ((flags & update_flags::lock) && h->spin_lock_off < 0) return -EINVAL;
    return 0;
}

long array_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    std::uint32_t i = index_of(key);
    if (long rc = array_check_update(h, i, flags)) return rc;
    copy_value_in(h, slot(h, i), value, flags);
    return 0;
}

// From a program, a per-CPU update writes this CPU's slot only.
long percpu_array_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    std::uint32_t i = index_of(key);
    if (long rc = array_check_update(h, i, flags)) return rc;
    std::memcpy(slot(h, i) + std::size_t(current_cpu(h->nr_cpus)) * h->value_stride, value, h->value_size);
    return 0;
}

long percpu_array_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    std::uint32_t i = index_of(key);
    if (long rc = array_check_update(h, i, flags)) return rc;
    std::byte* dst = slot(h, i);
    const auto* src = static_cast<const std::byte*>(value);
    for (std::uint32_t c = 0; c < h->nr_cpus; ++c)
        std::memcpy(dst + std::size_t(c) * h->value_stride, src + std::size_t(c) * h->value_stride,
                    h->value_size);
    return 0;
}

long array_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t flags) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -ENOENT;
    copy_value_out(h, value, slot(h, i), flags);
    return 0;
}

long percpu_array_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -ENOENT;
    // Slots of one index are contiguous, each round_up(value_size, 8) with zero padding: the syscall's
    // layout.
    std::memcpy(value, slot(h, i), std::size_t(h->value_stride) * h->nr_cpus);
    return 0;
}

long array_erase(MapHeader*, const void*) noexcept { return -EINVAL; }

// array_map_get_next_key: a missing or out-of-range key restarts at 0.
long array_next_key(MapHeader* h, const void* key, void* next) noexcept {
    std::uint32_t i = key ? index_of(key) : 0;
    std::uint32_t n;
    if (!key || i >= h->max_entries)
        n = 0;
    else if (i == h->max_entries - 1)
        return -ENOENT;
    else
        n = i + 1;
    std::memcpy(next, &n, 4);
    return 0;
}

long array_for_each(MapHeader* h, ForEachCallback cb, void* ctx) noexcept {
    bool percpu = h->type == MapType::percpu_array;
    std::uint32_t cpu = percpu ? current_cpu(h->nr_cpus) : 0;
    long n = 0;
    for (std::uint32_t i = 0; i < h->max_entries; ++i) {
        ++n;
        std::byte* v = slot(h, i) + (percpu ? std::size_t(cpu) * h->value_stride : 0);
        if (cb(h, &i, v, ctx)) break;
    }
    return n;
}

// ---- prog_array: u32 program ids, 0 = empty ----

std::atomic<std::uint32_t>* prog_slot(MapHeader* h, std::uint32_t i) noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(slot(h, i));
}

long prog_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -ENOENT;
    std::uint32_t id = prog_slot(h, i)->load(std::memory_order_acquire);
    if (!id) return -ENOENT;
    std::memcpy(value, &id, 4);
    return 0;
}

long prog_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    if (flags != update_flags::any) return -EINVAL;
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -E2BIG;
    std::uint32_t id;
    std::memcpy(&id, value, 4);
    if (!id) return -EBADF;  // the kernel's answer to a bad program fd
    prog_slot(h, i)->store(id, std::memory_order_release);
    return 0;
}

long prog_sys_delete(MapHeader* h, const void* key) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -E2BIG;
    return prog_slot(h, i)->exchange(0, std::memory_order_acq_rel) ? 0 : -ENOENT;
}

// ---- array_of_maps: inner map header offsets from the registry, 0 = empty ----

std::atomic<std::uint64_t>* map_slot(MapHeader* h, std::uint32_t i) noexcept {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(slot(h, i));
}

void* aom_lookup(MapHeader* h, const void* key) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return nullptr;
    return map_at(h->registry.get(), map_slot(h, i)->load(std::memory_order_acquire));
}

long aom_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    auto* inner = static_cast<MapHeader*>(aom_lookup(h, key));
    if (!inner) return -ENOENT;
    std::memcpy(value, &inner->id, 4);
    return 0;
}

long aom_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    if (flags != update_flags::any) return -EINVAL;
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -E2BIG;
    std::uint32_t id;
    std::memcpy(&id, value, 4);
    MapHeader* inner = acquire_map_by_id(h->registry.get(), id);
    if (!inner) return -EBADF;
    if (!inner_map_compatible(h, inner)) {
        release_map(inner);
        return -EINVAL;
    }
    // The slot owns one reference of the inner map; the one it replaces is dropped.
    MapHeader* old =
        map_at(h->registry.get(), map_slot(h, i)->exchange(map_offset(inner), std::memory_order_acq_rel));
    if (old) release_map(old);
    return 0;
}

long aom_sys_delete(MapHeader* h, const void* key) noexcept {
    std::uint32_t i = index_of(key);
    if (i >= h->max_entries) return -E2BIG;
    MapHeader* old = map_at(h->registry.get(), map_slot(h, i)->exchange(0, std::memory_order_acq_rel));
    if (!old) return -ENOENT;
    release_map(old);
    return 0;
}

void aom_release(MapHeader* h) noexcept {
    for (std::uint32_t i = 0; i < h->max_entries; ++i)
        if (MapHeader* old =
                map_at(h->registry.get(), map_slot(h, i)->exchange(0, std::memory_order_acq_rel)))
            release_map(old);
}

}  // namespace

std::byte* array_data(MapHeader* h, std::size_t* bytes) noexcept {
    if (bytes) *bytes = std::size_t(h->max_entries) * arr(h)->elem_size;
    return values(h);
}

bool array_value_window(MapHeader* h, ValueWindow* out) noexcept {
    if (h->type != MapType::array) return false;
    *out = {values(h), h->max_entries, arr(h)->elem_size, 0, h->value_size};
    return true;
}

std::byte* array_values(void* map, std::uint32_t* stride, std::uint32_t* max_entries) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (h == nullptr || h->type != MapType::array) return nullptr;
    if (stride) *stride = arr(h)->elem_size;
    if (max_entries) *max_entries = h->max_entries;
    return values(h);
}

std::uint32_t prog_array_get(void* map, std::uint32_t index) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (h->type != MapType::prog_array || index >= h->max_entries) return 0;
    return prog_slot(h, index)->load(std::memory_order_acquire);
}

const MapOps array_ops = {
    .check = check_array,
    .layout = layout_array,
    .init = init_array,
    .lookup = array_lookup,
    .update = array_update,
    .erase = array_erase,
    .for_each = array_for_each,
    .sys_lookup = array_sys_lookup,
    .sys_update = array_update,
    .sys_delete = array_erase,
    .sys_next_key = array_next_key,
    .generic_batch = true,
};

const MapOps percpu_array_ops = {
    .check = check_array,
    .layout = layout_array,
    .init = init_array,
    .lookup = percpu_array_lookup,
    .update = percpu_array_update,
    .erase = array_erase,
    .lookup_percpu = percpu_array_lookup_cpu,
    .for_each = array_for_each,
    .sys_lookup = percpu_array_sys_lookup,
    .sys_update = percpu_array_sys_update,
    .sys_delete = array_erase,
    .sys_next_key = array_next_key,
    .generic_batch = true,
};

const MapOps prog_array_ops = {
    .check = check_fd_array,
    .layout = layout_array,
    .init = init_array,
    .sys_lookup = prog_sys_lookup,
    .sys_update = prog_sys_update,
    .sys_delete = prog_sys_delete,
    .sys_next_key = array_next_key,
};

const MapOps array_of_maps_ops = {
    .check = check_fd_array,
    .layout = layout_array,
    .init = init_array,
    .lookup = aom_lookup,
    .sys_lookup = aom_sys_lookup,
    .sys_update = aom_sys_update,
    .sys_delete = aom_sys_delete,
    .sys_next_key = array_next_key,
    .release = aom_release,
};

}  // namespace ebpfrt::maps
