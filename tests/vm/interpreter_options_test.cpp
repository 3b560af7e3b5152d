// Interpreter: create-time errors, the instruction budget, run_args, lddw resolution (VmOptions::
// resolve_lddw) and concurrent runs of one prepared program.

#include <array>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "vm_test_util.hpp"

namespace ebpfrt {
namespace {

using namespace ebpfrt::test;
using u64 = std::uint64_t;

TEST(InterpreterCreate, ValidatesTheProgram) {
    auto bad = Interpreter::create(std::vector<Insn>{mk(0xb7, 0), mk(0xe4), mk(0x95)}, HelperTable{});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(bad.error().message(), "insn 1"));

    auto no_exit = Interpreter::create(std::vector<Insn>{mk(0xb7, 0)}, HelperTable{});
    EXPECT_FALSE(no_exit);

    auto too_long = Interpreter::create(std::vector<Insn>{mk(0xb7, 0), mk(0xb7, 0), mk(0x95)}, HelperTable{},
                                        {.max_insns = 2});
    ASSERT_FALSE(too_long);
    EXPECT_EQ(too_long.error().code(), Errc::invalid_argument);
}

TEST(InterpreterCreate, SizeAndOptions) {
    int marker = 0;
    auto vm = Interpreter::create(assemble_or_fail("lddw %r0, 5\nexit"), HelperTable{},
                                  {.checked = false, .insn_budget = 77, .env = &marker});
    ASSERT_TRUE(vm) << vm.error().message();
    EXPECT_EQ(vm->size(), 3u);
    EXPECT_FALSE(vm->options().checked);
    EXPECT_EQ(vm->options().insn_budget, 77u);
    EXPECT_EQ(vm->options().env, &marker);
    // a cheap shared handle: copies run the same program
    Interpreter copy = *vm;
    EXPECT_TRUE(r0_is(copy.run({}), 5));
}

TEST(InterpreterBudget, InfiniteLoopEndsWithAnError) {
    auto vm = Interpreter::create(assemble_or_fail("mov %r0, 0\nja -1"), HelperTable{}, {.insn_budget = 1000});
    ASSERT_TRUE(vm) << vm.error().message();
    auto r = vm->run({});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::invalid_argument);
    EXPECT_TRUE(contains(r.error().message(), "budget"));
    // unchecked mode honours the budget too
    auto unchecked = Interpreter::create(assemble_or_fail("mov %r0, 0\nja -1"), HelperTable{},
                                         {.checked = false, .insn_budget = 1000});
    ASSERT_TRUE(unchecked);
    auto r2 = unchecked->run({});
    ASSERT_FALSE(r2);
    EXPECT_TRUE(contains(r2.error().message(), "budget"));
}

TEST(InterpreterBudget, InfiniteRecursionThroughCallsEnds) {
    // f calls itself in a loop that never reaches the frame limit: it returns at once and loops
    const char* text = R"(loop:
call local f
ja loop
f:
exit)";
    auto vm = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.insn_budget = 5000});
    ASSERT_TRUE(vm) << vm.error().message();
    auto r = vm->run({});
    ASSERT_FALSE(r);
    EXPECT_TRUE(contains(r.error().message(), "budget"));
}

TEST(InterpreterBudget, IsPerRunAndLargeEnoughBudgetsPass) {
    // 1 + 3 * 100 + 1 instructions
    const char* text = R"(mov %r0, 0
add %r0, 1
jne %r0, 100, -2
exit)";
    auto vm = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.insn_budget = 1000});
    ASSERT_TRUE(vm);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(r0_is(vm->run({}), 100)) << "run " << i;
    auto tight = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.insn_budget = 100});
    ASSERT_TRUE(tight);
    EXPECT_FALSE(tight->run({}));
}

TEST(InterpreterBudget, CountsEveryInstruction) {
    // a straight-line program of 4 instructions fits a budget of 4, not of 3
    const char* text = "mov %r0, 1\nadd %r0, 1\nadd %r0, 1\nexit";
    auto fits = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.insn_budget = 4});
    ASSERT_TRUE(fits);
    EXPECT_TRUE(r0_is(fits->run({}), 3));
    auto over = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.insn_budget = 3});
    ASSERT_TRUE(over);
    auto r = over->run({});
    EXPECT_FALSE(r);
    if (!r) {
        EXPECT_TRUE(contains(r.error().message(), "budget"));
    }
}

TEST(InterpreterRunArgs, PassesR1ToR5) {
    const char* text = R"(mov %r0, %r1
mul %r0, 2
add %r0, %r2
mul %r0, 2
add %r0, %r3
mul %r0, 2
add %r0, %r4
mul %r0, 2
add %r0, %r5
exit)";
    for (bool checked : {true, false}) {
        auto vm = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.checked = checked});
        ASSERT_TRUE(vm);
        const std::array<u64, 5> a{0x100000000ull, 3, 5, 7, 11};
        EXPECT_TRUE(r0_is(vm->run_args(a), (((a[0] * 2 + a[1]) * 2 + a[2]) * 2 + a[3]) * 2 + a[4]));
    }
}

TEST(InterpreterRunArgs, GrantsNoContext) {
    std::array<std::byte, 8> host{};
    auto vm = Interpreter::create(assemble_or_fail("mov %r0, 0\nldxb %r0, [%r1+0]\nexit"), HelperTable{});
    ASSERT_TRUE(vm);
    EXPECT_TRUE(faults_at(vm->run_args({reinterpret_cast<u64>(host.data()), 8, 0, 0, 0}), 1));
    // the stack still works
    auto stack = Interpreter::create(assemble_or_fail("stxdw [%r10-8], %r3\nldxdw %r0, [%r10-8]\nexit"),
                                     HelperTable{});
    ASSERT_TRUE(stack);
    EXPECT_TRUE(r0_is(stack->run_args({0, 0, 42, 0, 0}), 42));
}

// ---------------------------------------------------------------------------------------------
// lddw with a pseudo src

std::vector<Insn> map_value_program(std::string_view tail, std::uint8_t src) {
    auto prog = assemble_or_fail(std::string("mov %r0, 0\nlddw %r1, 0\n") + std::string(tail));
    prog[1].src = src & 0xf;
    prog[1].imm = 7;
    prog[2].imm = 0;
    return prog;
}

TEST(InterpreterLddw, PseudoSrcWithoutResolverIsUnsupported) {
    for (std::uint8_t src : {isa::pseudo_map_fd, isa::pseudo_map_value, isa::pseudo_btf_id, isa::pseudo_map_idx,
                             isa::pseudo_map_idx_value}) {
        auto vm = Interpreter::create(map_value_program("exit", src), HelperTable{});
        ASSERT_FALSE(vm) << "src " << int(src);
        EXPECT_EQ(vm.error().code(), Errc::unsupported) << vm.error().message();
    }
}

TEST(InterpreterLddw, ResolverValueAndRegion) {
    alignas(8) std::array<std::byte, 16> value{};
    const u64 stored = 0x1122334455667788ull;
    std::memcpy(value.data() + 8, &stored, 8);
    struct Seen {
        int calls = 0;
        std::size_t index = 0;
        std::int32_t lo_imm = 0;
        std::uint8_t src = 0;
    } seen;
    VmOptions o;
    o.resolve_lddw = [&](std::size_t index, const Insn& lo, const Insn&) -> Result<ResolvedImm> {
        ++seen.calls;
        seen.index = index;
        seen.lo_imm = lo.imm;
        seen.src = lo.src;
        return ResolvedImm{.value = reinterpret_cast<u64>(value.data()), .region = value};
    };

    auto prog = map_value_program("ldxdw %r0, [%r1+8]\nstdw [%r1+0], 9\nexit", isa::pseudo_map_value);
    for (bool checked : {true, false}) {
        seen = {};
        o.checked = checked;
        auto vm = Interpreter::create(prog, HelperTable{}, o);
        ASSERT_TRUE(vm) << vm.error().message();
        EXPECT_EQ(seen.calls, 1) << "resolved once, when prepared";
        EXPECT_EQ(seen.index, 1u);
        EXPECT_EQ(seen.lo_imm, 7);
        EXPECT_EQ(seen.src, isa::pseudo_map_value);
        EXPECT_TRUE(r0_is(vm->run({}), stored));
        EXPECT_EQ(load_le<u64>(std::vector<std::byte>(value.begin(), value.end()), 0), 9u);
        value[0] = std::byte{0};
    }

    // the value itself is loaded: a map fd resolves to whatever the resolver says
    o.checked = true;
    o.resolve_lddw = [](std::size_t, const Insn&, const Insn&) -> Result<ResolvedImm> {
        return ResolvedImm{.value = 0xabcdef0123456789ull};
    };
    auto fd = Interpreter::create(map_value_program("mov %r0, %r1\nexit", isa::pseudo_map_fd), HelperTable{}, o);
    ASSERT_TRUE(fd) << fd.error().message();
    EXPECT_TRUE(r0_is(fd->run({}), 0xabcdef0123456789ull));
}

TEST(InterpreterLddw, GrantedRegionIsBounded) {
    alignas(8) std::array<std::byte, 16> value{};
    VmOptions o;
    o.resolve_lddw = [&](std::size_t, const Insn&, const Insn&) -> Result<ResolvedImm> {
        return ResolvedImm{.value = reinterpret_cast<u64>(value.data()), .region = value};
    };
    auto vm = Interpreter::create(map_value_program("ldxdw %r0, [%r1+16]\nexit", isa::pseudo_map_value),
                                  HelperTable{}, o);
    ASSERT_TRUE(vm) << vm.error().message();
    EXPECT_TRUE(faults_at(vm->run({}), 3));
    auto below = Interpreter::create(map_value_program("ldxb %r0, [%r1-1]\nexit", isa::pseudo_map_value),
                                     HelperTable{}, o);
    ASSERT_TRUE(below);
    EXPECT_TRUE(faults_at(below->run({}), 3));
}

TEST(InterpreterLddw, ResolverErrorsFailCreate) {
    VmOptions o;
    o.resolve_lddw = [](std::size_t, const Insn&, const Insn&) -> Result<ResolvedImm> {
        return Error(Errc::not_found, "no map 7");
    };
    auto vm = Interpreter::create(map_value_program("exit", isa::pseudo_map_fd), HelperTable{}, o);
    ASSERT_FALSE(vm);
    EXPECT_TRUE(contains(vm.error().message(), "no map 7"));
}

TEST(InterpreterLddw, PlainAndFuncLddwNeedNoResolver) {
    int calls = 0;
    VmOptions o;
    o.resolve_lddw = [&](std::size_t, const Insn&, const Insn&) -> Result<ResolvedImm> {
        ++calls;
        return ResolvedImm{};
    };
    auto vm = Interpreter::create(assemble_or_fail("lddw %r0, 0x123456789\nexit"), HelperTable{}, o);
    ASSERT_TRUE(vm);
    EXPECT_EQ(calls, 0);
    EXPECT_TRUE(r0_is(vm->run({}), 0x123456789ull));
}

// ---------------------------------------------------------------------------------------------
// One prepared program, many threads

u64 reference_hash(const std::vector<std::byte>& data) {
    u64 h = 0;
    for (std::byte b : data) h = h * 31 + static_cast<u64>(b);
    return h;
}

TEST(InterpreterThreads, ConcurrentRunsOfOneInterpreter) {
    // h = h * 31 + byte over the context, each byte passing through the stack and a local call
    // step(byte, h) that keeps its argument in its own frame
    const char* text = R"(mov %r0, 0
mov %r3, 0
loop:
jge %r3, %r2, done
mov %r4, %r1
add %r4, %r3
ldxb %r5, [%r4+0]
stxdw [%r10-8], %r5
mov %r6, %r1
mov %r7, %r2
mov %r8, %r3
ldxdw %r1, [%r10-8]
mov %r2, %r0
call local step
mov %r1, %r6
mov %r2, %r7
mov %r3, %r8
add %r3, 1
ja loop
done:
exit
step:
stxdw [%r10-16], %r1
mov %r0, %r2
mul %r0, 31
ldxdw %r1, [%r10-16]
add %r0, %r1
exit)";
    for (bool checked : {true, false}) {
        auto vm = Interpreter::create(assemble_or_fail(text), HelperTable{}, {.checked = checked});
        ASSERT_TRUE(vm) << vm.error().message();
        std::atomic<int> wrong{0}, errors{0}, runs{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                std::mt19937_64 rng(100 + t);
                for (int i = 0; i < 300; ++i) {
                    std::vector<std::byte> ctx(1 + rng() % 64);
                    for (auto& b : ctx) b = static_cast<std::byte>(rng());
                    const u64 want = reference_hash(ctx);
                    auto r = vm->run(ctx);
                    if (!r) {
                        ++errors;
                    } else if (*r != want) {
                        ++wrong;
                    }
                    ++runs;
                }
            });
        }
        for (auto& th : threads) th.join();
        EXPECT_EQ(runs.load(), 1200);
        EXPECT_EQ(errors.load(), 0) << (checked ? "checked" : "unchecked");
        EXPECT_EQ(wrong.load(), 0) << (checked ? "checked" : "unchecked");
    }
}

u64 slow_identity(u64 a, u64, u64, u64, u64) {
    // the current invocation must be this thread's own
    Invocation* inv = Invocation::current();
    if (inv == nullptr) return 0;
    std::this_thread::yield();
    return Invocation::current() == inv ? a : 0;
}

TEST(InterpreterThreads, EachThreadSeesItsOwnInvocation) {
    HelperTable t;
    ASSERT_TRUE(t.add(1, {.name = "slow_identity", .fn = slow_identity}));
    auto vm = Interpreter::create(assemble_or_fail("ldxdw %r1, [%r1+0]\ncall 1\nexit"), t);
    ASSERT_TRUE(vm) << vm.error().message();
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int th = 0; th < 4; ++th) {
        threads.emplace_back([&, th] {
            for (int i = 0; i < 500; ++i) {
                const u64 v = (static_cast<u64>(th) << 32) | static_cast<u64>(i + 1);
                std::vector<std::byte> ctx(8);
                std::memcpy(ctx.data(), &v, 8);
                auto r = vm->run(ctx);
                if (!r || *r != v) ++wrong;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace ebpfrt
