// CO-RE: rewrite field offsets, sizes and type/enum facts that the compiler recorded in .BTF.ext
// against the object's own BTF so that they match a target BTF (the running kernel's vmlinux, or one
// the host gives). The rules follow libbpf's relo_core: candidates are target types with the same
// name up to a "___flavor" suffix; fields are matched by name along the recorded access path.

#include <fmt/format.h>

#include <optional>

#include "elf/elf_internal.hpp"

namespace ebpfrt::detail {
namespace {

constexpr std::int32_t poison_helper = 0xbad2310;  // libbpf's marker: the verifier reports it by name

std::string_view essential(std::string_view name) {
    const auto pos = name.find("___");
    return pos == std::string_view::npos ? name : name.substr(0, pos);
}

bool is_field_kind(CoreReloKind k) { return static_cast<std::uint32_t>(k) <= 5; }
bool is_type_kind(CoreReloKind k) {
    return k == CoreReloKind::type_id_local || k == CoreReloKind::type_id_target || k == CoreReloKind::type_exists ||
           k == CoreReloKind::type_size || k == CoreReloKind::type_matches;
}

struct FieldInfo {
    std::uint64_t bit_offset = 0;
    std::uint32_t bitfield_size = 0;
    std::uint32_t type = 0;  // the field's type
};

Result<std::vector<std::uint32_t>> parse_access(std::string_view s) {
    std::vector<std::uint32_t> out;
    std::uint64_t cur = 0;
    bool any = false;
    for (char c : s) {
        if (c == ':') {
            if (!any) return Error(Errc::bad_elf, fmt::format("bad CO-RE access string \"{}\"", s));
            out.push_back(static_cast<std::uint32_t>(cur));
            cur = 0;
            any = false;
        } else if (c >= '0' && c <= '9' && cur < 100000000) {
            cur = cur * 10 + static_cast<unsigned>(c - '0');
            any = true;
        } else {
            return Error(Errc::bad_elf, fmt::format("bad CO-RE access string \"{}\"", s));
        }
    }
    if (!any) return Error(Errc::bad_elf, fmt::format("bad CO-RE access string \"{}\"", s));
    out.push_back(static_cast<std::uint32_t>(cur));
    return out;
}

// One step of the local access path: an array index or a named member.
struct Step {
    bool array = false;
    std::uint32_t index = 0;
    std::string name;
};

// Walks the local path, producing the steps by name (so they can be replayed on a target type).
Result<std::pair<std::vector<Step>, FieldInfo>> local_path(const Btf& btf, std::uint32_t root,
                                                           const std::vector<std::uint32_t>& acc) {
    std::vector<Step> steps;
    FieldInfo f;
    std::uint32_t t = btf.skip_modifiers(root);
    auto sz = btf.size_of(t);
    if (!sz) return Error(Errc::bad_elf, fmt::format("CO-RE root type {} has no size", root));
    f.bit_offset = std::uint64_t{acc[0]} * *sz * 8;
    steps.push_back({true, acc[0], {}});
    for (std::size_t i = 1; i < acc.size(); ++i) {
        const BtfType& ty = btf.type(t);
        if (ty.kind == BtfKind::struct_type || ty.kind == BtfKind::union_type) {
            if (acc[i] >= ty.members.size())
                return Error(Errc::bad_elf, fmt::format("CO-RE access {} is past the members of \"{}\"", acc[i], ty.name));
            const BtfMember& m = ty.members[acc[i]];
            f.bit_offset += m.bit_offset;
            f.bitfield_size = m.bitfield_size;
            // Anonymous struct/union members are not matched by position: the next named member is
            // looked up through the target's anonymous members (as libbpf does), since the kernel's
            // anonymous unions are often ordered differently from the program's headers.
            if (!m.name.empty() || i + 1 == acc.size()) steps.push_back({false, acc[i], m.name});
            t = btf.skip_modifiers(m.type);
            f.type = m.type;
        } else if (ty.kind == BtfKind::array) {
            auto es = btf.size_of(ty.type);
            if (!es) return Error(Errc::bad_elf, "CO-RE array element has no size");
            f.bit_offset += std::uint64_t{acc[i]} * *es * 8;
            f.bitfield_size = 0;
            steps.push_back({true, acc[i], {}});
            t = btf.skip_modifiers(ty.type);
            f.type = ty.type;
        } else {
            return Error(Errc::bad_elf, fmt::format("CO-RE access step {} into a {}", i, to_string(ty.kind)));
        }
    }
    if (acc.size() == 1) f.type = root;
    return std::pair{std::move(steps), f};
}

// Finds member `name` in struct/union `t`, looking through anonymous members; adds its offset.
bool find_member(const Btf& btf, std::uint32_t t, std::string_view name, FieldInfo& f, int depth = 0) {
    if (depth > 8) return false;
    const BtfType& ty = btf.type(btf.skip_modifiers(t));
    if (ty.kind != BtfKind::struct_type && ty.kind != BtfKind::union_type) return false;
    for (const auto& m : ty.members) {
        if (m.name == name) {
            f.bit_offset += m.bit_offset;
            f.bitfield_size = m.bitfield_size;
            f.type = m.type;
            return true;
        }
        if (m.name.empty()) {
            FieldInfo sub = f;
            sub.bit_offset += m.bit_offset;
            if (find_member(btf, m.type, name, sub, depth + 1)) {
                f = sub;
                return true;
            }
        }
    }
    return false;
}

std::optional<FieldInfo> target_path(const Btf& btf, std::uint32_t root, const std::vector<Step>& steps) {
    FieldInfo f;
    std::uint32_t t = btf.skip_modifiers(root);
    auto sz = btf.size_of(t);
    if (!sz) return std::nullopt;
    f.bit_offset = std::uint64_t{steps[0].index} * *sz * 8;
    f.type = root;
    for (std::size_t i = 1; i < steps.size(); ++i) {
        const BtfType& ty = btf.type(t);
        if (!steps[i].array) {
            if (!find_member(btf, t, steps[i].name, f)) return std::nullopt;
        } else {
            if (ty.kind != BtfKind::array) return std::nullopt;
            if (steps[i].index >= ty.nelems && ty.nelems != 0) return std::nullopt;  // flexible arrays are open
            auto es = btf.size_of(ty.type);
            if (!es) return std::nullopt;
            f.bit_offset += std::uint64_t{steps[i].index} * *es * 8;
            f.bitfield_size = 0;
            f.type = ty.type;
        }
        t = btf.skip_modifiers(f.type);
    }
    return f;
}

std::vector<std::uint32_t> candidates(const Btf& local, std::uint32_t local_id, const Btf& target) {
    const BtfType& lt = local.type(local_id);
    std::vector<std::uint32_t> out;
    const std::string_view name = essential(lt.name);
    if (name.empty()) return out;
    for (std::uint32_t id = 1; id < target.size(); ++id) {
        const BtfType& tt = target.type(id);
        const bool kind_ok = tt.kind == lt.kind ||
                             ((lt.kind == BtfKind::enum_type || lt.kind == BtfKind::enum64) &&
                              (tt.kind == BtfKind::enum_type || tt.kind == BtfKind::enum64));
        if (kind_ok && essential(tt.name) == name) out.push_back(id);
    }
    return out;
}

bool is_signed(const Btf& btf, std::uint32_t t) {
    const BtfType& ty = btf.type(btf.skip_modifiers(t));
    if (ty.kind == BtfKind::integer) return ty.int_encoding & 1;
    if (ty.kind == BtfKind::enum_type || ty.kind == BtfKind::enum64) return !ty.kind_flag;
    return false;
}

// Value of a field relocation for a resolved field.
std::uint64_t field_value(const Btf& btf, CoreReloKind kind, const FieldInfo& f) {
    auto sz = btf.size_of(f.type);
    const std::uint64_t type_size = sz ? *sz : 0;
    std::uint64_t byte_off = f.bit_offset / 8, byte_size = type_size;
    std::uint64_t bit_size = type_size * 8;
    if (f.bitfield_size) {
        // The smallest naturally aligned load of the field's type size that covers the bitfield.
        bit_size = f.bitfield_size;
        byte_size = type_size ? type_size : 1;
        byte_off = f.bit_offset / 8 / byte_size * byte_size;
        while (byte_off * 8 + byte_size * 8 < f.bit_offset + bit_size) {
            if (byte_size >= 8) break;
            byte_size *= 2;
            byte_off = f.bit_offset / 8 / byte_size * byte_size;
        }
    }
    switch (kind) {
    case CoreReloKind::field_byte_offset: return byte_off;
    case CoreReloKind::field_byte_size: return byte_size;
    case CoreReloKind::field_exists: return 1;
    case CoreReloKind::field_signed: return is_signed(btf, f.type);
    case CoreReloKind::field_lshift_u64: return 64 - (f.bit_offset + bit_size - byte_off * 8);
    case CoreReloKind::field_rshift_u64: return 64 - bit_size;
    default: return 0;
    }
}

Result<void> patch(std::vector<Insn>& code, std::size_t idx, std::uint64_t value, std::optional<std::uint64_t> new_size) {
    Insn& insn = code[idx];
    const std::uint8_t cls = isa::cls(insn.opcode);
    if (cls == isa::cls_alu || cls == isa::cls_alu64) {
        if (insn.opcode & isa::src_x) return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: ALU with a register source", idx));
        insn.imm = static_cast<std::int32_t>(value);
        return {};
    }
    if (cls == isa::cls_ldx || cls == isa::cls_st || cls == isa::cls_stx) {
        if (value > 0x7fff) return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: offset {} does not fit", idx, value));
        insn.offset = static_cast<std::int16_t>(value);
        if (new_size) {
            std::uint8_t size_bits;
            switch (*new_size) {
            case 1: size_bits = isa::size_b; break;
            case 2: size_bits = isa::size_h; break;
            case 4: size_bits = isa::size_w; break;
            case 8: size_bits = isa::size_dw; break;
            default: return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: field size {} cannot be loaded", idx, *new_size));
            }
            insn.opcode = static_cast<std::uint8_t>((insn.opcode & ~0x18) | size_bits);
        }
        return {};
    }
    if (insn.opcode == isa::opcode_lddw && idx + 1 < code.size()) {
        insn.imm = static_cast<std::int32_t>(value & 0xffffffff);
        code[idx + 1].imm = static_cast<std::int32_t>(value >> 32);
        return {};
    }
    return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: opcode 0x{:02x} cannot be patched", idx, insn.opcode));
}

void poison(std::vector<Insn>& code, std::size_t idx) {
    const bool wide = code[idx].opcode == isa::opcode_lddw && idx + 1 < code.size();
    code[idx] = Insn{isa::opcode_call, 0, 0, 0, poison_helper};
    if (wide) code[idx + 1] = Insn{isa::opcode_call, 0, 0, 0, poison_helper};
}

}  // namespace

Result<CoreResult> apply_core_relo(std::vector<Insn>& code, const CoreRelo& relo, const Btf& local, const Btf& target) {
    if (relo.insn_off % 8 != 0 || relo.insn_off / 8 >= code.size())
        return Error(Errc::bad_elf, fmt::format("CO-RE relocation at byte {} is not an instruction", relo.insn_off));
    const std::size_t idx = relo.insn_off / 8;
    if (relo.type_id == 0 || relo.type_id >= local.size())
        return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: type id {} out of range", idx, relo.type_id));

    if (is_type_kind(relo.kind)) {
        if (relo.kind == CoreReloKind::type_id_local) {
            if (auto r = patch(code, idx, relo.type_id, std::nullopt); !r) return r.error();
            return CoreResult{};
        }
        const auto cands = candidates(local, relo.type_id, target);
        std::uint64_t value = 0;
        bool found = !cands.empty();
        if (found) {
            switch (relo.kind) {
            case CoreReloKind::type_id_target: value = cands[0]; break;
            case CoreReloKind::type_size: {
                auto s = target.size_of(cands[0]);
                value = s ? *s : 0;
                break;
            }
            default: value = 1; break;  // type_exists, type_matches
            }
        } else if (relo.kind == CoreReloKind::type_size) {
            poison(code, idx);
            return CoreResult{true};
        }
        if (auto r = patch(code, idx, value, std::nullopt); !r) return r.error();
        return CoreResult{};
    }

    auto acc = parse_access(relo.access);
    if (!acc) return acc.error();

    if (relo.kind == CoreReloKind::enumval_exists || relo.kind == CoreReloKind::enumval_value) {
        const BtfType& le = local.type(local.skip_modifiers(relo.type_id));
        if ((le.kind != BtfKind::enum_type && le.kind != BtfKind::enum64) || (*acc)[0] >= le.enumerators.size())
            return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: enumerator {} not in local type", idx, (*acc)[0]));
        const std::string_view name = le.enumerators[(*acc)[0]].name;
        for (std::uint32_t c : candidates(local, local.skip_modifiers(relo.type_id), target))
            for (const auto& e : target.type(c).enumerators)
                if (essential(e.name) == essential(name)) {
                    const std::uint64_t v = relo.kind == CoreReloKind::enumval_exists ? 1 : e.value;
                    if (auto r = patch(code, idx, v, std::nullopt); !r) return r.error();
                    return CoreResult{};
                }
        if (relo.kind == CoreReloKind::enumval_exists) {
            if (auto r = patch(code, idx, 0, std::nullopt); !r) return r.error();
            return CoreResult{};
        }
        poison(code, idx);
        return CoreResult{true};
    }

    if (!is_field_kind(relo.kind))
        return Error(Errc::bad_elf, fmt::format("CO-RE relocation on insn {}: unknown kind", idx));
    auto lp = local_path(local, relo.type_id, *acc);
    if (!lp) return lp.error().wrap(fmt::format("CO-RE relocation on insn {}", idx));
    const std::uint32_t root = local.skip_modifiers(relo.type_id);
    for (std::uint32_t c : candidates(local, root, target)) {
        auto tf = target_path(target, c, lp->first);
        if (!tf) continue;
        const std::uint64_t value = field_value(target, relo.kind, *tf);
        std::optional<std::uint64_t> new_size;
        if (relo.kind == CoreReloKind::field_byte_offset && !tf->bitfield_size) {
            // A load of a field whose size changed must change size too (libbpf does the same).
            const std::uint8_t cls = isa::cls(code[idx].opcode);
            auto ls = local.size_of(lp->second.type);
            auto ts = target.size_of(tf->type);
            if ((cls == isa::cls_ldx || cls == isa::cls_stx || cls == isa::cls_st) && ls && ts && *ls != *ts &&
                *ls <= 8 && *ts <= 8)
                new_size = *ts;
        }
        if (auto r = patch(code, idx, value, new_size); !r) return r.error();
        return CoreResult{};
    }
    if (relo.kind == CoreReloKind::field_exists) {
        if (auto r = patch(code, idx, 0, std::nullopt); !r) return r.error();
        return CoreResult{};
    }
    poison(code, idx);
    return CoreResult{true};
}

}  // namespace ebpfrt::detail
