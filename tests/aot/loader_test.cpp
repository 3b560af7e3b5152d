// The AOT loader on hostile input: truncated objects, section headers and offsets pointing anywhere,
// unknown relocation types, symbols out of range, broken metadata, and random corruption. Every one
// is an error (bad_elf or unsupported), never a crash; nothing here runs the loaded code.

#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>

#include <elf.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "aot/aot_internal.hpp"

namespace ebpfrt {
namespace {

using Bytes = std::vector<std::byte>;

// A program with helper calls, a local call and a map, so the object has relocations of each kind.
const Bytes& sample() {
    static const Bytes obj = [] {
        auto prog = isa::assemble(
            "lddw %r6, map_value 3 + 8\nmov %r1, 1\ncall 100\ncall local f\nexit\nf:\nmov %r0, %r1\nexit\n");
        return aot::compile(prog.value()).value();
    }();
    return obj;
}

std::uint64_t helper(std::uint64_t a, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    return a;
}

HelperTable helpers() {
    HelperTable t;
    t.add(100, {.name = "h", .fn = helper}).value();
    return t;
}

const aot::SymbolResolver maps = [](std::string_view) -> Result<ResolvedImm> {
    static std::uint64_t value[4];
    return ResolvedImm{reinterpret_cast<std::uint64_t>(value), std::as_writable_bytes(std::span(value))};
};

Result<JitProgram> load(const Bytes& obj) { return aot::load(obj, helpers(), {}, maps); }

template <class T> T get(const Bytes& b, std::size_t off) {
    T v{};
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}
template <class T> void put(Bytes& b, std::size_t off, const T& v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

Elf64_Ehdr header(const Bytes& b) { return get<Elf64_Ehdr>(b, 0); }
std::size_t shdr_at(const Bytes& b, std::size_t i) { return header(b).e_shoff + i * sizeof(Elf64_Shdr); }

// Index of the first section of `type` (0 when none).
std::size_t find_section(const Bytes& b, std::uint32_t type) {
    for (std::size_t i = 1; i < header(b).e_shnum; ++i)
        if (get<Elf64_Shdr>(b, shdr_at(b, i)).sh_type == type) return i;
    return 0;
}

TEST(AotLoader, TheSampleLoads) {
    auto p = load(sample());
    ASSERT_TRUE(p) << p.error().message();
    EXPECT_EQ(p->run({}).value(), 1u);
}

TEST(AotLoader, EveryTruncationIsAnError) {
    const Bytes& full = sample();
    for (std::size_t n = 0; n < full.size(); ++n) {
        Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        auto r = load(cut);
        ASSERT_FALSE(r) << "loaded with " << n << " of " << full.size() << " bytes";
        EXPECT_TRUE(r.error().code() == Errc::bad_elf) << n << ": " << r.error().message();
        EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
    }
}

TEST(AotLoader, BadHeaders) {
    Bytes b = sample();
    b[0] = std::byte{0};
    EXPECT_EQ(load(b).error().message(), "load AOT object: not an ELF file");

    b = sample();
    auto eh = header(b);
    eh.e_machine = EM_RISCV;
    put(b, 0, eh);
    EXPECT_EQ(load(b).error().code(), Errc::unsupported);

    b = sample();
    eh = header(b);
    eh.e_shoff = b.size() - 8;
    put(b, 0, eh);
    EXPECT_EQ(load(b).error().code(), Errc::bad_elf);

    b = sample();
    eh = header(b);
    eh.e_shstrndx = 999;
    put(b, 0, eh);
    EXPECT_EQ(load(b).error().code(), Errc::bad_elf);

    b = sample();
    eh = header(b);
    eh.e_type = ET_DYN;
    put(b, 0, eh);
    EXPECT_EQ(load(b).error().code(), Errc::bad_elf);
}

TEST(AotLoader, BadSectionOffsetsAndSizes) {
    for (std::size_t i = 1; i < header(sample()).e_shnum; ++i) {
        for (std::uint64_t bad : {std::uint64_t{0xfffffffffffffff0ull}, std::uint64_t{1} << 40}) {
            Bytes b = sample();
            auto sh = get<Elf64_Shdr>(b, shdr_at(b, i));
            if (sh.sh_type == SHT_NOBITS || sh.sh_type == SHT_NULL) continue;
            Bytes off = b, size = b;
            auto s1 = sh;
            s1.sh_offset = bad;
            put(off, shdr_at(b, i), s1);
            auto s2 = sh;
            s2.sh_size = bad;
            put(size, shdr_at(b, i), s2);
            auto r1 = load(off), r2 = load(size);
            EXPECT_FALSE(r1) << "section " << i;
            EXPECT_FALSE(r2) << "section " << i;
            if (!r1) {
                EXPECT_EQ(r1.error().code(), Errc::bad_elf) << r1.error().message();
            }
            if (!r2) {
                EXPECT_EQ(r2.error().code(), Errc::bad_elf) << r2.error().message();
            }
        }
    }
}

TEST(AotLoader, UnknownRelocationTypeIsNamed) {
    Bytes b = sample();
    const std::size_t rela = find_section(b, SHT_RELA);
    ASSERT_NE(rela, 0u);
    const auto sh = get<Elf64_Shdr>(b, shdr_at(b, rela));
    auto r = get<Elf64_Rela>(b, sh.sh_offset);
    r.r_info = ELF64_R_INFO(ELF64_R_SYM(r.r_info), R_X86_64_GOTPC32_TLSDESC);
    put(b, sh.sh_offset, r);
    auto l = load(b);
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().code(), Errc::unsupported);
    EXPECT_NE(l.error().message().find("type 34"), std::string::npos) << l.error().message();
    EXPECT_NE(l.error().message().find("not supported"), std::string::npos) << l.error().message();

    // A type we know but cannot do without a GOT.
    r.r_info = ELF64_R_INFO(ELF64_R_SYM(r.r_info), R_X86_64_GOTPCREL);
    put(b, sh.sh_offset, r);
    l = load(b);
    ASSERT_FALSE(l);
    EXPECT_NE(l.error().message().find("R_X86_64_GOTPCREL"), std::string::npos) << l.error().message();
}

TEST(AotLoader, RelocationsOutsideTheirSectionOrSymbols) {
    Bytes b = sample();
    const std::size_t rela = find_section(b, SHT_RELA);
    const auto sh = get<Elf64_Shdr>(b, shdr_at(b, rela));
    auto r = get<Elf64_Rela>(b, sh.sh_offset);

    Bytes off = b;
    auto r1 = r;
    r1.r_offset = 0xffffffffffull;
    put(off, sh.sh_offset, r1);
    EXPECT_EQ(load(off).error().code(), Errc::bad_elf);

    Bytes sym = b;
    auto r2 = r;
    r2.r_info = ELF64_R_INFO(100000, ELF64_R_TYPE(r.r_info));
    put(sym, sh.sh_offset, r2);
    EXPECT_EQ(load(sym).error().code(), Errc::bad_elf);

    Bytes target = b;
    auto sh2 = sh;
    sh2.sh_info = 4000;
    put(target, shdr_at(b, rela), sh2);
    EXPECT_EQ(load(target).error().code(), Errc::bad_elf);
}

TEST(AotLoader, UndefinedSymbolsAreNamed) {
    // Without the helper the object refers to.
    auto r = aot::load(sample(), HelperTable{}, {}, maps);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("unknown helper 100"), std::string::npos) << r.error().message();
}

TEST(AotLoader, BrokenMetadata) {
    Bytes b = sample();
    std::size_t meta = 0;
    const auto eh = header(b);
    const auto strtab = get<Elf64_Shdr>(b, shdr_at(b, eh.e_shstrndx));
    for (std::size_t i = 1; i < eh.e_shnum; ++i) {
        const auto sh = get<Elf64_Shdr>(b, shdr_at(b, i));
        if (std::strcmp(reinterpret_cast<const char*>(b.data() + strtab.sh_offset + sh.sh_name),
                        ".ebpfrt.meta") == 0)
            meta = i;
    }
    ASSERT_NE(meta, 0u);
    const auto sh = get<Elf64_Shdr>(b, shdr_at(b, meta));
    // Every prefix of the metadata, and a huge instruction count.
    for (std::uint64_t n = 0; n < sh.sh_size; ++n) {
        Bytes cut = b;
        auto s = sh;
        s.sh_size = n;
        put(cut, shdr_at(b, meta), s);
        auto r = load(cut);
        ASSERT_FALSE(r) << n;
        EXPECT_EQ(r.error().code(), Errc::bad_elf) << r.error().message();
    }
    Bytes huge = b;
    const std::uint32_t entry_len = get<std::uint32_t>(b, sh.sh_offset + 16);
    put<std::uint32_t>(huge, sh.sh_offset + 20 + entry_len, 0xfffffff0u);
    EXPECT_EQ(load(huge).error().code(), Errc::bad_elf);
    // Metadata whose instructions do not match the code's calls.
    Bytes other = b;
    put<std::uint32_t>(other, sh.sh_offset + 8, 99);  // version
    auto r = load(other);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("version 99"), std::string::npos) << r.error().message();
    // No metadata at all: not one of ours.
    Bytes renamed = b;
    auto* name = reinterpret_cast<char*>(renamed.data() + strtab.sh_offset + sh.sh_name);
    name[1] = 'x';
    auto n = load(renamed);
    ASSERT_FALSE(n);
    EXPECT_NE(n.error().message().find("no .ebpfrt.meta section"), std::string::npos) << n.error().message();
}

TEST(AotLoader, RandomCorruptionNeverCrashes) {
    std::mt19937 rng(12345);
    const Bytes& base = sample();
    int loaded = 0;
    for (int k = 0; k < 3000; ++k) {
        Bytes b = base;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            // Mostly in the headers and tables, where the structure is.
            const std::size_t at = (rng() % 2 == 0)
                                       ? header(base).e_shoff + rng() % (b.size() - header(base).e_shoff)
                                       : rng() % b.size();
            b[at] = static_cast<std::byte>(rng());
        }
        auto r =
            detail::link_aot(b, EM_X86_64, [](std::string_view) -> Result<std::uint64_t> { return 0x1000; });
        if (r) ++loaded;  // a flip in the code bytes or padding: fine, nothing runs it
    }
    SUCCEED() << loaded << " of 3000 corrupted objects still linked";
}

}  // namespace
}  // namespace ebpfrt
