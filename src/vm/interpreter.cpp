// The interpreter: programs are validated and pre-decoded once into 16-byte records with resolved
// jump targets, helpers and lddw values, then run by a threaded (computed goto) loop. The loop is a
// template over checked mode and the instruction budget, so the unchecked, unlimited loop carries
// no checks at all.

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include <ebpfrt/vm.hpp>

#include "vm/run_support.hpp"

// Threaded dispatch takes label addresses, a GNU extension that GCC and Clang share.
#pragma GCC diagnostic ignored "-Wpedantic"

static_assert(std::endian::native == std::endian::little, "the interpreter assumes a little-endian host");

namespace ebpfrt {
namespace detail {

// Internal operations, one handler each.
#define EBPFRT_ALU_OPS(X, W)                                                                                     \
    X(ADD##W##_K) X(ADD##W##_X) X(SUB##W##_K) X(SUB##W##_X) X(MUL##W##_K) X(MUL##W##_X) X(DIV##W##_K)            \
    X(DIV##W##_X) X(SDIV##W##_K) X(SDIV##W##_X) X(MOD##W##_K) X(MOD##W##_X) X(SMOD##W##_K) X(SMOD##W##_X)        \
    X(OR##W##_K) X(OR##W##_X) X(AND##W##_K) X(AND##W##_X) X(LSH##W##_K) X(LSH##W##_X) X(RSH##W##_K)              \
    X(RSH##W##_X) X(ARSH##W##_K) X(ARSH##W##_X) X(XOR##W##_K) X(XOR##W##_X) X(MOV##W##_K) X(MOV##W##_X)         \
    X(NEG##W)
#define EBPFRT_JMP_OPS(X, W)                                                                                     \
    X(JEQ##W##_K) X(JEQ##W##_X) X(JGT##W##_K) X(JGT##W##_X) X(JGE##W##_K) X(JGE##W##_X) X(JSET##W##_K)          \
    X(JSET##W##_X) X(JNE##W##_K) X(JNE##W##_X) X(JSGT##W##_K) X(JSGT##W##_X) X(JSGE##W##_K) X(JSGE##W##_X)      \
    X(JLT##W##_K) X(JLT##W##_X) X(JLE##W##_K) X(JLE##W##_X) X(JSLT##W##_K) X(JSLT##W##_X) X(JSLE##W##_K)        \
    X(JSLE##W##_X)
#define EBPFRT_OPS(X)                                                                                            \
    EBPFRT_ALU_OPS(X, 64) EBPFRT_ALU_OPS(X, 32)                                                                  \
    X(MOVSX64_8) X(MOVSX64_16) X(MOVSX64_32) X(MOVSX32_8) X(MOVSX32_16)                                          \
    X(LE16) X(LE32) X(LE64) X(BE16) X(BE32) X(BE64)                                                              \
    EBPFRT_JMP_OPS(X, 64) EBPFRT_JMP_OPS(X, 32)                                                                  \
    X(JA) X(CALL) X(CALL_LOCAL) X(CALLX) X(EXIT)                                                                 \
    X(LDXB) X(LDXH) X(LDXW) X(LDXDW) X(LDXSB) X(LDXSH) X(LDXSW)                                                  \
    X(STB) X(STH) X(STW) X(STDW) X(STXB) X(STXH) X(STXW) X(STXDW)                                                \
    X(AADD32) X(AOR32) X(AAND32) X(AXOR32) X(AFADD32) X(AFOR32) X(AFAND32) X(AFXOR32) X(AXCHG32) X(ACMPXCHG32)   \
    X(AADD64) X(AOR64) X(AAND64) X(AXOR64) X(AFADD64) X(AFOR64) X(AFAND64) X(AFXOR64) X(AXCHG64) X(ACMPXCHG64)   \
    X(LDDW) X(LDABS) X(LDIND) X(INVALID)

enum Op : std::uint16_t {
#define EBPFRT_ENUM(name) OP_##name,
    EBPFRT_OPS(EBPFRT_ENUM)
#undef EBPFRT_ENUM
        OP_COUNT
};

// One pre-decoded instruction. `off` is the memory offset, or for jumps and local calls the absolute
// target index; `imm` is the sign-extended immediate, the 64-bit lddw value, or a helper index.
// LDABS/LDIND keep their access size in `src` high bits: size is in `dst`.
struct DInsn {
    std::uint16_t code;
    std::uint8_t dst;
    std::uint8_t src;
    std::int32_t off;
    std::uint64_t imm;
};
static_assert(sizeof(DInsn) == 16);

struct ResolvedHelper {
    HelperFn fn = nullptr;
    std::array<Arg, 5> args{};
    bool unwind = false;
    bool has_pointer_args = false;
    std::string name;
};

struct InterpreterState {
    std::vector<Insn> insns;
    std::vector<DInsn> code;
    std::vector<ResolvedHelper> helpers;                    // call targets, by DInsn::imm
    std::vector<std::pair<std::uint32_t, ResolvedHelper>> by_id;  // for callx, sorted by id
    std::vector<std::span<std::byte>> regions;              // memory resolved lddw values point to
    VmOptions options;
};

struct InterpreterAccess {
    static const InterpreterState* state(const Interpreter& i) noexcept { return i.state_.get(); }
    static const std::shared_ptr<const InterpreterState>& shared(const Interpreter& i) noexcept { return i.state_; }
    static Interpreter make(std::shared_ptr<const InterpreterState> s) { return Interpreter(std::move(s)); }
};

}  // namespace detail

namespace {

using detail::DInsn;
using detail::InterpreterState;
using detail::ResolvedHelper;
using namespace detail;

constexpr std::size_t frame_bytes = isa::stack_size;
constexpr std::size_t max_frames = isa::max_call_depth;
constexpr int max_tail_calls = 33;  // the kernel's MAX_TAIL_CALL_CNT


ResolvedHelper resolve(const HelperProto& p) {
    ResolvedHelper r;
    r.fn = p.fn;
    r.args = p.args;
    r.unwind = p.unwind_on_zero;
    r.name = p.name;
    r.has_pointer_args = std::any_of(p.args.begin(), p.args.end(),
                                     [](Arg a) { return a == Arg::mem || a == Arg::mem_ro || a == Arg::cstr; });
    return r;
}

struct Frame {
    const InterpreterState* prog;  // program to return into
    const DInsn* ret;              // instruction after the call
    std::uint64_t saved[4];        // r6-r9
    std::uint64_t r10;
};

class Run final : public Invocation {
public:
    Run(const InterpreterState* prog, std::span<std::byte> ctx) : prog_(prog), checked_(prog->options.checked) {
        stack_top_ = reinterpret_cast<std::uintptr_t>(stack_) + sizeof(stack_);
        ctx_lo_ = reinterpret_cast<std::uintptr_t>(ctx.data());
        ctx_hi_ = ctx_lo_ + ctx.size();
        budget_ = prog->options.insn_budget;
    }

    // Invocation.
    void grant(std::span<std::byte> region) noexcept override {
        if (!checked_ || region.empty()) return;
        try {
            granted_.add(reinterpret_cast<std::uintptr_t>(region.data()),
                         reinterpret_cast<std::uintptr_t>(region.data()) + region.size());
        } catch (...) {
            // Out of memory while recording: the region stays inaccessible, which is safe.
        }
    }
    void grant(const StridedRegion& region) noexcept override {
        if (!checked_) return;
        try {
            granted_.add(region);
        } catch (...) {
        }
    }
    bool allowed(const void* p, std::size_t n) const noexcept override {
        return !checked_ || access_ok(reinterpret_cast<std::uintptr_t>(p), n);
    }
    bool tail_call(const Interpreter& target) noexcept override {
        if (tail_calls_ >= max_tail_calls) return false;
        const InterpreterState* t = InterpreterAccess::state(target);
        if (t == nullptr) return false;
        ++tail_calls_;
        pending_tail_ = t;
        return true;
    }
    // Compiled code (load_aot in an interpreter runtime, say): it runs when the helper returns, with the
    // chain's count and budget, in place of the calling function.
    bool tail_call(const JitProgram& target) noexcept override {
        if (tail_calls_ >= max_tail_calls) return false;
        ++tail_calls_;
        pending_jit_tail_ = &target;
        return true;
    }
    Result<std::uint64_t> call_function(std::uint64_t fn, const std::array<std::uint64_t, 5>& args) override;
    void* env() const noexcept override { return prog_->options.env; }
    bool checked() const noexcept override { return checked_; }

    // Whether [a, a + n) lies in memory the program may touch.
    bool access_ok(std::uintptr_t a, std::size_t n) const noexcept {
        if (a >= stack_lo_ && a <= stack_top_ && n <= stack_top_ - a) return true;
        if (a >= ctx_lo_ && a <= ctx_hi_ && n <= ctx_hi_ - a && ctx_hi_ != ctx_lo_) return true;
        for (const auto& r : prog_->regions) {
            const auto lo = reinterpret_cast<std::uintptr_t>(r.data());
            if (a >= lo && a <= lo + r.size() && n <= lo + r.size() - a) return true;
        }
        return !granted_.empty() && granted_.contains(a, n);
    }

    // Length of the NUL-terminated string at `a` within allowed memory, or nullopt.
    std::optional<std::size_t> cstr_ok(std::uintptr_t a) const noexcept {
        std::uintptr_t hi = 0;
        if (a >= stack_lo_ && a < stack_top_) hi = stack_top_;
        else if (a >= ctx_lo_ && a < ctx_hi_) hi = ctx_hi_;
        else {
            for (const auto& r : prog_->regions) {
                const auto lo = reinterpret_cast<std::uintptr_t>(r.data());
                if (a >= lo && a < lo + r.size()) hi = lo + r.size();
            }
            if (hi == 0) hi = granted_.find(a).second;
        }
        if (hi == 0) return std::nullopt;
        const void* nul = std::memchr(reinterpret_cast<const void*>(a), 0, hi - a);
        if (nul == nullptr) return std::nullopt;
        return static_cast<std::size_t>(static_cast<const char*>(nul) - reinterpret_cast<const char*>(a));
    }

    template <bool Checked, bool Budget>
    Result<std::uint64_t> exec(const DInsn* entry, const std::array<std::uint64_t, 5>& args, std::size_t depth) noexcept;

    // A chain that compiled code began: its tail calls so far and the budget it has left.
    void continue_chain(int tail_calls, std::optional<std::uint64_t> budget_left) noexcept {
        tail_calls_ = tail_calls;
        if (budget_left) budget_ = *budget_left;
    }

    Result<std::uint64_t> start(const std::array<std::uint64_t, 5>& args) noexcept {
        stack_lo_ = stack_top_ - frame_bytes;
        const bool budget = budget_ != 0;
        if (checked_) return budget ? exec<true, true>(prog_->code.data(), args, 0)
                                    : exec<true, false>(prog_->code.data(), args, 0);
        return budget ? exec<false, true>(prog_->code.data(), args, 0) : exec<false, false>(prog_->code.data(), args, 0);
    }

    const InterpreterState* prog_;
    bool checked_;
    std::uintptr_t stack_top_ = 0, stack_lo_ = 0;
    std::uintptr_t ctx_lo_ = 0, ctx_hi_ = 0;
    detail::RegionSet granted_;
    std::uint64_t budget_ = 0;  // instructions left, when limited
    const InterpreterState* pending_tail_ = nullptr;
    const JitProgram* pending_jit_tail_ = nullptr;
    int tail_calls_ = 0;
    bool unwinding_ = false;
    std::optional<Error> fault_;  // a callee's error, raised by call_function, ends the caller too
    std::size_t depth_ = 0;  // frames in use below the running one
    Frame frames_[max_frames];
    alignas(16) std::byte stack_[frame_bytes * max_frames];
};

Error fault(const InterpreterState* prog, const DInsn* pc, std::string_view reason) {
    const auto index = static_cast<std::size_t>(pc - prog->code.data());
    return Error(Errc::invalid_argument,
                 fmt::format("insn {} ({}): {}", index, isa::disassemble_one(prog->insns, index), reason));
}

template <class T> inline T load(std::uintptr_t a) noexcept {
    T v;
    std::memcpy(&v, reinterpret_cast<const void*>(a), sizeof(T));
    return v;
}
template <class T> inline void store(std::uintptr_t a, T v) noexcept {
    std::memcpy(reinterpret_cast<void*>(a), &v, sizeof(T));
}

template <bool Checked, bool Budget>
Result<std::uint64_t> Run::exec(const DInsn* entry, const std::array<std::uint64_t, 5>& args,
                                std::size_t base_depth) noexcept {
    static const void* const labels[] = {
#define EBPFRT_LABEL(name) &&L_##name,
        EBPFRT_OPS(EBPFRT_LABEL)
#undef EBPFRT_LABEL
    };
    static_assert(sizeof(labels) / sizeof(labels[0]) == OP_COUNT);

    std::uint64_t reg[11] = {0, args[0], args[1], args[2], args[3], args[4], 0, 0, 0, 0, 0};
    reg[10] = stack_lo_ + frame_bytes;
    const InterpreterState* prog = prog_;
    const DInsn* code = prog->code.data();
    const DInsn* pc = entry;
    std::uint64_t left = budget_;
    std::optional<Error> error;
    std::size_t depth_local = 0;
    const ResolvedHelper* hp = nullptr;
    const DInsn* dest = nullptr;

#define DST reg[pc->dst]
#define SRC reg[pc->src]
#define IMM (pc->imm)
#define DISPATCH()                                                                                               \
    do {                                                                                                         \
        if constexpr (Budget) {                                                                                  \
            if (left == 0) goto budget_out;                                                                      \
            --left;                                                                                              \
        }                                                                                                        \
        goto* labels[pc->code];                                                                                  \
    } while (0)
#define NEXT()                                                                                                   \
    do {                                                                                                         \
        ++pc;                                                                                                    \
        DISPATCH();                                                                                              \
    } while (0)
#define JUMP_IF(cond)                                                                                            \
    do {                                                                                                         \
        if (cond) pc = code + pc->off;                                                                           \
        else ++pc;                                                                                               \
        DISPATCH();                                                                                              \
    } while (0)
#define CHECK(addr, n, what)                                                                                     \
    do {                                                                                                         \
        if constexpr (Checked) {                                                                                 \
            if (!access_ok(addr, n)) {                                                                           \
                error = fault(prog, pc, fmt::format("{} of {} bytes at 0x{:x} is outside the memory the program " \
                                                    "may access",                                              \
                                                    what, n, addr));                                           \
                goto out;                                                                                        \
            }                                                                                                    \
        }                                                                                                        \
    } while (0)

    DISPATCH();

    // ALU64.
#define ALU64(NAME, EXPR_K, EXPR_X)                                                                              \
    L_##NAME##64_K : {                                                                                           \
        const std::uint64_t s = IMM;                                                                             \
        DST = (EXPR_K);                                                                                          \
        NEXT();                                                                                                  \
    }                                                                                                            \
    L_##NAME##64_X : {                                                                                           \
        const std::uint64_t s = SRC;                                                                             \
        DST = (EXPR_X);                                                                                          \
        NEXT();                                                                                                  \
    }
#define ALU64S(NAME, EXPR) ALU64(NAME, EXPR, EXPR)
    ALU64S(ADD, DST + s)
    ALU64S(SUB, DST - s)
    ALU64S(MUL, DST * s)
    ALU64S(DIV, s ? DST / s : 0)
    ALU64S(MOD, s ? DST % s : DST)
    ALU64S(OR, DST | s)
    ALU64S(AND, DST & s)
    ALU64S(XOR, DST ^ s)
    ALU64S(LSH, DST << (s & 63))
    ALU64S(RSH, DST >> (s & 63))
    ALU64S(ARSH, static_cast<std::uint64_t>(static_cast<std::int64_t>(DST) >> (s & 63)))
    ALU64S(MOV, s)
    ALU64S(SDIV, s == 0 ? 0
                 : static_cast<std::int64_t>(s) == -1
                     ? 0 - DST
                     : static_cast<std::uint64_t>(static_cast<std::int64_t>(DST) / static_cast<std::int64_t>(s)))
    ALU64S(SMOD, s == 0 ? DST
                 : static_cast<std::int64_t>(s) == -1
                     ? 0
                     : static_cast<std::uint64_t>(static_cast<std::int64_t>(DST) % static_cast<std::int64_t>(s)))
L_NEG64:
    DST = 0 - DST;
    NEXT();

    // ALU32: operands are the low 32 bits; results are zero-extended.
#define ALU32(NAME, EXPR)                                                                                        \
    L_##NAME##32_K : {                                                                                           \
        const std::uint32_t d = static_cast<std::uint32_t>(DST);                                                 \
        const std::uint32_t s = static_cast<std::uint32_t>(IMM);                                                 \
        DST = static_cast<std::uint32_t>(EXPR);                                                                  \
        NEXT();                                                                                                  \
    }                                                                                                            \
    L_##NAME##32_X : {                                                                                           \
        const std::uint32_t d = static_cast<std::uint32_t>(DST);                                                 \
        const std::uint32_t s = static_cast<std::uint32_t>(SRC);                                                 \
        DST = static_cast<std::uint32_t>(EXPR);                                                                  \
        NEXT();                                                                                                  \
    }
    ALU32(ADD, d + s)
    ALU32(SUB, d - s)
    ALU32(MUL, d * s)
    ALU32(DIV, s ? d / s : 0)
    ALU32(MOD, s ? d % s : d)
    ALU32(OR, d | s)
    ALU32(AND, d & s)
    ALU32(XOR, d ^ s)
    ALU32(LSH, d << (s & 31))
    ALU32(RSH, d >> (s & 31))
    ALU32(ARSH, static_cast<std::uint32_t>(static_cast<std::int32_t>(d) >> (s & 31)))
    ALU32(MOV, (static_cast<void>(d), s))
    ALU32(SDIV, s == 0 ? 0u
                : static_cast<std::int32_t>(s) == -1
                    ? 0u - d
                    : static_cast<std::uint32_t>(static_cast<std::int32_t>(d) / static_cast<std::int32_t>(s)))
    ALU32(SMOD, s == 0 ? d
                : static_cast<std::int32_t>(s) == -1
                    ? 0u
                    : static_cast<std::uint32_t>(static_cast<std::int32_t>(d) % static_cast<std::int32_t>(s)))
L_NEG32:
    DST = static_cast<std::uint32_t>(0u - static_cast<std::uint32_t>(DST));
    NEXT();

L_MOVSX64_8:
    DST = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(SRC)));
    NEXT();
L_MOVSX64_16:
    DST = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int16_t>(SRC)));
    NEXT();
L_MOVSX64_32:
    DST = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int32_t>(SRC)));
    NEXT();
L_MOVSX32_8:
    DST = static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::int8_t>(SRC)));
    NEXT();
L_MOVSX32_16:
    DST = static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::int16_t>(SRC)));
    NEXT();

L_LE16:
    DST = static_cast<std::uint16_t>(DST);
    NEXT();
L_LE32:
    DST = static_cast<std::uint32_t>(DST);
    NEXT();
L_LE64:
    NEXT();
L_BE16:
    DST = __builtin_bswap16(static_cast<std::uint16_t>(DST));
    NEXT();
L_BE32:
    DST = __builtin_bswap32(static_cast<std::uint32_t>(DST));
    NEXT();
L_BE64:
    DST = __builtin_bswap64(DST);
    NEXT();

    // Jumps.
#define JMP(NAME, COND64, COND32)                                                                                \
    L_##NAME##64_K : {                                                                                           \
        const std::uint64_t d = DST, s = IMM;                                                                    \
        JUMP_IF(COND64);                                                                                         \
    }                                                                                                            \
    L_##NAME##64_X : {                                                                                           \
        const std::uint64_t d = DST, s = SRC;                                                                    \
        JUMP_IF(COND64);                                                                                         \
    }                                                                                                            \
    L_##NAME##32_K : {                                                                                           \
        const std::uint32_t d = static_cast<std::uint32_t>(DST), s = static_cast<std::uint32_t>(IMM);            \
        JUMP_IF(COND32);                                                                                         \
    }                                                                                                            \
    L_##NAME##32_X : {                                                                                           \
        const std::uint32_t d = static_cast<std::uint32_t>(DST), s = static_cast<std::uint32_t>(SRC);            \
        JUMP_IF(COND32);                                                                                         \
    }
#define S64(v) static_cast<std::int64_t>(v)
#define S32(v) static_cast<std::int32_t>(v)
    JMP(JEQ, d == s, d == s)
    JMP(JNE, d != s, d != s)
    JMP(JGT, d > s, d > s)
    JMP(JGE, d >= s, d >= s)
    JMP(JLT, d < s, d < s)
    JMP(JLE, d <= s, d <= s)
    JMP(JSET, (d & s) != 0, (d & s) != 0)
    JMP(JSGT, S64(d) > S64(s), S32(d) > S32(s))
    JMP(JSGE, S64(d) >= S64(s), S32(d) >= S32(s))
    JMP(JSLT, S64(d) < S64(s), S32(d) < S32(s))
    JMP(JSLE, S64(d) <= S64(s), S32(d) <= S32(s))
L_JA:
    pc = code + pc->off;
    DISPATCH();

    // Memory.
#define LDX(NAME, T, EXT)                                                                                        \
    L_##NAME : {                                                                                                 \
        const std::uintptr_t a = SRC + static_cast<std::int64_t>(pc->off);                                       \
        CHECK(a, sizeof(T), "read");                                                                             \
        DST = static_cast<std::uint64_t>(static_cast<EXT>(load<T>(a)));                                          \
        NEXT();                                                                                                  \
    }
    LDX(LDXB, std::uint8_t, std::uint64_t)
    LDX(LDXH, std::uint16_t, std::uint64_t)
    LDX(LDXW, std::uint32_t, std::uint64_t)
    LDX(LDXDW, std::uint64_t, std::uint64_t)
    LDX(LDXSB, std::int8_t, std::int64_t)
    LDX(LDXSH, std::int16_t, std::int64_t)
    LDX(LDXSW, std::int32_t, std::int64_t)
#define ST(NAME, T, VALUE)                                                                                       \
    L_##NAME : {                                                                                                 \
        const std::uintptr_t a = DST + static_cast<std::int64_t>(pc->off);                                       \
        CHECK(a, sizeof(T), "write");                                                                            \
        store<T>(a, static_cast<T>(VALUE));                                                                      \
        NEXT();                                                                                                  \
    }
    ST(STB, std::uint8_t, IMM)
    ST(STH, std::uint16_t, IMM)
    ST(STW, std::uint32_t, IMM)
    ST(STDW, std::uint64_t, IMM)
    ST(STXB, std::uint8_t, SRC)
    ST(STXH, std::uint16_t, SRC)
    ST(STXW, std::uint32_t, SRC)
    ST(STXDW, std::uint64_t, SRC)

    // Atomics (sequentially consistent, as the kernel's are fully ordered).
#define ATOMIC(NAME, T, BODY)                                                                                    \
    L_##NAME : {                                                                                                 \
        const std::uintptr_t a = DST + static_cast<std::int64_t>(pc->off);                                       \
        CHECK(a, sizeof(T), "atomic access");                                                                    \
        if constexpr (Checked) {                                                                                 \
            if (a % sizeof(T) != 0) {                                                                            \
                error = fault(prog, pc, fmt::format("atomic access at 0x{:x} is not {}-byte aligned", a, sizeof(T))); \
                goto out;                                                                                        \
            }                                                                                                    \
        }                                                                                                        \
        T* p = reinterpret_cast<T*>(a);                                                                          \
        const T v = static_cast<T>(SRC);                                                                         \
        BODY;                                                                                                    \
        NEXT();                                                                                                  \
    }
#define ATOMIC_SIZE(W, T)                                                                                        \
    ATOMIC(AADD##W, T, __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST))                                               \
    ATOMIC(AOR##W, T, __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST))                                                 \
    ATOMIC(AAND##W, T, __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST))                                               \
    ATOMIC(AXOR##W, T, __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST))                                               \
    ATOMIC(AFADD##W, T, SRC = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST))                                        \
    ATOMIC(AFOR##W, T, SRC = __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST))                                          \
    ATOMIC(AFAND##W, T, SRC = __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST))                                        \
    ATOMIC(AFXOR##W, T, SRC = __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST))                                        \
    ATOMIC(AXCHG##W, T, SRC = __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST))                                       \
    ATOMIC(ACMPXCHG##W, T, {                                                                                     \
        T expected = static_cast<T>(reg[0]);                                                                     \
        __atomic_compare_exchange_n(p, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                 \
        reg[0] = expected;                                                                                       \
    })
    ATOMIC_SIZE(32, std::uint32_t)
    ATOMIC_SIZE(64, std::uint64_t)

L_LDDW:
    DST = IMM;
    pc += 2;
    DISPATCH();

    // Legacy packet loads: big-endian from the context; out of bounds ends the program with r0 = 0.
L_LDABS:
L_LDIND: {
    const std::uint64_t base = pc->code == OP_LDIND ? SRC : 0;
    const std::uint64_t off = base + IMM;
    const std::size_t n = pc->dst;
    const std::uint64_t len = ctx_hi_ - ctx_lo_;
    if (off >= len || n > len - off) {
        reg[0] = 0;
        goto out;
    }
    const std::uintptr_t a = ctx_lo_ + off;
    reg[0] = n == 1 ? load<std::uint8_t>(a)
             : n == 2 ? __builtin_bswap16(load<std::uint16_t>(a))
                      : __builtin_bswap32(load<std::uint32_t>(a));
    NEXT();
}

L_CALL:
    hp = &prog->helpers[pc->imm];
    goto call_helper;

L_CALLX: {
    const std::uint64_t target = DST;
    // A function address from lddw src=4 in this program: a local call.
    const auto lo = reinterpret_cast<std::uintptr_t>(code);
    const auto hi = lo + prog->code.size() * sizeof(DInsn);
    if (target >= lo && target < hi && (target - lo) % sizeof(DInsn) == 0) {
        dest = reinterpret_cast<const DInsn*>(target);
        goto local_call;
    }
    auto it = std::lower_bound(prog->by_id.begin(), prog->by_id.end(), target,
                               [](const auto& e, std::uint64_t id) { return e.first < id; });
    if (it == prog->by_id.end() || it->first != target) {
        error = fault(prog, pc, fmt::format("callx target 0x{:x} is neither a helper id nor a function", target));
        goto out;
    }
    hp = &it->second;
    goto call_helper;
}

L_CALL_LOCAL:
    dest = code + pc->off;
    goto local_call;

local_call:
    if (base_depth + depth_local + 2 > max_frames) {
        error = fault(prog, pc, fmt::format("call depth exceeds {} frames", max_frames));
        goto out;
    }
    {
        Frame& f = frames_[base_depth + depth_local];
        f.prog = prog;
        f.ret = pc + 1;
        std::memcpy(f.saved, &reg[6], sizeof(f.saved));
        f.r10 = reg[10];
        ++depth_local;
        reg[10] -= frame_bytes;
        stack_lo_ = reg[10] - frame_bytes;
        pc = dest;
        DISPATCH();
    }

call_helper:
    if constexpr (Checked) {
        if (hp->has_pointer_args) {
            for (std::size_t i = 0; i < 5; ++i) {
                const std::uint64_t p = reg[1 + i];
                if (hp->args[i] == Arg::mem || hp->args[i] == Arg::mem_ro) {
                    const std::uint64_t n = i + 1 < 5 ? reg[2 + i] : 0;
                    if (n != 0 && !access_ok(p, n)) {
                        error = fault(prog, pc,
                                      fmt::format("helper \"{}\" argument {} ({} bytes at 0x{:x}) is outside the "
                                                  "memory the program may access",
                                                  hp->name, i + 1, n, p));
                        goto out;
                    }
                } else if (hp->args[i] == Arg::cstr && !cstr_ok(p)) {
                    error = fault(prog, pc,
                                  fmt::format("helper \"{}\" argument {} (0x{:x}) is not a string in memory the "
                                              "program may access",
                                              hp->name, i + 1, p));
                    goto out;
                }
            }
        }
    }
    {
        Invocation* saved = detail::current_invocation();
        detail::current_invocation() = this;
        budget_ = left;
        prog_ = prog;
        depth_ = base_depth + depth_local;
        const std::uint64_t r = hp->fn(reg[1], reg[2], reg[3], reg[4], reg[5]);
        detail::current_invocation() = saved;
        left = budget_;
        stack_lo_ = reg[10] - frame_bytes;
        reg[0] = r;
        if (fault_) {
            error = std::move(*fault_);
            fault_.reset();
            goto out;
        }
        if (unwinding_) {
            reg[0] = 0;
            goto out;
        }
        if (hp->unwind && r == 0) {
            unwinding_ = true;
            goto out;
        }
        if (pending_jit_tail_ != nullptr) {
            // Continue in compiled code: it takes the place of this function (its r0 is what the
            // function returns) and uses up the chain's tail calls and budget as it goes.
            const JitProgram* t = pending_jit_tail_;
            pending_jit_tail_ = nullptr;
            std::optional<std::int64_t> b;
            if (Budget) b = static_cast<std::int64_t>(left);
            auto r0 = detail::continue_tail_call(*t, std::span(reinterpret_cast<std::byte*>(ctx_lo_), ctx_hi_ - ctx_lo_),
                                                 reg[1], tail_calls_, b);
            if (Budget) left = b && *b > 0 ? static_cast<std::uint64_t>(*b) : 0;
            if (!r0) {
                error = std::move(r0.error());
                goto out;
            }
            reg[0] = *r0;
            goto L_EXIT;
        }
        if (pending_tail_ != nullptr) {
            // Continue in the target program: same r1, a fresh frame at the same depth.
            prog = pending_tail_;
            pending_tail_ = nullptr;
            code = prog->code.data();
            pc = code;
            reg[0] = 0;
            prog_ = prog;
            DISPATCH();
        }
        prog_ = prog;
    }
    NEXT();

L_EXIT:
    if (depth_local == 0) goto out;
    {
        --depth_local;
        const Frame& f = frames_[base_depth + depth_local];
        std::memcpy(&reg[6], f.saved, sizeof(f.saved));
        reg[10] = f.r10;
        stack_lo_ = reg[10] - frame_bytes;
        if (f.prog != prog) {
            prog = f.prog;
            code = prog->code.data();
        }
        pc = f.ret;
        DISPATCH();
    }

L_INVALID:
    error = fault(prog, pc, "not an instruction (second slot of lddw)");
    goto out;

budget_out: __attribute__((unused));
    error = fault(prog, pc, fmt::format("instruction budget of {} exhausted", prog->options.insn_budget));
    goto out;

out:
    budget_ = left;
    if (error) return std::move(*error);
    return reg[0];
}

Result<std::uint64_t> Run::call_function(std::uint64_t fn, const std::array<std::uint64_t, 5>& args) {
    const InterpreterState* prog = prog_;
    const auto lo = reinterpret_cast<std::uintptr_t>(prog->code.data());
    const auto hi = lo + prog->code.size() * sizeof(DInsn);
    if (fn < lo || fn >= hi || (fn - lo) % sizeof(DInsn) != 0)
        return Error(Errc::invalid_argument,
                     fmt::format("call function 0x{:x}: not a function of the running program", fn));
    const std::size_t frame = depth_ + 1;
    if (frame >= max_frames)
        return Error(Errc::invalid_argument, fmt::format("call function 0x{:x}: call depth exceeds {} frames", fn,
                                                         max_frames));
    const std::uintptr_t saved_lo = stack_lo_;
    const std::size_t saved_depth = depth_;
    stack_lo_ = stack_top_ - (frame + 1) * frame_bytes;
    const auto* entry = reinterpret_cast<const DInsn*>(fn);
    const bool budget = prog->options.insn_budget != 0;
    Result<std::uint64_t> r = checked_ ? (budget ? exec<true, true>(entry, args, frame) : exec<true, false>(entry, args, frame))
                                       : (budget ? exec<false, true>(entry, args, frame) : exec<false, false>(entry, args, frame));
    stack_lo_ = saved_lo;
    depth_ = saved_depth;
    prog_ = prog;
    if (!r) {
        if (!fault_) fault_ = r.error();
        return r;
    }
    return r;
}

// Pre-decodes one validated instruction.
Result<void> predecode(InterpreterState& st, std::size_t i, const HelperTable& helpers, bool& has_callx) {
    const Insn& in = st.insns[i];
    DInsn& d = st.code[i];
    d.dst = in.dst;
    d.src = in.src;
    d.off = in.offset;
    d.imm = static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm));
    const std::uint8_t c = isa::cls(in.opcode);
    const std::uint8_t op = in.opcode & 0xf0;
    const bool x = (in.opcode & isa::src_x) != 0;
    auto err = [&](std::string_view reason) {
        return Error(Errc::invalid_argument,
                     fmt::format("insn {} ({}): {}", i, isa::disassemble_one(st.insns, i), reason));
    };

    auto alu_index = [](std::uint8_t o) -> int {
        switch (o) {
        case isa::op_add: return 0;
        case isa::op_sub: return 1;
        case isa::op_mul: return 2;
        case isa::op_div: return 3;
        case isa::op_mod: return 5;
        case isa::op_or: return 7;
        case isa::op_and: return 8;
        case isa::op_lsh: return 9;
        case isa::op_rsh: return 10;
        case isa::op_arsh: return 11;
        case isa::op_xor: return 12;
        case isa::op_mov: return 13;
        default: return -1;
        }
    };
    switch (c) {
    case isa::cls_alu:
    case isa::cls_alu64: {
        const bool is64 = c == isa::cls_alu64;
        if (op == isa::op_neg) {
            d.code = is64 ? OP_NEG64 : OP_NEG32;
            return {};
        }
        if (op == isa::op_end) {
            static constexpr std::uint16_t le[] = {OP_LE16, OP_LE32, OP_LE64}, be[] = {OP_BE16, OP_BE32, OP_BE64};
            const int w = in.imm == 16 ? 0 : in.imm == 32 ? 1 : 2;
            d.code = (is64 || x) ? be[w] : le[w];
            return {};
        }
        if (op == isa::op_mov && x && in.offset != 0) {
            d.code = is64 ? (in.offset == 8 ? OP_MOVSX64_8 : in.offset == 16 ? OP_MOVSX64_16 : OP_MOVSX64_32)
                          : (in.offset == 8 ? OP_MOVSX32_8 : OP_MOVSX32_16);
            return {};
        }
        // Order of the X-macro: ADD SUB MUL DIV SDIV MOD SMOD OR AND LSH RSH ARSH XOR MOV, each K then X.
        int k = alu_index(op);
        if ((op == isa::op_div || op == isa::op_mod) && in.offset == 1) ++k;
        const std::uint16_t base = is64 ? OP_ADD64_K : OP_ADD32_K;
        d.code = static_cast<std::uint16_t>(base + 2 * k + (x ? 1 : 0));
        return {};
    }
    case isa::cls_jmp:
    case isa::cls_jmp32: {
        const bool is32 = c == isa::cls_jmp32;
        if (op == isa::op_ja) {
            d.code = OP_JA;
            d.off = static_cast<std::int32_t>(i + 1) + (is32 ? in.imm : in.offset);
            return {};
        }
        if (op == isa::op_exit) {
            d.code = OP_EXIT;
            return {};
        }
        if (op == isa::op_call) {
            if (x) {
                d.code = OP_CALLX;
                has_callx = true;
                return {};
            }
            if (in.src == isa::call_local) {
                d.code = OP_CALL_LOCAL;
                d.off = static_cast<std::int32_t>(i + 1) + in.imm;
                return {};
            }
            const auto id = static_cast<std::uint32_t>(in.imm);
            const HelperProto* p = in.src == isa::call_kfunc ? helpers.find_kfunc(id) : helpers.find(id);
            if (p == nullptr)
                return err(in.src == isa::call_kfunc ? fmt::format("unknown kfunc with BTF id {}", id)
                                                     : fmt::format("unknown helper {}", id));
            d.code = OP_CALL;
            d.imm = st.helpers.size();
            st.helpers.push_back(resolve(*p));
            return {};
        }
        // Order of the X-macro: JEQ JGT JGE JSET JNE JSGT JSGE JLT JLE JSLT JSLE, each K then X.
        static constexpr std::uint8_t order[] = {isa::op_jeq, isa::op_jgt,  isa::op_jge,  isa::op_jset,
                                                 isa::op_jne, isa::op_jsgt, isa::op_jsge, isa::op_jlt,
                                                 isa::op_jle, isa::op_jslt, isa::op_jsle};
        const int k = static_cast<int>(std::find(std::begin(order), std::end(order), op) - std::begin(order));
        d.code = static_cast<std::uint16_t>((is32 ? OP_JEQ32_K : OP_JEQ64_K) + 2 * k + (x ? 1 : 0));
        d.off = static_cast<std::int32_t>(i + 1) + in.offset;
        return {};
    }
    case isa::cls_ldx: {
        static constexpr std::uint16_t plain[] = {OP_LDXW, OP_LDXH, OP_LDXB, OP_LDXDW};
        static constexpr std::uint16_t sx[] = {OP_LDXSW, OP_LDXSH, OP_LDXSB, OP_INVALID};
        d.code = ((in.opcode & 0xe0) == isa::mode_memsx ? sx : plain)[(in.opcode >> 3) & 3];
        return {};
    }
    case isa::cls_st: {
        static constexpr std::uint16_t ops[] = {OP_STW, OP_STH, OP_STB, OP_STDW};
        d.code = ops[(in.opcode >> 3) & 3];
        return {};
    }
    case isa::cls_stx: {
        if ((in.opcode & 0xe0) == isa::mode_mem) {
            static constexpr std::uint16_t ops[] = {OP_STXW, OP_STXH, OP_STXB, OP_STXDW};
            d.code = ops[(in.opcode >> 3) & 3];
            return {};
        }
        const bool is64 = (in.opcode & 0x18) == isa::size_dw;
        static constexpr std::int32_t imms[] = {0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1};
        const int k = static_cast<int>(std::find(std::begin(imms), std::end(imms), in.imm) - std::begin(imms));
        d.code = static_cast<std::uint16_t>((is64 ? OP_AADD64 : OP_AADD32) + k);
        return {};
    }
    default: break;
    }
    // cls_ld.
    if (in.opcode == isa::opcode_lddw) {
        d.code = OP_LDDW;
        const Insn& hi = st.insns[i + 1];
        switch (in.src) {
        case isa::pseudo_imm64:
            d.imm = static_cast<std::uint32_t>(in.imm) | (static_cast<std::uint64_t>(static_cast<std::uint32_t>(hi.imm)) << 32);
            return {};
        case isa::pseudo_func:
            d.imm = reinterpret_cast<std::uintptr_t>(st.code.data() + i + 1 + in.imm);
            return {};
        default: {
            if (!st.options.resolve_lddw)
                return Error(Errc::unsupported,
                             fmt::format("insn {} ({}): lddw with src {} needs a resolver (load the program "
                                         "through a Runtime)",
                                         i, isa::disassemble_one(st.insns, i), in.src));
            auto r = st.options.resolve_lddw(i, in, hi);
            if (!r)
                return Error(r.error().code(),
                             fmt::format("insn {} ({}): {}", i, isa::disassemble_one(st.insns, i), r.error().message()));
            d.imm = r->value;
            if (!r->region.empty()) st.regions.push_back(r->region);
            return {};
        }
        }
    }
    d.code = (in.opcode & 0xe0) == isa::mode_abs ? OP_LDABS : OP_LDIND;
    d.dst = static_cast<std::uint8_t>(std::array<std::uint8_t, 4>{4, 2, 1, 8}[(in.opcode >> 3) & 3]);
    return {};
}

}  // namespace

Invocation* Invocation::current() noexcept { return detail::current_invocation(); }

Invocation*& detail::current_invocation() noexcept {
    thread_local Invocation* current = nullptr;
    return current;
}

Result<Interpreter> Interpreter::create(std::span<const Insn> prog, const HelperTable& helpers,
                                        const VmOptions& options) {
    if (auto ok = isa::validate(prog, {.max_insns = options.max_insns}); !ok) return ok.error();
    auto st = std::make_shared<InterpreterState>();
    st->insns.assign(prog.begin(), prog.end());
    st->options = options;
    st->code.assign(prog.size(), DInsn{OP_INVALID, 0, 0, 0, 0});
    bool has_callx = false;
    for (std::size_t i = 0; i < prog.size(); ++i) {
        if (auto ok = predecode(*st, i, helpers, has_callx); !ok) return ok.error();
        if (prog[i].opcode == isa::opcode_lddw) ++i;
    }
    if (has_callx)
        for (const auto& [id, proto] : helpers.helpers()) st->by_id.emplace_back(id, resolve(proto));
    return InterpreterAccess::make(std::move(st));
}

Result<std::uint64_t> Interpreter::run(std::span<std::byte> ctx) const noexcept {
    Run r(state_.get(), ctx);
    return r.start({reinterpret_cast<std::uint64_t>(ctx.data()), ctx.size(), 0, 0, 0});
}

Result<std::uint64_t> Interpreter::run_args(const std::array<std::uint64_t, 5>& args) const noexcept {
    Run r(state_.get(), {});
    return r.start(args);
}

namespace detail {

Result<std::uint64_t> continue_tail_call(const Interpreter& target, std::span<std::byte> ctx, std::uint64_t r1,
                                         int tail_calls, std::optional<std::int64_t> budget_left) noexcept {
    const InterpreterState* st = InterpreterAccess::state(target);
    if (st == nullptr) return Error(Errc::invalid_argument, "tail call: an empty program");
    Run r(st, ctx);
    std::optional<std::uint64_t> budget;
    if (budget_left && st->options.insn_budget != 0) {
        // The compiled part of the chain used it all: the target cannot run one instruction.
        if (*budget_left <= 0)
            return Error(Errc::invalid_argument, fmt::format("insn 0 ({}): instruction budget of {} exhausted",
                                                             isa::disassemble_one(st->insns, 0), st->options.insn_budget));
        budget = static_cast<std::uint64_t>(*budget_left);
    }
    r.continue_chain(tail_calls, budget);
    return r.start({r1, 0, 0, 0, 0});
}

}  // namespace detail

std::size_t Interpreter::size() const noexcept { return state_->insns.size(); }

const VmOptions& Interpreter::options() const noexcept { return state_->options; }

}  // namespace ebpfrt
