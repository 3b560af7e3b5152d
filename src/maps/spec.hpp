#pragma once
// Spec validation shared by every map type (the per-type rules are each type's MapOps::check).

#include <cstdint>
#include <string>

#include <ebpfrt/maps.hpp>

namespace ebpfrt::maps {

/// The spec as it will be created (perf_event_array max_entries 0 becomes the CPU count, as libbpf
/// does), or why it cannot be: `create map "x": <reason>` with the Errc of the kernel's errno.
Result<MapSpec> normalize_spec(const MapSpec& spec);

/// BPF_F_ACCESS_MASK.
inline constexpr std::uint32_t access_flags =
    map_flags::rdonly | map_flags::wronly | map_flags::rdonly_prog | map_flags::wronly_prog;

/// "" if `spec.flags` only has bits of `allowed`, else the reason (and *err = EINVAL).
std::string check_flags(const MapSpec& spec, std::uint32_t allowed, int* err);
/// "key size 8 is invalid for array (must be 4)" when key_size != want.
std::string check_key_size(const MapSpec& spec, std::uint32_t want, int* err);
/// The common "value size 0 / max_entries 0 is invalid" checks.
std::string check_nonzero(const MapSpec& spec, bool value, bool max_entries, int* err);

}  // namespace ebpfrt::maps
