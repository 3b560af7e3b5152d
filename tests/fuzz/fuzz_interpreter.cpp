// libFuzzer target: arbitrary bytes as a program (and as assembler text) must never crash the
// isa module, the verifier or the interpreter in checked mode. Built with clang-19 -fsanitize=fuzzer,address by
// scripts/fuzz.sh, and replayed by fuzz_smoke_main.cpp in the ordinary test build.
//
// Input layout: byte 0 selects the mode; bytes 1-16 are the context memory; the rest is the program.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include <ebpfrt/isa.hpp>
#include <ebpfrt/verifier.hpp>
#include <ebpfrt/vm.hpp>

#include "cli/conformance_helpers.hpp"

namespace {

// A helper that hands the program a buffer (granted) and one that tail-calls into a fixed program.
std::byte granted_buffer[64];

std::uint64_t give_buffer(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    if (auto* inv = ebpfrt::Invocation::current()) inv->grant(granted_buffer);
    return reinterpret_cast<std::uint64_t>(granted_buffer);
}

const ebpfrt::HelperTable& helper_table() {
    static const ebpfrt::HelperTable table = [] {
        ebpfrt::HelperTable t = ebpfrt::conformance::helpers();
        t.set(6, {.name = "give_buffer", .fn = give_buffer}).value();
        return t;
    }();
    return table;
}

void check_text_round_trip(const std::vector<ebpfrt::Insn>& prog) {
    const std::string text = ebpfrt::isa::disassemble(prog);
    auto again = ebpfrt::isa::assemble(text);
    if (!again || *again != prog) __builtin_trap();  // asm(disasm(p)) == p for every program
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    ++data;
    --size;

    if (mode % 4 == 3) {
        // Assembler text: errors are fine, crashes are not; what assembles must round-trip.
        auto prog = ebpfrt::isa::assemble(std::string_view(reinterpret_cast<const char*>(data), size));
        if (prog) check_text_round_trip(*prog);
        return 0;
    }

    std::byte mem[16] = {};
    const std::size_t mem_size = size < sizeof mem ? size : sizeof mem;
    std::memcpy(mem, data, mem_size);
    data += mem_size;
    size -= mem_size;

    auto prog = ebpfrt::isa::decode(std::as_bytes(std::span(data, size - size % 8)));
    if (!prog) return 0;
    if (prog->size() <= 64) check_text_round_trip(*prog);
    for (std::size_t i = 0; i < prog->size(); ++i) (void)ebpfrt::isa::disassemble_one(*prog, i);

    // The verifier runs on every load: whatever the bytes, it answers (accepted or a reason).
    static constexpr ebpfrt::ProgType types[] = {ebpfrt::ProgType::unspec, ebpfrt::ProgType::xdp,
                                                 ebpfrt::ProgType::sched_cls, ebpfrt::ProgType::kprobe};
    ebpfrt::VerifyReport report;
    auto verdict = ebpfrt::verify("fuzz", *prog,
                                  {.type = types[(mode >> 2) % 4], .helpers = &helper_table(), .max_visits = 100'000},
                                  &report);
    if (verdict.has_value() != report.accepted) __builtin_trap();

    auto interp = ebpfrt::Interpreter::create(*prog, helper_table(), {.checked = true, .insn_budget = 4096});
    if (!interp) return 0;
    auto r0 = interp->run(std::span(mem, mode % 2 ? sizeof mem : 0));
    (void)r0;
    return 0;
}
