// Assembler for the conformance suite's syntax (and our disassembler's, which is the same plus
// `.raw 0x...` slots and lddw pseudo forms such as `lddw %r1, map_fd 3`).

#include <cctype>
#include <charconv>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include <fmt/format.h>

#include <ebpfrt/isa.hpp>

#include "isa/isa_internal.hpp"

namespace ebpfrt::isa {
namespace {

using namespace detail;

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool is_ident(std::string_view s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return false;
    return true;
}

// A signed or unsigned integer: [+-](0x hex | decimal). Returns the two's complement bits in 64 bits,
// and whether it fits in `bits` bits as either a signed or an unsigned value.
std::optional<std::uint64_t> parse_number(std::string_view s, unsigned bits) {
    s = trim(s);
    bool neg = false;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s = trim(s.substr(1));
    }
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    if (bits < 64) {
        const std::uint64_t umax = (std::uint64_t{1} << bits) - 1;
        const std::uint64_t smin_mag = std::uint64_t{1} << (bits - 1);
        if (neg ? v > smin_mag : v > umax) return std::nullopt;
    } else if (neg && v > (std::uint64_t{1} << 63)) {
        return std::nullopt;
    }
    return neg ? ~v + 1 : v;
}

std::vector<std::string_view> split_operands(std::string_view s) {
    std::vector<std::string_view> out;
    s = trim(s);
    if (s.empty()) return out;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '[') ++depth;
        if (s[i] == ']') --depth;
        if (s[i] == ',' && depth == 0) {
            out.push_back(trim(s.substr(start, i - start)));
            start = i + 1;
        }
    }
    out.push_back(trim(s.substr(start)));
    return out;
}

struct Line {
    std::size_t number;     // 1-based source line
    std::size_t slot;       // first slot it assembles to
    std::string mnemonic;   // normalised: words joined by one space
    std::string_view rest;  // operand text
};

class Assembler {
public:
    Result<std::vector<Insn>> run(std::string_view text) {
        if (auto ok = scan(text); !ok) return ok.error();
        for (const Line& l : lines_) {
            line_ = &l;
            if (auto ok = assemble_line(l); !ok) return ok.error();
        }
        return std::move(out_);
    }

private:
    Error fail(std::string reason) const {
        return Error(Errc::invalid_argument, fmt::format("line {}: {}", line_->number, reason));
    }

    Result<void> scan(std::string_view text) {
        std::size_t number = 0, slot = 0;
        while (!text.empty()) {
            const auto nl = text.find('\n');
            std::string_view raw_line = text.substr(0, nl);
            text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
            ++number;
            if (auto hash = raw_line.find_first_of("#;"); hash != std::string_view::npos)
                raw_line = raw_line.substr(0, hash);
            std::string_view s = trim(raw_line);
            // Labels: `name:` possibly followed by an instruction.
            while (true) {
                const auto colon = s.find(':');
                if (colon == std::string_view::npos || !is_ident(trim(s.substr(0, colon)))) break;
                const std::string name(trim(s.substr(0, colon)));
                if (!labels_.emplace(name, slot).second)
                    return Error(Errc::invalid_argument, fmt::format("line {}: label \"{}\" defined twice", number, name));
                s = trim(s.substr(colon + 1));
            }
            if (s.empty()) continue;
            // Mnemonic: `lock [fetch] op`, `call local`, `call kfunc`, or one word.
            std::string mnemonic;
            auto take_word = [&]() {
                std::size_t i = 0;
                while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
                std::string_view w = s.substr(0, i);
                s = trim(s.substr(i));
                return w;
            };
            std::string_view first = take_word();
            mnemonic = std::string(first);
            for (auto& ch : mnemonic) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (mnemonic == "lock") {
                std::string_view w = take_word();
                if (w == "fetch") mnemonic += " fetch", w = take_word();
                mnemonic += " ";
                mnemonic += w;
            }
            if (mnemonic == "exit" && !first_exit_) first_exit_ = slot;
            lines_.push_back(Line{number, slot, mnemonic, s});
            slot += mnemonic == "lddw" ? 2 : 1;
        }
        return {};
    }

    Result<std::uint8_t> reg(std::string_view s) const {
        s = trim(s);
        if (!s.empty() && s[0] == '%') s.remove_prefix(1);
        if (s.size() < 2 || s[0] != 'r') return fail(fmt::format("expected a register, got \"{}\"", s));
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), v);
        if (ec != std::errc() || p != s.data() + s.size() || v > 10)
            return fail(fmt::format("bad register \"{}\"", s));
        return static_cast<std::uint8_t>(v);
    }

    Result<std::int32_t> imm32(std::string_view s) const {
        auto v = parse_number(s, 32);
        if (!v) return fail(fmt::format("expected a 32-bit immediate, got \"{}\"", trim(s)));
        return static_cast<std::int32_t>(static_cast<std::uint32_t>(*v));
    }

    // `[%rN+off]`, `[%rN-off]` or `[%rN]`.
    Result<std::pair<std::uint8_t, std::int16_t>> memref(std::string_view s) const {
        s = trim(s);
        if (s.size() < 3 || s.front() != '[' || s.back() != ']')
            return fail(fmt::format("expected [%rN+offset], got \"{}\"", s));
        s = trim(s.substr(1, s.size() - 2));
        const auto sign = s.find_first_of("+-");
        auto r = reg(s.substr(0, sign));
        if (!r) return r.error();
        std::int16_t off = 0;
        if (sign != std::string_view::npos) {
            auto v = parse_number(s.substr(sign), 16);
            if (!v) return fail(fmt::format("bad offset in \"[{}]\"", s));
            off = static_cast<std::int16_t>(static_cast<std::uint16_t>(*v));
        }
        return std::pair{*r, off};
    }

    // A jump or call target relative to the next slot: `+N`, `-N`, `N` or a label.
    Result<std::int64_t> target(std::string_view s) const {
        s = trim(s);
        if (is_ident(s)) {
            auto it = labels_.find(std::string(s));
            std::size_t slot = 0;
            if (it != labels_.end()) slot = it->second;
            // The conformance suite's assembler: `exit` as a target, with no label of that name, is
            // the program's first exit instruction.
            else if (s == "exit" && first_exit_) slot = *first_exit_;
            else return fail(fmt::format("unknown label \"{}\"", s));
            return static_cast<std::int64_t>(slot) - static_cast<std::int64_t>(line_->slot + 1);
        }
        auto v = parse_number(s, 32);
        if (!v) return fail(fmt::format("expected a label or +N/-N offset, got \"{}\"", s));
        return static_cast<std::int64_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(*v)));
    }

    Result<std::int16_t> offset16(std::string_view s) const {
        auto t = target(s);
        if (!t) return t.error();
        if (*t < std::numeric_limits<std::int16_t>::min() || *t > std::numeric_limits<std::int16_t>::max())
            return fail(fmt::format("jump offset {} does not fit in 16 bits (use ja32)", *t));
        return static_cast<std::int16_t>(*t);
    }

    Result<void> want(const std::vector<std::string_view>& ops, std::size_t n, std::string_view form) const {
        if (ops.size() != n) return fail(fmt::format("{} takes {}", line_->mnemonic, form));
        return {};
    }

    void emit(std::uint8_t opcode, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
        Insn in;
        in.opcode = opcode;
        in.dst = dst;
        in.src = src;
        in.offset = off;
        in.imm = imm;
        out_.push_back(in);
    }

    Result<void> assemble_line(const Line& l) {
        const std::string& m = l.mnemonic;
        const auto ops = split_operands(l.rest);

        if (m == raw_prefix) {
            if (auto ok = want(ops, 1, "one 64-bit value"); !ok) return ok;
            auto v = parse_number(ops[0], 64);
            if (!v) return fail(fmt::format("bad raw slot \"{}\"", ops[0]));
            emit(static_cast<std::uint8_t>(*v), static_cast<std::uint8_t>((*v >> 8) & 0xf),
                 static_cast<std::uint8_t>((*v >> 12) & 0xf), static_cast<std::int16_t>(*v >> 16),
                 static_cast<std::int32_t>(*v >> 32));
            return {};
        }
        if (m == "exit") {
            if (auto ok = want(ops, 0, "no operands"); !ok) return ok;
            emit(opcode_exit, 0, 0, 0, 0);
            return {};
        }
        if (m == "ja" || m == "ja32") {
            if (auto ok = want(ops, 1, "a target"); !ok) return ok;
            if (m == "ja") {
                auto off = offset16(ops[0]);
                if (!off) return off.error();
                emit(cls_jmp | op_ja, 0, 0, *off, 0);
            } else {
                auto t = target(ops[0]);
                if (!t) return t.error();
                emit(cls_jmp32 | op_ja, 0, 0, 0, static_cast<std::int32_t>(*t));
            }
            return {};
        }
        if (m == "call") return assemble_call(l.rest);
        if (m == "lddw") return assemble_lddw(ops);
        if (m.rfind("lock ", 0) == 0) {
            for (const auto& a : atomic_ops)
                for (bool is64 : {true, false})
                    if (m == (is64 ? a.name64 : a.name32)) {
                        if (auto ok = want(ops, 2, "[%rN+off], %rM"); !ok) return ok;
                        auto mr = memref(ops[0]);
                        if (!mr) return mr.error();
                        auto src = reg(ops[1]);
                        if (!src) return src.error();
                        emit(cls_stx | mode_atomic | (is64 ? size_dw : size_w), mr->first, *src, mr->second, a.imm);
                        return {};
                    }
            return fail(fmt::format("unknown instruction \"{}\"", m));
        }
        for (std::uint8_t si = 0; si < 4; ++si) {
            const auto size = static_cast<std::uint8_t>(si << 3);
            if (m == ldx_names[si] || (!ldxs_names[si].empty() && m == ldxs_names[si])) {
                if (auto ok = want(ops, 2, "%rN, [%rM+off]"); !ok) return ok;
                auto dst = reg(ops[0]);
                if (!dst) return dst.error();
                auto mr = memref(ops[1]);
                if (!mr) return mr.error();
                const std::uint8_t mode = m == ldx_names[si] ? mode_mem : mode_memsx;
                emit(cls_ldx | mode | size, *dst, mr->first, mr->second, 0);
                return {};
            }
            if (m == st_names[si] || m == stx_names[si]) {
                if (auto ok = want(ops, 2, "[%rN+off], value"); !ok) return ok;
                auto mr = memref(ops[0]);
                if (!mr) return mr.error();
                if (m == stx_names[si]) {
                    auto src = reg(ops[1]);
                    if (!src) return src.error();
                    emit(cls_stx | mode_mem | size, mr->first, *src, mr->second, 0);
                } else {
                    auto v = imm32(ops[1]);
                    if (!v) return v.error();
                    emit(cls_st | mode_mem | size, mr->first, 0, mr->second, *v);
                }
                return {};
            }
            if (!ldabs_names[si].empty() && m == ldabs_names[si]) {
                if (auto ok = want(ops, 1, "an offset"); !ok) return ok;
                auto v = imm32(ops[0]);
                if (!v) return v.error();
                emit(cls_ld | mode_abs | size, 0, 0, 0, *v);
                return {};
            }
            if (!ldind_names[si].empty() && m == ldind_names[si]) {
                if (auto ok = want(ops, 2, "%rN, offset"); !ok) return ok;
                auto src = reg(ops[0]);
                if (!src) return src.error();
                auto v = imm32(ops[1]);
                if (!v) return v.error();
                emit(cls_ld | mode_ind | size, 0, *src, 0, *v);
                return {};
            }
        }
        for (const auto& e : end_ops) {
            const bool alias = e.cls == cls_alu64 && m.size() > 4 && m.substr(0, 4) == "swap" &&
                               m.substr(4) == e.name.substr(5);  // swap16 = bswap16
            if (m == e.name || alias) {
                if (auto ok = want(ops, 1, "a register"); !ok) return ok;
                auto dst = reg(ops[0]);
                if (!dst) return dst.error();
                emit(static_cast<std::uint8_t>(e.cls | op_end | e.source), *dst, 0, 0, e.bits);
                return {};
            }
        }
        for (bool is64 : {true, false}) {
            if (m == (is64 ? neg_name.name64 : neg_name.name32)) {
                if (auto ok = want(ops, 1, "a register"); !ok) return ok;
                auto dst = reg(ops[0]);
                if (!dst) return dst.error();
                emit(static_cast<std::uint8_t>((is64 ? cls_alu64 : cls_alu) | op_neg), *dst, 0, 0, 0);
                return {};
            }
        }
        for (const auto& mv : movsx_ops) {
            if (m != mv.name) continue;
            if (auto ok = want(ops, 2, "%rN, %rM"); !ok) return ok;
            auto dst = reg(ops[0]);
            if (!dst) return dst.error();
            auto src = reg(ops[1]);
            if (!src) return src.error();
            emit(static_cast<std::uint8_t>((mv.alu64 ? cls_alu64 : cls_alu) | op_mov | src_x), *dst, *src, mv.bits, 0);
            return {};
        }
        auto alu = [&](const AluName& a, std::int16_t off) -> std::optional<Result<void>> {
            for (bool is64 : {true, false}) {
                if (m != (is64 ? a.name64 : a.name32)) continue;
                if (auto ok = want(ops, 2, "%rN, %rM or %rN, imm"); !ok) return ok;
                auto dst = reg(ops[0]);
                if (!dst) return Result<void>(dst.error());
                const std::uint8_t c = is64 ? cls_alu64 : cls_alu;
                if (is_register(ops[1])) {
                    auto src = reg(ops[1]);
                    if (!src) return Result<void>(src.error());
                    emit(static_cast<std::uint8_t>(c | a.op | src_x), *dst, *src, off, 0);
                } else {
                    auto v = imm32(ops[1]);
                    if (!v) return Result<void>(v.error());
                    emit(static_cast<std::uint8_t>(c | a.op), *dst, 0, off, *v);
                }
                return Result<void>();
            }
            return std::nullopt;
        };
        for (const auto& a : alu_ops)
            if (auto r = alu(a, 0)) return *r;
        if (auto r = alu(sdiv_name, 1)) return *r;
        if (auto r = alu(smod_name, 1)) return *r;
        for (const auto& j : jmp_ops) {
            for (bool is64 : {true, false}) {
                if (m != (is64 ? j.name64 : j.name32)) continue;
                if (auto ok = want(ops, 3, "%rN, %rM|imm, target"); !ok) return ok;
                auto dst = reg(ops[0]);
                if (!dst) return dst.error();
                auto off = offset16(ops[2]);
                if (!off) return off.error();
                const std::uint8_t c = is64 ? cls_jmp : cls_jmp32;
                if (is_register(ops[1])) {
                    auto src = reg(ops[1]);
                    if (!src) return src.error();
                    emit(static_cast<std::uint8_t>(c | j.op | src_x), *dst, *src, *off, 0);
                } else {
                    auto v = imm32(ops[1]);
                    if (!v) return v.error();
                    emit(static_cast<std::uint8_t>(c | j.op), *dst, 0, *off, *v);
                }
                return {};
            }
        }
        return fail(fmt::format("unknown instruction \"{}\"", m));
    }

    static bool is_register(std::string_view s) {
        s = trim(s);
        return !s.empty() && (s[0] == '%' || (s.size() >= 2 && s[0] == 'r' && std::isdigit(static_cast<unsigned char>(s[1]))));
    }

    Result<void> assemble_call(std::string_view rest) {
        rest = trim(rest);
        auto starts = [&](std::string_view w) {
            return rest.size() > w.size() && rest.substr(0, w.size()) == w &&
                   std::isspace(static_cast<unsigned char>(rest[w.size()]));
        };
        if (starts("local")) {
            auto t = target(rest.substr(5));
            if (!t) return t.error();
            emit(opcode_call, 0, call_local, 0, static_cast<std::int32_t>(*t));
            return {};
        }
        if (starts("kfunc")) {
            auto v = imm32(rest.substr(5));
            if (!v) return v.error();
            emit(opcode_call, 0, call_kfunc, 0, *v);
            return {};
        }
        if (is_register(rest)) {
            auto r = reg(rest);
            if (!r) return r.error();
            emit(opcode_callx, *r, 0, 0, 0);
            return {};
        }
        auto v = imm32(rest);
        if (!v) return v.error();
        emit(opcode_call, 0, call_helper, 0, *v);
        return {};
    }

    Result<void> assemble_lddw(const std::vector<std::string_view>& ops) {
        if (auto ok = want(ops, 2, "%rN, value"); !ok) return ok;
        auto dst = reg(ops[0]);
        if (!dst) return dst.error();
        std::string_view v = ops[1];
        for (std::uint8_t src = 1; src < std::size(lddw_kinds); ++src) {
            const auto kind = lddw_kinds[src];
            if (v.size() <= kind.size() || v.substr(0, kind.size()) != kind ||
                !std::isspace(static_cast<unsigned char>(v[kind.size()])))
                continue;
            std::string_view arg = trim(v.substr(kind.size()));
            std::int32_t lo = 0, hi = 0;
            if (src == pseudo_func) {
                auto t = target(arg);
                if (!t) return t.error();
                lo = static_cast<std::int32_t>(*t);
            } else if (src == pseudo_map_value || src == pseudo_map_idx_value) {
                const auto plus = arg.find('+', 1);
                auto a = imm32(arg.substr(0, plus));
                if (!a) return a.error();
                lo = *a;
                if (plus != std::string_view::npos) {
                    auto b = imm32(arg.substr(plus + 1));
                    if (!b) return b.error();
                    hi = *b;
                }
            } else {
                auto a = imm32(arg);
                if (!a) return a.error();
                lo = *a;
            }
            emit(opcode_lddw, *dst, src, 0, lo);
            emit(0, 0, 0, 0, hi);
            return {};
        }
        auto n = parse_number(v, 64);
        if (!n) return fail(fmt::format("expected a 64-bit immediate, got \"{}\"", v));
        emit(opcode_lddw, *dst, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(*n)));
        emit(0, 0, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(*n >> 32)));
        return {};
    }

    std::vector<Line> lines_;
    std::map<std::string, std::size_t> labels_;
    std::optional<std::size_t> first_exit_;
    std::vector<Insn> out_;
    const Line* line_ = nullptr;
};

}  // namespace

Result<std::vector<Insn>> assemble(std::string_view text) { return Assembler().run(text); }

}  // namespace ebpfrt::isa
