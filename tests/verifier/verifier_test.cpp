// verify(): verdicts and messages on small programs in the conformance assembler syntax. Every
// rejection is checked by its Errc, the instruction it names and a key phrase of the reason, so a
// rejection for the wrong reason (or at the wrong place) fails. The expected verdicts follow the
// Linux verifier (and RFC 9669 for the ISA): each program below is one the kernel accepts or rejects
// for the reason given in its comment.

#include <ebpfrt/verifier.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ebpfrt {
namespace {

// ---------------------------------------------------------------------------------------------
// Harness

struct Outcome {
    bool assembled = false;
    bool ok = false;
    Errc code{};
    std::string message;  // the error's message when rejected
    VerifyReport report;
};

Outcome run(std::string_view text, ProgType type = ProgType::unspec, std::vector<MapSpec> maps = {},
            VerifyOptions options = {}) {
    Outcome o;
    auto prog = isa::assemble(text);
    if (!prog) {
        ADD_FAILURE() << "assemble: " << prog.error().message() << "\n" << text;
        return o;
    }
    o.assembled = true;
    options.type = type;
    options.maps = maps;
    auto r = verify("test", *prog, options, &o.report);
    o.ok = static_cast<bool>(r);
    if (!r) {
        o.code = r.error().code();
        o.message = r.error().message();
    }
    return o;
}

::testing::AssertionResult accepted(const Outcome& o) {
    if (!o.assembled) return ::testing::AssertionFailure() << "program did not assemble";
    if (!o.ok)
        return ::testing::AssertionFailure() << "rejected: " << o.message << " (insn " << o.report.insn << ": "
                                             << o.report.disassembly << ")";
    if (!o.report.accepted) return ::testing::AssertionFailure() << "verify() succeeded but report.accepted is false";
    return ::testing::AssertionSuccess();
}

// Rejected by the verifier at `insn` with a reason containing `phrase`.
::testing::AssertionResult rejected(const Outcome& o, std::size_t insn, std::string_view phrase) {
    if (!o.assembled) return ::testing::AssertionFailure() << "program did not assemble";
    if (o.ok) return ::testing::AssertionFailure() << "accepted (want rejection at insn " << insn << ": " << phrase << ")";
    if (o.code != Errc::verifier_rejected)
        return ::testing::AssertionFailure() << "error " << to_string(o.code) << ", want verifier_rejected: " << o.message;
    if (o.report.accepted) return ::testing::AssertionFailure() << "report.accepted is true for a rejection";
    if (o.report.insn != insn || o.report.reason.find(phrase) == std::string::npos)
        return ::testing::AssertionFailure() << "rejected at insn " << o.report.insn << " (" << o.report.disassembly
                                             << "): \"" << o.report.reason << "\"; want insn " << insn << " and \""
                                             << phrase << "\"";
    if (o.message.find(fmt::format("insn {} ", insn)) == std::string::npos ||
        o.message.find(o.report.reason) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << o.message << "\" does not name insn " << insn
                                             << " and the reason";
    return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Maps (maps[i] is `lddw %rN, map_idx i`)

MapSpec hash_map() {  // key 4, value 8
    MapSpec m;
    m.name = "hash";
    m.type = MapType::hash;
    m.key_size = 4;
    m.value_size = 8;
    m.max_entries = 16;
    return m;
}

MapSpec array_map(std::uint32_t value_size = 64, std::string name = "arr") {
    MapSpec m;
    m.name = std::move(name);
    m.type = MapType::array;
    m.key_size = 4;
    m.value_size = value_size;
    m.max_entries = 4;
    return m;
}

// A .rodata-like map: one element, read-only for the program, with known bytes.
MapSpec rodata_map(std::vector<std::uint8_t> bytes) {
    MapSpec m;
    m.name = ".rodata";
    m.type = MapType::array;
    m.key_size = 4;
    m.value_size = static_cast<std::uint32_t>(bytes.size());
    m.max_entries = 1;
    m.flags = map_flags::rdonly_prog;
    m.origin = MapOrigin::rodata;
    for (auto b : bytes) m.initial_value.push_back(static_cast<std::byte>(b));
    return m;
}

MapSpec ringbuf_map() {
    MapSpec m;
    m.name = "events";
    m.type = MapType::ringbuf;
    m.max_entries = 4096;
    return m;
}

MapSpec prog_array_map() {
    MapSpec m;
    m.name = "progs";
    m.type = MapType::prog_array;
    m.key_size = 4;
    m.value_size = 4;
    m.max_entries = 4;
    return m;
}

MapSpec array_of_maps() {  // inner: array "inner" with 64-byte values
    MapSpec m;
    m.name = "outer";
    m.type = MapType::array_of_maps;
    m.key_size = 4;
    m.value_size = 4;
    m.max_entries = 4;
    m.inner = std::make_shared<const MapSpec>(array_map(64, "inner"));
    return m;
}

// Looks up key 0 (a u32 at fp-4) in maps[0]: r0 = value or null. Slots 0-5; the next insn is 6.
constexpr std::string_view lookup0 = R"(
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx 0
call 1
)";

std::string with_lookup(std::string_view rest) { return std::string(lookup0) + std::string(rest); }

// ---------------------------------------------------------------------------------------------
// Registers and stack

TEST(VerifierRegisters, MinimalProgramIsAccepted) { EXPECT_TRUE(accepted(run("mov %r0, 0\nexit"))); }

TEST(VerifierRegisters, UninitialisedRegisterRead) {
    EXPECT_TRUE(rejected(run("mov %r0, 1\nadd %r0, %r3\nexit"), 1, "r3 is read before it is written"));
}

TEST(VerifierRegisters, R0NotSetAtExit) {
    EXPECT_TRUE(rejected(run("mov %r2, 1\nexit"), 1, "r0 is not set at exit"));
}

TEST(VerifierRegisters, R0SetOnOnePathOnly) {
    // Only the taken side sets r0: the fall-through reaches exit with r0 unset.
    EXPECT_TRUE(rejected(run(R"(
ldxw %r2, [%r1+0]
jeq %r2, 0, set
exit
set:
mov %r0, 0
exit
)"),
                         2, "r0 is not set at exit"));
}

TEST(VerifierStack, UninitialisedStackRead) {
    EXPECT_TRUE(rejected(run("ldxdw %r0, [%r10-8]\nexit"), 0, "reads uninitialised stack"));
}

TEST(VerifierStack, PartlyInitialisedStackRead) {
    // Only fp-8..fp-5 are written; the 8-byte load also reads fp-4..fp-1.
    EXPECT_TRUE(rejected(run("stw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit"), 1, "reads uninitialised stack at offset -4"));
}

TEST(VerifierStack, InitialisedStackRead) {
    EXPECT_TRUE(accepted(run("stdw [%r10-8], 1\nldxdw %r0, [%r10-8]\nexit")));
}

TEST(VerifierStack, BottomOfTheFrameIsAccessible) {
    EXPECT_TRUE(accepted(run("stdw [%r10-512], 7\nldxdw %r0, [%r10-512]\nexit")));
}

TEST(VerifierStack, AccessBelowTheFrameIsRejected) {
    EXPECT_TRUE(rejected(run("stdw [%r10-520], 0\nmov %r0, 0\nexit"), 0, "outside the 512-byte frame"));
    // Straddling the bottom: [-516, -508).
    EXPECT_TRUE(rejected(run("stdw [%r10-516], 0\nmov %r0, 0\nexit"), 0, "outside the 512-byte frame"));
}

TEST(VerifierStack, AccessAtOrAboveTheFramePointerIsRejected) {
    EXPECT_TRUE(rejected(run("stw [%r10+0], 0\nmov %r0, 0\nexit"), 0, "outside the 512-byte frame"));
    EXPECT_TRUE(rejected(run("stdw [%r10-4], 0\nmov %r0, 0\nexit"), 0, "outside the 512-byte frame"));
    EXPECT_TRUE(accepted(run("stb [%r10-1], 0\nmov %r0, 0\nexit")));
}

TEST(VerifierStack, SpillAndFillOfTheContextKeepItsType) {
    // xdp_md: reading ingress_ifindex (offset 12) through the reloaded pointer is a context access.
    EXPECT_TRUE(accepted(run(R"(
stxdw [%r10-8], %r1
mov %r1, 0
ldxdw %r2, [%r10-8]
ldxw %r0, [%r2+12]
exit
)",
                             ProgType::xdp)));
}

TEST(VerifierStack, PartlyOverwrittenSpillIsNoLongerAPointer) {
    // One byte of the spilled context pointer is overwritten: the fill is a scalar.
    EXPECT_TRUE(rejected(run(R"(
stxdw [%r10-8], %r1
stb [%r10-8], 0
ldxdw %r2, [%r10-8]
ldxw %r0, [%r2+0]
exit
)",
                             ProgType::xdp),
                         3, "a scalar, not a pointer"));
}

TEST(VerifierStack, SpilledConstantKeepsItsValue) {
    // The filled constant bounds a stack pointer: fp-16 + 8 = fp-8 is inside the frame and initialised.
    EXPECT_TRUE(accepted(run(R"(
stdw [%r10-8], 0
mov %r1, 8
stxdw [%r10-16], %r1
ldxdw %r2, [%r10-16]
mov %r3, %r10
add %r3, -16
add %r3, %r2
ldxdw %r0, [%r3+0]
exit
)")));
}

TEST(VerifierAlu, DivisionByZeroRegisterIsAllowed) {
    // RFC 9669 defines x / 0 = 0 and x % 0 = x; the kernel accepts division by a register that may be 0.
    EXPECT_TRUE(accepted(run("mov %r0, 7\nmov %r2, 0\ndiv %r0, %r2\nmod %r0, %r2\nexit")));
}

// ---------------------------------------------------------------------------------------------
// Maps: null checks

TEST(VerifierMapLookup, ResultUsedWithoutNullCheck) {
    EXPECT_TRUE(rejected(run(with_lookup("ldxdw %r0, [%r0+0]\nexit"), ProgType::unspec, {hash_map()}), 6,
                         "r0 may be null"));
}

TEST(VerifierMapLookup, ResultUsedAfterNullCheck) {
    EXPECT_TRUE(accepted(run(with_lookup(R"(
jeq %r0, 0, out
ldxdw %r0, [%r0+0]
out:
exit
)"),
                             ProgType::unspec, {hash_map()})));
}

TEST(VerifierMapLookup, NullCheckWithJneAlsoWorks) {
    EXPECT_TRUE(accepted(run(with_lookup(R"(
jne %r0, 0, use
exit
use:
stdw [%r0+0], 1
mov %r0, 0
exit
)"),
                             ProgType::unspec, {hash_map()})));
}

TEST(VerifierMapLookup, NullCheckOnOneCopyAppliesToTheOther) {
    // r6 = r0; if r0 == 0 goto out; *r6: the check on r0 covers r6 (same id).
    EXPECT_TRUE(accepted(run(with_lookup(R"(
mov %r6, %r0
jeq %r0, 0, out
ldxdw %r0, [%r6+0]
exit
out:
mov %r0, 0
exit
)"),
                             ProgType::unspec, {hash_map()})));
}

TEST(VerifierMapLookup, CopyOnTheNullSideIsTheScalarZero) {
    // if r0 != 0 goto out; *r6: on this side r6 is null (the kernel makes it the scalar 0).
    EXPECT_TRUE(rejected(run(with_lookup(R"(
mov %r6, %r0
jne %r0, 0, out
ldxdw %r0, [%r6+0]
exit
out:
mov %r0, 0
exit
)"),
                             ProgType::unspec, {hash_map()}),
                         8, "invalid memory access through r6"));
}

TEST(VerifierMapLookup, PointerArithmeticBeforeNullCheck) {
    EXPECT_TRUE(rejected(run(with_lookup("add %r0, 4\nmov %r0, 0\nexit"), ProgType::unspec, {hash_map()}), 6,
                         "before it is compared with 0"));
}

TEST(VerifierMapLookup, MapIndexOutOfRange) {
    EXPECT_TRUE(rejected(run("lddw %r1, map_idx 1\nmov %r0, 0\nexit", ProgType::unspec, {hash_map()}), 0,
                         "refers to map 1 but the program has 1 maps"));
}

// ---------------------------------------------------------------------------------------------
// Maps: value bounds

TEST(VerifierMapValue, LastEightBytesAreAccessible) {
    EXPECT_TRUE(accepted(run(with_lookup("jeq %r0, 0, out\nldxdw %r0, [%r0+56]\nout:\nexit"), ProgType::unspec,
                             {array_map()})));
}

TEST(VerifierMapValue, AccessPastTheEndIsRejected) {
    EXPECT_TRUE(rejected(run(with_lookup("jeq %r0, 0, out\nldxdw %r0, [%r0+60]\nout:\nexit"), ProgType::unspec,
                             {array_map()}),
                         7, "outside the map \"arr\" value of 64 bytes"));
}

TEST(VerifierMapValue, AccessBeforeTheStartIsRejected) {
    EXPECT_TRUE(rejected(run(with_lookup("jeq %r0, 0, out\nldxb %r0, [%r0-1]\nout:\nexit"), ProgType::unspec,
                             {array_map()}),
                         7, "outside the map"));
}

TEST(VerifierMapValue, HashValueWriteBounds) {
    EXPECT_TRUE(accepted(run(with_lookup("jeq %r0, 0, out\nstdw [%r0+0], 1\nout:\nmov %r0, 0\nexit"),
                             ProgType::unspec, {hash_map()})));
    EXPECT_TRUE(rejected(run(with_lookup("jeq %r0, 0, out\nstw [%r0+6], 1\nout:\nmov %r0, 0\nexit"),
                             ProgType::unspec, {hash_map()}),
                         7, "value of 8 bytes"));
}

// Loads an index from the value, optionally bounds it, scales it by 8 and loads through it.
std::string variable_offset(std::string_view bound) {
    return with_lookup(fmt::format(R"(
jeq %r0, 0, out
ldxdw %r2, [%r0+0]
{}
lsh %r2, 3
add %r0, %r2
ldxdw %r0, [%r0+0]
exit
out:
mov %r0, 0
exit
)",
                                   bound));
}

TEST(VerifierMapValue, VariableOffsetBoundedByABranch) {
    // r2 <= 7 -> r2 * 8 <= 56 -> [56, 64) is the last slot of a 64-byte value.
    EXPECT_TRUE(accepted(run(variable_offset("jgt %r2, 7, out"), ProgType::unspec, {array_map()})));
}

TEST(VerifierMapValue, VariableOffsetBoundedTooLoosely) {
    // r2 <= 8 -> offset up to 64: the 8-byte load at insn 11 may read [64, 72).
    EXPECT_TRUE(rejected(run(variable_offset("jgt %r2, 8, out"), ProgType::unspec, {array_map()}), 11,
                         "outside the map \"arr\" value of 64 bytes"));
}

TEST(VerifierMapValue, VariableOffsetUnbounded) {
    // Without the bound the addition itself (insn 10) is rejected, as in the kernel.
    EXPECT_TRUE(rejected(run(variable_offset("mov %r3, 0"), ProgType::unspec, {array_map()}), 10, "unbounded"));
}

TEST(VerifierMapValue, ArrayOfMapsInnerLookup) {
    constexpr std::string_view prog = R"(
jeq %r0, 0, out
mov %r1, %r0
mov %r2, %r10
add %r2, -4
call 1
jeq %r0, 0, out
ldxdw %r0, [%r0+{}]
exit
out:
mov %r0, 0
exit
)";
    EXPECT_TRUE(accepted(run(with_lookup(fmt::format(prog, 56)), ProgType::unspec, {array_of_maps()})));
    EXPECT_TRUE(rejected(run(with_lookup(fmt::format(prog, 60)), ProgType::unspec, {array_of_maps()}), 12,
                         "outside the map \"inner\" value of 64 bytes"));
}

TEST(VerifierMapValue, InnerMapMustBeNullCheckedBeforeUse) {
    EXPECT_TRUE(rejected(run(with_lookup(R"(
mov %r1, %r0
mov %r2, %r10
add %r2, -4
call 1
mov %r0, 0
exit
)"),
                             ProgType::unspec, {array_of_maps()}),
                         9, "must be a map"));
}

// ---------------------------------------------------------------------------------------------
// Read-only maps

TEST(VerifierReadOnlyMap, StoreIsRejected) {
    EXPECT_TRUE(rejected(run("lddw %r1, map_idx_value 0\nstw [%r1+0], 1\nmov %r0, 0\nexit", ProgType::unspec,
                             {rodata_map({0, 0, 0, 0, 0, 0, 0, 0})}),
                         2, "write into read-only map \".rodata\""));
}

TEST(VerifierReadOnlyMap, StoreThroughLookupResultIsRejected) {
    EXPECT_TRUE(rejected(run(with_lookup("jeq %r0, 0, out\nstb [%r0+3], 1\nout:\nmov %r0, 0\nexit"),
                             ProgType::unspec, {rodata_map({0, 0, 0, 0, 0, 0, 0, 0})}),
                         7, "write into read-only map"));
}

TEST(VerifierReadOnlyMap, HelperWriteIsRejected) {
    // probe_read_kernel(dst = .rodata value, 8, src): the helper would write into the read-only map.
    EXPECT_TRUE(rejected(run(R"(
lddw %r1, map_idx_value 0
mov %r2, 8
mov %r3, 0
call 113
mov %r0, 0
exit
)",
                             ProgType::unspec, {rodata_map({0, 0, 0, 0, 0, 0, 0, 0})}),
                         4, "write into read-only map"));
}

TEST(VerifierReadOnlyMap, ReadIsAllowed) {
    EXPECT_TRUE(accepted(run("lddw %r1, map_idx_value 0\nldxdw %r0, [%r1+0]\nexit", ProgType::unspec,
                             {rodata_map({1, 2, 3, 4, 5, 6, 7, 8})})));
}

// `if (rodata.flag == 0) ... else *(u64 *)0`: the dead side dereferences a scalar.
constexpr std::string_view rodata_switch = R"(
lddw %r1, map_idx_value 0
ldxw %r2, [%r1+4]
jeq %r2, 0, ok
mov %r3, 0
ldxdw %r0, [%r3+0]
ok:
mov %r0, 0
exit
)";

TEST(VerifierReadOnlyMap, KnownValuePrunesTheDeadBranch) {
    EXPECT_TRUE(accepted(run(rodata_switch, ProgType::unspec, {rodata_map({9, 9, 9, 9, 0, 0, 0, 0})})));
}

TEST(VerifierReadOnlyMap, OtherValueMakesTheBranchLive) {
    EXPECT_TRUE(rejected(run(rodata_switch, ProgType::unspec, {rodata_map({0, 0, 0, 0, 0, 1, 0, 0})}), 5,
                         "a scalar, not a pointer"));
}

TEST(VerifierReadOnlyMap, WritableMapValueIsNotAConstant) {
    // Same bytes, but a map the program (or user space) may change: both sides are live.
    MapSpec m = rodata_map({9, 9, 9, 9, 0, 0, 0, 0});
    m.flags = 0;
    EXPECT_TRUE(rejected(run(rodata_switch, ProgType::unspec, {m}), 5, "a scalar, not a pointer"));
}

TEST(VerifierReadOnlyMap, KnownValueThroughLookup) {
    EXPECT_TRUE(accepted(run(with_lookup(R"(
jeq %r0, 0, ok
ldxw %r2, [%r0+4]
jeq %r2, 0, ok
mov %r3, 0
ldxdw %r0, [%r3+0]
ok:
mov %r0, 0
exit
)"),
                             ProgType::unspec, {rodata_map({9, 9, 9, 9, 0, 0, 0, 0})})));
}

// ---------------------------------------------------------------------------------------------
// Packets (xdp: data at ctx+0, data_end at ctx+4)

TEST(VerifierPacket, XdpReadsDataAndDataEnd) {
    EXPECT_TRUE(accepted(run("ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r0, 2\nexit", ProgType::xdp)));
}

TEST(VerifierPacket, AccessWithoutDataEndCheck) {
    EXPECT_TRUE(rejected(run("ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit", ProgType::xdp), 1,
                         "checked against the packet end"));
}

// r4 = data + 14; if r4 > data_end goto out; then `access` (insn 5).
std::string checked_packet(std::string_view access, std::string_view cmp = "jgt %r4, %r3, out") {
    return fmt::format(R"(
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
{}
{}
mov %r0, 2
exit
out:
mov %r0, 1
exit
)",
                       cmp, access);
}

TEST(VerifierPacket, AccessInsideTheCheckedRange) {
    EXPECT_TRUE(accepted(run(checked_packet("ldxb %r0, [%r2+13]"), ProgType::xdp)));
    EXPECT_TRUE(accepted(run(checked_packet("ldxh %r0, [%r2+12]"), ProgType::xdp)));
    EXPECT_TRUE(accepted(run(checked_packet("ldxdw %r0, [%r2+0]"), ProgType::xdp)));
    // Through the compared pointer itself: data + 14 - 1.
    EXPECT_TRUE(accepted(run(checked_packet("ldxb %r0, [%r4-1]"), ProgType::xdp)));
}

TEST(VerifierPacket, AccessAtTheCheckedLengthIsRejected) {
    EXPECT_TRUE(rejected(run(checked_packet("ldxb %r0, [%r2+14]"), ProgType::xdp), 5, "only 14 bytes"));
    EXPECT_TRUE(rejected(run(checked_packet("ldxh %r0, [%r2+13]"), ProgType::xdp), 5, "only 14 bytes"));
}

TEST(VerifierPacket, ReversedComparison) {
    // if data_end < data + 14 goto out: the fall-through knows data + 14 <= data_end.
    EXPECT_TRUE(accepted(run(checked_packet("ldxb %r0, [%r2+13]", "jlt %r3, %r4, out"), ProgType::xdp)));
    EXPECT_TRUE(rejected(run(checked_packet("ldxb %r0, [%r2+14]", "jlt %r3, %r4, out"), ProgType::xdp), 5,
                         "only 14 bytes"));
}

TEST(VerifierPacket, WrongSideOfTheComparison) {
    // if data + 14 <= data_end goto out: the fall-through is the short packet.
    EXPECT_TRUE(rejected(run(checked_packet("ldxb %r0, [%r2+0]", "jle %r4, %r3, out"), ProgType::xdp), 5,
                         "checked against the packet end"));
}

// Checks 14 bytes, calls a helper, then reads through the saved data pointer r6 (insn 7).
std::string packet_after_call(std::string_view call) {
    return fmt::format(R"(
ldxw %r6, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r6
add %r4, 14
jgt %r4, %r3, out
mov %r2, 0
{}
ldxb %r0, [%r6+0]
exit
out:
mov %r0, 1
exit
)",
                       call);
}

TEST(VerifierPacket, PointerSurvivesAHelperThatKeepsThePacket) {
    EXPECT_TRUE(accepted(run(packet_after_call("call 5"), ProgType::xdp)));  // ktime_get_ns
}

TEST(VerifierPacket, PointersAreInvalidAfterXdpAdjustHead) {
    EXPECT_TRUE(rejected(run(packet_after_call("call 44"), ProgType::xdp), 7, "invalid memory access through r6"));
}

// ---------------------------------------------------------------------------------------------
// Context

TEST(VerifierContext, XdpFieldsAreReadable) {
    // rx_queue_index (egress_ifindex at 20 is readable only for devmap programs in the kernel).
    EXPECT_TRUE(accepted(run("ldxw %r0, [%r1+16]\nexit", ProgType::xdp)));
}

TEST(VerifierContext, XdpAccessBeyondTheContext) {
    EXPECT_TRUE(rejected(run("ldxw %r0, [%r1+24]\nexit", ProgType::xdp), 0, "outside the 24-byte context"));
    EXPECT_TRUE(rejected(run("ldxdw %r0, [%r1+20]\nexit", ProgType::xdp), 0, "outside the 24-byte context"));
}

TEST(VerifierContext, XdpContextIsReadOnly) {
    EXPECT_TRUE(rejected(run("stw [%r1+12], 0\nmov %r0, 0\nexit", ProgType::xdp), 0, "write into the context"));
}

TEST(VerifierContext, ModifiedContextPointer) {
    EXPECT_TRUE(rejected(run("add %r1, 4\nldxw %r0, [%r1+0]\nexit", ProgType::xdp), 1,
                         "dereference of modified context pointer"));
}

TEST(VerifierContext, HostContextAcceptsAnyNonNegativeOffset) {
    EXPECT_TRUE(accepted(run("ldxdw %r0, [%r1+4096]\nstdw [%r1+100], 1\nexit", ProgType::unspec)));
    EXPECT_TRUE(accepted(run("add %r1, 8\nldxw %r0, [%r1+0]\nexit", ProgType::unspec)));
}

TEST(VerifierContext, HostContextRejectsNegativeOffset) {
    EXPECT_TRUE(rejected(run("ldxb %r0, [%r1-1]\nexit", ProgType::unspec), 0, "context access at negative offset"));
}

// ---------------------------------------------------------------------------------------------
// Helpers

TEST(VerifierHelpers, UnknownHelper) {
    EXPECT_TRUE(rejected(run("call 99999\nmov %r0, 0\nexit"), 0, "unknown helper 99999"));
}

TEST(VerifierHelpers, CloneRedirectIsNotForXdp) {
    // clone_redirect needs an __sk_buff; the kernel does not offer it to xdp programs.
    auto o = run("mov %r2, 0\nmov %r3, 0\ncall 13\nmov %r0, 0\nexit", ProgType::xdp);
    EXPECT_TRUE(rejected(o, 2, "clone_redirect#13"));
    EXPECT_TRUE(rejected(o, 2, "xdp"));
    EXPECT_TRUE(accepted(run("mov %r2, 0\nmov %r3, 0\ncall 13\nmov %r0, 0\nexit", ProgType::sched_cls)));
}

TEST(VerifierHelpers, CallerSavedRegistersAreClobbered) {
    EXPECT_TRUE(accepted(run("call 5\nexit")));  // ktime_get_ns sets r0
    EXPECT_TRUE(rejected(run("mov %r1, 1\ncall 5\nmov %r0, %r1\nexit"), 2, "r1 is read before it is written"));
}

TEST(VerifierHelpers, ScalarInsteadOfAMap) {
    EXPECT_TRUE(rejected(run(R"(
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
mov %r1, 0
call 1
mov %r0, 0
exit
)",
                             ProgType::unspec, {hash_map()}),
                         4, "must be a map"));
}

TEST(VerifierHelpers, KeyOnUninitialisedStack) {
    EXPECT_TRUE(rejected(run(R"(
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx 0
call 1
mov %r0, 0
exit
)",
                             ProgType::unspec, {hash_map()}),
                         4, "points to uninitialised stack"));
}

TEST(VerifierHelpers, UpdateWithAPartlyInitialisedValue) {
    // map_update_elem reads value_size = 8 bytes; only 4 are written.
    constexpr std::string_view prog = R"(
stw [%r10-4], 0
{}
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, 0
lddw %r1, map_idx 0
call 2
mov %r0, 0
exit
)";
    EXPECT_TRUE(accepted(run(fmt::format(prog, "stdw [%r10-16], 5"), ProgType::unspec, {hash_map()})));
    EXPECT_TRUE(rejected(run(fmt::format(prog, "stw [%r10-16], 5"), ProgType::unspec, {hash_map()}), 9,
                         "points to uninitialised stack"));
}

// r0 = ringbuf_reserve(map, 16, 0); if !r0 goto out; `body`
std::string ringbuf_prog(std::string_view body) {
    return fmt::format(R"(
lddw %r1, map_idx 0
mov %r2, 16
mov %r3, 0
call 131
jeq %r0, 0, out
{}
out:
mov %r0, 0
exit
)",
                       body);
}

TEST(VerifierRingbuf, ReserveWriteSubmit) {
    EXPECT_TRUE(accepted(run(ringbuf_prog(R"(
stdw [%r0+8], 7
mov %r1, %r0
mov %r2, 0
call 132
)"),
                             ProgType::unspec, {ringbuf_map()})));
}

TEST(VerifierRingbuf, RecordMustBeNullChecked) {
    EXPECT_TRUE(rejected(run(R"(
lddw %r1, map_idx 0
mov %r2, 16
mov %r3, 0
call 131
stdw [%r0+0], 7
mov %r0, 0
exit
)",
                             ProgType::unspec, {ringbuf_map()}),
                         5, "r0 may be null"));
}

TEST(VerifierRingbuf, WritePastTheReservedSize) {
    EXPECT_TRUE(rejected(run(ringbuf_prog(R"(
stdw [%r0+12], 7
mov %r1, %r0
mov %r2, 0
call 132
)"),
                             ProgType::unspec, {ringbuf_map()}),
                         6, "outside the memory of 16 bytes"));
}

TEST(VerifierRingbuf, RecordIsInvalidAfterSubmit) {
    EXPECT_TRUE(rejected(run(ringbuf_prog(R"(
mov %r6, %r0
mov %r1, %r0
mov %r2, 0
call 132
stdw [%r6+0], 1
)"),
                             ProgType::unspec, {ringbuf_map()}),
                         10, "invalid memory access through r6"));
}

TEST(VerifierRingbuf, SizeMustBeAConstant) {
    EXPECT_TRUE(rejected(run(R"(
ldxw %r2, [%r1+0]
lddw %r1, map_idx 0
mov %r3, 0
call 131
mov %r0, 0
exit
)",
                             ProgType::unspec, {ringbuf_map()}),
                         4, "must be a known constant"));
}

TEST(VerifierRingbuf, SubmitNeedsARecord) {
    EXPECT_TRUE(rejected(run("mov %r1, %r10\nadd %r1, -8\nmov %r2, 0\ncall 132\nmov %r0, 0\nexit"), 3,
                         "must be a record from ringbuf_reserve"));
}

TEST(VerifierTailCall, LeavesR0Unset) {
    // bpf_tail_call returns only when the call fails, and its prototype returns void: r0 is not set.
    EXPECT_TRUE(rejected(run("lddw %r2, map_idx 0\nmov %r3, 0\ncall 12\nexit", ProgType::sched_cls,
                             {prog_array_map()}),
                         4, "r0 is not set at exit"));
    EXPECT_TRUE(accepted(run("lddw %r2, map_idx 0\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit", ProgType::sched_cls,
                             {prog_array_map()})));
}

// ---------------------------------------------------------------------------------------------
// bpf-to-bpf calls

TEST(VerifierCalls, CalleeReadsCallerStackThroughAnArgument) {
    EXPECT_TRUE(accepted(run(R"(
stdw [%r10-8], 42
mov %r1, %r10
add %r1, -8
call local f
exit
f:
ldxdw %r0, [%r1+0]
exit
)")));
}

TEST(VerifierCalls, CalleeReadsUninitialisedCallerStack) {
    EXPECT_TRUE(rejected(run(R"(
mov %r1, %r10
add %r1, -8
call local f
exit
f:
ldxdw %r0, [%r1+0]
exit
)"),
                         4, "reads uninitialised stack"));
}

TEST(VerifierCalls, CalleeWritesAreSeenByTheCaller) {
    EXPECT_TRUE(accepted(run(R"(
mov %r1, %r10
add %r1, -8
call local f
ldxdw %r0, [%r10-8]
exit
f:
stdw [%r1+0], 3
mov %r0, 0
exit
)")));
}

TEST(VerifierCalls, CalleeRegistersR6ToR9StartUninitialised) {
    EXPECT_TRUE(rejected(run(R"(
mov %r6, 1
call local f
exit
f:
mov %r0, %r6
exit
)"),
                         3, "r6 is read before it is written"));
}

TEST(VerifierCalls, CallerSavedRegistersAreClobberedByALocalCall) {
    EXPECT_TRUE(rejected(run(R"(
mov %r2, 1
call local f
mov %r0, %r2
exit
f:
mov %r0, 0
exit
)"),
                         2, "r2 is read before it is written"));
}

TEST(VerifierCalls, CalleeReturnsPointerToItsOwnStack) {
    EXPECT_TRUE(rejected(run(R"(
call local f
exit
f:
mov %r0, %r10
add %r0, -8
exit
)"),
                         4, "returns a pointer to its own stack"));
}

TEST(VerifierCalls, DirectRecursion) {
    EXPECT_TRUE(rejected(run(R"(
call local f
exit
f:
mov %r0, 0
call local f
exit
)"),
                         3, "recursive call"));
}

TEST(VerifierCalls, MutualRecursion) {
    EXPECT_TRUE(rejected(run(R"(
call local f
exit
f:
call local g
exit
g:
call local f
exit
)"),
                         4, "recursive call"));
}

// main calls f1, f1 calls f2, ... f(depth-1) calls f(depth), which returns 0.
std::string call_chain(int depth) {
    std::string s = "call local f1\nexit\n";
    for (int i = 1; i < depth; ++i) s += fmt::format("f{}:\ncall local f{}\nexit\n", i, i + 1);
    s += fmt::format("f{}:\nmov %r0, 0\nexit\n", depth);
    return s;
}

TEST(VerifierCalls, EightFramesAreAllowed) {
    EXPECT_TRUE(accepted(run(call_chain(7))));  // main + f1..f7
}

TEST(VerifierCalls, NineFramesAreRejected) {
    // f7's call (insn 14) would make the ninth frame.
    EXPECT_TRUE(rejected(run(call_chain(8)), 14, "exceed 8 frames"));
}

// ---------------------------------------------------------------------------------------------
// bpf_loop callbacks: loop(n, callback, ctx = fp-8, 0)

std::string loop_prog(std::string_view before, std::string_view after, std::string_view callback) {
    return fmt::format(R"(
{}
mov %r1, 10
lddw %r2, func cb
mov %r3, %r10
add %r3, -8
mov %r4, 0
call 181
{}
exit
cb:
{}
exit
)",
                       before, after, callback);
}

TEST(VerifierBpfLoop, WellFormedCallback) {
    EXPECT_TRUE(accepted(run(loop_prog("stdw [%r10-8], 0", "mov %r0, 0", "ldxdw %r0, [%r2+0]\nmov %r0, 0"))));
}

TEST(VerifierBpfLoop, CallbackMustReturnAScalar) {
    EXPECT_TRUE(rejected(run(loop_prog("stdw [%r10-8], 0", "mov %r0, 0", "mov %r0, %r2")), 11,
                         "callback must return a scalar"));
}

TEST(VerifierBpfLoop, CallbackMustSetR0) {
    EXPECT_TRUE(rejected(run(loop_prog("stdw [%r10-8], 0", "mov %r0, 0", "mov %r1, 0")), 11,
                         "r0 is not set at exit"));
}

TEST(VerifierBpfLoop, CallbackArgumentMustBeAFunction) {
    EXPECT_TRUE(rejected(run("mov %r1, 10\nmov %r2, 0\nmov %r3, 0\nmov %r4, 0\ncall 181\nmov %r0, 0\nexit"), 4,
                         "must be a function"));
}

TEST(VerifierBpfLoop, CallbackWritesThroughCtxStayInTheCallersFrame) {
    // ctx = fp-8: writing 8 bytes at ctx+8 is at the caller's fp+0.
    EXPECT_TRUE(rejected(run(loop_prog("stdw [%r10-8], 0", "mov %r0, 0", "stdw [%r2+8], 1\nmov %r0, 0")), 10,
                         "outside the 512-byte frame"));
}

TEST(VerifierBpfLoop, CallbackWritesAreSeenAfterTheCall) {
    // fp-8 is 0 before the loop and 1 after any iteration: the dereference of the scalar 0 is live.
    EXPECT_TRUE(rejected(run(loop_prog("stdw [%r10-8], 0", R"(
ldxdw %r1, [%r10-8]
jeq %r1, 0, done
mov %r2, 0
ldxdw %r0, [%r2+0]
done:
mov %r0, 0)",
                                       "stdw [%r2+0], 1\nmov %r0, 0")),
                         11, "a scalar, not a pointer"));
}

TEST(VerifierBpfLoop, CallbackMayRunZeroTimes) {
    // The slot is written only by the callback; bpf_loop may not call it (the kernel rejects the read).
    EXPECT_TRUE(rejected(run(loop_prog("", "ldxdw %r0, [%r10-8]", "stdw [%r2+0], 1\nmov %r0, 0")), 7,
                         "reads uninitialised stack"));
}

// ---------------------------------------------------------------------------------------------
// Loops

// for (i = 0; i != `end`; i += `step`) sum ^= value[i] (a `size`-byte load), over maps[0].
std::string value_loop(std::string_view load, int step, int end) {
    return with_lookup(fmt::format(R"(
jeq %r0, 0, out
mov %r1, 0
loop:
mov %r2, %r0
add %r2, %r1
{}
add %r1, {}
jne %r1, {}, loop
out:
mov %r0, 0
exit
)",
                                   load, step, end));
}

TEST(VerifierLoops, ByteLoopOverTheWholeValue) {
    EXPECT_TRUE(accepted(run(value_loop("ldxb %r3, [%r2+0]", 1, 64), ProgType::unspec, {array_map()})));
}

TEST(VerifierLoops, ByteLoopOnePastTheEnd) {
    EXPECT_TRUE(rejected(run(value_loop("ldxb %r3, [%r2+0]", 1, 65), ProgType::unspec, {array_map()}), 10,
                         "outside the map \"arr\" value of 64 bytes"));
}

TEST(VerifierLoops, ByteStoreLoop) {
    EXPECT_TRUE(accepted(run(value_loop("stb [%r2+0], 0", 1, 64), ProgType::unspec, {array_map()})));
}

TEST(VerifierLoops, HalfWordLoopOverALargeValue) {
    EXPECT_TRUE(accepted(run(value_loop("ldxh %r3, [%r2+0]", 2, 0x800), ProgType::unspec,
                             {array_map(0x800, "big")})));
}

TEST(VerifierLoops, HalfWordLoopReadingPastTheEnd) {
    // Reads [i + 1, i + 3): for i = 0x7fe that is one byte past the end.
    EXPECT_TRUE(rejected(run(value_loop("ldxh %r3, [%r2+1]", 2, 0x800), ProgType::unspec, {array_map(0x800, "big")}),
                         10, "outside the map \"big\""));
}

// ---------------------------------------------------------------------------------------------
// 32-bit jumps

TEST(VerifierJmp32, NegativeConstantIsNotZeroInItsLowHalf) {
    // r3 = -22: the low 32 bits are 0xffffffea, so `jne32 r3, 0` is always taken.
    EXPECT_TRUE(accepted(run(R"(
mov %r3, -22
jne32 %r3, 0, +2
mov %r4, 0
ldxdw %r0, [%r4+0]
mov %r0, 0
exit
)")));
}

TEST(VerifierJmp32, ZeroFallsThrough) {
    EXPECT_TRUE(rejected(run(R"(
mov %r3, 0
jne32 %r3, 0, +2
mov %r4, 0
ldxdw %r0, [%r4+0]
mov %r0, 0
exit
)"),
                         3, "a scalar, not a pointer"));
}

TEST(VerifierJmp32, ComparesOnlyTheLowHalf) {
    // 0x100000000 is 0 in its low half: jeq32 is taken, the 64-bit jeq is not.
    constexpr std::string_view prog = R"(
lddw %r3, 0x100000000
{} %r3, 0, +2
mov %r4, 0
ldxdw %r0, [%r4+0]
mov %r0, 0
exit
)";
    EXPECT_TRUE(accepted(run(fmt::format(prog, "jeq32"))));
    EXPECT_TRUE(rejected(run(fmt::format(prog, "jeq")), 4, "a scalar, not a pointer"));
}

// ---------------------------------------------------------------------------------------------
// More bounds, stack and packet cases

// r2 = value[0] (unknown), `bound` (3 slots, 8-10), then r0 = value + r2 (insn 11) and a 1-byte load (insn 12).
std::string masked_index(std::string_view bound) {
    return with_lookup(fmt::format(R"(
jeq %r0, 0, out
ldxdw %r2, [%r0+0]
{}
add %r0, %r2
ldxb %r0, [%r0+0]
exit
out:
mov %r0, 0
exit
)",
                                   bound));
}

TEST(VerifierBounds, AndMaskBoundsTheIndex) {
    EXPECT_TRUE(accepted(run(masked_index("and %r2, 63\nmov %r3, 0\nmov %r3, 0"), ProgType::unspec, {array_map()})));
}

TEST(VerifierBounds, AndMaskTooWide) {
    // r2 & 127 may be 64..127.
    EXPECT_TRUE(rejected(run(masked_index("and %r2, 127\nmov %r3, 0\nmov %r3, 0"), ProgType::unspec, {array_map()}),
                         12, "outside the map"));
}

TEST(VerifierBounds, RightShiftBoundsTheIndex) {
    EXPECT_TRUE(accepted(run(masked_index("rsh %r2, 58\nmov %r3, 0\nmov %r3, 0"), ProgType::unspec, {array_map()})));
}

TEST(VerifierBounds, SignedChecksOnBothSides) {
    EXPECT_TRUE(accepted(run(masked_index("jsgt %r2, 63, out\njslt %r2, 0, out\nmov %r3, 0"), ProgType::unspec,
                             {array_map()})));
}

TEST(VerifierBounds, SignedUpperCheckAloneAllowsNegativeIndex) {
    // r2 <= 63 (signed) may still be negative: value - 1 is outside.
    // The kernel rejects the addition: "math between map_value pointer and register with unbounded min value".
    EXPECT_TRUE(rejected(run(masked_index("jsgt %r2, 63, out\nmov %r3, 0\nmov %r3, 0"), ProgType::unspec,
                             {array_map()}),
                         11, "unbounded"));
}

TEST(VerifierBounds, ThirtyTwoBitCompareDoesNotBoundTheFullRegister) {
    // w2 <= 63 says nothing about the upper half of the 64-bit r2.
    EXPECT_TRUE(rejected(run(masked_index("jgt32 %r2, 63, out\nmov %r3, 0\nmov %r3, 0"), ProgType::unspec,
                             {array_map()}),
                         11, "unbounded"));
}

TEST(VerifierBounds, ThirtyTwoBitMoveThenCompare) {
    // w2 = w2 clears the upper half; then the 32-bit compare bounds the whole register.
    EXPECT_TRUE(accepted(run(masked_index("mov32 %r2, %r2\njgt32 %r2, 63, out\nmov %r3, 0"), ProgType::unspec,
                             {array_map()})));
}

TEST(VerifierStack, VariableOffsetReadOfInitialisedStack) {
    EXPECT_TRUE(accepted(run(R"(
stdw [%r10-16], 0
stdw [%r10-8], 0
ldxdw %r2, [%r1+0]
and %r2, 8
mov %r3, %r10
add %r3, -16
add %r3, %r2
ldxdw %r0, [%r3+0]
exit
)")));
}

TEST(VerifierStack, VariableOffsetReadOfPartlyInitialisedStack) {
    EXPECT_TRUE(rejected(run(R"(
stdw [%r10-8], 0
ldxdw %r2, [%r1+0]
and %r2, 8
mov %r3, %r10
add %r3, -16
add %r3, %r2
ldxdw %r0, [%r3+0]
exit
)"),
                         6, "uninitialised stack"));
}

TEST(VerifierStack, SpilledMaybeNullPointerIsCheckedWithItsOriginal) {
    // The null check on r0 also applies to the copy spilled at fp-16.
    EXPECT_TRUE(accepted(run(with_lookup(R"(
stxdw [%r10-16], %r0
jeq %r0, 0, out
ldxdw %r6, [%r10-16]
ldxdw %r0, [%r6+0]
exit
out:
mov %r0, 0
exit
)"),
                             ProgType::unspec, {hash_map()})));
}

TEST(VerifierStack, FramePointerIsReadOnly) {
    auto prog = isa::assemble("mov %r10, 0\nmov %r0, 0\nexit");
    ASSERT_TRUE(prog) << prog.error().message();
    auto r = verify("fp", *prog);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument) << r.error().message();
}

TEST(VerifierAtomics, AtomicAddOnMapValue) {
    EXPECT_TRUE(accepted(run(with_lookup("jeq %r0, 0, out\nmov %r1, 1\nlock add [%r0+0], %r1\nout:\nmov %r0, 0\nexit"),
                             ProgType::unspec, {hash_map()})));
}

TEST(VerifierAtomics, AtomicAddOnReadOnlyMap) {
    EXPECT_TRUE(rejected(run("lddw %r1, map_idx_value 0\nmov %r2, 1\nlock add [%r1+0], %r2\nmov %r0, 0\nexit",
                             ProgType::unspec, {rodata_map({0, 0, 0, 0, 0, 0, 0, 0})}),
                         3, "read-only map"));
}

TEST(VerifierAtomics, AtomicOnUninitialisedStack) {
    EXPECT_TRUE(rejected(run("mov %r2, 1\nlock add [%r10-8], %r2\nmov %r0, 0\nexit"), 1, "uninitialised stack"));
}

TEST(VerifierPacket, SchedClsPacketAccess) {
    // __sk_buff: data at 76, data_end at 80.
    constexpr std::string_view prog = R"(
ldxw %r2, [%r1+76]
ldxw %r3, [%r1+80]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
{}
out:
mov %r0, 0
exit
)";
    EXPECT_TRUE(accepted(run(fmt::format(prog, "stb [%r2+13], 1"), ProgType::sched_cls)));
    EXPECT_TRUE(rejected(run(fmt::format(prog, "stb [%r2+14], 1"), ProgType::sched_cls), 5, "only 14 bytes"));
}

TEST(VerifierPacket, SocketFilterHasNoDirectPacketAccess) {
    // The kernel (sk_filter_is_valid_access) rejects loads of __sk_buff data/data_end in socket filters.
    EXPECT_TRUE(rejected(run("ldxw %r2, [%r1+76]\nmov %r0, 0\nexit", ProgType::socket_filter), 0,
                         "cannot access packet data directly"));
}

TEST(VerifierPacket, SocketFilterDataFieldIsNotAPacketPointer) {
    auto o = run("ldxw %r2, [%r1+76]\nldxb %r0, [%r2+0]\nexit", ProgType::socket_filter);
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.code, Errc::verifier_rejected);
}

TEST(VerifierPacket, DataEndFieldIsNotWritable) {
    EXPECT_TRUE(rejected(run("stw [%r1+80], 0\nmov %r0, 0\nexit", ProgType::sched_cls), 0,
                         "write into the packet pointer field"));
}

TEST(VerifierPacket, NarrowLoadOfXdpDataIsRejected) {
    // The kernel (__is_valid_xdp_access) only allows 4-byte loads of xdp_md fields. A 1-byte load of
    // `data` is not a packet pointer; using it as one after the usual check dereferences garbage.
    EXPECT_TRUE(rejected(run(R"(
ldxb %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
ldxb %r0, [%r2+0]
exit
out:
mov %r0, 1
exit
)",
                             ProgType::xdp),
                         0, "context"));
}

TEST(VerifierPacket, WideLoadOfXdpDataIsRejected) {
    // Same with an 8-byte load at offset 0 (data and data_end read together as one value).
    EXPECT_TRUE(rejected(run(R"(
ldxdw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
ldxb %r0, [%r2+0]
exit
out:
mov %r0, 1
exit
)",
                             ProgType::xdp),
                         0, "context"));
}

TEST(VerifierHelpers, RingbufReserveNeedsARingbufMap) {
    // The kernel checks map types against helpers (check_map_func_compatibility): ringbuf_reserve
    // on a hash map is "cannot pass map_type 1 into func bpf_ringbuf_reserve#131".
    EXPECT_TRUE(rejected(run(R"(
lddw %r1, map_idx 0
mov %r2, 8
mov %r3, 0
call 131
jeq %r0, 0, out
mov %r1, %r0
mov %r2, 0
call 132
out:
mov %r0, 0
exit
)",
                             ProgType::unspec, {hash_map()}),
                         4, "ringbuf"));
}

TEST(VerifierBpfLoop, CallbackReturnMustBeZeroOrOne) {
    // The kernel requires bpf_loop callbacks to return 0 or 1 ("At callback return the register R0 has
    // ... should have been in [0, 1]").
    EXPECT_TRUE(rejected(run(loop_prog("stdw [%r10-8], 0", "mov %r0, 0", "mov %r0, 5")), 11, "callback"));
}

TEST(VerifierLoops, LessThanBound) {
    constexpr std::string_view prog = R"(
jeq %r0, 0, out
mov %r1, 0
loop:
mov %r2, %r0
add %r2, %r1
ldxb %r3, [%r2+0]
add %r1, 1
jlt %r1, {}, loop
out:
mov %r0, 0
exit
)";
    EXPECT_TRUE(accepted(run(with_lookup(fmt::format(prog, 64)), ProgType::unspec, {array_map()})));
    EXPECT_TRUE(rejected(run(with_lookup(fmt::format(prog, 65)), ProgType::unspec, {array_map()}), 10,
                         "outside the map"));
}

TEST(VerifierLoops, ThirtyTwoBitCounter) {
    // As clang writes it: w1 += 1; if w1 != 64 goto loop.
    EXPECT_TRUE(accepted(run(with_lookup(R"(
jeq %r0, 0, out
mov32 %r1, 0
loop:
mov %r2, %r0
add %r2, %r1
ldxb %r3, [%r2+0]
add32 %r1, 1
jne32 %r1, 64, loop
out:
mov %r0, 0
exit
)"),
                             ProgType::unspec, {array_map()})));
}

// ---------------------------------------------------------------------------------------------
// Paths, pruning, and pointers that outlive what they point to

TEST(VerifierPaths, PointerOnOnePathScalarOnTheOther) {
    // r2 is a stack pointer on one side and the scalar 0 on the other; the join must keep both.
    constexpr std::string_view prog = R"(
stdw [%r10-8], 0
ldxw %r3, [%r1+0]
jeq %r3, 0, ptr
mov %r2, 0
ja join
ptr:
mov %r2, %r10
add %r2, -8
join:
ldxdw %r0, [%r2+0]
exit
)";
    EXPECT_TRUE(rejected(run(prog), 7, "a scalar, not a pointer"));
}

TEST(VerifierPaths, StackInitialisedOnOnePathOnly) {
    // Either side may be explored first; the read after the join is unsafe either way.
    constexpr std::string_view init_on_taken = R"(
ldxw %r3, [%r1+0]
jeq %r3, 0, init
mov %r4, 1
ja join
init:
stdw [%r10-8], 1
mov %r4, 2
join:
ldxdw %r0, [%r10-8]
exit
)";
    constexpr std::string_view init_on_fall = R"(
ldxw %r3, [%r1+0]
jeq %r3, 0, skip
stdw [%r10-8], 1
mov %r4, 2
ja join
skip:
mov %r4, 1
join:
ldxdw %r0, [%r10-8]
exit
)";
    EXPECT_TRUE(rejected(run(init_on_taken), 6, "reads uninitialised stack"));
    EXPECT_TRUE(rejected(run(init_on_fall), 6, "reads uninitialised stack"));
}

TEST(VerifierPaths, SpilledPacketPointerIsInvalidAfterAdjustHead) {
    EXPECT_TRUE(rejected(run(R"(
ldxw %r6, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r6
add %r4, 14
jgt %r4, %r3, out
stxdw [%r10-8], %r6
mov %r2, 0
call 44
ldxdw %r6, [%r10-8]
ldxb %r0, [%r6+0]
exit
out:
mov %r0, 1
exit
)",
                             ProgType::xdp),
                         9, "invalid memory access through r6"));
}

TEST(VerifierPaths, SpilledRingbufRecordIsInvalidAfterSubmit) {
    EXPECT_TRUE(rejected(run(ringbuf_prog(R"(
stxdw [%r10-8], %r0
mov %r1, %r0
mov %r2, 0
call 132
ldxdw %r6, [%r10-8]
stdw [%r6+0], 1
)"),
                             ProgType::unspec, {ringbuf_map()}),
                         11, "invalid memory access through r6"));
}

// Rejected either where the kernel rejects (storing the callee's stack pointer into the caller's
// frame, `store_insn`) or, at the latest, where the dangling pointer is dereferenced (`deref_insn`).
::testing::AssertionResult rejected_at_either(const Outcome& o, std::size_t store_insn, std::size_t deref_insn) {
    if (rejected(o, store_insn, "")) return ::testing::AssertionSuccess();
    return rejected(o, deref_insn, "invalid memory access through r2");
}

TEST(VerifierPaths, CalleeStackPointerLeakedIntoCallerFrame) {
    EXPECT_TRUE(rejected_at_either(run(R"(
stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
call local f
ldxdw %r2, [%r10-8]
ldxdw %r0, [%r2+0]
exit
f:
stdw [%r10-8], 0
mov %r3, %r10
add %r3, -8
stxdw [%r1+0], %r3
mov %r0, 0
exit
)"),
                                   10, 5));
}

TEST(VerifierPaths, CallbackStackPointerLeakedIntoCallerFrame) {
    EXPECT_TRUE(rejected_at_either(run(loop_prog("stdw [%r10-8], 0", R"(
ldxdw %r2, [%r10-8]
ldxdw %r0, [%r2+0]
mov %r0, 0)",
                                                 "stdw [%r10-8], 0\nmov %r3, %r10\nadd %r3, -8\nstxdw [%r2+0], %r3\n"
                                                 "mov %r0, 0")),
                                   15, 9));
}

// ---------------------------------------------------------------------------------------------
// API: invalid programs, the log, determinism

TEST(VerifierApi, InvalidProgramIsInvalidArgument) {
    auto prog = isa::assemble("mov %r0, 0\nja +5\nexit");
    ASSERT_TRUE(prog) << prog.error().message();
    VerifyReport report;
    report.accepted = true;
    auto r = verify("bad", *prog, {}, &report);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument) << r.error().message();
    EXPECT_NE(r.error().message().find("verify \"bad\""), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("insn 1"), std::string::npos) << r.error().message();
    EXPECT_FALSE(report.accepted);
    EXPECT_FALSE(report.reason.empty());
}

TEST(VerifierApi, ProgramWithoutFinalExitIsInvalidArgument) {
    auto prog = isa::assemble("mov %r0, 0");
    ASSERT_TRUE(prog) << prog.error().message();
    auto r = verify("bad", *prog);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument) << r.error().message();
}

TEST(VerifierApi, RejectionMessageNamesProgramInstructionAndReason) {
    auto o = run("mov %r0, 0\nmov %r0, %r3\nexit");
    ASSERT_FALSE(o.ok);
    EXPECT_EQ(o.message, "verify \"test\": insn 1 (mov %r0, %r3): r3 is read before it is written");
    EXPECT_EQ(o.report.disassembly, "mov %r0, %r3");
    EXPECT_EQ(o.report.reason, "r3 is read before it is written");
}

TEST(VerifierApi, LogReceivesOneLinePerInstruction) {
    std::vector<std::string> lines;
    VerifyOptions options;
    options.log = [&](std::string_view line) { lines.emplace_back(line); };
    auto o = run("mov %r0, 7\nadd %r0, 1\nexit", ProgType::unspec, {}, options);
    ASSERT_TRUE(accepted(o));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_NE(lines[0].find("mov %r0, 7"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("add %r0, 1"), std::string::npos) << lines[1];
    EXPECT_NE(lines[2].find("exit"), std::string::npos) << lines[2];
}

TEST(VerifierApi, LogNamesTheRejection) {
    std::vector<std::string> lines;
    VerifyOptions options;
    options.log = [&](std::string_view line) { lines.emplace_back(line); };
    auto o = run("ldxdw %r0, [%r10-8]\nexit", ProgType::unspec, {}, options);
    ASSERT_TRUE(rejected(o, 0, "uninitialised stack"));
    ASSERT_FALSE(lines.empty());
    EXPECT_NE(lines.front().find("ldxdw %r0, [%r10-8]"), std::string::npos) << lines.front();
    EXPECT_NE(lines.back().find("uninitialised stack"), std::string::npos) << lines.back();
}

TEST(VerifierApi, VerificationIsDeterministic) {
    const std::string progs[] = {
        value_loop("ldxb %r3, [%r2+0]", 1, 64),
        value_loop("ldxb %r3, [%r2+0]", 1, 65),
        checked_packet("ldxb %r0, [%r2+14]"),
    };
    const ProgType types[] = {ProgType::unspec, ProgType::unspec, ProgType::xdp};
    for (std::size_t i = 0; i < std::size(progs); ++i) {
        auto a = run(progs[i], types[i], {array_map()});
        auto b = run(progs[i], types[i], {array_map()});
        EXPECT_EQ(a.ok, b.ok) << i;
        EXPECT_EQ(a.message, b.message) << i;
        EXPECT_EQ(a.report.accepted, b.report.accepted) << i;
        EXPECT_EQ(a.report.insn, b.report.insn) << i;
        EXPECT_EQ(a.report.disassembly, b.report.disassembly) << i;
        EXPECT_EQ(a.report.reason, b.report.reason) << i;
        EXPECT_EQ(a.report.visits, b.report.visits) << i;
        EXPECT_EQ(a.report.states, b.report.states) << i;
        EXPECT_GT(a.report.visits, 0u) << i;
    }
}

}  // namespace
}  // namespace ebpfrt

namespace ebpfrt {
namespace {

// VerifyReport::proved: which memory accesses an engine's checked mode may leave unchecked.
TEST(VerifierProved, StackAndMapValueAccessesAreProvedContextAndPacketAreNot) {
    auto o = run(R"(
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
stdw [%r10-8], 7
ldxdw %r4, [%r10-8]
stw [%r10-12], 0
mov %r2, %r10
add %r2, -12
lddw %r1, map_idx 0
call 1
jeq %r0, 0, +1
ldxdw %r5, [%r0+0]
mov %r0, 0
exit
)",
                 ProgType::xdp, {hash_map()});
    ASSERT_TRUE(accepted(o));
    ASSERT_EQ(o.report.proved.size(), 14u);  // lddw takes two slots
    EXPECT_FALSE(o.report.proved[0]) << "context load";
    EXPECT_FALSE(o.report.proved[1]) << "context load";
    EXPECT_TRUE(o.report.proved[2]) << "stack store";
    EXPECT_TRUE(o.report.proved[3]) << "stack load";
    EXPECT_TRUE(o.report.proved[4]) << "stack store";
    EXPECT_FALSE(o.report.proved[5]) << "not a memory access";
    EXPECT_TRUE(o.report.proved[11]) << "map value load after the null check";
}

TEST(VerifierProved, AnAccessThatIsAContextAccessOnSomePathIsNotProved) {
    // r2 is the stack on one path and the (host-defined) context on the other.
    auto o = run(R"(
mov %r2, %r10
add %r2, -8
stdw [%r10-8], 0
ldxw %r3, [%r1+0]
jeq %r3, 0, +1
mov %r2, %r1
ldxw %r0, [%r2+0]
exit
)");
    ASSERT_TRUE(accepted(o));
    EXPECT_TRUE(o.report.proved[2]);
    EXPECT_FALSE(o.report.proved[6]);
}

TEST(VerifierProved, RejectedProgramsProveNothing) {
    auto o = run("ldxdw %r0, [%r10-8]\nexit");
    EXPECT_TRUE(o.report.proved.empty());
    EXPECT_FALSE(o.report.all_proved);
}

// VerifyReport::all_proved: nothing left for checked mode (the runtime then runs the program unchecked).
TEST(VerifierProved, AllProvedOnlyWithoutContextPacketOrStringMemory) {
    const char* map_only = R"(
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_idx 0
call 1
jeq %r0, 0, +2
ldxdw %r3, [%r0+0]
stxdw [%r0+0], %r3
mov %r0, 0
exit
)";
    auto all = run(map_only, ProgType::xdp, {hash_map()});
    ASSERT_TRUE(accepted(all));
    EXPECT_TRUE(all.report.all_proved);
    EXPECT_TRUE(run(map_only, ProgType::unspec, {hash_map()}).report.all_proved);

    // One context load: not everything is proved.
    auto ctx_load = run(std::string("ldxw %r6, [%r1+0]\n") + map_only, ProgType::xdp, {hash_map()});
    ASSERT_TRUE(accepted(ctx_load));
    EXPECT_FALSE(ctx_load.report.all_proved);

    // A helper reading a host-defined context as its value argument: bounded only at run time.
    auto ctx_arg = run(R"(
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
mov %r3, %r1
mov %r4, 0
lddw %r1, map_idx 0
call 2
mov %r0, 0
exit
)",
                       ProgType::unspec, {hash_map()});
    ASSERT_TRUE(accepted(ctx_arg));
    EXPECT_FALSE(ctx_arg.report.all_proved);
    // The same with a stack value: proved.
    auto stack_arg = run(R"(
stw [%r10-4], 0
stdw [%r10-16], 0
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, 0
lddw %r1, map_idx 0
call 2
mov %r0, 0
exit
)",
                         ProgType::unspec, {hash_map()});
    ASSERT_TRUE(accepted(stack_arg));
    EXPECT_TRUE(stack_arg.report.all_proved);

    // A string argument (bpf_strncmp's s2): only its first byte is proved.
    auto cstr = run(R"(
stdw [%r10-8], 0
stdw [%r10-16], 0
mov %r1, %r10
add %r1, -8
mov %r2, 8
mov %r3, %r10
add %r3, -16
call 182
mov %r0, 0
exit
)",
                    ProgType::xdp);
    ASSERT_TRUE(accepted(cstr));
    EXPECT_FALSE(cstr.report.all_proved);
}

}  // namespace
}  // namespace ebpfrt

namespace ebpfrt {
namespace {

TEST(VerifierEntry, HostDefinedContextsGetTheirSizeInR2) {
    // ebpfrt's engines pass r1 = context, r2 = its size; kernel program types get only r1.
    EXPECT_TRUE(accepted(run("mov %r0, %r2\nexit", ProgType::unspec)));
    EXPECT_TRUE(rejected(run("mov %r0, %r2\nexit", ProgType::xdp), 0, "r2 is read before it is written"));
}

}  // namespace
}  // namespace ebpfrt
