#pragma once
/// \file
/// Ahead-of-time compilation: a program compiled once (with LLVM) to a relocatable ELF object, and
/// loaded later, possibly by a build without LLVM, by ebpfrt's own loader. The object holds one entry
/// symbol per program and refers to the outside only by name: helpers as `ebpfrt_helper_<id>`, kfuncs
/// as `ebpfrt_kfunc_<btf_id>`, the run-time support as `ebpfrt_rt_*` and maps (lddw src 1/2/5/6) as
/// `ebpfrt_map_<src>_<imm>`; a `.ebpfrt.meta` section records what the loader needs besides the code.
/// A loaded program is a JitProgram: same options, helper conventions and results as the JIT.
/// Runtime::load_aot (runtime.hpp) loads an object as a Program of a Runtime, its maps bound by name.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/vm.hpp>

namespace ebpfrt::aot {

/// The machine to compile for.
struct Target {
    /// LLVM target triple: "x86_64-linux-gnu", "aarch64-linux-gnu", "riscv64-linux-gnu"; empty for the host.
    std::string triple;
    /// CPU to tune for and whose features to use ("generic", "x86-64-v3", "neoverse-n1", ...).
    std::string cpu = "generic";
    /// LLVM optimisation level, 0-3 (higher values count as 3).
    unsigned opt_level = 3;
};

/// What the generated code does besides the program; must match the VmOptions given to load().
struct CompileOptions {
    /// Check memory accesses and helper pointer arguments at run time (VmOptions::checked).
    bool checked = true;
    /// Count instructions against VmOptions::insn_budget (load with a non-zero budget).
    bool budget = false;
    /// Name of the entry symbol; other BPF functions are "<entry>.f<first insn>".
    std::string entry = "ebpf_main";
    /// Prototypes of the helpers the program calls, when known at compile time: then an unknown
    /// helper is an error here, pointer arguments are checked only for helpers that take pointers,
    /// and unwind_on_zero helpers end the program on a zero result. Without them (nullptr) every
    /// helper's arguments are checked in checked mode (against the prototype given at load time) and
    /// no helper may be unwind_on_zero. Only read during compile().
    const HelperTable* helpers = nullptr;
    /// The maps `lddw src=5/6 imm=i` (pseudo_map_idx, pseudo_map_idx_value) refer to, by index, as
    /// Object::maps() lists them for its programs. Their names and shapes (type, key and value size,
    /// max_entries) are recorded so that Runtime::load_aot can bind the code to maps of the same name
    /// and check them. When set, an index past its end is invalid_argument. Only read during compile().
    std::span<const MapSpec> maps{};
};

/// Compiles `prog` to a relocatable ELF object for `target`. Errors: invalid_argument (validation,
/// unknown helper, unknown triple or CPU), unsupported (lddw with src 3 or another value that
/// cannot be named by a symbol; a build without LLVM), and LLVM failures as unsupported.
/// Thread-safe.
Result<std::vector<std::byte>> compile(std::span<const Insn> prog, const Target& target = {},
                                       const CompileOptions& options = {});

/// What an object made by compile() records besides its code (its `.ebpfrt.meta` section).
struct ObjectInfo {
    std::string entry;          ///< entry symbol (CompileOptions::entry)
    bool checked = true;        ///< CompileOptions::checked
    bool budget = false;        ///< CompileOptions::budget
    std::vector<Insn> insns;    ///< the bytecode the code was compiled from
    /// CompileOptions::maps (name, type, key_size, value_size, max_entries, flags, origin); empty when
    /// the object was compiled without them.
    std::vector<MapSpec> maps;
    std::string arch;           ///< "x86_64" or "aarch64"
};

/// Reads what an object for x86-64 or aarch64 records (on any host; nothing is mapped or run).
/// Errors: bad_elf (not an object made by compile(), malformed), unsupported (another machine).
/// Thread-safe.
Result<ObjectInfo> inspect(std::span<const std::byte> object);

/// Whether compile() is available in this build (EBPFRT_WITH_LLVM). load() always is.
bool compile_available() noexcept;

/// Resolves a map symbol of an object (`ebpfrt_map_<src>_<imm>`) to the address the lddw loads before
/// adding its offset (second slot imm for src 2/6), and the memory the program may then touch in
/// checked mode (ResolvedImm::array is ignored).
using SymbolResolver = std::function<Result<ResolvedImm>(std::string_view symbol)>;

/// Loads an object made by compile() for this machine (x86-64 or aarch64): maps its sections, applies
/// its relocations, resolves helpers from `helpers` and map symbols through `maps`, or when that is
/// empty through `options.resolve_lddw` (called for each map lddw, as JitProgram::create does).
/// `options.checked`, and whether `options.insn_budget` is non-zero, must match the CompileOptions the
/// object was compiled with. Needs no LLVM. Errors: bad_elf (malformed or hostile object), unsupported
/// (another machine, a relocation type the loader does not handle), invalid_argument (options that do
/// not match the object, unknown helper, helper prototype the code was not compiled for), not_found
/// (undefined symbol), out_of_memory / permission_denied (mmap, mprotect), and the resolvers' errors.
/// Thread-safe; the object bytes are not referenced after it returns.
Result<JitProgram> load(std::span<const std::byte> object, const HelperTable& helpers,
                        const VmOptions& options = {}, const SymbolResolver& maps = {});

}  // namespace ebpfrt::aot
