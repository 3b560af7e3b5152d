// Disassembler: the conformance suite's assembler syntax, with a raw form for anything else.

#include <fmt/format.h>

#include <ebpfrt/isa.hpp>

#include "isa/isa_internal.hpp"

namespace ebpfrt::isa {
namespace {

using namespace detail;

std::string raw(const Insn& in) {
    const std::uint64_t v = static_cast<std::uint64_t>(in.opcode) | (static_cast<std::uint64_t>(in.dst) << 8) |
                            (static_cast<std::uint64_t>(in.src) << 12) |
                            (static_cast<std::uint64_t>(static_cast<std::uint16_t>(in.offset)) << 16) |
                            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(in.imm)) << 32);
    return fmt::format("{} 0x{:016x}", raw_prefix, v);
}

std::string reg(unsigned r) { return fmt::format("%r{}", r); }

std::string rel(std::int64_t v) { return v < 0 ? fmt::format("{}", v) : fmt::format("+{}", v); }

std::string mem(unsigned r, std::int16_t off) { return fmt::format("[%r{}{}]", r, rel(off)); }

// Second slot of a well-formed lddw: only imm may be non-zero.
bool lddw_tail_ok(const Insn& hi) { return hi.opcode == 0 && hi.dst == 0 && hi.src == 0 && hi.offset == 0; }

std::string lddw_text(const Insn& lo, const Insn& hi) {
    const auto lo32 = static_cast<std::uint32_t>(lo.imm);
    const auto hi32 = static_cast<std::uint32_t>(hi.imm);
    switch (lo.src) {
    case pseudo_imm64:
        return fmt::format("lddw {}, 0x{:x}", reg(lo.dst), (static_cast<std::uint64_t>(hi32) << 32) | lo32);
    case pseudo_map_value:
    case pseudo_map_idx_value:
        return fmt::format("lddw {}, {} {} + {}", reg(lo.dst), lddw_kinds[lo.src], lo.imm, hi.imm);
    case pseudo_func: return fmt::format("lddw {}, func {}", reg(lo.dst), rel(lo.imm));
    default: return fmt::format("lddw {}, {} {}", reg(lo.dst), lddw_kinds[lo.src], lo.imm);
    }
}

}  // namespace

std::string disassemble_one(std::span<const Insn> prog, std::size_t index) {
    if (index >= prog.size()) return "<out of range>";
    const Insn& in = prog[index];
    auto info = classify(in);
    if (!info || in.dst > 10 || in.src > 10) return raw(in);
    const std::uint8_t c = cls(in.opcode);
    const bool x = (in.opcode & src_x) != 0;
    const std::string_view m = info->mnemonic;

    switch (c) {
    case cls_ld:
        if (in.opcode == opcode_lddw) {
            if (index + 1 >= prog.size() || !lddw_tail_ok(prog[index + 1])) return raw(in);
            if (in.src != pseudo_imm64 && in.src != pseudo_map_value && in.src != pseudo_map_idx_value &&
                prog[index + 1].imm != 0)
                return raw(in);
            return lddw_text(in, prog[index + 1]);
        }
        if ((in.opcode & 0xe0) == mode_abs) return fmt::format("{} {}", m, in.imm);
        return fmt::format("{} {}, {}", m, reg(in.src), in.imm);
    case cls_ldx: return fmt::format("{} {}, {}", m, reg(in.dst), mem(in.src, in.offset));
    case cls_st: return fmt::format("{} {}, {}", m, mem(in.dst, in.offset), in.imm);
    case cls_stx:
        return fmt::format("{} {}, {}", m, mem(in.dst, in.offset), reg(in.src));
    case cls_alu:
    case cls_alu64:
        if ((in.opcode & 0xf0) == op_end || (in.opcode & 0xf0) == op_neg) return fmt::format("{} {}", m, reg(in.dst));
        if (x) return fmt::format("{} {}, {}", m, reg(in.dst), reg(in.src));
        return fmt::format("{} {}, {}", m, reg(in.dst), in.imm);
    default: break;
    }
    // Jumps.
    const std::uint8_t op = in.opcode & 0xf0;
    if (op == op_exit) return std::string(m);
    if (op == op_ja) return c == cls_jmp32 ? fmt::format("ja32 {}", rel(in.imm)) : fmt::format("ja {}", rel(in.offset));
    if (op == op_call) {
        if (x) return fmt::format("call {}", reg(in.dst));
        if (in.src == call_local) return fmt::format("call local {}", rel(in.imm));
        if (in.src == call_kfunc) return fmt::format("call kfunc {}", in.imm);
        return fmt::format("call {}", in.imm);
    }
    if (x) return fmt::format("{} {}, {}, {}", m, reg(in.dst), reg(in.src), rel(in.offset));
    return fmt::format("{} {}, {}, {}", m, reg(in.dst), in.imm, rel(in.offset));
}

std::string disassemble(std::span<const Insn> prog) {
    std::string out;
    for (std::size_t i = 0; i < prog.size(); ++i) {
        std::string line = disassemble_one(prog, i);
        // A well-formed lddw covers the next slot; otherwise each slot prints on its own.
        if (prog[i].opcode == opcode_lddw && line.rfind("lddw", 0) == 0) ++i;
        out += line;
        out += '\n';
    }
    return out;
}

}  // namespace ebpfrt::isa
