// Object::open / Object::parse: libelf reads the sections and symbols; everything read from the file
// is bounds-checked before use, so a hostile object ends in an error, never a crash.

#include <ebpfrt/elf.hpp>

#include <gelf.h>
#include <libelf.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "elf/elf_internal.hpp"

#ifndef EM_BPF
#define EM_BPF 247
#endif

namespace ebpfrt {

namespace {

struct Section {
    std::size_t index = 0;
    std::string name;
    std::uint32_t type = 0;
    std::uint64_t flags = 0;
    std::uint32_t link = 0, info = 0;
    std::span<const std::byte> data;  // empty for SHT_NOBITS
    std::uint64_t size = 0;
    bool exec() const { return (flags & SHF_EXECINSTR) != 0 && type == SHT_PROGBITS; }
};

struct Symbol {
    std::string name;
    std::uint64_t value = 0, size = 0;
    unsigned type = 0, bind = 0;
    std::size_t shndx = 0;
};

struct ElfCloser {
    void operator()(Elf* e) const { elf_end(e); }
};

// Where a call or function reference goes: a section and an instruction index, or an undefined symbol.
struct CallTarget {
    std::size_t section = 0;
    std::size_t insn = 0;
    std::string undefined;  // non-empty: an extern function
};

struct Function {
    std::size_t section = 0, start = 0, end = 0;  // [start, end) in insns
};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool is_global_data(const Section& s) {
    if (s.exec() || !(s.flags & SHF_ALLOC)) return false;
    if (s.type != SHT_PROGBITS && s.type != SHT_NOBITS) return false;
    return starts_with(s.name, ".rodata") || starts_with(s.name, ".data") || starts_with(s.name, ".bss");
}

std::uint32_t read_u32(std::span<const std::byte> d, std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, d.data() + off, 4);
    return v;
}

std::uint32_t kernel_version_code() {
    struct utsname u{};
    if (uname(&u) != 0) return 0;
    unsigned a = 0, b = 0, c = 0;
    if (std::sscanf(u.release, "%u.%u.%u", &a, &b, &c) < 2) return 0;
    return (a << 16) | (b << 8) | std::min(c, 255u);
}

}  // namespace

class ObjectParser {
public:
    ObjectParser(std::span<const std::byte> bytes, std::string_view name, const ObjectOptions& options)
        : bytes_(bytes.begin(), bytes.end()), options_(options) {
        obj_.name_ = std::string(name);
    }

    Result<Object> run() {
        if (auto r = read_elf(); !r) return r.error();
        if (auto r = read_symbols(); !r) return r.error();
        if (auto r = read_btf(); !r) return r.error();
        if (auto r = fixup_datasecs(); !r) return r.error();
        if (auto r = read_legacy_maps(); !r) return r.error();
        if (auto r = read_btf_maps(); !r) return r.error();
        if (auto r = read_globals(); !r) return r.error();
        if (auto r = read_code(); !r) return r.error();
        if (auto r = apply_core(); !r) return r.error();
        if (auto r = relocate(); !r) return r.error();
        if (auto r = find_programs(); !r) return r.error();
        if (auto r = link_programs(); !r) return r.error();
        return std::move(obj_);
    }

private:
    template <class... A> Error bad(fmt::format_string<A...> f, A&&... a) const {
        return Error(Errc::bad_elf,
                     fmt::format("load \"{}\": {}", obj_.name_, fmt::format(f, std::forward<A>(a)...)));
    }

    const Section* section_by_name(std::string_view n) const {
        for (const auto& s : sections_)
            if (s.name == n) return &s;
        return nullptr;
    }

    // --- ELF structure -------------------------------------------------------------------------
    Result<void> read_elf() {
        if (elf_version(EV_CURRENT) == EV_NONE) return bad("libelf is too old");
        if (bytes_.size() < EI_NIDENT || std::memcmp(bytes_.data(), ELFMAG, SELFMAG) != 0)
            return bad("not an ELF file");
        elf_.reset(elf_memory(reinterpret_cast<char*>(bytes_.data()), bytes_.size()));
        if (!elf_ || elf_kind(elf_.get()) != ELF_K_ELF) return bad("not an ELF file: {}", elf_errmsg(-1));
        if (gelf_getclass(elf_.get()) != ELFCLASS64) return bad("not a 64-bit ELF file");
        GElf_Ehdr eh;
        if (!gelf_getehdr(elf_.get(), &eh)) return bad("bad ELF header: {}", elf_errmsg(-1));
        if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr))
            return bad("no section header table (e_shoff {}, e_shentsize {})", eh.e_shoff, eh.e_shentsize);
        // e_shnum 0 means the count is in section 0's sh_size; elf_getshdrnum resolves that below.
        if (eh.e_shoff > bytes_.size() ||
            std::uint64_t{std::max<unsigned>(eh.e_shnum, 1)} * sizeof(Elf64_Shdr) > bytes_.size() - eh.e_shoff)
            return bad("section header table [{}, +{} x {}) exceeds the {}-byte file", eh.e_shoff, eh.e_shnum,
                       sizeof(Elf64_Shdr), bytes_.size());
        if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return bad("not a little-endian ELF file");
        if (eh.e_type != ET_REL) return bad("not a relocatable object (e_type {})", eh.e_type);
        if (eh.e_machine != EM_BPF && eh.e_machine != EM_NONE)
            return bad("e_machine {} is not BPF (247)", eh.e_machine);
        if (eh.e_machine == EM_NONE) obj_.notes_.push_back("e_machine is EM_NONE (0), not EM_BPF; read as BPF");

        std::size_t shnum = 0, shstrndx = 0;
        if (elf_getshdrnum(elf_.get(), &shnum) != 0) return bad("bad section count: {}", elf_errmsg(-1));
        if (elf_getshdrstrndx(elf_.get(), &shstrndx) != 0)
            return bad("bad section name table index: {}", elf_errmsg(-1));
        if (shnum > 65536) return bad("{} sections is too many", shnum);
        sections_.resize(shnum);
        for (std::size_t i = 1; i < shnum; ++i) {
            Elf_Scn* scn = elf_getscn(elf_.get(), i);
            GElf_Shdr sh;
            if (!scn || !gelf_getshdr(scn, &sh)) return bad("section {}: bad header: {}", i, elf_errmsg(-1));
            Section& s = sections_[i];
            s.index = i;
            const char* nm = elf_strptr(elf_.get(), shstrndx, sh.sh_name);
            if (!nm) return bad("section {}: name offset {} out of range", i, sh.sh_name);
            s.name = nm;
            s.type = sh.sh_type;
            s.flags = sh.sh_flags;
            s.link = sh.sh_link;
            s.info = sh.sh_info;
            s.size = sh.sh_size;
            if (sh.sh_type == SHT_NOBITS || sh.sh_type == SHT_NULL) continue;
            if (sh.sh_offset > bytes_.size() || sh.sh_size > bytes_.size() - sh.sh_offset)
                return bad("section {} (\"{}\"): [{}, +{}) exceeds the {}-byte file", i, s.name, sh.sh_offset,
                           sh.sh_size, bytes_.size());
            // Raw bytes straight from the image: everything we read is little-endian, like the host.
            s.data = std::span<const std::byte>(bytes_.data() + sh.sh_offset, sh.sh_size);
        }
        return {};
    }

    Result<void> read_symbols() {
        const Section* symtab = nullptr;
        for (const auto& s : sections_) {
            if (s.type != SHT_SYMTAB) continue;
            if (symtab) return bad("more than one symbol table");
            symtab = &s;
        }
        if (!symtab) return {};  // objects without symbols: programs are named after their sections
        if (symtab->link >= sections_.size() || sections_[symtab->link].type != SHT_STRTAB)
            return bad("symbol table links to section {}, which is not a string table", symtab->link);
        const auto& strtab = sections_[symtab->link];
        if (symtab->size % sizeof(Elf64_Sym) != 0)
            return bad("symbol table size {} is not a multiple of {}", symtab->size, sizeof(Elf64_Sym));
        const std::size_t n = symtab->size / sizeof(Elf64_Sym);
        symbols_.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            Elf64_Sym raw;
            std::memcpy(&raw, symtab->data.data() + i * sizeof raw, sizeof raw);
            Symbol& sym = symbols_[i];
            if (raw.st_name >= strtab.data.size())
                return bad("symbol {}: name offset {} out of range", i, raw.st_name);
            const char* base = reinterpret_cast<const char*>(strtab.data.data()) + raw.st_name;
            sym.name.assign(base, strnlen(base, strtab.data.size() - raw.st_name));
            sym.value = raw.st_value;
            sym.size = raw.st_size;
            sym.type = ELF64_ST_TYPE(raw.st_info);
            sym.bind = ELF64_ST_BIND(raw.st_info);
            sym.shndx = raw.st_shndx;
            if (sym.shndx != SHN_UNDEF && sym.shndx < SHN_LORESERVE) {
                if (sym.shndx >= sections_.size())
                    return bad("symbol {} (\"{}\"): section index {} out of range", i, sym.name, sym.shndx);
                const Section& s = sections_[sym.shndx];
                if (sym.type != STT_SECTION && (sym.value > s.size || sym.size > s.size - sym.value))
                    return bad("symbol {} (\"{}\"): [{}, +{}) exceeds section \"{}\" ({} bytes)", i, sym.name,
                               sym.value, sym.size, s.name, s.size);
            }
        }
        return {};
    }

    // --- BTF, license, version -------------------------------------------------------------------
    Result<void> read_btf() {
        if (const Section* lic = section_by_name("license")) {
            const auto* p = reinterpret_cast<const char*>(lic->data.data());
            obj_.license_.assign(p, strnlen(p, lic->data.size()));
        }
        if (const Section* ver = section_by_name("version"); ver && ver->data.size() >= 4)
            obj_.kernel_version_ = read_u32(ver->data, 0);
        if (const Section* b = section_by_name(".BTF")) {
            auto btf = Btf::parse(b->data);
            if (!btf) return bad("section \".BTF\": {}", btf.error().message());
            obj_.btf_ = std::move(*btf);
            if (const Section* e = section_by_name(".BTF.ext")) {
                auto ext = BtfExt::parse(e->data, *obj_.btf_);
                if (!ext) return bad("section \".BTF.ext\": {}", ext.error().message());
                btf_ext_ = std::move(*ext);
            }
        }
        return {};
    }

    // clang leaves DATASEC sizes and variable offsets at 0 in objects; fill them from the symbols
    // (.kconfig has no section: lay its externs out in order, each aligned to its size up to 8).
    Result<void> fixup_datasecs() {
        if (!obj_.btf_) return {};
        Btf& btf = *obj_.btf_;
        for (std::uint32_t id = 1; id < btf.size(); ++id) {
            const BtfType& ds = btf.type(id);
            if (ds.kind != BtfKind::datasec) continue;
            const Section* sec = section_by_name(ds.name);
            std::vector<BtfVarSecinfo> vars = ds.vars;
            std::uint64_t kc_off = 0;
            for (auto& v : vars) {
                const BtfType& var = btf.type(v.type);
                auto sz = btf.size_of(v.type);
                if (var.kind == BtfKind::var && sz) v.size = static_cast<std::uint32_t>(*sz);
                if (sec) {
                    for (const auto& sym : symbols_)
                        if (sym.shndx == sec->index && sym.name == var.name && sym.type != STT_SECTION) {
                            v.offset = static_cast<std::uint32_t>(sym.value);
                            break;
                        }
                } else if (ds.name == ".kconfig") {
                    const std::uint64_t align = std::clamp<std::uint64_t>(v.size, 1, 8);
                    kc_off = (kc_off + align - 1) / align * align;
                    v.offset = static_cast<std::uint32_t>(kc_off);
                    kc_off += v.size;
                }
            }
            const std::uint64_t size = sec ? sec->size : kc_off;
            if (size > UINT32_MAX) return bad("DATASEC \"{}\" is too large", ds.name);
            if (auto r = btf.fixup_datasec(id, static_cast<std::uint32_t>(size), std::move(vars)); !r)
                return bad("{}", r.error().message());
        }
        return {};
    }

    // --- maps -------------------------------------------------------------------------------------
    Result<void> read_legacy_maps() {
        // Every legacy definition in file order, with its raw fields and layout size, for the inner
        // maps of map-in-map (which may sit in another "maps/..." section).
        struct Def {
            std::size_t index;
            std::size_t size;
            std::array<std::uint32_t, 9> raw;
        };
        std::vector<Def> defs;
        for (const auto& s : sections_) {
            if (s.name != "maps" && !starts_with(s.name, "maps/")) continue;
            std::vector<const Symbol*> syms;
            for (const auto& sym : symbols_)
                if (sym.shndx == s.index && sym.type != STT_SECTION && !sym.name.empty()) syms.push_back(&sym);
            if (syms.empty()) continue;
            std::sort(syms.begin(), syms.end(), [](auto* a, auto* b) { return a->value < b->value; });
            if (s.type == SHT_NOBITS) return bad("section \"{}\": legacy maps need initialized data", s.name);
            // Every definition has the same size: bpf_map_def (20, 24 or 28 bytes) or iproute2's
            // bpf_elf_map (28 or 36 bytes). The first five u32 fields mean the same in all of them.
            const std::size_t def_size = s.size / syms.size();
            if (def_size < 20 || s.size % syms.size() != 0)
                return bad("section \"{}\": {} bytes do not hold {} map definitions", s.name, s.size, syms.size());
            for (const Symbol* sym : syms) {
                if (sym->value % def_size != 0 || sym->value + def_size > s.size)
                    return bad("map \"{}\": offset {} is not a definition in \"{}\"", sym->name, sym->value, s.name);
                MapSpec m;
                m.name = sym->name;
                m.origin = MapOrigin::legacy;
                m.type = static_cast<MapType>(read_u32(s.data, sym->value));
                m.key_size = read_u32(s.data, sym->value + 4);
                m.value_size = read_u32(s.data, sym->value + 8);
                m.max_entries = read_u32(s.data, sym->value + 12);
                m.flags = read_u32(s.data, sym->value + 16);
                if (def_size >= 28) {
                    // bpf_elf_map: id, pinning; bpf_map_def (samples/bpf): inner_map_idx, numa_node.
                    const std::uint32_t f6 = read_u32(s.data, sym->value + 24);
                    if (s.name == "maps" && f6 <= 2) m.pinning = static_cast<Pinning>(f6);
                }
                std::array<std::uint32_t, 9> raw{};
                for (std::size_t k = 0; k < raw.size() && k * 4 + 4 <= def_size; ++k)
                    raw[k] = read_u32(s.data, sym->value + k * 4);
                defs.push_back(Def{obj_.maps_.size(), def_size, raw});
                map_by_symbol_[{s.index, sym->value}] = obj_.maps_.size();
                obj_.maps_.push_back(std::move(m));
            }
        }
        // Inner maps of legacy map-in-map: iproute2's bpf_elf_map names the inner map by its `id`
        // (inner_id, 36-byte layout); samples/bpf's bpf_map_def by its index (inner_map_idx). A
        // reference that matches nothing leaves the map without an inner spec (creating it fails).
        for (const Def& d : defs) {
            MapSpec& m = obj_.maps_[d.index];
            if (m.type != MapType::array_of_maps && m.type != MapType::hash_of_maps) continue;
            std::optional<std::size_t> inner;
            if (d.size >= 36) {
                for (const Def& o : defs)
                    if (o.index != d.index && d.raw[7] != 0 && o.raw[5] == d.raw[7]) inner = o.index;
            } else if (d.raw[5] < defs.size() && defs[d.raw[5]].index != d.index) {
                inner = defs[d.raw[5]].index;
            }
            if (inner) m.inner = std::make_shared<const MapSpec>(obj_.maps_[*inner]);
        }
        return {};
    }

    // The value of a __uint(name, N) member: a pointer to an array of N elements.
    std::optional<std::uint32_t> uint_member(const Btf& btf, std::uint32_t type) const {
        const BtfType& p = btf.type(btf.skip_modifiers(type));
        if (p.kind != BtfKind::pointer) return std::nullopt;
        const BtfType& a = btf.type(btf.skip_modifiers(p.type));
        if (a.kind != BtfKind::array) return std::nullopt;
        return a.nelems;
    }

    Result<MapSpec> parse_btf_map_def(const Btf& btf, std::uint32_t struct_id, std::string_view name,
                                      std::size_t depth) {
        const BtfType& def = btf.type(btf.skip_modifiers(struct_id));
        if (def.kind != BtfKind::struct_type)
            return bad("map \"{}\": definition is a {}, not a struct", name, to_string(def.kind));
        MapSpec m;
        m.name = std::string(name);
        m.origin = MapOrigin::btf_maps;
        for (const auto& mem : def.members) {
            auto num = [&](std::string_view what) -> Result<std::uint32_t> {
                auto v = uint_member(btf, mem.type);
                if (!v) return bad("map \"{}\": member \"{}\" is not __uint({}, N)", name, mem.name, what);
                return *v;
            };
            auto sized = [&]() -> Result<std::pair<std::uint32_t, std::uint32_t>> {
                const BtfType& p = btf.type(btf.skip_modifiers(mem.type));
                if (p.kind != BtfKind::pointer) return bad("map \"{}\": member \"{}\" is not __type()", name, mem.name);
                auto sz = btf.size_of(p.type);
                if (!sz || *sz > UINT32_MAX) return bad("map \"{}\": member \"{}\" has no size", name, mem.name);
                return std::pair{p.type, static_cast<std::uint32_t>(*sz)};
            };
            if (mem.name == "type") {
                auto v = num(mem.name);
                if (!v) return v.error();
                m.type = static_cast<MapType>(*v);
            } else if (mem.name == "max_entries" || mem.name == "map_flags" || mem.name == "numa_node" ||
                       mem.name == "key_size" || mem.name == "value_size" || mem.name == "pinning" ||
                       mem.name == "map_extra") {
                auto v = num(mem.name);
                if (!v) return v.error();
                if (mem.name == "max_entries") m.max_entries = *v;
                if (mem.name == "map_flags") m.flags = *v;
                if (mem.name == "numa_node") m.numa_node = *v;
                if (mem.name == "key_size") m.key_size = *v;
                if (mem.name == "value_size") m.value_size = *v;
                if (mem.name == "pinning") m.pinning = static_cast<Pinning>(*v);
            } else if (mem.name == "key") {
                auto kv = sized();
                if (!kv) return kv.error();
                m.btf_key_type_id = kv->first;
                m.key_size = kv->second;
            } else if (mem.name == "value") {
                auto kv = sized();
                if (!kv) return kv.error();
                m.btf_value_type_id = kv->first;
                m.value_size = kv->second;
            } else if (mem.name == "values") {
                // __array(values, T): T *values[]. For map-in-map, T describes the inner map.
                const BtfType& arr = btf.type(btf.skip_modifiers(mem.type));
                if (arr.kind != BtfKind::array) return bad("map \"{}\": member \"values\" is not an array", name);
                const BtfType& ptr = btf.type(btf.skip_modifiers(arr.type));
                if (ptr.kind != BtfKind::pointer) return bad("map \"{}\": member \"values\" is not an array of pointers", name);
                values_offset_[std::string(name)] = mem.bit_offset / 8;
                if (btf.resolved_kind(ptr.type) == BtfKind::struct_type) {
                    if (depth > 0) return bad("map \"{}\": inner maps nest more than one level", name);
                    auto inner = parse_btf_map_def(btf, ptr.type, fmt::format("{}.inner", name), depth + 1);
                    if (!inner) return inner.error();
                    m.inner = std::make_shared<const MapSpec>(std::move(*inner));
                }
            }
            // Other members (e.g. "dummy") are ignored, like libbpf does with a warning.
        }
        if (m.type == MapType::array_of_maps || m.type == MapType::hash_of_maps) {
            if (!m.inner) return bad("map \"{}\": map-in-map without an inner map definition (__array(values, ...))", name);
            m.value_size = 4;  // the kernel's view: an fd/id
        }
        if (m.type == MapType::prog_array) m.value_size = m.value_size ? m.value_size : 4;
        // A `struct bpf_spin_lock` member at the top level of the value (as the kernel's map_check_btf
        // finds it): BPF_F_LOCK copies under it, value copies leave it alone.
        if (m.btf_value_type_id != 0 && btf.resolved_kind(m.btf_value_type_id) == BtfKind::struct_type) {
            for (const BtfMember& vm : btf.type(btf.skip_modifiers(m.btf_value_type_id)).members) {
                const BtfType& t = btf.type(btf.skip_modifiers(vm.type));
                if (t.kind != BtfKind::struct_type || t.name != "bpf_spin_lock") continue;
                if (m.spin_lock_off >= 0) return bad("map \"{}\": the value has more than one bpf_spin_lock", name);
                m.spin_lock_off = static_cast<std::int32_t>(vm.bit_offset / 8);
            }
        }
        return m;
    }

    Result<void> read_btf_maps() {
        const Section* s = section_by_name(".maps");
        if (!s) return {};
        if (!obj_.btf_) return bad("section \".maps\" needs BTF, but the object has no \".BTF\"");
        const Btf& btf = *obj_.btf_;
        auto sec = btf.find(".maps", BtfKind::datasec);
        if (!sec) return bad("section \".maps\": no DATASEC \".maps\" in the BTF");
        for (const auto& v : btf.type(*sec).vars) {
            const BtfType& var = btf.type(v.type);
            if (var.kind != BtfKind::var) return bad("section \".maps\": entry {} is not a variable", v.type);
            if (std::uint64_t{v.offset} + v.size > s->size)
                return bad("map \"{}\": [{}, +{}) exceeds section \".maps\"", var.name, v.offset, v.size);
            auto m = parse_btf_map_def(btf, var.type, var.name, 0);
            if (!m) return m.error();
            map_by_symbol_[{s->index, v.offset}] = obj_.maps_.size();
            btf_map_offset_[obj_.maps_.size()] = v.offset;
            obj_.maps_.push_back(std::move(*m));
        }
        return {};
    }

    Result<void> read_globals() {
        for (const auto& s : sections_) {
            if (!is_global_data(s)) continue;
            if (s.size == 0) continue;
            if (s.size > UINT32_MAX) return bad("section \"{}\": {} bytes is too large for a map", s.name, s.size);
            MapSpec m;
            m.name = s.name;
            m.type = MapType::array;
            m.key_size = 4;
            m.value_size = static_cast<std::uint32_t>(s.size);
            m.max_entries = 1;
            m.flags = map_flags::mmapable;
            const bool ro = starts_with(s.name, ".rodata");
            m.origin = ro ? MapOrigin::rodata : starts_with(s.name, ".bss") ? MapOrigin::bss : MapOrigin::data;
            if (ro) m.flags |= map_flags::rdonly_prog;
            m.initial_value.assign(s.size, std::byte{0});
            if (s.type != SHT_NOBITS) std::copy(s.data.begin(), s.data.end(), m.initial_value.begin());
            if (obj_.btf_)
                if (auto sec = obj_.btf_->find(s.name, BtfKind::datasec)) m.btf_value_type_id = *sec;
            global_map_[s.index] = obj_.maps_.size();
            add_global_vars(s.name, obj_.maps_.size());
            obj_.maps_.push_back(std::move(m));
        }
        // .kconfig: externs the loader gives values (a DATASEC in the BTF, no ELF section).
        if (obj_.btf_) {
            if (auto sec = obj_.btf_->find(".kconfig", BtfKind::datasec)) {
                const BtfType& ds = obj_.btf_->type(*sec);
                MapSpec m;
                m.name = ".kconfig";
                m.type = MapType::array;
                m.key_size = 4;
                m.value_size = std::max<std::uint32_t>(ds.size, 1);
                m.max_entries = 1;
                m.flags = map_flags::mmapable | map_flags::rdonly_prog;
                m.origin = MapOrigin::kconfig;
                m.btf_value_type_id = *sec;
                m.initial_value.assign(m.value_size, std::byte{0});
                const std::size_t idx = obj_.maps_.size();
                for (const auto& v : ds.vars) {
                    const BtfType& var = obj_.btf_->type(v.type);
                    if (std::uint64_t{v.offset} + v.size > m.value_size)
                        return bad("extern \"{}\": outside the .kconfig section", var.name);
                    const std::uint64_t value = kconfig_value(var.name, var.linkage);
                    const std::uint32_t n = std::min<std::uint32_t>(v.size, 8);
                    std::memcpy(m.initial_value.data() + v.offset, &value, n);
                    kconfig_vars_[var.name] = v.offset;
                    ++obj_.relocations_.kconfig;
                }
                kconfig_map_ = idx;
                add_global_vars(".kconfig", idx);
                obj_.maps_.push_back(std::move(m));
            }
        }
        return {};
    }

    std::uint64_t kconfig_value(const std::string& name, std::uint32_t linkage) {
        if (auto it = options_.kconfig.find(name); it != options_.kconfig.end()) return it->second;
        if (name == "LINUX_KERNEL_VERSION") return kernel_version_code();
        if (name == "LINUX_HAS_BPF_COOKIE" || name == "LINUX_HAS_SYSCALL_WRAPPER") return 1;
        (void)linkage;
        obj_.notes_.push_back(fmt::format("kconfig extern \"{}\" has no known value; it reads 0", name));
        return 0;
    }

    void add_global_vars(const std::string& section, std::size_t map_index) {
        if (!obj_.btf_) return;
        auto sec = obj_.btf_->find(section, BtfKind::datasec);
        if (!sec) return;
        for (const auto& v : obj_.btf_->type(*sec).vars) {
            const BtfType& var = obj_.btf_->type(v.type);
            if (var.kind == BtfKind::var && !var.name.empty())
                obj_.globals_[var.name] = Object::GlobalVar{map_index, v.offset, v.size};
        }
    }

    // --- code -------------------------------------------------------------------------------------
    Result<void> read_code() {
        for (const auto& s : sections_) {
            if (!s.exec()) continue;
            if (s.size % 8 != 0) return bad("section \"{}\": {} bytes is not a whole number of instructions", s.name, s.size);
            auto insns = isa::decode(s.data);
            if (!insns) return bad("section \"{}\": {}", s.name, insns.error().message());
            code_[s.index] = std::move(*insns);
        }
        return {};
    }

    Result<void> apply_core() {
        if (!btf_ext_ || btf_ext_->core_relos.empty()) return {};
        const Btf* target = nullptr;
        std::string target_path = options_.target_btf;
        if (target_path.empty()) {
            if (FILE* f = std::fopen("/sys/kernel/btf/vmlinux", "rb")) {
                std::fclose(f);
                target_path = "/sys/kernel/btf/vmlinux";
            }
        }
        if (!target_path.empty()) {
            auto data = read_whole(target_path);
            if (!data) return data.error().wrap(fmt::format("load \"{}\": CO-RE target BTF", obj_.name_));
            auto tb = Btf::parse(*data);
            if (!tb) return bad("CO-RE target BTF \"{}\": {}", target_path, tb.error().message());
            target_btf_ = std::move(*tb);
            target = &*target_btf_;
        } else {
            target = &*obj_.btf_;
            obj_.notes_.push_back("CO-RE: no target BTF (no /sys/kernel/btf/vmlinux); used the object's own BTF");
        }
        for (const auto& [sec_name, relos] : btf_ext_->core_relos) {
            const Section* s = section_by_name(sec_name);
            if (!s || !code_.count(s->index)) return bad("CO-RE relocations for unknown code section \"{}\"", sec_name);
            auto& code = code_[s->index];
            for (const auto& r : relos) {
                auto res = detail::apply_core_relo(code, r, *obj_.btf_, *target);
                if (!res) return bad("section \"{}\": {}", sec_name, res.error().message());
                ++(res->poisoned ? obj_.relocations_.core_poisoned : obj_.relocations_.core_applied);
            }
        }
        return {};
    }

    static Result<std::vector<std::byte>> read_whole(const std::string& path) {
        std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
        if (!f) return Error(Errc::io_error, fmt::format("read \"{}\": {}", path, std::strerror(errno)));
        std::vector<std::byte> out;
        std::byte buf[1 << 16];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.insert(out.end(), buf, buf + n);
        return out;
    }

    // --- relocations ------------------------------------------------------------------------------
    Result<void> relocate() {
        for (const auto& rs : sections_) {
            if (rs.type != SHT_REL) continue;
            if (rs.info >= sections_.size()) return bad("section \"{}\": target section {} out of range", rs.name, rs.info);
            const Section& target = sections_[rs.info];
            if (target.name == ".maps") {
                if (auto r = read_maps_relocs(rs); !r) return r;
                continue;
            }
            if (!target.exec()) continue;  // .rel.BTF, .rel.BTF.ext, debug info: nothing to do for us
            if (rs.size % sizeof(Elf64_Rel) != 0) return bad("section \"{}\": size is not a multiple of 16", rs.name);
            auto& code = code_[target.index];
            for (std::size_t i = 0; i < rs.size / sizeof(Elf64_Rel); ++i) {
                Elf64_Rel rel;
                std::memcpy(&rel, rs.data.data() + i * sizeof rel, sizeof rel);
                const std::size_t symi = ELF64_R_SYM(rel.r_info);
                if (symi >= symbols_.size())
                    return bad("section \"{}\": relocation {} refers to symbol {} out of range", rs.name, i, symi);
                if (rel.r_offset % 8 != 0 || rel.r_offset / 8 >= code.size())
                    return bad("section \"{}\": relocation {} at offset {} is not an instruction", rs.name, i, rel.r_offset);
                if (auto r = apply_reloc(target, code, rel.r_offset / 8, symbols_[symi], i); !r) return r;
            }
        }
        return {};
    }

    Result<void> apply_reloc(const Section& sec, std::vector<Insn>& code, std::size_t idx, const Symbol& sym,
                             std::size_t reloc_no) {
        Insn& insn = code[idx];
        auto where = [&] { return fmt::format("section \"{}\": relocation {} (insn {}, symbol \"{}\")", sec.name, reloc_no, idx, sym.name); };
        const bool is_call = insn.opcode == isa::opcode_call;
        const bool is_lddw = insn.opcode == isa::opcode_lddw;
        if (!is_call && !is_lddw) return bad("{}: not an lddw or call instruction", where());
        if (is_lddw && idx + 1 >= code.size()) return bad("{}: lddw is truncated", where());

        if (sym.shndx == SHN_UNDEF) {
            if (is_call) {
                call_targets_[{sec.index, idx}] = CallTarget{0, 0, sym.name};
                return {};
            }
            auto kc = kconfig_vars_.find(sym.name);
            if (kc == kconfig_vars_.end()) return bad("{}: undefined variable (not a kconfig extern)", where());
            const std::int64_t off = static_cast<std::int64_t>(kc->second) + insn.imm;  // imm: addend
            insn.src = isa::pseudo_map_idx_value;
            insn.imm = static_cast<std::int32_t>(*kconfig_map_);
            code[idx + 1].imm = static_cast<std::int32_t>(off);
            ++obj_.relocations_.global_refs;
            return {};
        }
        if (sym.shndx >= sections_.size()) return bad("{}: symbol in special section {}", where(), sym.shndx);
        const Section& ts = sections_[sym.shndx];

        if (ts.exec()) {
            // A call (target insn = value/8 + imm + 1) or a function address (byte addend in imm).
            std::int64_t target;
            if (is_call) {
                if (insn.src != isa::call_local) return bad("{}: call to a function is not a local call (src {})", where(), unsigned{insn.src});
                target = static_cast<std::int64_t>(sym.value / 8) + insn.imm + 1;
            } else {
                target = (static_cast<std::int64_t>(sym.value) + insn.imm) / 8;
                insn.src = isa::pseudo_func;
            }
            if (target < 0 || static_cast<std::size_t>(target) >= code_[ts.index].size())
                return bad("{}: target {} is outside section \"{}\"", where(), target, ts.name);
            call_targets_[{sec.index, idx}] = CallTarget{ts.index, static_cast<std::size_t>(target), {}};
            return {};
        }
        if (is_call) return bad("{}: call to a non-code section \"{}\"", where(), ts.name);

        if (auto it = map_by_symbol_.find({ts.index, sym.value}); it != map_by_symbol_.end() &&
                                                                  sym.type != STT_SECTION) {
            insn.src = isa::pseudo_map_idx;
            insn.imm = static_cast<std::int32_t>(it->second);
            ++obj_.relocations_.map_refs;
            return {};
        }
        if (auto it = global_map_.find(ts.index); it != global_map_.end()) {
            const std::int64_t off = static_cast<std::int64_t>(sym.value) + insn.imm;
            if (off < 0 || static_cast<std::uint64_t>(off) >= ts.size)
                return bad("{}: offset {} is outside \"{}\"", where(), off, ts.name);
            insn.src = isa::pseudo_map_idx_value;
            insn.imm = static_cast<std::int32_t>(it->second);
            code[idx + 1].imm = static_cast<std::int32_t>(off);
            ++obj_.relocations_.global_refs;
            return {};
        }
        if (ts.name == "maps" || starts_with(ts.name, "maps/") || ts.name == ".maps") {
            // A section symbol plus an offset into a maps section (old clang).
            const std::uint64_t off = sym.value + static_cast<std::uint32_t>(insn.imm);
            if (auto it = map_by_symbol_.find({ts.index, off}); it != map_by_symbol_.end()) {
                insn.src = isa::pseudo_map_idx;
                insn.imm = static_cast<std::int32_t>(it->second);
                ++obj_.relocations_.map_refs;
                return {};
            }
            return bad("{}: no map at offset {} of \"{}\"", where(), off, ts.name);
        }
        return bad("{}: refers to section \"{}\", which holds no maps, globals or code", where(), ts.name);
    }

    // .rel.maps: initial values of prog_array and map-in-map slots (`.values = { [1] = &prog }`).
    Result<void> read_maps_relocs(const Section& rs) {
        if (rs.size % sizeof(Elf64_Rel) != 0) return bad("section \"{}\": size is not a multiple of 16", rs.name);
        for (std::size_t i = 0; i < rs.size / sizeof(Elf64_Rel); ++i) {
            Elf64_Rel rel;
            std::memcpy(&rel, rs.data.data() + i * sizeof rel, sizeof rel);
            const std::size_t symi = ELF64_R_SYM(rel.r_info);
            if (symi >= symbols_.size()) return bad("section \"{}\": relocation {} symbol out of range", rs.name, i);
            const Symbol& sym = symbols_[symi];
            // Which map's `values` does the offset fall in?
            bool placed = false;
            for (const auto& [mi, off] : btf_map_offset_) {
                MapSpec& m = obj_.maps_[mi];
                auto vo = values_offset_.find(m.name);
                if (vo == values_offset_.end()) continue;
                const std::uint64_t base = off + vo->second;
                if (rel.r_offset < base || (rel.r_offset - base) % 8 != 0) continue;
                const std::uint64_t slot = (rel.r_offset - base) / 8;
                if (slot >= m.max_entries && m.type != MapType::hash_of_maps) continue;
                m.initial_slots.emplace_back(static_cast<std::uint32_t>(slot), sym.name);
                placed = true;
                break;
            }
            if (!placed) return bad("section \"{}\": relocation {} at offset {} is not in a map's values", rs.name, i, rel.r_offset);
        }
        return {};
    }

    // --- programs ---------------------------------------------------------------------------------
    Result<void> find_programs() {
        const Section* text = section_by_name(".text");
        bool other_exec = false;
        for (const auto& s : sections_)
            if (s.exec() && s.name != ".text" && s.size > 0) other_exec = true;

        for (const auto& s : sections_) {
            if (!s.exec() || s.size == 0) continue;
            const bool is_text = text && s.index == text->index;
            if (is_text && other_exec) continue;  // libbpf: .text holds subprograms
            std::vector<const Symbol*> funcs;
            for (const auto& sym : symbols_)
                if (sym.shndx == s.index && sym.type == STT_FUNC && (!is_text || sym.bind == STB_GLOBAL))
                    funcs.push_back(&sym);
            std::sort(funcs.begin(), funcs.end(), [](auto* a, auto* b) { return a->value < b->value; });
            const auto kind = detail::classify_section(s.name);
            auto add = [&](std::string name, std::size_t start, std::size_t end, bool global) -> Result<void> {
                if (start >= end || end > code_[s.index].size())
                    return bad("program \"{}\" in \"{}\": instructions [{}, {}) out of range", name, s.name, start, end);
                ProgramSpec p;
                p.name = std::move(name);
                p.section = s.name;
                p.type = kind.type;
                p.attach = kind.attach;
                p.attach_target = kind.target;
                p.global = global;
                p.section_offset = start;
                p.entry_insns = end - start;
                entries_.push_back(Function{s.index, start, end});
                obj_.programs_.push_back(std::move(p));
                return {};
            };
            if (funcs.empty()) {
                // Old clang: no STT_FUNC symbols; the section is one program, named after a symbol at
                // offset 0 if there is one.
                std::string name = s.name;
                for (const auto& sym : symbols_)
                    if (sym.shndx == s.index && sym.value == 0 && sym.type == STT_NOTYPE && !sym.name.empty() &&
                        sym.bind == STB_GLOBAL)
                        name = sym.name;
                if (auto r = add(name, 0, code_[s.index].size(), true); !r) return r;
                continue;
            }
            for (const Symbol* f : funcs) {
                const std::size_t start = f->value / 8;
                std::size_t end = f->size ? (f->value + f->size) / 8 : function_end(s.index, start);
                if (auto r = add(f->name, start, end, f->bind != STB_LOCAL); !r) return r;
            }
        }
        return {};
    }

    // End of the function starting at `start`: its symbol's size, else the next function symbol, else
    // the end of the section.
    std::size_t function_end(std::size_t sec, std::size_t start) const {
        std::size_t end = code_.at(sec).size();
        for (const auto& sym : symbols_) {
            if (sym.shndx != sec || sym.type != STT_FUNC) continue;
            if (sym.value / 8 == start && sym.size) return std::min(end, (sym.value + sym.size) / 8);
            if (sym.value / 8 > start) end = std::min<std::size_t>(end, sym.value / 8);
        }
        return end;
    }

    Function function_at(std::size_t sec, std::size_t insn) const {
        // The function symbol covering `insn`, or [insn, next function) when no symbol starts there.
        for (const auto& sym : symbols_) {
            if (sym.shndx != sec || sym.type != STT_FUNC || !sym.size) continue;
            const std::size_t b = sym.value / 8, e = (sym.value + sym.size) / 8;
            if (insn >= b && insn < e) return Function{sec, b, e};
        }
        return Function{sec, insn, function_end(sec, insn)};
    }

    Result<void> link_programs() {
        for (std::size_t pi = 0; pi < obj_.programs_.size(); ++pi) {
            ProgramSpec& p = obj_.programs_[pi];
            std::vector<Insn> out;
            std::map<std::pair<std::size_t, std::size_t>, std::size_t> placed;  // function start -> out index
            std::deque<Function> todo{entries_[pi]};
            std::set<std::string> unresolved;
            placed[{entries_[pi].section, entries_[pi].start}] = 0;
            // Copy functions one by one; each call/function reference is fixed to point at the copy
            // of its target, which is appended (once) when first seen.
            std::vector<std::pair<std::size_t, std::pair<std::size_t, std::size_t>>> fixups;  // out idx -> (sec, insn)
            while (!todo.empty()) {
                const Function f = todo.front();
                todo.pop_front();
                const std::size_t base = out.size();
                placed[{f.section, f.start}] = base;
                const auto& code = code_.at(f.section);
                for (std::size_t i = f.start; i < f.end; ++i) {
                    Insn insn = code[i];
                    const bool call = insn.opcode == isa::opcode_call && insn.src == isa::call_local;
                    const bool func_ref = insn.opcode == isa::opcode_lddw && insn.src == isa::pseudo_func;
                    if (call || func_ref) {
                        CallTarget t;
                        if (auto it = call_targets_.find({f.section, i}); it != call_targets_.end()) {
                            t = it->second;
                        } else {
                            const std::int64_t rel = static_cast<std::int64_t>(i) + insn.imm + 1;
                            if (rel < 0 || static_cast<std::size_t>(rel) >= code.size())
                                return bad("program \"{}\": call at insn {} of \"{}\" jumps outside the section",
                                           p.name, i, sections_[f.section].name);
                            t = CallTarget{f.section, static_cast<std::size_t>(rel), {}};
                        }
                        if (!t.undefined.empty()) {
                            unresolved.insert(t.undefined);
                            ++obj_.relocations_.extern_calls;
                        } else {
                            const Function tf = function_at(t.section, t.insn);
                            if (!placed.count({tf.section, tf.start}) &&
                                std::none_of(todo.begin(), todo.end(), [&](const Function& q) {
                                    return q.section == tf.section && q.start == tf.start;
                                })) {
                                todo.push_back(tf);
                            }
                            fixups.push_back({out.size(), {t.section, t.insn}});
                            ++obj_.relocations_.calls;
                        }
                    }
                    out.push_back(insn);
                }
                if (out.size() > isa::max_insns) return bad("program \"{}\": more than {} instructions", p.name, isa::max_insns);
            }
            for (const auto& [at, target] : fixups) {
                const Function tf = function_at(target.first, target.second);
                const std::size_t dest = placed.at({tf.section, tf.start}) + (target.second - tf.start);
                const std::int64_t rel = static_cast<std::int64_t>(dest) - static_cast<std::int64_t>(at) - 1;
                out[at].imm = static_cast<std::int32_t>(rel);
            }
            p.insns = std::move(out);
            p.unresolved_calls.assign(unresolved.begin(), unresolved.end());
        }
        return {};
    }

    std::vector<std::byte> bytes_;
    ObjectOptions options_;
    Object obj_;
    std::unique_ptr<Elf, ElfCloser> elf_;
    std::vector<Section> sections_;
    std::vector<Symbol> symbols_;
    std::optional<BtfExt> btf_ext_;
    std::optional<Btf> target_btf_;
    std::map<std::size_t, std::vector<Insn>> code_;                       // exec section -> its code
    std::map<std::pair<std::size_t, std::uint64_t>, std::size_t> map_by_symbol_;  // (section, offset) -> map
    std::map<std::size_t, std::size_t> btf_map_offset_;                   // map index -> offset in .maps
    std::map<std::string, std::uint64_t> values_offset_;                  // map name -> offset of `values`
    std::map<std::size_t, std::size_t> global_map_;                       // data section -> map index
    std::map<std::string, std::uint32_t> kconfig_vars_;
    std::optional<std::size_t> kconfig_map_;
    std::map<std::pair<std::size_t, std::size_t>, CallTarget> call_targets_;
    std::vector<Function> entries_;
};

Result<Object> Object::parse(std::span<const std::byte> bytes, std::string_view name, const ObjectOptions& options) {
    return ObjectParser(bytes, name, options).run();
}

Result<Object> Object::open(std::string_view path, const ObjectOptions& options) {
    std::string p(path);
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(p.c_str(), "rb"), &std::fclose);
    if (!f) return Error(Errc::io_error, fmt::format("load \"{}\": {}", p, std::strerror(errno)));
    std::vector<std::byte> bytes;
    std::byte buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) bytes.insert(bytes.end(), buf, buf + n);
    if (std::ferror(f.get())) return Error(Errc::io_error, fmt::format("load \"{}\": read error", p));
    return parse(bytes, p, options);
}

Result<const ProgramSpec*> Object::program(std::string_view name) const {
    for (const auto& p : programs_)
        if (p.name == name) return &p;
    return Error(Errc::not_found, fmt::format("object \"{}\": no program \"{}\"", name_, name));
}

Result<MapSpec*> Object::map(std::string_view name) {
    for (auto& m : maps_)
        if (m.name == name) return &m;
    return Error(Errc::not_found, fmt::format("object \"{}\": no map \"{}\"", name_, name));
}

Result<std::span<std::byte>> Object::global(std::string_view var) {
    auto it = globals_.find(var);
    if (it == globals_.end())
        return Error(Errc::not_found, fmt::format("object \"{}\": no global variable \"{}\"{}", name_, var,
                                                  btf_ ? "" : " (the object has no BTF)"));
    auto& bytes = maps_[it->second.map].initial_value;
    if (std::uint64_t{it->second.offset} + it->second.size > bytes.size())
        return Error(Errc::not_found, fmt::format("object \"{}\": variable \"{}\" lies outside its section", name_, var));
    return std::span<std::byte>(bytes.data() + it->second.offset, it->second.size);
}

}  // namespace ebpfrt
