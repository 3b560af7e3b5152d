// Runtime::load_aot: objects compiled by aot::compile, written out as bytes, loaded into a fresh runtime
// and compared with the interpreter running the same object (results, maps, globals); binding of maps by
// name and shape; the object's checked mode and budget; bad objects.

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <ebpfrt/aot.hpp>
#include <ebpfrt/runtime.hpp>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace ebpfrt {
namespace {

struct Empty {
    std::uint64_t pad = 0;
};
using Count = std::array<std::uint64_t, 2>;  // struct value { __u64 count; __u32 last; }

std::vector<std::byte> round_trip(const std::vector<std::byte>& object, const std::string& what) {
    // Through a file, as an object built elsewhere arrives.
    const std::string path =
        ::testing::TempDir() + "ebpfrt-test-" + std::to_string(getpid()) + "-" + what + ".o";
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(object.data()), static_cast<std::streamsize>(object.size()));
    }
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(path.c_str());
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

template <class T>
T global(const Collection& c, std::string_view var) {
    T v{};
    auto g = c.global(var);
    EXPECT_TRUE(g) << (g ? "" : g.error().message());
    if (g) std::memcpy(&v, g->data(), sizeof v);
    return v;
}

class LoadAot : public ::testing::Test {
protected:
    void SetUp() override {
        if (!aot::compile_available()) GTEST_SKIP() << "built without LLVM: no aot::compile to make objects";
        auto o = Object::open(ELF_FEATURES_OBJECT);
        ASSERT_TRUE(o) << o.error().message();
        obj_ = std::move(*o);
    }

    // Compiles program `name` of the object the way a build machine would: by index into its maps.
    std::vector<std::byte> compile(std::string_view name, aot::CompileOptions o = {}, aot::Target t = {}) {
        auto helpers = Runtime::create().value();
        const ProgramSpec* ps = obj_.program(name).value();
        o.maps = obj_.maps();
        if (o.helpers == nullptr) o.helpers = &helpers.helpers();
        auto native = aot::compile(ps->insns, t, o);
        EXPECT_TRUE(native) << native.error().message();
        return native ? round_trip(*native, std::string(name)) : std::vector<std::byte>{};
    }

    ProgType type(std::string_view name) const { return obj_.program(name).value()->type; }

    Object obj_;
};

TEST_F(LoadAot, MapsAndGlobalsLikeTheInterpreter) {
    const auto on_entry = compile("on_entry");
    const auto on_entry_too = compile("on_entry_too");
    ASSERT_FALSE(on_entry.empty());

    auto info = aot::inspect(on_entry);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_TRUE(info->checked);
    EXPECT_FALSE(info->budget);
    ASSERT_EQ(info->maps.size(), obj_.maps().size());
    for (std::size_t i = 0; i < obj_.maps().size(); ++i) {
        EXPECT_EQ(info->maps[i].name, obj_.maps()[i].name);
        EXPECT_EQ(info->maps[i].type, obj_.maps()[i].type);
        EXPECT_EQ(info->maps[i].value_size, obj_.maps()[i].value_size);
    }

    // The same runs on the interpreter and on the loaded object, each in a runtime of its own.
    struct Outcome {
        std::vector<std::uint64_t> r0;
        std::uint64_t count = 0, bss = 0;
    };
    auto scenario = [&](bool native) {
        auto rt = Runtime::create().value();
        auto coll = rt.load(obj_).value();
        auto counts = coll.map<std::uint32_t, Count>("counts").value();
        EXPECT_TRUE(counts.update(1, {41, 0}));
        Program a = coll.program("on_entry").value(), b = coll.program("on_entry_too").value();
        if (native) {
            auto pa = rt.load_aot("on_entry", on_entry, coll, type("on_entry"));
            auto pb = rt.load_aot("on_entry_too", on_entry_too, coll, type("on_entry_too"));
            EXPECT_TRUE(pa) << pa.error().message();
            EXPECT_TRUE(pb) << pb.error().message();
            if (!pa || !pb) return Outcome{};
            EXPECT_EQ(pa->name(), "on_entry");
            EXPECT_NE(pa->id(), a.id());
            a = *pa;
            b = *pb;
        }
        Outcome out;
        Empty ctx;
        for (int i = 0; i < 3; ++i) {
            auto r = a.try_run(std::as_writable_bytes(std::span(&ctx, 1)));
            EXPECT_TRUE(r) << r.error().message();
            out.r0.push_back(r.value_or(~0ull));
        }
        const std::uint64_t hundred = 100;
        std::memcpy(coll.global("data_counter")->data(), &hundred, 8);  // the code sees host writes at once
        out.r0.push_back(b.run(ctx));
        out.count = counts.lookup(1).value()[0];
        out.bss = global<std::uint64_t>(coll, "bss_counter");
        return out;
    };
    const Outcome interp = scenario(false), native = scenario(true);
    EXPECT_EQ(interp.r0, (std::vector<std::uint64_t>{1, 1, 1, 6u * 7 + 100}));
    EXPECT_EQ(native.r0, interp.r0);
    EXPECT_EQ(native.count, interp.count);
    EXPECT_EQ(native.count, 44u);
    EXPECT_EQ(native.bss, interp.bss);
}

TEST_F(LoadAot, CompiledFromAProgramBindsByTheRuntimesNames) {
    // STYLE §8: compile a loaded program, load it later by name in a runtime that has its maps.
    auto rt = Runtime::create().value();
    auto coll = rt.load(obj_).value();
    auto native = aot::compile(coll.program("on_entry").value(), {.opt_level = 3});
    ASSERT_TRUE(native) << native.error().message();
    const auto bytes = round_trip(*native, "from_program");

    auto fast = rt.load_aot("on_parse", bytes);
    ASSERT_TRUE(fast) << fast.error().message();
    Empty ctx;
    EXPECT_EQ(fast->run(ctx), 1u);
    EXPECT_EQ(global<std::uint64_t>(coll, "bss_counter"), (2u * 7 + 3) + (3u * 7 + 3));

    // A fresh runtime that loaded the same object has the same map names.
    auto rt2 = Runtime::create().value();
    auto coll2 = rt2.load(obj_).value();
    auto again = rt2.load_aot("on_entry", bytes);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->run(ctx), 1u);
    EXPECT_EQ(global<std::uint64_t>(coll2, "bss_counter"), (2u * 7 + 3) + (3u * 7 + 3));
    EXPECT_EQ(global<std::uint64_t>(coll, "bss_counter"), (2u * 7 + 3) + (3u * 7 + 3));

    // A runtime without them cannot bind it.
    auto empty = Runtime::create().value();
    auto missing = empty.load_aot("on_entry", bytes);
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Errc::not_found);
    EXPECT_NE(missing.error().message().find("map \""), std::string::npos) << missing.error().message();
}

TEST_F(LoadAot, TailCallsAndBudget) {
    auto rt = Runtime::create().value();
    auto coll = rt.load(obj_).value();
    auto tail = rt.load_aot("tail_target", compile("tail_target"), coll, type("tail_target"));
    ASSERT_TRUE(tail) << tail.error().message();
    auto stats = coll.map<std::uint32_t, std::uint64_t>("stats").value();
    auto jumps = coll.map<std::uint32_t, std::uint32_t>("jumps").value();
    Empty ctx;
    // The native program calls itself through jumps[5]: the first run plus 33 tail calls, as load()'s.
    ASSERT_TRUE(jumps.update(5, tail->id()));
    ASSERT_TRUE(tail->try_run(std::as_writable_bytes(std::span(&ctx, 1))));
    EXPECT_EQ(stats.lookup(0).value(), 34u);
    // Into the interpreted tail_target: compiled code hands the chain to the interpreter, which goes on
    // counting from there (again the first run plus 33 tail calls).
    ASSERT_TRUE(jumps.update(5, coll.program("tail_target").value().id()));
    ASSERT_TRUE(tail->try_run(std::as_writable_bytes(std::span(&ctx, 1))));
    EXPECT_EQ(stats.lookup(0).value(), 34u + 34u);
    // And back: the interpreted tail_target jumps into the native one, which goes on with the chain.
    ASSERT_TRUE(jumps.update(5, tail->id()));
    ASSERT_TRUE(coll.program("tail_target").value().try_run(std::as_writable_bytes(std::span(&ctx, 1))));
    EXPECT_EQ(stats.lookup(0).value(), 34u + 34u + 34u);

    // Budget: an object compiled with one runs under the runtime's, and must be given one.
    auto budgeted = Runtime::create({.insn_budget = 1000}).value();
    auto coll_b = budgeted.load(obj_).value();
    const auto with_budget = compile("on_entry_too", {.budget = true});
    auto p = budgeted.load_aot("on_entry_too", with_budget, coll_b, type("on_entry_too"));
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_TRUE(p->try_run(std::as_writable_bytes(std::span(&ctx, 1))));
    auto no_budget = rt.load_aot("on_entry_too", with_budget, coll, type("on_entry_too"));
    ASSERT_FALSE(no_budget);
    EXPECT_EQ(no_budget.error().code(), Errc::invalid_argument);
    auto missing_budget =
        budgeted.load_aot("on_entry_too", compile("on_entry_too"), coll_b, type("on_entry_too"));
    ASSERT_FALSE(missing_budget);
    EXPECT_EQ(missing_budget.error().code(), Errc::invalid_argument);
    EXPECT_NE(missing_budget.error().message().find(".budget = true"), std::string::npos)
        << missing_budget.error().message();
    auto tiny = Runtime::create({.insn_budget = 5}).value();
    auto coll_t = tiny.load(obj_).value();
    auto slow = tiny.load_aot("on_entry_too", with_budget, coll_t, type("on_entry_too")).value();
    EXPECT_FALSE(slow.try_run(std::as_writable_bytes(std::span(&ctx, 1))));
}

TEST_F(LoadAot, CheckedModeIsTheObjects) {
    const auto unchecked = compile("on_entry", {.checked = false});
    const auto checked = compile("on_entry");
    auto rt = Runtime::create().value();
    auto coll = rt.load(obj_).value();
    auto refused = rt.load_aot("on_entry", unchecked, coll, type("on_entry"));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), Errc::invalid_argument);
    EXPECT_EQ(refused.error().message().find('\n'), std::string::npos);
    EXPECT_NE(refused.error().message().find("load_aot \"on_entry\": "), std::string::npos)
        << refused.error().message();

    auto fast_rt = Runtime::create({.checked = false}).value();
    auto fast_coll = fast_rt.load(obj_).value();
    Empty ctx;
    auto a = fast_rt.load_aot("on_entry", unchecked, fast_coll, type("on_entry"));
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->run(ctx), 1u);
    auto b = fast_rt.load_aot("on_entry", checked, fast_coll, type("on_entry"));  // checks cost, never harm
    ASSERT_TRUE(b) << b.error().message();
    EXPECT_EQ(b->run(ctx), 1u);
    EXPECT_EQ(global<std::uint64_t>(fast_coll, "bss_counter"), 2 * ((2u * 7 + 3) + (3u * 7 + 3)));
}

TEST_F(LoadAot, MapsMustHaveTheRecordedShape) {
    const auto bytes = compile("on_entry");
    auto rt = Runtime::create().value();
    // A "counts" of another value size, and the object's globals by their runtime names.
    auto wrong = rt.create_map(
        {.name = "counts", .type = MapType::hash, .key_size = 4, .value_size = 8, .max_entries = 128});
    ASSERT_TRUE(wrong) << wrong.error().message();
    auto r = rt.load_aot("on_entry", bytes);
    ASSERT_FALSE(r);
    // Either the shape of "counts" or a missing global comes first; both name the map.
    EXPECT_TRUE(r.error().code() == Errc::invalid_argument || r.error().code() == Errc::not_found);
    EXPECT_NE(r.error().message().find("map \""), std::string::npos) << r.error().message();

    auto other = Runtime::create().value();
    auto coll = other.load(obj_).value();
    // Loaded by another runtime: its maps are not this runtime's.
    auto foreign = rt.load_aot("on_entry", bytes, coll, type("on_entry"));
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().code(), Errc::invalid_argument);

    // The collection of another object: "counts" is missing.
    auto counter = Object::open(COUNTER_OBJECT).value();
    auto coll_c = other.load(counter).value();
    auto absent = other.load_aot("on_entry", bytes, coll_c, type("on_entry"));
    ASSERT_FALSE(absent);
    EXPECT_EQ(absent.error().code(), Errc::not_found);
    EXPECT_NE(absent.error().message().find("map \"counts\": not in collection"), std::string::npos)
        << absent.error().message();
}

TEST_F(LoadAot, WithoutRecordedMapsBindsByIndex) {
    auto helpers = Runtime::create().value();
    const ProgramSpec* ps = obj_.program("on_entry").value();
    auto native = aot::compile(ps->insns, {}, {.helpers = &helpers.helpers()});
    ASSERT_TRUE(native) << native.error().message();
    auto info = aot::inspect(*native).value();
    EXPECT_TRUE(info.maps.empty());
    auto rt = Runtime::create().value();
    auto coll = rt.load(obj_).value();
    auto by_name = rt.load_aot("on_entry", *native);
    ASSERT_FALSE(by_name);
    EXPECT_EQ(by_name.error().code(), Errc::invalid_argument);
    auto by_index = rt.load_aot("on_entry", *native, coll, type("on_entry"));
    ASSERT_TRUE(by_index) << by_index.error().message();
    Empty ctx;
    EXPECT_EQ(by_index->run(ctx), 1u);
}

TEST_F(LoadAot, ProgramsWithoutMapsAndTheVerifier) {
    // r0 = *(u32 *)(r1 + 0) * 3 on a host context.
    const std::vector<Insn> code = isa::assemble("ldxw %r0, [%r1+0]\nmul %r0, 3\nexit\n").value();
    auto native = aot::compile(code, {}, {.entry = "triple"});
    ASSERT_TRUE(native) << native.error().message();
    auto rt = Runtime::create().value();
    auto p = rt.load_aot("triple", *native);
    ASSERT_TRUE(p) << p.error().message();
    std::uint32_t v = 14;
    EXPECT_EQ(p->run(v), 42u);
    EXPECT_EQ(p->insns().size(), code.size());
    // Checked: a context too short faults instead of reading past it.
    std::uint16_t small = 1;
    auto fault = p->try_run(std::as_writable_bytes(std::span(&small, 1)));
    ASSERT_FALSE(fault);
    EXPECT_NE(fault.error().message().find("run \"triple\""), std::string::npos) << fault.error().message();

    // The verifier sees the bytecode the object carries: r0 unset at exit is rejected as by load_program.
    const std::vector<Insn> bad = isa::assemble("mov %r1, 0\nexit\n").value();
    auto rejected = rt.load_aot("bad", aot::compile(bad).value());
    ASSERT_FALSE(rejected);
    EXPECT_EQ(rejected.error().code(), Errc::verifier_rejected);
}

TEST_F(LoadAot, BadObjectsAreErrors) {
    auto rt = Runtime::create({.verify = false}).value();
    auto expect_error = [&](std::span<const std::byte> object, std::string_view what) {
        auto r = rt.load_aot("bad", object);
        EXPECT_FALSE(r) << what;
        if (r) return Errc{};
        EXPECT_EQ(r.error().message().find('\n'), std::string::npos) << r.error().message();
        EXPECT_EQ(r.error().message().rfind("load_aot \"bad\": ", 0), 0u) << r.error().message();
        return r.error().code();
    };
    const std::vector<Insn> code = isa::assemble("mov %r1, 6\ncall 12345\nexit\n").value();
    const auto good = aot::compile(code, {}, {.entry = "probe_entry"}).value();

    EXPECT_EQ(expect_error({}, "empty"), Errc::bad_elf);
    std::vector<std::byte> garbage(4096);
    std::mt19937 rng(7);
    for (auto& b : garbage) b = static_cast<std::byte>(rng());
    EXPECT_EQ(expect_error(garbage, "garbage"), Errc::bad_elf);
    for (std::size_t n = 0; n < good.size(); n += std::max<std::size_t>(1, good.size() / 97))
        expect_error(std::span(good).first(n), "truncated");
    // Flipped bytes anywhere must not crash the loader (code bytes are not validated: they are run only
    // when everything else loads, and this program's helper is unknown anyway).
    for (int i = 0; i < 300; ++i) {
        auto copy = good;
        for (int k = 0; k < 4; ++k) copy[rng() % copy.size()] ^= static_cast<std::byte>(1u << (rng() % 8));
        (void)rt.load_aot("bad", copy);
    }

    // Unknown helper: the runtime has no helper 12345.
    auto unknown = rt.load_aot("bad", good);
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), Errc::invalid_argument);
    EXPECT_NE(unknown.error().message().find("unknown helper 12345"), std::string::npos)
        << unknown.error().message();

    // Another architecture.
    auto arm = aot::compile(code, {.triple = "aarch64-linux-gnu"}, {.entry = "probe_entry"});
    ASSERT_TRUE(arm) << arm.error().message();
#if defined(__x86_64__)
    EXPECT_EQ(expect_error(*arm, "aarch64"), Errc::unsupported);
    auto arm_r = rt.load_aot("bad", *arm);
    EXPECT_NE(arm_r.error().message().find("aarch64"), std::string::npos) << arm_r.error().message();
#endif

    // A program that loads, then broken in two ways.
    const std::vector<Insn> random = isa::assemble("call 7\nexit\n").value();
    const auto known = aot::compile(random, {}, {.entry = "probe_entry"}).value();
    ASSERT_TRUE(rt.load_aot("random", known)) << "unchanged, it loads";

    // Missing entry symbol: rename it in the symbol string table (the metadata still names it).
    auto renamed = known;
    // The last occurrence: LLVM writes .strtab after the sections (the metadata names it too).
    const std::string entry = std::string("probe_entry") + '\0';
    bool done = false;
    for (std::size_t i = renamed.size() - entry.size(); i > 0 && !done; --i)
        if (std::memcmp(renamed.data() + i, entry.data(), entry.size()) == 0) {
            renamed[i] = std::byte{'q'};
            done = true;
        }
    ASSERT_TRUE(done);
    EXPECT_EQ(expect_error(renamed, "no entry"), Errc::bad_elf);

    // A helper symbol the loader does not know: "ebpfrt_helper_7" (get_prandom_u32) made "ebpfrt_helpex_7".
    auto helper_sym = known;
    const std::string sym = "ebpfrt_helper_7";
    done = false;
    for (std::size_t i = 0; i + sym.size() <= helper_sym.size() && !done; ++i)
        if (std::memcmp(helper_sym.data() + i, sym.data(), sym.size()) == 0) {
            helper_sym[i + 12] = std::byte{'x'};
            done = true;
        }
    ASSERT_TRUE(done);
    EXPECT_EQ(expect_error(helper_sym, "unknown symbol"), Errc::not_found);
}

}  // namespace
}  // namespace ebpfrt
