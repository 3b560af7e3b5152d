// Built with EBPFRT_WITH_LLVM=OFF: the JIT engine is not part of this library.

#include <ebpfrt/jit.hpp>

namespace ebpfrt {
namespace detail {
struct JitState {};
}  // namespace detail

bool jit_available() noexcept { return false; }

Result<JitProgram> JitProgram::create(std::span<const Insn>, const HelperTable&, const VmOptions&, const JitOptions&) {
    return Error(Errc::unsupported, "create JIT program: this build of ebpfrt has no LLVM (EBPFRT_WITH_LLVM=OFF)");
}
Result<std::uint64_t> JitProgram::run(std::span<std::byte>) const noexcept {
    return Error(Errc::unsupported, "run: no JIT in this build");
}
Result<std::uint64_t> JitProgram::run_args(const std::array<std::uint64_t, 5>&) const noexcept {
    return Error(Errc::unsupported, "run: no JIT in this build");
}
std::size_t JitProgram::size() const noexcept { return 0; }
const VmOptions& JitProgram::options() const noexcept {
    static const VmOptions none{};
    return none;
}
double JitProgram::compile_us() const noexcept { return 0; }

}  // namespace ebpfrt
