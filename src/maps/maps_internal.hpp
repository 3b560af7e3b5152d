#pragma once
// The maps module as programs and the bpf() emulation see it: raw, noexcept, allocation-free functions
// with the kernel's conventions (pointers or NULL, 0 or -errno). A map is named by the address of its
// header in this process's mapping of the arena (MapRef::program_handle()). No Boost here.

#include <cstdint>
#include <string>

#include <ebpfrt/maps.hpp>

namespace ebpfrt::maps {

// Flag values of the helpers, as the kernel numbers them (uapi/linux/bpf.h).
inline constexpr std::uint64_t rb_no_wakeup = 1;                // BPF_RB_NO_WAKEUP
inline constexpr std::uint64_t rb_force_wakeup = 2;             // BPF_RB_FORCE_WAKEUP
inline constexpr std::uint64_t rb_avail_data = 0;               // BPF_RB_AVAIL_DATA
inline constexpr std::uint64_t rb_ring_size = 1;                // BPF_RB_RING_SIZE
inline constexpr std::uint64_t rb_cons_pos = 2;                 // BPF_RB_CONS_POS
inline constexpr std::uint64_t rb_prod_pos = 3;                 // BPF_RB_PROD_POS
inline constexpr std::uint32_t ringbuf_busy_bit = 1u << 31;     // BPF_RINGBUF_BUSY_BIT
inline constexpr std::uint32_t ringbuf_discard_bit = 1u << 30;  // BPF_RINGBUF_DISCARD_BIT
inline constexpr std::uint32_t ringbuf_hdr_size = 8;            // BPF_RINGBUF_HDR_SZ
inline constexpr std::uint64_t f_index_mask = 0xffffffffULL;    // BPF_F_INDEX_MASK
inline constexpr std::uint64_t f_current_cpu = f_index_mask;    // BPF_F_CURRENT_CPU
inline constexpr std::uint64_t f_skip_field_mask = 0xff;        // BPF_F_SKIP_FIELD_MASK
inline constexpr std::uint64_t f_user_stack = 1u << 8;          // BPF_F_USER_STACK
inline constexpr std::uint64_t f_fast_stack_cmp = 1u << 9;      // BPF_F_FAST_STACK_CMP
inline constexpr std::uint64_t f_reuse_stackid = 1u << 10;      // BPF_F_REUSE_STACKID
inline constexpr std::uint64_t f_user_build_id = 1u << 11;      // BPF_F_USER_BUILD_ID

/// struct bpf_stack_build_id: one frame of a stack as build id + file offset (status valid), or as the
/// bare address (status ip) where the frame's object has no build id or is not a file.
struct StackBuildId {
    std::int32_t status;  // BPF_STACK_BUILD_ID_EMPTY 0, _VALID 1, _IP 2
    unsigned char build_id[20];
    std::uint64_t offset_or_ip;
};
static_assert(sizeof(StackBuildId) == 32);
inline constexpr std::int32_t build_id_empty = 0, build_id_valid = 1, build_id_ip = 2;
inline constexpr std::uint32_t perf_record_lost = 2;            // PERF_RECORD_LOST
inline constexpr std::uint32_t perf_record_sample = 9;          // PERF_RECORD_SAMPLE
// Offsets in a perf buffer's metadata page, as in struct perf_event_mmap_page.
inline constexpr std::size_t perf_data_head_offset = 1024;
inline constexpr std::size_t perf_data_tail_offset = 1032;
inline constexpr std::size_t perf_data_offset_offset = 1040;
inline constexpr std::size_t perf_data_size_offset = 1048;

// ---- Program ABI: what the eBPF helpers call ------------------------------------------------------------

/// bpf_map_lookup_elem: the value (this CPU's slot for per-CPU maps; the inner map's handle for
/// map-in-map), or nullptr. The pointer stays valid while the map exists (memory is recycled, never
/// unmapped), as with the kernel's preallocated maps.
void* map_lookup_elem(void* map, const void* key) noexcept;
/// bpf_map_update_elem: 0 or -errno. Per-CPU maps: updates this CPU's slot of an existing element.
long map_update_elem(void* map, const void* key, const void* value, std::uint64_t flags) noexcept;
/// bpf_map_delete_elem.
long map_delete_elem(void* map, const void* key) noexcept;
/// bpf_map_push_elem / pop / peek (queue, stack; bloom_filter push and peek).
long map_push_elem(void* map, const void* value, std::uint64_t flags) noexcept;
long map_pop_elem(void* map, void* value) noexcept;
long map_peek_elem(void* map, void* value) noexcept;
/// bpf_map_lookup_percpu_elem: the slot of `cpu`, or nullptr (cpu out of range, not per-CPU, no key).
void* map_lookup_percpu_elem(void* map, const void* key, std::uint32_t cpu) noexcept;

/// bpf_ringbuf_reserve: `size` bytes of a record, 8-byte aligned, or nullptr (full, bad size, flags != 0).
void* ringbuf_reserve(void* map, std::uint64_t size, std::uint64_t flags) noexcept;
/// bpf_ringbuf_submit / discard: commits a reserved record (discard: the consumer skips it).
void ringbuf_submit(void* data, std::uint64_t flags) noexcept;
void ringbuf_discard(void* data, std::uint64_t flags) noexcept;
/// bpf_ringbuf_output: reserve + copy + submit. 0 or -EAGAIN (full), -EINVAL.
long ringbuf_output(void* map, const void* data, std::uint64_t size, std::uint64_t flags) noexcept;
/// bpf_ringbuf_query (rb_avail_data, rb_ring_size, rb_cons_pos, rb_prod_pos); 0 for other flags.
std::uint64_t ringbuf_query(void* map, std::uint64_t flags) noexcept;

/// bpf_perf_event_output: a PERF_RECORD_SAMPLE with the raw data into buffer `flags & f_index_mask`
/// (f_current_cpu: this CPU). 0, -E2BIG (index), -EINVAL (flags), -ENOSPC (full: counted as lost).
long perf_event_output(void* map, std::uint64_t flags, const void* data, std::uint64_t size) noexcept;

/// bpf_get_stackid on a stack_trace map, for the `n` instruction pointers the caller collected
/// (innermost first). A map created with map_flags::stack_build_id stores `frames` (the same `n` frames
/// as StackBuildId; required for such a map) and ids them by the addresses, as the kernel does.
/// Returns the stack id or -errno (-EEXIST: bucket taken, -EFAULT: nothing left after skipping,
/// -EINVAL: flags).
long get_stackid(void* map, const std::uint64_t* ips, std::uint32_t n, std::uint64_t flags,
                 const StackBuildId* frames = nullptr) noexcept;

/// bpf_for_each_map_elem callback: return 0 to continue, 1 to stop.
using ForEachCallback = long (*)(void* map, const void* key, void* value, void* ctx);
/// Calls `cb` for each element (array, hash and their per-CPU/LRU variants; per-CPU: this CPU's slot).
/// Returns the number of elements visited, or -EINVAL (flags != 0, unsupported type).
long for_each_map_elem(void* map, ForEachCallback cb, void* ctx, std::uint64_t flags) noexcept;

/// A plain array map (not per-CPU): its values, element i at values + i * *stride (i < max_entries);
/// nullptr for any other map type. For engines that inline array lookups.
std::byte* array_values(void* map, std::uint32_t* stride, std::uint32_t* max_entries) noexcept;

/// A bpf_spin_lock word in a map value (bpf_spin_lock/unlock, BPF_F_LOCK): 0 free, 1 held. Values are
/// shared between processes, so it is a plain atomic word (spinning, then yielding), never a pthread object.
void value_spin_lock(void* word) noexcept;
void value_spin_unlock(void* word) noexcept;

/// Where a map's values lie when every element sits at a fixed stride in one block: `count` slots of
/// `stride` bytes from `base`, the value at [offset, offset + size) of each. For checked runs, which then
/// grant a program a map's values once instead of each value it looks up.
struct ValueWindow {
    std::byte* base = nullptr;
    std::size_t count = 0, stride = 0, offset = 0, size = 0;
};
/// True and *out set for array maps and preallocated hash and LRU hash maps (not per-CPU ones, not maps
/// of maps); false otherwise.
bool value_window(void* map, ValueWindow* out) noexcept;

/// prog_array: the program id in slot `index` (0: empty or out of range). Each process resolves the id
/// with its own program registry; nothing in the map depends on the process.
std::uint32_t prog_array_get(void* map, std::uint32_t index) noexcept;

/// The map's type, key size, value size (per element, one CPU) and max_entries, for the loader and
/// the verifier.
MapType map_type(const void* map) noexcept;
std::uint32_t map_key_size(const void* map) noexcept;
std::uint32_t map_value_size(const void* map) noexcept;
std::uint32_t map_max_entries(const void* map) noexcept;
std::uint32_t map_flags_of(const void* map) noexcept;

// ---- Syscall ABI: what bpf(BPF_MAP_*) does (for the compat layer and MapRef) --------------------------
// Buffers as the syscall's: per-CPU values are round_up(value_size, 8) * nr_cpus bytes. `key` may be
// nullptr where the syscall allows it (get_next_key: first key; queue/stack/bloom). 0 or -errno.

long sys_lookup(void* map, const void* key, void* value, std::uint64_t flags) noexcept;
long sys_update(void* map, const void* key, const void* value, std::uint64_t flags) noexcept;
long sys_delete(void* map, const void* key) noexcept;
long sys_get_next_key(void* map, const void* key, void* next_key) noexcept;
long sys_lookup_and_delete(void* map, const void* key, void* value, std::uint64_t flags) noexcept;
long sys_freeze(void* map) noexcept;
/// BPF_MAP_LOOKUP_BATCH / LOOKUP_AND_DELETE_BATCH: up to *count elements from cursor.position; *count is
/// set to how many were copied; cursor.done when the map is exhausted. -ENOENT if called when done,
/// -ENOSPC if the first bucket does not fit.
long sys_lookup_batch(void* map, BatchCursor& cursor, void* keys, void* values, std::uint32_t* count,
                      std::uint64_t elem_flags, bool and_delete) noexcept;
/// BPF_MAP_UPDATE_BATCH / DELETE_BATCH: *count is set to the number done before an error.
long sys_update_batch(void* map, const void* keys, const void* values, std::uint32_t* count,
                      std::uint64_t elem_flags) noexcept;
long sys_delete_batch(void* map, const void* keys, std::uint32_t* count) noexcept;

/// Bytes of a syscall value buffer (value_size, or round_up(value_size, 8) * nr_cpus for per-CPU maps).
std::uint32_t sys_value_size(const void* map) noexcept;
/// Number of per-CPU slots of the map.
std::uint32_t map_nr_cpus(const void* map) noexcept;

/// For tests: takes all of the map's locks (repairing after a dead lock owner, as any locker does) and
/// checks its invariants. Returns "" when consistent, else what is wrong.
std::string check_consistency(void* map);
/// For tests: checks the allocator of the arena that holds `map` (as its mutex's next owner, it first
/// completes the operation of an owner that died). "" when consistent, else what is wrong.
std::string check_arena_heap(void* map);

}  // namespace ebpfrt::maps
