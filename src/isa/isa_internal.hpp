#pragma once
// Opcode name tables shared by classify(), the disassembler and the assembler, so the three agree.

#include <cstdint>
#include <string_view>

namespace ebpfrt::isa::detail {

struct AluName {
    std::string_view name64, name32;
    std::uint8_t op;
};
// Two-operand ALU operations that take K or X sources (sdiv/smod are div/mod with offset 1).
inline constexpr AluName alu_ops[] = {
    {"add", "add32", 0x00}, {"sub", "sub32", 0x10}, {"mul", "mul32", 0x20}, {"div", "div32", 0x30},
    {"or", "or32", 0x40},   {"and", "and32", 0x50}, {"lsh", "lsh32", 0x60}, {"rsh", "rsh32", 0x70},
    {"mod", "mod32", 0x90}, {"xor", "xor32", 0xa0}, {"mov", "mov32", 0xb0}, {"arsh", "arsh32", 0xc0},
};
inline constexpr AluName sdiv_name{"sdiv", "sdiv32", 0x30};
inline constexpr AluName smod_name{"smod", "smod32", 0x90};
inline constexpr AluName neg_name{"neg", "neg32", 0x80};

struct MovsxName {
    std::string_view name;
    bool alu64;
    std::int16_t bits;
};
inline constexpr MovsxName movsx_ops[] = {
    {"movsx832", false, 8}, {"movsx1632", false, 16}, {"movsx864", true, 8},
    {"movsx1664", true, 16}, {"movsx3264", true, 32},
};

struct EndName {
    std::string_view name;
    std::uint8_t cls;     // cls_alu or cls_alu64
    std::uint8_t source;  // src_k (le / bswap) or src_x (be)
    std::int32_t bits;
};
inline constexpr EndName end_ops[] = {
    {"le16", 0x04, 0x00, 16},     {"le32", 0x04, 0x00, 32},     {"le64", 0x04, 0x00, 64},
    {"be16", 0x04, 0x08, 16},     {"be32", 0x04, 0x08, 32},     {"be64", 0x04, 0x08, 64},
    {"bswap16", 0x07, 0x00, 16},  {"bswap32", 0x07, 0x00, 32},  {"bswap64", 0x07, 0x00, 64},
};

struct JmpName {
    std::string_view name64, name32;
    std::uint8_t op;
    std::uint8_t version;  // version of the 64-bit form; jmp32 forms are v3
};
// Conditional jumps.
inline constexpr JmpName jmp_ops[] = {
    {"jeq", "jeq32", 0x10, 1},   {"jgt", "jgt32", 0x20, 1},   {"jge", "jge32", 0x30, 1},
    {"jset", "jset32", 0x40, 1}, {"jne", "jne32", 0x50, 1},   {"jsgt", "jsgt32", 0x60, 1},
    {"jsge", "jsge32", 0x70, 1}, {"jlt", "jlt32", 0xa0, 2},   {"jle", "jle32", 0xb0, 2},
    {"jslt", "jslt32", 0xc0, 2}, {"jsle", "jsle32", 0xd0, 2},
};

// Load/store sizes, indexed by (size bits >> 3): w, h, b, dw.
inline constexpr std::string_view size_suffix[] = {"w", "h", "b", "dw"};
inline constexpr std::uint8_t size_bytes[] = {4, 2, 1, 8};

inline constexpr std::string_view ldx_names[] = {"ldxw", "ldxh", "ldxb", "ldxdw"};
inline constexpr std::string_view ldxs_names[] = {"ldxsw", "ldxsh", "ldxsb", ""};
inline constexpr std::string_view st_names[] = {"stw", "sth", "stb", "stdw"};
inline constexpr std::string_view stx_names[] = {"stxw", "stxh", "stxb", "stxdw"};
inline constexpr std::string_view ldabs_names[] = {"ldabsw", "ldabsh", "ldabsb", ""};
inline constexpr std::string_view ldind_names[] = {"ldindw", "ldindh", "ldindb", ""};

struct AtomicName {
    std::string_view name64, name32;  // without the "lock " prefix
    std::int32_t imm;
};
inline constexpr AtomicName atomic_ops[] = {
    {"lock add", "lock add32", 0x00},         {"lock or", "lock or32", 0x40},
    {"lock and", "lock and32", 0x50},         {"lock xor", "lock xor32", 0xa0},
    {"lock fetch add", "lock fetch add32", 0x01}, {"lock fetch or", "lock fetch or32", 0x41},
    {"lock fetch and", "lock fetch and32", 0x51}, {"lock fetch xor", "lock fetch xor32", 0xa1},
    {"lock xchg", "lock xchg32", 0xe1},       {"lock cmpxchg", "lock cmpxchg32", 0xf1},
};

// Names of lddw pseudo sources, indexed by src (0 prints as a plain number).
inline constexpr std::string_view lddw_kinds[] = {"", "map_fd", "map_value", "btf_id", "func", "map_idx",
                                                  "map_idx_value"};

// Prefix of the raw form: `.raw 0xHHHHHHHHHHHHHHHH`, the slot as a little-endian u64 (as in the
// conformance suite's `-- raw` sections: opcode in the low byte, imm in the high 32 bits).
inline constexpr std::string_view raw_prefix = ".raw";

}  // namespace ebpfrt::isa::detail
