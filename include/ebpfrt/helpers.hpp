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

}  // namespace ebpfrt
