// isa::validate: one test per rule of its contract, on hand-encoded programs. Every rejection must be an
// invalid_argument error whose message names the offending instruction ("insn N").

#include <ebpfrt/isa.hpp>

#include <string>
#include <string_view>
#include <vector>

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

// A few encoders, written from RFC 9669 §3-5.
Insn mov_imm(int dst, std::int32_t imm) { return mk(0xb7, dst, 0, 0, imm); }
Insn mov_reg(int dst, int src) { return mk(0xbf, dst, src); }
Insn ja(std::int16_t off) { return mk(0x05, 0, 0, off); }
Insn ja32(std::int32_t imm) { return mk(0x06, 0, 0, 0, imm); }
Insn jeq_imm(int dst, std::int32_t imm, std::int16_t off) { return mk(0x15, dst, 0, off, imm); }
Insn call_local(std::int32_t rel) { return mk(0x85, 0, isa::call_local, 0, rel); }
Insn exit_insn() { return mk(0x95); }
std::vector<Insn> lddw(int dst, std::uint64_t v, int src = 0) {
    return {mk(0x18, dst, src, 0, static_cast<std::int32_t>(v & 0xffffffffu)),
            mk(0x00, 0, 0, 0, static_cast<std::int32_t>(v >> 32))};
}

std::vector<Insn> cat(std::initializer_list<std::vector<Insn>> parts) {
    std::vector<Insn> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// Expects validate(prog) to fail with invalid_argument naming `insn`.
void expect_rejected(const std::vector<Insn>& prog, std::size_t insn, const isa::ValidateOptions& o = {}) {
    auto r = isa::validate(prog, o);
    ASSERT_FALSE(r) << "accepted";
    EXPECT_EQ(r.error().code(), Errc::invalid_argument) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "insn " + std::to_string(insn)));
}

TEST(Validate, AcceptsValidPrograms) {
    const std::vector<std::vector<Insn>> progs = {
        {mov_imm(0, 0), exit_insn()},
        {exit_insn()},
        // stores through r10 are fine: r10 is the base, not the destination register written
        {mk(0x7b, 10, 1, -8), mk(0x7a, 10, 0, -16, 7), mk(0x72, 10, 0, -512, 1), mk(0x79, 0, 10, -8), exit_insn()},
        // atomic on the stack; loads from r10
        {mov_imm(1, 1), mk(0xdb, 10, 1, -8, 0x00), mk(0xdb, 10, 1, -8, 0x01), mk(0x61, 0, 10, -4), exit_insn()},
        // a jump to the last instruction, a backward jump, lddw as a target
        {mov_imm(0, 0), jeq_imm(0, 0, 1), mov_imm(0, 1), exit_insn()},
        cat({{ja(0)}, lddw(0, 0x1122334455667788ull), {jeq_imm(0, 1, -4), exit_insn()}}),
        // ending with an unconditional jump (an infinite loop is still well formed)
        {mov_imm(0, 0), ja(-2)},
        // ja32 uses imm
        {ja32(1), mov_imm(0, 1), exit_insn()},
        // local call to the instruction after exit
        {call_local(1), exit_insn(), mov_imm(0, 5), exit_insn()},
        // every lddw src the ISA defines
        cat({lddw(1, 5, isa::pseudo_imm64), {exit_insn()}}),
        cat({lddw(1, 5, isa::pseudo_map_fd), lddw(2, 5, isa::pseudo_map_value), lddw(3, 5, isa::pseudo_btf_id),
             lddw(4, 5, isa::pseudo_map_idx), lddw(5, 5, isa::pseudo_map_idx_value), {exit_insn()}}),
    };
    for (std::size_t k = 0; k < progs.size(); ++k) {
        auto r = isa::validate(progs[k]);
        EXPECT_TRUE(r) << "program " << k << ": " << r.error().message();
    }
}

TEST(Validate, UnknownOpcode) { expect_rejected({mov_imm(0, 0), mk(0xe4), exit_insn()}, 1); }

TEST(Validate, InvalidOperationFields) {
    expect_rejected({mov_imm(0, 0), mov_imm(0, 0), mk(0x3f, 0, 1, 2), exit_insn()}, 2);    // div offset 2
    expect_rejected({mov_imm(1, 0), mk(0xdb, 10, 1, -8, 0x02), exit_insn()}, 1);           // atomic imm 0x02
}

TEST(Validate, BadDestinationRegister) { expect_rejected({mov_imm(0, 0), mov_imm(11, 1), exit_insn()}, 1); }

TEST(Validate, BadSourceRegister) {
    expect_rejected({mov_imm(0, 0), mov_imm(1, 0), mov_reg(0, 12), exit_insn()}, 2);
    expect_rejected({mov_imm(0, 0), mk(0x79, 0, 15, 0), exit_insn()}, 1);  // ldxdw r0, [r15]
}

TEST(Validate, JumpOutOfRangeForward) {
    expect_rejected({mov_imm(0, 0), ja(5), exit_insn()}, 1);
    // one past the end is out of range too
    expect_rejected({mov_imm(0, 0), jeq_imm(0, 0, 1), exit_insn()}, 1);
    expect_rejected({mov_imm(0, 0), mov_imm(0, 0), ja32(100), exit_insn()}, 2);
}

TEST(Validate, JumpOutOfRangeBackward) {
    expect_rejected({mov_imm(0, 0), ja(-3), exit_insn()}, 1);
    expect_rejected({mov_imm(0, 0), mov_imm(0, 0), jeq_imm(0, 0, -100), exit_insn()}, 2);
    expect_rejected({mov_imm(0, 0), ja32(-3), exit_insn()}, 1);
}

TEST(Validate, JumpIntoTheSecondSlotOfLddw) {
    // ja +1 at 0 targets slot 2, the upper half of the lddw in slots 1-2
    expect_rejected(cat({{ja(1)}, lddw(0, 1), {exit_insn()}}), 0);
    expect_rejected(cat({{mov_imm(0, 0)}, lddw(0, 1), {jeq_imm(0, 1, -2), exit_insn()}}), 3);
}

TEST(Validate, LddwMissingItsSecondSlot) {
    expect_rejected({mov_imm(0, 0), exit_insn(), mk(0x18, 0, 0, 0, 1)}, 2);
}

TEST(Validate, LddwSecondSlotMustBeBlank) {
    auto with_second = [](Insn second) {
        return std::vector<Insn>{mov_imm(0, 0), mk(0x18, 0, 0, 0, 1), second, exit_insn()};
    };
    expect_rejected(with_second(mk(0x07, 0, 0, 0, 1)), 1);  // an opcode
    expect_rejected(with_second(mk(0x00, 1, 0, 0, 1)), 1);  // a dst
    expect_rejected(with_second(mk(0x00, 0, 2, 0, 1)), 1);  // a src
    expect_rejected(with_second(mk(0x00, 0, 0, 4, 1)), 1);  // an offset
}

TEST(Validate, LddwUnknownSrc) { expect_rejected(cat({{mov_imm(0, 0)}, lddw(0, 1, 7), {exit_insn()}}), 1); }

TEST(Validate, WriteToR10) {
    expect_rejected({mov_imm(10, 1), exit_insn()}, 0);
    expect_rejected({mov_imm(0, 0), mk(0x79, 10, 1, 0), exit_insn()}, 1);   // ldxdw r10, [r1+0]
    expect_rejected({mov_imm(0, 0), mk(0x07, 10, 0, 0, 8), exit_insn()}, 1);  // add r10, 8
    expect_rejected({mov_imm(0, 0), mk(0x84, 10), exit_insn()}, 1);           // neg32 r10
    expect_rejected({mov_imm(0, 0), mk(0xd7, 10, 0, 0, 64), exit_insn()}, 1); // bswap64 r10
    expect_rejected(cat({{mov_imm(0, 0)}, lddw(10, 1), {exit_insn()}}), 1);
}

TEST(Validate, FetchAtomicWithR10AsSourceWritesR10) {
    // A fetch atomic writes the old value into src (RFC 9669 §5.3), so src = r10 is a write to r10.
    expect_rejected({mov_imm(0, 0), mk(0xdb, 1, 10, 0, 0x01), exit_insn()}, 1);  // lock fetch add [r1], r10
    expect_rejected({mov_imm(0, 0), mk(0xdb, 1, 10, 0, 0xe1), exit_insn()}, 1);  // lock xchg [r1], r10
}

TEST(Validate, TooManyInstructions) {
    const isa::ValidateOptions four{.max_insns = 4};
    std::vector<Insn> prog{mov_imm(0, 0), mov_imm(0, 1), mov_imm(0, 2), exit_insn()};
    auto ok = isa::validate(prog, four);
    EXPECT_TRUE(ok) << ok.error().message();
    prog.insert(prog.begin(), mov_imm(0, 3));
    auto r = isa::validate(prog, four);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message(), "program"));
}

TEST(Validate, NoFinalExit) {
    expect_rejected({mov_imm(0, 0), mov_imm(0, 1)}, 1);
    expect_rejected({mov_imm(0, 0), jeq_imm(0, 0, -2)}, 1);  // a conditional jump may fall through
}

TEST(Validate, EmptyProgram) {
    auto r = isa::validate({});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message(), "program"));
}

TEST(Validate, LocalCallTargetOutOfRange) {
    expect_rejected({call_local(5), exit_insn()}, 0);
    expect_rejected({mov_imm(0, 0), call_local(-3), exit_insn()}, 1);
    expect_rejected({mov_imm(0, 0), call_local(1), exit_insn()}, 1);  // one past the end
}

TEST(Validate, LocalCallIntoTheSecondSlotOfLddw) {
    expect_rejected(cat({{call_local(2), exit_insn()}, lddw(0, 1), {exit_insn()}}), 0);  // target slot 3
}

TEST(Validate, FunctionAddressTargetOutOfRange) {
    // lddw src=4 (pseudo_func) names a subprogram by its offset from the next slot
    auto good = cat({lddw(1, 2, isa::pseudo_func), {exit_insn(), exit_insn()}});
    good[0].imm = 2;  // slot 0 + 1 + 2 = slot 3
    EXPECT_TRUE(isa::validate(good));
    auto bad = good;
    bad[0].imm = 50;
    expect_rejected(bad, 0);
}

TEST(Validate, ReservedFieldsMustBeZero) {
    expect_rejected({mov_imm(0, 0), mk(0x95, 1), exit_insn()}, 1);              // exit with a dst
    expect_rejected({mov_imm(0, 0), mk(0x07, 0, 3, 0, 1), exit_insn()}, 1);     // add r0, 1 with a src
}

}  // namespace
}  // namespace ebpfrt
