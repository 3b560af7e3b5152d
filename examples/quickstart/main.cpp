// Quickstart: assemble a small eBPF program, prepare it for the interpreter, run it on some memory.

#include <cstdint>
#include <cstdio>

#include <ebpfrt/ebpfrt.hpp>

int main() {
    // r1 = the context's address, r2 = its size. Sums the little-endian u32 values in it.
    auto code = ebpfrt::isa::assemble(R"(
        mov %r0, 0
        mov %r3, %r1
        add %r3, %r2
    loop:
        jge %r1, %r3, done
        ldxw %r4, [%r1+0]
        add %r0, %r4
        add %r1, 4
        ja loop
    done:
        exit
    )");
    if (!code) {
        std::fprintf(stderr, "%s\n", code.error().message().c_str());
        return 1;
    }
    auto prog = ebpfrt::Interpreter::create(*code, ebpfrt::HelperTable{});
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
    std::printf("sum = %llu\n", static_cast<unsigned long long>(*r0));
    return *r0 == 55 ? 0 : 1;
}
