#pragma once
/// \file
/// Helper functions a program calls with `call IMM` (by id), `callx` (id in a register) or
/// `call` with src=2 (kfunc by BTF id). Kernel-numbered helpers and host helpers share one table.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// The helper calling convention: arguments in r1-r5, result in r0 (the kernel's, and the JIT's).
using HelperFn = std::uint64_t (*)(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t);

/// How a helper uses one argument register. In checked mode the engine checks pointer arguments
/// against the memory the program may touch before the call, so a helper never sees a wild pointer.
enum class Arg : std::uint8_t {
    none,    ///< not used
    scalar,  ///< any value
    mem,     ///< pointer to memory the helper reads and writes; its byte count is the next argument
    mem_ro,  ///< pointer to memory the helper only reads; its byte count is the next argument
    size,    ///< byte count of the preceding mem/mem_ro argument
    cstr,    ///< pointer to a NUL-terminated string the helper reads
};

/// One helper: its name (for messages and `features()`), its code and its prototype.
struct HelperProto {
    std::string name;
    HelperFn fn = nullptr;
    std::array<Arg, 5> args{Arg::scalar, Arg::scalar, Arg::scalar, Arg::scalar, Arg::scalar};
    /// A zero result ends the whole program at once with r0 = 0 (uBPF's "unwind" helper, used by
    /// the conformance suite's helper 5).
    bool unwind_on_zero = false;
};

/// Helpers by id and kfuncs by BTF id. A plain value: copy it, change it, hand it to an engine,
/// which resolves every call it needs when the program is prepared. Not thread-safe to mutate.
class HelperTable {
public:
    /// Registers helper `id`. Errors: already_exists (id taken), invalid_argument (no fn or a size
    /// argument that does not follow a mem argument).
    Result<void> add(std::uint32_t id, HelperProto proto);
    /// Registers or replaces helper `id`. Errors: invalid_argument as for add().
    Result<void> set(std::uint32_t id, HelperProto proto);
    /// The helper with this id, or nullptr.
    const HelperProto* find(std::uint32_t id) const noexcept;

    /// Registers a kfunc, called with `call` src=2 imm=btf_id. Errors as for add().
    Result<void> add_kfunc(std::uint32_t btf_id, HelperProto proto);
    /// The kfunc with this BTF id, or nullptr.
    const HelperProto* find_kfunc(std::uint32_t btf_id) const noexcept;

    /// Every helper by id, in id order.
    const std::map<std::uint32_t, HelperProto>& helpers() const noexcept { return helpers_; }

private:
    std::map<std::uint32_t, HelperProto> helpers_;
    std::map<std::uint32_t, HelperProto> kfuncs_;
};

/// Kernel helper ids (enum bpf_func_id) of the helpers ebpfrt provides.
namespace helper_ids {
inline constexpr std::uint32_t map_lookup_elem = 1, map_update_elem = 2, map_delete_elem = 3, probe_read = 4,
                               ktime_get_ns = 5, trace_printk = 6, get_prandom_u32 = 7, get_smp_processor_id = 8,
                               tail_call = 12, get_current_pid_tgid = 14, get_current_uid_gid = 15,
                               get_current_comm = 16, perf_event_output = 25, get_stackid = 27,
                               probe_write_user = 36, get_numa_node_id = 42, probe_read_str = 45, get_stack = 67,
                               map_push_elem = 87, map_pop_elem = 88, map_peek_elem = 89, spin_lock = 93,
                               spin_unlock = 94, probe_read_user = 112, probe_read_kernel = 113,
                               probe_read_user_str = 114, probe_read_kernel_str = 115, ktime_get_boot_ns = 125,
                               ringbuf_output = 130, ringbuf_reserve = 131, ringbuf_submit = 132,
                               ringbuf_discard = 133, ringbuf_query = 134, ktime_get_coarse_ns = 160,
                               for_each_map_elem = 164, snprintf = 165, trace_vprintk = 177, loop = 181,
                               strncmp = 182, map_lookup_percpu_elem = 195, ktime_get_tai_ns = 208;
}  // namespace helper_ids

/// Adds the kernel helpers that need no maps or runtime state to `table` (replacing what is there):
/// probe_read(_user/_kernel)(_str), probe_write_user, ktime_get_ns/boot_ns/coarse_ns/tai_ns,
/// get_prandom_u32, get_smp_processor_id, get_numa_node_id, get_current_pid_tgid/uid_gid/comm,
/// snprintf, strncmp. Reads and writes through user pointers never fault: a bad address is -EFAULT.
void add_kernel_helpers(HelperTable& table);

}  // namespace ebpfrt
