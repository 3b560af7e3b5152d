#pragma once
/// \file
/// The LLVM JIT engine: a program lowered once to LLVM IR (one LLVM function per BPF function, each
/// with its own stack frame), optimised and compiled with ORC to native code. Same options, helper
/// conventions and results as the interpreter. Available when ebpfrt is built with EBPFRT_WITH_LLVM.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/vm.hpp>

namespace ebpfrt {

/// How the JIT compiles.
struct JitOptions {
    /// LLVM optimisation level, 0-3.
    unsigned opt_level = 3;
    /// Tune for (and use every feature of) the host CPU instead of a generic x86-64/aarch64.
    bool host_cpu = false;
};

namespace detail {
struct JitState;
struct JitAccess;
}

/// A program compiled to native code. A cheap shared handle; the code is freed with the last handle.
/// run() may be called from many threads at once.
class JitProgram {
public:
    /// Validates `prog` (isa::validate), resolves helpers and lddw pseudo values as the interpreter
    /// does, lowers it to LLVM IR and compiles it. Errors: invalid_argument (validation, unknown
    /// helper), unsupported (unresolvable lddw, JIT not built in), and LLVM failures as unsupported.
    static Result<JitProgram> create(std::span<const Insn> prog, const HelperTable& helpers,
                                     const VmOptions& options = {}, const JitOptions& jit = {});

    /// As Interpreter::run: r1 = ctx.data(), r2 = ctx.size(). Errors (checked mode and budget only):
    /// invalid_argument "insn N (<disasm>): <reason>".
    Result<std::uint64_t> run(std::span<std::byte> ctx) const noexcept;
    /// Runs with r1-r5 = `args`; no context region is granted.
    Result<std::uint64_t> run_args(const std::array<std::uint64_t, 5>& args) const noexcept;

    /// Instruction slots of the program.
    std::size_t size() const noexcept;
    /// Options it was prepared with.
    const VmOptions& options() const noexcept;
    /// Wall-clock microseconds spent lowering, optimising and compiling (0 when the code came from
    /// the compile cache).
    double compile_us() const noexcept;

private:
    friend struct detail::JitAccess;
    explicit JitProgram(std::shared_ptr<const detail::JitState> state) : state_(std::move(state)) {}
    std::shared_ptr<const detail::JitState> state_;
};

/// Whether this build has the JIT (EBPFRT_WITH_LLVM).
bool jit_available() noexcept;

}  // namespace ebpfrt
