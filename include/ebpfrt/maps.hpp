#pragma once
/// \file
/// Map specifications (what an ELF object or a host asks for) and, in src/maps/, the maps themselves,
/// which live in a shared-memory arena so that several processes can use them.

#include <array>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// Map types, numbered as the kernel numbers them (enum bpf_map_type).
enum class MapType : std::uint32_t {
    unspec = 0,
    hash = 1,
    array = 2,
    prog_array = 3,
    perf_event_array = 4,
    percpu_hash = 5,
    percpu_array = 6,
    stack_trace = 7,
    cgroup_array = 8,
    lru_hash = 9,
    lru_percpu_hash = 10,
    lpm_trie = 11,
    array_of_maps = 12,
    hash_of_maps = 13,
    devmap = 14,
    sockmap = 15,
    cpumap = 16,
    xskmap = 17,
    sockhash = 18,
    cgroup_storage = 19,
    reuseport_sockarray = 20,
    percpu_cgroup_storage = 21,
    queue = 22,
    stack = 23,
    sk_storage = 24,
    devmap_hash = 25,
    struct_ops = 26,
    ringbuf = 27,
    inode_storage = 28,
    task_storage = 29,
    bloom_filter = 30,
    user_ringbuf = 31,
    cgrp_storage = 32,
    arena = 33,
};

/// The kernel's name without the prefix ("hash", "percpu_array", ...), or "unknown(N)".
std::string to_string(MapType type);

/// Map flags (BPF_F_*), as the kernel numbers them.
namespace map_flags {
inline constexpr std::uint32_t no_prealloc = 1u << 0;
inline constexpr std::uint32_t no_common_lru = 1u << 1;
inline constexpr std::uint32_t numa_node = 1u << 2;
inline constexpr std::uint32_t rdonly = 1u << 3;
inline constexpr std::uint32_t wronly = 1u << 4;
inline constexpr std::uint32_t stack_build_id = 1u << 5;
inline constexpr std::uint32_t zero_seed = 1u << 6;
inline constexpr std::uint32_t rdonly_prog = 1u << 7;
inline constexpr std::uint32_t wronly_prog = 1u << 8;
inline constexpr std::uint32_t clone = 1u << 9;
inline constexpr std::uint32_t mmapable = 1u << 10;
inline constexpr std::uint32_t preserve_elems = 1u << 11;
inline constexpr std::uint32_t inner_map = 1u << 12;
}  // namespace map_flags

/// Update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK).
namespace update_flags {
inline constexpr std::uint64_t any = 0;
inline constexpr std::uint64_t noexist = 1;
inline constexpr std::uint64_t exist = 2;
inline constexpr std::uint64_t lock = 4;
}  // namespace update_flags

/// libbpf's pinning values (LIBBPF_PIN_*); iproute2's PIN_OBJECT_NS = 1, PIN_GLOBAL_NS = 2.
enum class Pinning : std::uint32_t { none = 0, by_name = 1, global_ns = 2 };

/// Where a map's description came from.
enum class MapOrigin : std::uint8_t {
    host,      ///< created by the host through the API
    btf_maps,  ///< BTF-defined, in the .maps section
    legacy,    ///< the legacy `maps` section (bpf_map_def or iproute2's bpf_elf_map)
    rodata,    ///< a .rodata* global-data section (one-element array)
    data,      ///< a .data* section
    bss,       ///< a .bss* section
    kconfig,   ///< .kconfig externs
};

/// What a map is: everything needed to create it. A plain value.
struct MapSpec {
    std::string name;
    MapType type = MapType::unspec;
    std::uint32_t key_size = 0;
    std::uint32_t value_size = 0;
    std::uint32_t max_entries = 0;
    std::uint32_t flags = 0;  ///< map_flags
    std::uint32_t numa_node = 0;
    Pinning pinning = Pinning::none;
    MapOrigin origin = MapOrigin::host;
    /// BTF type ids of key and value in the object's BTF (0 when unknown).
    std::uint32_t btf_key_type_id = 0;
    std::uint32_t btf_value_type_id = 0;
    /// Offset of the value's `struct bpf_spin_lock` (4 bytes, found in the value's BTF type by the ELF
    /// loader), -1 without one. Only hash and array maps may have one. Value copies by update and lookup
    /// leave it alone (lookups return it as 0), and update_flags::lock copies under it.
    std::int32_t spin_lock_off = -1;
    /// For array_of_maps / hash_of_maps: the spec every inner map must match.
    std::shared_ptr<const MapSpec> inner;
    /// For global-data maps: the initial bytes of element 0 (value_size long).
    std::vector<std::byte> initial_value;
    /// Initial slots of prog_array (program names) and map-in-map (map names), by index.
    std::vector<std::pair<std::uint32_t, std::string>> initial_slots;
};

// ---------------------------------------------------------------------------------------------------------
// Maps at run time: an Arena of shared memory holds the maps; MapRef is a byte-level handle on one map;
// Map<K, V>, PerCpuMap<K, V> and Queue<V> are typed views; RingBuffer and PerfBuffer read the event maps.
// ---------------------------------------------------------------------------------------------------------

class Arena;
class MapRef;

namespace detail {
struct ArenaState;
struct MapHandle;
struct MapAccess;

/// A non-owning reference to a callable, for callbacks that are only used during a call.
template <class Sig> class FunctionRef;
template <class R, class... A> class FunctionRef<R(A...)> {
public:
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> && std::is_invocable_r_v<R, F&, A...>)
    FunctionRef(F&& f) noexcept  // NOLINT(google-explicit-constructor): a parameter type, like std::function
        : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* obj, A... args) -> R {
              return std::invoke(*static_cast<std::remove_reference_t<F>*>(obj), std::forward<A>(args)...);
          }) {}
    R operator()(A... args) const { return call_(obj_, std::forward<A>(args)...); }

private:
    void* obj_;
    R (*call_)(void*, A...);
};
}  // namespace detail

/// Where an Arena lives.
struct ArenaOptions {
    /// Name of the POSIX shared-memory object (/dev/shm/<name>); empty for anonymous memory that only this
    /// process and its fork() children see.
    std::string name;
    /// Bytes of the arena when it is created (see Arena::bytes_for); ignored when opening.
    std::size_t size = 0;
    /// true: create the named arena, or open it if it already exists; false: open an existing one only.
    bool create = true;
};

/// Position of a batch iteration (lookup_batch, lookup_and_delete_batch): start with `{}`, pass the same
/// cursor to each call; `done` is set by the call that returned the last elements.
struct BatchCursor {
    std::uint64_t position = 0;  ///< next array index or hash bucket (the kernel's in_batch/out_batch)
    bool done = false;
};

/// The Errc for a kernel errno (EEXIST -> already_exists, ENOENT -> not_found, E2BIG/ENOMEM/ENOSPC ->
/// out_of_memory, EINVAL/EBADF/EFAULT -> invalid_argument, EPERM/EACCES -> permission_denied,
/// EOPNOTSUPP -> unsupported, EBUSY -> busy, anything else -> io_error).
Errc errc_from_errno(int err) noexcept;
/// The kernel errno that best matches an error's code (the inverse of errc_from_errno, which loses
/// detail: out_of_memory gives E2BIG). For the exact errno use MapRef's raw_* operations.
int errno_value(const Error& error) noexcept;

/// A handle on one map in an Arena. Cheap to copy; keeps the map and the arena mapping alive, so there is
/// no destruction-order rule. Operations follow the bpf() syscall's semantics for the map type (flags,
/// errors, per-CPU value buffers of round_up(value_size, 8) * possible_cpus() bytes).
/// Thread-safe and process-safe: any number of threads and processes may use the same map at once.
class MapRef {
public:
    /// The spec the map was created with (max_entries as adjusted at creation, e.g. perf_event_array).
    const MapSpec& spec() const noexcept;
    /// The map's name in its arena (spec().name).
    const std::string& name() const noexcept;
    /// The map's type (spec().type).
    MapType type() const noexcept;
    /// The map's id, unique in its arena (the kernel's map id); values of map-in-map slots.
    std::uint32_t id() const noexcept;
    /// Sizes from the spec: key bytes, value bytes (one CPU's), max_entries.
    std::uint32_t key_size() const noexcept;
    std::uint32_t value_size() const noexcept;
    std::uint32_t max_entries() const noexcept;
    /// Whether values are per-CPU (percpu_array, percpu_hash, lru_percpu_hash).
    bool per_cpu() const noexcept;
    /// Bytes of a value buffer for lookup/update: value_size, or round_up(value_size, 8) * possible_cpus()
    /// for per-CPU maps.
    std::size_t value_buffer_size() const noexcept;

    /// Copies the value of `key` into `value` (value_buffer_size() bytes). `flags`: 0 or update_flags::lock.
    /// For queue/stack/bloom_filter `key` is empty; this peeks (bloom: `value` is the element to test).
    /// Errors: not_found, invalid_argument (sizes, flags), permission_denied (map_flags::wronly).
    Result<void> lookup(std::span<const std::byte> key, std::span<std::byte> value,
                        std::uint64_t flags = 0) const;
    /// Creates or replaces the value of `key` (update_flags::any / noexist / exist).
    /// For queue/stack/bloom_filter `key` is empty and this pushes. Map-in-map values are inner map ids,
    /// prog_array values program ids. Errors: already_exists (noexist), not_found (exist),
    /// out_of_memory (map full, arena full), invalid_argument, permission_denied (rdonly or frozen).
    Result<void> update(std::span<const std::byte> key, std::span<const std::byte> value,
                        std::uint64_t flags = update_flags::any) const;
    /// Deletes `key`. Errors: not_found, invalid_argument (arrays cannot delete), permission_denied.
    Result<void> erase(std::span<const std::byte> key) const;
    /// Writes the key after `key` into `next` (`key` empty, or not in the map for hash types: the first
    /// key). Errors: not_found at the end, invalid_argument (types without keys).
    Result<void> next_key(std::span<const std::byte> key, std::span<std::byte> next) const;
    /// Copies the value of `key` and deletes it (hash types; queue/stack pop with an empty key).
    /// Errors: not_found, unsupported (other types), invalid_argument.
    Result<void> lookup_and_erase(std::span<const std::byte> key, std::span<std::byte> value,
                                  std::uint64_t flags = 0) const;

    /// Queue/stack: push, pop (remove and copy) and peek; bloom_filter: push adds, peek tests (not_found:
    /// certainly absent). push flags: update_flags::exist overwrites the oldest element when full.
    /// Errors: out_of_memory (full), not_found (empty), invalid_argument (flags, sizes, other types).
    Result<void> push(std::span<const std::byte> value, std::uint64_t flags = update_flags::any) const;
    Result<void> pop(std::span<std::byte> value) const;
    Result<void> peek(std::span<std::byte> value) const;

    /// Copies up to keys.size() / key_size() elements from `cursor` on (hash types: whole buckets;
    /// arrays: indices) and returns how many. Errors: not_found when the cursor is already done,
    /// out_of_memory when a bucket does not fit in the buffers, unsupported for other types.
    Result<std::size_t> lookup_batch(BatchCursor& cursor, std::span<std::byte> keys,
                                     std::span<std::byte> values, std::uint64_t elem_flags = 0) const;
    /// lookup_batch, then deletes what it returned (hash types only).
    Result<std::size_t> lookup_and_delete_batch(BatchCursor& cursor, std::span<std::byte> keys,
                                                std::span<std::byte> values,
                                                std::uint64_t elem_flags = 0) const;
    /// Updates keys.size() / key_size() elements in order; stops at the first error, whose message says
    /// how many were done. Returns the count.
    Result<std::size_t> update_batch(std::span<const std::byte> keys, std::span<const std::byte> values,
                                     std::uint64_t elem_flags = update_flags::any) const;
    /// Deletes keys.size() / key_size() keys in order; stops at the first error. Returns the count.
    Result<std::size_t> delete_batch(std::span<const std::byte> keys) const;

    /// Map-in-map: puts `inner` (a map of the same arena matching spec().inner) at `key`.
    /// Errors: invalid_argument (not a map-in-map, other arena, inner spec mismatch), as update().
    Result<void> set_map(std::span<const std::byte> key, const MapRef& inner,
                         std::uint64_t flags = update_flags::any) const;
    /// Map-in-map: the inner map at `key`. Errors: not_found.
    Result<MapRef> get_map(std::span<const std::byte> key) const;

    /// Ringbuf: writes one record (flags: BPF_RB_NO_WAKEUP 1, BPF_RB_FORCE_WAKEUP 2).
    /// perf_event_array: writes one sample to buffer `flags` (an index, or 0xffffffff for the current CPU).
    /// Errors: out_of_memory (no room: the record is dropped, as the kernel does), invalid_argument.
    Result<void> output(std::span<const std::byte> data, std::uint64_t flags = 0) const;

    /// Makes the map read-only for the host side (BPF_MAP_FREEZE); programs may still write.
    Result<void> freeze() const;
    /// The values of an array created with map_flags::mmapable, in place (what mmap() of the kernel map
    /// gives). Errors: unsupported for other maps.
    Result<std::span<std::byte>> data() const;

    /// Allocation-free, non-throwing forms for hot paths: 0 or a negative kernel errno (-ENOENT, -EEXIST,
    /// -E2BIG, -EINVAL, -EPERM, ...). Sizes are not checked: buffers must be key_size() and
    /// value_buffer_size() bytes. An empty `key` means no key (first key, queue/stack/bloom).
    int raw_lookup(std::span<const std::byte> key, std::span<std::byte> value,
                   std::uint64_t flags = 0) const noexcept;
    int raw_update(std::span<const std::byte> key, std::span<const std::byte> value,
                   std::uint64_t flags = update_flags::any) const noexcept;
    int raw_erase(std::span<const std::byte> key) const noexcept;
    int raw_next_key(std::span<const std::byte> key, std::span<std::byte> next) const noexcept;
    int raw_lookup_and_erase(std::span<const std::byte> key, std::span<std::byte> value,
                             std::uint64_t flags = 0) const noexcept;
    /// The Error the Result API reports for code `rc` (negative errno) of a raw operation `op` ("lookup",
    /// "update", "erase", "next_key", ...), e.g. `update map "counts": key already exists (...)`.
    Error error_from(std::string_view op, int rc, std::uint64_t flags = 0) const;

    /// The address by which programs name this map: the `map` argument of the helper ABI (map_lookup_elem
    /// and friends in src/maps/maps_internal.hpp). Valid while a handle on the map exists in this process.
    void* program_handle() const noexcept;

    /// Number of possible CPUs (the highest id in /sys/devices/system/cpu/possible, plus one): the
    /// number of slots of per-CPU values.
    static unsigned possible_cpus() noexcept;

    /// Handles on the same map (in this process's mapping) compare equal.
    friend bool operator==(const MapRef& a, const MapRef& b) noexcept {
        return a.program_handle() == b.program_handle();
    }

private:
    friend struct detail::MapAccess;
    explicit MapRef(std::shared_ptr<detail::MapHandle> h) noexcept : h_(std::move(h)) {}
    std::shared_ptr<detail::MapHandle> h_;
};

/// A shared-memory arena that holds maps: named (several processes, and several Arena objects in one
/// process, use it at once) or anonymous. A cheap shared handle; the mapping stays while any Arena or
/// MapRef on it lives. All members are thread- and process-safe.
class Arena {
public:
    /// Creates or opens an arena. Errors: invalid_argument (size 0 or too small when creating, bad name),
    /// not_found (create = false and no such arena), permission_denied, io_error, out_of_memory (mmap).
    static Result<Arena> create(const ArenaOptions& options);
    /// Unlinks the named shared-memory object; mappings that exist stay valid. Errors: not_found.
    static Result<void> remove(std::string_view name);
    /// Bytes of arena that creating `spec` takes (layout plus allocator overhead), to size an arena from
    /// the maps it will hold. 0 for an invalid spec.
    static std::size_t bytes_for(const MapSpec& spec);

    /// Creates a map with the kernel's rules for its type and flags; global-data maps get their
    /// initial_value. Errors: already_exists (name taken), invalid_argument (bad spec, message naming the
    /// rule), unsupported (a kernel-only map type), out_of_memory (the arena has no room: names the map).
    Result<MapRef> create_map(const MapSpec& spec);
    /// Opens the map called `name`. Errors: not_found.
    Result<MapRef> map(std::string_view name) const;
    /// Opens the map with this id. Errors: not_found.
    Result<MapRef> map_by_id(std::uint32_t id) const;
    /// Names of the maps, in creation order.
    std::vector<std::string> map_names() const;
    /// Removes the name; the memory is reclaimed when the last handle or map-in-map slot lets go.
    /// Errors: not_found.
    Result<void> remove_map(std::string_view name);
    /// Bytes still free in the arena.
    std::size_t free_bytes() const;
    /// Total bytes of the arena.
    std::size_t size() const noexcept;
    /// The shared-memory name ("" for anonymous).
    const std::string& name() const noexcept;

private:
    explicit Arena(std::shared_ptr<detail::ArenaState> s) noexcept : s_(std::move(s)) {}
    std::shared_ptr<detail::ArenaState> s_;
};

/// Reads a ringbuf map as libbpf's ring_buffer does: records in order, discarded ones skipped.
/// One consumer per ring at a time (the consumer position is shared). Not thread-safe.
class RingBuffer {
public:
    /// Called with each record; a non-zero return stops consuming after that record.
    using Callback = detail::FunctionRef<int(std::span<const std::byte>)>;

    /// Errors: invalid_argument (not a ringbuf).
    static Result<RingBuffer> from(MapRef map);
    /// Consumes every committed record (ring_buffer__consume). Returns how many were passed to `fn`.
    Result<std::size_t> consume(Callback fn);
    /// Waits up to `timeout` (negative: forever) for a record, then consumes (ring_buffer__poll).
    Result<std::size_t> poll(std::chrono::milliseconds timeout, Callback fn);
    /// Bytes between the consumer and producer positions.
    std::size_t available() const noexcept;
    /// The ringbuf map read.
    const MapRef& map() const noexcept { return map_; }

private:
    explicit RingBuffer(MapRef m) : map_(std::move(m)) {}
    MapRef map_;
    std::uint64_t stuck_pos_ = ~std::uint64_t{0};  // a busy record seen at the head, for dead-producer repair
    std::chrono::steady_clock::time_point stuck_since_{};
};

/// Reads a perf_event_array's per-CPU buffers as libbpf's perf_buffer does.
class PerfBuffer {
public:
    /// (cpu, raw sample bytes, padded to 8 with the u32 size field as the kernel does).
    using SampleCallback = detail::FunctionRef<void(std::uint32_t, std::span<const std::byte>)>;
    /// (cpu, number of samples lost because the buffer was full).
    using LostCallback = detail::FunctionRef<void(std::uint32_t, std::uint64_t)>;

    /// Errors: invalid_argument (not a perf_event_array).
    static Result<PerfBuffer> from(MapRef map);
    /// Consumes every buffer; returns the number of records (samples and lost records) seen.
    Result<std::size_t> consume(SampleCallback on_sample, LostCallback on_lost);
    /// Waits up to `timeout` (negative: forever) for data, then consumes.
    Result<std::size_t> poll(std::chrono::milliseconds timeout, SampleCallback on_sample,
                             LostCallback on_lost);
    /// The perf_event_array map read.
    const MapRef& map() const noexcept { return map_; }

private:
    explicit PerfBuffer(MapRef m) : map_(std::move(m)) {}
    MapRef map_;
    std::vector<std::byte> scratch_;  // a record that wraps around the end of a buffer, made contiguous
};

// ---------------------------------------------------------------------------------------------------------
// Typed views
// ---------------------------------------------------------------------------------------------------------

/// Opt-in for key types that have padding or other non-unique representations (the caller promises to
/// zero the padding, since keys are compared as bytes): `template <> inline constexpr bool
/// allow_map_key<MyKey> = true;`.
template <class K> inline constexpr bool allow_map_key = false;

/// A map key: compared byte by byte, so it must have no padding (or be explicitly allowed).
template <class K>
concept MapKey = std::is_trivially_copyable_v<K> &&
                 (std::has_unique_object_representations_v<K> || allow_map_key<K>);
/// A map value: copied byte by byte.
template <class V>
concept MapValue = std::is_trivially_copyable_v<V>;

namespace detail {
template <class T> std::span<const std::byte, sizeof(T)> bytes_of(const T& v) noexcept {
    return std::span<const std::byte, sizeof(T)>(reinterpret_cast<const std::byte*>(std::addressof(v)),
                                                 sizeof(T));
}
template <class T> T from_bytes(const std::array<std::byte, sizeof(T)>& b) noexcept {
    return std::bit_cast<T>(b);
}
/// Checks a typed view's sizes against the map once. Errors: invalid_argument.
Result<void> check_view(const MapRef& map, std::size_t key_size, std::size_t value_size, bool per_cpu,
                        bool keyless);
}  // namespace detail

/// A typed view of a map with keys (hash, array and their variants, lpm_trie with a key struct).
/// Sizes are checked once by from(); operations forward to MapRef's byte API.
template <MapKey K, MapValue V> class Map {
public:
    /// Errors: invalid_argument ("map \"counts\": key size 4 in the spec does not match sizeof(K) = 8"),
    /// also for per-CPU maps (use PerCpuMap) and maps without keys (use Queue).
    static Result<Map> from(MapRef map) {
        if (auto ok = detail::check_view(map, sizeof(K), sizeof(V), false, false); !ok) return ok.error();
        return Map(std::move(map));
    }

    /// The value of `key`, or nullopt. Allocation-free.
    std::optional<V> lookup(const K& key) const noexcept {
        std::array<std::byte, sizeof(V)> buf;
        if (ref_.raw_lookup(detail::bytes_of(key), buf) != 0) return std::nullopt;
        return detail::from_bytes<V>(buf);
    }
    /// Errors: as MapRef::update.
    Result<void> update(const K& key, const V& value, std::uint64_t flags = update_flags::any) const {
        int rc = ref_.raw_update(detail::bytes_of(key), detail::bytes_of(value), flags);
        if (rc == 0) return {};
        return ref_.error_from("update", rc, flags);
    }
    /// Errors: as MapRef::erase.
    Result<void> erase(const K& key) const {
        int rc = ref_.raw_erase(detail::bytes_of(key));
        if (rc == 0) return {};
        return ref_.error_from("erase", rc);
    }

    /// Input range over (key, value) pairs in get_next_key order. Concurrent deletes may make it restart
    /// from the first key, as iterating a kernel hash map does.
    class Entries {
    public:
        struct Sentinel {};
        class Iterator {
        public:
            using value_type = std::pair<K, V>;
            using difference_type = std::ptrdiff_t;
            Iterator() = default;
            const value_type& operator*() const noexcept { return *cur_; }
            const value_type* operator->() const noexcept { return &*cur_; }
            Iterator& operator++() {
                K prev = cur_->first;
                load(&prev);
                return *this;
            }
            void operator++(int) { ++*this; }
            friend bool operator==(const Iterator& it, Sentinel) noexcept { return !it.cur_; }

        private:
            friend class Entries;
            explicit Iterator(const Map* m) : map_(m) { load(nullptr); }
            void load(const K* prev) {
                std::array<std::byte, sizeof(K)> next;
                std::optional<K> from;
                if (prev) from = *prev;
                for (;;) {
                    int rc = from ? map_->ref_.raw_next_key(detail::bytes_of(*from), next)
                                  : map_->ref_.raw_next_key({}, next);
                    if (rc != 0) {
                        cur_.reset();
                        return;
                    }
                    K k = detail::from_bytes<K>(next);
                    if (auto v = map_->lookup(k)) {
                        cur_.emplace(k, *v);
                        return;
                    }
                    from = k;  // deleted meanwhile: continue after it
                }
            }
            const Map* map_ = nullptr;
            std::optional<value_type> cur_;
        };
        Iterator begin() const { return Iterator(map_); }
        Sentinel end() const noexcept { return {}; }

    private:
        friend class Map;
        explicit Entries(const Map* m) : map_(m) {}
        const Map* map_;
    };
    /// The entries; the Map must outlive the range.
    Entries entries() const { return Entries(this); }

    /// The byte-level handle underneath.
    const MapRef& ref() const noexcept { return ref_; }

private:
    explicit Map(MapRef r) : ref_(std::move(r)) {}
    MapRef ref_;
};

/// A typed view of a per-CPU map: one V per possible CPU.
template <MapKey K, MapValue V> class PerCpuMap {
public:
    /// Errors: invalid_argument (sizes, or the map is not per-CPU).
    static Result<PerCpuMap> from(MapRef map) {
        if (auto ok = detail::check_view(map, sizeof(K), sizeof(V), true, false); !ok) return ok.error();
        return PerCpuMap(std::move(map));
    }
    /// The values of `key`, indexed by CPU, or nullopt.
    std::optional<std::vector<V>> lookup(const K& key) const {
        std::vector<std::byte> buf(ref_.value_buffer_size());
        if (ref_.raw_lookup(detail::bytes_of(key), buf) != 0) return std::nullopt;
        std::vector<V> out(cpus());
        for (std::size_t c = 0; c < out.size(); ++c)
            std::memcpy(&out[c], buf.data() + c * stride(), sizeof(V));
        return out;
    }
    /// Sets the values of `key` (values.size() must be the number of possible CPUs).
    /// Errors: invalid_argument (wrong count), as MapRef::update.
    Result<void> update(const K& key, std::span<const V> values,
                        std::uint64_t flags = update_flags::any) const {
        if (values.size() != cpus())
            return Error(Errc::invalid_argument,
                         "update map \"" + ref_.name() + "\": " + std::to_string(values.size()) +
                             " per-CPU values given, " + std::to_string(cpus()) + " possible CPUs");
        std::vector<std::byte> buf(ref_.value_buffer_size());
        for (std::size_t c = 0; c < values.size(); ++c)
            std::memcpy(buf.data() + c * stride(), &values[c], sizeof(V));
        return ref_.update(detail::bytes_of(key), buf, flags);
    }
    /// Sets every CPU's value of `key` to `value`.
    Result<void> update_all(const K& key, const V& value, std::uint64_t flags = update_flags::any) const {
        std::vector<V> values(cpus(), value);
        return update(key, values, flags);
    }
    /// Errors: as MapRef::erase.
    Result<void> erase(const K& key) const { return ref_.erase(detail::bytes_of(key)); }
    /// The byte-level handle underneath.
    const MapRef& ref() const noexcept { return ref_; }

private:
    explicit PerCpuMap(MapRef r) : ref_(std::move(r)) {}
    std::size_t cpus() const noexcept { return ref_.value_buffer_size() / stride(); }
    static constexpr std::size_t stride() noexcept { return (sizeof(V) + 7) / 8 * 8; }
    MapRef ref_;
};

/// A typed view of a queue or stack map.
template <MapValue V> class Queue {
public:
    /// Errors: invalid_argument (value size, or not a queue or stack).
    static Result<Queue> from(MapRef map) {
        if (auto ok = detail::check_view(map, 0, sizeof(V), false, true); !ok) return ok.error();
        if (map.type() != MapType::queue && map.type() != MapType::stack)
            return Error(Errc::invalid_argument, "map \"" + map.name() + "\": not a queue or stack");
        return Queue(std::move(map));
    }
    /// Errors: out_of_memory (full without update_flags::exist), invalid_argument.
    Result<void> push(const V& v, std::uint64_t flags = update_flags::any) const {
        return ref_.push(detail::bytes_of(v), flags);
    }
    /// Removes and returns the next element (oldest for a queue, newest for a stack), or nullopt if empty.
    std::optional<V> pop() const noexcept {
        std::array<std::byte, sizeof(V)> buf;
        if (ref_.raw_lookup_and_erase({}, buf) != 0) return std::nullopt;
        return detail::from_bytes<V>(buf);
    }
    /// The next element without removing it, or nullopt.
    std::optional<V> peek() const noexcept {
        std::array<std::byte, sizeof(V)> buf;
        if (ref_.raw_lookup({}, buf) != 0) return std::nullopt;
        return detail::from_bytes<V>(buf);
    }
    /// The byte-level handle underneath.
    const MapRef& ref() const noexcept { return ref_; }

private:
    explicit Queue(MapRef r) : ref_(std::move(r)) {}
    MapRef ref_;
};

/// A typed view of a bloom_filter map.
template <MapValue V> class BloomFilter {
public:
    /// Errors: invalid_argument (value size, or not a bloom filter).
    static Result<BloomFilter> from(MapRef map) {
        if (auto ok = detail::check_view(map, 0, sizeof(V), false, true); !ok) return ok.error();
        if (map.type() != MapType::bloom_filter)
            return Error(Errc::invalid_argument, "map \"" + map.name() + "\": not a bloom_filter");
        return BloomFilter(std::move(map));
    }
    /// Adds `v`. Errors: as MapRef::push.
    Result<void> add(const V& v) const { return ref_.push(detail::bytes_of(v)); }
    /// False if `v` was certainly never added; true if it probably was.
    bool maybe_contains(const V& v) const noexcept {
        auto copy = v;
        auto b = std::span<std::byte, sizeof(V)>(reinterpret_cast<std::byte*>(&copy), sizeof(V));
        return ref_.raw_lookup({}, b) == 0;
    }
    /// The byte-level handle underneath.
    const MapRef& ref() const noexcept { return ref_; }

private:
    explicit BloomFilter(MapRef r) : ref_(std::move(r)) {}
    MapRef ref_;
};

}  // namespace ebpfrt
