#pragma once
// The verifier's abstract values: scalars as unsigned and signed intervals plus known bits (a "tnum":
// bits in `mask` are unknown, the others equal `value`), and registers that are scalars or pointers.
// Every operation over-approximates: the concrete result of the instruction is always inside the
// abstract result. Private to src/verifier.

#include <cstdint>
#include <limits>

namespace ebpfrt::verifier {

struct Tnum {
    std::uint64_t value = 0;
    std::uint64_t mask = ~0ull;

    static constexpr Tnum constant(std::uint64_t v) noexcept { return {v, 0}; }
    static constexpr Tnum unknown() noexcept { return {0, ~0ull}; }
    bool is_const() const noexcept { return mask == 0; }
    friend bool operator==(const Tnum&, const Tnum&) = default;
};

Tnum tnum_range(std::uint64_t min, std::uint64_t max) noexcept;
Tnum tnum_add(Tnum a, Tnum b) noexcept;
Tnum tnum_sub(Tnum a, Tnum b) noexcept;
Tnum tnum_and(Tnum a, Tnum b) noexcept;
Tnum tnum_or(Tnum a, Tnum b) noexcept;
Tnum tnum_xor(Tnum a, Tnum b) noexcept;
Tnum tnum_lsh(Tnum a, unsigned k) noexcept;
Tnum tnum_rsh(Tnum a, unsigned k) noexcept;
Tnum tnum_arsh(Tnum a, unsigned k) noexcept;
Tnum tnum_intersect(Tnum a, Tnum b) noexcept;
Tnum tnum_union(Tnum a, Tnum b) noexcept;
/// a describes a subset of what b describes.
bool tnum_in(Tnum a, Tnum b) noexcept;

struct Scalar {
    std::uint64_t umin = 0, umax = std::numeric_limits<std::uint64_t>::max();
    std::int64_t smin = std::numeric_limits<std::int64_t>::min(), smax = std::numeric_limits<std::int64_t>::max();
    Tnum t = Tnum::unknown();

    static Scalar constant(std::uint64_t v) noexcept;
    static Scalar unknown() noexcept { return {}; }
    static Scalar urange(std::uint64_t lo, std::uint64_t hi) noexcept;
    bool is_const() const noexcept { return umin == umax; }
    bool is_const(std::uint64_t v) const noexcept { return umin == v && umax == v; }
    friend bool operator==(const Scalar&, const Scalar&) = default;
};

/// Tightens every bound from the others; false when the value set is empty (an impossible branch).
[[nodiscard]] bool normalize(Scalar& s) noexcept;
Scalar join(const Scalar& a, const Scalar& b) noexcept;
/// a is a subset of b.
bool subset(const Scalar& a, const Scalar& b) noexcept;
/// The low 32 bits of a value, zero-extended.
Scalar low32(const Scalar& s) noexcept;
/// Sign-extends the low `bits` bits (8, 16, 32) to 64.
Scalar sext(const Scalar& s, unsigned bits) noexcept;

enum class AluOp : std::uint8_t { add, sub, mul, udiv, sdiv, umod, smod, bor, band, lsh, rsh, arsh, bxor };
/// dst op src in 64 bits (alu32 = false) or in 32 bits, zero-extended (alu32 = true).
Scalar alu(AluOp op, const Scalar& dst, const Scalar& src, bool alu32) noexcept;

/// Refines a and b with "a < b" (strict) or "a <= b", unsigned or signed. false: impossible.
[[nodiscard]] bool refine_less(Scalar& a, Scalar& b, bool strict, bool is_signed) noexcept;
/// Refines with a == b (both become the intersection). false: impossible.
[[nodiscard]] bool refine_eq(Scalar& a, Scalar& b) noexcept;
/// Refines with a != b (only a constant at a bound can be cut off). false: impossible.
[[nodiscard]] bool refine_ne(Scalar& a, Scalar& b) noexcept;
/// Refines with (a & b) == 0 for a constant b (those bits of a are known zero). false: impossible.
[[nodiscard]] bool refine_jset_false(Scalar& a, const Scalar& b) noexcept;

}  // namespace ebpfrt::verifier
