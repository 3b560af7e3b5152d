// `ebpfrt run FILE.o --section S`, `ebpfrt aot FILE.o --section S` and `ebpfrt map list|dump` on
// clang-compiled objects.

#include <gtest/gtest.h>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/runtime.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cli_test_util.hpp"

namespace ebpfrt::test {
namespace {

const std::string cli = EBPFRT_CLI;
const std::string counter = CLI_COUNTER_OBJECT;    // tests/bpf/counter.bpf.c
const std::string features = CLI_FEATURES_OBJECT;  // tests/bpf/elf_features.bpf.c

// struct input { u32 key; u32 producer; u64 seq; } with key 3.
const std::string key3 = "'03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00'";

class ElfCli : public ::testing::Test {
protected:
    void TearDown() override { ::unlink(("/dev/shm/" + shm_).c_str()); }
    std::string shm_ = "ebpfrt-cli-test-" + std::to_string(::getpid());
};

TEST_F(ElfCli, RunPicksTheProgramBySectionOrName) {
    Output o = run(cli + " run " + counter + " --section ext/produce --mem " + key3);
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "0x0\n");  // a ring buffer record reserved and submitted
    o = run(cli + " run " + counter + " --section count --mem " + key3);
    EXPECT_EQ(o.status, 0) << o.err;
    for (const char* engine : {"jit", "aot"}) {
        o = run(cli + " run " + counter + " --section count --engine " + engine + " --mem " + key3);
        EXPECT_EQ(o.status, 0) << engine << ": " << o.err;
        EXPECT_EQ(o.out, "0x0\n") << engine;
    }
}

TEST_F(ElfCli, AmbiguousOrUnknownSectionIsOneLineError) {
    Output o = run(cli + " run " + counter);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("choose one with --section"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("ext/count"), std::string::npos) << o.err;
    o = run(cli + " run " + counter + " --section nope");
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("no program in section or named \"nope\""), std::string::npos) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

TEST_F(ElfCli, AotCompilesAProgramOfAnObjectWithItsMaps) {
    const std::string out = temp_path("count.aot.o");
    Output o = run(cli + " aot " + counter + " --section count -o " + out);
    ASSERT_EQ(o.status, 0) << o.err;
    const std::string text = slurp(out);
    ASSERT_GT(text.size(), 64u);
    std::vector<std::byte> native(text.size());
    std::memcpy(native.data(), text.data(), text.size());
    std::remove(out.c_str());

    // The object's maps, made by loading it; the native code binds to them by name.
    auto rt = Runtime::create().value();
    auto obj = Object::open(counter).value();
    auto coll = rt.load(obj).value();
    auto aot = rt.load_aot("count_native", native, coll, ProgType::ext);
    ASSERT_TRUE(aot) << aot.error().message();
    struct Input {
        std::uint32_t key, producer;
        std::uint64_t seq;
    } in{3, 0, 0};
    EXPECT_EQ(coll.program("count").value().run(in), 0u);
    EXPECT_EQ(aot->run(in), 0u);
    auto counts = coll.map<std::uint32_t, std::uint64_t>("acounts").value();  // the array: key 3 exists
    EXPECT_EQ(counts.lookup(3).value_or(0), 2u) << "one increment by the bytecode, one by the native code";

    o = run(cli + " aot " + counter + " -o " + out);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("choose one with --section"), std::string::npos) << o.err;
    o = run(cli + " aot " + counter + " --section nope -o " + out);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("no program in section or named \"nope\""), std::string::npos) << o.err;
}

TEST_F(ElfCli, SharedMapsSurviveTheRunAndDumpByBtf) {
    // Eleven runs of `count` on key 3 in a named arena; a later process lists and dumps the maps.
    Output o = run(cli + " run " + counter + " --section count --shm " + shm_ + " --mem " + key3 + " --repeat 10");
    ASSERT_EQ(o.status, 0) << o.err;
    o = run(cli + " map list --shm " + shm_);
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("acounts"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("ringbuf"), std::string::npos) << o.out;
    o = run(cli + " map dump acounts --shm " + shm_ + " --object " + counter);
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("3 => 11\n"), std::string::npos) << o.out;
    EXPECT_NE(o.out.find("16 entries"), std::string::npos) << o.out;
    o = run(cli + " map dump missing --shm " + shm_);
    EXPECT_EQ(o.status, 1);
    EXPECT_NE(o.err.find("missing"), std::string::npos) << o.err;
}

TEST_F(ElfCli, DumpOfAnObjectShowsGlobalsByType) {
    Output o = run(cli + " map dump .rodata " + features);
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("{threshold = 7}"), std::string::npos) << o.out;
    o = run(cli + " map list " + features);
    ASSERT_EQ(o.status, 0) << o.err;
    EXPECT_NE(o.out.find("array_of_maps"), std::string::npos) << o.out;
}

}  // namespace
}  // namespace ebpfrt::test
