// The JIT engine: the conformance suite on compiled code (checked and unchecked), the same results and
// memory as the interpreter, and the run-time behaviour generated code shares with the interpreter
// (faults naming the instruction, budget, call depth, helpers, callbacks, unwinding, callx).

#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/vm.hpp>

#include <array>
#include <cctype>
#include <string>
#include <thread>

#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli/conformance_helpers.hpp"
#include "../conformance/suite.hpp"

namespace ebpfrt {
namespace {

std::vector<Insn> asm_or_die(std::string_view text) {
    auto p = isa::assemble(text);
    if (!p) throw std::runtime_error(p.error().message());
    return *p;
}

// --- the conformance suite, interpreter and JIT side by side ---

constexpr const char* missing_suite = "suite_not_found";

std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& path : test::list_files(test::conformance_dir(), ".json")) names.push_back(path.stem().string());
    if (names.empty()) names.emplace_back(missing_suite);
    return names;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string s = info.param;
    for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

class JitConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(JitConformance, SameAsExpectedAndAsTheInterpreter) {
    if (GetParam() == missing_suite) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    const auto path = test::conformance_dir() / (GetParam() + ".json");
    std::string why;
    auto c = test::load_case(path, why);
    ASSERT_TRUE(c) << why;
    auto prog = isa::decode(c->program);
    ASSERT_TRUE(prog);
    const HelperTable helpers = conformance::helpers();
    for (bool checked : {true, false}) {
        SCOPED_TRACE(checked ? "checked" : "unchecked");
        if (!checked && c->expected_error) continue;
        const VmOptions options{.checked = checked, .insn_budget = 100'000'000};
        auto jit = JitProgram::create(*prog, helpers, options);
        if (c->expected_error) {
            if (!jit) continue;
            auto mem = c->memory;
            EXPECT_FALSE(jit->run(mem)) << "expected an error";
            continue;
        }
        ASSERT_TRUE(jit) << jit.error().message();
        auto interp = Interpreter::create(*prog, helpers, options);
        ASSERT_TRUE(interp) << interp.error().message();
        auto mem_jit = c->memory, mem_interp = c->memory;
        auto r_jit = jit->run(mem_jit);
        auto r_interp = interp->run(mem_interp);
        ASSERT_TRUE(r_jit) << r_jit.error().message() << "\n" << isa::disassemble(*prog);
        ASSERT_TRUE(r_interp) << r_interp.error().message();
        EXPECT_EQ(*r_jit, std::stoull(*c->expected_r0, nullptr, 16)) << isa::disassemble(*prog);
        EXPECT_EQ(*r_jit, *r_interp);
        EXPECT_EQ(mem_jit, mem_interp) << "memory differs after the run";
    }
}

INSTANTIATE_TEST_SUITE_P(Suite, JitConformance, ::testing::ValuesIn(case_names()), test_name);

// --- run-time behaviour ---

TEST(Jit, OutOfBoundsAccessNamesTheInstruction) {
    auto prog = asm_or_die("mov %r0, 0\nldxw %r0, [%r1+8]\nexit\n");
    auto jit = JitProgram::create(prog, {});
    ASSERT_TRUE(jit) << jit.error().message();
    std::array<std::byte, 8> ctx{};
    auto r = jit->run(ctx);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("insn 1 (ldxw %r0, [%r1+8])"), std::string::npos) << r.error().message();
    // Inside the context it works, and the same code unchecked reads without checks.
    auto ok = JitProgram::create(asm_or_die("ldxw %r0, [%r1+4]\nexit\n"), {});
    ctx[4] = std::byte{0x2a};
    EXPECT_EQ(ok->run(ctx).value(), 0x2au);
}

TEST(Jit, StackOutsideTheFrameIsAFault) {
    auto jit = JitProgram::create(asm_or_die("mov %r0, 0\nstxdw [%r10-520], %r0\nexit\n"), {});
    ASSERT_TRUE(jit);
    auto r = jit->run({});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("insn 1"), std::string::npos) << r.error().message();
    // Through a copy of r10 the run-time check catches it too.
    auto copy = JitProgram::create(asm_or_die("mov %r2, %r10\nadd %r2, -600\nstxdw [%r2+0], %r2\nmov %r0, 1\nexit\n"), {});
    auto r2 = copy->run({});
    ASSERT_FALSE(r2);
    EXPECT_NE(r2.error().message().find("insn 2"), std::string::npos) << r2.error().message();
}

TEST(Jit, BudgetStopsAnEndlessLoop) {
    auto jit = JitProgram::create(asm_or_die("mov %r0, 0\nadd %r0, 1\nja -2\nexit\n"), {}, {.insn_budget = 10000});
    ASSERT_TRUE(jit);
    auto r = jit->run({});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("budget"), std::string::npos) << r.error().message();
}

TEST(Jit, LocalCallsKeepCalleeSavedRegistersAndOwnStacks) {
    // main: r6 = 7, stack[-8] = 100, calls f(5) which clobbers its own stack and r6, returns r1 * 2.
    auto prog = asm_or_die(R"(
mov %r6, 7
mov %r1, 100
stxdw [%r10-8], %r1
mov %r1, 5
call local f
ldxdw %r1, [%r10-8]
add %r0, %r1
add %r0, %r6
exit
f:
mov %r6, 1000
stxdw [%r10-8], %r6
mov %r0, %r1
mul %r0, 2
exit
)");
    for (bool checked : {true, false}) {
        auto jit = JitProgram::create(prog, {}, {.checked = checked});
        ASSERT_TRUE(jit) << jit.error().message();
        EXPECT_EQ(jit->run({}).value(), 10u + 100u + 7u);
    }
}

TEST(Jit, NineFramesAreTooDeep) {
    // Recursion: f calls itself until r1 reaches 0; 7 nested calls fit in 8 frames, 8 do not.
    const char* text = R"(
call local f
exit
f:
jeq %r1, 0, +3
sub %r1, 1
call local f
exit
mov %r0, 42
exit
)";
    auto jit = JitProgram::create(asm_or_die(text), {});
    ASSERT_TRUE(jit);
    EXPECT_EQ(jit->run_args({6, 0, 0, 0, 0}).value(), 42u);
    auto deep = jit->run_args({7, 0, 0, 0, 0});
    ASSERT_FALSE(deep);
    EXPECT_NE(deep.error().message().find("depth"), std::string::npos) << deep.error().message();
}

std::uint64_t add3(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t, std::uint64_t) { return a + b + c; }

std::uint64_t sum_buffer(std::uint64_t p, std::uint64_t n, std::uint64_t, std::uint64_t, std::uint64_t) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < n; ++i) s += reinterpret_cast<const unsigned char*>(p)[i];
    return s;
}

// Calls the function in r1 (an lddw src=4 address) for i = 0..r2-1 and sums the results, like bpf_loop.
std::uint64_t loop_helper(std::uint64_t fn, std::uint64_t n, std::uint64_t, std::uint64_t, std::uint64_t) {
    std::uint64_t total = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        auto r = Invocation::current()->call_function(fn, {i, 0, 0, 0, 0});
        if (!r) return ~0ull;
        total += *r;
    }
    return total;
}

TEST(Jit, HelpersCallbacksAndArgumentChecks) {
    HelperTable t;
    ASSERT_TRUE(t.add(100, {.name = "add3", .fn = add3}));
    ASSERT_TRUE(t.add(101, {.name = "sum_buffer", .fn = sum_buffer,
                            .args = {Arg::mem_ro, Arg::size, Arg::none, Arg::none, Arg::none}}));
    ASSERT_TRUE(t.add(102, {.name = "loop", .fn = loop_helper}));

    auto calls = JitProgram::create(asm_or_die("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\ncall 100\nexit\n"), t);
    ASSERT_TRUE(calls);
    EXPECT_EQ(calls->run({}).value(), 6u);

    // A pointer argument inside the context passes; past its end, the call is refused.
    std::array<std::byte, 4> ctx{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    auto inside = JitProgram::create(asm_or_die("mov %r2, 4\ncall 101\nexit\n"), t);
    EXPECT_EQ(inside->run(ctx).value(), 10u);
    auto outside = JitProgram::create(asm_or_die("mov %r2, 5\ncall 101\nexit\n"), t);
    auto r = outside->run(ctx);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("sum_buffer"), std::string::npos) << r.error().message();

    // Callback: sum of i * i for i < 5 = 30.
    auto cb = JitProgram::create(asm_or_die("lddw %r1, func sq\nmov %r2, 5\ncall 102\nexit\nsq:\nmov %r0, %r1\nmul %r0, %r1\nexit\n"), t);
    ASSERT_TRUE(cb) << cb.error().message();
    EXPECT_EQ(cb->run({}).value(), 30u);
    // A callback that faults ends the calling program with the callback's error.
    auto bad = JitProgram::create(asm_or_die("lddw %r1, func f\nmov %r2, 2\ncall 102\nexit\nf:\nldxdw %r0, [%r1+0]\nexit\n"), t);
    ASSERT_TRUE(bad);
    auto br = bad->run({});
    ASSERT_FALSE(br);
    EXPECT_NE(br.error().message().find("insn 5"), std::string::npos) << br.error().message();
}

namespace {
const Interpreter* tail_target = nullptr;
int target_runs = 0;
std::uint64_t tail_into_interpreter(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    Invocation* inv = Invocation::current();
    return inv != nullptr && tail_target != nullptr && inv->tail_call(*tail_target) ? 0 : 1;
}
std::uint64_t count_run(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    ++target_runs;
    return 0;
}
}  // namespace

// A tail call from compiled code into an interpreted program continues the same chain: the target sees
// the context (checked mode lets it read it), the 33 tail calls are counted across both engines, and
// the budget left is the target's.
TEST(Jit, TailCallIntoTheInterpreterContinuesTheChain) {
    HelperTable t;
    ASSERT_TRUE(t.add(110, {.name = "tail_into_interpreter", .fn = tail_into_interpreter}));
    ASSERT_TRUE(t.add(111, {.name = "count_run", .fn = count_run}));
    auto jump = JitProgram::create(asm_or_die("call 110\nmov %r0, 99\nexit\n"), t);
    ASSERT_TRUE(jump) << jump.error().message();

    auto reader = Interpreter::create(asm_or_die("ldxb %r0, [%r1+1]\nexit\n"), t);
    ASSERT_TRUE(reader);
    tail_target = &*reader;
    std::array<std::byte, 2> ctx{std::byte{7}, std::byte{42}};
    auto r = jump->run(ctx);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, 42u);

    // The target tail-calls itself until the chain's limit: 33 tail calls in all, one of them the JIT's.
    auto self = Interpreter::create(asm_or_die("call 111\ncall 110\nmov %r0, 5\nexit\n"), t);
    ASSERT_TRUE(self);
    tail_target = &*self;
    target_runs = 0;
    EXPECT_EQ(jump->run(ctx).value(), 5u);
    EXPECT_EQ(target_runs, 33);

    // Budget 200: the compiled part spends ~100 instructions; a target needing ~120 more runs out, one
    // needing ~60 does not.
    const char* spend = "mov %r6, 0\nadd %r6, 1\njlt %r6, 50, -2\ncall 110\nexit\n";
    auto spender = JitProgram::create(asm_or_die(spend), t, {.insn_budget = 200});
    ASSERT_TRUE(spender) << spender.error().message();
    auto long_target = Interpreter::create(asm_or_die("mov %r0, 0\nadd %r0, 1\njlt %r0, 60, -2\nexit\n"), t, {.insn_budget = 200});
    auto short_target = Interpreter::create(asm_or_die("mov %r0, 0\nadd %r0, 1\njlt %r0, 30, -2\nexit\n"), t, {.insn_budget = 200});
    ASSERT_TRUE(long_target && short_target);
    tail_target = &*long_target;
    auto out = spender->run(ctx);
    ASSERT_FALSE(out);
    EXPECT_NE(out.error().message().find("budget"), std::string::npos) << out.error().message();
    tail_target = &*short_target;
    EXPECT_EQ(spender->run(ctx).value(), 30u);
    tail_target = nullptr;
}

namespace {
const JitProgram* jit_tail_target = nullptr;
std::uint64_t tail_into_jit(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    Invocation* inv = Invocation::current();
    return inv != nullptr && jit_tail_target != nullptr && inv->tail_call(*jit_tail_target) ? 0 : 1;
}
}  // namespace

// And the other way: an interpreted program tail-calls compiled code, which runs in place of the calling
// function (from a subprogram, its result returns to the subprogram's caller, as in the kernel).
TEST(Jit, TailCallFromTheInterpreterIntoCompiledCode) {
    HelperTable t;
    ASSERT_TRUE(t.add(112, {.name = "tail_into_jit", .fn = tail_into_jit}));
    auto target = JitProgram::create(asm_or_die("ldxb %r0, [%r1+1]\nexit\n"), t);
    ASSERT_TRUE(target) << target.error().message();
    jit_tail_target = &*target;
    std::array<std::byte, 2> ctx{std::byte{7}, std::byte{42}};
    auto entry = Interpreter::create(asm_or_die("call 112\nmov %r0, 9\nexit\n"), t);
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->run(ctx).value(), 42u);
    auto from_sub = Interpreter::create(asm_or_die("call local sub\nadd %r0, 100\nexit\nsub:\ncall 112\nmov %r0, 9\nexit\n"), t);
    ASSERT_TRUE(from_sub) << from_sub.error().message();
    EXPECT_EQ(from_sub->run(ctx).value(), 142u);
    jit_tail_target = nullptr;
    EXPECT_EQ(entry->run(ctx).value(), 9u) << "a refused tail call continues after the call";
}

TEST(Jit, UnknownHelperAndUnresolvedLddwAreErrorsAtCreate) {
    auto unknown = JitProgram::create(asm_or_die("call 999\nexit\n"), {});
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().message().find("insn 0"), std::string::npos);
    EXPECT_NE(unknown.error().message().find("999"), std::string::npos);
    auto map = JitProgram::create(asm_or_die("lddw %r1, map_fd 3\nmov %r0, 0\nexit\n"), {});
    ASSERT_FALSE(map);
    EXPECT_EQ(map.error().code(), Errc::unsupported);
}

TEST(Jit, ResolvedLddwValuesAndRegions) {
    static std::uint64_t slot = 41;
    VmOptions o;
    o.resolve_lddw = [](std::size_t, const Insn&, const Insn&) -> Result<ResolvedImm> {
        return ResolvedImm{reinterpret_cast<std::uint64_t>(&slot), std::as_writable_bytes(std::span(&slot, 1))};
    };
    auto jit = JitProgram::create(asm_or_die("lddw %r1, map_value 1 + 0\nldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nexit\n"), {}, o);
    ASSERT_TRUE(jit) << jit.error().message();
    EXPECT_EQ(jit->run({}).value(), 42u);
    EXPECT_EQ(slot, 42u);
}

TEST(Jit, ManyThreadsShareOneProgram) {
    auto jit = JitProgram::create(asm_or_die("mov %r0, 0\nmov %r3, 0\nadd %r0, %r1\nadd %r3, 1\njlt %r3, 1000, -3\nexit\n"), {});
    ASSERT_TRUE(jit);
    std::vector<std::thread> threads;
    std::array<bool, 4> ok{};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            bool good = true;
            for (std::uint64_t i = 0; i < 2000; ++i) good &= jit->run_args({i + t, 0, 0, 0, 0}).value() == (i + t) * 1000;
            ok[t] = good;
        });
    for (auto& th : threads) th.join();
    for (bool b : ok) EXPECT_TRUE(b);
}

TEST(Jit, CompileTimeIsReportedAndRepeatedLoadsAreCached) {
    // A program no other test compiles (the cache is per process).
    const std::string text = fmt::format("mov %r0, {}\nadd %r0, %r1\nexit\n", 0x5eed1234 + ::getpid() % 1000);
    auto first = JitProgram::create(asm_or_die(text), {});
    ASSERT_TRUE(first);
    EXPECT_GT(first->compile_us(), 0.0);
    auto again = JitProgram::create(asm_or_die(text), {});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->compile_us(), 0.0) << "the same bytecode was compiled twice";
    EXPECT_EQ(again->run_args({1, 0, 0, 0, 0}).value(), first->run_args({1, 0, 0, 0, 0}).value());
    // Different options are different code.
    auto unchecked = JitProgram::create(asm_or_die(text), {}, {.checked = false});
    ASSERT_TRUE(unchecked);
    EXPECT_GT(unchecked->compile_us(), 0.0);
    // Still cached after every handle is gone (the last programs stay compiled).
    const auto kept = asm_or_die(text + "\n");
    first = Error(Errc::not_found, "dropped");
    again = Error(Errc::not_found, "dropped");
    auto reload = JitProgram::create(kept, {});
    ASSERT_TRUE(reload);
    EXPECT_EQ(reload->compile_us(), 0.0);
    EXPECT_TRUE(jit_available());
}

}  // namespace
}  // namespace ebpfrt
