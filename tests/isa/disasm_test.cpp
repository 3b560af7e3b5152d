// isa::disassemble / disassemble_one, and the round trips with isa::assemble:
//   * assemble(disassemble(p)) == p for every program of the public conformance suite, for every
//     instruction of the ISA with arbitrary operands, and for arbitrary (mostly invalid) slots;
//   * assembling the `-- asm` section of every suite `.data` file gives exactly its program_hex.

#include <ebpfrt/isa.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "../conformance/suite.hpp"

namespace ebpfrt {
namespace {

::testing::AssertionResult contains(std::string_view text, std::string_view part) {
    if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

Insn mk(std::uint8_t op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0, std::int32_t imm = 0) {
    Insn i;
    i.opcode = op;
    i.dst = dst & 0xf;
    i.src = src & 0xf;
    i.offset = off;
    i.imm = imm;
    return i;
}

std::string show(const Insn& i) {
    return fmt::format("{{op=0x{:02x} dst={} src={} off={} imm={}}}", i.opcode, int(i.dst), int(i.src), i.offset,
                       i.imm);
}

// assemble(disassemble(prog)) == prog, with a readable failure.
::testing::AssertionResult round_trips(const std::vector<Insn>& prog) {
    const std::string text = isa::disassemble(prog);
    auto back = isa::assemble(text);
    if (!back) return ::testing::AssertionFailure() << "assemble failed: " << back.error().message() << "\n" << text;
    if (back->size() != prog.size()) {
        return ::testing::AssertionFailure() << "got " << back->size() << " slots, want " << prog.size() << "\n"
                                             << text;
    }
    for (std::size_t k = 0; k < prog.size(); ++k) {
        if (!((*back)[k] == prog[k])) {
            return ::testing::AssertionFailure() << "slot " << k << ": got " << show((*back)[k]) << ", want "
                                                 << show(prog[k]) << " (text: \"" << isa::disassemble_one(prog, k)
                                                 << "\")\n"
                                                 << text;
        }
    }
    return ::testing::AssertionSuccess();
}

TEST(Disassemble, CanonicalText) {
    const std::vector<Insn> prog{mk(0xb7, 0, 0, 0, 1), mk(0x61, 0, 1, 4), mk(0x7b, 10, 1, -8),
                                 mk(0x15, 1, 0, 3, 0), mk(0x05, 0, 0, -1), mk(0xdb, 10, 1, -8, 0x01),
                                 mk(0x95)};
    EXPECT_EQ(isa::disassemble_one(prog, 0), "mov %r0, 1");
    EXPECT_EQ(isa::disassemble_one(prog, 1), "ldxw %r0, [%r1+4]");
    EXPECT_EQ(isa::disassemble_one(prog, 2), "stxdw [%r10-8], %r1");
    EXPECT_TRUE(contains(isa::disassemble_one(prog, 3), "+3"));
    EXPECT_TRUE(contains(isa::disassemble_one(prog, 3), "jeq %r1"));
    EXPECT_TRUE(contains(isa::disassemble_one(prog, 4), "-1"));
    EXPECT_EQ(isa::disassemble_one(prog, 5), "lock fetch add [%r10-8], %r1");
    EXPECT_EQ(isa::disassemble_one(prog, 6), "exit");
}

TEST(Disassemble, OneLinePerInstruction) {
    const std::vector<Insn> prog{mk(0xb7, 0, 0, 0, 1), mk(0x07, 0, 0, 0, 2), mk(0x95)};
    const std::string text = isa::disassemble(prog);
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
    EXPECT_EQ(text, isa::disassemble_one(prog, 0) + "\n" + isa::disassemble_one(prog, 1) + "\n" +
                        isa::disassemble_one(prog, 2) + "\n");
}

TEST(Disassemble, LddwReadsBothSlots) {
    const std::vector<Insn> prog{mk(0x18, 2, 0, 0, 0x55667788), mk(0x00, 0, 0, 0, 0x11223344), mk(0x95)};
    const std::string text = isa::disassemble_one(prog, 0);
    EXPECT_TRUE(contains(text, "lddw %r2"));
    // the value may be printed in hex or decimal
    EXPECT_TRUE(contains(text, "0x1122334455667788") || contains(text, "1234605616436508552")) << text;
    EXPECT_TRUE(round_trips(prog));
}

// Every instruction of the ISA (with the fields that select it), with random operands in the fields
// that do not; plus the same opcodes with junk in reserved fields, which need the raw fallback.
TEST(Disassemble, RoundTripOfEveryInstructionWithRandomOperands) {
    std::mt19937_64 rng(7);
    auto r16 = [&] { return static_cast<std::int16_t>(rng()); };
    auto r32 = [&] { return static_cast<std::int32_t>(rng()); };
    auto reg = [&] { return static_cast<std::uint8_t>(rng() % 11); };
    std::vector<Insn> prog;
    const std::uint8_t alu_ops[] = {0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xa0, 0xb0, 0xc0};
    for (int round = 0; round < 20; ++round) {
        for (std::uint8_t cls : {0x04, 0x07}) {
            for (std::uint8_t op : alu_ops) {
                prog.push_back(mk(cls | op, reg(), 0, 0, r32()));
                prog.push_back(mk(cls | op | 0x08, reg(), reg()));
            }
            prog.push_back(mk(cls | 0x80, reg()));
            prog.push_back(mk(cls | 0x30, reg(), 0, 1, r32()));
            prog.push_back(mk(cls | 0x98, reg(), reg(), 1));
            prog.push_back(mk(cls | 0xb8, reg(), reg(), 8));
            prog.push_back(mk(cls | 0xb8, reg(), reg(), 16));
        }
        prog.push_back(mk(0xbf, reg(), reg(), 32));
        for (int w : {16, 32, 64}) {
            prog.push_back(mk(0xd4, reg(), 0, 0, w));
            prog.push_back(mk(0xdc, reg(), 0, 0, w));
            prog.push_back(mk(0xd7, reg(), 0, 0, w));
        }
        for (std::uint8_t op : {0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91}) prog.push_back(mk(op, reg(), reg(), r16()));
        for (std::uint8_t op : {0x62, 0x6a, 0x72, 0x7a}) prog.push_back(mk(op, reg(), 0, r16(), r32()));
        for (std::uint8_t op : {0x63, 0x6b, 0x73, 0x7b}) prog.push_back(mk(op, reg(), reg(), r16()));
        for (std::uint8_t op : {0xc3, 0xdb}) {
            for (std::int32_t imm : {0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1}) {
                prog.push_back(mk(op, reg(), reg(), r16(), imm));
            }
        }
        for (std::uint8_t op : {0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0}) {
            for (std::uint8_t cls : {0x05, 0x06}) {
                prog.push_back(mk(cls | op, reg(), 0, r16(), r32()));
                prog.push_back(mk(cls | op | 0x08, reg(), reg(), r16()));
            }
        }
        prog.push_back(mk(0x05, 0, 0, r16()));
        prog.push_back(mk(0x06, 0, 0, 0, r32()));
        prog.push_back(mk(0x85, 0, 0, 0, r32()));
        prog.push_back(mk(0x85, 0, 1, 0, r32()));
        prog.push_back(mk(0x85, 0, 2, 0, r32()));
        prog.push_back(mk(0x8d, reg()));
        prog.push_back(mk(0x95));
        for (std::uint8_t op : {0x20, 0x28, 0x30}) prog.push_back(mk(op, 0, 0, 0, r32()));
        for (std::uint8_t op : {0x40, 0x48, 0x50}) prog.push_back(mk(op, 0, reg(), 0, r32()));
        for (std::uint8_t src = 0; src <= 6; ++src) {
            prog.push_back(mk(0x18, reg(), src, 0, r32()));
            prog.push_back(mk(0x00, 0, 0, 0, r32()));
        }
    }
    EXPECT_TRUE(round_trips(prog));

    // The same opcodes with junk in fields the text form has no place for.
    std::vector<Insn> junk;
    for (const Insn& i : prog) {
        Insn j = i;
        switch (rng() % 3) {
        case 0: j.offset = static_cast<std::int16_t>(j.offset ^ 0x5a5a); break;
        case 1: j.src = static_cast<std::uint8_t>((j.src + 1 + rng() % 14) & 0xf); break;
        default: j.imm ^= 0x01010101; break;
        }
        if (j.dst == 0 && rng() % 2) j.dst = static_cast<std::uint8_t>(11 + rng() % 5);  // r11-r15
        junk.push_back(j);
    }
    EXPECT_TRUE(round_trips(junk));
}

TEST(Disassemble, RoundTripOfArbitrarySlots) {
    std::mt19937_64 rng(1234);
    for (int round = 0; round < 300; ++round) {
        std::vector<Insn> prog(1 + round % 9);
        for (Insn& i : prog) {
            const std::uint64_t x = rng();
            i.opcode = static_cast<std::uint8_t>(x);
            i.dst = (x >> 8) & 0xf;
            i.src = (x >> 12) & 0xf;
            i.offset = static_cast<std::int16_t>(x >> 16);
            i.imm = static_cast<std::int32_t>(x >> 32);
        }
        ASSERT_TRUE(round_trips(prog)) << "round " << round;
        // each slot alone too (an lddw first slot at the end has no second slot)
        for (const Insn& i : prog) ASSERT_TRUE(round_trips({i})) << show(i);
    }
}

TEST(Disassemble, TruncatedLddwAtTheEnd) {
    const std::vector<Insn> prog{mk(0xb7), mk(0x18, 1, 0, 0, 5)};
    (void)isa::disassemble_one(prog, 1);  // must not read past the end
    EXPECT_TRUE(round_trips(prog));
}

// ---------------------------------------------------------------------------------------------
// The public conformance suite

std::vector<Insn> decode_or_fail(const std::vector<std::byte>& bytes, const std::string& name) {
    auto insns = isa::decode(bytes);
    if (!insns) {
        ADD_FAILURE() << name << ": decode: " << insns.error().message();
        return {};
    }
    return *insns;
}

TEST(ConformanceSuite, DisassembleThenAssembleIsIdentity) {
    const auto files = test::list_files(test::conformance_dir(), ".json");
    if (files.empty()) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    EXPECT_EQ(files.size(), 313u);
    for (const auto& path : files) {
        std::string why;
        auto c = test::load_case(path, why);
        ASSERT_TRUE(c) << path << ": " << why;
        const auto prog = decode_or_fail(c->program, c->name);
        EXPECT_TRUE(round_trips(prog)) << c->name;
    }
}

TEST(ConformanceSuite, AssemblingTheAsmSectionGivesProgramHex) {
    const auto files = test::list_files(test::conformance_dir(), ".json");
    if (files.empty()) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    int checked = 0;
    for (const auto& path : files) {
        std::string why;
        auto c = test::load_case(path, why);
        ASSERT_TRUE(c) << path << ": " << why;
        auto data_path = path;
        data_path.replace_extension(".data");
        const std::string text = test::asm_section(test::read_text(data_path));
        ASSERT_FALSE(text.empty()) << data_path << " has no -- asm section";
        auto prog = isa::assemble(text);
        if (!prog) {
            ADD_FAILURE() << c->name << ": " << prog.error().message();
            continue;
        }
        const auto bytes = isa::encode(*prog);
        if (bytes != c->program) {
            const auto want = decode_or_fail(c->program, c->name);
            std::string diff;
            for (std::size_t k = 0; k < std::max(want.size(), prog->size()); ++k) {
                const bool same = k < want.size() && k < prog->size() && want[k] == (*prog)[k];
                if (!same) {
                    diff += fmt::format("  slot {}: got {}, want {}\n", k,
                                        k < prog->size() ? show((*prog)[k]) : "-", k < want.size() ? show(want[k]) : "-");
                }
            }
            ADD_FAILURE() << c->name << ": assembled program differs from program_hex\n" << diff;
        }
        ++checked;
    }
    EXPECT_EQ(checked, 313);
}

TEST(ConformanceSuite, EveryProgramClassifiesAndValidates) {
    const auto files = test::list_files(test::conformance_dir(), ".json");
    if (files.empty()) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    for (const auto& path : files) {
        std::string why;
        auto c = test::load_case(path, why);
        ASSERT_TRUE(c) << path << ": " << why;
        const auto prog = decode_or_fail(c->program, c->name);
        auto v = isa::validate(prog);
        EXPECT_TRUE(v) << c->name << ": " << v.error().message();
        for (std::size_t k = 0; k < prog.size(); ++k) {
            auto info = isa::classify(prog[k]);
            ASSERT_TRUE(info) << c->name << " slot " << k << ": " << info.error().message();
            if (info->wide) ++k;  // skip the second slot of lddw
        }
    }
}

// The suite's cpu_version is the highest version among a program's instructions, computed with the
// suite's own opcode table. That table puts every atomic and local call at v3 and callx at v1 (its
// own conventions), so programs using those are left out; for the rest, classify must agree.
TEST(ConformanceSuite, CpuVersionMatchesTheSuite) {
    const auto files = test::list_files(test::conformance_dir(), ".json");
    if (files.empty()) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    int compared = 0;
    for (const auto& path : files) {
        std::string why;
        auto c = test::load_case(path, why);
        ASSERT_TRUE(c) << path << ": " << why;
        const auto prog = decode_or_fail(c->program, c->name);
        bool skip = false;
        int version = 1;
        for (std::size_t k = 0; k < prog.size(); ++k) {
            const Insn& i = prog[k];
            if (i.opcode == 0xc3 || i.opcode == 0xdb || i.opcode == 0x8d || (i.opcode == 0x85 && i.src == 1)) {
                skip = true;
            }
            auto info = isa::classify(i);
            ASSERT_TRUE(info) << c->name << " slot " << k;
            version = std::max<int>(version, info->version);
            if (info->wide) ++k;
        }
        if (skip) continue;
        EXPECT_EQ("v" + std::to_string(version), c->cpu_version) << c->name;
        ++compared;
    }
    EXPECT_GT(compared, 250);
}

}  // namespace
}  // namespace ebpfrt
