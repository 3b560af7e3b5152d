#pragma once
// The AOT loader's linker, without the JitState around it: maps an object's sections and applies its
// relocations for `machine` (EM_X86_64 or EM_AARCH64), so that tests can link objects for the other
// architecture too (they only run on their own).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <ebpfrt/result.hpp>

#include "aot/meta.hpp"

namespace ebpfrt::detail {

struct AotImage {
    std::shared_ptr<void> memory;  // the mapping; unmapped with the last reference
    std::size_t size = 0;
    AotMeta meta;
    std::map<std::string, std::uint64_t, std::less<>> code_symbols;  // defined symbols in executable sections
};

/// Resolves an undefined symbol to an address.
using AotExternals = std::function<Result<std::uint64_t>(std::string_view symbol)>;

/// Parses, maps and relocates `object`; the code is executable only when `machine` is the host's.
/// Errors: bad_elf, unsupported (machine, relocation type), not_found (from `externals`).
Result<AotImage> link_aot(std::span<const std::byte> object, std::uint16_t machine,
                          const AotExternals& externals);

}  // namespace ebpfrt::detail
