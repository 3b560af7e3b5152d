#pragma once
/// \file
/// Execution engines. The interpreter runs all of ISA v4 (RFC 9669) from pre-decoded code; the LLVM
/// JIT and AOT engines arrive later and share the same options and helper conventions.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// How a program is executed.
enum class Engine : std::uint8_t { interpreter, jit, aot };

/// What an lddw with a pseudo src (map fd/idx, map value, BTF id) resolves to.
struct ResolvedImm {
    std::uint64_t value = 0;        ///< the 64-bit value loaded into dst
    std::span<std::byte> region{};  ///< memory the program may then touch in checked mode (a map value)
    /// For a reference to an array map (not per-CPU) whose lookups a compiling engine may inline
    /// (bounds check and address arithmetic instead of calling helper 1): where element i lives,
    /// values + i * stride for i < max_entries. Empty (values == nullptr) otherwise.
    struct InlineArray {
        std::byte* values = nullptr;
        std::uint32_t stride = 0;
        std::uint32_t max_entries = 0;
    } array{};
};

/// Resolves an lddw whose src is not 0 or 4 (pseudo_func is resolved by the engine itself).
/// Called once per such lddw when the program is prepared, with the slot index and both slots.
using LddwResolver = std::function<Result<ResolvedImm>(std::size_t index, const Insn& lo, const Insn& hi)>;

/// Options of an engine; aggregates with defaults, filled with designated initializers.
struct VmOptions {
    /// Check every load, store and helper pointer argument against the regions the program may touch
    /// (its context, its stack, memory granted by helpers and resolved lddw). Off only for programs
    /// a verifier has proved safe.
    bool checked = true;
    /// Slots whose load, store or atomic a verifier proved in bounds on every path
    /// (VerifyReport::proved): a compiling engine's checked mode emits no run-time check for them.
    /// Empty: every access is checked.
    std::vector<bool> proved{};
    /// Instructions one run may execute, 0 for no limit. Exceeding it ends the run with an error.
    std::uint64_t insn_budget = 0;
    /// Validation limits (see isa::validate).
    std::size_t max_insns = isa::max_insns;
    /// Resolves map and BTF lddw; without one such an lddw is an unsupported error at prepare time.
    LddwResolver resolve_lddw{};
    /// Handed to helpers through Invocation::env() (the runtime passes its own state).
    void* env = nullptr;
};

class Interpreter;
class JitProgram;

/// `count` slots of `stride` bytes from `base`, of which bytes [offset, offset + size) of each may be
/// touched: the values of a map whose elements are laid out at a fixed stride.
struct StridedRegion {
    std::byte* base = nullptr;
    std::size_t count = 0;
    std::size_t stride = 0;
    std::size_t offset = 0;
    std::size_t size = 0;
};

/// The program run that is calling a helper: valid only during that call, one per thread.
/// Helpers use it to hand memory to the program, to check pointers, and for tail calls and callbacks.
class Invocation {
public:
    /// The innermost run on this thread that is inside a helper call, or nullptr.
    static Invocation* current() noexcept;

    /// Lets the program read and write `region` for the rest of this run (checked mode);
    /// e.g. the map value a lookup helper returns. A no-op in unchecked mode.
    virtual void grant(std::span<std::byte> region) noexcept = 0;
    /// Lets the program read and write every slot's window of `region` for the rest of this run: what
    /// a map lookup grants, once per map instead of once per value. The default grants slot by slot.
    virtual void grant(const StridedRegion& region) noexcept {
        for (std::size_t i = 0; i < region.count; ++i)
            grant(std::span(region.base + i * region.stride + region.offset, region.size));
    }
    /// Whether the program may access [p, p + n) (always true in unchecked mode).
    virtual bool allowed(const void* p, std::size_t n) const noexcept = 0;
    /// Makes the program continue in `target` once the helper returns, with the same r1 and a
    /// fresh stack, as bpf_tail_call does. False when the chain limit (33 tail calls) is reached,
    /// in which case the caller continues as the kernel does.
    virtual bool tail_call(const Interpreter& target) noexcept = 0;
    /// As above for a program compiled by the JIT (a run on one engine tail-calls programs of the same
    /// engine; the default refuses).
    virtual bool tail_call(const JitProgram& target) noexcept {
        (void)target;
        return false;
    }
    /// Calls the subprogram whose address an lddw with src=4 (pseudo_func) produced, with `args` in
    /// r1-r5, on a new frame; for helpers such as bpf_loop. Errors: invalid_argument (not a function),
    /// and any runtime error of the callee.
    virtual Result<std::uint64_t> call_function(std::uint64_t fn, const std::array<std::uint64_t, 5>& args) = 0;

    /// VmOptions::env of the running program.
    virtual void* env() const noexcept { return nullptr; }
    /// Whether the running program is in checked mode (helpers then validate what they are given).
    virtual bool checked() const noexcept { return true; }

protected:
    ~Invocation() = default;
};

namespace detail {
struct InterpreterState;
struct InterpreterAccess;
}

/// A program prepared for the interpreter: validated, pre-decoded, helpers resolved.
/// A cheap shared handle; the prepared code is immutable, so run() may be called from many threads.
class Interpreter {
public:
    /// Validates `prog` (isa::validate), resolves helper calls against `helpers` (an unknown helper id
    /// is an error naming the instruction) and lddw pseudo values, and pre-decodes the code.
    /// Errors: invalid_argument (validation, unknown helper or kfunc), unsupported (unresolvable lddw).
    static Result<Interpreter> create(std::span<const Insn> prog, const HelperTable& helpers,
                                      const VmOptions& options = {});

    /// Runs with r1 = ctx.data() (0 when empty), r2 = ctx.size(), r10 = top of a fresh 512-byte frame.
    /// The context is the only memory the program may touch besides its stack in checked mode.
    /// Errors (runtime faults, checked mode and budget only): invalid_argument "insn N (<disasm>): <reason>".
    Result<std::uint64_t> run(std::span<std::byte> ctx) const noexcept;

    /// Runs with r1-r5 = `args`; no context region is granted.
    Result<std::uint64_t> run_args(const std::array<std::uint64_t, 5>& args) const noexcept;

    /// Instruction slots of the program.
    std::size_t size() const noexcept;
    /// Options it was prepared with.
    const VmOptions& options() const noexcept;

private:
    friend struct detail::InterpreterAccess;
    explicit Interpreter(std::shared_ptr<const detail::InterpreterState> state) : state_(std::move(state)) {}
    std::shared_ptr<const detail::InterpreterState> state_;
};

}  // namespace ebpfrt
