// The AOT engine: every conformance test compiled to an object, loaded by ebpfrt's own loader and run
// (checked and unchecked, same r0 and memory as the interpreter); objects for other machines; helpers,
// maps, callbacks and faults through loaded code; options that do not match the object.

#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/vm.hpp>

#include <elf.h>

#include <array>
#include <cctype>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "../conformance/suite.hpp"
#include "aot/aot_internal.hpp"
#include "cli/conformance_helpers.hpp"

namespace ebpfrt {
namespace {

std::vector<Insn> asm_or_die(std::string_view text) {
    auto p = isa::assemble(text);
    if (!p) throw std::runtime_error(p.error().message());
    return *p;
}

std::uint16_t machine_of(const std::vector<std::byte>& obj) {
    Elf64_Ehdr eh{};
    if (obj.size() < sizeof eh) return 0;
    std::memcpy(&eh, obj.data(), sizeof eh);
    return eh.e_machine;
}

// Links an object for another machine without running it: every undefined symbol at a fixed address
// far from the code, so that calls need the loader's trampolines.
Result<detail::AotImage> link_elsewhere(const std::vector<std::byte>& obj, std::uint16_t machine) {
    return detail::link_aot(obj, machine,
                            [](std::string_view) -> Result<std::uint64_t> { return 0x7f0012345678ull; });
}

// --- the conformance suite, compiled ahead of time ---

constexpr const char* missing_suite = "suite_not_found";

std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& path : test::list_files(test::conformance_dir(), ".json"))
        names.push_back(path.stem().string());
    if (names.empty()) names.emplace_back(missing_suite);
    return names;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string s = info.param;
    for (char& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

class AotConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(AotConformance, SameAsExpectedAndAsTheInterpreter) {
    if (GetParam() == missing_suite)
        GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    std::string why;
    auto c = test::load_case(test::conformance_dir() / (GetParam() + ".json"), why);
    ASSERT_TRUE(c) << why;
    auto prog = isa::decode(c->program);
    ASSERT_TRUE(prog);
    const HelperTable helpers = conformance::helpers();
    for (bool checked : {true, false}) {
        SCOPED_TRACE(checked ? "checked" : "unchecked");
        if (!checked && c->expected_error) continue;
        const VmOptions options{.checked = checked, .insn_budget = 100'000'000};
        auto object = aot::compile(*prog, {}, {.checked = checked, .budget = true, .helpers = &helpers});
        if (c->expected_error && !object) continue;
        ASSERT_TRUE(object) << object.error().message();
        auto loaded = aot::load(*object, helpers, options);
        if (c->expected_error) {
            if (!loaded) continue;
            auto mem = c->memory;
            EXPECT_FALSE(loaded->run(mem)) << "expected an error";
            continue;
        }
        ASSERT_TRUE(loaded) << loaded.error().message();
        auto interp = Interpreter::create(*prog, helpers, options);
        ASSERT_TRUE(interp) << interp.error().message();
        auto mem_aot = c->memory, mem_interp = c->memory;
        auto r_aot = loaded->run(mem_aot);
        auto r_interp = interp->run(mem_interp);
        ASSERT_TRUE(r_aot) << r_aot.error().message() << "\n" << isa::disassemble(*prog);
        ASSERT_TRUE(r_interp) << r_interp.error().message();
        EXPECT_EQ(*r_aot, std::stoull(*c->expected_r0, nullptr, 16)) << isa::disassemble(*prog);
        EXPECT_EQ(*r_aot, *r_interp);
        EXPECT_EQ(mem_aot, mem_interp) << "memory differs after the run";
    }
}

INSTANTIATE_TEST_SUITE_P(Suite, AotConformance, ::testing::ValuesIn(case_names()), test_name);

// Every suite program also compiles for aarch64, and our loader handles all its relocations.
TEST(AotCross, SuiteLinksForAarch64) {
    const auto names = case_names();
    if (names.front() == missing_suite) GTEST_SKIP() << "conformance suite not found";
    const HelperTable helpers = conformance::helpers();
    int linked = 0;
    for (std::size_t k = 0; k < names.size(); k += 3) {  // a third of them keeps the test short
        std::string why;
        auto c = test::load_case(test::conformance_dir() / (names[k] + ".json"), why);
        ASSERT_TRUE(c) << why;
        auto prog = isa::decode(c->program);
        ASSERT_TRUE(prog);
        auto object = aot::compile(*prog, {.triple = "aarch64-linux-gnu"}, {.helpers = &helpers});
        if (!object) {
            EXPECT_TRUE(c->expected_error) << names[k] << ": " << object.error().message();
            continue;
        }
        EXPECT_EQ(machine_of(*object), EM_AARCH64);
        auto image = link_elsewhere(*object, EM_AARCH64);
        ASSERT_TRUE(image) << names[k] << ": " << image.error().message();
        EXPECT_TRUE(image->code_symbols.count("ebpf_main")) << names[k];
        ++linked;
    }
    EXPECT_GT(linked, 50);
}

// --- objects for other machines ---

TEST(AotCross, ObjectsForEachTarget) {
    const auto prog = asm_or_die("mov %r1, 1\nmov %r2, 2\ncall 1\nexit\n");
    const std::pair<const char*, std::uint16_t> targets[] = {
        {"x86_64-linux-gnu", EM_X86_64}, {"aarch64-linux-gnu", EM_AARCH64}, {"riscv64-linux-gnu", EM_RISCV}};
    for (const auto& [triple, machine] : targets) {
        auto object = aot::compile(prog, {.triple = triple});
        ASSERT_TRUE(object) << triple << ": " << object.error().message();
        ASSERT_GE(object->size(), sizeof(Elf64_Ehdr));
        EXPECT_EQ(std::memcmp(object->data(), ELFMAG, SELFMAG), 0);
        Elf64_Ehdr eh{};
        std::memcpy(&eh, object->data(), sizeof eh);
        EXPECT_EQ(eh.e_type, ET_REL) << triple;
        EXPECT_EQ(eh.e_machine, machine) << triple;
    }
    auto tuned = aot::compile(prog, {.triple = "x86_64-linux-gnu", .cpu = "x86-64-v3", .opt_level = 1});
    EXPECT_TRUE(tuned) << tuned.error().message();
    auto neoverse = aot::compile(prog, {.triple = "aarch64-linux-gnu", .cpu = "neoverse-n1"});
    EXPECT_TRUE(neoverse) << neoverse.error().message();
}

TEST(AotCross, BadTargetsAreErrors) {
    const auto prog = asm_or_die("mov %r0, 0\nexit\n");
    auto cpu = aot::compile(prog, {.cpu = "pentium-9000"});
    ASSERT_FALSE(cpu);
    EXPECT_EQ(cpu.error().code(), Errc::invalid_argument);
    EXPECT_NE(cpu.error().message().find("unknown CPU \"pentium-9000\""), std::string::npos)
        << cpu.error().message();
    auto arch = aot::compile(prog, {.triple = "mips-linux-gnu"});
    ASSERT_FALSE(arch);
    EXPECT_EQ(arch.error().code(), Errc::unsupported);
    for (const char* entry : {"", "ebpfrt_rt_check", "memset", "two words", "9lives"}) {
        auto bad = aot::compile(prog, {}, {.entry = entry});
        ASSERT_FALSE(bad) << entry;
        EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
    }
    auto macho = aot::compile(prog, {.triple = "x86_64-apple-darwin"});
    ASSERT_FALSE(macho);
    EXPECT_EQ(macho.error().code(), Errc::unsupported);
}

// An aarch64 call to a helper becomes a CALL26 to a trampoline that loads the helper's address.
TEST(AotCross, Aarch64CallsGoThroughTrampolines) {
    auto object =
        aot::compile(asm_or_die("call 7\nexit\n"), {.triple = "aarch64-linux-gnu"}, {.checked = false});
    ASSERT_TRUE(object) << object.error().message();
    auto image = link_elsewhere(*object, EM_AARCH64);
    ASSERT_TRUE(image) << image.error().message();
    const auto* code = static_cast<const std::byte*>(image->memory.get());
    const std::uint64_t base = reinterpret_cast<std::uint64_t>(code);
    const std::uint64_t entry = image->code_symbols.at("ebpf_main");
    // Find the first BL in the entry function and follow it.
    bool found = false;
    for (std::uint64_t a = entry; a < entry + 256 && !found; a += 4) {
        std::uint32_t insn = 0;
        std::memcpy(&insn, code + (a - base), 4);
        if ((insn & 0xfc000000u) != 0x94000000u) continue;  // BL
        auto imm = static_cast<std::int32_t>(insn << 6) >> 6;
        const std::uint64_t trampoline = a + static_cast<std::int64_t>(imm) * 4;
        ASSERT_LT(trampoline - base, image->size);
        std::uint32_t ldr = 0, br = 0;
        std::uint64_t target = 0;
        std::memcpy(&ldr, code + (trampoline - base), 4);
        std::memcpy(&br, code + (trampoline - base) + 4, 4);
        std::memcpy(&target, code + (trampoline - base) + 8, 8);
        EXPECT_EQ(ldr, 0x58000050u);
        EXPECT_EQ(br, 0xd61f0200u);
        EXPECT_EQ(target, 0x7f0012345678ull);
        found = true;
    }
    EXPECT_TRUE(found) << "no BL in the entry function";
}

// --- run-time behaviour of loaded code ---

Result<JitProgram> compile_and_load(std::string_view text, const HelperTable& helpers = {},
                                    const VmOptions& o = {}, const aot::SymbolResolver& maps = {},
                                    bool with_prototypes = true) {
    auto object = aot::compile(asm_or_die(text), {},
                               {.checked = o.checked,
                                .budget = o.insn_budget != 0,
                                .helpers = with_prototypes ? &helpers : nullptr});
    if (!object) return object.error();
    return aot::load(*object, helpers, o, maps);
}

TEST(Aot, FaultsNameTheInstruction) {
    auto p = compile_and_load("mov %r0, 0\nldxw %r0, [%r1+8]\nexit\n");
    ASSERT_TRUE(p) << p.error().message();
    std::array<std::byte, 8> ctx{};
    auto r = p->run(ctx);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("insn 1 (ldxw %r0, [%r1+8])"), std::string::npos)
        << r.error().message();
    auto endless = compile_and_load("mov %r0, 0\nadd %r0, 1\nja -2\nexit\n", {}, {.insn_budget = 10000});
    ASSERT_TRUE(endless) << endless.error().message();
    auto b = endless->run({});
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message().find("budget"), std::string::npos) << b.error().message();
}

std::uint64_t add3(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t, std::uint64_t) {
    return a + b + c;
}

std::uint64_t sum_buffer(std::uint64_t p, std::uint64_t n, std::uint64_t, std::uint64_t, std::uint64_t) {
    std::uint64_t s = 0;
    for (std::uint64_t i = 0; i < n; ++i) s += reinterpret_cast<const unsigned char*>(p)[i];
    return s;
}

std::uint64_t loop_helper(std::uint64_t fn, std::uint64_t n, std::uint64_t, std::uint64_t, std::uint64_t) {
    std::uint64_t total = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        auto r = Invocation::current()->call_function(fn, {i, 0, 0, 0, 0});
        if (!r) return ~0ull;
        total += *r;
    }
    return total;
}

HelperTable test_helpers() {
    HelperTable t;
    t.add(100, {.name = "add3", .fn = add3}).value();
    t.add(101, {.name = "sum_buffer",
                .fn = sum_buffer,
                .args = {Arg::mem_ro, Arg::size, Arg::none, Arg::none, Arg::none}})
        .value();
    t.add(102, {.name = "loop", .fn = loop_helper}).value();
    t.add_kfunc(9000, {.name = "kadd3", .fn = add3}).value();
    return t;
}

TEST(Aot, HelpersKfuncsCallbacksAndCallx) {
    const HelperTable t = test_helpers();
    EXPECT_EQ(compile_and_load("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\ncall 100\nexit\n", t)->run({}).value(),
              6u);
    // kfunc: call with src=2.
    auto kf = asm_or_die("mov %r1, 4\nmov %r2, 5\nmov %r3, 6\ncall 100\nexit\n");
    kf[3].src = isa::call_kfunc;
    kf[3].imm = 9000;
    auto kobj = aot::compile(kf, {}, {.helpers = &t});
    ASSERT_TRUE(kobj) << kobj.error().message();
    EXPECT_EQ(aot::load(*kobj, t)->run({}).value(), 15u);

    std::array<std::byte, 4> ctx{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    EXPECT_EQ(compile_and_load("mov %r2, 4\ncall 101\nexit\n", t)->run(ctx).value(), 10u);
    auto outside = compile_and_load("mov %r2, 5\ncall 101\nexit\n", t)->run(ctx);
    ASSERT_FALSE(outside);
    EXPECT_NE(outside.error().message().find("sum_buffer"), std::string::npos) << outside.error().message();
    // Without prototypes at compile time the arguments are checked against the load-time ones.
    auto late = compile_and_load("mov %r2, 5\ncall 101\nexit\n", t, {}, {}, false);
    ASSERT_TRUE(late) << late.error().message();
    EXPECT_FALSE(late->run(ctx));

    auto cb = compile_and_load(
        "lddw %r1, func sq\nmov %r2, 5\ncall 102\nexit\nsq:\nmov %r0, %r1\nmul %r0, %r1\nexit\n", t);
    ASSERT_TRUE(cb) << cb.error().message();
    EXPECT_EQ(cb->run({}).value(), 30u);
    auto bad =
        compile_and_load("lddw %r1, func f\nmov %r2, 2\ncall 102\nexit\nf:\nldxdw %r0, [%r1+0]\nexit\n", t);
    ASSERT_TRUE(bad);
    auto br = bad->run({});
    ASSERT_FALSE(br);
    EXPECT_NE(br.error().message().find("insn 5"), std::string::npos) << br.error().message();

    // callx: a helper id, then a function address, in a register.
    auto cx = compile_and_load("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r6, 100\ncall %r6\nexit\n", t);
    ASSERT_TRUE(cx) << cx.error().message();
    EXPECT_EQ(cx->run({}).value(), 6u);
}

TEST(Aot, HelpersMustMatchTheObject) {
    HelperTable t = test_helpers();
    auto object = aot::compile(asm_or_die("call 100\nexit\n"), {}, {.helpers = &t});
    ASSERT_TRUE(object);
    auto missing = aot::load(*object, HelperTable{});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("unknown helper 100"), std::string::npos)
        << missing.error().message();
    // An unwind_on_zero helper needs code that checks for it.
    HelperTable unwinding = t;
    unwinding.set(100, {.name = "add3", .fn = add3, .unwind_on_zero = true}).value();
    auto unwind = aot::load(*object, unwinding);
    ASSERT_FALSE(unwind);
    EXPECT_EQ(unwind.error().code(), Errc::invalid_argument);
    EXPECT_NE(unwind.error().message().find("zero result"), std::string::npos) << unwind.error().message();
    // A helper that takes pointers, where the code was compiled for one that does not.
    HelperTable pointers = t;
    pointers
        .set(100,
             {.name = "add3", .fn = add3, .args = {Arg::mem, Arg::size, Arg::none, Arg::none, Arg::none}})
        .value();
    auto ptr = aot::load(*object, pointers);
    ASSERT_FALSE(ptr);
    EXPECT_NE(ptr.error().message().find("takes pointers"), std::string::npos) << ptr.error().message();
    EXPECT_TRUE(aot::load(*object, pointers, {.checked = false}).error().message().find("unchecked") !=
                std::string::npos);
}

TEST(Aot, CheckedAndBudgetMustMatchTheObject) {
    const auto prog = asm_or_die("mov %r0, 1\nexit\n");
    auto checked = aot::compile(prog);
    auto unchecked = aot::compile(prog, {}, {.checked = false});
    auto budget = aot::compile(prog, {}, {.budget = true});
    ASSERT_TRUE(checked && unchecked && budget);
    auto a = aot::load(*checked, {}, {.checked = false});
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), Errc::invalid_argument);
    EXPECT_EQ(a.error().message(),
              "load AOT object: \"ebpf_main\" was compiled checked but the options ask for unchecked "
              "mode (compile it with .checked = false)");
    EXPECT_FALSE(aot::load(*unchecked, {}, {.checked = true}));
    EXPECT_FALSE(aot::load(*checked, {}, {.insn_budget = 100}));
    EXPECT_FALSE(aot::load(*budget, {}, {}));
    EXPECT_EQ(aot::load(*unchecked, {}, {.checked = false})->run({}).value(), 1u);
    EXPECT_EQ(aot::load(*budget, {}, {.insn_budget = 100})->run({}).value(), 1u);
}

TEST(Aot, MapSymbolsThroughEitherResolver) {
    static std::uint64_t values[4] = {10, 20, 30, 40};
    const auto prog =
        "lddw %r1, map_value 7 + 16\nldxdw %r0, [%r1+0]\nadd %r0, 1\nstxdw [%r1+0], %r0\nexit\n";
    auto object = aot::compile(asm_or_die(prog));
    ASSERT_TRUE(object) << object.error().message();
    const auto region = std::as_writable_bytes(std::span(values));

    // Through VmOptions::resolve_lddw, as JitProgram::create: value includes the offset.
    VmOptions o;
    o.resolve_lddw = [&](std::size_t, const Insn& lo, const Insn& hi) -> Result<ResolvedImm> {
        EXPECT_EQ(lo.imm, 7);
        return ResolvedImm{reinterpret_cast<std::uint64_t>(values) + static_cast<std::uint32_t>(hi.imm),
                           region};
    };
    auto a = aot::load(*object, {}, o);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->run({}).value(), 31u);
    EXPECT_EQ(values[2], 31u);

    // Through a symbol resolver: the symbol is the base, the offset is added by the code.
    auto b = aot::load(*object, {}, {}, [&](std::string_view sym) -> Result<ResolvedImm> {
        EXPECT_EQ(sym, "ebpfrt_map_2_7");
        return ResolvedImm{reinterpret_cast<std::uint64_t>(values), region};
    });
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_EQ(b->run({}).value(), 32u);

    auto none = aot::load(*object, {});
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().code(), Errc::unsupported);
    auto refused = aot::load(*object, {}, {}, [](std::string_view s) -> Result<ResolvedImm> {
        return Error(Errc::not_found, fmt::format("no map for \"{}\"", s));
    });
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), Errc::not_found);

    auto btf = aot::compile(asm_or_die("lddw %r1, 0\nexit\n"));
    ASSERT_TRUE(btf);
    auto prog_btf = asm_or_die("lddw %r1, 0\nexit\n");
    prog_btf[0].src = isa::pseudo_btf_id;
    auto rejected = aot::compile(prog_btf);
    ASSERT_FALSE(rejected);
    EXPECT_EQ(rejected.error().code(), Errc::unsupported);
}

TEST(Aot, ManyProgramsAndThreads) {
    auto a = compile_and_load("mov %r0, 0\nmov %r3, 0\nadd %r0, %r1\nadd %r3, 1\njlt %r3, 1000, -3\nexit\n");
    auto object = aot::compile(asm_or_die("mov %r0, %r1\nmul %r0, 3\nexit\n"), {}, {.entry = "triple"});
    ASSERT_TRUE(a && object);
    auto b = aot::load(*object, {});
    ASSERT_TRUE(b) << b.error().message();
    std::vector<std::thread> threads;
    std::array<bool, 4> ok{};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            bool good = true;
            for (std::uint64_t i = 0; i < 2000; ++i) {
                good &= a->run_args({i + t, 0, 0, 0, 0}).value() == (i + t) * 1000;
                good &= b->run_args({i, 0, 0, 0, 0}).value() == i * 3;
            }
            ok[t] = good;
        });
    for (auto& th : threads) th.join();
    for (bool v : ok) EXPECT_TRUE(v);
    // The code stays mapped while a handle lives.
    JitProgram kept = *b;
    b = Error(Errc::not_found, "dropped");
    EXPECT_EQ(kept.run_args({5, 0, 0, 0, 0}).value(), 15u);
}

}  // namespace
}  // namespace ebpfrt
