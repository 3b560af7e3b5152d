#include <ebpfrt/btf.hpp>

#include <cstring>

#include <fmt/format.h>

namespace ebpfrt {
namespace {

constexpr std::uint16_t btf_magic = 0xeB9F;
constexpr std::size_t max_depth = 32;  // for modifier chains and nested printing

Error btf_error(std::string_view what) { return Error(Errc::invalid_argument, fmt::format("btf: {}", what)); }

// Little-endian reads from a bounds-checked cursor. BPF objects are little-endian here; big-endian
// BTF (magic byte-swapped) is reported as such rather than misread.
class Reader {
public:
    explicit Reader(std::span<const std::byte> data) : data_(data) {}
    bool has(std::size_t n) const noexcept { return pos_ <= data_.size() && data_.size() - pos_ >= n; }
    std::size_t pos() const noexcept { return pos_; }
    std::size_t remaining() const noexcept { return data_.size() - pos_; }
    void skip(std::size_t n) noexcept { pos_ += n; }
    template <class T> T get() noexcept {
        T v;
        std::memcpy(&v, data_.data() + pos_, sizeof v);
        pos_ += sizeof v;
        return v;
    }

private:
    std::span<const std::byte> data_;
    std::size_t pos_ = 0;
};

bool has_size(BtfKind k) {
    switch (k) {
    case BtfKind::integer:
    case BtfKind::enum_type:
    case BtfKind::enum64:
    case BtfKind::struct_type:
    case BtfKind::union_type:
    case BtfKind::datasec:
    case BtfKind::float_type: return true;
    default: return false;
    }
}

bool is_modifier(BtfKind k) {
    return k == BtfKind::type_def || k == BtfKind::const_type || k == BtfKind::volatile_type ||
           k == BtfKind::restrict_type || k == BtfKind::type_tag;
}

}  // namespace

std::string_view to_string(BtfKind kind) noexcept {
    static constexpr std::string_view names[] = {
        "VOID",   "INT",  "PTR",        "ARRAY", "STRUCT",  "UNION", "ENUM",     "FWD",      "TYPEDEF", "VOLATILE",
        "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG", "TYPE_TAG", "ENUM64"};
    const auto i = static_cast<std::size_t>(kind);
    return i < std::size(names) ? names[i] : "UNKNOWN";
}

Result<Btf> Btf::parse(std::span<const std::byte> data) {
    Reader hdr(data);
    if (!hdr.has(24)) return btf_error(fmt::format("{} bytes is too short for a header", data.size()));
    const auto magic = hdr.get<std::uint16_t>();
    if (magic == 0x9FeB) return btf_error("big-endian BTF is not supported");
    if (magic != btf_magic) return btf_error(fmt::format("bad magic 0x{:04x}", magic));
    const auto version = hdr.get<std::uint8_t>();
    if (version != 1) return btf_error(fmt::format("unsupported version {}", version));
    hdr.skip(1);  // flags
    const auto hdr_len = hdr.get<std::uint32_t>();
    const auto type_off = hdr.get<std::uint32_t>(), type_len = hdr.get<std::uint32_t>();
    const auto str_off = hdr.get<std::uint32_t>(), str_len = hdr.get<std::uint32_t>();
    if (hdr_len < 24 || hdr_len > data.size()) return btf_error(fmt::format("header length {} out of range", hdr_len));
    const std::uint64_t body = data.size() - hdr_len;
    if (std::uint64_t{type_off} + type_len > body)
        return btf_error(fmt::format("type section [{}, +{}) exceeds the {} bytes of data", type_off, type_len, body));
    if (std::uint64_t{str_off} + str_len > body)
        return btf_error(fmt::format("string section [{}, +{}) exceeds the {} bytes of data", str_off, str_len, body));
    if (str_len > 0 && static_cast<char>(data[hdr_len + str_off + str_len - 1]) != '\0')
        return btf_error("string section does not end with NUL");

    Btf btf;
    btf.strings_.assign(reinterpret_cast<const char*>(data.data()) + hdr_len + str_off, str_len);
    auto name = [&](std::uint32_t off) -> Result<std::string> {
        if (off != 0 && off >= str_len) return btf_error(fmt::format("name offset {} out of range", off));
        return std::string(btf.string_at(off));
    };

    btf.types_.emplace_back();  // id 0: void
    Reader r(data.subspan(hdr_len + type_off, type_len));
    while (r.remaining() > 0) {
        const auto id = btf.types_.size();
        if (!r.has(12)) return btf_error(fmt::format("type {} truncated", id));
        BtfType t;
        const auto name_off = r.get<std::uint32_t>();
        const auto info = r.get<std::uint32_t>();
        const auto size_or_type = r.get<std::uint32_t>();
        const auto kind = (info >> 24) & 0x1f;
        const auto vlen = info & 0xffff;
        if (kind == 0 || kind > 19) return btf_error(fmt::format("type {} has unknown kind {}", id, kind));
        t.kind = static_cast<BtfKind>(kind);
        t.kind_flag = (info >> 31) != 0;
        auto n = name(name_off);
        if (!n) return n.error().wrap(fmt::format("type {}", id));
        t.name = std::move(*n);
        if (has_size(t.kind))
            t.size = size_or_type;
        else
            t.type = size_or_type;

        auto need = [&](std::size_t bytes) -> Result<void> {
            if (!r.has(bytes)) return btf_error(fmt::format("type {} ({}) truncated", id, to_string(t.kind)));
            return {};
        };
        switch (t.kind) {
        case BtfKind::integer: {
            if (auto ok = need(4); !ok) return ok.error();
            const auto v = r.get<std::uint32_t>();
            t.int_encoding = static_cast<std::uint8_t>((v >> 24) & 0x0f);
            t.int_offset = static_cast<std::uint8_t>((v >> 16) & 0xff);
            t.int_bits = static_cast<std::uint8_t>(v & 0xff);
            break;
        }
        case BtfKind::array:
            if (auto ok = need(12); !ok) return ok.error();
            t.type = r.get<std::uint32_t>();
            t.index_type = r.get<std::uint32_t>();
            t.nelems = r.get<std::uint32_t>();
            break;
        case BtfKind::struct_type:
        case BtfKind::union_type:
            if (auto ok = need(std::size_t{vlen} * 12); !ok) return ok.error();
            for (std::uint32_t i = 0; i < vlen; ++i) {
                BtfMember m;
                auto mn = name(r.get<std::uint32_t>());
                if (!mn) return mn.error().wrap(fmt::format("type {} member {}", id, i));
                m.name = std::move(*mn);
                m.type = r.get<std::uint32_t>();
                const auto off = r.get<std::uint32_t>();
                m.bit_offset = t.kind_flag ? off & 0xffffff : off;
                m.bitfield_size = t.kind_flag ? off >> 24 : 0;
                t.members.push_back(std::move(m));
            }
            break;
        case BtfKind::enum_type:
            if (auto ok = need(std::size_t{vlen} * 8); !ok) return ok.error();
            for (std::uint32_t i = 0; i < vlen; ++i) {
                BtfEnumerator e;
                auto en = name(r.get<std::uint32_t>());
                if (!en) return en.error().wrap(fmt::format("type {} enumerator {}", id, i));
                e.name = std::move(*en);
                const auto v = r.get<std::int32_t>();
                // kind_flag set: unsigned values; clear: signed (sign-extend into the 64-bit field).
                e.value = t.kind_flag ? std::uint64_t{static_cast<std::uint32_t>(v)}
                                      : static_cast<std::uint64_t>(std::int64_t{v});
                t.enumerators.push_back(std::move(e));
            }
            break;
        case BtfKind::enum64:
            if (auto ok = need(std::size_t{vlen} * 12); !ok) return ok.error();
            for (std::uint32_t i = 0; i < vlen; ++i) {
                BtfEnumerator e;
                auto en = name(r.get<std::uint32_t>());
                if (!en) return en.error().wrap(fmt::format("type {} enumerator {}", id, i));
                e.name = std::move(*en);
                const std::uint64_t lo = r.get<std::uint32_t>(), hi = r.get<std::uint32_t>();
                e.value = hi << 32 | lo;
                t.enumerators.push_back(std::move(e));
            }
            break;
        case BtfKind::func_proto:
            if (auto ok = need(std::size_t{vlen} * 8); !ok) return ok.error();
            for (std::uint32_t i = 0; i < vlen; ++i) {
                BtfParam p;
                auto pn = name(r.get<std::uint32_t>());
                if (!pn) return pn.error().wrap(fmt::format("type {} parameter {}", id, i));
                p.name = std::move(*pn);
                p.type = r.get<std::uint32_t>();
                t.params.push_back(std::move(p));
            }
            break;
        case BtfKind::func: t.linkage = vlen; break;
        case BtfKind::var:
            if (auto ok = need(4); !ok) return ok.error();
            t.linkage = r.get<std::uint32_t>();
            break;
        case BtfKind::datasec:
            if (auto ok = need(std::size_t{vlen} * 12); !ok) return ok.error();
            for (std::uint32_t i = 0; i < vlen; ++i) {
                BtfVarSecinfo v;
                v.type = r.get<std::uint32_t>();
                v.offset = r.get<std::uint32_t>();
                v.size = r.get<std::uint32_t>();
                t.vars.push_back(v);
            }
            break;
        case BtfKind::decl_tag:
            if (auto ok = need(4); !ok) return ok.error();
            t.component_idx = r.get<std::int32_t>();
            break;
        default: break;  // PTR, FWD, TYPEDEF, modifiers, FLOAT, TYPE_TAG: nothing more
        }
        btf.types_.push_back(std::move(t));
    }

    // Every reference must name an existing type, so later walks never index out of range.
    const auto count = btf.size();
    auto check = [&](std::size_t id, std::uint32_t ref, std::string_view what) -> Result<void> {
        if (ref >= count)
            return btf_error(fmt::format("type {} refers to {} type {}, but there are {} types", id, what, ref, count - 1));
        return {};
    };
    for (std::size_t id = 1; id < count; ++id) {
        const BtfType& t = btf.types_[id];
        if (!has_size(t.kind) && t.kind != BtfKind::forward)
            if (auto ok = check(id, t.type, "referenced"); !ok) return ok.error();
        if (t.kind == BtfKind::array)
            if (auto ok = check(id, t.index_type, "index"); !ok) return ok.error();
        for (const auto& m : t.members)
            if (auto ok = check(id, m.type, "member"); !ok) return ok.error();
        for (const auto& p : t.params)
            if (auto ok = check(id, p.type, "parameter"); !ok) return ok.error();
        for (const auto& v : t.vars)
            if (auto ok = check(id, v.type, "variable"); !ok) return ok.error();
    }
    return btf;
}

const BtfType& Btf::type(std::uint32_t id) const noexcept {
    static const BtfType void_type{};
    return id < types_.size() ? types_[id] : void_type;
}

std::string_view Btf::string_at(std::uint32_t off) const noexcept {
    if (off >= strings_.size()) return {};
    return std::string_view(strings_.c_str() + off);
}

Result<void> Btf::fixup_datasec(std::uint32_t id, std::uint32_t size, std::vector<BtfVarSecinfo> vars) {
    if (id == 0 || id >= types_.size() || types_[id].kind != BtfKind::datasec)
        return Error(Errc::invalid_argument, fmt::format("btf: type {} is not a DATASEC", id));
    for (const auto& v : vars)
        if (v.type >= types_.size())
            return Error(Errc::invalid_argument, fmt::format("btf: DATASEC {} variable type {} out of range", id, v.type));
    types_[id].size = size;
    types_[id].vars = std::move(vars);
    return {};
}

std::uint32_t Btf::skip_modifiers(std::uint32_t id) const noexcept {
    for (std::size_t depth = 0; depth < max_depth && is_modifier(type(id).kind); ++depth) id = type(id).type;
    return id;
}

BtfKind Btf::resolved_kind(std::uint32_t id) const noexcept { return type(skip_modifiers(id)).kind; }

Result<std::uint64_t> Btf::size_of(std::uint32_t id) const {
    std::uint64_t mult = 1;
    for (std::size_t depth = 0; depth < max_depth; ++depth) {
        const BtfType& t = type(id);
        if (has_size(t.kind)) return mult * t.size;
        switch (t.kind) {
        case BtfKind::pointer: return mult * 8;
        case BtfKind::array:
            mult *= t.nelems;
            id = t.type;
            break;
        case BtfKind::var:
        case BtfKind::type_def:
        case BtfKind::const_type:
        case BtfKind::volatile_type:
        case BtfKind::restrict_type:
        case BtfKind::type_tag: id = t.type; break;
        default:
            return Error(Errc::invalid_argument,
                         fmt::format("btf: type {} ({}) has no size", id, to_string(t.kind)));
        }
    }
    return Error(Errc::invalid_argument, fmt::format("btf: type {} nests more than {} levels", id, max_depth));
}

std::string Btf::type_name(std::uint32_t id) const {
    std::string suffix;
    for (std::size_t depth = 0; depth < max_depth; ++depth) {
        const BtfType& t = type(id);
        switch (t.kind) {
        case BtfKind::void_type: return "void" + suffix;
        case BtfKind::pointer:
            suffix = " *" + suffix;
            id = t.type;
            continue;
        case BtfKind::array:
            suffix += fmt::format("[{}]", t.nelems);
            id = t.type;
            continue;
        case BtfKind::const_type:
        case BtfKind::volatile_type:
        case BtfKind::restrict_type:
        case BtfKind::type_tag:
            if (t.name.empty()) {
                id = t.type;
                continue;
            }
            break;
        default: break;
        }
        std::string prefix;
        switch (t.kind) {
        case BtfKind::struct_type: prefix = "struct "; break;
        case BtfKind::union_type: prefix = "union "; break;
        case BtfKind::enum_type:
        case BtfKind::enum64: prefix = "enum "; break;
        case BtfKind::forward: prefix = t.kind_flag ? "union " : "struct "; break;
        default: break;
        }
        return prefix + (t.name.empty() ? "(anon)" : t.name) + suffix;
    }
    return "(too deep)" + suffix;
}

std::optional<std::uint32_t> Btf::find(std::string_view name, BtfKind kind) const {
    for (std::uint32_t id = 1; id < types_.size(); ++id)
        if (types_[id].kind == kind && types_[id].name == name) return id;
    return std::nullopt;
}

namespace {

std::uint64_t load_bits(std::span<const std::byte> v, std::uint64_t bit_off, std::uint32_t bits) {
    // Little-endian bit extraction of up to 64 bits starting at bit_off.
    std::uint64_t out = 0;
    for (std::uint32_t i = 0; i < bits; ++i) {
        const std::uint64_t b = bit_off + i;
        if ((std::to_integer<unsigned>(v[b / 8]) >> (b % 8)) & 1) out |= std::uint64_t{1} << i;
    }
    return out;
}

void format_int(std::string& out, const BtfType& t, std::uint64_t raw, std::uint32_t bits) {
    if (t.int_encoding & 4) {  // bool
        out += raw ? "true" : "false";
        return;
    }
    if ((t.int_encoding & 1) && bits > 0 && bits < 64 && (raw >> (bits - 1)) & 1) raw |= ~std::uint64_t{0} << bits;
    if (t.int_encoding & 1)
        out += fmt::format("{}", static_cast<std::int64_t>(raw));
    else
        out += fmt::format("{}", raw);
}

void append_escaped(std::string& out, std::span<const std::byte> bytes) {
    out += '"';
    for (std::byte b : bytes) {
        const auto c = std::to_integer<unsigned char>(b);
        if (c == 0) break;
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    out += '"';
}

}  // namespace

Result<std::string> Btf::format(std::uint32_t id, std::span<const std::byte> value) const {
    auto size = size_of(id);
    if (!size) return size.error();
    if (value.size() < *size)
        return Error(Errc::invalid_argument, fmt::format("btf: {} bytes is too short for {} ({} bytes)", value.size(),
                                                         type_name(id), *size));
    std::string out;
    // Recursive printer over a checked type graph; depth-limited against cyclic or absurd nesting.
    auto print = [&](auto&& self, std::uint32_t tid, std::uint64_t bit_off, std::uint32_t bitfield,
                     std::size_t depth) -> void {
        if (depth > max_depth) {
            out += "...";
            return;
        }
        tid = skip_modifiers(tid);
        const BtfType& t = type(tid);
        const std::uint64_t byte_off = bit_off / 8;
        // Members of a malformed (but well-referenced) type may point past the value: print a marker.
        auto fits = [&](std::uint64_t bits) { return bit_off + bits <= value.size() * std::uint64_t{8}; };
        const bool leaf = t.kind == BtfKind::integer || t.kind == BtfKind::pointer || t.kind == BtfKind::enum_type ||
                          t.kind == BtfKind::enum64 || t.kind == BtfKind::float_type;
        if (leaf) {
            std::uint64_t bits = bitfield ? bitfield : t.kind == BtfKind::pointer ? 64 : std::uint64_t{t.size} * 8;
            if (t.kind == BtfKind::integer && !bitfield && t.int_bits > bits) bits = t.int_bits;
            if (!fits(bits + (t.kind == BtfKind::integer && !bitfield ? t.int_offset : 0))) {
                out += "<out of range>";
                return;
            }
        }
        switch (t.kind) {
        case BtfKind::integer: {
            const std::uint32_t bits = bitfield ? bitfield : t.int_bits;
            const std::uint64_t raw = load_bits(value, bit_off + (bitfield ? 0 : t.int_offset), bits > 64 ? 64 : bits);
            if (t.int_bits > 64) {  // __int128: print as hex of its bytes
                out += "0x";
                for (std::size_t i = t.size; i-- > 0;)
                    out += fmt::format("{:02x}", std::to_integer<unsigned>(value[byte_off + i]));
                return;
            }
            format_int(out, t, raw, bits);
            return;
        }
        case BtfKind::pointer: out += fmt::format("{:#x}", load_bits(value, bit_off, 64)); return;
        case BtfKind::enum_type:
        case BtfKind::enum64: {
            const std::uint32_t bits = bitfield ? bitfield : t.size * 8;
            const std::uint64_t raw = load_bits(value, bit_off, bits > 64 ? 64 : bits);
            for (const auto& e : t.enumerators) {
                const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
                if ((e.value & mask) == raw) {
                    out += e.name;
                    return;
                }
            }
            out += fmt::format("{}", raw);
            return;
        }
        case BtfKind::float_type: {
            if (t.size == 4) {
                float f;
                std::memcpy(&f, value.data() + byte_off, 4);
                out += fmt::format("{}", f);
            } else if (t.size == 8) {
                double d;
                std::memcpy(&d, value.data() + byte_off, 8);
                out += fmt::format("{}", d);
            } else {
                out += fmt::format("<{}-byte float>", t.size);
            }
            return;
        }
        case BtfKind::array: {
            const BtfType& elem = type(skip_modifiers(t.type));
            auto esize = size_of(t.type);
            const std::uint64_t es = esize ? *esize : 0;
            if (!fits(std::uint64_t{t.nelems} * es * 8)) {
                out += "<out of range>";
                return;
            }
            if (elem.kind == BtfKind::integer && elem.size == 1 && (elem.int_encoding & 2 || elem.name == "char")) {
                append_escaped(out, value.subspan(byte_off, t.nelems));
                return;
            }
            out += '[';
            for (std::uint32_t i = 0; i < t.nelems; ++i) {
                if (i) out += ", ";
                if (i == 64 && t.nelems > 65) {
                    out += fmt::format("... {} more", t.nelems - i);
                    break;
                }
                self(self, t.type, bit_off + i * es * 8, 0, depth + 1);
            }
            out += ']';
            return;
        }
        case BtfKind::struct_type:
        case BtfKind::union_type: {
            out += '{';
            bool first = true;
            for (const auto& m : t.members) {
                if (!first) out += ", ";
                first = false;
                if (!m.name.empty()) out += m.name + " = ";
                self(self, m.type, bit_off + m.bit_offset, m.bitfield_size, depth + 1);
            }
            out += '}';
            return;
        }
        case BtfKind::datasec: {
            out += '{';
            bool first = true;
            for (const auto& v : t.vars) {
                if (!first) out += ", ";
                first = false;
                out += type(v.type).name + " = ";
                self(self, v.type, bit_off + std::uint64_t{v.offset} * 8, 0, depth + 1);
            }
            out += '}';
            return;
        }
        case BtfKind::var: self(self, t.type, bit_off, 0, depth + 1); return;
        default: out += fmt::format("<{}>", to_string(t.kind)); return;
        }
    };
    print(print, id, 0, 0, 0);
    return out;
}

Result<BtfExt> BtfExt::parse(std::span<const std::byte> data, const Btf& btf) {
    auto fail = [](std::string_view what) { return Error(Errc::invalid_argument, fmt::format("btf.ext: {}", what)); };
    Reader hdr(data);
    if (!hdr.has(24)) return fail(fmt::format("{} bytes is too short for a header", data.size()));
    if (hdr.get<std::uint16_t>() != btf_magic) return fail("bad magic");
    hdr.skip(2);  // version, flags
    const auto hdr_len = hdr.get<std::uint32_t>();
    if (hdr_len < 24 || hdr_len > data.size()) return fail(fmt::format("header length {} out of range", hdr_len));
    struct Part {
        std::uint32_t off = 0, len = 0;
    } parts[3];
    parts[0].off = hdr.get<std::uint32_t>();
    parts[0].len = hdr.get<std::uint32_t>();
    parts[1].off = hdr.get<std::uint32_t>();
    parts[1].len = hdr.get<std::uint32_t>();
    if (hdr_len >= 32 && hdr.has(8)) {
        parts[2].off = hdr.get<std::uint32_t>();
        parts[2].len = hdr.get<std::uint32_t>();
    }
    static constexpr std::string_view part_names[] = {"func_info", "line_info", "core_relo"};
    static constexpr std::uint32_t min_rec[] = {8, 16, 16};
    BtfExt ext;
    const auto body = data.subspan(hdr_len);
    for (int p = 0; p < 3; ++p) {
        if (parts[p].len == 0) continue;
        if (std::uint64_t{parts[p].off} + parts[p].len > body.size())
            return fail(fmt::format("{} [{}, +{}) exceeds the data", part_names[p], parts[p].off, parts[p].len));
        Reader r(body.subspan(parts[p].off, parts[p].len));
        if (!r.has(4)) return fail(fmt::format("{} truncated", part_names[p]));
        const auto rec_size = r.get<std::uint32_t>();
        if (rec_size < min_rec[p] || rec_size > 4096)
            return fail(fmt::format("{} record size {} is invalid", part_names[p], rec_size));
        while (r.remaining() > 0) {
            if (!r.has(8)) return fail(fmt::format("{} section header truncated", part_names[p]));
            const auto sec_off = r.get<std::uint32_t>();
            const auto num = r.get<std::uint32_t>();
            if (btf.string_at(sec_off).empty())  // offset 0 or out of range
                return fail(fmt::format("{} section name offset {} is invalid", part_names[p], sec_off));
            const std::string sec(btf.string_at(sec_off));
            if (std::uint64_t{num} * rec_size > r.remaining())
                return fail(fmt::format("{} of \"{}\": {} records exceed the data", part_names[p], sec, num));
            for (std::uint32_t i = 0; i < num; ++i) {
                const std::size_t start = r.pos();
                if (p == 0) {
                    BtfFuncInfo fi;
                    fi.insn_off = r.get<std::uint32_t>();
                    fi.type_id = r.get<std::uint32_t>();
                    ext.func_info[sec].push_back(fi);
                } else if (p == 1) {
                    BtfLineInfo li;
                    li.insn_off = r.get<std::uint32_t>();
                    li.file = btf.string_at(r.get<std::uint32_t>());
                    li.line = btf.string_at(r.get<std::uint32_t>());
                    const auto lc = r.get<std::uint32_t>();
                    li.line_number = lc >> 10;
                    li.column = lc & 0x3ff;
                    ext.line_info[sec].push_back(std::move(li));
                } else {
                    CoreRelo cr;
                    cr.insn_off = r.get<std::uint32_t>();
                    cr.type_id = r.get<std::uint32_t>();
                    cr.access = btf.string_at(r.get<std::uint32_t>());
                    const auto kind = r.get<std::uint32_t>();
                    if (kind > static_cast<std::uint32_t>(CoreReloKind::type_matches))
                        return fail(fmt::format("core_relo of \"{}\": unknown kind {}", sec, kind));
                    if (cr.type_id >= btf.size())
                        return fail(fmt::format("core_relo of \"{}\": type id {} out of range", sec, cr.type_id));
                    cr.kind = static_cast<CoreReloKind>(kind);
                    ext.core_relos[sec].push_back(std::move(cr));
                }
                r.skip(rec_size - (r.pos() - start));
            }
        }
    }
    return ext;
}

}  // namespace ebpfrt
