#pragma once
/// \file
/// The eBPF instruction set (RFC 9669, ISA v1-v4): the instruction type, opcode constants,
/// classification, load-time validation, and the text syntax of the conformance suite
/// (`mov %r0, 1`, `ldxw %r1, [%r2+4]`, `jeq %r1, 0, +3`, `lock add [%r1+0], %r2`, ...).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// One 8-byte instruction slot exactly as it sits in memory on a little-endian host
/// (RFC 9669 §3.1): opcode, dst in the low nibble and src in the high nibble, offset, imm.
/// A 64-bit immediate load (lddw) takes two slots; the second holds the upper 32 bits in imm.
struct Insn {
    std::uint8_t opcode = 0;
    std::uint8_t dst : 4 = 0;
    std::uint8_t src : 4 = 0;
    std::int16_t offset = 0;
    std::int32_t imm = 0;

    friend bool operator==(const Insn&, const Insn&) = default;
};
static_assert(sizeof(Insn) == 8, "Insn must match the 8-byte wire layout");

namespace isa {

// Instruction classes (low 3 bits of the opcode).
inline constexpr std::uint8_t cls_ld = 0x00, cls_ldx = 0x01, cls_st = 0x02, cls_stx = 0x03, cls_alu = 0x04,
                              cls_jmp = 0x05, cls_jmp32 = 0x06, cls_alu64 = 0x07;
// Source bit of ALU and jump instructions: K = imm, X = src register.
inline constexpr std::uint8_t src_k = 0x00, src_x = 0x08;
// ALU operations (high 4 bits). op_end is byte swap: le/be in class alu, bswap in class alu64.
inline constexpr std::uint8_t op_add = 0x00, op_sub = 0x10, op_mul = 0x20, op_div = 0x30, op_or = 0x40,
                              op_and = 0x50, op_lsh = 0x60, op_rsh = 0x70, op_neg = 0x80, op_mod = 0x90,
                              op_xor = 0xa0, op_mov = 0xb0, op_arsh = 0xc0, op_end = 0xd0;
// Jump operations (high 4 bits).
inline constexpr std::uint8_t op_ja = 0x00, op_jeq = 0x10, op_jgt = 0x20, op_jge = 0x30, op_jset = 0x40,
                              op_jne = 0x50, op_jsgt = 0x60, op_jsge = 0x70, op_call = 0x80, op_exit = 0x90,
                              op_jlt = 0xa0, op_jle = 0xb0, op_jslt = 0xc0, op_jsle = 0xd0;
// Load/store size (bits 3-4) and mode (bits 5-7).
inline constexpr std::uint8_t size_w = 0x00, size_h = 0x08, size_b = 0x10, size_dw = 0x18;
inline constexpr std::uint8_t mode_imm = 0x00, mode_abs = 0x20, mode_ind = 0x40, mode_mem = 0x60,
                              mode_memsx = 0x80, mode_atomic = 0xc0;
// Atomic operations, in imm of STX|ATOMIC (RFC 9669 §5.3).
inline constexpr std::int32_t atomic_add = 0x00, atomic_or = 0x40, atomic_and = 0x50, atomic_xor = 0xa0,
                              atomic_fetch = 0x01, atomic_xchg = 0xe0 | atomic_fetch,
                              atomic_cmpxchg = 0xf0 | atomic_fetch;
// src values of lddw (RFC 9669 §5.4).
inline constexpr std::uint8_t pseudo_imm64 = 0, pseudo_map_fd = 1, pseudo_map_value = 2, pseudo_btf_id = 3,
                              pseudo_func = 4, pseudo_map_idx = 5, pseudo_map_idx_value = 6;
// src values of call: helper by id, local (bpf-to-bpf) call by relative imm, kfunc by BTF id.
inline constexpr std::uint8_t call_helper = 0, call_local = 1, call_kfunc = 2;

inline constexpr std::uint8_t opcode_lddw = cls_ld | size_dw | mode_imm;  // 0x18
inline constexpr std::uint8_t opcode_exit = cls_jmp | op_exit;           // 0x95
inline constexpr std::uint8_t opcode_call = cls_jmp | op_call;           // 0x85
inline constexpr std::uint8_t opcode_callx = cls_jmp | op_call | src_x;  // 0x8d

inline constexpr std::size_t num_registers = 11;  ///< r0-r10; r10 is the read-only frame pointer
inline constexpr std::size_t stack_size = 512;    ///< bytes of stack per frame
inline constexpr std::size_t max_call_depth = 8;  ///< frames, as in the kernel (MAX_CALL_FRAMES)
inline constexpr std::size_t max_insns = 1'000'000;  ///< the kernel's BPF_COMPLEXITY_LIMIT_INSNS

constexpr std::uint8_t cls(std::uint8_t opcode) noexcept { return opcode & 0x07; }

/// Conformance groups of RFC 9669 §2.2.
enum class Group : std::uint8_t { base32, base64, atomic32, atomic64, divmul32, divmul64, packet, callx };

/// Name of a group as RFC 9669 spells it ("base32", ...).
std::string_view to_string(Group g) noexcept;

/// What one valid instruction is.
struct InsnInfo {
    std::string_view mnemonic;  ///< as in the conformance assembler: "add32", "ldxdw", "lock fetch add", ...
    std::uint8_t version;       ///< lowest ISA version (1-4) that has it
    Group group;                ///< conformance group it belongs to
    bool wide;                  ///< takes two slots (lddw)
};

/// Classifies `insn` by opcode and, where they select the operation, src/offset/imm.
/// Errors: invalid_argument "unknown opcode 0x.." or "<mnemonic>: <field> must be ...", naming no index.
Result<InsnInfo> classify(const Insn& insn);

/// Bytes (8 per slot, little-endian) to instructions.
/// Errors: invalid_argument when the size is not a multiple of 8.
Result<std::vector<Insn>> decode(std::span<const std::byte> bytes);

/// Instructions to their 8-byte little-endian slots.
std::vector<std::byte> encode(std::span<const Insn> insns);

/// Limits of validate().
struct ValidateOptions {
    std::size_t max_insns = isa::max_insns;
};

/// Load-time checks that need no data flow: every slot a known instruction with valid registers and
/// zero reserved fields, lddw well formed (two slots, known src), jumps and local calls inside the
/// program and not into the second slot of an lddw, no write to r10, at most `max_insns` slots,
/// and a last instruction that is exit or an unconditional jump.
/// Errors: invalid_argument "insn N (<disassembly>): <reason>", or "program: <reason>" when it is empty/too long.
Result<void> validate(std::span<const Insn> prog, const ValidateOptions& options = {});

/// Text of slot `index` of `prog` in the conformance assembler syntax (lddw reads slot index+1 too;
/// the second slot of an lddw prints as its raw form). Jumps print their offset as `+N`/`-N`.
std::string disassemble_one(std::span<const Insn> prog, std::size_t index);

/// Whole program, one instruction per line, each line ending in '\n'. assemble(disassemble(p)) == p.
std::string disassemble(std::span<const Insn> prog);

/// Parses the conformance suite's assembler syntax: one instruction per line, `#` comments,
/// `name:` labels as jump/call targets (`ja label`, `call local label`) or numeric `+N`/`-N` offsets.
/// Errors: invalid_argument "line N: <reason>".
Result<std::vector<Insn>> assemble(std::string_view text);

}  // namespace isa
}  // namespace ebpfrt
