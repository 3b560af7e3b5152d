// AOT, embedded: sum.s was compiled to native code when this example was built (ebpfrt_add_aot_program
// in CMakeLists.txt) and its object linked into this executable. At run time Runtime::load_aot maps it
// with ebpfrt's own loader, binds host helper 100 and runs it as a Program of the runtime: no LLVM, no
// compiler, no bytecode interpreter involved.

#include <cstdint>
#include <cstdio>

#include <ebpfrt/runtime.hpp>

#include "ebpfrt_aot_sum.hpp"

namespace {
std::uint64_t scale(std::uint64_t v, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    return v * 10;
}
}  // namespace

int main() {
    ebpfrt::RuntimeOptions options;
    options.helpers.add(100, {.name = "scale", .fn = scale}).value();
    auto rt = ebpfrt::Runtime::create(std::move(options));
    if (!rt) {
        std::fprintf(stderr, "%s\n", rt.error().message().c_str());
        return 1;
    }
    // The object was compiled checked (the default), as the runtime runs programs; it uses no maps.
    auto prog = rt->load_aot("sum", ebpfrt_aot_object_sum());
    if (!prog) {
        std::fprintf(stderr, "%s\n", prog.error().message().c_str());
        return 1;
    }
    std::uint32_t values[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    auto r0 = prog->try_run(std::as_writable_bytes(std::span(values)));
    if (!r0) {
        std::fprintf(stderr, "%s\n", r0.error().message().c_str());
        return 1;
    }
    std::printf("aot sum = %llu (object of %zu bytes, loaded by ebpfrt%s)\n",
                static_cast<unsigned long long>(*r0), ebpfrt_aot_object_sum().size(),
                ebpfrt::aot::compile_available() ? "" : " built without LLVM");
    return *r0 == 550 ? 0 : 1;
}
