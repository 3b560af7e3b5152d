// The public eBPF conformance suite, in process: every `.json` test of EBPFRT_SHARED_DIR/conformance/tests
// is one test case. The program runs in the interpreter (checked mode) with the conformance plugin's
// helpers and the test memory as its context; r0 must equal expected_r0, or, when the test expects an
// error, preparing or running it must fail.

#include <ebpfrt/isa.hpp>
#include <ebpfrt/vm.hpp>

#include <cctype>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli/conformance_helpers.hpp"
#include "suite.hpp"

namespace ebpfrt {
namespace {

constexpr const char* missing_suite = "suite_not_found";

std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& path : test::list_files(test::conformance_dir(), ".json")) names.push_back(path.stem().string());
    if (names.empty()) names.emplace_back(missing_suite);
    return names;
}

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string s = info.param;
    for (char& c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return s;
}

class Conformance : public ::testing::TestWithParam<std::string> {};

TEST_P(Conformance, Interpreter) {
    if (GetParam() == missing_suite) {
        GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir()
                     << " (set EBPFRT_SHARED_DIR)";
    }
    const auto path = test::conformance_dir() / (GetParam() + ".json");
    std::string why;
    auto c = test::load_case(path, why);
    ASSERT_TRUE(c) << path << ": " << why;

    auto prog = isa::decode(c->program);
    ASSERT_TRUE(prog) << prog.error().message();
    auto memory = c->memory;  // the program may write to it

    const HelperTable helpers = conformance::helpers();
    auto vm = Interpreter::create(*prog, helpers, {.checked = true, .insn_budget = 100'000'000});
    if (c->expected_error) {
        if (!vm) return;  // rejected when prepared: fine
        auto r = vm->run(memory);
        EXPECT_FALSE(r) << "expected the error \"" << *c->expected_error << "\", got r0 = " << fmt::format("0x{:x}", *r);
        return;
    }
    ASSERT_TRUE(vm) << vm.error().message() << "\n" << isa::disassemble(*prog);
    auto r = vm->run(memory);
    ASSERT_TRUE(r) << r.error().message() << "\n" << isa::disassemble(*prog);
    ASSERT_TRUE(c->expected_r0) << "no expected_r0 in " << path;
    const std::uint64_t want = std::stoull(*c->expected_r0, nullptr, 16);
    EXPECT_EQ(*r, want) << fmt::format("r0 = 0x{:x}, want 0x{:x}\n", *r, want) << isa::disassemble(*prog);
}

// The same programs in unchecked mode (no bounds checks: what a verified program runs with).
TEST_P(Conformance, InterpreterUnchecked) {
    if (GetParam() == missing_suite) {
        GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir()
                     << " (set EBPFRT_SHARED_DIR)";
    }
    const auto path = test::conformance_dir() / (GetParam() + ".json");
    std::string why;
    auto c = test::load_case(path, why);
    ASSERT_TRUE(c) << path << ": " << why;
    if (c->expected_error) GTEST_SKIP() << "expects an error: not run without checks";
    auto prog = isa::decode(c->program);
    ASSERT_TRUE(prog) << prog.error().message();
    auto memory = c->memory;
    auto vm = Interpreter::create(*prog, conformance::helpers(), {.checked = false, .insn_budget = 100'000'000});
    ASSERT_TRUE(vm) << vm.error().message();
    auto r = vm->run(memory);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_TRUE(c->expected_r0);
    EXPECT_EQ(*r, std::stoull(*c->expected_r0, nullptr, 16));
}

INSTANTIATE_TEST_SUITE_P(Suite, Conformance, ::testing::ValuesIn(case_names()), test_name);

// The suite is all there (a partial copy would silently test less).
TEST(ConformanceSuite, HasAllTests) {
    const auto files = test::list_files(test::conformance_dir(), ".json");
    if (files.empty()) GTEST_SKIP() << "conformance suite not found in " << test::conformance_dir();
    EXPECT_EQ(files.size(), 313u);
}

}  // namespace
}  // namespace ebpfrt
