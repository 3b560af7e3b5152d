// Built with EBPFRT_WITH_LLVM=OFF: objects can be loaded (loader.cpp) but not made.

#include <ebpfrt/aot.hpp>

namespace ebpfrt::aot {
bool compile_available() noexcept { return false; }

Result<std::vector<std::byte>> compile(std::span<const Insn>, const Target&, const CompileOptions& o) {
    return Error(Errc::unsupported,
                 "compile \"" + o.entry +
                     "\": this build of ebpfrt has no LLVM (EBPFRT_WITH_LLVM=OFF); load objects "
                     "compiled elsewhere with aot::load");
}
}  // namespace ebpfrt::aot
