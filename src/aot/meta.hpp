#pragma once
// The `.ebpfrt.meta` section of an AOT object: what the loader needs besides the code to rebuild a
// detail::JitState. Written by compile.cpp, read by loader.cpp (no LLVM). Little-endian, versioned:
//   "EBPFAOT\0" u32 version u32 flags(1 checked, 2 budget)
//   u32 n + entry name | u32 n + n*8 instruction bytes | u32 n + n*{u8 kind, u8 flags, u16 0, u32 id}
//   | u32 n + n*(u32 len + function symbol name)
//   | version 2: u32 n + n*{u32 type, key_size, value_size, max_entries, flags, origin; u32 len + name}
// Version 1 objects (no map records) are still read.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <ebpfrt/isa.hpp>
#include <ebpfrt/result.hpp>

namespace ebpfrt::detail {

inline constexpr const char* aot_meta_section = ".ebpfrt.meta";
inline constexpr std::uint32_t aot_meta_version = 2;

/// One call site's helper, by call-site helper index (the index ebpfrt_rt_check_helper receives).
struct AotHelper {
    enum Kind : std::uint8_t { helper = 0, kfunc = 1 };
    Kind kind = helper;
    std::uint32_t id = 0;
    bool unwind_on_zero = false;  ///< the code ends the program when it returns 0
    bool checks_args = false;     ///< the code calls ebpfrt_rt_check_helper before it (checked mode)
};

/// A map the code's `lddw src=5/6 imm=i` refers to (i = index in AotMeta::maps): what the loader binds
/// it to must have this name (as the compiler was told it) and shape.
struct AotMap {
    std::string name;
    std::uint32_t type = 0, key_size = 0, value_size = 0, max_entries = 0, flags = 0, origin = 0;
};

struct AotMeta {
    bool checked = true;
    bool budget = false;
    std::string entry;
    std::vector<Insn> insns;
    std::vector<AotHelper> helpers;
    std::vector<std::string> functions;  ///< symbols of the BPF functions, entry first
    std::vector<AotMap> maps;            ///< empty: compiled without CompileOptions::maps
};

std::vector<std::byte> encode_aot_meta(const AotMeta& m);
/// Errors: bad_elf "metadata: <what is wrong>".
Result<AotMeta> decode_aot_meta(std::span<const std::byte> bytes);

}  // namespace ebpfrt::detail
