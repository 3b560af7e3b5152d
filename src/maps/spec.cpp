#include "maps/spec.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "maps/layout.hpp"

namespace ebpfrt {

std::string to_string(MapType type) {
    static constexpr const char* names[] = {
        "unspec",
        "hash",
        "array",
        "prog_array",
        "perf_event_array",
        "percpu_hash",
        "percpu_array",
        "stack_trace",
        "cgroup_array",
        "lru_hash",
        "lru_percpu_hash",
        "lpm_trie",
        "array_of_maps",
        "hash_of_maps",
        "devmap",
        "sockmap",
        "cpumap",
        "xskmap",
        "sockhash",
        "cgroup_storage",
        "reuseport_sockarray",
        "percpu_cgroup_storage",
        "queue",
        "stack",
        "sk_storage",
        "devmap_hash",
        "struct_ops",
        "ringbuf",
        "inode_storage",
        "task_storage",
        "bloom_filter",
        "user_ringbuf",
        "cgrp_storage",
        "arena",
    };
    auto i = static_cast<std::uint32_t>(type);
    if (i < std::size(names)) return names[i];
    return fmt::format("unknown({})", i);
}

}  // namespace ebpfrt

namespace ebpfrt::maps {

std::string check_flags(const MapSpec& spec, std::uint32_t allowed, int* err) {
    if (!(spec.flags & ~allowed)) return {};
    *err = EINVAL;
    return fmt::format("flags {:#x} are invalid for {} (allowed: {:#x})", spec.flags & ~allowed,
                       to_string(spec.type), allowed);
}

std::string check_key_size(const MapSpec& spec, std::uint32_t want, int* err) {
    if (spec.key_size == want) return {};
    *err = EINVAL;
    return fmt::format("key size {} is invalid for {} (must be {})", spec.key_size, to_string(spec.type),
                       want);
}

std::string check_nonzero(const MapSpec& spec, bool value, bool max_entries, int* err) {
    if (value && spec.value_size == 0) {
        *err = EINVAL;
        return fmt::format("value size 0 is invalid for {}", to_string(spec.type));
    }
    if (max_entries && spec.max_entries == 0) {
        *err = EINVAL;
        return fmt::format("max_entries 0 is invalid for {}", to_string(spec.type));
    }
    return {};
}

Result<MapSpec> normalize_spec(const MapSpec& spec) {
    if (spec.name.empty()) return Error(Errc::invalid_argument, "create map: the map has no name");
    std::string what = fmt::format("create map \"{}\"", spec.name);
    if (spec.name.size() > max_name_len)
        return Error(Errc::invalid_argument,
                     fmt::format("{}: the name is longer than {} characters", what, max_name_len));
    const MapOps* ops = ops_for(spec.type);
    if (!ops)
        return Error(Errc::unsupported, fmt::format("{}: map type {} is not supported in user space", what,
                                                    to_string(spec.type)));
    MapSpec s = spec;
    if (s.type == MapType::perf_event_array && s.max_entries == 0) s.max_entries = MapRef::possible_cpus();
    if ((s.flags & map_flags::rdonly) && (s.flags & map_flags::wronly))
        return Error(Errc::invalid_argument, what + ": flags rdonly and wronly exclude each other");
    if ((s.flags & map_flags::rdonly_prog) && (s.flags & map_flags::wronly_prog))
        return Error(Errc::invalid_argument, what + ": flags rdonly_prog and wronly_prog exclude each other");
    if (!s.initial_value.empty()) {
        if (s.type != MapType::array)
            return Error(
                Errc::invalid_argument,
                fmt::format("{}: an initial value is only valid for array, not {}", what, to_string(s.type)));
        if (s.initial_value.size() != s.value_size)
            return Error(Errc::invalid_argument,
                         fmt::format("{}: the initial value is {} bytes, the value size is {}", what,
                                     s.initial_value.size(), s.value_size));
    }
    if (s.spin_lock_off >= 0) {
        // map_check_btf: a bpf_spin_lock only in hash and array values (EOPNOTSUPP elsewhere).
        if (s.type != MapType::hash && s.type != MapType::array)
            return Error(Errc::unsupported,
                         fmt::format("{}: a bpf_spin_lock in the value is not supported for {}", what, to_string(s.type)));
        if (s.spin_lock_off % 4 != 0 || static_cast<std::uint64_t>(s.spin_lock_off) + 4 > s.value_size)
            return Error(Errc::invalid_argument, fmt::format("{}: bpf_spin_lock at offset {} does not fit a {}-byte value",
                                                             what, s.spin_lock_off, s.value_size));
    } else if (s.spin_lock_off != -1) {
        return Error(Errc::invalid_argument, fmt::format("{}: spin_lock_off {} is invalid", what, s.spin_lock_off));
    }
    int err = EINVAL;
    if (std::string why = ops->check(s, &err); !why.empty())
        return Error(errc_from_errno(err), what + ": " + why);
    return s;
}

}  // namespace ebpfrt::maps
