#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/runtime.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace ebpfrt {
namespace {

std::string shm_name(const std::string& what) { return "ebpfrt-test-" + std::to_string(getpid()) + "-" + what; }

template <class T> T read_global(const Collection& c, std::string_view var) {
    auto g = c.global(var);
    EXPECT_TRUE(g) << (g ? "" : g.error().message());
    T v{};
    if (g) std::memcpy(&v, g->data(), sizeof v);
    return v;
}

struct Empty {
    std::uint64_t pad = 0;
};

// Every feature test runs on each engine: the interpreter and, where built, the JIT.
class Features : public ::testing::TestWithParam<Engine> {
protected:
    void SetUp() override {
        auto o = Object::open(ELF_FEATURES_OBJECT);
        ASSERT_TRUE(o) << o.error().message();
        obj_ = std::move(*o);
    }
    Object obj_;
};

TEST_P(Features, MapsGlobalsAndSubprograms) {
    auto rt = Runtime::create({.engine = GetParam()}).value();
    auto coll = rt.load(obj_);
    ASSERT_TRUE(coll) << coll.error().message();
    ASSERT_EQ(coll->programs().size(), 4u);

    auto counts = coll->map<std::uint32_t, std::array<std::uint64_t, 2>>("counts");
    ASSERT_TRUE(counts) << counts.error().message();
    ASSERT_TRUE(counts->update(1, {41, 0}));

    Empty ctx;
    auto on_entry = coll->program("on_entry").value();
    auto r = on_entry.try_run(std::as_writable_bytes(std::span(&ctx, 1)));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, 1u);  // LINUX_KERNEL_VERSION > 0
    EXPECT_EQ(counts->lookup(1).value()[0], 42u);
    // bss_counter += scale(2) + scale(3) with threshold 7 and data_counter 3.
    EXPECT_EQ(read_global<std::uint64_t>(*coll, "bss_counter"), (2u * 7 + 3) + (3u * 7 + 3));

    // The host changes a .data global; the program sees it at once.
    const std::uint64_t hundred = 100;
    std::memcpy(coll->global("data_counter")->data(), &hundred, 8);
    auto too = coll->program("on_entry_too").value();
    // bpf_loop(4) sums 0..3 = 6 through a callback; scale(6) = 6 * 7 + 100.
    EXPECT_EQ(too.run(ctx), 6u * 7 + 100);
}

TEST_P(Features, RodataSetBeforeLoad) {
    const std::uint32_t nine = 9;
    std::memcpy(obj_.global("threshold")->data(), &nine, 4);
    auto rt = Runtime::create({.engine = GetParam()}).value();
    auto coll = rt.load(obj_).value();
    Empty ctx;
    coll.program("on_entry").value().run(ctx);
    EXPECT_EQ(read_global<std::uint64_t>(coll, "bss_counter"), (2u * 9 + 3) + (3u * 9 + 3));
}

TEST_P(Features, TailCallsStopAtTheKernelLimit) {
    auto rt = Runtime::create({.engine = GetParam()}).value();
    auto coll = rt.load(obj_).value();
    Empty ctx;
    // tail_target counts in stats[0] and tail-calls itself through jumps[5] (set by the object):
    // the first run plus 33 tail calls.
    auto tail = coll.program("tail_target").value();
    auto r = tail.try_run(std::as_writable_bytes(std::span(&ctx, 1)));
    ASSERT_TRUE(r) << r.error().message();
    auto stats = coll.map<std::uint32_t, std::uint64_t>("stats").value();
    EXPECT_EQ(stats.lookup(0).value(), 34u);
    // An empty slot: the program goes on after bpf_tail_call.
    auto jumps = coll.map("jumps").value();
    const std::uint32_t five = 5;
    ASSERT_TRUE(jumps.erase(std::as_bytes(std::span(&five, 1))));
    tail.run(ctx);
    EXPECT_EQ(stats.lookup(0).value(), 35u);
}

TEST_P(Features, MapInMap) {
    auto rt = Runtime::create({.engine = GetParam()}).value();
    auto coll = rt.load(obj_).value();
    Empty ctx;
    auto decide = coll.program("decide").value();
    EXPECT_EQ(decide.run(ctx), 0u);  // outer[0] is empty
    auto outer = coll.map("outer").value();
    MapSpec inner_spec = *outer.spec().inner;
    inner_spec.name = "inner0";
    auto inner = rt.create_map(inner_spec);
    ASSERT_TRUE(inner) << inner.error().message();
    const std::uint32_t zero = 0;
    auto set = outer.set_map(std::as_bytes(std::span(&zero, 1)), *inner);
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_EQ(decide.run(ctx), 1u);
}

std::vector<Engine> engines() {
    std::vector<Engine> e{Engine::interpreter};
    if (jit_available()) e.push_back(Engine::jit);
    if (aot::compile_available()) e.push_back(Engine::aot);
    return e;
}
INSTANTIATE_TEST_SUITE_P(Engines, Features, ::testing::ValuesIn(engines()),
                         [](const auto& info) {
                             return std::string(info.param == Engine::jit   ? "jit"
                                                : info.param == Engine::aot ? "aot"
                                                                            : "interpreter");
                         });

TEST(Runtime, UnresolvedCallsAndBadEnginesAreErrors) {
    auto bad = Runtime::create({.engine = static_cast<Engine>(9)});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), Errc::invalid_argument);

    auto rt = Runtime::create().value();
    // A program calling a helper the runtime does not have.
    std::vector<Insn> code = {{isa::opcode_call, 0, 0, 0, 9999}, {isa::opcode_exit, 0, 0, 0, 0}};
    auto p = rt.load_program("bad", code);
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().message().find("9999"), std::string::npos) << p.error().message();
}

TEST(Runtime, HostHelpersAndTwoRuntimes) {
    static std::atomic<int> calls{0};
    HelperTable host;
    host.add(1000, {.name = "count_call", .fn = [](std::uint64_t a, std::uint64_t, std::uint64_t, std::uint64_t,
                                                   std::uint64_t) -> std::uint64_t {
                        ++calls;
                        return a * 2;
                    }})
        .value();
    auto a = Runtime::create({.helpers = host}).value();
    auto b = Runtime::create().value();
    // r1 = 21; call 1000; exit
    std::vector<Insn> code = {{0xb7, 1, 0, 0, 21}, {isa::opcode_call, 0, 0, 0, 1000}, {isa::opcode_exit, 0, 0, 0, 0}};
    auto pa = a.load_program("double", code);
    ASSERT_TRUE(pa) << pa.error().message();
    Empty ctx;
    EXPECT_EQ(pa->run(ctx), 42u);
    EXPECT_EQ(calls.load(), 1);
    EXPECT_FALSE(b.load_program("double", code));  // b has no helper 1000
    EXPECT_NE(a.helpers().find(helper_ids::map_lookup_elem), nullptr);
    EXPECT_FALSE(features().helpers.empty());
}

class Shared : public ::testing::Test {
protected:
    void SetUp() override {
        name_ = shm_name(::testing::UnitTest::GetInstance()->current_test_info()->name());
        (void)Arena::remove(name_);  // a leftover of an earlier run, if any
        auto o = Object::open(COUNTER_OBJECT);
        ASSERT_TRUE(o) << o.error().message();
        obj_ = std::move(*o);
    }
    void TearDown() override { (void)Arena::remove(name_); }
    std::string name_;
    Object obj_;
};

struct Input {
    std::uint32_t key, producer;
    std::uint64_t seq;
};

TEST_F(Shared, TwoRuntimesShareMapsByName) {
    auto owner = Runtime::create({.shared_memory = ShmSpec{.name = name_, .size = 8u << 20}}).value();
    auto c1 = owner.load(obj_).value();
    auto other = Runtime::create({.shared_memory = ShmSpec{.name = name_, .create = false}}).value();
    auto c2 = other.load(obj_).value();
    auto h = Map<std::uint32_t, std::uint64_t>::from(c1.map("hcounts").value()).value();
    ASSERT_TRUE(h.update(3, 0));
    Input in{3, 0, 0};
    c2.program("count").value().run(in);
    c2.program("count").value().run(in);
    EXPECT_EQ(h.lookup(3).value(), 2u);
    using U64Map = Map<std::uint32_t, std::uint64_t>;
    EXPECT_EQ(U64Map::from(c1.map("acounts").value()).value().lookup(3).value(), 2u);
    EXPECT_TRUE(other.map("hcounts"));
}

TEST_F(Shared, FourProcessesTwoThreadsExactCounts) {
    constexpr int procs = 4, threads = 2;
    constexpr std::uint64_t per_thread = 1'000'000;
    {
        auto owner = Runtime::create({.shared_memory = ShmSpec{.name = name_, .size = 8u << 20}}).value();
        auto c = owner.load(obj_).value();
        auto h = Map<std::uint32_t, std::uint64_t>::from(c.map("hcounts").value()).value();
        ASSERT_TRUE(h.update(7, 0));
    }
    std::vector<pid_t> kids;
    for (int p = 0; p < procs; ++p) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto rt = Runtime::create({.shared_memory = ShmSpec{.name = name_, .create = false}});
            if (!rt) _exit(2);
            auto c = rt->load(obj_);
            if (!c) _exit(3);
            auto prog = c->program("count").value();
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&] {
                    Input in{7, 0, 0};
                    for (std::uint64_t i = 0; i < per_thread; ++i) prog.run(in);
                });
            for (auto& t : ts) t.join();
            _exit(0);
        }
        kids.push_back(pid);
    }
    for (pid_t k : kids) {
        int st = 0;
        waitpid(k, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    }
    auto rt = Runtime::create({.shared_memory = ShmSpec{.name = name_, .create = false}}).value();
    auto h = Map<std::uint32_t, std::uint64_t>::from(rt.map("hcounts").value()).value();
    auto a = Map<std::uint32_t, std::uint64_t>::from(rt.map("acounts").value()).value();
    EXPECT_EQ(h.lookup(7).value(), procs * threads * per_thread);
    EXPECT_EQ(a.lookup(7).value(), procs * threads * per_thread);
}

TEST_F(Shared, RingbufAcrossProcessesLosesNothing) {
    constexpr int producers = 2;
    constexpr std::uint64_t per_producer = 5'000'000;
    auto owner = Runtime::create({.shared_memory = ShmSpec{.name = name_, .size = 8u << 20}}).value();
    auto c = owner.load(obj_).value();
    auto rb = RingBuffer::from(c.map("events").value()).value();
    std::vector<pid_t> kids;
    for (int p = 0; p < producers; ++p) {
        const pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            auto rt = Runtime::create({.shared_memory = ShmSpec{.name = name_, .create = false}});
            if (!rt) _exit(2);
            auto cc = rt->load(obj_);
            if (!cc) _exit(3);
            auto prog = cc->program("produce").value();
            Input in{0, static_cast<std::uint32_t>(p), 0};
            for (std::uint64_t i = 0; i < per_producer; ++i) {
                in.seq = i;
                while (prog.run(in) != 0) std::this_thread::yield();  // ring full: retry
            }
            _exit(0);
        }
        kids.push_back(pid);
    }
    std::vector<std::uint64_t> next(producers, 0);
    std::uint64_t got = 0, bad = 0;
    while (got < producers * per_producer) {
        auto n = rb.poll(std::chrono::milliseconds(100), [&](std::span<const std::byte> rec) {
            std::uint32_t producer;
            std::uint64_t seq;
            std::memcpy(&producer, rec.data(), 4);
            std::memcpy(&seq, rec.data() + 8, 8);
            if (producer >= producers || seq != next[producer]) ++bad;
            else ++next[producer];
            ++got;
            return 0;
        });
        ASSERT_TRUE(n) << n.error().message();
        if (bad) break;
    }
    for (pid_t k : kids) {
        int st = 0;
        waitpid(k, &st, 0);
        EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
    }
    EXPECT_EQ(bad, 0u);
    EXPECT_EQ(got, producers * per_producer);
    for (int p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer);
}

}  // namespace
}  // namespace ebpfrt

namespace ebpfrt {
namespace {

// The JIT inlines lookups in array maps (bounds check + address arithmetic): the same counts as the
// helper, keys out of range find nothing, and the hash map next to it still goes through the helper.
TEST(JitRuntime, InlinedArrayLookupsCountLikeTheHelper) {
    if (!jit_available()) GTEST_SKIP() << "built without LLVM";
    auto obj = Object::open(COUNTER_OBJECT).value();
    for (Engine e : {Engine::interpreter, Engine::jit, Engine::aot}) {
        SCOPED_TRACE(e == Engine::jit ? "jit" : e == Engine::aot ? "aot" : "interpreter");
        auto rt = Runtime::create({.engine = e}).value();
        auto coll = rt.load(obj).value();
        auto hcounts = coll.map<std::uint32_t, std::uint64_t>("hcounts").value();
        auto acounts = coll.map<std::uint32_t, std::uint64_t>("acounts").value();
        ASSERT_TRUE(hcounts.update(3, 100));
        auto count = coll.program("count").value();
        for (std::uint32_t key : {3u, 3u, 15u, 16u, 99u, 0xffffffffu}) {
            Input in{key, 0, 0};
            auto r = count.try_run(std::as_writable_bytes(std::span(&in, 1)));
            ASSERT_TRUE(r) << r.error().message();
        }
        EXPECT_EQ(acounts.lookup(3).value(), 2u);
        EXPECT_EQ(acounts.lookup(15).value(), 1u);
        EXPECT_EQ(hcounts.lookup(3).value(), 102u);
        std::uint64_t total = 0;
        for (std::uint32_t k = 0; k < 16; ++k) total += acounts.lookup(k).value();
        EXPECT_EQ(total, 3u);  // 16, 99 and 0xffffffff are out of range
    }
}

// Unchecked runs rely on the verifier alone: the runtime warns about accesses it could not bound.
TEST(Runtime, UncheckedLoadWarnsAboutAccessesTheVerifierLeftToChecks) {
    std::vector<std::string> warnings;
    RuntimeOptions o;
    o.checked = false;
    o.log = [&](LogLevel level, std::string_view m) {
        if (level == LogLevel::warning) warnings.emplace_back(m);
    };
    auto rt = Runtime::create(std::move(o)).value();
    auto ctx_read = isa::assemble("ldxw %r0, [%r1+0]\nexit").value();       // host context: unbounded
    auto stack_only = isa::assemble("stdw [%r10-8], 3\nldxdw %r0, [%r10-8]\nexit").value();
    ASSERT_TRUE(rt.load_program("stack_only", stack_only));
    EXPECT_TRUE(warnings.empty());
    ASSERT_TRUE(rt.load_program("ctx_read", ctx_read));
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("\"ctx_read\" runs unchecked"), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find("1 of its memory accesses"), std::string::npos) << warnings[0];

    // Checked (the default): nothing to say.
    warnings.clear();
    RuntimeOptions c;
    c.log = [&](LogLevel level, std::string_view m) {
        if (level == LogLevel::warning) warnings.emplace_back(m);
    };
    auto checked = Runtime::create(std::move(c)).value();
    ASSERT_TRUE(checked.load_program("ctx_read", ctx_read));
    EXPECT_TRUE(warnings.empty());
}

// In a checked runtime, a program in which the verifier proved every access has nothing left to check
// and runs unchecked (helpers see an unchecked run); one that reads its host-defined context keeps its
// checks, and so does every program when verification is off.
TEST(Runtime, ProgramsTheVerifierProvedCompletelyRunUnchecked) {
    HelperTable host;
    host.add(1000, {.name = "run_is_checked",
                    .fn = [](std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) -> std::uint64_t {
                        Invocation* inv = Invocation::current();
                        return inv == nullptr ? 2 : inv->checked() ? 1 : 0;
                    }})
        .value();
    auto stack_only = isa::assemble("stdw [%r10-8], 3\nldxdw %r1, [%r10-8]\ncall 1000\nexit").value();
    auto ctx_read = isa::assemble("ldxb %r1, [%r1+0]\ncall 1000\nexit").value();
    std::vector<Engine> engines{Engine::interpreter};
    if (jit_available()) engines.push_back(Engine::jit);
    if (aot::compile_available()) engines.push_back(Engine::aot);
    for (Engine e : engines) {
        SCOPED_TRACE(static_cast<int>(e));
        for (bool verify : {true, false}) {
            auto rt = Runtime::create({.engine = e, .verify = verify, .checked = true, .helpers = host}).value();
            std::array<std::byte, 8> ctx{};
            EXPECT_EQ(rt.load_program("stack_only", stack_only).value().run(ctx), verify ? 0u : 1u);
            EXPECT_EQ(rt.load_program("ctx_read", ctx_read).value().run(ctx), 1u);
        }
    }
}

}  // namespace
}  // namespace ebpfrt
