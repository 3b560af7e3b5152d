// Interpreter: ALU, byte swap, lddw and jump semantics (RFC 9669 §4, §5.4). Expected values come from
// C++ reference functions written from the RFC text below, or are worked out by hand in the test.

#include <climits>
#include <vector>

#include "vm_test_util.hpp"

namespace ebpfrt {
namespace {

using namespace ebpfrt::test;
using u64 = std::uint64_t;
using s64 = std::int64_t;
using u32 = std::uint32_t;
using s32 = std::int32_t;

// ---------------------------------------------------------------------------------------------
// Reference semantics (RFC 9669 §4.1):
//  * ALU64 with K: imm is sign-extended to 64 bits (then read as unsigned for div/mod).
//  * ALU (32-bit): operands are the low 32 bits, the result is zero-extended into the 64-bit register.
//  * x / 0 = 0; x % 0 = x (ALU64: unchanged; ALU: upper half zeroed).
//  * signed INT_MIN / -1 = INT_MIN and INT_MIN % -1 = 0 (the kernel's rewrite); smod takes the sign
//    of the dividend (truncated division).
//  * shift amounts are masked to 63 (ALU64) / 31 (ALU).

enum class Op { add, sub, mul, div, sdiv, or_, and_, lsh, rsh, mod, smod, xor_, mov, arsh };

struct OpDef {
    Op op;
    const char* name;
    std::uint8_t code;
    std::int16_t offset;
};

const OpDef ops[] = {
    {Op::add, "add", 0x00, 0},  {Op::sub, "sub", 0x10, 0},   {Op::mul, "mul", 0x20, 0},
    {Op::div, "div", 0x30, 0},  {Op::sdiv, "sdiv", 0x30, 1}, {Op::or_, "or", 0x40, 0},
    {Op::and_, "and", 0x50, 0}, {Op::lsh, "lsh", 0x60, 0},   {Op::rsh, "rsh", 0x70, 0},
    {Op::mod, "mod", 0x90, 0},  {Op::smod, "smod", 0x90, 1}, {Op::xor_, "xor", 0xa0, 0},
    {Op::mov, "mov", 0xb0, 0},  {Op::arsh, "arsh", 0xc0, 0},
};

u64 ref64(Op op, u64 a, u64 b) {
    const s64 sa = static_cast<s64>(a), sb = static_cast<s64>(b);
    switch (op) {
    case Op::add: return a + b;
    case Op::sub: return a - b;
    case Op::mul: return a * b;
    case Op::div: return b == 0 ? 0 : a / b;
    case Op::sdiv:
        if (b == 0) return 0;
        if (sa == INT64_MIN && sb == -1) return a;
        return static_cast<u64>(sa / sb);
    case Op::or_: return a | b;
    case Op::and_: return a & b;
    case Op::lsh: return a << (b & 63);
    case Op::rsh: return a >> (b & 63);
    case Op::mod: return b == 0 ? a : a % b;
    case Op::smod:
        if (b == 0) return a;
        if (sb == -1) return 0;
        return static_cast<u64>(sa % sb);
    case Op::xor_: return a ^ b;
    case Op::mov: return b;
    case Op::arsh: return static_cast<u64>(sa >> (b & 63));
    }
    return 0;
}

u64 ref32(Op op, u64 a64, u64 b64) {
    const u32 a = static_cast<u32>(a64), b = static_cast<u32>(b64);
    const s32 sa = static_cast<s32>(a), sb = static_cast<s32>(b);
    u32 r = 0;
    switch (op) {
    case Op::add: r = a + b; break;
    case Op::sub: r = a - b; break;
    case Op::mul: r = a * b; break;
    case Op::div: r = b == 0 ? 0 : a / b; break;
    case Op::sdiv: r = b == 0 ? 0 : (sa == INT32_MIN && sb == -1) ? a : static_cast<u32>(sa / sb); break;
    case Op::or_: r = a | b; break;
    case Op::and_: r = a & b; break;
    case Op::lsh: r = a << (b & 31); break;
    case Op::rsh: r = a >> (b & 31); break;
    case Op::mod: r = b == 0 ? a : a % b; break;
    case Op::smod: r = b == 0 ? a : sb == -1 ? 0 : static_cast<u32>(sa % sb); break;
    case Op::xor_: r = a ^ b; break;
    case Op::mov: r = b; break;
    case Op::arsh: r = static_cast<u32>(sa >> (b & 31)); break;
    }
    return r;
}

const u64 values[] = {0,
                      1,
                      2,
                      3,
                      7,
                      31,
                      33,
                      65,
                      static_cast<u64>(-1),
                      static_cast<u64>(-7),
                      0x7fffffffu,
                      0x80000000u,
                      0xffffffffu,
                      0x100000000ull,
                      0x100000005ull,
                      0x8000000000000000ull,
                      0x7fffffffffffffffull,
                      0x8000000080000000ull,
                      0xfedcba9876543210ull};
const s32 imms[] = {0, 1, 2, 3, -1, -2, -7, 31, 33, 63, 65, INT32_MAX, INT32_MIN, 0x12345678};

// Runs one program per case and reports at most a few mismatches.
struct Mismatches {
    int count = 0;
    void add(const std::string& what) {
        if (++count <= 15) ADD_FAILURE() << what;
    }
    ~Mismatches() {
        if (count > 15) ADD_FAILURE() << count << " mismatches in all";
    }
};

TEST(InterpreterAlu, RegisterOperandsMatchTheReference) {
    Mismatches bad;
    for (const OpDef& d : ops) {
        for (std::uint8_t cls : {isa::cls_alu64, isa::cls_alu}) {
            for (u64 a : values) {
                for (u64 b : values) {
                    std::vector<Insn> p;
                    push_lddw(p, 0, a);
                    push_lddw(p, 1, b);
                    p.push_back(mk(cls | d.code | isa::src_x, 0, 1, d.offset));
                    p.push_back(mk(0x95));
                    const u64 want = cls == isa::cls_alu64 ? ref64(d.op, a, b) : ref32(d.op, a, b);
                    auto r = run_prog(p);
                    if (!r || *r != want) {
                        bad.add(fmt::format("{}{} 0x{:x}, 0x{:x}: got {}, want 0x{:x}", d.name,
                                            cls == isa::cls_alu ? "32" : "", a, b,
                                            r ? fmt::format("0x{:x}", *r) : r.error().message(), want));
                    }
                }
            }
        }
    }
}

TEST(InterpreterAlu, ImmediateOperandsMatchTheReference) {
    Mismatches bad;
    for (const OpDef& d : ops) {
        for (std::uint8_t cls : {isa::cls_alu64, isa::cls_alu}) {
            for (u64 a : values) {
                for (s32 imm : imms) {
                    std::vector<Insn> p;
                    push_lddw(p, 0, a);
                    p.push_back(mk(cls | d.code | isa::src_k, 0, 0, d.offset, imm));
                    p.push_back(mk(0x95));
                    const u64 b = static_cast<u64>(static_cast<s64>(imm));  // sign-extended
                    const u64 want = cls == isa::cls_alu64 ? ref64(d.op, a, b) : ref32(d.op, a, b);
                    auto r = run_prog(p);
                    if (!r || *r != want) {
                        bad.add(fmt::format("{}{} 0x{:x}, imm {}: got {}, want 0x{:x}", d.name,
                                            cls == isa::cls_alu ? "32" : "", a, imm,
                                            r ? fmt::format("0x{:x}", *r) : r.error().message(), want));
                    }
                }
            }
        }
    }
}

TEST(InterpreterAlu, DivisionByZero) {
    // x / 0 = 0
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nmov %r1, 0\ndiv32 %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 0\nsdiv %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 0\nsdiv32 %r0, %r1\nexit"), 0));
    // x % 0 = x for 64 bits, the low half zero-extended for 32
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nmov %r1, 0\nmod %r0, %r1\nexit"), 0x100000007));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nmov %r1, 0\nmod32 %r0, %r1\nexit"), 0x7));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 0\nsmod %r0, %r1\nexit"), static_cast<u64>(-7)));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 0\nsmod32 %r0, %r1\nexit"), 0xfffffff9u));
    // the 32-bit forms look at the low half of the divisor only: 0x100000000 is zero to them
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nlddw %r1, 0x100000000\ndiv32 %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nlddw %r1, 0x100000000\nmod32 %r0, %r1\nexit"), 7));
    // while the 64-bit forms do not: 0x100000007 / 0x100000000 = 1, remainder 7
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nlddw %r1, 0x100000000\ndiv %r0, %r1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x100000007\nlddw %r1, 0x100000000\nmod %r0, %r1\nexit"), 7));
}

TEST(InterpreterAlu, SignedDivisionOverflow) {
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit"),
                      0x8000000000000000ull));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit"), 0x8000000000000000ull));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000000\nmov %r1, -1\nsdiv32 %r0, %r1\nexit"), 0x80000000u));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit"), 0x80000000u));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000000\nmov %r1, -1\nsmod32 %r0, %r1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000000\nsmod32 %r0, -1\nexit"), 0));
}

TEST(InterpreterAlu, SignedDivisionTruncatesTowardZero) {
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 2\nsdiv %r0, %r1\nexit"), static_cast<u64>(-3)));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nsdiv %r0, -2\nexit"), 3));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nmov %r1, 3\nsmod %r0, %r1\nexit"), static_cast<u64>(-1)));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 7\nmov %r1, -3\nsmod %r0, %r1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nsmod %r0, -3\nexit"), static_cast<u64>(-1)));
    // 32-bit: operands are the signed low halves, the result zero-extended
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nsdiv32 %r0, 2\nexit"), 0xfffffffdu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -7\nsmod32 %r0, 3\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x00000005fffffff9\nsmod32 %r0, 3\nexit"), 0xffffffffu));
}

TEST(InterpreterAlu, UnsignedDivisionWithNegativeImmediates) {
    // imm -1 sign-extends to 2^64-1 (ALU64) and reads as 2^32-1 (ALU)
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\ndiv %r0, 2\nexit"), 0x7fffffffffffffffull));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\ndiv %r0, -1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 5\ndiv %r0, -1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 5\nmod %r0, -1\nexit"), 5));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, -1\ndiv32 %r0, -1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x1ffffffff\ndiv %r0, -1\nexit"), 0));
}

TEST(InterpreterAlu, ShiftAmountsAreMasked) {
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit"), 2));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nlsh %r0, 65\nexit"), 2));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nmov %r1, 64\nlsh %r0, %r1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit"), 2));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nlsh32 %r0, 33\nexit"), 2));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nmov %r1, 32\nlsh32 %r0, %r1\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nmov %r1, 65\nrsh %r0, %r1\nexit"),
                      0x4000000000000000ull));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x8000000000000000\nmov %r1, 65\narsh %r0, %r1\nexit"),
                      0xc000000000000000ull));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000000\nmov %r1, 33\narsh32 %r0, %r1\nexit"), 0xc0000000u));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0xffffffff00000004\nmov %r1, 33\nrsh32 %r0, %r1\nexit"), 2));
    // lsh32 never carries into the upper half
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, 0x80000001\nlsh32 %r0, 1\nexit"), 2));
}

TEST(InterpreterAlu, ThirtyTwoBitOpsZeroTheUpperHalf) {
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nadd32 %r0, 0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r0, -1\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, -1\nmov32 %r0, %r1\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0xffffffffffffffff\nadd32 %r0, 1\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nneg32 %r0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nmul32 %r0, 1\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nand32 %r0, -1\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nor32 %r0, 0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nxor32 %r0, 0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nsub32 %r0, 0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nrsh32 %r0, 0\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\narsh32 %r0, 0\nexit"), 0xffffffffu));
    // and the 64-bit forms sign-extend their immediate
    EXPECT_TRUE(r0_is(run_asm("mov %r0, -1\nexit"), 0xffffffffffffffffull));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 0x80000000\nexit"), 0xffffffff80000000ull));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 0\nadd %r0, -1\nexit"), 0xffffffffffffffffull));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nneg %r0\nexit"), 0xffffffffffffffffull));
}

TEST(InterpreterAlu, Neg) {
    for (u64 a : values) {
        std::vector<Insn> p64, p32;
        push_lddw(p64, 3, a);
        p64.push_back(mk(0x87, 3));
        p64.push_back(mk(0xbf, 0, 3));
        p64.push_back(mk(0x95));
        push_lddw(p32, 3, a);
        p32.push_back(mk(0x84, 3));
        p32.push_back(mk(0xbf, 0, 3));
        p32.push_back(mk(0x95));
        EXPECT_TRUE(r0_is(run_prog(p64), 0 - a)) << fmt::format("neg 0x{:x}", a);
        EXPECT_TRUE(r0_is(run_prog(p32), static_cast<u32>(0u - static_cast<u32>(a)))) << fmt::format("neg32 0x{:x}", a);
    }
}

TEST(InterpreterAlu, Movsx) {
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x80\nmovsx864 %r0, %r1\nexit"), 0xffffffffffffff80ull));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x7f\nmovsx864 %r0, %r1\nexit"), 0x7f));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x1ff\nmovsx832 %r0, %r1\nexit"), 0xffffffffu));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x180\nmovsx832 %r0, %r1\nexit"), 0xffffff80u));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x8001\nmovsx1664 %r0, %r1\nexit"), 0xffffffffffff8001ull));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x8001\nmovsx1632 %r0, %r1\nexit"), 0xffff8001u));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x7fff\nmovsx1632 %r0, %r1\nexit"), 0x7fff));
    EXPECT_TRUE(r0_is(run_asm("lddw %r1, 0x180000000\nmovsx3264 %r0, %r1\nexit"), 0xffffffff80000000ull));
    EXPECT_TRUE(r0_is(run_asm("lddw %r1, 0xffffffff7fffffff\nmovsx3264 %r0, %r1\nexit"), 0x7fffffff));
    // the source register is left alone
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0x80\nmovsx864 %r2, %r1\nmov %r0, %r1\nexit"), 0x80));
    for (u64 a : values) {
        const std::pair<std::vector<Insn>, u64> cases[] = {
            {{mk(0xbf, 0, 1, 8)}, static_cast<u64>(static_cast<s64>(static_cast<std::int8_t>(a)))},
            {{mk(0xbf, 0, 1, 16)}, static_cast<u64>(static_cast<s64>(static_cast<std::int16_t>(a)))},
            {{mk(0xbf, 0, 1, 32)}, static_cast<u64>(static_cast<s64>(static_cast<s32>(a)))},
            {{mk(0xbc, 0, 1, 8)}, static_cast<u32>(static_cast<s32>(static_cast<std::int8_t>(a)))},
            {{mk(0xbc, 0, 1, 16)}, static_cast<u32>(static_cast<s32>(static_cast<std::int16_t>(a)))},
        };
        for (const auto& [body, want] : cases) {
            std::vector<Insn> p;
            push_lddw(p, 1, a);
            p.insert(p.end(), body.begin(), body.end());
            p.push_back(mk(0x95));
            EXPECT_TRUE(r0_is(run_prog(p), want)) << fmt::format("movsx off {} cls 0x{:x} of 0x{:x}", body[0].offset,
                                                                 body[0].opcode & 7, a);
        }
    }
}

TEST(InterpreterAlu, ByteSwaps) {
    const u64 v = 0x8877665544332211ull;
    auto with = [&](const char* insn) { return fmt::format("lddw %r0, 0x{:x}\n{} %r0\nexit", v, insn); };
    // little-endian host: le truncates, be swaps; bswap swaps unconditionally
    EXPECT_TRUE(r0_is(run_asm(with("le16")), 0x2211));
    EXPECT_TRUE(r0_is(run_asm(with("le32")), 0x44332211));
    EXPECT_TRUE(r0_is(run_asm(with("le64")), v));
    EXPECT_TRUE(r0_is(run_asm(with("be16")), 0x1122));
    EXPECT_TRUE(r0_is(run_asm(with("be32")), 0x11223344));
    EXPECT_TRUE(r0_is(run_asm(with("be64")), 0x1122334455667788ull));
    EXPECT_TRUE(r0_is(run_asm(with("bswap16")), 0x1122));
    EXPECT_TRUE(r0_is(run_asm(with("bswap32")), 0x11223344));
    EXPECT_TRUE(r0_is(run_asm(with("bswap64")), 0x1122334455667788ull));
    for (u64 a : values) {
        struct Case {
            std::uint8_t op;
            int width;
            u64 want;
        };
        const Case cases[] = {
            {0xd4, 16, static_cast<std::uint16_t>(a)},
            {0xd4, 32, static_cast<u32>(a)},
            {0xd4, 64, a},
            {0xdc, 16, __builtin_bswap16(static_cast<std::uint16_t>(a))},
            {0xdc, 32, __builtin_bswap32(static_cast<u32>(a))},
            {0xdc, 64, __builtin_bswap64(a)},
            {0xd7, 16, __builtin_bswap16(static_cast<std::uint16_t>(a))},
            {0xd7, 32, __builtin_bswap32(static_cast<u32>(a))},
            {0xd7, 64, __builtin_bswap64(a)},
        };
        for (const Case& c : cases) {
            std::vector<Insn> p;
            push_lddw(p, 5, a);
            p.push_back(mk(c.op, 5, 0, 0, c.width));
            p.push_back(mk(0xbf, 0, 5));
            p.push_back(mk(0x95));
            EXPECT_TRUE(r0_is(run_prog(p), c.want)) << fmt::format("op 0x{:x} imm {} of 0x{:x}", c.op, c.width, a);
        }
    }
}

TEST(InterpreterAlu, Lddw) {
    EXPECT_TRUE(r0_is(run_asm("lddw %r0, 0x1122334455667788\nexit"), 0x1122334455667788ull));
    for (u64 v : values) {
        std::vector<Insn> p;
        push_lddw(p, 0, v);
        p.push_back(mk(0x95));
        EXPECT_TRUE(r0_is(run_prog(p), v)) << fmt::format("lddw 0x{:x}", v);
    }
    // the low half is not sign-extended into the high half
    std::vector<Insn> p{mk(0x18, 0, 0, 0, INT32_MIN), mk(0x00), mk(0x95)};
    EXPECT_TRUE(r0_is(run_prog(p), 0x80000000ull));
}

// ---------------------------------------------------------------------------------------------
// Jumps

enum class Cond { jeq, jgt, jge, jset, jne, jsgt, jsge, jlt, jle, jslt, jsle };
struct CondDef {
    Cond c;
    const char* name;
    std::uint8_t code;
};
const CondDef conds[] = {
    {Cond::jeq, "jeq", 0x10},   {Cond::jgt, "jgt", 0x20},   {Cond::jge, "jge", 0x30},   {Cond::jset, "jset", 0x40},
    {Cond::jne, "jne", 0x50},   {Cond::jsgt, "jsgt", 0x60}, {Cond::jsge, "jsge", 0x70}, {Cond::jlt, "jlt", 0xa0},
    {Cond::jle, "jle", 0xb0},   {Cond::jslt, "jslt", 0xc0}, {Cond::jsle, "jsle", 0xd0},
};

template <class U, class S> bool taken(Cond c, U a, U b) {
    const S sa = static_cast<S>(a), sb = static_cast<S>(b);
    switch (c) {
    case Cond::jeq: return a == b;
    case Cond::jgt: return a > b;
    case Cond::jge: return a >= b;
    case Cond::jset: return (a & b) != 0;
    case Cond::jne: return a != b;
    case Cond::jsgt: return sa > sb;
    case Cond::jsge: return sa >= sb;
    case Cond::jlt: return a < b;
    case Cond::jle: return a <= b;
    case Cond::jslt: return sa < sb;
    case Cond::jsle: return sa <= sb;
    }
    return false;
}

bool ref_taken(Cond c, bool wide, u64 a, u64 b) {
    return wide ? taken<u64, s64>(c, a, b) : taken<u32, s32>(c, static_cast<u32>(a), static_cast<u32>(b));
}

TEST(InterpreterJump, RegisterComparisons) {
    Mismatches bad;
    for (const CondDef& d : conds) {
        for (std::uint8_t cls : {isa::cls_jmp, isa::cls_jmp32}) {
            for (u64 a : values) {
                for (u64 b : values) {
                    std::vector<Insn> p;
                    push_lddw(p, 1, a);
                    push_lddw(p, 2, b);
                    p.push_back(mk(0xb7, 0, 0, 0, 1));                 // r0 = 1
                    p.push_back(mk(cls | d.code | isa::src_x, 1, 2, 1));  // if cond goto exit
                    p.push_back(mk(0xb7, 0, 0, 0, 0));                 // r0 = 0
                    p.push_back(mk(0x95));
                    const bool want = ref_taken(d.c, cls == isa::cls_jmp, a, b);
                    auto r = run_prog(p);
                    if (!r || *r != (want ? 1u : 0u)) {
                        bad.add(fmt::format("{}{} 0x{:x}, 0x{:x}: got {}, want {}", d.name,
                                            cls == isa::cls_jmp32 ? "32" : "", a, b,
                                            r ? std::to_string(*r) : r.error().message(), want ? "taken" : "not taken"));
                    }
                }
            }
        }
    }
}

TEST(InterpreterJump, ImmediateComparisons) {
    Mismatches bad;
    for (const CondDef& d : conds) {
        for (std::uint8_t cls : {isa::cls_jmp, isa::cls_jmp32}) {
            for (u64 a : values) {
                for (s32 imm : imms) {
                    std::vector<Insn> p;
                    push_lddw(p, 1, a);
                    p.push_back(mk(0xb7, 0, 0, 0, 1));
                    p.push_back(mk(cls | d.code | isa::src_k, 1, 0, 1, imm));
                    p.push_back(mk(0xb7, 0, 0, 0, 0));
                    p.push_back(mk(0x95));
                    // JMP: imm sign-extended to 64 bits; JMP32: the 32-bit imm against the low half
                    const bool want = ref_taken(d.c, cls == isa::cls_jmp, a, static_cast<u64>(static_cast<s64>(imm)));
                    auto r = run_prog(p);
                    if (!r || *r != (want ? 1u : 0u)) {
                        bad.add(fmt::format("{}{} 0x{:x}, imm {}: got {}, want {}", d.name,
                                            cls == isa::cls_jmp32 ? "32" : "", a, imm,
                                            r ? std::to_string(*r) : r.error().message(), want ? "taken" : "not taken"));
                    }
                }
            }
        }
    }
}

TEST(InterpreterJump, HandPickedCases) {
    // jeq with 0x80000000 as imm compares against 0xffffffff80000000 (sign-extended)
    EXPECT_TRUE(r0_is(run_asm("lddw %r1, 0xffffffff80000000\nmov %r0, 1\njeq %r1, 0x80000000, +1\nmov %r0, 0\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r1, 0x80000000\nmov %r0, 1\njeq %r1, 0x80000000, +1\nmov %r0, 0\nexit"), 0));
    // jeq32 ignores the upper half
    EXPECT_TRUE(r0_is(run_asm("lddw %r1, 0x1200000005\nmov %r0, 1\njeq32 %r1, 5, +1\nmov %r0, 0\nexit"), 1));
    // signed vs unsigned
    EXPECT_TRUE(r0_is(run_asm("mov %r1, -1\nmov %r0, 1\njgt %r1, 1, +1\nmov %r0, 0\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, -1\nmov %r0, 1\njsgt %r1, 1, +1\nmov %r0, 0\nexit"), 0));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r1, -1\nmov %r0, 1\njslt32 %r1, 0, +1\nmov %r0, 0\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov32 %r1, -1\nmov %r0, 1\njslt %r1, 0, +1\nmov %r0, 0\nexit"), 0));
    // ja, ja32, and a backward loop: sum 1..10
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nja +1\nmov %r0, 2\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm("mov %r0, 1\nja32 +1\nmov %r0, 2\nexit"), 1));
    EXPECT_TRUE(r0_is(run_asm(R"(mov %r0, 0
mov %r1, 10
loop:
add %r0, %r1
sub %r1, 1
jne %r1, 0, loop
exit)"),
                      55));
}

}  // namespace
}  // namespace ebpfrt
