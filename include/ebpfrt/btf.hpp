#pragma once
/// \file
/// BTF, the BPF Type Format: the .BTF section of an object (types, their names and sizes, used for
/// BTF-defined maps and for printing map values) and .BTF.ext (function info, line info and CO-RE
/// relocation records). The layout is the kernel's (include/uapi/linux/btf.h).

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// BTF_KIND_* values.
enum class BtfKind : std::uint8_t {
    void_type = 0,
    integer = 1,
    pointer = 2,
    array = 3,
    struct_type = 4,
    union_type = 5,
    enum_type = 6,
    forward = 7,
    type_def = 8,
    volatile_type = 9,
    const_type = 10,
    restrict_type = 11,
    func = 12,
    func_proto = 13,
    var = 14,
    datasec = 15,
    float_type = 16,
    decl_tag = 17,
    type_tag = 18,
    enum64 = 19,
};

/// Name of a kind as bpftool prints it ("INT", "STRUCT", ...).
std::string_view to_string(BtfKind kind) noexcept;

/// A struct/union member.
struct BtfMember {
    std::string name;
    std::uint32_t type = 0;
    std::uint32_t bit_offset = 0;     ///< from the start of the struct
    std::uint32_t bitfield_size = 0;  ///< 0 unless a bitfield
};

/// An enumerator (ENUM or ENUM64); `value` holds the bits, signedness is the type's kind_flag.
struct BtfEnumerator {
    std::string name;
    std::uint64_t value = 0;
};

/// A FUNC_PROTO parameter.
struct BtfParam {
    std::string name;
    std::uint32_t type = 0;
};

/// A variable placed in a DATASEC.
struct BtfVarSecinfo {
    std::uint32_t type = 0;  ///< a VAR (or FUNC for extern functions)
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
};

/// One type. Which fields mean something depends on `kind` (see the kernel's btf.h).
struct BtfType {
    BtfKind kind = BtfKind::void_type;
    std::string name;
    bool kind_flag = false;
    /// INT, ENUM, ENUM64, STRUCT, UNION, DATASEC, FLOAT: size in bytes.
    std::uint32_t size = 0;
    /// PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG, TYPE_TAG: the referenced type;
    /// FUNC_PROTO: return type; ARRAY: element type.
    std::uint32_t type = 0;
    std::uint8_t int_encoding = 0;  ///< INT: BTF_INT_SIGNED (1) | BTF_INT_CHAR (2) | BTF_INT_BOOL (4)
    std::uint8_t int_offset = 0;    ///< INT: bit offset
    std::uint8_t int_bits = 0;      ///< INT: bits
    std::uint32_t index_type = 0;   ///< ARRAY
    std::uint32_t nelems = 0;       ///< ARRAY
    std::uint32_t linkage = 0;      ///< FUNC (static 0, global 1, extern 2), VAR (static 0, global 1, extern 2)
    std::int32_t component_idx = -1;  ///< DECL_TAG
    std::vector<BtfMember> members;          ///< STRUCT, UNION
    std::vector<BtfEnumerator> enumerators;  ///< ENUM, ENUM64
    std::vector<BtfParam> params;            ///< FUNC_PROTO
    std::vector<BtfVarSecinfo> vars;         ///< DATASEC
};

/// Parsed .BTF: type ids 1..size()-1 (id 0 is void). A plain, immutable-after-parse value.
class Btf {
public:
    /// Parses a .BTF section (or /sys/kernel/btf/vmlinux). Every reference between types and every
    /// string offset is checked, so lookups on the result never read out of bounds.
    /// Errors: invalid_argument "btf: <reason>" (bad magic, truncated header or section, type id or
    /// string offset out of range, unknown kind).
    static Result<Btf> parse(std::span<const std::byte> data);

    /// Number of type ids, including void (0).
    std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(types_.size()); }
    /// The type with this id; id 0 and out-of-range ids give the void type.
    const BtfType& type(std::uint32_t id) const noexcept;
    /// Follows TYPEDEF, CONST, VOLATILE, RESTRICT and TYPE_TAG to the underlying type id.
    std::uint32_t skip_modifiers(std::uint32_t id) const noexcept;
    /// Follows modifiers and typedefs (like skip_modifiers) then returns the kind.
    BtfKind resolved_kind(std::uint32_t id) const noexcept;
    /// Size in bytes of a value of this type (pointers are 8). Errors: invalid_argument for types
    /// without a size (void, FUNC, FWD, FUNC_PROTO) or a reference cycle.
    Result<std::uint64_t> size_of(std::uint32_t id) const;
    /// A C-like name: "int", "struct event", "char[16]", "u32 *", "void".
    std::string type_name(std::uint32_t id) const;
    /// The first type with this name and kind.
    std::optional<std::uint32_t> find(std::string_view name, BtfKind kind) const;
    /// A value of type `id` printed like bpftool: `{pid = 7, comm = "bash"}`, `[1, 2, 3]`, `42`, enum names.
    /// Errors: invalid_argument when `value` is shorter than the type.
    Result<std::string> format(std::uint32_t id, std::span<const std::byte> value) const;
    /// The string at offset `off` of the string section ("" when out of range).
    std::string_view string_at(std::uint32_t off) const noexcept;

    /// Sets the size and variable placement of DATASEC `id`, which clang leaves empty in object files
    /// (the ELF loader fills them from the symbol table, as libbpf does). Errors: invalid_argument when
    /// `id` is not a DATASEC or a variable id is out of range.
    Result<void> fixup_datasec(std::uint32_t id, std::uint32_t size, std::vector<BtfVarSecinfo> vars);

private:
    std::vector<BtfType> types_;
    std::string strings_;
};

/// CO-RE relocation kinds (enum bpf_core_relo_kind).
enum class CoreReloKind : std::uint32_t {
    field_byte_offset = 0,
    field_byte_size = 1,
    field_exists = 2,
    field_signed = 3,
    field_lshift_u64 = 4,
    field_rshift_u64 = 5,
    type_id_local = 6,
    type_id_target = 7,
    type_exists = 8,
    type_size = 9,
    enumval_exists = 10,
    enumval_value = 11,
    type_matches = 12,
};

/// A .BTF.ext func_info record: the function at byte offset insn_off of its section has BTF type type_id.
struct BtfFuncInfo {
    std::uint32_t insn_off = 0;
    std::uint32_t type_id = 0;
};

/// A .BTF.ext line_info record.
struct BtfLineInfo {
    std::uint32_t insn_off = 0;
    std::string file;
    std::string line;
    std::uint32_t line_number = 0;
    std::uint32_t column = 0;
};

/// A CO-RE relocation record: the instruction at byte offset insn_off of its section refers to the
/// field, type or enumerator named by `access` ("0:1:2", indices into members/array elements) of type_id.
struct CoreRelo {
    std::uint32_t insn_off = 0;
    std::uint32_t type_id = 0;
    std::string access;
    CoreReloKind kind = CoreReloKind::field_byte_offset;
};

/// Parsed .BTF.ext, records grouped by the name of the code section they describe.
struct BtfExt {
    /// Parses .BTF.ext; its strings live in the object's .BTF (`btf`).
    /// Errors: invalid_argument "btf.ext: <reason>".
    static Result<BtfExt> parse(std::span<const std::byte> data, const Btf& btf);

    std::map<std::string, std::vector<BtfFuncInfo>> func_info;
    std::map<std::string, std::vector<BtfLineInfo>> line_info;
    std::map<std::string, std::vector<CoreRelo>> core_relos;
};

}  // namespace ebpfrt
