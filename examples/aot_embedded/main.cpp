// AOT, embedded: sum.s was compiled to native code when this example was built (ebpfrt_add_aot_program
// in CMakeLists.txt) and its object linked into this executable. At run time ebpfrt's own loader maps
// it, binds helper 100 and runs it: no LLVM, no compiler, no bytecode interpreter involved.

#include <cstdint>
#include <cstdio>

#include <ebpfrt/aot.hpp>

#include "ebpfrt_aot_sum.hpp"

namespace {
std::uint64_t scale(std::uint64_t v, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    return v * 10;
}
}  // namespace

int main() {
    ebpfrt::HelperTable helpers;
    helpers.add(100, {.name = "scale", .fn = scale}).value();
    // The object was compiled checked (the default): load it with the same options.
    auto prog = ebpfrt::aot::load(ebpfrt_aot_object_sum(), helpers);
    if (!prog) {
        std::fprintf(stderr, "%s\n", prog.error().message().c_str());
        return 1;
    }
    std::uint32_t values[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    auto r0 = prog->run(std::as_writable_bytes(std::span(values)));
    if (!r0) {
        std::fprintf(stderr, "%s\n", r0.error().message().c_str());
        return 1;
    }
    std::printf("aot sum = %llu (object of %zu bytes, loaded by ebpfrt%s)\n",
                static_cast<unsigned long long>(*r0), ebpfrt_aot_object_sum().size(),
                ebpfrt::aot::compile_available() ? "" : " built without LLVM");
    return *r0 == 550 ? 0 : 1;
}
