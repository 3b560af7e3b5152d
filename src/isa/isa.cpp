// Instruction classification (RFC 9669 opcode tables), decode and encode.

#include <cstring>

#include <fmt/format.h>

#include <ebpfrt/isa.hpp>

#include "isa/isa_internal.hpp"

namespace ebpfrt::isa {
namespace {

using namespace detail;

Error bad(std::string_view mnemonic, std::string_view what) {
    return Error(Errc::invalid_argument, fmt::format("{}: {}", mnemonic, what));
}

Error unknown(const Insn& insn) {
    return Error(Errc::invalid_argument, fmt::format("unknown opcode 0x{:02x}", insn.opcode));
}

Result<InsnInfo> classify_alu(const Insn& in) {
    const bool is64 = cls(in.opcode) == cls_alu64;
    const bool x = (in.opcode & src_x) != 0;
    const std::uint8_t op = in.opcode & 0xf0;
    const Group base = is64 ? Group::base64 : Group::base32;
    const Group divmul = is64 ? Group::divmul64 : Group::divmul32;

    if (op == op_end) {
        if (is64 && x) return unknown(in);
        for (const auto& e : end_ops)
            if (e.cls == cls(in.opcode) && e.source == (in.opcode & src_x) && e.bits == in.imm) {
                if (in.src != 0) return bad(e.name, "src must be 0");
                if (in.offset != 0) return bad(e.name, "offset must be 0");
                return InsnInfo{e.name, static_cast<std::uint8_t>(is64 ? 4 : 1), base, false};
            }
        return bad(is64 ? "bswap" : (x ? "be" : "le"), fmt::format("width must be 16, 32 or 64, not {}", in.imm));
    }
    if (op == op_neg) {
        const auto name = is64 ? neg_name.name64 : neg_name.name32;
        if (x) return unknown(in);
        if (in.src != 0) return bad(name, "src must be 0");
        if (in.offset != 0) return bad(name, "offset must be 0");
        if (in.imm != 0) return bad(name, "imm must be 0");
        return InsnInfo{name, 1, base, false};
    }
    for (const auto& a : alu_ops) {
        if (a.op != op) continue;
        std::string_view name = is64 ? a.name64 : a.name32;
        std::uint8_t version = 1;
        const bool is_divmod = op == op_div || op == op_mod;
        if (is_divmod && in.offset == 1) {
            name = op == op_div ? (is64 ? sdiv_name.name64 : sdiv_name.name32)
                                : (is64 ? smod_name.name64 : smod_name.name32);
            version = 4;
        } else if (op == op_mov && x && in.offset != 0) {
            for (const auto& m : movsx_ops)
                if (m.alu64 == is64 && m.bits == in.offset) {
                    if (in.imm != 0) return bad(m.name, "imm must be 0");
                    return InsnInfo{m.name, 4, base, false};
                }
            return bad("movsx", fmt::format("offset must be 8, 16{}, not {}", is64 ? " or 32" : "", in.offset));
        } else if (in.offset != 0) {
            return bad(name, is_divmod ? "offset must be 0 or 1" : "offset must be 0");
        }
        if (x && in.imm != 0) return bad(name, "imm must be 0 with a register source");
        if (!x && in.src != 0) return bad(name, "src must be 0 with an immediate source");
        const bool dm = op == op_mul || is_divmod;
        return InsnInfo{name, version, dm ? divmul : base, false};
    }
    return unknown(in);
}

Result<InsnInfo> classify_jmp(const Insn& in) {
    const bool is32 = cls(in.opcode) == cls_jmp32;
    const bool x = (in.opcode & src_x) != 0;
    const std::uint8_t op = in.opcode & 0xf0;
    const Group base = is32 ? Group::base32 : Group::base64;

    if (op == op_ja) {
        const std::string_view name = is32 ? "ja32" : "ja";
        if (x) return unknown(in);
        if (in.src != 0 || in.dst != 0) return bad(name, "registers must be 0");
        if (is32 && in.offset != 0) return bad(name, "offset must be 0 (the target is in imm)");
        if (!is32 && in.imm != 0) return bad(name, "imm must be 0");
        return InsnInfo{name, static_cast<std::uint8_t>(is32 ? 4 : 1), Group::base32, false};
    }
    if (op == op_call) {
        if (is32) return unknown(in);
        if (in.offset != 0) return bad("call", "offset must be 0");
        if (x) {
            if (in.src != 0) return bad("callx", "src must be 0 (the target is in dst)");
            if (in.imm != 0) return bad("callx", "imm must be 0");
            return InsnInfo{"callx", 4, Group::callx, false};
        }
        if (in.dst != 0) return bad("call", "dst must be 0");
        switch (in.src) {
        case call_helper: return InsnInfo{"call", 1, Group::base32, false};
        case call_local: return InsnInfo{"call local", 1, Group::base32, false};
        case call_kfunc: return InsnInfo{"call kfunc", 1, Group::base32, false};
        default: return bad("call", fmt::format("src must be 0, 1 or 2, not {}", in.src));
        }
    }
    if (op == op_exit) {
        if (is32 || x) return unknown(in);
        if (in.src != 0 || in.dst != 0 || in.offset != 0 || in.imm != 0)
            return bad("exit", "registers, offset and imm must be 0");
        return InsnInfo{"exit", 1, Group::base32, false};
    }
    for (const auto& j : jmp_ops) {
        if (j.op != op) continue;
        const std::string_view name = is32 ? j.name32 : j.name64;
        if (x && in.imm != 0) return bad(name, "imm must be 0 with a register source");
        if (!x && in.src != 0) return bad(name, "src must be 0 with an immediate source");
        return InsnInfo{name, static_cast<std::uint8_t>(is32 ? 3 : j.version), base, false};
    }
    return unknown(in);
}

Result<InsnInfo> classify_load_store(const Insn& in) {
    const std::uint8_t c = cls(in.opcode);
    const std::uint8_t size = in.opcode & 0x18;
    const std::uint8_t mode = in.opcode & 0xe0;
    const std::size_t si = size >> 3;
    const Group mem_group = size == size_dw ? Group::base64 : Group::base32;

    switch (c) {
    case cls_ld:
        if (in.opcode == opcode_lddw) {
            if (in.offset != 0) return bad("lddw", "offset must be 0");
            if (in.src > pseudo_map_idx_value) return bad("lddw", fmt::format("unknown src {}", in.src));
            return InsnInfo{"lddw", 1, Group::base64, true};
        }
        if ((mode == mode_abs || mode == mode_ind) && size != size_dw) {
            const auto name = mode == mode_abs ? ldabs_names[si] : ldind_names[si];
            if (in.dst != 0) return bad(name, "dst must be 0");
            if (in.offset != 0) return bad(name, "offset must be 0");
            if (mode == mode_abs && in.src != 0) return bad(name, "src must be 0");
            return InsnInfo{name, 1, Group::packet, false};
        }
        return unknown(in);
    case cls_ldx:
        if (mode == mode_mem) {
            if (in.imm != 0) return bad(ldx_names[si], "imm must be 0");
            return InsnInfo{ldx_names[si], 1, mem_group, false};
        }
        if (mode == mode_memsx && size != size_dw) {
            if (in.imm != 0) return bad(ldxs_names[si], "imm must be 0");
            return InsnInfo{ldxs_names[si], 4, mem_group, false};
        }
        return unknown(in);
    case cls_st:
        if (mode != mode_mem) return unknown(in);
        if (in.src != 0) return bad(st_names[si], "src must be 0");
        return InsnInfo{st_names[si], 1, mem_group, false};
    case cls_stx:
        if (mode == mode_mem) {
            if (in.imm != 0) return bad(stx_names[si], "imm must be 0");
            return InsnInfo{stx_names[si], 1, mem_group, false};
        }
        if (mode == mode_atomic && (size == size_w || size == size_dw)) {
            const bool is64 = size == size_dw;
            for (const auto& a : atomic_ops)
                if (a.imm == in.imm) {
                    const std::uint8_t version = a.imm == atomic_add ? 1 : 3;
                    return InsnInfo{is64 ? a.name64 : a.name32, version, is64 ? Group::atomic64 : Group::atomic32,
                                    false};
                }
            return bad(is64 ? "lock" : "lock32", fmt::format("unknown atomic operation 0x{:02x}", in.imm));
        }
        return unknown(in);
    default: return unknown(in);
    }
}

}  // namespace

std::string_view to_string(Group g) noexcept {
    switch (g) {
    case Group::base32: return "base32";
    case Group::base64: return "base64";
    case Group::atomic32: return "atomic32";
    case Group::atomic64: return "atomic64";
    case Group::divmul32: return "divmul32";
    case Group::divmul64: return "divmul64";
    case Group::packet: return "packet";
    case Group::callx: return "callx";
    }
    return "unknown";
}

Result<InsnInfo> classify(const Insn& insn) {
    switch (cls(insn.opcode)) {
    case cls_alu:
    case cls_alu64: return classify_alu(insn);
    case cls_jmp:
    case cls_jmp32: return classify_jmp(insn);
    default: return classify_load_store(insn);
    }
}

Result<std::vector<Insn>> decode(std::span<const std::byte> bytes) {
    if (bytes.size() % sizeof(Insn) != 0)
        return Error(Errc::invalid_argument,
                     fmt::format("decode program: {} bytes is not a whole number of 8-byte instructions",
                                 bytes.size()));
    std::vector<Insn> out(bytes.size() / sizeof(Insn));
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto* b = reinterpret_cast<const unsigned char*>(bytes.data()) + i * 8;
        Insn& in = out[i];
        in.opcode = b[0];
        in.dst = b[1] & 0x0f;
        in.src = b[1] >> 4;
        in.offset = static_cast<std::int16_t>(static_cast<std::uint16_t>(b[2] | (b[3] << 8)));
        in.imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(b[4]) | (static_cast<std::uint32_t>(b[5]) << 8) |
                                           (static_cast<std::uint32_t>(b[6]) << 16) |
                                           (static_cast<std::uint32_t>(b[7]) << 24));
    }
    return out;
}

std::vector<std::byte> encode(std::span<const Insn> insns) {
    std::vector<std::byte> out(insns.size() * 8);
    for (std::size_t i = 0; i < insns.size(); ++i) {
        const Insn& in = insns[i];
        const auto off = static_cast<std::uint16_t>(in.offset);
        const auto imm = static_cast<std::uint32_t>(in.imm);
        const unsigned char b[8] = {in.opcode,
                                    static_cast<unsigned char>(in.dst | (in.src << 4)),
                                    static_cast<unsigned char>(off & 0xff),
                                    static_cast<unsigned char>(off >> 8),
                                    static_cast<unsigned char>(imm & 0xff),
                                    static_cast<unsigned char>((imm >> 8) & 0xff),
                                    static_cast<unsigned char>((imm >> 16) & 0xff),
                                    static_cast<unsigned char>(imm >> 24)};
        std::memcpy(out.data() + i * 8, b, 8);
    }
    return out;
}

}  // namespace ebpfrt::isa
