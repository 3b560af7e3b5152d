#pragma once
// Shared pieces of the interpreter tests: hand encoding, assembling and running a program in checked
// mode and (when that succeeds) again in unchecked mode on a copy of the context, requiring the same
// result and the same final context bytes.

#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/vm.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace ebpfrt::test {

inline ::testing::AssertionResult contains(std::string_view text, std::string_view part) {
    if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

inline Insn mk(std::uint8_t op, std::uint8_t dst = 0, std::uint8_t src = 0, std::int16_t off = 0,
               std::int32_t imm = 0) {
    Insn i;
    i.opcode = op;
    i.dst = dst & 0xf;
    i.src = src & 0xf;
    i.offset = off;
    i.imm = imm;
    return i;
}

/// The two slots of `lddw dst, v` (RFC 9669 §5.4): low half in the first imm, high half in the second.
inline void push_lddw(std::vector<Insn>& p, int dst, std::uint64_t v, int src = 0) {
    p.push_back(mk(0x18, dst, src, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(v))));
    p.push_back(mk(0x00, 0, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(v >> 32))));
}

inline std::vector<Insn> assemble_or_fail(std::string_view text) {
    auto p = isa::assemble(text);
    if (!p) {
        ADD_FAILURE() << "assemble: " << p.error().message() << "\n" << text;
        return {};
    }
    return *p;
}

inline Result<Interpreter> prepare(std::span<const Insn> prog, const HelperTable& helpers = HelperTable{},
                                   VmOptions options = {}) {
    return Interpreter::create(prog, helpers, options);
}

/// Runs `prog` checked on `ctx`; if that succeeds, runs it unchecked on a copy of the context as it
/// was before, and records a failure when the unchecked run disagrees. Returns the checked result.
inline Result<std::uint64_t> run_prog(std::span<const Insn> prog, std::span<std::byte> ctx = {},
                                      const HelperTable& helpers = HelperTable{}, VmOptions options = {}) {
    std::vector<std::byte> before(ctx.begin(), ctx.end());
    options.checked = true;
    auto checked = Interpreter::create(prog, helpers, options);
    if (!checked) return checked.error();
    auto r = checked->run(ctx);
    if (!r) return r;

    options.checked = false;
    auto unchecked = Interpreter::create(prog, helpers, options);
    if (!unchecked) {
        ADD_FAILURE() << "unchecked create failed: " << unchecked.error().message();
        return r;
    }
    auto r2 = unchecked->run(before);
    if (!r2) {
        ADD_FAILURE() << "unchecked run failed: " << r2.error().message();
    } else if (*r2 != *r) {
        ADD_FAILURE() << fmt::format("unchecked r0 0x{:x} != checked r0 0x{:x}", *r2, *r);
    } else if (!std::equal(before.begin(), before.end(), ctx.begin(), ctx.end())) {
        ADD_FAILURE() << "unchecked run left a different context";
    }
    return r;
}

inline Result<std::uint64_t> run_asm(std::string_view text, std::span<std::byte> ctx = {},
                                     const HelperTable& helpers = HelperTable{}, VmOptions options = {}) {
    auto prog = isa::assemble(text);
    if (!prog) return prog.error().wrap("assemble");
    return run_prog(*prog, ctx, helpers, options);
}

/// Checked mode only (for programs that fault, which must not be run unchecked).
inline Result<std::uint64_t> run_checked(std::string_view text, std::span<std::byte> ctx = {},
                                         const HelperTable& helpers = HelperTable{}, VmOptions options = {}) {
    auto prog = isa::assemble(text);
    if (!prog) return prog.error().wrap("assemble");
    options.checked = true;
    auto vm = Interpreter::create(*prog, helpers, options);
    if (!vm) return vm.error();
    return vm->run(ctx);
}

inline ::testing::AssertionResult r0_is(const Result<std::uint64_t>& r, std::uint64_t want) {
    if (!r) return ::testing::AssertionFailure() << "error: " << r.error().message();
    if (*r != want) return ::testing::AssertionFailure() << fmt::format("r0 = 0x{:x}, want 0x{:x}", *r, want);
    return ::testing::AssertionSuccess();
}

/// A runtime fault: an invalid_argument error whose message names instruction `insn`.
inline ::testing::AssertionResult faults_at(const Result<std::uint64_t>& r, std::size_t insn) {
    if (r) return ::testing::AssertionFailure() << fmt::format("no error, r0 = 0x{:x}", *r);
    if (r.error().code() != Errc::invalid_argument) {
        return ::testing::AssertionFailure() << "code " << to_string(r.error().code()) << ": " << r.error().message();
    }
    return contains(r.error().message(), fmt::format("insn {}", insn));
}

inline std::vector<std::byte> bytes_of(std::initializer_list<int> v) {
    std::vector<std::byte> out;
    for (int b : v) out.push_back(static_cast<std::byte>(b));
    return out;
}

template <class T> T load_le(const std::vector<std::byte>& v, std::size_t at) {
    T x;
    std::memcpy(&x, v.data() + at, sizeof x);
    return x;
}

}  // namespace ebpfrt::test
