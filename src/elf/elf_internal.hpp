#pragma once
// Private to src/elf: section-name classification and CO-RE, shared by the object parser's files.

#include <string>
#include <string_view>

#include <ebpfrt/btf.hpp>
#include <ebpfrt/elf.hpp>

namespace ebpfrt::detail {

struct SectionKind {
    ProgType type;
    AttachKind attach;
    std::string target;  ///< what follows "prefix/" in the section name
};

/// Program type and attach kind of a SEC() name, as libbpf would decide them.
SectionKind classify_section(std::string_view name);

/// Outcome of one CO-RE relocation.
struct CoreResult {
    bool poisoned = false;  ///< no match in the target: the instruction was turned into a poison call
};

/// Applies one CO-RE relocation to `code` (the instructions of its section). `local` is the object's
/// BTF, `target` the target BTF (may be the same object). Errors: bad_elf for malformed records
/// (access string, instruction index or kind that does not fit the instruction).
Result<CoreResult> apply_core_relo(std::vector<Insn>& code, const CoreRelo& relo, const Btf& local,
                                   const Btf& target);

}  // namespace ebpfrt::detail
