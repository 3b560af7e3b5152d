// Object::open on objects compiled from tests/bpf/*.bpf.c at build time.

#include <ebpfrt/elf.hpp>
#include <ebpfrt/vm.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace ebpfrt {
namespace {

const MapSpec& map_named(const Object& o, std::string_view name) {
    for (const auto& m : o.maps())
        if (m.name == name) return m;
    throw std::runtime_error("no map " + std::string(name));
}

std::size_t count_calls(const std::vector<Insn>& code) {
    return static_cast<std::size_t>(std::count_if(code.begin(), code.end(), [](const Insn& i) {
        return i.opcode == isa::opcode_call && i.src == isa::call_local;
    }));
}

class ElfFeatures : public ::testing::Test {
protected:
    void SetUp() override {
        auto o = Object::open(ELF_FEATURES_OBJECT);
        ASSERT_TRUE(o) << o.error().message();
        obj_ = std::move(*o);
    }
    Object obj_;
};

TEST_F(ElfFeatures, ProgramsSectionsAndTypes) {
    ASSERT_EQ(obj_.programs().size(), 4u);
    auto entry = obj_.program("on_entry");
    ASSERT_TRUE(entry);
    EXPECT_EQ((*entry)->section, "uprobe");
    EXPECT_EQ((*entry)->type, ProgType::kprobe);
    EXPECT_EQ((*entry)->attach, AttachKind::uprobe);
    auto too = obj_.program("on_entry_too");
    ASSERT_TRUE(too);
    EXPECT_EQ((*too)->section, "uprobe");  // two programs in one section
    EXPECT_GT((*too)->section_offset, 0u);
    auto tail = obj_.program("tail_target");
    ASSERT_TRUE(tail);
    EXPECT_EQ((*tail)->attach, AttachKind::uretprobe);
    EXPECT_EQ((*tail)->attach_target, "libc.so.6:malloc");
    auto decide = obj_.program("decide");
    ASSERT_TRUE(decide);
    EXPECT_EQ((*decide)->attach, AttachKind::host_hook);
    EXPECT_EQ((*decide)->attach_target, "on_request");
    EXPECT_FALSE((*decide)->global);  // a static entry function
    EXPECT_TRUE((*entry)->global);
    EXPECT_EQ(obj_.license(), "Dual BSD/GPL");
    auto missing = obj_.program("nope");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Errc::not_found);
}

TEST_F(ElfFeatures, SubprogramsAreLinkedIntoEachProgram) {
    // on_entry calls twice_scaled, which calls scale twice: both are appended once, after the entry.
    const ProgramSpec& p = **obj_.program("on_entry");
    EXPECT_GT(p.insns.size(), p.entry_insns);
    EXPECT_EQ(count_calls(p.insns), 3u);
    for (std::size_t i = 0; i < p.insns.size(); ++i) {
        const Insn& in = p.insns[i];
        if (in.opcode != isa::opcode_call || in.src != isa::call_local) continue;
        const std::size_t target = i + 1 + static_cast<std::size_t>(in.imm);
        ASSERT_LT(target, p.insns.size());
        EXPECT_GE(target, p.entry_insns) << "a call must land in an appended subprogram";
    }
    EXPECT_TRUE(isa::validate(p.insns)) << isa::validate(p.insns).error().message();
    // on_entry_too uses scale directly and passes add_one to bpf_loop as a function reference.
    const ProgramSpec& q = **obj_.program("on_entry_too");
    bool has_func_ref = false;
    for (std::size_t i = 0; i < q.insns.size(); ++i)
        if (q.insns[i].opcode == isa::opcode_lddw && q.insns[i].src == isa::pseudo_func) {
            has_func_ref = true;
            const std::size_t target = i + 1 + static_cast<std::size_t>(q.insns[i].imm);
            EXPECT_GE(target, q.entry_insns);
            EXPECT_LT(target, q.insns.size());
        }
    EXPECT_TRUE(has_func_ref);
    EXPECT_TRUE(isa::validate(q.insns)) << isa::validate(q.insns).error().message();
}

TEST_F(ElfFeatures, BtfDefinedMaps) {
    const MapSpec& counts = map_named(obj_, "counts");
    EXPECT_EQ(counts.type, MapType::hash);
    EXPECT_EQ(counts.key_size, 4u);
    EXPECT_EQ(counts.value_size, 16u);
    EXPECT_EQ(counts.max_entries, 128u);
    EXPECT_EQ(counts.origin, MapOrigin::btf_maps);
    ASSERT_TRUE(obj_.btf());
    EXPECT_EQ(obj_.btf()->type_name(counts.btf_value_type_id), "struct value");

    EXPECT_EQ(map_named(obj_, "stats").flags, map_flags::mmapable);

    const MapSpec& outer = map_named(obj_, "outer");
    EXPECT_EQ(outer.type, MapType::array_of_maps);
    ASSERT_TRUE(outer.inner);
    EXPECT_EQ(outer.inner->type, MapType::array);
    EXPECT_EQ(outer.inner->max_entries, 2u);
    EXPECT_EQ(outer.inner->value_size, 4u);

    const MapSpec& jumps = map_named(obj_, "jumps");
    EXPECT_EQ(jumps.type, MapType::prog_array);
    ASSERT_EQ(jumps.initial_slots.size(), 1u);
    EXPECT_EQ(jumps.initial_slots[0].first, 5u);
    EXPECT_EQ(jumps.initial_slots[0].second, "tail_target");

    // The lddw of `counts` in on_entry now names the map by index.
    const ProgramSpec& p = **obj_.program("on_entry");
    bool found = false;
    for (const auto& in : p.insns)
        if (in.opcode == isa::opcode_lddw && in.src == isa::pseudo_map_idx &&
            obj_.maps()[static_cast<std::size_t>(in.imm)].name == "counts")
            found = true;
    EXPECT_TRUE(found);
}

TEST_F(ElfFeatures, GlobalsAndKconfig) {
    const MapSpec& rodata = map_named(obj_, ".rodata");
    EXPECT_EQ(rodata.origin, MapOrigin::rodata);
    EXPECT_TRUE(rodata.flags & map_flags::rdonly_prog);
    auto threshold = obj_.global("threshold");
    ASSERT_TRUE(threshold) << threshold.error().message();
    ASSERT_EQ(threshold->size(), 4u);
    std::uint32_t v;
    std::memcpy(&v, threshold->data(), 4);
    EXPECT_EQ(v, 7u);
    // Set before load, like a skeleton's rodata.
    const std::uint32_t nine = 9;
    std::memcpy(threshold->data(), &nine, 4);
    std::memcpy(&v, map_named(obj_, ".rodata").initial_value.data() + (threshold->data() - map_named(obj_, ".rodata").initial_value.data()), 4);
    EXPECT_EQ(v, 9u);

    auto data_counter = obj_.global("data_counter");
    ASSERT_TRUE(data_counter);
    std::uint64_t d;
    std::memcpy(&d, data_counter->data(), 8);
    EXPECT_EQ(d, 3u);
    EXPECT_EQ(map_named(obj_, ".data").origin, MapOrigin::data);
    EXPECT_EQ(map_named(obj_, ".bss").origin, MapOrigin::bss);

    auto kv = obj_.global("LINUX_KERNEL_VERSION");
    ASSERT_TRUE(kv);
    std::uint32_t kver;
    std::memcpy(&kver, kv->data(), 4);
    EXPECT_GT(kver, 0x30000u);  // some Linux 3.0+ version code
    EXPECT_EQ(map_named(obj_, ".kconfig").origin, MapOrigin::kconfig);
    EXPECT_GE(obj_.relocations().kconfig, 1u);
    EXPECT_GE(obj_.relocations().global_refs, 3u);

    EXPECT_EQ(obj_.global("nope").error().code(), Errc::not_found);
}

TEST_F(ElfFeatures, KconfigOverride) {
    auto o = Object::open(ELF_FEATURES_OBJECT, {.kconfig = {{"LINUX_KERNEL_VERSION", 0x050a00}}});
    ASSERT_TRUE(o);
    std::uint32_t kver;
    std::memcpy(&kver, o->global("LINUX_KERNEL_VERSION")->data(), 4);
    EXPECT_EQ(kver, 0x050a00u);
}

TEST(Core, FieldOffsetsSizesExistenceAndEnumsFollowTheTarget) {
    auto o = Object::open(CORE_LOCAL_OBJECT, {.target_btf = CORE_TARGET_BTF});
    ASSERT_TRUE(o) << o.error().message();
    EXPECT_EQ(o->relocations().core_poisoned, 0u);
    EXPECT_EQ(o->relocations().core_applied, 5u);
    const ProgramSpec& p = **o->program("read_task");

    // Run it on a value laid out like the target's struct task.
    struct TargetTask {
        unsigned long long start_time;
        unsigned short flags;
        char comm[16];
        int pid;
    } t{};
    t.pid = 42;
    t.flags = 3;
    auto interp = Interpreter::create(p.insns, HelperTable{});
    ASSERT_TRUE(interp) << interp.error().message();
    auto r0 = interp->run(std::as_writable_bytes(std::span(&t, 1)));
    ASSERT_TRUE(r0) << r0.error().message();
    // pid + flags * 1000, no `gone` field, sizeof(flags) = 2, st_busy = 5 in the target.
    EXPECT_EQ(*r0, 42u + 3 * 1000 + 2 * 100000 + 5 * 10000000ull);
}

TEST(Core, AgainstItsOwnBtfNothingMoves) {
    auto o = Object::open(CORE_LOCAL_OBJECT, {.target_btf = CORE_LOCAL_BTF});
    ASSERT_TRUE(o) << o.error().message();
    const ProgramSpec& p = **o->program("read_task");
    struct LocalTask {
        int pid;
        char comm[16];
        unsigned int flags;
        int gone;
    } t{7, {}, 2, 0};
    auto interp = Interpreter::create(p.insns, HelperTable{});
    ASSERT_TRUE(interp) << interp.error().message();
    auto r0 = interp->run(std::as_writable_bytes(std::span(&t, 1)));
    ASSERT_TRUE(r0) << r0.error().message();
    EXPECT_EQ(*r0, 7u + 2 * 1000 + 1000000 + 4 * 100000 + 2 * 10000000ull);
}

TEST(Object, MalformedInputsAreErrors) {
    std::vector<std::byte> junk(64, std::byte{0x41});
    auto r = Object::parse(junk, "junk.o");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), Errc::bad_elf);
    EXPECT_EQ(r.error().message(), "load \"junk.o\": not an ELF file");
    auto missing = Object::open("/nonexistent/x.o");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), Errc::io_error);

    // Every truncation of a real object is an error, never a crash.
    std::ifstream f(ELF_FEATURES_OBJECT, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(raw.size());
    std::memcpy(bytes.data(), raw.data(), raw.size());
    for (std::size_t n = 0; n < bytes.size(); n += 7) {
        auto t = Object::parse(std::span(bytes).first(n), "t.o");
        EXPECT_FALSE(t) << n;
    }
    // Flipped bytes anywhere: parse may succeed or fail, but must not crash.
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        auto copy = bytes;
        copy[i] ^= std::byte{0x5a};
        auto t = Object::parse(copy, "flip.o");
        if (!t) {
            EXPECT_EQ(t.error().message().find('\n'), std::string::npos);
        }
    }
}

}  // namespace
}  // namespace ebpfrt
