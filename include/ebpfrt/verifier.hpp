#pragma once
/// \file
/// The verifier: abstract interpretation of a program over its registers and stack (types, value
/// ranges, null checks, memory bounds, helper prototypes, bpf-to-bpf calls and callbacks, loops) that
/// proves each memory access and helper call safe for the program's type, or names the first
/// instruction it cannot prove safe and why.
///
/// Model. Every register holds either an uninitialised value, a scalar (unsigned and signed ranges and
/// known bits), or a pointer of a kind (context, stack of a frame, map value, map, packet, packet end,
/// packet meta, sized memory, function) with an offset range; pointers that may be null carry an id
/// so that a null check on one copy applies to every copy; values read from kernel objects (BTF-typed
/// arguments, sockets) are scalars the program may read through. Each stack byte is invalid,
/// initialised, zero, or part of a spilled register. Paths are analysed apart (as the kernel does)
/// up to `max_states_per_point` distinct states per instruction, states that another one covers are
/// pruned, and registers that are dead are forgotten; past the limit, states are joined, and at loop
/// heads widened to constants the program compares against, so every loop reaches a fixed point.
/// Calls are analysed per call string (at most 8 frames).
///
/// On entry r1 is the context and r10 the frame pointer; for host-defined contexts (ProgType::unspec,
/// ext) r2 is the context's size, as ebpfrt's engines pass it.
///
/// What is checked, with the kernel's rules as the reference: reads of uninitialised registers and
/// stack; stack accesses inside the 512-byte frame; map value, memory and context accesses inside
/// their object (context layout by program type; unknown program types leave context bounds to the
/// engine's checked mode); packet accesses only after a comparison with the packet end; pointer
/// arithmetic only where the kernel allows it; null checks before dereferencing lookup results;
/// helper arguments by prototype (map, key and value pointers sized by the map, memory and size
/// pairs, callbacks); writes to read-only maps; division by zero is allowed (RFC 9669 defines it).
/// Not checked: reference leaks (sockets, ring buffer records), spin-lock pairing, termination of
/// loops (the engines' instruction budget bounds a run).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// What verify() needs besides the code.
struct VerifyOptions {
    /// Program type: decides the context layout and which context-bound helpers are allowed.
    ProgType type = ProgType::unspec;
    /// Maps the program refers to: `lddw src=pseudo_map_idx imm=i` (and pseudo_map_idx_value) is maps[i].
    std::span<const MapSpec> maps{};
    /// Host helpers (ids the kernel does not define, or host overrides of kernel ids) are checked
    /// against their HelperProto::args; kernel ids use the kernel's prototypes. nullptr: kernel ids only.
    const HelperTable* helpers = nullptr;
    /// Context size in bytes when the host knows it (0: the program type's layout, or unknown).
    std::size_t ctx_size = 0;
    /// Abstract instruction visits before giving up ("program too complex").
    std::size_t max_visits = 2'000'000;
    /// States kept in all (each about 2 KiB per call frame) before giving up ("program too complex"):
    /// bounds the memory a hostile program can make the verifier use.
    std::size_t max_states = 131'072;
    /// Loads from read-only maps (BPF_F_RDONLY_PROG, e.g. .rodata) at known offsets are the constants of
    /// MapSpec::initial_value, as the kernel reads frozen maps (so `const volatile` switches prune code).
    /// Only sound if nobody writes the map after verification.
    bool fold_readonly_maps = true;
    /// States kept apart at one program point before new ones are joined (more: more precise, slower).
    std::size_t max_states_per_point = 128;
    /// When set, receives one line per analysed instruction with the registers it reads (like the
    /// kernel's verifier log at level 2). Slow; for debugging programs and the verifier.
    std::function<void(std::string_view)> log{};
};

/// How verification went; filled whether the program is accepted or not.
struct VerifyReport {
    bool accepted = false;
    std::size_t insn = 0;        ///< instruction of the first rejection
    std::string disassembly;     ///< that instruction, in the conformance syntax
    std::string reason;          ///< why it was rejected ("r2 may be null ...")
    /// For an accepted program, one entry per instruction slot: true where the slot is a load, store
    /// or atomic whose every execution the verifier proved inside the stack, a map value or memory a
    /// helper sized (an engine's checked mode may skip its run-time check). Context, packet and
    /// kernel-object accesses are never marked: their bounds depend on what the host passes in.
    std::vector<bool> proved;
    /// Accepted, and nothing left to run time: every load, store and atomic is `proved`, and every
    /// memory argument of a helper lies in the stack, a map value or sized memory (no context, packet or
    /// string argument, no kfunc, no legacy packet load). Checked mode then has nothing to check, and
    /// the runtime runs such a program as unchecked.
    bool all_proved = false;
    std::size_t visits = 0;      ///< abstract instruction visits
    std::size_t states = 0;      ///< program points that kept a state
};

/// Verifies `code` (a linked program: entry function followed by its subprograms).
/// Errors: verifier_rejected "verify \"name\": insn N (disassembly): reason"; invalid_argument when
/// the code does not pass isa::validate. `report`, when given, receives the details either way.
/// Thread-safe (no shared state).
Result<void> verify(std::string_view name, std::span<const Insn> code, const VerifyOptions& options = {},
                    VerifyReport* report = nullptr);

}  // namespace ebpfrt
