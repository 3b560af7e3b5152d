// ebpfrt-conformance-plugin: runs one test of the public eBPF conformance suite, speaking the
// plugin protocol of shared/conformance/PLUGIN-PROTOCOL.md:
//   PLUGIN [MEMORY] [--interpret|--jit|--aot|--debug ...] [--elf] < "b4  00  ...  \n"
// prints r0 in lowercase hex on success; on a load error prints "Failed to load code: <reason>" on
// stdout and exits 1 (uBPF's convention); on a runtime fault prints the reason on stderr, exits 1.

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/vm.hpp>

#include "cli/cli_io.hpp"
#include "cli/conformance_helpers.hpp"

namespace {

// The runner has no timeout: a program that loops forever would hang the whole suite. No test comes
// near this many instructions.
constexpr std::uint64_t insn_budget = 100'000'000;

int load_failure(const std::string& why) {
    std::printf("Failed to load code: %s\n", why.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace ebpfrt;
    std::string memory_hex;
    std::string engine = "interpret";
    bool elf = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.empty()) continue;  // two adjacent spaces in --plugin_options
        if (a.rfind("--", 0) != 0) {
            if (i != 1) {
                std::fprintf(stderr, "ebpfrt-conformance-plugin: unexpected argument \"%s\"\n", a.c_str());
                return 1;
            }
            memory_hex = a;
        } else if (a == "--interpret" || a == "--jit" || a == "--aot") {
            engine = a.substr(2);
        } else if (a == "--debug") {
        } else if (a == "--elf") {
            elf = true;
        } else {
            std::fprintf(stderr, "ebpfrt-conformance-plugin: unknown option \"%s\" (--interpret, --jit, --aot, --debug)\n",
                         a.c_str());
            return 1;
        }
    }
    if ((engine == "aot" && !aot::compile_available()) || (engine == "jit" && !jit_available())) {
        std::fprintf(stderr, "ebpfrt-conformance-plugin: engine \"%s\" is unsupported in this build\n", engine.c_str());
        return 1;
    }
    if (elf) return load_failure("ELF input (--elf) is unsupported in this build");

    std::string line;
    std::getline(std::cin, line);
    auto bytes = cli::parse_hex(line);
    if (!bytes) return load_failure(bytes.error().wrap("program").message());
    auto prog = isa::decode(*bytes);
    if (!prog) return load_failure(prog.error().message());
    const VmOptions options{.checked = true, .insn_budget = insn_budget};
    auto mem = cli::parse_hex(memory_hex);
    if (!mem) return load_failure(mem.error().wrap("memory").message());
    Result<std::uint64_t> r0 = std::uint64_t{0};
    const HelperTable helpers = conformance::helpers();
    if (engine == "jit") {
        auto jit = JitProgram::create(*prog, helpers, options);
        if (!jit) return load_failure(jit.error().message());
        r0 = jit->run(*mem);
    } else if (engine == "aot") {
        // Compile to an object in memory, then load it with ebpfrt's own loader.
        auto object =
            aot::compile(*prog, {}, {.checked = options.checked, .budget = true, .helpers = &helpers});
        if (!object) return load_failure(object.error().message());
        auto loaded = aot::load(*object, helpers, options);
        if (!loaded) return load_failure(loaded.error().message());
        r0 = loaded->run(*mem);
    } else {
        auto interp = Interpreter::create(*prog, helpers, options);
        if (!interp) return load_failure(interp.error().message());
        r0 = interp->run(*mem);
    }
    if (!r0) {
        std::fprintf(stderr, "%s\n", r0.error().message().c_str());
        return 1;
    }
    std::printf("%llx\n", static_cast<unsigned long long>(*r0));
    return 0;
}
