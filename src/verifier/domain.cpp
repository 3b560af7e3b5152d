// Scalar abstract domain of the verifier. The tnum rules are the classic ones for tracking known bits
// through addition and subtraction (carries can only spread unknown bits upwards); intervals are kept
// for both unsigned and signed readings of the 64 bits and tightened against each other and the bits.

#include "domain.hpp"

#include <algorithm>
#include <type_traits>

namespace ebpfrt::verifier {

namespace {
constexpr std::uint64_t u64max = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t s64min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t s64max = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t sign = 1ull << 63;
}  // namespace

Tnum tnum_range(std::uint64_t min, std::uint64_t max) noexcept {
    std::uint64_t chi = min ^ max;
    if (chi == 0) return Tnum::constant(min);
    unsigned bits = 64 - static_cast<unsigned>(__builtin_clzll(chi));
    if (bits > 63) return Tnum::unknown();
    std::uint64_t delta = (1ull << bits) - 1;
    return {min & ~delta, delta};
}

Tnum tnum_add(Tnum a, Tnum b) noexcept {
    std::uint64_t sm = a.mask + b.mask, sv = a.value + b.value;
    std::uint64_t sigma = sm + sv, chi = sigma ^ sv;
    std::uint64_t mu = chi | a.mask | b.mask;
    return {sv & ~mu, mu};
}

Tnum tnum_sub(Tnum a, Tnum b) noexcept {
    std::uint64_t dv = a.value - b.value;
    std::uint64_t alpha = dv + a.mask, beta = dv - b.mask;
    std::uint64_t mu = (alpha ^ beta) | a.mask | b.mask;
    return {dv & ~mu, mu};
}

Tnum tnum_and(Tnum a, Tnum b) noexcept {
    std::uint64_t alpha = a.value | a.mask, beta = b.value | b.mask, v = a.value & b.value;
    return {v, alpha & beta & ~v};
}

Tnum tnum_or(Tnum a, Tnum b) noexcept {
    std::uint64_t v = a.value | b.value, mu = a.mask | b.mask;
    return {v, mu & ~v};
}

Tnum tnum_xor(Tnum a, Tnum b) noexcept {
    std::uint64_t v = a.value ^ b.value, mu = a.mask | b.mask;
    return {v & ~mu, mu};
}

Tnum tnum_lsh(Tnum a, unsigned k) noexcept { return {a.value << k, a.mask << k}; }
Tnum tnum_rsh(Tnum a, unsigned k) noexcept { return {a.value >> k, a.mask >> k}; }
Tnum tnum_arsh(Tnum a, unsigned k) noexcept {
    return {static_cast<std::uint64_t>(static_cast<std::int64_t>(a.value) >> k),
            static_cast<std::uint64_t>(static_cast<std::int64_t>(a.mask) >> k)};
}

Tnum tnum_intersect(Tnum a, Tnum b) noexcept {
    std::uint64_t v = a.value | b.value, mu = a.mask & b.mask;
    return {v & ~mu, mu};
}

Tnum tnum_union(Tnum a, Tnum b) noexcept {
    std::uint64_t mu = a.mask | b.mask | (a.value ^ b.value);
    return {a.value & ~mu, mu};
}

bool tnum_in(Tnum a, Tnum b) noexcept {
    if (a.mask & ~b.mask) return false;
    return (a.value & ~b.mask) == b.value;
}

Scalar Scalar::constant(std::uint64_t v) noexcept {
    Scalar s;
    s.umin = s.umax = v;
    s.smin = s.smax = static_cast<std::int64_t>(v);
    s.t = Tnum::constant(v);
    return s;
}

Scalar Scalar::urange(std::uint64_t lo, std::uint64_t hi) noexcept {
    Scalar s;
    s.umin = lo;
    s.umax = hi;
    (void)normalize(s);
    return s;
}

bool normalize(Scalar& s) noexcept {
    // Two rounds reach a fixed point for the patterns that matter (bits -> ranges -> bits).
    for (int round = 0; round < 2; ++round) {
        // Bits bound the unsigned range.
        s.umin = std::max(s.umin, s.t.value);
        s.umax = std::min(s.umax, s.t.value | s.t.mask);
        // Bits bound the signed range.
        if (!(s.t.mask & sign)) {
            s.smin = std::max(s.smin, static_cast<std::int64_t>(s.t.value));
            s.smax = std::min(s.smax, static_cast<std::int64_t>(s.t.value | s.t.mask));
        } else {
            s.smin = std::max(s.smin, static_cast<std::int64_t>(s.t.value | sign));
            s.smax = std::min(s.smax, static_cast<std::int64_t>((s.t.value | s.t.mask) & ~sign));
        }
        // An unsigned range on one side of the sign bit is also a signed range, and vice versa.
        if ((s.umin & sign) == (s.umax & sign)) {
            s.smin = std::max(s.smin, static_cast<std::int64_t>(s.umin));
            s.smax = std::min(s.smax, static_cast<std::int64_t>(s.umax));
        }
        if (s.smin >= 0 || s.smax < 0) {
            s.umin = std::max(s.umin, static_cast<std::uint64_t>(s.smin));
            s.umax = std::min(s.umax, static_cast<std::uint64_t>(s.smax));
        }
        if (s.umin > s.umax || s.smin > s.smax) return false;
        // Known low bits (e.g. an even value) move the bounds to the nearest values that have them.
        if (s.t.mask != 0 && (s.t.mask & 1) == 0) {
            unsigned k = static_cast<unsigned>(__builtin_ctzll(s.t.mask));
            std::uint64_t lowm = (1ull << k) - 1, low = s.t.value & lowm;
            std::uint64_t up = (s.umin & ~lowm) | low;
            if (up < s.umin) up += 1ull << k;
            std::uint64_t down = (s.umax & ~lowm) | low;
            if (down > s.umax) down -= 1ull << k;
            if (up < s.umin || down > s.umax || up > down) return false;
            s.umin = up;
            s.umax = down;
        }
        Tnum r = tnum_range(s.umin, s.umax);
        // Disjoint bits: no value satisfies both.
        if ((s.t.value ^ r.value) & ~s.t.mask & ~r.mask) return false;
        s.t = tnum_intersect(s.t, r);
    }
    return s.umin <= s.umax && s.smin <= s.smax;
}

Scalar join(const Scalar& a, const Scalar& b) noexcept {
    Scalar s;
    s.umin = std::min(a.umin, b.umin);
    s.umax = std::max(a.umax, b.umax);
    s.smin = std::min(a.smin, b.smin);
    s.smax = std::max(a.smax, b.smax);
    s.t = tnum_union(a.t, b.t);
    (void)normalize(s);
    return s;
}

bool subset(const Scalar& a, const Scalar& b) noexcept {
    return a.umin >= b.umin && a.umax <= b.umax && a.smin >= b.smin && a.smax <= b.smax && tnum_in(a.t, b.t);
}

Scalar low32(const Scalar& s) noexcept {
    if (s.umax <= 0xffffffffull) return s;
    Scalar r;
    r.t = {s.t.value & 0xffffffffull, s.t.mask & 0xffffffffull};
    r.umin = 0;
    r.umax = 0xffffffffull;
    // If the value is known to lie in one 2^32-aligned window, its low half keeps the range.
    if ((s.umin >> 32) == (s.umax >> 32)) {
        r.umin = s.umin & 0xffffffffull;
        r.umax = s.umax & 0xffffffffull;
    }
    (void)normalize(r);
    return r;
}

Scalar sext(const Scalar& s, unsigned bits) noexcept {
    std::uint64_t half = 1ull << (bits - 1);
    std::uint64_t mask = bits == 64 ? u64max : (1ull << bits) - 1;
    Scalar low = s;
    if (bits < 64 && s.umax > mask) low = Scalar::urange(0, mask);
    if (low.umax < half) return low;  // sign bit clear: unchanged
    if (low.umin >= half && bits < 64) {
        // Every value negative: shift the window down.
        Scalar r;
        r.smin = static_cast<std::int64_t>(low.umin) - static_cast<std::int64_t>(mask) - 1;
        r.smax = static_cast<std::int64_t>(low.umax) - static_cast<std::int64_t>(mask) - 1;
        (void)normalize(r);
        return r;
    }
    Scalar r;
    r.smin = -static_cast<std::int64_t>(half);
    r.smax = static_cast<std::int64_t>(half - 1);
    (void)normalize(r);
    return r;
}

namespace {

Scalar add64(const Scalar& a, const Scalar& b) {
    Scalar r;
    std::uint64_t hi, lo;
    if (!__builtin_add_overflow(a.umax, b.umax, &hi)) {
        lo = a.umin + b.umin;
        r.umin = lo;
        r.umax = hi;
    }
    std::int64_t smin, smax;
    if (!__builtin_add_overflow(a.smin, b.smin, &smin) && !__builtin_add_overflow(a.smax, b.smax, &smax)) {
        r.smin = smin;
        r.smax = smax;
    }
    r.t = tnum_add(a.t, b.t);
    return r;
}

Scalar sub64(const Scalar& a, const Scalar& b) {
    Scalar r;
    if (a.umin >= b.umax) {
        r.umin = a.umin - b.umax;
        r.umax = a.umax - b.umin;
    }
    std::int64_t smin, smax;
    if (!__builtin_sub_overflow(a.smin, b.smax, &smin) && !__builtin_sub_overflow(a.smax, b.smin, &smax)) {
        r.smin = smin;
        r.smax = smax;
    }
    r.t = tnum_sub(a.t, b.t);
    return r;
}

// Signed division or modulo as RFC 9669 defines them: x / 0 = 0, x % 0 = x, and the overflowing
// MIN / -1 = MIN (MIN % -1 = 0).
template <class T> T signed_divmod(bool div, T x, T y) {
    using U = std::make_unsigned_t<T>;
    if (y == 0) return div ? 0 : x;
    if (y == -1) return div ? static_cast<T>(U{0} - static_cast<U>(x)) : 0;
    return div ? x / y : x % y;
}

Scalar mul64(const Scalar& a, const Scalar& b) {
    if (a.is_const() && b.is_const()) return Scalar::constant(a.umin * b.umin);
    Scalar r;
    std::uint64_t hi;
    if (!__builtin_mul_overflow(a.umax, b.umax, &hi)) {
        r.umin = a.umin * b.umin;
        r.umax = hi;
    }
    // Known trailing zero bits survive multiplication.
    auto tz = [](Tnum t) -> unsigned {
        std::uint64_t maybe_one = t.value | t.mask;
        return maybe_one == 0 ? 64 : static_cast<unsigned>(__builtin_ctzll(maybe_one));
    };
    unsigned zeros = std::min(63u, tz(a.t) + tz(b.t));
    r.t = {0, ~0ull << zeros};
    return r;
}

}  // namespace

Scalar alu(AluOp op, const Scalar& dst_in, const Scalar& src_in, bool alu32) noexcept {
    Scalar a = alu32 ? low32(dst_in) : dst_in;
    Scalar b = alu32 ? low32(src_in) : src_in;
    unsigned width = alu32 ? 32 : 64;
    Scalar r;
    switch (op) {
        case AluOp::add: r = add64(a, b); break;
        case AluOp::sub: r = sub64(a, b); break;
        case AluOp::mul: r = mul64(a, b); break;
        case AluOp::udiv:
            if (b.is_const() && b.umin != 0)
                r = Scalar::urange(a.umin / b.umin, a.umax / b.umin);
            else
                r = Scalar::urange(0, a.umax);  // division by zero gives 0 (RFC 9669)
            break;
        case AluOp::umod:
            if (b.umin != 0)
                r = Scalar::urange(0, std::min(a.umax, b.umax - 1));
            else
                r = Scalar::urange(0, std::max(a.umax, b.umax == 0 ? 0 : b.umax - 1));  // mod 0 keeps dst
            break;
        case AluOp::sdiv:
        case AluOp::smod:
            if (a.is_const() && b.is_const()) {
                // Exact, with RFC 9669's rules for 0 and overflow.
                r = alu32 ? Scalar::constant(static_cast<std::uint32_t>(signed_divmod<std::int32_t>(
                                op == AluOp::sdiv, static_cast<std::int32_t>(a.umin), static_cast<std::int32_t>(b.umin))))
                          : Scalar::constant(static_cast<std::uint64_t>(signed_divmod<std::int64_t>(
                                op == AluOp::sdiv, static_cast<std::int64_t>(a.umin), static_cast<std::int64_t>(b.umin))));
            } else {
                r = Scalar::unknown();
            }
            break;
        case AluOp::band:
            r.t = tnum_and(a.t, b.t);
            r.umax = std::min(a.umax, b.umax);
            if (a.smin >= 0 || b.smin >= 0) r.smin = 0;
            break;
        case AluOp::bor:
            r.t = tnum_or(a.t, b.t);
            r.umin = std::max(a.umin, b.umin);
            break;
        case AluOp::bxor: r.t = tnum_xor(a.t, b.t); break;
        case AluOp::lsh:
        case AluOp::rsh:
        case AluOp::arsh: {
            if (!b.is_const()) {
                // Shift amount unknown: only a logical right shift keeps an upper bound.
                if (op == AluOp::rsh) r = Scalar::urange(0, a.umax);
                else r = Scalar::unknown();
                break;
            }
            unsigned k = static_cast<unsigned>(b.umin & (width - 1));
            if (op == AluOp::lsh) {
                r.t = tnum_lsh(a.t, k);
                if (k == 0 || a.umax <= (u64max >> k)) {
                    r.umin = a.umin << k;
                    r.umax = a.umax << k;
                }
            } else if (op == AluOp::rsh) {
                r.t = tnum_rsh(a.t, k);
                r.umin = a.umin >> k;
                r.umax = a.umax >> k;
            } else if (!alu32) {
                r.t = tnum_arsh(a.t, k);
                r.smin = a.smin >> k;
                r.smax = a.smax >> k;
            } else {
                // 32-bit arithmetic shift: exact when bit 31 is known clear, otherwise any 32-bit value.
                if (a.umax <= 0x7fffffffull) {
                    r.t = tnum_rsh(a.t, k);
                    r.umin = a.umin >> k;
                    r.umax = a.umax >> k;
                } else {
                    r = Scalar::urange(0, 0xffffffffull);
                }
            }
            break;
        }
    }
    if (!normalize(r)) r = Scalar::unknown();
    if (alu32) r = low32(r);
    return r;
}

bool refine_less(Scalar& a, Scalar& b, bool strict, bool is_signed) noexcept {
    if (!is_signed) {
        if (strict) {
            if (a.umin == u64max || b.umax == 0) return false;
            b.umin = std::max(b.umin, a.umin + 1);
            a.umax = std::min(a.umax, b.umax - 1);
        } else {
            b.umin = std::max(b.umin, a.umin);
            a.umax = std::min(a.umax, b.umax);
        }
    } else {
        if (strict) {
            if (a.smin == s64max || b.smax == s64min) return false;
            b.smin = std::max(b.smin, a.smin + 1);
            a.smax = std::min(a.smax, b.smax - 1);
        } else {
            b.smin = std::max(b.smin, a.smin);
            a.smax = std::min(a.smax, b.smax);
        }
    }
    return normalize(a) && normalize(b);
}

bool refine_eq(Scalar& a, Scalar& b) noexcept {
    Scalar r;
    r.umin = std::max(a.umin, b.umin);
    r.umax = std::min(a.umax, b.umax);
    r.smin = std::max(a.smin, b.smin);
    r.smax = std::min(a.smax, b.smax);
    if ((a.t.value ^ b.t.value) & ~a.t.mask & ~b.t.mask) return false;
    r.t = tnum_intersect(a.t, b.t);
    if (!normalize(r)) return false;
    a = b = r;
    return true;
}

bool refine_ne(Scalar& a, Scalar& b) noexcept {
    if (a.is_const() && b.is_const()) return a.umin != b.umin;
    auto cut = [](Scalar& x, std::uint64_t c) {
        if (x.umin == c) ++x.umin;
        else if (x.umax == c) --x.umax;
        auto sc = static_cast<std::int64_t>(c);
        if (x.smin == sc) ++x.smin;
        else if (x.smax == sc) --x.smax;
        return normalize(x);
    };
    if (b.is_const()) return cut(a, b.umin);
    if (a.is_const()) return cut(b, a.umin);
    return true;
}

bool refine_jset_false(Scalar& a, const Scalar& b) noexcept {
    if (!b.is_const()) return true;
    Tnum zeros{0, ~b.umin};
    if (a.t.value & b.umin) return false;  // a bit of b is known set in a
    a.t = tnum_intersect(a.t, zeros);
    return normalize(a);
}

}  // namespace ebpfrt::verifier
