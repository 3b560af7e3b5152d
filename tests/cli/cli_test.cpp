// The `ebpfrt` command line: run / disasm / asm, their output formats and their one-line errors.

#include <gtest/gtest.h>

#include <ebpfrt/aot.hpp>

#include <algorithm>
#include <regex>

#include "cli_test_util.hpp"

namespace ebpfrt::test {
namespace {

const std::string cli = EBPFRT_CLI;

// r0 = 7 * 6, plus the first byte of the context when there is one.
const char* const sum_program = R"(# r0 = 42 + mem[0] (when r2 != 0)
mov %r0, 7
mul %r0, 6
jeq %r2, 0, +2
ldxb %r3, [%r1+0]
add %r0, %r3
exit
)";

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        asm_file_ = temp_path("prog.s");
        write_text(asm_file_, sum_program);
    }
    void TearDown() override {
        std::remove(asm_file_.c_str());
        std::remove(temp_path("prog.bin").c_str());
        std::remove(temp_path("mem.bin").c_str());
    }
    std::string asm_file_;
};

TEST_F(Cli, RunsAssemblerTextAndPrintsR0InHex) {
    Output o = run(cli + " run " + asm_file_);
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "0x2a\n");
}

TEST_F(Cli, MemoryFromHexAndFromFile) {
    Output hex = run(cli + " run " + asm_file_ + " --mem 'ff 01'");
    EXPECT_EQ(hex.status, 0) << hex.err;
    EXPECT_EQ(hex.out, "0x129\n");  // 42 + 0xff

    write_text(temp_path("mem.bin"), std::string("\x10\x20", 2));
    Output file = run(cli + " run " + asm_file_ + " --mem @" + temp_path("mem.bin"));
    EXPECT_EQ(file.status, 0) << file.err;
    EXPECT_EQ(file.out, "0x3a\n");  // 42 + 0x10
}

TEST_F(Cli, AsmThenRawRunAndDisasmRoundTrip) {
    const std::string bin = temp_path("prog.bin");
    Output a = run(cli + " asm " + asm_file_ + " -o " + bin);
    ASSERT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(slurp(bin).size(), 6u * 8u);

    Output r = run(cli + " run " + bin + " --raw");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "0x2a\n");

    Output d = run(cli + " disasm " + bin);
    ASSERT_EQ(d.status, 0) << d.err;
    EXPECT_NE(d.out.find("mul %r0, 6"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("exit"), std::string::npos) << d.out;
    // The disassembly assembles back to the same bytes.
    write_text(asm_file_, d.out);
    ASSERT_EQ(run(cli + " asm " + asm_file_ + " -o " + bin + "2").status, 0);
    EXPECT_EQ(slurp(bin + "2"), slurp(bin));
    std::remove((bin + "2").c_str());
}

TEST_F(Cli, JitEngineGivesTheSameResult) {
    Output interp = run(cli + " run " + asm_file_ + " --mem 05");
    Output jit = run(cli + " run " + asm_file_ + " --mem 05 --engine jit --repeat 10");
    EXPECT_EQ(jit.status, 0) << jit.err;
    EXPECT_EQ(jit.out, "0x2f\n");
    EXPECT_EQ(jit.out, interp.out);
    EXPECT_NE(jit.err.find("ns/run over 10 runs"), std::string::npos) << jit.err;
}

TEST_F(Cli, AotEngineGivesTheSameResult) {
    if (!aot::compile_available()) GTEST_SKIP() << "built without LLVM";
    Output interp = run(cli + " run " + asm_file_ + " --mem 05");
    Output compiled = run(cli + " run " + asm_file_ + " --mem 05 --engine aot --repeat 10");
    EXPECT_EQ(compiled.status, 0) << compiled.err;
    EXPECT_EQ(compiled.out, "0x2f\n");
    EXPECT_EQ(compiled.out, interp.out);
    EXPECT_TRUE(std::regex_search(compiled.err, std::regex(R"(^time: [0-9.]+ ns/run over 10 runs\n$)"))) << compiled.err;
    Output unchecked = run(cli + " run " + asm_file_ + " --mem 05 --engine aot --unchecked --budget 100");
    EXPECT_EQ(unchecked.status, 0) << unchecked.err;
    EXPECT_EQ(unchecked.out, "0x2f\n");
}

TEST_F(Cli, AotWritesAnObjectPerTarget) {
    if (!aot::compile_available()) GTEST_SKIP() << "built without LLVM";
    const std::string obj = temp_path("prog.o");
    // e_machine (offset 18, little-endian) of each target.
    const std::pair<std::string, unsigned> targets[] = {
        {"x86_64-linux-gnu", 62}, {"aarch64-linux-gnu", 183}, {"riscv64-linux-gnu", 243}};
    for (const auto& [triple, machine] : targets) {
        Output o = run(cli + " aot " + asm_file_ + " -o " + obj + " --target " + triple);
        ASSERT_EQ(o.status, 0) << triple << ": " << o.err;
        EXPECT_EQ(o.out, "");
        const std::string bytes = slurp(obj);
        ASSERT_GT(bytes.size(), 64u) << triple;
        EXPECT_EQ(bytes.substr(0, 4), "\x7f" "ELF") << triple;
        EXPECT_EQ(static_cast<unsigned char>(bytes[16]), 1u) << triple;  // ET_REL
        EXPECT_EQ(static_cast<unsigned char>(bytes[18]) | static_cast<unsigned char>(bytes[19]) << 8, machine) << triple;
    }
    Output cpu = run(cli + " aot " + asm_file_ + " -o " + obj + " --cpu no-such-cpu");
    EXPECT_EQ(cpu.status, 1);
    EXPECT_NE(cpu.err.find("unknown CPU \"no-such-cpu\""), std::string::npos) << cpu.err;
    std::remove(obj.c_str());
}

TEST_F(Cli, RepeatPrintsTimingLine) {
    Output o = run(cli + " run " + asm_file_ + " --repeat 1000");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "0x2a\n");
    EXPECT_TRUE(std::regex_search(o.err, std::regex(R"(^time: [0-9.]+ ns/run over 1000 runs\n$)"))) << o.err;
}

TEST_F(Cli, ErrorsAreOneLineWithExitStatus1) {
    struct Case {
        std::string args, expect;
    } cases[] = {
        {"run /nonexistent/x.s", "ebpfrt: read \"/nonexistent/x.s\": No such file or directory\n"},
        {"aot " + asm_file_, "ebpfrt: aot: usage: ebpfrt aot FILE -o OUT.o [--target TRIPLE] (see ebpfrt help)\n"},
        {"aot " + asm_file_ + " -o /dev/null --target sparc-sun-solaris",
         "ebpfrt: aot \"" + asm_file_ + "\": compile \"ebpf_main\": target \"sparc-sun-solaris\": not supported (x86_64, "
         "aarch64 and riscv64 are)\n"},
        {"run " + asm_file_ + " --engine turbo", "ebpfrt: run: unknown engine \"turbo\" (interp, jit, aot)\n"},
        {"run " + asm_file_ + " --mem 'zz'", "ebpfrt: run: --mem: hex: 'z' at offset 0 is not a hex digit\n"},
        {"run " + asm_file_ + " --repeat x", "ebpfrt: run: --repeat: \"x\" is not a number\n"},
        {"run", "ebpfrt: run: no FILE given (see ebpfrt help)\n"},
        {"frobnicate", "ebpfrt: unknown command \"frobnicate\" (see ebpfrt help)\n"},
    };
    for (const auto& c : cases) {
        Output o = run(cli + " " + c.args);
        EXPECT_EQ(o.status, 1) << c.args;
        EXPECT_EQ(o.err, c.expect) << c.args;
        EXPECT_EQ(o.out, "") << c.args;
    }
}

TEST_F(Cli, BadProgramsAreErrorsNotCrashes) {
    // Not a multiple of 8 bytes.
    write_text(temp_path("prog.bin"), "1234567");
    Output size = run(cli + " run --raw " + temp_path("prog.bin"));
    EXPECT_EQ(size.status, 1);
    EXPECT_EQ(size.err.rfind("ebpfrt: load \"" + temp_path("prog.bin") + "\": ", 0), 0u) << size.err;

    // Reads outside its memory: a checked-mode fault naming the instruction.
    write_text(asm_file_, "ldxdw %r0, [%r1+4096]\nexit\n");
    Output oob = run(cli + " run " + asm_file_ + " --mem 00");
    EXPECT_EQ(oob.status, 1);
    EXPECT_NE(oob.err.find("insn 0"), std::string::npos) << oob.err;
    EXPECT_EQ(std::count(oob.err.begin(), oob.err.end(), '\n'), 1) << oob.err;

    // An endless loop is stopped by the budget.
    write_text(asm_file_, "mov %r0, 0\nja -1\nexit\n");
    Output loop = run(cli + " run " + asm_file_ + " --budget 10000");
    EXPECT_EQ(loop.status, 1);
    EXPECT_NE(loop.err.find("budget"), std::string::npos) << loop.err;

    // A truncated ELF file is read as ELF (not misread as text) and refused in one line.
    write_text(temp_path("prog.bin"), std::string("\x7f" "ELF\x02\x01\x01", 7));
    Output elf = run(cli + " run " + temp_path("prog.bin"));
    EXPECT_EQ(elf.status, 1);
    EXPECT_NE(elf.err.find("ELF"), std::string::npos) << elf.err;
    EXPECT_EQ(elf.err.find("line "), std::string::npos) << elf.err;
    EXPECT_EQ(std::count(elf.err.begin(), elf.err.end(), '\n'), 1) << elf.err;

    // Assembler errors name the line.
    write_text(asm_file_, "mov %r0, 1\nfrob %r1\nexit\n");
    Output bad = run(cli + " run " + asm_file_);
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("line 2"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ebpfrt::test
