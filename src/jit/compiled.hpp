#pragma once
// A program compiled to native code (by the JIT, or loaded from an AOT object) and how it runs: the
// state generated code refers to, without any LLVM type, so that runs need no LLVM.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/vm.hpp>

namespace ebpfrt::detail {

/// Signature of every generated BPF function (see jit/lower.hpp).
using EntryFn = std::uint64_t (*)(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, void*,
                                  std::uint32_t);

struct JitHelper {
    std::string name;
    HelperFn fn = nullptr;
    std::array<Arg, 5> args{};
    bool unwind = false;
};

struct JitState {
    std::vector<Insn> insns;
    VmOptions options;
    std::vector<JitHelper> helpers;                          // by call-site helper index
    std::vector<std::pair<std::uint32_t, JitHelper>> by_id;  // for callx, sorted by id
    std::vector<std::span<std::byte>> regions;               // resolved lddw regions
    std::vector<std::uint64_t> functions;                    // native addresses of BPF functions, sorted
    EntryFn entry = nullptr;
    std::shared_ptr<void> code;  // owns the native code (an ORC resource tracker, or mapped AOT memory)
    double compile_us = 0;
};

struct JitAccess {
    static const JitState* state(const JitProgram& p) noexcept { return p.state_.get(); }
    static JitProgram make(std::shared_ptr<const JitState> s) { return JitProgram(std::move(s)); }
};

}  // namespace ebpfrt::detail
