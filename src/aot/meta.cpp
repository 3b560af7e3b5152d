// Encoding of the AOT metadata section (meta.hpp).

#include "aot/meta.hpp"

#include <cstring>

#include <fmt/format.h>

namespace ebpfrt::detail {
namespace {

constexpr char magic[8] = {'E', 'B', 'P', 'F', 'A', 'O', 'T', '\0'};
constexpr std::uint32_t flag_checked = 1, flag_budget = 2;
constexpr std::uint8_t helper_unwind = 1, helper_checks_args = 2;

void put32(std::vector<std::byte>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
void put_string(std::vector<std::byte>& out, const std::string& s) {
    put32(out, static_cast<std::uint32_t>(s.size()));
    for (char c : s) out.push_back(static_cast<std::byte>(c));
}

// Reads with bounds checks; every count is checked against what is left before anything is allocated.
struct Reader {
    std::span<const std::byte> in;
    std::size_t at = 0;
    const char* what = nullptr;  // first failure

    bool take(std::size_t n, const std::byte*& p, const char* field) {
        if (what != nullptr) return false;
        if (n > in.size() - at) {
            what = field;
            return false;
        }
        p = in.data() + at;
        at += n;
        return true;
    }
    std::uint32_t u32(const char* field) {
        const std::byte* p = nullptr;
        if (!take(4, p, field)) return 0;
        std::uint32_t v = 0;
        for (int i = 0; i < 4; ++i) v |= std::to_integer<std::uint32_t>(p[i]) << (8 * i);
        return v;
    }
    std::string string(const char* field) {
        const std::uint32_t n = u32(field);
        const std::byte* p = nullptr;
        if (!take(n, p, field)) return {};
        return std::string(reinterpret_cast<const char*>(p), n);
    }
};

}  // namespace

std::vector<std::byte> encode_aot_meta(const AotMeta& m) {
    std::vector<std::byte> out;
    for (char c : magic) out.push_back(static_cast<std::byte>(c));
    put32(out, aot_meta_version);
    put32(out, (m.checked ? flag_checked : 0) | (m.budget ? flag_budget : 0));
    put_string(out, m.entry);
    put32(out, static_cast<std::uint32_t>(m.insns.size()));
    const auto code = isa::encode(m.insns);
    out.insert(out.end(), code.begin(), code.end());
    put32(out, static_cast<std::uint32_t>(m.helpers.size()));
    for (const auto& h : m.helpers) {
        out.push_back(static_cast<std::byte>(h.kind));
        out.push_back(static_cast<std::byte>((h.unwind_on_zero ? helper_unwind : 0) |
                                             (h.checks_args ? helper_checks_args : 0)));
        out.push_back(std::byte{0});
        out.push_back(std::byte{0});
        put32(out, h.id);
    }
    put32(out, static_cast<std::uint32_t>(m.functions.size()));
    for (const auto& f : m.functions) put_string(out, f);
    put32(out, static_cast<std::uint32_t>(m.maps.size()));
    for (const auto& map : m.maps) {
        for (std::uint32_t v :
             {map.type, map.key_size, map.value_size, map.max_entries, map.flags, map.origin})
            put32(out, v);
        put_string(out, map.name);
    }
    return out;
}

Result<AotMeta> decode_aot_meta(std::span<const std::byte> bytes) {
    auto bad = [](std::string why) { return Error(Errc::bad_elf, "metadata: " + why); };
    if (bytes.size() < sizeof magic || std::memcmp(bytes.data(), magic, sizeof magic) != 0)
        return bad("not an ebpfrt AOT metadata section (bad magic)");
    Reader r{bytes, sizeof magic};
    const std::uint32_t version = r.u32("version");
    if (r.what == nullptr && (version == 0 || version > aot_meta_version))
        return bad(fmt::format("version {} is not supported (this loader reads versions 1 to {})", version,
                               aot_meta_version));
    AotMeta m;
    const std::uint32_t flags = r.u32("flags");
    m.checked = (flags & flag_checked) != 0;
    m.budget = (flags & flag_budget) != 0;
    m.entry = r.string("entry name");
    const std::uint32_t n_insns = r.u32("instruction count");
    const std::byte* code = nullptr;
    if (r.what == nullptr && n_insns > (bytes.size() - r.at) / 8) r.what = "instructions";
    if (r.take(std::size_t{n_insns} * 8, code, "instructions")) {
        auto insns = isa::decode(std::span(code, std::size_t{n_insns} * 8));
        if (!insns) return bad(insns.error().message());
        m.insns = std::move(*insns);
    }
    const std::uint32_t n_helpers = r.u32("helper count");
    if (r.what == nullptr && n_helpers > (bytes.size() - r.at) / 8) r.what = "helpers";
    for (std::uint32_t i = 0; r.what == nullptr && i < n_helpers; ++i) {
        const std::byte* p = nullptr;
        if (!r.take(4, p, "helpers")) break;
        AotHelper h;
        if (std::to_integer<unsigned>(p[0]) > AotHelper::kfunc)
            return bad(fmt::format("helper {}: unknown kind", i));
        h.kind = static_cast<AotHelper::Kind>(std::to_integer<unsigned>(p[0]));
        h.unwind_on_zero = (std::to_integer<unsigned>(p[1]) & helper_unwind) != 0;
        h.checks_args = (std::to_integer<unsigned>(p[1]) & helper_checks_args) != 0;
        h.id = r.u32("helpers");
        m.helpers.push_back(h);
    }
    const std::uint32_t n_functions = r.u32("function count");
    if (r.what == nullptr && n_functions > (bytes.size() - r.at) / 4) r.what = "functions";
    for (std::uint32_t i = 0; r.what == nullptr && i < n_functions; ++i)
        m.functions.push_back(r.string("functions"));
    if (version >= 2) {
        const std::uint32_t n_maps = r.u32("map count");
        if (r.what == nullptr && n_maps > (bytes.size() - r.at) / 28) r.what = "maps";
        for (std::uint32_t i = 0; r.what == nullptr && i < n_maps; ++i) {
            AotMap map;
            for (std::uint32_t* v :
                 {&map.type, &map.key_size, &map.value_size, &map.max_entries, &map.flags, &map.origin})
                *v = r.u32("maps");
            map.name = r.string("maps");
            m.maps.push_back(std::move(map));
        }
    }
    if (r.what != nullptr) return bad(fmt::format("truncated in {}", r.what));
    if (m.insns.empty()) return bad("no instructions");
    if (m.entry.empty()) return bad("no entry symbol");
    return m;
}

}  // namespace ebpfrt::detail
