// Interpreter: loads, stores, sign-extending loads, atomics (RFC 9669 §5), and the checked mode's
// bounds checks on the context and the stack.

#include <vector>

#include "vm_test_util.hpp"

namespace ebpfrt {
namespace {

using namespace ebpfrt::test;
using u64 = std::uint64_t;
using u32 = std::uint32_t;

std::vector<std::byte> sample_ctx() {
    return bytes_of({0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x80, 0xff, 0x01, 0x80, 0x00, 0x00, 0x00, 0x80});
}

TEST(InterpreterMemory, ContextPointerAndSize) {
    auto ctx = sample_ctx();
    EXPECT_TRUE(r0_is(run_asm("mov %r0, %r2\nexit", ctx), 16));
    auto addr = run_checked("mov %r0, %r1\nexit", ctx);  // (the unchecked rerun uses a copy)
    EXPECT_TRUE(r0_is(addr, reinterpret_cast<u64>(ctx.data())));
    // no context: r1 = 0, r2 = 0
    EXPECT_TRUE(r0_is(run_asm("mov %r0, %r1\nadd %r0, %r2\nexit"), 0));
}

TEST(InterpreterMemory, ZeroExtendingLoads) {
    auto ctx = sample_ctx();
    EXPECT_TRUE(r0_is(run_asm("ldxb %r0, [%r1+0]\nexit", ctx), 0x11));
    EXPECT_TRUE(r0_is(run_asm("ldxb %r0, [%r1+9]\nexit", ctx), 0xff));
    EXPECT_TRUE(r0_is(run_asm("ldxh %r0, [%r1+0]\nexit", ctx), 0x2211));
    EXPECT_TRUE(r0_is(run_asm("ldxh %r0, [%r1+8]\nexit", ctx), 0xff80));
    EXPECT_TRUE(r0_is(run_asm("ldxw %r0, [%r1+4]\nexit", ctx), 0x88776655));
    EXPECT_TRUE(r0_is(run_asm("ldxw %r0, [%r1+12]\nexit", ctx), 0x80000000u));
    EXPECT_TRUE(r0_is(run_asm("ldxdw %r0, [%r1+0]\nexit", ctx), 0x8877665544332211ull));
    EXPECT_TRUE(r0_is(run_asm("ldxdw %r0, [%r1+8]\nexit", ctx), 0x800000008001ff80ull));
    // unaligned
    EXPECT_TRUE(r0_is(run_asm("ldxw %r0, [%r1+1]\nexit", ctx), 0x55443322));
    // a negative offset from a moved base
    EXPECT_TRUE(r0_is(run_asm("mov %r2, %r1\nadd %r2, 8\nldxh %r0, [%r2-2]\nexit", ctx), 0x8877));
}

TEST(InterpreterMemory, SignExtendingLoads) {
    auto ctx = sample_ctx();
    EXPECT_TRUE(r0_is(run_asm("ldxsb %r0, [%r1+8]\nexit", ctx), 0xffffffffffffff80ull));
    EXPECT_TRUE(r0_is(run_asm("ldxsb %r0, [%r1+0]\nexit", ctx), 0x11));
    EXPECT_TRUE(r0_is(run_asm("ldxsb %r0, [%r1+9]\nexit", ctx), 0xffffffffffffffffull));
    EXPECT_TRUE(r0_is(run_asm("ldxsh %r0, [%r1+10]\nexit", ctx), 0xffffffffffff8001ull));
    EXPECT_TRUE(r0_is(run_asm("ldxsh %r0, [%r1+0]\nexit", ctx), 0x2211));
    EXPECT_TRUE(r0_is(run_asm("ldxsw %r0, [%r1+12]\nexit", ctx), 0xffffffff80000000ull));
    EXPECT_TRUE(r0_is(run_asm("ldxsw %r0, [%r1+0]\nexit", ctx), 0x44332211));
    // on the stack, as the conformance suite does
    EXPECT_TRUE(r0_is(run_asm("stb [%r10-1], 0x80\nldxsb %r0, [%r10-1]\nexit"), 0xffffffffffffff80ull));
    EXPECT_TRUE(r0_is(run_asm("sth [%r10-2], 0x7fff\nldxsh %r0, [%r10-2]\nexit"), 0x7fff));
}

TEST(InterpreterMemory, StoresOfEverySize) {
    auto ctx = std::vector<std::byte>(16, std::byte{0xee});
    ASSERT_TRUE(r0_is(run_asm(R"(stb [%r1+0], 0x1ab
sth [%r1+2], 0x2211
stw [%r1+4], -2
mov %r3, 0x7f
stxb [%r1+1], %r3
mov %r0, 0
exit)",
                              ctx),
                      0));
    EXPECT_EQ(load_le<std::uint8_t>(ctx, 0), 0xab);   // low byte of imm
    EXPECT_EQ(load_le<std::uint8_t>(ctx, 1), 0x7f);
    EXPECT_EQ(load_le<std::uint16_t>(ctx, 2), 0x2211);
    EXPECT_EQ(load_le<u32>(ctx, 4), 0xfffffffeu);
    EXPECT_EQ(load_le<u64>(ctx, 8), 0xeeeeeeeeeeeeeeeeull);  // untouched

    ctx.assign(16, std::byte{0});
    auto r = run_asm(R"(stdw [%r1+0], -1
lddw %r3, 0x1122334455667788
stxdw [%r1+8], %r3
stxw [%r1+4], %r3
stxh [%r1+2], %r3
mov %r0, 0
exit)",
                     ctx);
    ASSERT_TRUE(r0_is(r, 0));
    // stdw sign-extends its imm; the narrower stx store the low bytes of the register
    EXPECT_EQ(load_le<std::uint16_t>(ctx, 0), 0xffff);
    EXPECT_EQ(load_le<std::uint16_t>(ctx, 2), 0x7788);
    EXPECT_EQ(load_le<u32>(ctx, 4), 0x55667788u);
    EXPECT_EQ(load_le<u64>(ctx, 8), 0x1122334455667788ull);
}

TEST(InterpreterMemory, StackRoundTrip) {
    EXPECT_TRUE(r0_is(run_asm(R"(lddw %r1, 0x1122334455667788
stxdw [%r10-8], %r1
stdw [%r10-512], 7
ldxdw %r2, [%r10-512]
ldxw %r0, [%r10-4]
add %r0, %r2
exit)"),
                      0x11223344u + 7));
}

TEST(InterpreterMemory, LegacyPacketLoads) {
    // ld_abs/ld_ind (RFC 9669 §5.5, Linux semantics): big-endian loads from the packet (the context),
    // into r0; an out-of-bounds load ends the program with r0 = 0. r6 holds the context as the kernel
    // requires.
    auto pkt = bytes_of({0x11, 0x22, 0x33, 0x44, 0x55, 0x66});
    auto load = [&](Insn ld, std::int32_t r3) {
        std::vector<Insn> p{mk(0xbf, 6, 1), mk(0xb7, 3, 0, 0, r3), mk(0xb7, 0, 0, 0, 99), ld, mk(0x95)};
        return run_prog(p, pkt);
    };
    EXPECT_TRUE(r0_is(load(mk(0x20, 0, 0, 0, 0), 0), 0x11223344));  // ldabsw 0
    EXPECT_TRUE(r0_is(load(mk(0x20, 0, 0, 0, 2), 0), 0x33445566));  // ldabsw 2
    EXPECT_TRUE(r0_is(load(mk(0x28, 0, 0, 0, 4), 0), 0x5566));      // ldabsh 4
    EXPECT_TRUE(r0_is(load(mk(0x30, 0, 0, 0, 5), 0), 0x66));        // ldabsb 5
    EXPECT_TRUE(r0_is(load(mk(0x40, 0, 3, 0, 1), 1), 0x33445566));  // ldindw r3 + 1
    EXPECT_TRUE(r0_is(load(mk(0x48, 0, 3, 0, 1), 1), 0x3344));      // ldindh r3 + 1
    EXPECT_TRUE(r0_is(load(mk(0x50, 0, 3, 0, 2), 3), 0x66));        // ldindb r3 + 2
    // out of bounds: the program ends, r0 = 0 (not the 99 set before, not an error)
    std::vector<Insn> oob{mk(0xbf, 6, 1), mk(0xb7, 0, 0, 0, 99), mk(0x20, 0, 0, 0, 4), mk(0xb7, 0, 0, 0, 7), mk(0x95)};
    EXPECT_TRUE(r0_is(run_prog(oob, pkt), 0));
    std::vector<Insn> oob_ind{mk(0xbf, 6, 1), mk(0xb7, 3, 0, 0, 6), mk(0x50, 0, 3, 0, 0), mk(0xb7, 0, 0, 0, 7),
                              mk(0x95)};
    EXPECT_TRUE(r0_is(run_prog(oob_ind, pkt), 0));
}

// ---------------------------------------------------------------------------------------------
// Atomics: the memory word at [r10-8] starts as `mem`, the operand is r2 = `val`, r0 = `r0`.
// The program returns the three of them after the operation through the context.

struct AtomicOut {
    u64 mem, r2, r0;
};

AtomicOut run_atomic(std::string_view op, u64 mem, u64 val, u64 r0) {
    const std::string text = fmt::format(R"(lddw %r3, 0x{:x}
stxdw [%r10-8], %r3
lddw %r2, 0x{:x}
lddw %r0, 0x{:x}
{} [%r10-8], %r2
ldxdw %r3, [%r10-8]
stxdw [%r1+0], %r3
stxdw [%r1+8], %r2
stxdw [%r1+16], %r0
exit)",
                                         mem, val, r0, op);
    std::vector<std::byte> out(24);
    auto r = run_asm(text, out);
    EXPECT_TRUE(r) << op << ": " << (r ? "" : r.error().message());
    return {load_le<u64>(out, 0), load_le<u64>(out, 8), load_le<u64>(out, 16)};
}

TEST(InterpreterAtomic, SixtyFourBit) {
    const u64 values[] = {0, 1, 0x8000000000000000ull, 0xffffffffffffffffull, 0x123456789abcdef0ull,
                          0x00000000ffffffffull};
    const u64 r0 = 0x5555;
    for (u64 mem : values) {
        for (u64 val : values) {
            struct Case {
                const char* op;
                u64 mem, r2;
            };
            const Case cases[] = {
                {"lock add", mem + val, val},         {"lock fetch add", mem + val, mem},
                {"lock or", mem | val, val},          {"lock fetch or", mem | val, mem},
                {"lock and", mem & val, val},         {"lock fetch and", mem & val, mem},
                {"lock xor", mem ^ val, val},         {"lock fetch xor", mem ^ val, mem},
                {"lock xchg", val, mem},
            };
            for (const Case& c : cases) {
                auto out = run_atomic(c.op, mem, val, r0);
                EXPECT_EQ(out.mem, c.mem) << fmt::format("{} mem=0x{:x} val=0x{:x}: memory", c.op, mem, val);
                EXPECT_EQ(out.r2, c.r2) << fmt::format("{} mem=0x{:x} val=0x{:x}: src register", c.op, mem, val);
                EXPECT_EQ(out.r0, r0) << c.op;
            }
        }
    }
}

TEST(InterpreterAtomic, ThirtyTwoBitTouchesTheLowWordOnly) {
    // [r10-8] on a little-endian host: the 32-bit operations act on the low word, the high word stays
    const u64 mem = 0xaaaaaaaa80000001ull, val = 0x12345678ffffffffull;
    const u64 hi = mem & 0xffffffff00000000ull;
    const u32 m = 0x80000001u, v = 0xffffffffu;
    struct Case {
        const char* op;
        u32 mem_lo;
        u64 r2;
    };
    const Case cases[] = {
        {"lock add32", m + v, val},       {"lock fetch add32", m + v, m},  // fetch zero-extends the old value
        {"lock or32", m | v, val},        {"lock fetch or32", m | v, m},
        {"lock and32", m & v, val},       {"lock fetch and32", m & v, m},
        {"lock xor32", m ^ v, val},       {"lock fetch xor32", m ^ v, m},
        {"lock xchg32", v, m},
    };
    for (const Case& c : cases) {
        auto out = run_atomic(c.op, mem, val, 0x77);
        EXPECT_EQ(out.mem, hi | c.mem_lo) << c.op << ": memory";
        EXPECT_EQ(out.r2, c.r2) << c.op << ": src register";
        EXPECT_EQ(out.r0, 0x77u) << c.op;
    }
}

TEST(InterpreterAtomic, Cmpxchg) {
    // r0 is compared with memory; on a match memory = src; r0 = the old value either way
    auto hit = run_atomic("lock cmpxchg", 0x1111, 0x2222, 0x1111);
    EXPECT_EQ(hit.mem, 0x2222u);
    EXPECT_EQ(hit.r0, 0x1111u);
    EXPECT_EQ(hit.r2, 0x2222u);
    auto miss = run_atomic("lock cmpxchg", 0x1111, 0x2222, 0x3333);
    EXPECT_EQ(miss.mem, 0x1111u);
    EXPECT_EQ(miss.r0, 0x1111u);
    EXPECT_EQ(miss.r2, 0x2222u);
    // 64-bit compares all 64 bits
    auto high_differs = run_atomic("lock cmpxchg", 0x100001111ull, 0x2222, 0x1111);
    EXPECT_EQ(high_differs.mem, 0x100001111ull);
    EXPECT_EQ(high_differs.r0, 0x100001111ull);

    // 32-bit: compares the low halves, r0 gets the zero-extended old low word
    auto hit32 = run_atomic("lock cmpxchg32", 0xaaaaaaaa00001111ull, 0x999999990000beefull, 0xffffffff00001111ull);
    EXPECT_EQ(hit32.mem, 0xaaaaaaaa0000beefull);
    EXPECT_EQ(hit32.r0, 0x00001111u);
    auto miss32 = run_atomic("lock cmpxchg32", 0xaaaaaaaa80001111ull, 0xbeef, 0x1111);
    EXPECT_EQ(miss32.mem, 0xaaaaaaaa80001111ull);
    EXPECT_EQ(miss32.r0, 0x80001111u);
}

TEST(InterpreterAtomic, OnTheContext) {
    auto ctx = bytes_of({1, 0, 0, 0, 0, 0, 0, 0});
    auto r = run_asm("mov %r2, 41\nlock fetch add [%r1+0], %r2\nmov %r0, %r2\nexit", ctx);
    EXPECT_TRUE(r0_is(r, 1));
    EXPECT_EQ(load_le<u64>(ctx, 0), 42u);
}

// ---------------------------------------------------------------------------------------------
// Checked mode: every access outside the context, the current frame's 512 bytes of stack and
// granted memory is an error naming the faulting instruction; never a crash.

TEST(InterpreterChecked, ContextBounds) {
    auto ctx = std::vector<std::byte>(8);
    EXPECT_TRUE(r0_is(run_checked("ldxb %r0, [%r1+7]\nexit", ctx), 0));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r3, 1\nldxb %r0, [%r1+8]\nexit", ctx), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r3, 1\nldxdw %r0, [%r1+4]\nexit", ctx), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nldxw %r0, [%r1-1]\nexit", ctx), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r3, 1\nstxb [%r1+8], %r3\nexit", ctx), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nstdw [%r1+1], 5\nexit", ctx), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r2, 1\nlock add [%r1+4], %r2\nexit", ctx), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nldxsw %r0, [%r1+6]\nexit", ctx), 1));
    // moving the base rather than the offset
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nadd %r1, 8\nldxb %r0, [%r1+0]\nexit", ctx), 2));
    // a failed store leaves the context alone
    EXPECT_EQ(ctx, std::vector<std::byte>(8));
}

TEST(InterpreterChecked, NoContext) {
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nldxb %r0, [%r1+0]\nexit"), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r1, 0\nstw [%r1+0], 1\nexit"), 1));
}

TEST(InterpreterChecked, WildPointers) {
    EXPECT_TRUE(faults_at(run_checked("lddw %r1, 0xdeadbeef00000000\nldxdw %r0, [%r1+0]\nexit"), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r1, 4096\nstxdw [%r1+0], %r1\nexit"), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r1, -1\nldxb %r0, [%r1+0]\nexit"), 1));
    // an address that wraps around the end of the address space
    auto ctx = std::vector<std::byte>(8);
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nlddw %r2, 0xfffffffffffffff8\nadd %r1, %r2\nldxdw %r0, [%r1+0]\nexit", ctx),
                          4));
}

TEST(InterpreterChecked, StackBounds) {
    EXPECT_TRUE(r0_is(run_checked("stb [%r10-512], 1\nldxb %r0, [%r10-512]\nexit"), 1));
    EXPECT_TRUE(r0_is(run_checked("stb [%r10-1], 2\nldxb %r0, [%r10-1]\nexit"), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nldxb %r0, [%r10-513]\nexit"), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r3, 0\nldxdw %r0, [%r10-520]\nexit"), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nstdw [%r10-516], 1\nexit"), 1));  // straddles the bottom
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nstxdw [%r10+0], %r0\nexit"), 1));  // above the top
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nldxw %r0, [%r10-2]\nexit"), 1));   // straddles the top
    EXPECT_TRUE(faults_at(run_checked("mov %r2, %r10\nsub %r2, 1000\nldxb %r0, [%r2+0]\nexit"), 2));
}

TEST(InterpreterChecked, ValidProgramsRunTheSameUnchecked) {
    // run_asm runs every program checked and unchecked; this one touches context and stack edges
    auto ctx = sample_ctx();
    const char* text = R"(ldxb %r2, [%r1+15]
stxb [%r10-512], %r2
ldxb %r3, [%r10-512]
ldxdw %r4, [%r1+8]
stxdw [%r10-8], %r4
ldxdw %r0, [%r10-8]
add %r0, %r3
exit)";
    EXPECT_TRUE(r0_is(run_asm(text, ctx), 0x800000008001ff80ull + 0x80));
}

}  // namespace
}  // namespace ebpfrt
