// ebpfrt-conformance-plugin against the protocol of shared/conformance/PLUGIN-PROTOCOL.md.

#include <gtest/gtest.h>

#include <algorithm>

#include <ebpfrt/aot.hpp>

#include "cli_test_util.hpp"

namespace ebpfrt::test {
namespace {

const std::string plugin = EBPFRT_PLUGIN;

// Bytes in the runner's encoding: two hex digits and two spaces each.
std::string spaced(const std::string& hex) {
    std::string s;
    for (std::size_t i = 0; i < hex.size(); i += 2) s += hex.substr(i, 2) + "  ";
    return s;
}

// mov32 r0, 0; mov32 r1, 2; add32 r0, 1; add32 r0, r1; add32 r0, r0; add32 r0, -3; exit  => 3
const std::string add_prog =
    "b400000000000000b40100000200000004000000010000000c100000000000000c0000000000000004000000fdffffff9500000000000000";
// ldxb r0, [r1+1]; exit  => the second memory byte
const std::string load_prog = "71100100000000009500000000000000";

TEST(Plugin, PrintsR0InLowercaseHexWithoutPrefix) {
    Output o = run(plugin, spaced(add_prog) + "\n");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "3\n");
}

TEST(Plugin, MemoryArgumentAndOptions) {
    Output o = run(plugin + " 'aa  cd  ' --interpret '' --debug", spaced(load_prog) + "\n");
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.out, "cd\n");
}

TEST(Plugin, LoadFailureOnStdout) {
    // A single lddw slot: truncated.
    Output o = run(plugin, spaced("1800000000000000") + "\n");
    EXPECT_EQ(o.status, 1);
    EXPECT_EQ(o.out.rfind("Failed to load code: ", 0), 0u) << o.out;
    EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 1);
}

TEST(Plugin, RuntimeFaultOnStderr) {
    // ldxb r0, [r1+1] with no memory: r1 = 0, so the load is outside any region.
    Output o = run(plugin, spaced(load_prog) + "\n");
    EXPECT_EQ(o.status, 1);
    EXPECT_EQ(o.out, "");
    EXPECT_NE(o.err.find("insn 0"), std::string::npos) << o.err;
}

TEST(Plugin, EnginesAndUnknownOptions) {
    // The JIT and AOT engines answer like the interpreter.
    Output jit = run(plugin + " --jit", spaced(add_prog) + "\n");
    Output compiled = run(plugin + " --aot", spaced(add_prog) + "\n");
    Output interp = run(plugin + " --interpret", spaced(add_prog) + "\n");
    EXPECT_EQ(jit.status, 0) << jit.err;
    EXPECT_EQ(jit.out, interp.out);
    if (aot::compile_available()) {
        EXPECT_EQ(compiled.status, 0) << compiled.err;
        EXPECT_EQ(compiled.out, interp.out);
        // A fault in AOT code is reported like the interpreter's.
        Output fault = run(plugin + " --aot", spaced(load_prog) + "\n");
        EXPECT_EQ(fault.status, 1);
        EXPECT_EQ(fault.out, "");
        EXPECT_NE(fault.err.find("insn 0"), std::string::npos) << fault.err;
    }
    Output bad = run(plugin + " --frob", spaced(add_prog) + "\n");
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("unknown option \"--frob\""), std::string::npos);
}

TEST(Plugin, GarbageInputIsALoadError) {
    Output o = run(plugin, "zz  yy\n");
    EXPECT_EQ(o.status, 1);
    EXPECT_EQ(o.out.rfind("Failed to load code: program: hex:", 0), 0u) << o.out;
    Output empty = run(plugin, "");
    EXPECT_EQ(empty.status, 1);
    EXPECT_EQ(empty.out.rfind("Failed to load code: ", 0), 0u) << empty.out;
}

}  // namespace
}  // namespace ebpfrt::test
