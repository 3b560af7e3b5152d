#include <ebpfrt/btf.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" {
#include "btf_types.h"
}

namespace ebpfrt {
namespace {

std::vector<std::byte> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(c.size());
    std::memcpy(out.data(), c.data(), c.size());
    return out;
}

class BtfOfTestObject : public ::testing::Test {
protected:
    void SetUp() override {
        data_ = read_all(BTF_TYPES_BTF);
        ASSERT_FALSE(data_.empty()) << BTF_TYPES_BTF;
        auto b = Btf::parse(data_);
        ASSERT_TRUE(b) << b.error().message();
        btf_ = std::move(*b);
    }
    std::vector<std::byte> data_;
    Btf btf_;
};

TEST_F(BtfOfTestObject, LayoutMatchesTheNativeCompiler) {
    auto id = btf_.find("event", BtfKind::struct_type);
    ASSERT_TRUE(id);
    EXPECT_EQ(btf_.size_of(*id).value(), sizeof(struct event));
    const BtfType& t = btf_.type(*id);
    ASSERT_EQ(t.members.size(), 12u);
    EXPECT_EQ(t.members[0].name, "pid");
    EXPECT_EQ(t.members[1].name, "comm");
    EXPECT_EQ(t.members[1].bit_offset, offsetof(struct event, comm) * 8);
    EXPECT_EQ(btf_.type_name(t.members[1].type), "char[16]");
    EXPECT_EQ(t.members[2].name, "flags");
    EXPECT_EQ(t.members[2].bitfield_size, 3u);
    EXPECT_EQ(t.members[3].bitfield_size, 5u);
    EXPECT_EQ(t.members[3].bit_offset, t.members[2].bit_offset + 3);
    EXPECT_EQ(t.members[5].bit_offset, offsetof(struct event, addr) * 8);
    EXPECT_EQ(t.members[7].bit_offset, offsetof(struct event, ptr) * 8);
    EXPECT_EQ(btf_.type_name(t.members[7].type), "unsigned long long *");
    EXPECT_EQ(t.members[11].bit_offset, offsetof(struct event, counts) * 8);
    EXPECT_EQ(btf_.type_name(*id), "struct event");

    auto color = btf_.find("color", BtfKind::enum_type);
    ASSERT_TRUE(color);
    ASSERT_EQ(btf_.type(*color).enumerators.size(), 3u);
    EXPECT_EQ(btf_.type(*color).enumerators[2].name, "blue");
    EXPECT_EQ(btf_.type(*color).enumerators[2].value, 7u);
    auto big = btf_.find("big64", BtfKind::enum64);
    ASSERT_TRUE(big);
    EXPECT_EQ(btf_.type(*big).enumerators[1].value, 0x100000000ULL);

    auto func = btf_.find("use_types", BtfKind::func);
    ASSERT_TRUE(func);
    const BtfType& proto = btf_.type(btf_.type(*func).type);
    ASSERT_EQ(proto.kind, BtfKind::func_proto);
    ASSERT_EQ(proto.params.size(), 1u);
    EXPECT_EQ(proto.params[0].name, "e");
    EXPECT_EQ(btf_.type_name(proto.params[0].type), "struct event *");

    auto var = btf_.find("global_event", BtfKind::var);
    ASSERT_TRUE(var);
    EXPECT_EQ(btf_.size_of(*var).value(), sizeof(struct event));
    auto sec = btf_.find(".bss", BtfKind::datasec);
    ASSERT_TRUE(sec);
    ASSERT_EQ(btf_.type(*sec).vars.size(), 1u);
    EXPECT_EQ(btf_.type(*sec).vars[0].type, *var);
}

TEST_F(BtfOfTestObject, FormatsAValueByItsType) {
    struct event e;
    std::memset(&e, 0, sizeof e);
    e.pid = -42;
    std::strcpy(e.comm, "bash\"x");
    e.flags = 5;
    e.level = 17;
    e.color = blue;
    e.addr.port = 8080;
    e.addr.proto = 6;
    e.raw.u32v = 0x01020304;
    e.ptr = reinterpret_cast<unsigned long long*>(0x1000);
    e.ok = 1;
    e.delta = -5;
    e.big = big_high;
    e.counts[0] = 1;
    e.counts[1] = 2;
    e.counts[2] = 3;
    auto id = btf_.find("event", BtfKind::struct_type);
    ASSERT_TRUE(id);
    auto s = btf_.format(*id, std::as_bytes(std::span(&e, 1)));
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(*s,
              "{pid = -42, comm = \"bash\\\"x\", flags = 5, level = 17, color = blue, addr = {port = 8080, proto = 6}, "
              "raw = {u32v = 16909060, bytes = [4, 3, 2, 1]}, ptr = 0x1000, ok = true, delta = -5, big = big_high, "
              "counts = [1, 2, 3]}");

    auto short_value = btf_.format(*id, std::as_bytes(std::span(&e, 1)).first(8));
    ASSERT_FALSE(short_value);
    EXPECT_EQ(short_value.error().message(),
              "btf: 8 bytes is too short for struct event (" + std::to_string(sizeof e) + " bytes)");
}

TEST_F(BtfOfTestObject, ExtHasFuncInfoForTheProgram) {
    auto ext_data = read_all(BTF_TYPES_BTF_EXT);
    auto ext = BtfExt::parse(ext_data, btf_);
    ASSERT_TRUE(ext) << ext.error().message();
    ASSERT_EQ(ext->func_info.count(".text"), 1u);
    const auto& fi = ext->func_info.at(".text");
    ASSERT_EQ(fi.size(), 1u);
    EXPECT_EQ(fi[0].insn_off, 0u);
    EXPECT_EQ(btf_.type(fi[0].type_id).name, "use_types");
    ASSERT_EQ(ext->line_info.count(".text"), 1u);
    EXPECT_FALSE(ext->line_info.at(".text").empty());
    EXPECT_NE(ext->line_info.at(".text")[0].file.find("btf_types.bpf.c"), std::string::npos);
}

TEST_F(BtfOfTestObject, EveryTruncationIsAnErrorNotACrash) {
    for (std::size_t n = 0; n < data_.size(); ++n) {
        auto r = Btf::parse(std::span(data_).first(n));
        EXPECT_FALSE(r) << "parsed a " << n << "-byte prefix of " << data_.size();
        if (r) break;
        EXPECT_EQ(r.error().message().rfind("btf: ", 0), 0u) << r.error().message();
    }
}

TEST_F(BtfOfTestObject, CorruptedReferencesAreRejected) {
    // Flip every byte of the type section in turn: parse either fails cleanly or yields a type graph
    // whose every walk stays in bounds.
    std::uint32_t hdr_len, type_off, type_len;
    std::memcpy(&hdr_len, data_.data() + 4, 4);
    std::memcpy(&type_off, data_.data() + 8, 4);
    std::memcpy(&type_len, data_.data() + 12, 4);
    std::size_t rejected = 0;
    for (std::size_t i = hdr_len + type_off; i < hdr_len + type_off + type_len; ++i) {
        auto copy = data_;
        copy[i] ^= std::byte{0xff};
        auto r = Btf::parse(copy);
        if (!r) {
            ++rejected;
            continue;
        }
        for (std::uint32_t id = 0; id < r->size(); ++id) {
            (void)r->type_name(id);
            if (auto sz = r->size_of(id); sz && *sz < 4096) {
                std::vector<std::byte> zeros(*sz);
                (void)r->format(id, zeros);
            }
        }
    }
    EXPECT_GT(rejected, 0u);
}

TEST(Btf, HeaderErrors) {
    std::vector<std::byte> bad(24);
    auto r = Btf::parse(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "btf: bad magic 0x0000");
    auto tiny = Btf::parse(std::span(bad).first(3));
    EXPECT_EQ(tiny.error().message(), "btf: 3 bytes is too short for a header");
    bad[0] = std::byte{0xeb};
    bad[1] = std::byte{0x9f};
    auto be = Btf::parse(bad);
    EXPECT_EQ(be.error().message(), "btf: big-endian BTF is not supported");
}

TEST(Btf, KernelVmlinuxWhenPresent) {
    const char* path = "/sys/kernel/btf/vmlinux";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " on this machine";
    auto data = read_all(path);
    auto btf = Btf::parse(data);
    ASSERT_TRUE(btf) << btf.error().message();
    EXPECT_GT(btf->size(), 10000u);
    auto task = btf->find("task_struct", BtfKind::struct_type);
    ASSERT_TRUE(task);
    EXPECT_GT(btf->size_of(*task).value(), 1000u);
    bool has_pid = false;
    for (const auto& m : btf->type(*task).members) has_pid |= m.name == "pid";
    EXPECT_TRUE(has_pid);
}

}  // namespace
}  // namespace ebpfrt
