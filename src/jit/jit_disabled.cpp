// Built with EBPFRT_WITH_LLVM=OFF: the JIT engine is not part of this library.

#include <ebpfrt/jit.hpp>

namespace ebpfrt {
bool jit_available() noexcept { return false; }

Result<JitProgram> JitProgram::create(std::span<const Insn>, const HelperTable&, const VmOptions&, const JitOptions&) {
    return Error(Errc::unsupported, "create JIT program: this build of ebpfrt has no LLVM (EBPFRT_WITH_LLVM=OFF)");
}
}  // namespace ebpfrt
