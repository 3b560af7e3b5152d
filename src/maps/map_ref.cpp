// MapRef: the byte-level host API. Each operation is the syscall-side raw function plus, on failure, an
// Error whose message names the map and the reason.

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <fmt/format.h>

#include "maps/handle.hpp"
#include "maps/layout.hpp"
#include "maps/maps_internal.hpp"

namespace ebpfrt {

using detail::MapAccess;
using maps::MapHeader;

Errc errc_from_errno(int err) noexcept {
    switch (err < 0 ? -err : err) {
    case EEXIST:
        return Errc::already_exists;
    case ENOENT:
        return Errc::not_found;
    case E2BIG:
    case ENOMEM:
    case ENOSPC:
    case EAGAIN:
        return Errc::out_of_memory;
    case EINVAL:
    case EBADF:
    case EFAULT:
        return Errc::invalid_argument;
    case EPERM:
    case EACCES:
        return Errc::permission_denied;
    case EOPNOTSUPP:
        return Errc::unsupported;
    case EBUSY:
        return Errc::busy;
    default:
        return Errc::io_error;
    }
}

int errno_value(const Error& error) noexcept {
    switch (error.code()) {
    case Errc::not_found:
        return ENOENT;
    case Errc::already_exists:
        return EEXIST;
    case Errc::out_of_memory:
        return E2BIG;
    case Errc::invalid_argument:
        return EINVAL;
    case Errc::permission_denied:
        return EPERM;
    case Errc::unsupported:
        return EOPNOTSUPP;
    case Errc::busy:
        return EBUSY;
    default:
        return EIO;
    }
}

namespace {

const char* flag_name(std::uint64_t flags) noexcept {
    switch (flags) {
    case update_flags::any:
        return "update_flags::any";
    case update_flags::noexist:
        return "update_flags::noexist";
    case update_flags::exist:
        return "update_flags::exist";
    default:
        return "flags";
    }
}

bool keyless(MapType t) noexcept {
    return t == MapType::queue || t == MapType::stack || t == MapType::bloom_filter || t == MapType::ringbuf;
}

// The reason for a kernel errno from operation `op` on map `r`, in words.
std::string reason(const MapRef& r, std::string_view op, long rc, std::uint64_t flags) {
    const MapSpec& s = r.spec();
    bool array_like = s.type == MapType::array || s.type == MapType::percpu_array ||
                      s.type == MapType::prog_array || s.type == MapType::array_of_maps ||
                      s.type == MapType::perf_event_array;
    switch (-rc) {
    case ENOENT:
        if (op == "next_key") return "no more keys";
        if (s.type == MapType::queue || s.type == MapType::stack) return "the map is empty";
        if (s.type == MapType::bloom_filter) return "the value is not in the filter";
        if (op == "update" && flags == update_flags::exist) return "key not found (update_flags::exist)";
        return "key not found";
    case EEXIST:
        if (array_like) return "array elements always exist (update_flags::noexist)";
        if (s.type == MapType::stack_trace) return "the bucket holds another stack";
        return fmt::format("key already exists ({})", flag_name(flags));
    case E2BIG:
        if (array_like && op != "push")
            return fmt::format("index out of range (max_entries {})", s.max_entries);
        if (s.type == MapType::queue || s.type == MapType::stack)
            return fmt::format(
                "map \"{}\" is full (max_entries {}; push with update_flags::exist to overwrite)", s.name,
                s.max_entries);
        return fmt::format("map \"{}\" is full (max_entries {})", s.name, s.max_entries);
    case ENOSPC:
        if (op.find("batch") != std::string_view::npos) return "the buffers cannot hold one whole bucket";
        if (s.type == MapType::perf_event_array)
            return "the perf buffer is full (the sample is counted as lost)";
        return fmt::format("map \"{}\" is full (max_entries {})", s.name, s.max_entries);
    case EAGAIN:
        return "the ring buffer is full (the record was dropped)";
    case ENOMEM:
        return "the arena is out of memory";
    case EPERM:
        if (op == "lookup" || op == "next_key" || op == "lookup_batch")
            return "the map is write-only for the host (map_flags::wronly)";
        if (op == "freeze") return "the map is read-only for the host (map_flags::rdonly)";
        return "the map is read-only for the host (map_flags::rdonly or frozen)";
    case EBUSY:
        return "the map is already frozen";
    case EBADF:
        return "no such map or program id";
    case EOPNOTSUPP:
        return fmt::format("{} is not supported for {}", op, to_string(s.type));
    case EINVAL:
        if (op == "erase" && array_like) return "array elements cannot be deleted";
        if (flags) return fmt::format("invalid flags {:#x} for {} on {}", flags, op, to_string(s.type));
        return fmt::format("{} is invalid for {}", op, to_string(s.type));
    default:
        return fmt::format("error {}", -rc);
    }
}

Error op_error(const MapRef& r, std::string_view op, long rc, std::uint64_t flags = 0) {
    return Error(errc_from_errno(static_cast<int>(rc)),
                 fmt::format("{} map \"{}\": {}", op, r.name(), reason(r, op, rc, flags)));
}

Result<void> check_key(const MapRef& r, std::string_view op, std::span<const std::byte> key,
                       bool may_be_empty) {
    if (key.empty() && (may_be_empty || r.key_size() == 0)) return {};
    if (key.size() != r.key_size())
        return Error(Errc::invalid_argument,
                     fmt::format("{} map \"{}\": key is {} bytes, the map's key size is {}", op, r.name(),
                                 key.size(), r.key_size()));
    return {};
}

Result<void> check_value(const MapRef& r, std::string_view op, std::size_t size) {
    if (size == r.value_buffer_size()) return {};
    if (r.per_cpu())
        return Error(
            Errc::invalid_argument,
            fmt::format("{} map \"{}\": value buffer is {} bytes, the map needs {} (value size {} rounded up "
                        "to 8, times {} possible CPUs)",
                        op, r.name(), size, r.value_buffer_size(), r.value_size(), MapRef::possible_cpus()));
    return Error(Errc::invalid_argument,
                 fmt::format("{} map \"{}\": value buffer is {} bytes, the map needs {}", op, r.name(), size,
                             r.value_buffer_size()));
}

const void* ptr_or_null(std::span<const std::byte> s) noexcept { return s.empty() ? nullptr : s.data(); }

unsigned read_possible_cpus() noexcept {
    unsigned highest = 0;
    bool any = false;
    if (std::FILE* f = std::fopen("/sys/devices/system/cpu/possible", "r")) {
        char buf[256] = {};
        std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        buf[n] = '\0';
        // "0-3,5,7-8": the highest id in any range.
        for (const char* p = buf; *p;) {
            if (*p >= '0' && *p <= '9') {
                unsigned v = 0;
                while (*p >= '0' && *p <= '9') v = v * 10 + unsigned(*p++ - '0');
                highest = any && v < highest ? highest : v;
                any = true;
            } else {
                ++p;
            }
        }
    }
    if (!any) {
        long n = sysconf(_SC_NPROCESSORS_CONF);
        return n > 0 ? static_cast<unsigned>(n) : 1;
    }
    return highest + 1;
}

}  // namespace

unsigned MapRef::possible_cpus() noexcept {
    static const unsigned n = read_possible_cpus();  // fixed for the life of the machine
    return n;
}

const MapSpec& MapRef::spec() const noexcept { return h_->spec; }
const std::string& MapRef::name() const noexcept { return h_->spec.name; }
MapType MapRef::type() const noexcept { return h_->spec.type; }
std::uint32_t MapRef::id() const noexcept { return h_->hdr->id; }
std::uint32_t MapRef::key_size() const noexcept { return h_->spec.key_size; }
std::uint32_t MapRef::value_size() const noexcept { return h_->spec.value_size; }
std::uint32_t MapRef::max_entries() const noexcept { return h_->spec.max_entries; }
bool MapRef::per_cpu() const noexcept { return maps::is_percpu(h_->spec.type); }
std::size_t MapRef::value_buffer_size() const noexcept { return h_->sys_value_size; }
void* MapRef::program_handle() const noexcept { return h_->hdr; }

// Lookup and update go straight to the ops the handle cached, not through maps::sys_* (which looks them
// up again by type).
int MapRef::raw_lookup(std::span<const std::byte> key, std::span<std::byte> value,
                       std::uint64_t flags) const noexcept {
    if (!h_->ops) [[unlikely]]
        return static_cast<int>(maps::sys_lookup(h_->hdr, ptr_or_null(key), value.data(), flags));
    return static_cast<int>(maps::sys_lookup_with(*h_->ops, h_->hdr, ptr_or_null(key), value.data(), flags));
}
int MapRef::raw_update(std::span<const std::byte> key, std::span<const std::byte> value,
                       std::uint64_t flags) const noexcept {
    if (!h_->ops) [[unlikely]]
        return static_cast<int>(maps::sys_update(h_->hdr, ptr_or_null(key), value.data(), flags));
    return static_cast<int>(maps::sys_update_with(*h_->ops, h_->hdr, ptr_or_null(key), value.data(), flags));
}
int MapRef::raw_erase(std::span<const std::byte> key) const noexcept {
    return static_cast<int>(maps::sys_delete(h_->hdr, ptr_or_null(key)));
}
int MapRef::raw_next_key(std::span<const std::byte> key, std::span<std::byte> next) const noexcept {
    return static_cast<int>(maps::sys_get_next_key(h_->hdr, ptr_or_null(key), next.data()));
}
int MapRef::raw_lookup_and_erase(std::span<const std::byte> key, std::span<std::byte> value,
                                 std::uint64_t flags) const noexcept {
    return static_cast<int>(maps::sys_lookup_and_delete(h_->hdr, ptr_or_null(key), value.data(), flags));
}

Error MapRef::error_from(std::string_view op, int rc, std::uint64_t flags) const {
    return op_error(*this, op, rc, flags);
}

Result<void> MapRef::lookup(std::span<const std::byte> key, std::span<std::byte> value,
                            std::uint64_t flags) const {
    if (auto ok = check_key(*this, "lookup", key, false); !ok) return ok;
    if (auto ok = check_value(*this, "lookup", value.size()); !ok) return ok;
    if (long rc = raw_lookup(key, value, flags)) return op_error(*this, "lookup", rc, flags);
    return {};
}

Result<void> MapRef::update(std::span<const std::byte> key, std::span<const std::byte> value,
                            std::uint64_t flags) const {
    if (auto ok = check_key(*this, "update", key, false); !ok) return ok;
    if (auto ok = check_value(*this, "update", value.size()); !ok) return ok;
    if (long rc = raw_update(key, value, flags)) return op_error(*this, "update", rc, flags);
    return {};
}

Result<void> MapRef::erase(std::span<const std::byte> key) const {
    if (auto ok = check_key(*this, "erase", key, false); !ok) return ok;
    if (long rc = raw_erase(key)) return op_error(*this, "erase", rc);
    return {};
}

Result<void> MapRef::next_key(std::span<const std::byte> key, std::span<std::byte> next) const {
    if (auto ok = check_key(*this, "next_key", key, true); !ok) return ok;
    if (next.size() != key_size() || key_size() == 0)
        return Error(Errc::invalid_argument,
                     fmt::format("next_key map \"{}\": key buffer is {} bytes, the map's key "
                                 "size is {}",
                                 name(), next.size(), key_size()));
    if (long rc = raw_next_key(key, next)) return op_error(*this, "next_key", rc);
    return {};
}

Result<void> MapRef::lookup_and_erase(std::span<const std::byte> key, std::span<std::byte> value,
                                      std::uint64_t flags) const {
    if (auto ok = check_key(*this, "lookup_and_erase", key, false); !ok) return ok;
    if (auto ok = check_value(*this, "lookup_and_erase", value.size()); !ok) return ok;
    if (long rc = raw_lookup_and_erase(key, value, flags))
        return op_error(*this, "lookup_and_erase", rc, flags);
    return {};
}

Result<void> MapRef::push(std::span<const std::byte> value, std::uint64_t flags) const {
    if (!keyless(type()) || type() == MapType::ringbuf)
        return Error(Errc::invalid_argument, fmt::format("push map \"{}\": {} has no push (queue, stack and "
                                                         "bloom_filter do)",
                                                         name(), to_string(type())));
    if (auto ok = check_value(*this, "push", value.size()); !ok) return ok;
    if (long rc = maps::sys_update(h_->hdr, nullptr, value.data(), flags))
        return op_error(*this, "push", rc, flags);
    return {};
}

Result<void> MapRef::pop(std::span<std::byte> value) const {
    if (type() == MapType::bloom_filter)  // as the kernel's bloom_map_pop_elem: -EOPNOTSUPP
        return Error(Errc::unsupported, fmt::format("pop map \"{}\": a bloom filter cannot give values back", name()));
    if (type() != MapType::queue && type() != MapType::stack)
        return Error(Errc::invalid_argument, fmt::format("pop map \"{}\": {} has no pop (queue and stack do)",
                                                         name(), to_string(type())));
    if (auto ok = check_value(*this, "pop", value.size()); !ok) return ok;
    if (long rc = maps::sys_lookup_and_delete(h_->hdr, nullptr, value.data(), 0))
        return op_error(*this, "pop", rc);
    return {};
}

Result<void> MapRef::peek(std::span<std::byte> value) const {
    if (!keyless(type()) || type() == MapType::ringbuf)
        return Error(Errc::invalid_argument, fmt::format("peek map \"{}\": {} has no peek (queue, stack and "
                                                         "bloom_filter do)",
                                                         name(), to_string(type())));
    if (auto ok = check_value(*this, "peek", value.size()); !ok) return ok;
    if (long rc = maps::sys_lookup(h_->hdr, nullptr, value.data(), 0)) return op_error(*this, "peek", rc);
    return {};
}

namespace {
Result<std::uint32_t> batch_count(const MapRef& r, std::string_view op, std::size_t keys,
                                  std::size_t values) {
    if (r.key_size() == 0)
        return Error(Errc::invalid_argument, fmt::format("{} map \"{}\": the map has no keys", op, r.name()));
    std::size_t n = keys / r.key_size();
    if (keys % r.key_size() != 0 || values != n * r.value_buffer_size())
        return Error(
            Errc::invalid_argument,
            fmt::format("{} map \"{}\": buffers of {} key bytes and {} value bytes do not hold a whole "
                        "number of elements ({} + {} bytes each)",
                        op, r.name(), keys, values, r.key_size(), r.value_buffer_size()));
    if (n > 0xffffffffu) n = 0xffffffffu;
    return static_cast<std::uint32_t>(n);
}
}  // namespace

Result<std::size_t> MapRef::lookup_batch(BatchCursor& cursor, std::span<std::byte> keys,
                                         std::span<std::byte> values, std::uint64_t elem_flags) const {
    auto n = batch_count(*this, "lookup_batch", keys.size(), values.size());
    if (!n) return n.error();
    std::uint32_t count = *n;
    if (long rc =
            maps::sys_lookup_batch(h_->hdr, cursor, keys.data(), values.data(), &count, elem_flags, false))
        return op_error(*this, "lookup_batch", rc, elem_flags);
    return std::size_t{count};
}

Result<std::size_t> MapRef::lookup_and_delete_batch(BatchCursor& cursor, std::span<std::byte> keys,
                                                    std::span<std::byte> values,
                                                    std::uint64_t elem_flags) const {
    auto n = batch_count(*this, "lookup_and_delete_batch", keys.size(), values.size());
    if (!n) return n.error();
    std::uint32_t count = *n;
    if (long rc =
            maps::sys_lookup_batch(h_->hdr, cursor, keys.data(), values.data(), &count, elem_flags, true))
        return op_error(*this, "lookup_and_delete_batch", rc, elem_flags);
    return std::size_t{count};
}

Result<std::size_t> MapRef::update_batch(std::span<const std::byte> keys, std::span<const std::byte> values,
                                         std::uint64_t elem_flags) const {
    auto n = batch_count(*this, "update_batch", keys.size(), values.size());
    if (!n) return n.error();
    std::uint32_t count = *n;
    if (long rc = maps::sys_update_batch(h_->hdr, keys.data(), values.data(), &count, elem_flags)) {
        Error e = op_error(*this, "update_batch", rc, elem_flags);
        return Error(e.code(), fmt::format("{} (after {} of {} elements)", e.message(), count, *n));
    }
    return std::size_t{count};
}

Result<std::size_t> MapRef::delete_batch(std::span<const std::byte> keys) const {
    auto n = batch_count(*this, "delete_batch", keys.size(),
                         keys.size() / (key_size() ? key_size() : 1) * value_buffer_size());
    if (!n) return n.error();
    std::uint32_t count = *n;
    if (long rc = maps::sys_delete_batch(h_->hdr, keys.data(), &count)) {
        Error e = op_error(*this, "delete_batch", rc);
        return Error(e.code(), fmt::format("{} (after {} of {} elements)", e.message(), count, *n));
    }
    return std::size_t{count};
}

Result<void> MapRef::set_map(std::span<const std::byte> key, const MapRef& inner, std::uint64_t flags) const {
    if (type() != MapType::array_of_maps && type() != MapType::hash_of_maps)
        return Error(Errc::invalid_argument,
                     fmt::format("set_map map \"{}\": {} is not a map-in-map", name(), to_string(type())));
    if (inner.h_->hdr->registry.get() != h_->hdr->registry.get())
        return Error(
            Errc::invalid_argument,
            fmt::format("set_map map \"{}\": inner map \"{}\" is in another arena", name(), inner.name()));
    if (!maps::inner_map_compatible(h_->hdr, inner.h_->hdr))
        return Error(
            Errc::invalid_argument,
            fmt::format("set_map map \"{}\": inner map \"{}\" ({} key {} value {} max_entries {}) does not "
                        "match the inner spec ({} key {} value {} max_entries {})",
                        name(), inner.name(), to_string(inner.type()), inner.key_size(), inner.value_size(),
                        inner.max_entries(), to_string(spec().inner->type), spec().inner->key_size,
                        spec().inner->value_size, spec().inner->max_entries));
    std::uint32_t id = inner.id();
    return update(key, detail::bytes_of(id), flags);
}

Result<MapRef> MapRef::get_map(std::span<const std::byte> key) const {
    if (type() != MapType::array_of_maps && type() != MapType::hash_of_maps)
        return Error(Errc::invalid_argument,
                     fmt::format("get_map map \"{}\": {} is not a map-in-map", name(), to_string(type())));
    std::uint32_t id = 0;
    auto idb = std::span<std::byte>(reinterpret_cast<std::byte*>(&id), 4);
    if (auto ok = lookup(key, idb); !ok) return ok.error();
    MapHeader* inner = maps::acquire_map_by_id(h_->hdr->registry.get(), id);
    if (!inner)
        return Error(
            Errc::not_found,
            fmt::format("get_map map \"{}\": inner map id {} is no longer in the arena", name(), id));
    return MapAccess::adopt(h_->arena, inner);
}

Result<void> MapRef::output(std::span<const std::byte> data, std::uint64_t flags) const {
    long rc;
    if (type() == MapType::ringbuf)
        rc = maps::ringbuf_output(h_->hdr, data.data(), data.size(), flags);
    else if (type() == MapType::perf_event_array)
        rc = maps::perf_event_output(h_->hdr, flags, data.data(), data.size());
    else
        return Error(Errc::invalid_argument, fmt::format("output map \"{}\": {} is not a ringbuf or "
                                                         "perf_event_array",
                                                         name(), to_string(type())));
    if (rc) return op_error(*this, "output", rc, flags);
    return {};
}

Result<void> MapRef::freeze() const {
    if (long rc = maps::sys_freeze(h_->hdr)) return op_error(*this, "freeze", rc);
    return {};
}

Result<std::span<std::byte>> MapRef::data() const {
    if (type() != MapType::array || !(spec().flags & map_flags::mmapable))
        return Error(Errc::unsupported,
                     fmt::format("data map \"{}\": only arrays created with map_flags::mmapable "
                                 "expose their values",
                                 name()));
    std::size_t bytes = 0;
    std::byte* p = maps::array_data(h_->hdr, &bytes);
    return std::span<std::byte>(p, bytes);
}

namespace detail {

Result<void> check_view(const MapRef& map, std::size_t key_size, std::size_t value_size, bool per_cpu,
                        bool keyless_view) {
    if (keyless_view) {
        if (map.type() != MapType::queue && map.type() != MapType::stack &&
            map.type() != MapType::bloom_filter)
            return Error(Errc::invalid_argument, fmt::format("map \"{}\": {} has keys (use Map<K, V>)",
                                                             map.name(), to_string(map.type())));
    } else {
        if (map.key_size() == 0)
            return Error(Errc::invalid_argument, fmt::format("map \"{}\": {} has no keys (use Queue<V> or "
                                                             "BloomFilter<V>)",
                                                             map.name(), to_string(map.type())));
        if (map.per_cpu() && !per_cpu)
            return Error(Errc::invalid_argument,
                         fmt::format("map \"{}\": {} is per-CPU (use PerCpuMap<K, V>)", map.name(),
                                     to_string(map.type())));
        if (!map.per_cpu() && per_cpu)
            return Error(Errc::invalid_argument, fmt::format("map \"{}\": {} is not per-CPU (use Map<K, V>)",
                                                             map.name(), to_string(map.type())));
        if (map.key_size() != key_size)
            return Error(Errc::invalid_argument,
                         fmt::format("map \"{}\": key size {} in the spec does not match sizeof(K) = {}",
                                     map.name(), map.key_size(), key_size));
    }
    if (map.value_size() != value_size)
        return Error(Errc::invalid_argument,
                     fmt::format("map \"{}\": value size {} in the spec does not match "
                                 "sizeof(V) = {}",
                                 map.name(), map.value_size(), value_size));
    return {};
}

}  // namespace detail
}  // namespace ebpfrt
