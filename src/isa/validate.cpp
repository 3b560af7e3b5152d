// Load-time validation: the structural checks that need no data flow.

#include <fmt/format.h>

#include <ebpfrt/isa.hpp>

namespace ebpfrt::isa {
namespace {

Error at(std::span<const Insn> prog, std::size_t i, std::string_view reason) {
    return Error(Errc::invalid_argument, fmt::format("insn {} ({}): {}", i, disassemble_one(prog, i), reason));
}

// Whether the instruction writes its dst register (r10 must never be written).
bool writes_dst(const Insn& in) {
    switch (cls(in.opcode)) {
    case cls_alu:
    case cls_alu64:
    case cls_ldx: return true;
    case cls_ld: return in.opcode == opcode_lddw;
    default: return false;
    }
}

// Whether the instruction reads a register from its src field.
bool uses_src(const Insn& in) {
    switch (cls(in.opcode)) {
    case cls_alu:
    case cls_alu64:
    case cls_jmp:
    case cls_jmp32: return (in.opcode & src_x) != 0 && (in.opcode & 0xf0) != op_call;
    case cls_ldx:
    case cls_stx: return true;
    case cls_ld: return (in.opcode & 0xe0) == mode_ind;
    default: return false;
    }
}

}  // namespace

Result<void> validate(std::span<const Insn> prog, const ValidateOptions& options) {
    const std::size_t n = prog.size();
    if (n == 0) return Error(Errc::invalid_argument, "validate program: no instructions");
    if (n > options.max_insns)
        return Error(Errc::invalid_argument,
                     fmt::format("validate program: {} instructions, more than the limit of {}", n, options.max_insns));

    // Second slots of lddw, so that jumps into them can be rejected.
    std::vector<bool> tail(n, false);
    for (std::size_t i = 0; i < n; ++i) {
        if (prog[i].opcode != opcode_lddw) continue;
        if (i + 1 >= n) return at(prog, i, "lddw without its second slot");
        const Insn& hi = prog[i + 1];
        if (hi.opcode != 0 || hi.dst != 0 || hi.src != 0 || hi.offset != 0)
            return at(prog, i, "malformed lddw: the second slot must be zero except imm");
        tail[i + 1] = true;
        ++i;
    }

    auto check_target = [&](std::size_t i, std::int64_t rel, std::string_view what) -> Result<void> {
        const std::int64_t t = static_cast<std::int64_t>(i) + 1 + rel;
        if (t < 0 || t >= static_cast<std::int64_t>(n))
            return at(prog, i, fmt::format("{} target {} is outside the program (0..{})", what, t, n - 1));
        if (tail[static_cast<std::size_t>(t)])
            return at(prog, i, fmt::format("{} target {} is the second slot of an lddw", what, t));
        return {};
    };

    for (std::size_t i = 0; i < n; ++i) {
        const Insn& in = prog[i];
        if (tail[i]) continue;
        auto info = classify(in);
        if (!info) return at(prog, i, info.error().message());
        if (in.dst > 10) return at(prog, i, fmt::format("bad dst register r{}", in.dst));
        if (in.src > 10 && uses_src(in)) return at(prog, i, fmt::format("bad src register r{}", in.src));
        if (in.dst == 10 && writes_dst(in)) return at(prog, i, "r10 is read-only");
        if (cls(in.opcode) == cls_stx && (in.opcode & 0xe0) == mode_atomic && (in.imm & atomic_fetch) &&
            in.imm != atomic_cmpxchg && in.src == 10)
            return at(prog, i, "r10 is read-only (atomic fetch writes src)");

        const std::uint8_t c = cls(in.opcode);
        const std::uint8_t op = in.opcode & 0xf0;
        if (c == cls_jmp || c == cls_jmp32) {
            if (op == op_call) {
                if (in.opcode == opcode_call && in.src == call_local)
                    if (auto ok = check_target(i, in.imm, "call"); !ok) return ok;
            } else if (op != op_exit) {
                const std::int64_t rel = (c == cls_jmp32 && op == op_ja) ? in.imm : in.offset;
                if (auto ok = check_target(i, rel, "jump"); !ok) return ok;
            }
        }
        if (in.opcode == opcode_lddw) {
            if (in.src == pseudo_func)
                if (auto ok = check_target(i, in.imm, "function"); !ok) return ok;
            if (in.src != pseudo_imm64 && in.src != pseudo_map_value && in.src != pseudo_map_idx_value &&
                prog[i + 1].imm != 0)
                return at(prog, i, "malformed lddw: the second slot's imm must be 0 for this src");
            ++i;
        }
    }

    const std::size_t last = tail[n - 1] ? n - 2 : n - 1;
    const Insn& end = prog[n - 1];
    const bool ends_ok = !tail[n - 1] && (end.opcode == opcode_exit || end.opcode == (cls_jmp | op_ja) ||
                                          end.opcode == (cls_jmp32 | op_ja));
    if (!ends_ok) return at(prog, last, "the last instruction must be exit or an unconditional jump");
    return {};
}

}  // namespace ebpfrt::isa
