// The .ebpfrt.meta encoding (src/aot/meta.cpp): map records (version 2), version 1 objects, broken map
// records; aot::inspect on objects for either machine; CompileOptions::maps.

#include "aot/meta.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <vector>

namespace ebpfrt {
namespace {

detail::AotMeta sample_meta() {
    detail::AotMeta m;
    m.checked = false;
    m.budget = true;
    m.entry = "probe";
    m.insns = isa::assemble("lddw %r1, 0\nmov %r0, 0\nexit\n").value();
    m.helpers = {{detail::AotHelper::helper, 1, false, true}};
    m.functions = {"probe"};
    m.maps = {{"counts", static_cast<std::uint32_t>(MapType::hash), 4, 16, 128, 0, 1},
              {".rodata", static_cast<std::uint32_t>(MapType::array), 4, 12, 1, 0x80, 3}};
    return m;
}

TEST(AotMeta, MapsRoundTrip) {
    const auto m = sample_meta();
    auto d = detail::decode_aot_meta(detail::encode_aot_meta(m));
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_FALSE(d->checked);
    EXPECT_TRUE(d->budget);
    EXPECT_EQ(d->entry, "probe");
    ASSERT_EQ(d->maps.size(), 2u);
    EXPECT_EQ(d->maps[0].name, "counts");
    EXPECT_EQ(d->maps[0].value_size, 16u);
    EXPECT_EQ(d->maps[1].name, ".rodata");
    EXPECT_EQ(d->maps[1].flags, 0x80u);
    EXPECT_EQ(d->maps[1].origin, 3u);
}

TEST(AotMeta, VersionOneHasNoMaps) {
    auto m = sample_meta();
    m.maps.clear();
    auto bytes = detail::encode_aot_meta(m);
    bytes.resize(bytes.size() - 4);  // version 1 ends after the functions
    const std::uint32_t one = 1;
    std::memcpy(bytes.data() + 8, &one, 4);
    auto d = detail::decode_aot_meta(bytes);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_TRUE(d->maps.empty());
    EXPECT_EQ(d->functions, std::vector<std::string>{"probe"});

    const std::uint32_t future = detail::aot_meta_version + 1;
    std::memcpy(bytes.data() + 8, &future, 4);
    auto f = detail::decode_aot_meta(bytes);
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().message().find("not supported"), std::string::npos) << f.error().message();
}

TEST(AotMeta, BrokenMapRecordsAreErrors) {
    const auto bytes = detail::encode_aot_meta(sample_meta());
    const auto full = detail::encode_aot_meta([] {
        auto m = sample_meta();
        m.maps.clear();
        return m;
    }());
    // Every cut inside the map records.
    for (std::size_t n = full.size() - 4; n < bytes.size(); ++n) {
        auto d = detail::decode_aot_meta(std::span(bytes).first(n));
        ASSERT_FALSE(d) << n;
        EXPECT_EQ(d.error().code(), Errc::bad_elf);
    }
    // A map count far beyond the bytes: refused before anything is allocated.
    auto huge = full;
    const std::uint32_t n = 0xffffffffu;
    std::memcpy(huge.data() + huge.size() - 4, &n, 4);
    auto d = detail::decode_aot_meta(huge);
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().message().find("truncated in maps"), std::string::npos) << d.error().message();
}

TEST(AotInspect, RecordsCompileOptionsMaps) {
    if (!aot::compile_available()) GTEST_SKIP() << "built without LLVM";
    const auto code = isa::assemble("lddw %r1, 0\nmov %r0, 0\nexit\n").value();
    // lddw src=5 (map index) 1.
    std::vector<Insn> prog = code;
    prog[0].src = isa::pseudo_map_idx;
    prog[0].imm = 1;
    MapSpec a{.name = "a", .type = MapType::hash, .key_size = 4, .value_size = 8, .max_entries = 16};
    MapSpec b{.name = "b", .type = MapType::array, .key_size = 4, .value_size = 32, .max_entries = 2};
    const std::vector<MapSpec> maps{a, b};
    for (const char* triple : {"x86_64-linux-gnu", "aarch64-linux-gnu"}) {
        auto obj = aot::compile(prog, {.triple = triple}, {.maps = maps});
        ASSERT_TRUE(obj) << obj.error().message();
        auto info = aot::inspect(*obj);
        ASSERT_TRUE(info) << info.error().message();
        EXPECT_EQ(info->arch, std::string(triple).substr(0, std::string(triple).find('-')));
        EXPECT_EQ(info->entry, "ebpf_main");
        EXPECT_TRUE(info->checked);
        EXPECT_EQ(info->insns.size(), prog.size());
        ASSERT_EQ(info->maps.size(), 2u);
        EXPECT_EQ(info->maps[1].name, "b");
        EXPECT_EQ(info->maps[1].type, MapType::array);
        EXPECT_EQ(info->maps[1].value_size, 32u);
        EXPECT_EQ(info->maps[1].max_entries, 2u);
    }
    // An index past the maps given.
    auto past = aot::compile(prog, {}, {.maps = std::span(maps).first(1)});
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code(), Errc::invalid_argument);
    EXPECT_NE(past.error().message().find("map index 1 is past the 1 maps given"), std::string::npos)
        << past.error().message();
    // Without maps: none recorded.
    auto bare = aot::compile(prog).value();
    EXPECT_TRUE(aot::inspect(bare).value().maps.empty());
}

TEST(AotInspect, NotAnObjectOfOurs) {
    std::vector<std::byte> junk(100, std::byte{0x7f});
    auto r = aot::inspect(junk);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::bad_elf);
    EXPECT_FALSE(aot::inspect({}));
}

}  // namespace
}  // namespace ebpfrt
