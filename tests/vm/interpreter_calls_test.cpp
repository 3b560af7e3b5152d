// Interpreter: bpf-to-bpf calls and frames, helper calls (by id, callx, kfunc), helper argument
// checking, unwind, and the Invocation interface (grant/allowed, call_function, tail_call).

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "vm_test_util.hpp"

namespace ebpfrt {
namespace {

using namespace ebpfrt::test;
using u64 = std::uint64_t;

// ---------------------------------------------------------------------------------------------
// Local calls and frames

TEST(InterpreterLocalCall, ArgumentsResultAndCalleeSavedRegisters) {
    const char* text = R"(lddw %r1, 0x1000000000000001
mov %r2, 2
mov %r3, 3
mov %r4, 4
mov %r5, 5
mov %r6, 6
mov %r7, 7
mov %r8, 8
mov %r9, 9
call local f
jne %r6, 6, bad
jne %r7, 7, bad
jne %r8, 8, bad
jne %r9, 9, bad
exit
bad:
mov %r0, -1
exit
f:
mov %r0, %r1
add %r0, %r2
add %r0, %r3
add %r0, %r4
add %r0, %r5
mov %r6, 0
mov %r7, 0
mov %r8, 0
mov %r9, 0
exit)";
    EXPECT_TRUE(r0_is(run_asm(text), 0x1000000000000001ull + 2 + 3 + 4 + 5));
}

TEST(InterpreterLocalCall, EachFrameHasItsOwnStack) {
    // the callee fills its whole 512 bytes at both ends; the caller's slots survive
    const char* text = R"(stdw [%r10-8], 77
stdw [%r10-512], 78
call local f
ldxdw %r1, [%r10-8]
ldxdw %r2, [%r10-512]
jne %r1, 77, bad
jne %r2, 78, bad
exit
bad:
mov %r0, -1
exit
f:
stdw [%r10-8], 99
stdw [%r10-512], 98
ldxdw %r0, [%r10-8]
ldxdw %r1, [%r10-512]
add %r0, %r1
exit)";
    EXPECT_TRUE(r0_is(run_asm(text), 99 + 98));
}

TEST(InterpreterLocalCall, CalleeGetsADifferentFramePointer) {
    const char* text = R"(call local f
mov %r1, %r10
sub %r1, %r0
mov %r0, 0
jeq %r1, 0, +1
mov %r0, 1
exit
f:
mov %r0, %r10
exit)";
    EXPECT_TRUE(r0_is(run_asm(text), 1));
}

TEST(InterpreterLocalCall, CalleeMayWriteThroughAPointerToTheCallersStack) {
    const char* text = R"(stdw [%r10-8], 0
mov %r1, %r10
add %r1, -8
call local f
ldxdw %r0, [%r10-8]
exit
f:
stdw [%r1+0], 1234
exit)";
    EXPECT_TRUE(r0_is(run_asm(text), 1234));
}

// f(n) = n == 0 ? 0 : f(n - 1) + n, keeping n in its own frame across the call.
std::string recursion(int n) {
    return fmt::format(R"(mov %r1, {}
call local f
exit
f:
jne %r1, 0, +2
mov %r0, 0
exit
stxdw [%r10-8], %r1
stxdw [%r10-512], %r1
sub %r1, 1
call local f
ldxdw %r2, [%r10-8]
ldxdw %r3, [%r10-512]
jne %r2, %r3, +2
add %r0, %r2
exit
mov %r0, -1
exit)",
                       n);
}

TEST(InterpreterLocalCall, EightFramesWork) {
    // main + f(6) ... f(0) = 8 frames
    EXPECT_TRUE(r0_is(run_asm(recursion(6)), 21));
    EXPECT_TRUE(r0_is(run_asm(recursion(3)), 6));
}

TEST(InterpreterLocalCall, NineFramesFailAtRunTime) {
    auto prog = assemble_or_fail(recursion(7));  // main + f(7) ... f(0) = 9 frames
    auto vm = Interpreter::create(prog, HelperTable{}, {.checked = true});
    ASSERT_TRUE(vm) << "the depth is only known at run time: " << vm.error().message();
    auto r = vm->run({});
    ASSERT_FALSE(r) << "r0 = " << *r;
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message(), "insn "));
    // and the interpreter stays usable
    auto ok = Interpreter::create(assemble_or_fail(recursion(6)), HelperTable{}, {.checked = true});
    ASSERT_TRUE(ok);
    EXPECT_TRUE(r0_is(ok->run({}), 21));
}

TEST(InterpreterLocalCall, CalleeStackBoundsAreChecked) {
    const char* below = R"(call local f
exit
f:
mov %r0, 0
ldxdw %r0, [%r10-520]
exit)";
    EXPECT_TRUE(faults_at(run_checked(below), 3));
}

// ---------------------------------------------------------------------------------------------
// Helpers

struct Recorded {
    std::array<u64, 5> args{};
    int calls = 0;
} g_rec;

u64 weighted(u64 a, u64 b, u64 c, u64 d, u64 e) {
    g_rec.args = {a, b, c, d, e};
    ++g_rec.calls;
    return a + 2 * b + 3 * c + 4 * d + 5 * e;
}

u64 twice(u64 a, u64, u64, u64, u64) { return 2 * a; }
u64 identity(u64 a, u64, u64, u64, u64) { return a; }

HelperTable basic_helpers() {
    HelperTable t;
    EXPECT_TRUE(t.add(7, {.name = "weighted", .fn = weighted}));
    EXPECT_TRUE(t.add(9, {.name = "unwind", .fn = identity, .unwind_on_zero = true}));
    return t;
}

TEST(InterpreterHelper, ArgumentsAndResult) {
    g_rec = {};
    const char* text = R"(lddw %r1, 0x1111111111111111
mov %r2, 2
mov %r3, 3
mov %r4, 4
mov %r5, -5
mov %r6, 66
mov %r7, 77
mov %r8, 88
mov %r9, 99
call 7
jne %r6, 66, bad
jne %r7, 77, bad
jne %r8, 88, bad
jne %r9, 99, bad
exit
bad:
mov %r0, -1
exit)";
    const u64 want = 0x1111111111111111ull + 2 * 2 + 3 * 3 + 4 * 4 + 5 * static_cast<u64>(-5);
    EXPECT_TRUE(r0_is(run_asm(text, {}, basic_helpers()), want));
    EXPECT_EQ(g_rec.calls, 2);  // checked and unchecked run
    EXPECT_EQ(g_rec.args, (std::array<u64, 5>{0x1111111111111111ull, 2, 3, 4, static_cast<u64>(-5)}));
}

TEST(InterpreterHelper, UnknownHelperIsAnErrorAtCreate) {
    auto prog = assemble_or_fail("mov %r0, 0\ncall 99\nexit");
    auto vm = Interpreter::create(prog, basic_helpers());
    ASSERT_FALSE(vm);
    EXPECT_EQ(vm.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(vm.error().message(), "insn 1"));
}

TEST(InterpreterHelper, UnwindOnZeroEndsTheProgram) {
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0\ncall 9\nmov %r0, 42\nexit", {}, basic_helpers()), 0));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 3\ncall 9\nmov %r0, 42\nexit", {}, basic_helpers()), 42));
    // from a nested frame too
    const char* nested = R"(call local f
mov %r0, 42
exit
f:
mov %r1, 0
call 9
mov %r0, 7
exit)";
    EXPECT_TRUE(r0_is(run_asm(nested, {}, basic_helpers()), 0));
    // a helper without the flag returning 0 does not end anything
    HelperTable t;
    ASSERT_TRUE(t.add(9, {.name = "identity", .fn = identity}));
    EXPECT_TRUE(r0_is(run_asm("mov %r1, 0\ncall 9\nmov %r0, 42\nexit", {}, t), 42));
}

TEST(InterpreterHelper, Callx) {
    const char* text = R"(mov %r1, 1
mov %r2, 10
mov %r3, 100
mov %r4, 1000
mov %r5, 10000
mov %r6, 7
call %r6
exit)";
    EXPECT_TRUE(r0_is(run_asm(text, {}, basic_helpers()), 1 + 20 + 300 + 4000 + 50000));
    // the conformance suite's form: the id register is also r2
    EXPECT_TRUE(r0_is(run_asm("mov %r1, -1\nmov %r2, 9\ncall %r2\nmov %r0, 2\nexit", {}, basic_helpers()), 2));
}

TEST(InterpreterHelper, CallxWithAnUnknownIdIsARuntimeError) {
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\nmov %r6, 12345\ncall %r6\nexit", {}, basic_helpers()), 2));
}

TEST(InterpreterHelper, Kfunc) {
    HelperTable t;
    ASSERT_TRUE(t.add_kfunc(1234, {.name = "twice", .fn = twice}));
    auto prog = assemble_or_fail("mov %r1, 21\ncall 0\nexit");
    ASSERT_EQ(prog.size(), 3u);
    prog[1] = mk(0x85, 0, isa::call_kfunc, 0, 1234);
    EXPECT_TRUE(r0_is(run_prog(prog, {}, t), 42));

    prog[1].imm = 4321;
    auto missing = Interpreter::create(prog, t);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(missing.error().message(), "insn 1"));
}

// --- pointer arguments

int g_fill_calls = 0;
u64 fill(u64 p, u64 n, u64, u64, u64) {
    ++g_fill_calls;
    std::memset(reinterpret_cast<void*>(p), 0xab, n);
    return n;
}
u64 sum_bytes(u64 p, u64 n, u64, u64, u64) {
    u64 s = 0;
    for (u64 i = 0; i < n; ++i) s += reinterpret_cast<const unsigned char*>(p)[i];
    return s;
}
u64 length(u64 p, u64, u64, u64, u64) { return std::strlen(reinterpret_cast<const char*>(p)); }

HelperTable pointer_helpers() {
    HelperTable t;
    const Arg none = Arg::none;
    EXPECT_TRUE(t.add(20, {.name = "fill", .fn = fill, .args = {Arg::mem, Arg::size, none, none, none}}));
    EXPECT_TRUE(t.add(21, {.name = "sum", .fn = sum_bytes, .args = {Arg::mem_ro, Arg::size, none, none, none}}));
    EXPECT_TRUE(t.add(22, {.name = "length", .fn = length, .args = {Arg::cstr, none, none, none, none}}));
    return t;
}

TEST(InterpreterHelperArgs, MemoryInsideTheStackOrContextIsPassed) {
    const char* stack = R"(mov %r1, %r10
add %r1, -16
mov %r2, 16
call 20
ldxdw %r0, [%r10-8]
exit)";
    EXPECT_TRUE(r0_is(run_asm(stack, {}, pointer_helpers()), 0xababababababababull));
    auto ctx = std::vector<std::byte>(8);
    EXPECT_TRUE(r0_is(run_asm("mov %r2, 8\ncall 20\nexit", ctx, pointer_helpers()), 8));
    EXPECT_EQ(ctx, std::vector<std::byte>(8, std::byte{0xab}));
    auto ro = bytes_of({1, 2, 3, 4});
    EXPECT_TRUE(r0_is(run_asm("mov %r2, 4\ncall 21\nexit", ro, pointer_helpers()), 10));
    auto str = bytes_of({'h', 'e', 'l', 'l', 'o', 0, 'x', 'y'});
    EXPECT_TRUE(r0_is(run_asm("call 22\nexit", str, pointer_helpers()), 5));
}

TEST(InterpreterHelperArgs, MemoryOutsideAllowedRegionsIsRejected) {
    g_fill_calls = 0;
    const char* past_top = R"(mov %r1, %r10
add %r1, -8
mov %r2, 16
call 20
exit)";
    EXPECT_TRUE(faults_at(run_checked(past_top, {}, pointer_helpers()), 3));
    auto ctx = std::vector<std::byte>(8);
    EXPECT_TRUE(faults_at(run_checked("mov %r2, 9\ncall 20\nexit", ctx, pointer_helpers()), 1));
    EXPECT_TRUE(faults_at(run_checked("mov %r1, 4096\nmov %r2, 1\ncall 20\nexit", {}, pointer_helpers()), 2));
    EXPECT_TRUE(faults_at(run_checked("mov %r2, 9\ncall 21\nexit", ctx, pointer_helpers()), 1));
    EXPECT_EQ(g_fill_calls, 0) << "the helper must not be called with a bad pointer";
    EXPECT_EQ(ctx, std::vector<std::byte>(8));
}

TEST(InterpreterHelperArgs, UnterminatedStringIsRejected) {
    auto str = bytes_of({'h', 'e', 'l', 'l', 'o'});
    EXPECT_TRUE(faults_at(run_checked("mov %r0, 0\ncall 22\nexit", str, pointer_helpers()), 1));
}

// --- Invocation

std::array<std::byte, 64> g_granted{};
bool g_do_grant = true;
u64 give(u64, u64, u64, u64, u64) {
    if (g_do_grant) Invocation::current()->grant(g_granted);
    return reinterpret_cast<u64>(g_granted.data());
}

TEST(InterpreterInvocation, GrantedMemoryIsAccessible) {
    HelperTable t;
    ASSERT_TRUE(t.add(21, {.name = "give", .fn = give}));
    const u64 v = 0x0102030405060708ull;
    std::memcpy(g_granted.data() + 8, &v, 8);
    g_do_grant = true;
    EXPECT_TRUE(r0_is(run_asm("call 21\nldxdw %r0, [%r0+8]\nexit", {}, t), v));
    EXPECT_TRUE(r0_is(run_asm("call 21\nstdw [%r0+56], 5\nldxdw %r0, [%r0+56]\nexit", {}, t), 5));
    EXPECT_TRUE(faults_at(run_checked("call 21\nldxb %r0, [%r0+64]\nexit", {}, t), 1));

    // a grant lasts for one run only
    auto vm = Interpreter::create(assemble_or_fail("call 21\nldxdw %r0, [%r0+8]\nexit"), t);
    ASSERT_TRUE(vm);
    EXPECT_TRUE(r0_is(vm->run({}), v));
    g_do_grant = false;
    EXPECT_TRUE(faults_at(vm->run({}), 1));
    g_do_grant = true;
}

struct Probe {
    bool called = false;
    bool checked = false;
    void* env = nullptr;
} g_probe;
u64 probe(u64 p, u64 n, u64, u64, u64) {
    Invocation* inv = Invocation::current();
    if (inv == nullptr) return 99;
    g_probe.called = true;
    g_probe.checked = inv->checked();
    g_probe.env = inv->env();
    return inv->allowed(reinterpret_cast<const void*>(p), n) ? 1 : 0;
}

TEST(InterpreterInvocation, CurrentAllowedCheckedEnv) {
    EXPECT_EQ(Invocation::current(), nullptr);
    HelperTable t;
    ASSERT_TRUE(t.add(23, {.name = "probe", .fn = probe}));
    int marker = 0;
    static std::uint64_t host_secret = 0;
    auto ctx = std::vector<std::byte>(16);

    auto run_mode = [&](const std::string& text, bool checked) -> Result<u64> {
        auto vm = Interpreter::create(assemble_or_fail(text), t, {.checked = checked, .env = &marker});
        if (!vm) return vm.error();
        return vm->run(ctx);
    };
    g_probe = {};
    EXPECT_TRUE(r0_is(run_mode("mov %r2, 16\ncall 23\nexit", true), 1));
    EXPECT_TRUE(g_probe.called);
    EXPECT_TRUE(g_probe.checked);
    EXPECT_EQ(g_probe.env, &marker);
    EXPECT_TRUE(r0_is(run_mode("mov %r2, 17\ncall 23\nexit", true), 0));
    EXPECT_TRUE(r0_is(run_mode("add %r1, 8\nmov %r2, 8\ncall 23\nexit", true), 1));
    EXPECT_TRUE(r0_is(run_mode("add %r1, -1\nmov %r2, 2\ncall 23\nexit", true), 0));
    EXPECT_TRUE(r0_is(run_mode("mov %r1, %r10\nadd %r1, -8\nmov %r2, 8\ncall 23\nexit", true), 1));
    EXPECT_TRUE(r0_is(run_mode("mov %r1, %r10\nadd %r1, -512\nmov %r2, 512\ncall 23\nexit", true), 1));
    EXPECT_TRUE(r0_is(run_mode("mov %r1, %r10\nadd %r1, -8\nmov %r2, 9\ncall 23\nexit", true), 0));
    const std::string host = fmt::format("lddw %r1, 0x{:x}\nmov %r2, 8\ncall 23\nexit",
                                         reinterpret_cast<u64>(&host_secret));
    EXPECT_TRUE(r0_is(run_mode(host, true), 0));

    g_probe = {};
    EXPECT_TRUE(r0_is(run_mode(host, false), 1)) << "unchecked: everything is allowed";
    EXPECT_TRUE(g_probe.called);
    EXPECT_FALSE(g_probe.checked);
    EXPECT_EQ(Invocation::current(), nullptr);
}

// --- call_function (bpf_loop style)

std::string g_loop_error;
u64 loop(u64 n, u64 fn, u64 ctx, u64, u64) {
    Invocation* inv = Invocation::current();
    if (inv == nullptr) return 0xdead;
    u64 sum = 0;
    for (u64 i = 0; i < n; ++i) {
        auto r = inv->call_function(fn, {i, ctx, 0, 0, 0});
        if (!r) {
            g_loop_error = r.error().message();
            return 0xbad;
        }
        sum += *r;
    }
    return sum;
}

TEST(InterpreterInvocation, CallFunctionRunsACallback) {
    HelperTable t;
    ASSERT_TRUE(t.add(30, {.name = "loop", .fn = loop}));
    auto prog = assemble_or_fail(R"(lddw %r2, 0
mov %r1, 5
mov %r3, 3
mov %r6, 1234
call 30
add %r0, %r6
exit
cb:
mov %r0, %r1
mul %r0, %r1
add %r0, %r2
stxdw [%r10-8], %r0
ldxdw %r0, [%r10-8]
mov %r6, 0
exit)");
    ASSERT_EQ(prog.size(), 15u);
    ASSERT_EQ(prog[8], mk(0xbf, 0, 1));
    // lddw src=4 (pseudo_func): imm is the callee's offset from the next slot, as in the kernel
    prog[0].src = isa::pseudo_func;
    prog[0].imm = 8 - 0 - 1;
    // sum over i < 5 of i*i + 3, plus r6 which the helper call preserves
    EXPECT_TRUE(r0_is(run_prog(prog, {}, t), (0 + 1 + 4 + 9 + 16) + 5 * 3 + 1234));
}

TEST(InterpreterInvocation, CallFunctionRejectsWhatIsNotAFunction) {
    HelperTable t;
    ASSERT_TRUE(t.add(30, {.name = "loop", .fn = loop}));
    g_loop_error.clear();
    EXPECT_TRUE(r0_is(run_checked("mov %r1, 1\nmov %r2, 12345\nmov %r3, 0\ncall 30\nexit", {}, t), 0xbad));
    EXPECT_FALSE(g_loop_error.empty());
}

TEST(InterpreterInvocation, CallFunctionReportsTheCalleesErrors) {
    HelperTable t;
    ASSERT_TRUE(t.add(30, {.name = "loop", .fn = loop}));
    auto prog = assemble_or_fail("lddw %r2, 0\nmov %r1, 1\nmov %r3, 0\ncall 30\nexit\nja -1");
    ASSERT_EQ(prog.size(), 7u);
    prog[0].src = isa::pseudo_func;
    prog[0].imm = 6 - 0 - 1;  // the endless `ja -1`
    auto vm = Interpreter::create(prog, t, {.insn_budget = 1000});
    ASSERT_TRUE(vm) << vm.error().message();
    g_loop_error.clear();
    auto r = vm->run({});
    EXPECT_TRUE(contains(g_loop_error, "budget")) << "the callback's budget error reaches the helper";
    if (r) {
        EXPECT_EQ(*r, 0xbadu);
    }
}

// --- tail calls

std::vector<const Interpreter*> g_targets;
int g_tail_ok = 0, g_tail_refused = 0;
u64 tail(u64, u64 index, u64, u64, u64) {
    Invocation* inv = Invocation::current();
    if (inv == nullptr || index >= g_targets.size()) return static_cast<u64>(-2);
    if (inv->tail_call(*g_targets[index])) {
        ++g_tail_ok;
        return 0;
    }
    ++g_tail_refused;
    return static_cast<u64>(-1);
}

HelperTable tail_helpers() {
    HelperTable t;
    EXPECT_TRUE(t.add(40, {.name = "tail_call", .fn = tail}));
    return t;
}

TEST(InterpreterTailCall, ContinuesInTheOtherProgram) {
    auto other = Interpreter::create(
        assemble_or_fail("stdw [%r10-512], 1\nldxb %r0, [%r1+0]\nadd %r0, 1000\nexit"), tail_helpers());
    ASSERT_TRUE(other) << other.error().message();
    auto first = Interpreter::create(assemble_or_fail("mov %r2, 0\ncall 40\nmov %r0, 111\nexit"), tail_helpers());
    ASSERT_TRUE(first) << first.error().message();
    g_targets = {&*other};
    g_tail_ok = g_tail_refused = 0;
    auto ctx = bytes_of({7});
    EXPECT_TRUE(r0_is(first->run(ctx), 1007));
    EXPECT_EQ(g_tail_ok, 1);
    g_targets.clear();
}

TEST(InterpreterTailCall, ChainStopsAfter33) {
    // Each run of the program increments a counter in the context and tail-calls itself; the 34th
    // execution is refused and falls through, returning the counter.
    auto self = Interpreter::create(assemble_or_fail(R"(ldxdw %r2, [%r1+0]
add %r2, 1
stxdw [%r1+0], %r2
mov %r6, %r1
mov %r2, 0
call 40
ldxdw %r0, [%r6+0]
exit)"),
                                    tail_helpers());
    ASSERT_TRUE(self) << self.error().message();
    g_targets = {&*self};
    for (int round = 0; round < 2; ++round) {  // the count starts again with every run
        g_tail_ok = g_tail_refused = 0;
        auto ctx = std::vector<std::byte>(8);
        EXPECT_TRUE(r0_is(self->run(ctx), 34)) << "round " << round;
        EXPECT_EQ(g_tail_ok, 33);
        EXPECT_EQ(g_tail_refused, 1);
    }
    g_targets.clear();
}

TEST(InterpreterTailCall, RefusedTailCallReturnsToTheCaller) {
    // without a context; the program keeps going after the refused call
    auto self = Interpreter::create(assemble_or_fail("mov %r2, 0\ncall 40\nmov %r6, %r0\nmov %r0, 5\nexit"),
                                    tail_helpers());
    ASSERT_TRUE(self);
    g_targets = {&*self};
    g_tail_ok = g_tail_refused = 0;
    EXPECT_TRUE(r0_is(self->run({}), 5));
    EXPECT_EQ(g_tail_ok, 33);
    EXPECT_EQ(g_tail_refused, 1);
    g_targets.clear();
}

}  // namespace
}  // namespace ebpfrt
