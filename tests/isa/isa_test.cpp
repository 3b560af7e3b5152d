// isa::classify, isa::decode/encode and the Insn layout. Expected opcodes are written out by hand from
// RFC 9669 (§3 encoding, §4-5 instructions, Appendix A opcode table), not taken from the code.

#include <ebpfrt/isa.hpp>

#include <array>
#include <bit>
#include <cstring>
#include <random>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ebpfrt {
namespace {

::testing::AssertionResult contains(std::string_view text, std::string_view part) {
    if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

constexpr Insn mk(std::uint8_t op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0,
                  std::int32_t imm = 0) {
    Insn i;
    i.opcode = op;
    i.dst = dst & 0xf;
    i.src = src & 0xf;
    i.offset = off;
    i.imm = imm;
    return i;
}

std::string show(const Insn& i) {
    return fmt::format("{{op=0x{:02x} dst={} src={} off={} imm={}}}", i.opcode, int(i.dst), int(i.src), i.offset, i.imm);
}

// ---------------------------------------------------------------------------------------------
// classify: valid instructions

struct Valid {
    Insn insn;
    int version;  // lowest ISA version that has it
};

// Every instruction of RFC 9669 Appendix A, with the lowest -mcpu version that has it:
// v1 = the original eBPF set, v2 = jlt/jle/jslt/jsle (JMP class), v3 = JMP32 class and atomics with
// fetch, v4 = sdiv/smod, movsx, ldxs*, bswap, ja32.
std::vector<Valid> all_valid_instructions() {
    std::vector<Valid> v;
    const std::uint8_t alu_ops[] = {isa::op_add, isa::op_sub, isa::op_mul, isa::op_div, isa::op_or,  isa::op_and,
                                    isa::op_lsh, isa::op_rsh, isa::op_mod, isa::op_xor, isa::op_mov, isa::op_arsh};
    for (std::uint8_t cls : {isa::cls_alu, isa::cls_alu64}) {
        for (std::uint8_t op : alu_ops) {
            v.push_back({mk(cls | op | isa::src_k, 1, 0, 0, 7), 1});
            v.push_back({mk(cls | op | isa::src_x, 1, 2), 1});
        }
        v.push_back({mk(cls | isa::op_neg, 3), 1});
        // sdiv / smod (offset 1), v4
        v.push_back({mk(cls | isa::op_div | isa::src_k, 1, 0, 1, 7), 4});
        v.push_back({mk(cls | isa::op_div | isa::src_x, 1, 2, 1), 4});
        v.push_back({mk(cls | isa::op_mod | isa::src_k, 1, 0, 1, -7), 4});
        v.push_back({mk(cls | isa::op_mod | isa::src_x, 1, 2, 1), 4});
        // movsx 8/16 (both classes), 32 (alu64 only), v4
        v.push_back({mk(cls | isa::op_mov | isa::src_x, 1, 2, 8), 4});
        v.push_back({mk(cls | isa::op_mov | isa::src_x, 1, 2, 16), 4});
    }
    v.push_back({mk(isa::cls_alu64 | isa::op_mov | isa::src_x, 1, 2, 32), 4});
    // le/be (alu class, src bit selects be), 16/32/64; bswap (alu64) v4
    for (int w : {16, 32, 64}) {
        v.push_back({mk(0xd4, 1, 0, 0, w), 1});
        v.push_back({mk(0xdc, 1, 0, 0, w), 1});
        v.push_back({mk(0xd7, 1, 0, 0, w), 4});
    }
    // lddw: two slots; the first slot is what classify sees
    v.push_back({mk(0x18, 1, 0, 0, 5), 1});
    // legacy packet access
    for (std::uint8_t op : {0x20, 0x28, 0x30, 0x40, 0x48, 0x50}) {
        v.push_back({mk(op, 0, (op & 0x40) ? 2 : 0, 0, 4), 1});
    }
    // loads, stores
    for (std::uint8_t op : {0x61, 0x69, 0x71, 0x79}) v.push_back({mk(op, 1, 2, -4), 1});
    for (std::uint8_t op : {0x81, 0x89, 0x91}) v.push_back({mk(op, 1, 2, -4), 4});
    for (std::uint8_t op : {0x62, 0x6a, 0x72, 0x7a}) v.push_back({mk(op, 10, 0, -8, 3), 1});
    for (std::uint8_t op : {0x63, 0x6b, 0x73, 0x7b}) v.push_back({mk(op, 10, 1, -8), 1});
    // atomics, 32 (0xc3) and 64 (0xdb) bit; the fetch forms are v3
    for (std::uint8_t op : {0xc3, 0xdb}) {
        for (std::int32_t imm : {isa::atomic_add, isa::atomic_or, isa::atomic_and, isa::atomic_xor}) {
            v.push_back({mk(op, 10, 1, -8, imm | isa::atomic_fetch), 3});
        }
        v.push_back({mk(op, 10, 1, -8, isa::atomic_xchg), 3});
        v.push_back({mk(op, 10, 1, -8, isa::atomic_cmpxchg), 3});
    }
    // jumps
    const std::uint8_t v1_jumps[] = {isa::op_jeq, isa::op_jgt, isa::op_jge, isa::op_jset,
                                     isa::op_jne, isa::op_jsgt, isa::op_jsge};
    const std::uint8_t v2_jumps[] = {isa::op_jlt, isa::op_jle, isa::op_jslt, isa::op_jsle};
    for (std::uint8_t op : v1_jumps) {
        v.push_back({mk(isa::cls_jmp | op | isa::src_k, 1, 0, 2, 9), 1});
        v.push_back({mk(isa::cls_jmp | op | isa::src_x, 1, 2, 2), 1});
        v.push_back({mk(isa::cls_jmp32 | op | isa::src_k, 1, 0, 2, 9), 3});
        v.push_back({mk(isa::cls_jmp32 | op | isa::src_x, 1, 2, 2), 3});
    }
    for (std::uint8_t op : v2_jumps) {
        v.push_back({mk(isa::cls_jmp | op | isa::src_k, 1, 0, 2, 9), 2});
        v.push_back({mk(isa::cls_jmp | op | isa::src_x, 1, 2, 2), 2});
        v.push_back({mk(isa::cls_jmp32 | op | isa::src_k, 1, 0, 2, 9), 3});
        v.push_back({mk(isa::cls_jmp32 | op | isa::src_x, 1, 2, 2), 3});
    }
    v.push_back({mk(0x05, 0, 0, 3), 1});         // ja +3
    v.push_back({mk(0x06, 0, 0, 0, 70000), 4});  // ja32 (gotol): offset in imm
    v.push_back({mk(0x85, 0, 0, 0, 1), 1});      // call helper 1
    v.push_back({mk(0x95), 1});                  // exit
    return v;
}

TEST(Classify, EveryInstructionOfTheIsa) {
    for (const Valid& c : all_valid_instructions()) {
        auto info = isa::classify(c.insn);
        ASSERT_TRUE(info) << show(c.insn) << ": " << info.error().message();
        EXPECT_EQ(info->version, c.version) << show(c.insn) << " (" << info->mnemonic << ")";
        EXPECT_FALSE(info->mnemonic.empty()) << show(c.insn);
        EXPECT_EQ(info->wide, c.insn.opcode == 0x18) << show(c.insn);
    }
}

TEST(Classify, LocalCallsKfuncsAndCallx) {
    EXPECT_TRUE(isa::classify(mk(0x85, 0, isa::call_local, 0, 3)));
    EXPECT_TRUE(isa::classify(mk(0x85, 0, isa::call_kfunc, 0, 1234)));
    auto callx = isa::classify(mk(0x8d, 2));  // callx: the register is in dst (conformance assembler)
    ASSERT_TRUE(callx) << callx.error().message();
    EXPECT_EQ(callx->group, isa::Group::callx);
}

TEST(Classify, Mnemonics) {
    struct Case {
        Insn insn;
        std::string_view mnemonic;
    };
    const Case cases[] = {
        {mk(0x04, 0, 0, 0, 1), "add32"},       {mk(0x0c, 0, 1), "add32"},
        {mk(0x07, 0, 0, 0, 1), "add"},         {mk(0x0f, 0, 1), "add"},
        {mk(0xb7, 0, 0, 0, 1), "mov"},         {mk(0xb4, 0, 0, 0, 1), "mov32"},
        {mk(0x79, 0, 1), "ldxdw"},             {mk(0x61, 0, 1), "ldxw"},
        {mk(0x7b, 10, 1, -8), "stxdw"},        {mk(0x72, 10, 0, -1, 1), "stb"},
        {mk(0x15, 1, 0, 1), "jeq"},            {mk(0x16, 1, 0, 1), "jeq32"},
        {mk(0x95), "exit"},                    {mk(0x18), "lddw"},
        {mk(0x87, 1), "neg"},                  {mk(0x84, 1), "neg32"},
        {mk(0xdb, 10, 1, -8, 0x01), "lock fetch add"},
    };
    for (const Case& c : cases) {
        auto info = isa::classify(c.insn);
        ASSERT_TRUE(info) << show(c.insn);
        EXPECT_EQ(info->mnemonic, c.mnemonic) << show(c.insn);
    }
}

TEST(Classify, ConformanceGroups) {
    struct Case {
        Insn insn;
        isa::Group group;
    };
    const Case cases[] = {
        {mk(0x04, 0, 0, 0, 1), isa::Group::base32},   // add32
        {mk(0xb4, 0, 0, 0, 1), isa::Group::base32},   // mov32
        {mk(0x16, 1, 0, 1), isa::Group::base32},      // jeq32
        {mk(0x95), isa::Group::base32},               // exit
        {mk(0x07, 0, 0, 0, 1), isa::Group::base64},   // add
        {mk(0xbf, 0, 1), isa::Group::base64},         // mov
        {mk(0x87, 1), isa::Group::base64},            // neg
        {mk(0x24, 0, 0, 0, 3), isa::Group::divmul32}, // mul32
        {mk(0x34, 0, 0, 0, 3), isa::Group::divmul32}, // div32
        {mk(0x9c, 0, 1), isa::Group::divmul32},       // mod32
        {mk(0x3c, 0, 1, 1), isa::Group::divmul32},    // sdiv32
        {mk(0x2f, 0, 1), isa::Group::divmul64},       // mul
        {mk(0x37, 0, 0, 0, 3), isa::Group::divmul64}, // div
        {mk(0x9f, 0, 1, 1), isa::Group::divmul64},    // smod
        {mk(0xc3, 10, 1, -4, 0x00), isa::Group::atomic32},
        {mk(0xc3, 10, 1, -4, 0xf1), isa::Group::atomic32},
        {mk(0xdb, 10, 1, -8, 0x01), isa::Group::atomic64},
        {mk(0xdb, 10, 1, -8, 0xe1), isa::Group::atomic64},
        {mk(0x20, 0, 0, 0, 4), isa::Group::packet},   // ldabsw
        {mk(0x50, 0, 2, 0, 4), isa::Group::packet},   // ldindb
        {mk(0x8d, 2), isa::Group::callx},
    };
    for (const Case& c : cases) {
        auto info = isa::classify(c.insn);
        ASSERT_TRUE(info) << show(c.insn);
        EXPECT_EQ(info->group, c.group) << show(c.insn) << ": got " << isa::to_string(info->group) << ", want "
                                        << isa::to_string(c.group);
    }
}

TEST(Classify, NonFetchAtomicsAreAtMostV3) {
    for (std::uint8_t op : {0xc3, 0xdb}) {
        for (std::int32_t imm : {0x00, 0x40, 0x50, 0xa0}) {
            auto info = isa::classify(mk(op, 10, 1, -8, imm));
            ASSERT_TRUE(info) << show(mk(op, 10, 1, -8, imm));
            EXPECT_GE(info->version, 1);
            EXPECT_LE(info->version, 3);
        }
    }
}

TEST(Classify, GroupNames) {
    EXPECT_EQ(isa::to_string(isa::Group::base32), "base32");
    EXPECT_EQ(isa::to_string(isa::Group::base64), "base64");
    EXPECT_EQ(isa::to_string(isa::Group::atomic32), "atomic32");
    EXPECT_EQ(isa::to_string(isa::Group::atomic64), "atomic64");
    EXPECT_EQ(isa::to_string(isa::Group::divmul32), "divmul32");
    EXPECT_EQ(isa::to_string(isa::Group::divmul64), "divmul64");
    EXPECT_EQ(isa::to_string(isa::Group::packet), "packet");
    EXPECT_EQ(isa::to_string(isa::Group::callx), "callx");
}

// ---------------------------------------------------------------------------------------------
// classify: what is not an instruction

TEST(Classify, UnknownOpcodes) {
    // Opcodes with no row in RFC 9669 Appendix A.
    for (std::uint8_t op : {0x00, 0xe4, 0xe7, 0xf4, 0xf7, 0x8e, 0x9d, 0x9e, 0x96, 0x86, 0x0d, 0xe5, 0xf5, 0xe6,
                            0x38, 0x58, 0x99, 0x01, 0x02, 0x03, 0x10, 0x60}) {
        auto info = isa::classify(mk(op));
        ASSERT_FALSE(info) << fmt::format("opcode 0x{:02x} accepted as {}", op, info ? info->mnemonic : "");
        EXPECT_EQ(info.error().code(), Errc::invalid_argument);
        EXPECT_FALSE(contains(info.error().message(), "insn")) << "classify names no index";
    }
    auto e4 = isa::classify(mk(0xe4));
    ASSERT_FALSE(e4);
    EXPECT_TRUE(contains(e4.error().message(), "unknown opcode 0xe4"));
    auto zero = isa::classify(mk(0x00));
    ASSERT_FALSE(zero);
    EXPECT_TRUE(contains(zero.error().message(), "unknown opcode 0x00"));
}

TEST(Classify, FieldsThatSelectTheOperation) {
    struct Case {
        Insn insn;
        const char* what;
    };
    const Case cases[] = {
        {mk(0xdf, 1, 0, 0, 16), "ALU64|END with the src bit"},
        {mk(0xd7, 1, 0, 0, 8), "bswap8"},
        {mk(0xdc, 1, 0, 0, 24), "be24"},
        {mk(0xd4, 1, 0, 0, 0), "le0"},
        {mk(0xbf, 1, 2, 7), "movsx with offset 7"},
        {mk(0xbf, 1, 2, 64), "movsx with offset 64"},
        {mk(0xbc, 1, 2, 32), "movsx32 with offset 32 (alu has 8 and 16 only)"},
        {mk(0x3f, 1, 2, 2), "div with offset 2"},
        {mk(0x37, 1, 0, -1, 3), "div with offset -1"},
        {mk(0x9c, 1, 2, 2), "mod32 with offset 2"},
        {mk(0xdb, 10, 1, -8, 0x02), "atomic imm 0x02"},
        {mk(0xc3, 10, 1, -8, 0x10), "atomic imm 0x10 (sub is not atomic)"},
        {mk(0xdb, 10, 1, -8, 0xe0), "xchg without fetch"},
        {mk(0xdb, 10, 1, -8, 0xf0), "cmpxchg without fetch"},
        {mk(0xcb, 10, 1, -8, 0x00), "atomic with half-word size"},
        {mk(0xd3, 10, 1, -8, 0x00), "atomic with byte size"},
        {mk(0xcb, 10, 1, -8, 0x01), "fetch add with half-word size"},
        {mk(0x18, 1, 7, 0, 0), "lddw with src 7"},
        {mk(0x85, 0, 3, 0, 1), "call with src 3"},
    };
    for (const Case& c : cases) {
        auto info = isa::classify(c.insn);
        EXPECT_FALSE(info) << c.what << " " << show(c.insn) << " accepted as " << (info ? info->mnemonic : "");
        if (!info) {
            EXPECT_EQ(info.error().code(), Errc::invalid_argument) << c.what;
        }
    }
}

TEST(Classify, NegTakesNoRegisterSource) {
    // RFC 9669 Appendix A has 0x84/0x87 (neg32/neg) only; 0x8c/0x8f are not instructions.
    EXPECT_FALSE(isa::classify(mk(0x8c, 1, 2)));
    EXPECT_FALSE(isa::classify(mk(0x8f, 1, 2)));
}

TEST(Classify, MovsxTakesNoImmediate) {
    // MOVSX exists only with a register source: mov with K and a nonzero offset is not an instruction.
    EXPECT_FALSE(isa::classify(mk(0xb7, 1, 0, 8, 5)));
    EXPECT_FALSE(isa::classify(mk(0xb4, 1, 0, 16, 5)));
}

// ---------------------------------------------------------------------------------------------
// decode / encode

std::vector<std::byte> to_bytes(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
}

TEST(Codec, LittleEndianLayout) {
    // mov r1, 2
    auto one = isa::decode(to_bytes({0xb7, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}));
    ASSERT_TRUE(one) << one.error().message();
    ASSERT_EQ(one->size(), 1u);
    EXPECT_EQ((*one)[0], mk(0xb7, 1, 0, 0, 2));

    // stxdw [r10-8], r1: dst in the low nibble, src in the high nibble, offset and imm little-endian
    auto two = isa::decode(to_bytes({0x7b, 0x1a, 0xf8, 0xff, 0x00, 0x00, 0x00, 0x00,   //
                                     0x04, 0x00, 0x00, 0x00, 0xfd, 0xff, 0xff, 0xff,   // add32 r0, -3
                                     0x55, 0x34, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12})); // jne r4, 0x12345678, +0x1234
    ASSERT_TRUE(two) << two.error().message();
    ASSERT_EQ(two->size(), 3u);
    EXPECT_EQ((*two)[0].opcode, 0x7b);
    EXPECT_EQ((*two)[0].dst, 10);
    EXPECT_EQ((*two)[0].src, 1);
    EXPECT_EQ((*two)[0].offset, -8);
    EXPECT_EQ((*two)[0].imm, 0);
    EXPECT_EQ((*two)[1], mk(0x04, 0, 0, 0, -3));
    EXPECT_EQ((*two)[2], mk(0x55, 4, 3, 0x1234, 0x12345678));
}

TEST(Codec, EncodeWritesTheSameLayout) {
    const Insn prog[] = {mk(0xb7, 1, 0, 0, 2), mk(0x7b, 10, 1, -8), mk(0x18, 0, 0, 0, 0x55667788),
                         mk(0x00, 0, 0, 0, 0x11223344), mk(0x95)};
    auto bytes = isa::encode(prog);
    const auto want = to_bytes({0xb7, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,  //
                                0x7b, 0x1a, 0xf8, 0xff, 0x00, 0x00, 0x00, 0x00,  //
                                0x18, 0x00, 0x00, 0x00, 0x88, 0x77, 0x66, 0x55,  //
                                0x00, 0x00, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11,  //
                                0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
    EXPECT_EQ(bytes, want);
}

TEST(Codec, InsnIsTheWireFormatInMemory) {
    static_assert(std::endian::native == std::endian::little, "these tests assume a little-endian host");
    const Insn i = mk(0x7b, 10, 1, -8, 0x01020304);
    std::array<unsigned char, 8> raw{};
    std::memcpy(raw.data(), &i, 8);
    const std::array<unsigned char, 8> want{0x7b, 0x1a, 0xf8, 0xff, 0x04, 0x03, 0x02, 0x01};
    EXPECT_EQ(raw, want);
}

TEST(Codec, SizeMustBeAMultipleOfEight) {
    auto empty = isa::decode({});
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
    for (std::size_t n : {1u, 7u, 9u, 15u}) {
        std::vector<std::byte> bytes(n, std::byte{0x95});
        auto r = isa::decode(bytes);
        ASSERT_FALSE(r) << n << " bytes";
        EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    }
}

TEST(Codec, RoundTripOfArbitraryBytes) {
    std::mt19937_64 rng(42);
    for (int round = 0; round < 200; ++round) {
        std::vector<std::byte> bytes(8 * (1 + round % 17));
        for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xff);
        auto insns = isa::decode(bytes);
        ASSERT_TRUE(insns);
        ASSERT_EQ(insns->size(), bytes.size() / 8);
        for (std::size_t k = 0; k < insns->size(); ++k) {
            const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data()) + 8 * k;
            const Insn& in = (*insns)[k];
            EXPECT_EQ(in.opcode, p[0]);
            EXPECT_EQ(in.dst, p[1] & 0xf);
            EXPECT_EQ(in.src, p[1] >> 4);
            EXPECT_EQ(in.offset, static_cast<std::int16_t>(p[2] | (p[3] << 8)));
            EXPECT_EQ(in.imm, static_cast<std::int32_t>(std::uint32_t(p[4]) | (std::uint32_t(p[5]) << 8) |
                                                        (std::uint32_t(p[6]) << 16) | (std::uint32_t(p[7]) << 24)));
        }
        EXPECT_EQ(isa::encode(*insns), bytes);
    }
}

}  // namespace
}  // namespace ebpfrt
