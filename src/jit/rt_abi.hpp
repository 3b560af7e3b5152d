#pragma once
// The contract between generated code and the run-time support of compiled engines: the layout of
// the run header the code reads and writes directly, and the support functions it calls.

#include <cstddef>
#include <cstdint>

#include <ebpfrt/helpers.hpp>

namespace ebpfrt::jit {

/// Fields generated code accesses through the `run` argument, at these offsets.
struct RunHeader {
    std::uint64_t ctx_lo = 0;       // 0: context region [ctx_lo, ctx_hi)
    std::uint64_t ctx_hi = 0;       // 8
    // Checked mode: the bottom of the running frame's 512 bytes, or ~depth for a function whose stack
    // address never becomes a register value (no pointer into it can exist, and no address falls in
    // [~depth, ~depth + 512) below 2^64; the value still tells frames apart by depth).
    std::uint64_t stack_lo = 0;     // 16
    std::int64_t budget_left = 0;   // 24: instructions left (budget mode)
    std::uint64_t frames[8] = {};   // 32: stack_lo of each frame by depth (checked mode)
    std::uint8_t pending = 0;       // 96: non-zero after a helper asked for something (tail call, fault, unwind)
};
static_assert(offsetof(RunHeader, frames) == 32 && offsetof(RunHeader, pending) == 96);

/// Fault codes for rt_fault.
enum FaultCode : std::uint32_t { fault_budget = 1, fault_depth = 2, fault_stack = 3, fault_invalid = 4 };

/// Access kinds for rt_check.
enum AccessKind : std::uint32_t { access_read = 0, access_write = 1, access_atomic = 2 };

extern "C" {
// Ends the run with an error unless [addr, addr + size) may be accessed (and, for atomics, is aligned).
void ebpfrt_rt_check(void* run, std::uint64_t addr, std::uint64_t size, std::uint32_t insn, std::uint32_t kind);
// Ends the run with an error.
[[noreturn]] void ebpfrt_rt_fault(void* run, std::uint32_t insn, std::uint32_t code);
// Checks pointer arguments of helper `helper` (checked mode).
void ebpfrt_rt_check_helper(void* run, std::uint32_t insn, std::uint32_t helper, std::uint64_t r1, std::uint64_t r2,
                            std::uint64_t r3, std::uint64_t r4, std::uint64_t r5);
// After a helper that set `pending`: raises a callee's fault, unwinds, or performs a tail call.
void ebpfrt_rt_after_helper(void* run, std::uint32_t insn);
// After a helper asked for a tail call into compiled code (pending set): switches the run to the
// target and returns its entry function, which the caller's entry function then jumps to (musttail);
// nullptr when the pending request is anything else (fault, unwind, an interpreted target).
void* ebpfrt_rt_tail_entry(void* run);
// Ends the whole program with r0 = 0 (an unwind_on_zero helper returned 0).
[[noreturn]] void ebpfrt_rt_unwind(void* run);
// `callx`: target is a helper id or a function address from lddw src=4.
std::uint64_t ebpfrt_rt_callx(void* run, std::uint64_t target, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3,
                              std::uint64_t r4, std::uint64_t r5, std::uint32_t depth, std::uint32_t insn);
// Legacy packet load from the context, big-endian; out of bounds ends the program with r0 = 0.
std::uint64_t ebpfrt_rt_ldabs(void* run, std::uint64_t offset, std::uint32_t size);

// Direct map calls: what the runtime's bpf_map_lookup_elem / update_elem / delete_elem (helpers 1-3)
// do in an unchecked run, called by unchecked code instead of the helper (see direct_map_call). They
// take the helper's arguments, return its result and never leave anything pending. Defined next to
// those helpers, in src/runtime/runtime_helpers.cpp, which also uses them for its own unchecked runs.
std::uint64_t ebpfrt_rt_map_lookup(std::uint64_t map, std::uint64_t key);
std::uint64_t ebpfrt_rt_map_update(std::uint64_t map, std::uint64_t key, std::uint64_t value,
                                   std::uint64_t flags);
std::uint64_t ebpfrt_rt_map_delete(std::uint64_t map, std::uint64_t key);
}

/// A direct map call for a call of helper `id`.
struct DirectMapCall {
    const void* entry = nullptr;  ///< ebpfrt_rt_map_lookup/update/delete; nullptr: call the helper
    unsigned args = 0;            ///< arguments it takes (r1..r<args>)
};

/// The direct entry for helper `id` when `fn` is the runtime's own map helper for that id (so that
/// in an unchecked run both give the same results for any arguments); otherwise entry is nullptr
/// (another helper, or a host override of helpers 1-3, which must still be called). Defined with
/// the entries, in src/runtime: only the runtime can tell its helpers from others.
DirectMapCall direct_map_call(std::uint32_t id, HelperFn fn) noexcept;

}  // namespace ebpfrt::jit
