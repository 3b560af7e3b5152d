#pragma once
// eBPF -> LLVM IR, shared by the JIT (and later AOT and PTX). Only src/jit includes LLVM headers.
//
// Every BPF function (the entry and each target of a local call or lddw src=4) becomes one LLVM
// function  i64 f(i64 r1, i64 r2, i64 r3, i64 r4, i64 r5, ptr run, i32 depth)  with its own registers
// (SSA values, built during lowering) and 512-byte stack (an alloca, which SROA splits), so LLVM
// keeps registers and stack slots in machine registers.
// Everything the code needs from outside (helpers, the runtime support functions of rt_abi.hpp) is
// called through absolute addresses given in the request, or, for relocatable output, by symbol name.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/result.hpp>

namespace llvm {
class LLVMContext;
class Module;
class TargetMachine;
}  // namespace llvm

namespace ebpfrt::jit {

/// A callee of the generated code: an absolute address, or a symbol when `address` is 0.
struct Callee {
    std::uint64_t address = 0;
    std::string symbol;
};

/// One helper a call instruction uses.
struct HelperUse {
    std::uint32_t id = ~0u;  ///< helper id (~0 for kfuncs)
    Callee fn;
    std::array<Arg, 5> args{};
    bool unwind_on_zero = false;
    bool has_pointer_args = false;
    /// Unchecked code only: when set, called instead of `fn` with r1..r<direct_args>, and without the
    /// check of the run's pending flag after it (a direct map call, rt_abi.hpp's direct_map_call).
    Callee direct;
    unsigned direct_args = 0;
};

/// Addresses of the runtime support functions (rt_abi.hpp).
struct RuntimeCallees {
    Callee check, fault, check_helper, after_helper, unwind, callx, ldabs, tail_entry;
};

struct LowerRequest {
    std::span<const Insn> insns;
    std::string name;  ///< entry function symbol; internal functions are "<name>.f<index>"
    bool checked = true;
    /// Per slot (optional): a load/store the verifier proved in bounds; checked mode emits no check.
    std::vector<bool> proved;
    bool budget = false;
    std::vector<HelperUse> helpers;             ///< call targets, by index
    std::vector<std::uint32_t> helper_of_insn;  ///< per slot: index into helpers for `call`, else ~0
    std::vector<std::uint64_t> lddw_value;      ///< per slot: resolved value of lddw src 1/2/3/5/6
    /// Per slot (optional, for relocatable output): when non-empty, the lddw loads the address of this
    /// external symbol plus lddw_value (an offset) instead of the constant.
    std::vector<std::string> lddw_symbol;
    /// Per slot (optional): an lddw of an array map whose lookups (helper 1) may be inlined.
    struct InlineArray {
        std::uint64_t values = 0;
        std::uint32_t stride = 0;
        std::uint32_t max_entries = 0;
    };
    std::vector<InlineArray> lddw_array;
    RuntimeCallees rt;
};

/// What lowering produced besides the module: the functions, by first instruction index.
struct Lowered {
    std::unique_ptr<llvm::Module> module;
    std::vector<std::size_t> function_starts;  ///< sorted; [0] is the entry
};

/// Lowers a validated program. Errors: invalid_argument for what LLVM's verifier rejects (a bug).
Result<Lowered> lower(llvm::LLVMContext& ctx, const LowerRequest& req);

/// Runs LLVM's default pipeline for `opt_level` (0-3) on a lowered module; shared by the JIT and AOT
/// so both make the same code.
void optimise(llvm::Module& m, unsigned opt_level, llvm::TargetMachine* tm);

/// Name of the LLVM function for the BPF function starting at `start`.
std::string function_name(const std::string& entry, std::size_t start);

}  // namespace ebpfrt::jit
