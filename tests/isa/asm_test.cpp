// isa::assemble: the conformance suite's assembler syntax, checked field by field against encodings
// written out by hand from RFC 9669 (opcode = operation | source | class, etc.).

#include <ebpfrt/isa.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

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

std::string show(const std::vector<Insn>& p) {
    std::string s;
    for (const Insn& i : p) {
        s += fmt::format("{{op=0x{:02x} dst={} src={} off={} imm={}}} ", i.opcode, int(i.dst), int(i.src), i.offset,
                         i.imm);
    }
    return s;
}

struct Case {
    std::string_view text;
    std::vector<Insn> want;
};

void check(const Case& c) {
    auto got = isa::assemble(c.text);
    ASSERT_TRUE(got) << c.text << ": " << got.error().message();
    EXPECT_EQ(*got, c.want) << c.text << "\n got  " << show(*got) << "\n want " << show(c.want);
}

TEST(Assemble, AluInstructions) {
    const Case cases[] = {
        {"mov %r0, 1", {mk(0xb7, 0, 0, 0, 1)}},
        {"mov32 %r1, 2", {mk(0xb4, 1, 0, 0, 2)}},
        {"mov %r9, -1", {mk(0xb7, 9, 0, 0, -1)}},
        {"mov %r3, 0x10", {mk(0xb7, 3, 0, 0, 16)}},
        {"mov %r0, %r10", {mk(0xbf, 0, 10)}},
        {"add32 %r0, -3", {mk(0x04, 0, 0, 0, -3)}},
        {"add32 %r0, %r1", {mk(0x0c, 0, 1)}},
        {"add %r0, %r1", {mk(0x0f, 0, 1)}},
        {"sub %r2, 7", {mk(0x17, 2, 0, 0, 7)}},
        {"mul32 %r2, %r3", {mk(0x2c, 2, 3)}},
        {"div %r0, 4", {mk(0x37, 0, 0, 0, 4)}},
        {"div32 %r0, %r1", {mk(0x3c, 0, 1)}},
        {"or %r4, 0xff", {mk(0x47, 4, 0, 0, 255)}},
        {"and32 %r4, %r5", {mk(0x5c, 4, 5)}},
        {"lsh %r0, 68", {mk(0x67, 0, 0, 0, 68)}},
        {"rsh32 %r0, %r1", {mk(0x7c, 0, 1)}},
        {"neg32 %r0", {mk(0x84, 0)}},
        {"neg %r1", {mk(0x87, 1)}},
        {"mod %r0, %r1", {mk(0x9f, 0, 1)}},
        {"mod32 %r0, 3", {mk(0x94, 0, 0, 0, 3)}},
        {"xor %r6, %r7", {mk(0xaf, 6, 7)}},
        {"arsh32 %r0, 16", {mk(0xc4, 0, 0, 0, 16)}},
        {"arsh %r2, %r3", {mk(0xcf, 2, 3)}},
        {"sdiv32 %r0, %r1", {mk(0x3c, 0, 1, 1)}},
        {"sdiv %r0, -3", {mk(0x37, 0, 0, 1, -3)}},
        {"smod %r0, -3", {mk(0x97, 0, 0, 1, -3)}},
        {"smod32 %r0, %r1", {mk(0x9c, 0, 1, 1)}},
        {"movsx832 %r0, %r1", {mk(0xbc, 0, 1, 8)}},
        {"movsx1632 %r4, %r3", {mk(0xbc, 4, 3, 16)}},
        {"movsx864 %r6, %r5", {mk(0xbf, 6, 5, 8)}},
        {"movsx1664 %r8, %r7", {mk(0xbf, 8, 7, 16)}},
        {"movsx3264 %r0, %r9", {mk(0xbf, 0, 9, 32)}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, ByteSwaps) {
    const Case cases[] = {
        {"be16 %r0", {mk(0xdc, 0, 0, 0, 16)}},  {"be32 %r3", {mk(0xdc, 3, 0, 0, 32)}},
        {"be64 %r0", {mk(0xdc, 0, 0, 0, 64)}},  {"le16 %r0", {mk(0xd4, 0, 0, 0, 16)}},
        {"le32 %r0", {mk(0xd4, 0, 0, 0, 32)}},  {"le64 %r2", {mk(0xd4, 2, 0, 0, 64)}},
        {"bswap16 %r0", {mk(0xd7, 0, 0, 0, 16)}}, {"bswap32 %r1", {mk(0xd7, 1, 0, 0, 32)}},
        {"bswap64 %r0", {mk(0xd7, 0, 0, 0, 64)}},
        // swapN is an alias of bswapN
        {"swap16 %r0", {mk(0xd7, 0, 0, 0, 16)}},  {"swap32 %r0", {mk(0xd7, 0, 0, 0, 32)}},
        {"swap64 %r5", {mk(0xd7, 5, 0, 0, 64)}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, Lddw) {
    check({"lddw %r0, 0x1122334455667788", {mk(0x18, 0, 0, 0, 0x55667788), mk(0x00, 0, 0, 0, 0x11223344)}});
    // the low half 0x80000000 is stored as the int32 bit pattern; the high half all ones
    check({"lddw %r1, 0xFFFFFFFF80000000",
           {mk(0x18, 1, 0, 0, static_cast<std::int32_t>(0x80000000u)), mk(0x00, 0, 0, 0, -1)}});
    check({"lddw %r3, 1", {mk(0x18, 3, 0, 0, 1), mk(0x00)}});
    check({"lddw %r0, 2147483648", {mk(0x18, 0, 0, 0, static_cast<std::int32_t>(0x80000000u)), mk(0x00)}});
}

TEST(Assemble, LoadsAndStores) {
    const Case cases[] = {
        {"ldxw %r0, [%r1+4]", {mk(0x61, 0, 1, 4)}},
        {"ldxh %r0, [%r1]", {mk(0x69, 0, 1, 0)}},
        {"ldxb %r0, [%r10-1]", {mk(0x71, 0, 10, -1)}},
        {"ldxdw %r0, [%r10-8]", {mk(0x79, 0, 10, -8)}},
        {"ldxb %r0, [%r1+0x2]", {mk(0x71, 0, 1, 2)}},
        {"ldxsb %r0, [%r10-1]", {mk(0x91, 0, 10, -1)}},
        {"ldxsh %r0, [%r10-2]", {mk(0x89, 0, 10, -2)}},
        {"ldxsw %r2, [%r1+8]", {mk(0x81, 2, 1, 8)}},
        {"stxdw [%r10-8], %r1", {mk(0x7b, 10, 1, -8)}},
        {"stxw [%r1+4], %r2", {mk(0x63, 1, 2, 4)}},
        {"stxh [%r1+2], %r2", {mk(0x6b, 1, 2, 2)}},
        {"stxb [%r10-1], %r3", {mk(0x73, 10, 3, -1)}},
        {"stb [%r10-1], 0x7f", {mk(0x72, 10, 0, -1, 0x7f)}},
        {"sth [%r1+2], 0x2211", {mk(0x6a, 1, 0, 2, 0x2211)}},
        {"stw [%r1+4], -2", {mk(0x62, 1, 0, 4, -2)}},
        {"stdw [%r10-16], 0xab", {mk(0x7a, 10, 0, -16, 0xab)}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, Atomics) {
    const Case cases[] = {
        {"lock add [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0x00)}},
        {"lock add32 [%r10-4], %r1", {mk(0xc3, 10, 1, -4, 0x00)}},
        {"lock fetch add [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0x01)}},
        {"lock fetch add32 [%r10-4], %r1", {mk(0xc3, 10, 1, -4, 0x01)}},
        {"lock or [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0x40)}},
        {"lock fetch or32 [%r10-4], %r3", {mk(0xc3, 10, 3, -4, 0x41)}},
        {"lock and [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0x50)}},
        {"lock fetch and [%r10-8], %r3", {mk(0xdb, 10, 3, -8, 0x51)}},
        {"lock xor32 [%r10-4], %r1", {mk(0xc3, 10, 1, -4, 0xa0)}},
        {"lock fetch xor [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0xa1)}},
        {"lock xchg [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0xe1)}},
        {"lock xchg32 [%r10-8], %r1", {mk(0xc3, 10, 1, -8, 0xe1)}},
        {"lock cmpxchg [%r10-8], %r1", {mk(0xdb, 10, 1, -8, 0xf1)}},
        {"lock cmpxchg32 [%r10-8], %r1", {mk(0xc3, 10, 1, -8, 0xf1)}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, JumpsWithNumericOffsets) {
    const Case cases[] = {
        {"jeq %r1, 0, +3", {mk(0x15, 1, 0, 3, 0)}},
        {"jeq %r1, %r2, +1", {mk(0x1d, 1, 2, 1)}},
        {"jne32 %r2, %r3, -1", {mk(0x5e, 2, 3, -1)}},
        {"jgt %r1, 2, +4", {mk(0x25, 1, 0, 4, 2)}},
        {"jge %r2, %r1, +7", {mk(0x3d, 2, 1, 7)}},
        {"jset %r1, 0x8, +1", {mk(0x45, 1, 0, 1, 8)}},
        {"jsgt %r1, -1, +2", {mk(0x65, 1, 0, 2, -1)}},
        {"jsge32 %r1, %r2, +2", {mk(0x7e, 1, 2, 2)}},
        {"jlt %r1, 5, +1", {mk(0xa5, 1, 0, 1, 5)}},
        {"jle32 %r1, 5, +1", {mk(0xb6, 1, 0, 1, 5)}},
        {"jslt %r1, %r2, +1", {mk(0xcd, 1, 2, 1)}},
        {"jsle %r1, -5, -2", {mk(0xd5, 1, 0, -2, -5)}},
        {"ja +2", {mk(0x05, 0, 0, 2)}},
        {"ja -1", {mk(0x05, 0, 0, -1)}},
        {"jeq %r1, 0x80000000, +1", {mk(0x15, 1, 0, 1, static_cast<std::int32_t>(0x80000000u))}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, CallsAndExit) {
    const Case cases[] = {
        {"call 5", {mk(0x85, 0, 0, 0, 5)}},
        {"call %r2", {mk(0x8d, 2)}},  // callx: register in dst
        {"exit", {mk(0x95)}},
    };
    for (const Case& c : cases) check(c);
}

TEST(Assemble, LabelsForwardAndBackward) {
    // offsets are relative to the next instruction: target - (index + 1)
    check({R"(ja L1
mov %r0, 1
L1:
exit)",
           {mk(0x05, 0, 0, 1), mk(0xb7, 0, 0, 0, 1), mk(0x95)}});
    check({R"(mov %r1, 0
L2:
add %r1, 1
jne %r1, 10, L2
mov %r0, %r1
exit)",
           {mk(0xb7, 1), mk(0x07, 1, 0, 0, 1), mk(0x55, 1, 0, -2, 10), mk(0xbf, 0, 1), mk(0x95)}});
    // an lddw counts two slots
    check({R"(jeq %r1, 0, done
lddw %r0, 0x100000002
done:
exit)",
           {mk(0x15, 1, 0, 2), mk(0x18, 0, 0, 0, 2), mk(0x00, 0, 0, 0, 1), mk(0x95)}});
}

TEST(Assemble, ExitAsAJumpTarget) {
    // The suite's assembler lets `exit` name the first exit instruction when no label has that name
    // (jeq-reg.data: both `jeq ..., exit` go to slot 5, one forward and one backward).
    check({R"(mov %r0, 0
jeq %r1, 0, exit
mov %r0, 1
exit
mov %r0, 2
jeq %r1, 0, exit
ja exit
exit)",
           {mk(0xb7), mk(0x15, 1, 0, 1), mk(0xb7, 0, 0, 0, 1), mk(0x95), mk(0xb7, 0, 0, 0, 2), mk(0x15, 1, 0, -3),
            mk(0x05, 0, 0, -4), mk(0x95)}});
}

TEST(Assemble, Ja32PutsTheOffsetInImm) {
    check({R"(mov %r1, 0
ja32 L2
L1:
mov %r2, 0
exit
L2:
mov %r0, 0
ja32 L1)",
           {mk(0xb7, 1), mk(0x06, 0, 0, 0, 2), mk(0xb7, 2), mk(0x95), mk(0xb7, 0), mk(0x06, 0, 0, 0, -4)}});
}

TEST(Assemble, CallLocal) {
    check({R"(mov %r1, 1
call local func1
exit
func1:
mov %r0, %r1
exit)",
           {mk(0xb7, 1, 0, 0, 1), mk(0x85, 0, 1, 0, 1), mk(0x95), mk(0xbf, 0, 1), mk(0x95)}});
    // a backward local call
    check({R"(ja main
f:
mov %r0, 7
exit
main:
call local f
exit)",
           {mk(0x05, 0, 0, 2), mk(0xb7, 0, 0, 0, 7), mk(0x95), mk(0x85, 0, 1, 0, -3), mk(0x95)}});
}

TEST(Assemble, CommentsAndBlankLines) {
    check({R"(# a comment line
   # indented comment

mov %r0, 1 # trailing comment
	exit
)",
           {mk(0xb7, 0, 0, 0, 1), mk(0x95)}});
    auto empty = isa::assemble("# nothing\n\n");
    ASSERT_TRUE(empty) << empty.error().message();
    EXPECT_TRUE(empty->empty());
}

void expect_error_at_line(std::string_view text, int line) {
    auto r = isa::assemble(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message(), fmt::format("line {}", line))) << text;
}

TEST(Assemble, ErrorsNameTheLine) {
    expect_error_at_line("mov %r0, 1\nbogus %r0\nexit\n", 2);
    expect_error_at_line("# header\n\nmov %r0, 1\nfrobnicate\nexit\n", 4);
    expect_error_at_line("mov %r11, 1\nexit\n", 1);
    expect_error_at_line("mov %r0, 1\nja nowhere\nexit\n", 2);
    expect_error_at_line("mov %r0\nexit\n", 1);
    expect_error_at_line("mov %r0, 1\nldxw %r0, [%r1+4\nexit\n", 2);
    expect_error_at_line("mov %r0, 1\nexit\nlock frob [%r10-8], %r1\n", 3);
    expect_error_at_line("mov %r0, zzz\n", 1);
}

}  // namespace
}  // namespace ebpfrt
