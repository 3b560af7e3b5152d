// aot::load: our own loader for objects made by aot::compile, so that a build without LLVM runs them.
// The object is untrusted input as far as its structure goes: every offset, size, index and name is
// checked before use, and anything unexpected is a bad_elf error. (Its code is of course run as is.)
// Layout: one mapping with the executable sections, then the read-only ones, then the writable ones,
// each group page-aligned so it gets its own protection; call trampolines for far external targets sit at
// the end of the executable group.

#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string.h>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include <ebpfrt/aot.hpp>

#include "aot/aot_internal.hpp"
#include "aot/meta.hpp"
#include "jit/compiled.hpp"
#include "jit/rt_abi.hpp"

namespace ebpfrt {
namespace detail {
namespace {

#if defined(__x86_64__)
constexpr std::uint16_t host_machine = EM_X86_64;
#elif defined(__aarch64__)
constexpr std::uint16_t host_machine = EM_AARCH64;
#else
constexpr std::uint16_t host_machine = EM_NONE;  // no loader for this host: load() is unsupported
#endif

constexpr std::uint64_t max_section_bytes = std::uint64_t{1} << 30;
constexpr std::size_t trampoline_bytes = 16;

template <class T> bool read_at(std::span<const std::byte> in, std::uint64_t off, T& out) {
    if (off > in.size() || sizeof(T) > in.size() - off) return false;
    std::memcpy(&out, in.data() + off, sizeof(T));
    return true;
}

Error bad(std::string why) { return Error(Errc::bad_elf, std::move(why)); }

std::string machine_name(std::uint16_t machine) {
    switch (machine) {
    case EM_X86_64: return "x86_64";
    case EM_AARCH64: return "aarch64";
    case EM_RISCV: return "riscv64";
    case EM_386: return "i386";
    case EM_ARM: return "arm";
    case EM_BPF: return "bpf";
    default: return fmt::format("ELF machine {}", machine);
    }
}

const char* reloc_name(std::uint16_t machine, std::uint32_t type) {
    if (machine == EM_X86_64) {
        switch (type) {
        case R_X86_64_64: return "R_X86_64_64";
        case R_X86_64_PC32: return "R_X86_64_PC32";
        case R_X86_64_PLT32: return "R_X86_64_PLT32";
        case R_X86_64_32: return "R_X86_64_32";
        case R_X86_64_32S: return "R_X86_64_32S";
        case R_X86_64_PC64: return "R_X86_64_PC64";
        case R_X86_64_GOTPCREL: return "R_X86_64_GOTPCREL";
        case R_X86_64_GOTPCRELX: return "R_X86_64_GOTPCRELX";
        case R_X86_64_REX_GOTPCRELX: return "R_X86_64_REX_GOTPCRELX";
        default: return nullptr;
        }
    }
    switch (type) {
    case R_AARCH64_ABS64: return "R_AARCH64_ABS64";
    case R_AARCH64_PREL32: return "R_AARCH64_PREL32";
    case R_AARCH64_PREL64: return "R_AARCH64_PREL64";
    case R_AARCH64_MOVW_UABS_G0: return "R_AARCH64_MOVW_UABS_G0";
    case R_AARCH64_MOVW_UABS_G0_NC: return "R_AARCH64_MOVW_UABS_G0_NC";
    case R_AARCH64_MOVW_UABS_G1: return "R_AARCH64_MOVW_UABS_G1";
    case R_AARCH64_MOVW_UABS_G1_NC: return "R_AARCH64_MOVW_UABS_G1_NC";
    case R_AARCH64_MOVW_UABS_G2: return "R_AARCH64_MOVW_UABS_G2";
    case R_AARCH64_MOVW_UABS_G2_NC: return "R_AARCH64_MOVW_UABS_G2_NC";
    case R_AARCH64_MOVW_UABS_G3: return "R_AARCH64_MOVW_UABS_G3";
    case R_AARCH64_CALL26: return "R_AARCH64_CALL26";
    case R_AARCH64_JUMP26: return "R_AARCH64_JUMP26";
    case R_AARCH64_ADR_PREL_PG_HI21: return "R_AARCH64_ADR_PREL_PG_HI21";
    case R_AARCH64_ADD_ABS_LO12_NC: return "R_AARCH64_ADD_ABS_LO12_NC";
    case R_AARCH64_LDST8_ABS_LO12_NC: return "R_AARCH64_LDST8_ABS_LO12_NC";
    case R_AARCH64_LDST16_ABS_LO12_NC: return "R_AARCH64_LDST16_ABS_LO12_NC";
    case R_AARCH64_LDST32_ABS_LO12_NC: return "R_AARCH64_LDST32_ABS_LO12_NC";
    case R_AARCH64_LDST64_ABS_LO12_NC: return "R_AARCH64_LDST64_ABS_LO12_NC";
    case R_AARCH64_LDST128_ABS_LO12_NC: return "R_AARCH64_LDST128_ABS_LO12_NC";
    default: return nullptr;
    }
}

struct Section {
    Elf64_Shdr h{};
    std::string name;
    int group = -1;            // 0 executable, 1 read-only, 2 writable; -1 not loaded
    std::uint64_t offset = 0;  // in the mapping
};

class Linker {
public:
    Linker(std::span<const std::byte> in, std::uint16_t machine, const AotExternals& ext)
        : in_(in), machine_(machine), externals_(ext) {}

    Result<AotImage> run() {
        if (auto ok = parse(); !ok) return ok.error();
        auto meta = decode_aot_meta(section_bytes(meta_index_));
        if (!meta) return meta.error();
        if (auto ok = layout(); !ok) return ok.error();
        if (auto ok = map(); !ok) return ok.error();
        for (std::size_t i = 0; i < sections_.size(); ++i) {
            const auto& s = sections_[i];
            if (s.h.sh_type == SHT_REL && s.h.sh_info < sections_.size() && sections_[s.h.sh_info].group >= 0)
                return Error(Errc::unsupported,
                             fmt::format("section {} \"{}\": REL relocations are not supported (RELA are)", i,
                                         s.name));
            if (s.h.sh_type == SHT_RELA)
                if (auto ok = relocate(i); !ok) return ok.error();
        }
        if (auto ok = protect(); !ok) return ok.error();
        AotImage image;
        image.memory = memory_;
        image.size = size_;
        image.meta = std::move(*meta);
        for (std::size_t i = 1; i < nsyms_; ++i) {
            Elf64_Sym s{};
            read_at(in_, symtab_off_ + i * sizeof(Elf64_Sym), s);
            if (s.st_shndx == SHN_UNDEF || s.st_shndx >= sections_.size() || sections_[s.st_shndx].group != 0)
                continue;
            if (ELF64_ST_TYPE(s.st_info) != STT_FUNC && ELF64_ST_TYPE(s.st_info) != STT_NOTYPE) continue;
            auto name = symbol_name(s);
            if (!name || name->empty() || s.st_value > sections_[s.st_shndx].h.sh_size) continue;
            image.code_symbols.emplace(std::string(*name),
                                       base() + sections_[s.st_shndx].offset + s.st_value);
        }
        return image;
    }

    // Only the metadata, for callers that need it before linking.
    Result<AotMeta> meta() {
        if (auto ok = parse(); !ok) return ok.error();
        return decode_aot_meta(section_bytes(meta_index_));
    }

private:
    std::uint64_t base() const { return reinterpret_cast<std::uint64_t>(memory_.get()); }

    std::span<const std::byte> section_bytes(std::size_t i) const {
        return in_.subspan(sections_[i].h.sh_offset, sections_[i].h.sh_size);
    }

    // A NUL-terminated name at `off` in string table section `strtab` (checked by parse()).
    std::optional<std::string_view> string_at(std::size_t strtab, std::uint64_t off) const {
        const auto& h = sections_[strtab].h;
        if (off >= h.sh_size) return std::nullopt;
        const char* p = reinterpret_cast<const char*>(in_.data() + h.sh_offset + off);
        const void* nul = std::memchr(p, 0, h.sh_size - off);
        if (nul == nullptr) return std::nullopt;
        return std::string_view(p, static_cast<const char*>(nul) - p);
    }
    std::optional<std::string_view> symbol_name(const Elf64_Sym& s) const {
        return string_at(strtab_, s.st_name);
    }

    Result<void> parse() {
        Elf64_Ehdr eh{};
        if (!read_at(in_, 0, eh))
            return bad(fmt::format("{} bytes is too short for an ELF header", in_.size()));
        if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad("not an ELF file");
        if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
            return bad("not a little-endian 64-bit ELF object");
        if (eh.e_type != ET_REL)
            return bad(fmt::format("ELF type {} is not a relocatable object", eh.e_type));
        if (eh.e_machine != machine_)
            return Error(Errc::unsupported, fmt::format("the object is for {}, not {}",
                                                        machine_name(eh.e_machine), machine_name(machine_)));
        if (eh.e_shentsize != sizeof(Elf64_Shdr))
            return bad(fmt::format("section header size {}", eh.e_shentsize));
        if (eh.e_shnum == 0 || eh.e_shoff > in_.size() ||
            std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) > in_.size() - eh.e_shoff)
            return bad(fmt::format("section headers ({} at offset 0x{:x}) are outside the object ({} bytes)",
                                   eh.e_shnum, eh.e_shoff, in_.size()));
        if (eh.e_shstrndx >= eh.e_shnum)
            return bad(fmt::format("section name table index {} out of range", eh.e_shstrndx));
        sections_.resize(eh.e_shnum);
        for (std::size_t i = 0; i < sections_.size(); ++i) {
            auto& h = sections_[i].h;
            read_at(in_, eh.e_shoff + i * sizeof(Elf64_Shdr), h);
            if (h.sh_type != SHT_NOBITS && h.sh_type != SHT_NULL &&
                (h.sh_offset > in_.size() || h.sh_size > in_.size() - h.sh_offset))
                return bad(fmt::format(
                    "section {}: offset 0x{:x} + size 0x{:x} is past the end of the object ({} bytes)", i,
                    h.sh_offset, h.sh_size, in_.size()));
        }
        if (sections_[eh.e_shstrndx].h.sh_type != SHT_STRTAB)
            return bad("the section name table is not a string table");
        for (std::size_t i = 1; i < sections_.size(); ++i) {
            auto name = string_at(eh.e_shstrndx, sections_[i].h.sh_name);
            if (!name)
                return bad(fmt::format("section {}: name offset {} is outside the name table", i,
                                       sections_[i].h.sh_name));
            sections_[i].name = std::string(*name);
        }
        for (std::size_t i = 1; i < sections_.size(); ++i) {
            const auto& s = sections_[i];
            if (s.h.sh_type == SHT_SYMTAB) {
                if (symtab_ != 0) return bad("more than one symbol table");
                symtab_ = i;
            }
            if (s.name == aot_meta_section) meta_index_ = i;
        }
        if (meta_index_ == 0 || sections_[meta_index_].h.sh_type != SHT_PROGBITS)
            return bad(fmt::format("no {} section (not made by ebpfrt's aot::compile)", aot_meta_section));
        if (symtab_ == 0) return bad("no symbol table");
        const auto& st = sections_[symtab_].h;
        if (st.sh_entsize != sizeof(Elf64_Sym) || st.sh_size % sizeof(Elf64_Sym) != 0)
            return bad(fmt::format("symbol table entry size {}", st.sh_entsize));
        if (st.sh_link == 0 || st.sh_link >= sections_.size() ||
            sections_[st.sh_link].h.sh_type != SHT_STRTAB)
            return bad("the symbol table has no string table");
        strtab_ = st.sh_link;
        symtab_off_ = st.sh_offset;
        nsyms_ = st.sh_size / sizeof(Elf64_Sym);
        return {};
    }

    Result<void> layout() {
        page_ = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
        std::uint64_t group_size[3] = {0, 0, 0};
        std::vector<std::size_t> order;
        for (std::size_t i = 1; i < sections_.size(); ++i) {
            auto& s = sections_[i];
            if ((s.h.sh_flags & SHF_ALLOC) == 0 || i == meta_index_) continue;
            // Code and data only: unwind tables and the like are not needed to run.
            if (s.h.sh_type != SHT_PROGBITS && s.h.sh_type != SHT_NOBITS) continue;
            if (s.h.sh_size > max_section_bytes)
                return bad(
                    fmt::format("section {} \"{}\": size 0x{:x} is too large", i, s.name, s.h.sh_size));
            const std::uint64_t align = std::max<std::uint64_t>(s.h.sh_addralign, 1);
            if ((align & (align - 1)) != 0 || align > page_)
                return bad(
                    fmt::format("section {} \"{}\": alignment {} is not a power of two up to the page size",
                                i, s.name, s.h.sh_addralign));
            s.group = (s.h.sh_flags & SHF_EXECINSTR) != 0 ? 0 : (s.h.sh_flags & SHF_WRITE) != 0 ? 2 : 1;
            std::uint64_t& g = group_size[s.group];
            g = (g + align - 1) / align * align;
            s.offset = g;  // relative to the group for now
            g += s.h.sh_size;
            if (g > max_section_bytes) return bad("the sections are too large");
        }
        // One trampoline per undefined symbol at most.
        std::uint64_t undefined = 0;
        for (std::size_t i = 1; i < nsyms_; ++i) {
            Elf64_Sym s{};
            read_at(in_, symtab_off_ + i * sizeof(Elf64_Sym), s);
            if (s.st_shndx == SHN_UNDEF) ++undefined;
        }
        group_size[0] = (group_size[0] + trampoline_bytes - 1) / trampoline_bytes * trampoline_bytes;
        trampolines_offset_ = group_size[0];
        trampolines_end_ = trampolines_offset_ + undefined * trampoline_bytes;
        group_size[0] = trampolines_end_;
        auto round = [&](std::uint64_t n) { return (n + page_ - 1) / page_ * page_; };
        group_start_[0] = 0;
        group_start_[1] = round(group_size[0]);
        group_start_[2] = group_start_[1] + round(group_size[1]);
        size_ = group_start_[2] + round(group_size[2]);
        for (std::size_t g = 0; g < 3; ++g) group_end_[g] = group_start_[g] + round(group_size[g]);
        trampolines_offset_ += group_start_[0];
        trampolines_end_ += group_start_[0];
        next_trampoline_ = trampolines_offset_;
        for (auto& s : sections_)
            if (s.group >= 0) s.offset += group_start_[s.group];
        if (group_size[0] == 0) return bad("no code");
        return {};
    }

    Result<void> map() {
        void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return Error(Errc::out_of_memory,
                         fmt::format("mmap of {} bytes: {}", size_, std::strerror(errno)));
        memory_ = std::shared_ptr<void>(p, [n = size_](void* q) { munmap(q, n); });
        for (const auto& s : sections_)
            if (s.group >= 0 && s.h.sh_type == SHT_PROGBITS && s.h.sh_size != 0)
                std::memcpy(static_cast<std::byte*>(p) + s.offset, in_.data() + s.h.sh_offset, s.h.sh_size);
        return {};
    }

    Result<void> protect() {
        auto* p = static_cast<std::byte*>(memory_.get());
        if (machine_ == host_machine) {
            __builtin___clear_cache(reinterpret_cast<char*>(p), reinterpret_cast<char*>(p + group_end_[0]));
            if (mprotect(p, group_end_[0], PROT_READ | PROT_EXEC) != 0)
                return Error(Errc::permission_denied,
                             fmt::format("mprotect of the code: {}", std::strerror(errno)));
        }
        if (group_end_[1] > group_start_[1] &&
            mprotect(p + group_start_[1], group_end_[1] - group_start_[1], PROT_READ) != 0)
            return Error(Errc::permission_denied,
                         fmt::format("mprotect of the read-only data: {}", std::strerror(errno)));
        return {};
    }

    // Address of symbol `index`, resolving undefined ones through `externals_` (once each).
    Result<std::uint64_t> symbol_address(std::uint32_t index, bool& external) {
        if (index == 0 || index >= nsyms_) return bad(fmt::format("symbol index {} out of range", index));
        Elf64_Sym s{};
        read_at(in_, symtab_off_ + std::uint64_t{index} * sizeof(Elf64_Sym), s);
        external = s.st_shndx == SHN_UNDEF;
        if (external) {
            if (auto it = resolved_.find(index); it != resolved_.end()) return it->second;
            auto name = symbol_name(s);
            if (!name || name->empty()) return bad(fmt::format("undefined symbol {} has no name", index));
            auto a = externals_(*name);
            if (!a) return a.error();
            resolved_[index] = *a;
            return *a;
        }
        if (s.st_shndx == SHN_ABS) return std::uint64_t{s.st_value};
        if (s.st_shndx >= sections_.size())
            return bad(fmt::format("symbol {}: section index {} is not supported", index, s.st_shndx));
        const Section& sec = sections_[s.st_shndx];
        if (sec.group < 0)
            return bad(fmt::format("symbol {} is in section {} \"{}\", which is not loaded", index,
                                   s.st_shndx, sec.name));
        if (s.st_value > sec.h.sh_size)
            return bad(fmt::format("symbol {}: value 0x{:x} is outside its section", index, s.st_value));
        return base() + sec.offset + s.st_value;
    }

    // A trampoline that jumps to `target` (for calls whose displacement cannot reach it).
    Result<std::uint64_t> trampoline(std::uint32_t symbol, std::uint64_t target) {
        if (auto it = trampolines_.find(symbol); it != trampolines_.end()) return it->second;
        if (next_trampoline_ + trampoline_bytes > trampolines_end_) return bad("more call trampolines than undefined symbols");
        auto* p = static_cast<std::byte*>(memory_.get()) + next_trampoline_;
        if (machine_ == EM_X86_64) {
            const unsigned char code[8] = {0xff, 0x25, 0,    0,
                                           0,    0,    0xcc, 0xcc};  // jmp *0(%rip); the address follows
            std::memcpy(p, code, 6);
            std::memcpy(p + 6, &target, 8);
            std::memcpy(p + 14, code + 6, 2);
        } else {
            const std::uint32_t code[2] = {0x58000050, 0xd61f0200};  // ldr x16, #8; br x16
            std::memcpy(p, code, 8);
            std::memcpy(p + 8, &target, 8);
        }
        const std::uint64_t a = base() + next_trampoline_;
        next_trampoline_ += trampoline_bytes;
        trampolines_[symbol] = a;
        return a;
    }

    Result<void> relocate(std::size_t rela_index) {
        const Section& rs = sections_[rela_index];
        if (rs.h.sh_info >= sections_.size())
            return bad(fmt::format("section {} \"{}\": target section {} out of range", rela_index, rs.name,
                                   rs.h.sh_info));
        const Section& target = sections_[rs.h.sh_info];
        if (target.group < 0)
            return {};  // relocations of a section we do not load (unwind tables, debug info)
        if (rs.h.sh_link != symtab_)
            return bad(fmt::format("section {} \"{}\": relocations refer to another symbol table", rela_index,
                                   rs.name));
        if (rs.h.sh_entsize != sizeof(Elf64_Rela) || rs.h.sh_size % sizeof(Elf64_Rela) != 0)
            return bad(fmt::format("section {} \"{}\": entry size {}", rela_index, rs.name, rs.h.sh_entsize));
        auto* mem = static_cast<std::byte*>(memory_.get());
        const std::size_t n = rs.h.sh_size / sizeof(Elf64_Rela);
        for (std::size_t k = 0; k < n; ++k) {
            Elf64_Rela r{};
            read_at(in_, rs.h.sh_offset + k * sizeof(Elf64_Rela), r);
            const auto type = static_cast<std::uint32_t>(ELF64_R_TYPE(r.r_info));
            const auto sym = static_cast<std::uint32_t>(ELF64_R_SYM(r.r_info));
            auto where = [&](std::string what) {
                const char* tn = reloc_name(machine_, type);
                return fmt::format("relocation {} of section \"{}\" ({}): {}", k, target.name,
                                   tn != nullptr ? std::string(tn) : fmt::format("type {}", type), what);
            };
            if (type == 0 || (machine_ == EM_AARCH64 && type == 256)) continue;  // R_*_NONE
            const char* tn = reloc_name(machine_, type);
            if (tn == nullptr) return Error(Errc::unsupported, where("relocation type not supported"));
            const unsigned width = machine_ == EM_X86_64
                                       ? (type == R_X86_64_64 || type == R_X86_64_PC64 ? 8 : 4)
                                       : (type == R_AARCH64_ABS64 || type == R_AARCH64_PREL64 ? 8 : 4);
            if (r.r_offset > target.h.sh_size || width > target.h.sh_size - r.r_offset)
                return bad(where(fmt::format("offset 0x{:x} is outside the section", r.r_offset)));
            if (target.h.sh_type == SHT_NOBITS) return bad(where("relocates a section without contents"));
            bool external = false;
            auto s = symbol_address(sym, external);
            if (!s) return Error(s.error().code(), where(s.error().message()));
            std::byte* p = mem + target.offset + r.r_offset;
            const std::uint64_t pc = base() + target.offset + r.r_offset;
            auto ok = machine_ == EM_X86_64 ? apply_x86_64(type, p, pc, *s, r.r_addend, sym, external)
                                            : apply_aarch64(type, p, pc, *s, r.r_addend, sym, external);
            if (!ok) return Error(ok.error().code(), where(ok.error().message()));
        }
        return {};
    }

    static void put32(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
    static void put64(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
    static std::uint32_t get32(const std::byte* p) {
        std::uint32_t v = 0;
        std::memcpy(&v, p, 4);
        return v;
    }
    static bool fits_signed(std::int64_t v, unsigned bits) {
        return v >= -(std::int64_t{1} << (bits - 1)) && v < (std::int64_t{1} << (bits - 1));
    }
    static Error range() { return Error(Errc::unsupported, "target out of range"); }

    Result<void> apply_x86_64(std::uint32_t type, std::byte* p, std::uint64_t pc, std::uint64_t s,
                              std::int64_t a, std::uint32_t sym, bool external) {
        const std::uint64_t v = s + static_cast<std::uint64_t>(a);
        switch (type) {
        case R_X86_64_64: put64(p, v); return {};
        case R_X86_64_PC64: put64(p, v - pc); return {};
        case R_X86_64_PLT32:
        case R_X86_64_PC32: {
            auto d = static_cast<std::int64_t>(v - pc);
            if (!fits_signed(d, 32) && type == R_X86_64_PLT32 && external) {
                auto st = trampoline(sym, s);
                if (!st) return st.error();
                d = static_cast<std::int64_t>(*st + static_cast<std::uint64_t>(a) - pc);
            }
            if (!fits_signed(d, 32)) return range();
            put32(p, static_cast<std::uint32_t>(d));
            return {};
        }
        case R_X86_64_32:
            if (v > UINT32_MAX) return range();
            put32(p, static_cast<std::uint32_t>(v));
            return {};
        case R_X86_64_32S:
            if (!fits_signed(static_cast<std::int64_t>(v), 32)) return range();
            put32(p, static_cast<std::uint32_t>(v));
            return {};
        default: return Error(Errc::unsupported, "relocation type not supported (needs a GOT)");
        }
    }

    Result<void> apply_aarch64(std::uint32_t type, std::byte* p, std::uint64_t pc, std::uint64_t s,
                               std::int64_t a, std::uint32_t sym, bool external) {
        const std::uint64_t v = s + static_cast<std::uint64_t>(a);
        const std::uint32_t insn = get32(p);
        auto imm12 = [&](unsigned shift) {
            put32(p, (insn & ~(0xfffu << 10)) | ((static_cast<std::uint32_t>(v & 0xfff) >> shift) << 10));
        };
        auto movw = [&](unsigned shift, bool check) -> Result<void> {
            if (check && shift < 48 && (v >> (shift + 16)) != 0) return range();
            put32(p, (insn & ~(0xffffu << 5)) | (static_cast<std::uint32_t>((v >> shift) & 0xffff) << 5));
            return {};
        };
        switch (type) {
        case R_AARCH64_ABS64: put64(p, v); return {};
        case R_AARCH64_PREL64: put64(p, v - pc); return {};
        case R_AARCH64_PREL32: {
            const auto d = static_cast<std::int64_t>(v - pc);
            if (!fits_signed(d, 32)) return range();
            put32(p, static_cast<std::uint32_t>(d));
            return {};
        }
        case R_AARCH64_MOVW_UABS_G0: return movw(0, true);
        case R_AARCH64_MOVW_UABS_G0_NC: return movw(0, false);
        case R_AARCH64_MOVW_UABS_G1: return movw(16, true);
        case R_AARCH64_MOVW_UABS_G1_NC: return movw(16, false);
        case R_AARCH64_MOVW_UABS_G2: return movw(32, true);
        case R_AARCH64_MOVW_UABS_G2_NC: return movw(32, false);
        case R_AARCH64_MOVW_UABS_G3: return movw(48, false);
        case R_AARCH64_CALL26:
        case R_AARCH64_JUMP26: {
            auto d = static_cast<std::int64_t>(v - pc);
            if (!fits_signed(d, 28) && external) {
                auto st = trampoline(sym, s);
                if (!st) return st.error();
                d = static_cast<std::int64_t>(*st + static_cast<std::uint64_t>(a) - pc);
            }
            if (!fits_signed(d, 28) || d % 4 != 0) return range();
            put32(p, (insn & 0xfc000000u) | (static_cast<std::uint32_t>(d >> 2) & 0x03ffffffu));
            return {};
        }
        case R_AARCH64_ADR_PREL_PG_HI21: {
            const auto d =
                static_cast<std::int64_t>((v & ~std::uint64_t{0xfff}) - (pc & ~std::uint64_t{0xfff}));
            if (!fits_signed(d, 33)) return range();
            const auto imm = static_cast<std::uint32_t>(static_cast<std::uint64_t>(d) >> 12);
            put32(p, (insn & ~((3u << 29) | (0x7ffffu << 5))) | ((imm & 3) << 29) |
                         (((imm >> 2) & 0x7ffff) << 5));
            return {};
        }
        case R_AARCH64_ADD_ABS_LO12_NC:
        case R_AARCH64_LDST8_ABS_LO12_NC: imm12(0); return {};
        case R_AARCH64_LDST16_ABS_LO12_NC: imm12(1); return {};
        case R_AARCH64_LDST32_ABS_LO12_NC: imm12(2); return {};
        case R_AARCH64_LDST64_ABS_LO12_NC: imm12(3); return {};
        case R_AARCH64_LDST128_ABS_LO12_NC: imm12(4); return {};
        default: return Error(Errc::unsupported, "relocation type not supported");
        }
    }

    std::span<const std::byte> in_;
    std::uint16_t machine_;
    const AotExternals& externals_;
    std::vector<Section> sections_;
    std::size_t symtab_ = 0, strtab_ = 0, meta_index_ = 0, nsyms_ = 0;
    std::uint64_t symtab_off_ = 0;
    std::uint64_t page_ = 4096, size_ = 0;
    std::uint64_t group_start_[3] = {}, group_end_[3] = {};
    std::uint64_t trampolines_offset_ = 0, trampolines_end_ = 0, next_trampoline_ = 0;
    std::shared_ptr<void> memory_;
    std::map<std::uint32_t, std::uint64_t> resolved_, trampolines_;
};

std::optional<std::uint32_t> parse_u32(std::string_view s) {
    std::uint32_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::uint64_t address_of(const void* p) { return reinterpret_cast<std::uint64_t>(p); }

}  // namespace

Result<AotImage> link_aot(std::span<const std::byte> object, std::uint16_t machine,
                          const AotExternals& externals) {
    if (machine != EM_X86_64 && machine != EM_AARCH64)
        return Error(Errc::unsupported, fmt::format("no AOT loader for ELF machine {}", machine));
    return Linker(object, machine, externals).run();
}

}  // namespace detail

namespace aot {

Result<ObjectInfo> inspect(std::span<const std::byte> object) {
    Elf64_Ehdr eh{};
    std::uint16_t machine = EM_X86_64;  // for a too short object: the Linker says what is wrong
    if (detail::read_at(object, 0, eh) && eh.e_machine == EM_AARCH64) machine = EM_AARCH64;
    detail::AotExternals none;
    auto meta = detail::Linker(object, machine, none).meta();
    if (!meta) return meta.error();
    ObjectInfo info{meta->entry, meta->checked, meta->budget, std::move(meta->insns), {},
                    detail::machine_name(machine)};
    for (const auto& m : meta->maps) {
        MapSpec spec;
        spec.name = m.name;
        spec.type = static_cast<MapType>(m.type);
        spec.key_size = m.key_size;
        spec.value_size = m.value_size;
        spec.max_entries = m.max_entries;
        spec.flags = m.flags;
        spec.origin = static_cast<MapOrigin>(m.origin);
        info.maps.push_back(std::move(spec));
    }
    return info;
}

Result<JitProgram> load(std::span<const std::byte> object, const HelperTable& helpers,
                        const VmOptions& options, const SymbolResolver& maps) {
    auto wrap = [](const Error& e) { return e.wrap("load AOT object"); };
    if (detail::host_machine == EM_NONE)
        return wrap(Error(Errc::unsupported, "no AOT loader for this host architecture"));
    detail::AotExternals none;
    auto meta = detail::Linker(object, detail::host_machine, none).meta();
    if (!meta) return wrap(meta.error());
    const bool budget = options.insn_budget != 0;
    if (meta->checked != options.checked)
        return wrap(Error(
            Errc::invalid_argument,
            fmt::format(
                "\"{}\" was compiled {} but the options ask for {} mode (compile it with .checked = {})",
                meta->entry, meta->checked ? "checked" : "unchecked",
                options.checked ? "checked" : "unchecked", options.checked)));
    if (meta->budget != budget)
        return wrap(Error(
            Errc::invalid_argument,
            fmt::format("\"{}\" was compiled {} an instruction budget but the options {} (compile it with "
                        ".budget = {})",
                        meta->entry, meta->budget ? "with" : "without", budget ? "set one" : "set none",
                        budget)));
    if (auto ok = isa::validate(meta->insns, {.max_insns = options.max_insns}); !ok)
        return wrap(ok.error().wrap(fmt::format("\"{}\"", meta->entry)));
    const std::vector<Insn>& insns = meta->insns;
    auto st = std::make_shared<detail::JitState>();
    st->insns = insns;
    st->options = options;
    st->options.resolve_lddw = nullptr;  // not needed to run; it may hold maps alive

    // Helpers by call-site index, as the code was compiled for them.
    auto at = [&](std::size_t i, Errc code, std::string reason) {
        return wrap(Error(code, fmt::format("\"{}\": insn {} ({}): {}", meta->entry, i,
                                            isa::disassemble_one(insns, i), reason)));
    };
    std::size_t next_helper = 0;
    bool has_callx = false;
    std::map<std::string, ResolvedImm, std::less<>> map_symbols;
    for (std::size_t i = 0; i < insns.size(); ++i) {
        const Insn& in = insns[i];
        if (in.opcode == isa::opcode_callx) has_callx = true;
        if (in.opcode == isa::opcode_call && in.src != isa::call_local) {
            const bool kfunc = in.src == isa::call_kfunc;
            const auto id = static_cast<std::uint32_t>(in.imm);
            if (next_helper >= meta->helpers.size() || meta->helpers[next_helper].id != id ||
                (meta->helpers[next_helper].kind == detail::AotHelper::kfunc) != kfunc)
                return wrap(detail::bad(
                    fmt::format("metadata: helper {} does not match the call at insn {}", next_helper, i)));
            const auto& mh = meta->helpers[next_helper++];
            const HelperProto* p = kfunc ? helpers.find_kfunc(id) : helpers.find(id);
            if (p == nullptr)
                return at(i, Errc::invalid_argument,
                          kfunc ? fmt::format("unknown kfunc with BTF id {}", id)
                                : fmt::format("unknown helper {}", id));
            if (p->unwind_on_zero != mh.unwind_on_zero)
                return at(
                    i, Errc::invalid_argument,
                    fmt::format("helper \"{}\" {} the program on a zero result but the code was compiled {} "
                                "(compile with CompileOptions::helpers)",
                                p->name, p->unwind_on_zero ? "ends" : "does not end",
                                mh.unwind_on_zero ? "for a helper that does" : "without its prototype"));
            const bool pointers = std::any_of(p->args.begin(), p->args.end(), [](Arg a) {
                return a == Arg::mem || a == Arg::mem_ro || a == Arg::cstr;
            });
            if (options.checked && pointers && !mh.checks_args)
                return at(
                    i, Errc::invalid_argument,
                    fmt::format("helper \"{}\" takes pointers but the code does not check them (compile with "
                                "CompileOptions::helpers holding this helper)",
                                p->name));
            st->helpers.push_back({p->name, p->fn, p->args, p->unwind_on_zero});
        }
        if (in.opcode == isa::opcode_lddw) {
            if (in.src != isa::pseudo_imm64 && in.src != isa::pseudo_func && !maps) {
                if (!options.resolve_lddw)
                    return at(i, Errc::unsupported,
                              fmt::format("lddw with src {} needs a resolver (aot::load's maps, or "
                                          "VmOptions::resolve_lddw)",
                                          unsigned{in.src}));
                auto r = options.resolve_lddw(i, in, insns[i + 1]);
                if (!r) return at(i, r.error().code(), r.error().message());
                const bool with_offset =
                    in.src == isa::pseudo_map_value || in.src == isa::pseudo_map_idx_value;
                ResolvedImm sym = *r;
                sym.value -= with_offset ? static_cast<std::uint32_t>(insns[i + 1].imm) : 0;
                map_symbols.emplace(
                    fmt::format("ebpfrt_map_{}_{}", unsigned{in.src}, static_cast<std::uint32_t>(in.imm)),
                    sym);
                if (!r->region.empty()) st->regions.push_back(r->region);
            }
            ++i;
        }
    }
    if (next_helper != meta->helpers.size()) return wrap(detail::bad("metadata: more helpers than calls"));
    if (has_callx)
        for (const auto& [id, p] : helpers.helpers())
            st->by_id.push_back({id, {p.name, p.fn, p.args, p.unwind_on_zero}});

    const detail::AotExternals externals = [&](std::string_view name) -> Result<std::uint64_t> {
        using namespace jit;
        static const std::pair<std::string_view, std::uint64_t> rt[] = {
            {"ebpfrt_rt_check", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_check))},
            {"ebpfrt_rt_fault", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_fault))},
            {"ebpfrt_rt_check_helper",
             detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_check_helper))},
            {"ebpfrt_rt_after_helper",
             detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_after_helper))},
            {"ebpfrt_rt_unwind", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_unwind))},
            {"ebpfrt_rt_callx", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_callx))},
            {"ebpfrt_rt_ldabs", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_ldabs))},
            {"ebpfrt_rt_tail_entry", detail::address_of(reinterpret_cast<const void*>(&ebpfrt_rt_tail_entry))},
            // Optimisation may turn loops into these.
            {"memcpy", detail::address_of(reinterpret_cast<const void*>(&::memcpy))},
            {"memmove", detail::address_of(reinterpret_cast<const void*>(&::memmove))},
            {"memset", detail::address_of(reinterpret_cast<const void*>(&::memset))},
        };
        for (const auto& [n, a] : rt)
            if (n == name) return a;
        auto number = [&](std::string_view prefix) -> std::optional<std::uint32_t> {
            if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
            return detail::parse_u32(name.substr(prefix.size()));
        };
        if (auto id = number("ebpfrt_helper_")) {
            if (const HelperProto* p = helpers.find(*id))
                return detail::address_of(reinterpret_cast<const void*>(p->fn));
            return Error(Errc::not_found, fmt::format("unknown helper {} (symbol \"{}\")", *id, name));
        }
        if (auto id = number("ebpfrt_kfunc_")) {
            if (const HelperProto* p = helpers.find_kfunc(*id))
                return detail::address_of(reinterpret_cast<const void*>(p->fn));
            return Error(Errc::not_found, fmt::format("unknown kfunc {} (symbol \"{}\")", *id, name));
        }
        if (name.substr(0, 11) == "ebpfrt_map_") {
            if (maps) {
                auto r = maps(name);
                if (!r) return r.error().wrap(fmt::format("symbol \"{}\"", name));
                if (!r->region.empty()) st->regions.push_back(r->region);
                return r->value;
            }
            if (auto it = map_symbols.find(name); it != map_symbols.end()) return it->second.value;
            return Error(Errc::not_found,
                         fmt::format("symbol \"{}\" is not used by any lddw of the program", name));
        }
        return Error(Errc::not_found, fmt::format("undefined symbol \"{}\"", name));
    };
    auto image = detail::link_aot(object, detail::host_machine, externals);
    if (!image) return wrap(image.error());
    auto entry = image->code_symbols.find(meta->entry);
    if (entry == image->code_symbols.end())
        return wrap(detail::bad(
            fmt::format("entry symbol \"{}\" is not defined in an executable section", meta->entry)));
    st->entry = reinterpret_cast<detail::EntryFn>(entry->second);
    for (const auto& f : meta->functions)
        if (auto it = image->code_symbols.find(f); it != image->code_symbols.end())
            st->functions.push_back(it->second);
    std::sort(st->functions.begin(), st->functions.end());
    st->code = image->memory;
    return detail::JitAccess::make(std::move(st));
}

}  // namespace aot
}  // namespace ebpfrt
