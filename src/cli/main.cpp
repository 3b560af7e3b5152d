// The `ebpfrt` command: run, disasm, asm, inspect, verify, map. Errors are one line on stderr and exit status 1.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <ebpfrt/aot.hpp>
#include <ebpfrt/elf.hpp>
#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/vm.hpp>

#include "cli/cli_io.hpp"
#include "cli/commands.hpp"

namespace {

using namespace ebpfrt;

constexpr std::string_view usage_text =
    R"(usage: ebpfrt <command> [options]

commands:
  run FILE [--raw] [--section S] [--shm NAME] [--mem HEX|@file] [--engine interp|jit|aot] [--repeat N]
      [--budget N] [--unchecked]
        run a program and print r0 in hex. FILE is an ELF object (the program in section or named S;
        maps in the shared-memory arena NAME with --shm), assembler text (the conformance suite's
        syntax) or, with --raw, the instruction bytes. --mem gives the context memory (r1 = its address,
        r2 = its size) as hex digits or @file. --repeat N runs N times on the same memory and prints
        "time: <ns> ns/run over <N> runs" on stderr. --budget N stops a run after N instructions.
        --unchecked skips the bounds checks (only for trusted code). --engine aot compiles the program
        to an object in memory and runs it through ebpfrt's own object loader (not for ELF input).
  aot FILE -o OUT.o [--section S] [--raw] [--target TRIPLE] [--cpu CPU] [--entry NAME] [--unchecked] [--budget]
        compile a program ahead of time to a relocatable ELF object for x86_64-linux-gnu,
        aarch64-linux-gnu or riscv64-linux-gnu (default: this host). FILE is a clang-compiled object
        (the program in section or named S; its maps are recorded by name and shape), assembler text,
        or instruction bytes with --raw. Load the output with Runtime::load_aot (or aot::load), with
        the same checked mode (--unchecked) and budget (--budget: a non-zero instruction budget).
  inspect FILE [--btf VMLINUX]
        programs (section, type, instruction count), maps (type, key/value size, max_entries),
        globals and a relocation summary of an ELF object; --btf names the CO-RE target BTF
  verify FILE [--type TYPE] [--section S] [--btf VMLINUX] [--states N] [--log]
        run the verifier on every program (or the one in section or named S) of an ELF object, as the
        program type its section names (or TYPE: xdp, sched_cls, kprobe, ...): one line per program,
        "accepted" or the first reason for rejection with the instruction; exit status 1 if any is rejected;
        --states N keeps up to N states apart per instruction (default 128); --log prints every analysed
        instruction with the registers it sees
  map list (--shm NAME | FILE)
        the maps of a shared-memory arena, or of an object as loaded
  map dump MAP (--shm NAME [--object FILE] | FILE)
        every key and value of a map, printed by the object's BTF types when known
  disasm FILE   print the instructions of a raw bytecode file in assembler syntax
  asm FILE -o OUT   assemble text into raw bytecode
  help          this text
)";

using cli::fail;

bool is_elf(const std::vector<std::byte>& bytes) {
    return bytes.size() >= 4 && std::memcmp(bytes.data(), "\x7f" "ELF", 4) == 0;
}

// The program in FILE: raw instruction bytes with --raw, assembler text otherwise.
Result<std::vector<Insn>> load_program(const std::string& path, bool raw) {
    auto bytes = cli::read_file(path);
    if (!bytes) return bytes.error();
    if (raw) {
        auto insns = isa::decode(*bytes);
        if (!insns) return insns.error().wrap(fmt::format("load \"{}\"", path));
        return insns;
    }
    std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    auto insns = isa::assemble(text);
    if (!insns) return insns.error().wrap(fmt::format("assemble \"{}\"", path));
    return insns;
}

Result<std::uint64_t> parse_count(std::string_view flag, std::string_view v) {
    std::uint64_t n = 0;
    if (v.empty()) return Error(Errc::invalid_argument, fmt::format("{}: expects a number", flag));
    for (char c : v) {
        if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10)
            return Error(Errc::invalid_argument, fmt::format("{}: \"{}\" is not a number", flag, v));
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

int cmd_run(const std::vector<std::string>& args) {
    std::string file, mem_arg, engine = "interp", section, shm;
    bool raw = false, unchecked = false;
    std::uint64_t repeat = 0, budget = 0;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto next = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
        if (a == "--raw") {
            raw = true;
        } else if (a == "--unchecked") {
            unchecked = true;
        } else if (a == "--mem" || a == "--engine" || a == "--repeat" || a == "--budget" || a == "--section" ||
                   a == "--shm") {
            const std::string* v = next();
            if (!v) return fail(fmt::format("run: {} needs a value", a));
            if (a == "--section") section = *v;
            if (a == "--shm") shm = *v;
            if (a == "--mem") mem_arg = *v;
            if (a == "--engine") engine = *v;
            if (a == "--repeat" || a == "--budget") {
                auto n = parse_count("run: " + a, *v);
                if (!n) return fail(n.error().message());
                (a == "--repeat" ? repeat : budget) = *n;
            }
        } else if (a.rfind("--", 0) == 0) {
            return fail(fmt::format("run: unknown option \"{}\"", a));
        } else if (file.empty()) {
            file = a;
        } else {
            return fail(fmt::format("run: unexpected argument \"{}\"", a));
        }
    }
    if (file.empty()) return fail("run: no FILE given (see ebpfrt help)");
    if (engine == "interpreter") engine = "interp";
    if ((engine == "aot" && !aot::compile_available()) || (engine == "jit" && !jit_available()))
        return fail(fmt::format("run: engine \"{}\" is not available in this build (use interp)", engine));
    if (engine != "interp" && engine != "jit" && engine != "aot")
        return fail(fmt::format("run: unknown engine \"{}\" (interp, jit, aot)", engine));

    std::vector<std::byte> mem;
    if (!mem_arg.empty()) {
        auto m = mem_arg[0] == '@' ? cli::read_file(mem_arg.substr(1)) : cli::parse_hex(mem_arg);
        if (!m) return fail(m.error().wrap("run: --mem").message());
        mem = std::move(*m);
    }

    if (auto head = cli::read_file(file); head && is_elf(*head)) {
        return cli::run_elf(file, {.section = section, .shm = shm, .mem = mem, .repeat = repeat, .budget = budget,
                                   .checked = !unchecked,
                                   .engine = engine == "jit"   ? Engine::jit
                                             : engine == "aot" ? Engine::aot
                                                               : Engine::interpreter});
    }
    if (!section.empty() || !shm.empty()) return fail("run: --section and --shm apply to ELF objects only");

    auto prog = load_program(file, raw);
    if (!prog) return fail(prog.error().message());
    const VmOptions options{.checked = !unchecked, .insn_budget = budget};
    std::function<Result<std::uint64_t>(std::span<std::byte>)> run_once;
    if (engine == "jit") {
        auto jit = JitProgram::create(*prog, HelperTable{}, options);
        if (!jit) return fail(jit.error().wrap(fmt::format("load \"{}\"", file)).message());
        run_once = [p = *jit](std::span<std::byte> c) { return p.run(c); };
    } else if (engine == "aot") {
        auto object = aot::compile(*prog, {}, {.checked = options.checked, .budget = budget != 0});
        if (!object) return fail(object.error().wrap(fmt::format("load \"{}\"", file)).message());
        auto loaded = aot::load(*object, HelperTable{}, options);
        if (!loaded) return fail(loaded.error().wrap(fmt::format("load \"{}\"", file)).message());
        run_once = [p = *loaded](std::span<std::byte> c) { return p.run(c); };
    } else {
        auto interp = Interpreter::create(*prog, HelperTable{}, options);
        if (!interp) return fail(interp.error().wrap(fmt::format("load \"{}\"", file)).message());
        run_once = [p = *interp](std::span<std::byte> c) { return p.run(c); };
    }

    std::vector<std::byte> ctx = mem;
    auto r0 = run_once(ctx);
    if (!r0) return fail(r0.error().wrap(fmt::format("run \"{}\"", file)).message());
    std::printf("0x%llx\n", static_cast<unsigned long long>(*r0));

    if (repeat > 0) {
        // Like BPF_PROG_TEST_RUN with repeat: the same memory for every run (a program that writes
        // to it sees its own earlier writes).
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < repeat; ++i) {
            auto r = run_once(ctx);
            if (!r) return fail(r.error().wrap(fmt::format("run \"{}\" (repeat {})", file, i + 1)).message());
        }
        const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "time: %.1f ns/run over %llu runs\n", ns / static_cast<double>(repeat),
                     static_cast<unsigned long long>(repeat));
    }
    return 0;
}

int cmd_aot(const std::vector<std::string>& args) {
    std::string in, out, section;
    aot::Target target;
    aot::CompileOptions co;
    bool raw = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "-o" || a == "--target" || a == "--cpu" || a == "--entry" || a == "--section") {
            if (i + 1 >= args.size()) return fail(fmt::format("aot: {} needs a value", a));
            const std::string& v = args[++i];
            if (a == "-o") out = v;
            if (a == "--section") section = v;
            if (a == "--target") target.triple = v;
            if (a == "--cpu") target.cpu = v;
            if (a == "--entry") co.entry = v;
        } else if (a == "--raw") {
            raw = true;
        } else if (a == "--unchecked") {
            co.checked = false;
        } else if (a == "--budget") {
            co.budget = true;
        } else if (a.rfind("-", 0) == 0) {
            return fail(fmt::format("aot: unknown option \"{}\"", a));
        } else if (in.empty()) {
            in = a;
        } else {
            return fail(fmt::format("aot: unexpected argument \"{}\"", a));
        }
    }
    if (in.empty() || out.empty())
        return fail("aot: usage: ebpfrt aot FILE -o OUT.o [--target TRIPLE] (see ebpfrt help)");
    if (!aot::compile_available()) return fail("aot: this build of ebpfrt has no LLVM (EBPFRT_WITH_LLVM=OFF)");
    if (auto head = cli::read_file(in); head && is_elf(*head)) {
        // A clang-compiled object: one program (by section or name), with the object's maps recorded
        // in the output so that Runtime::load_aot binds them by name.
        auto obj = Object::open(in);
        if (!obj) return fail(obj.error().message());
        auto picked = cli::pick_program(*obj, section, "aot", in);
        if (!picked) return fail(picked.error().message());
        const ProgramSpec* pick = *picked;
        if (!pick->unresolved_calls.empty())
            return fail(fmt::format("aot \"{}\": program \"{}\" calls undefined function \"{}\"", in, pick->name,
                                    pick->unresolved_calls.front()));
        co.maps = obj->maps();
        auto object = aot::compile(pick->insns, target, co);
        if (!object) return fail(object.error().wrap(fmt::format("aot \"{}\": program \"{}\"", in, pick->name)).message());
        if (auto w = cli::write_file(out, *object); !w) return fail(w.error().message());
        return 0;
    }
    if (!section.empty()) return fail(fmt::format("aot \"{}\": --section applies to ELF objects only", in));
    auto prog = load_program(in, raw);
    if (!prog) return fail(prog.error().message());
    auto object = aot::compile(*prog, target, co);
    if (!object) return fail(object.error().wrap(fmt::format("aot \"{}\"", in)).message());
    if (auto w = cli::write_file(out, *object); !w) return fail(w.error().message());
    return 0;
}

int cmd_disasm(const std::vector<std::string>& args) {
    if (args.size() != 1) return fail("disasm: expects exactly one FILE");
    auto bytes = cli::read_file(args[0]);
    if (!bytes) return fail(bytes.error().message());
    if (is_elf(*bytes))
        return fail(fmt::format("disasm \"{}\": ELF objects are not supported by this version (pass raw bytes)",
                                args[0]));
    auto insns = isa::decode(*bytes);
    if (!insns) return fail(insns.error().wrap(fmt::format("disasm \"{}\"", args[0])).message());
    std::fputs(isa::disassemble(*insns).c_str(), stdout);
    return 0;
}

int cmd_asm(const std::vector<std::string>& args) {
    std::string in, out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "-o") {
            if (i + 1 >= args.size()) return fail("asm: -o needs a file");
            out = args[++i];
        } else if (args[i].rfind("-", 0) == 0) {
            return fail(fmt::format("asm: unknown option \"{}\"", args[i]));
        } else if (in.empty()) {
            in = args[i];
        } else {
            return fail(fmt::format("asm: unexpected argument \"{}\"", args[i]));
        }
    }
    if (in.empty() || out.empty()) return fail("asm: usage: ebpfrt asm FILE -o OUT");
    auto text = cli::read_file(in);
    if (!text) return fail(text.error().message());
    auto insns = isa::assemble(std::string_view(reinterpret_cast<const char*>(text->data()), text->size()));
    if (!insns) return fail(insns.error().wrap(fmt::format("assemble \"{}\"", in)).message());
    if (auto w = cli::write_file(out, isa::encode(*insns)); !w) return fail(w.error().message());
    return 0;
}

}  // namespace

namespace ebpfrt::cli {
int fail(const std::string& message) {
    std::fprintf(stderr, "ebpfrt: %s\n", message.c_str());
    return 1;
}
}  // namespace ebpfrt::cli

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        std::fputs(usage_text.data(), args.empty() ? stderr : stdout);
        return args.empty() ? 1 : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "run") return cmd_run(args);
    if (cmd == "disasm") return cmd_disasm(args);
    if (cmd == "asm") return cmd_asm(args);
    if (cmd == "aot") return cmd_aot(args);
    if (cmd == "inspect") return cli::inspect(args);
    if (cmd == "verify") return cli::verify(args);
    if (cmd == "map") return cli::map_command(args);
    return fail(fmt::format("unknown command \"{}\" (see ebpfrt help)", cmd));
}
