#include "cli/conformance_helpers.hpp"

#include <cmath>
#include <cstring>

namespace ebpfrt::conformance {
namespace {

std::uint64_t gather_bytes(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d, std::uint64_t e) {
    return ((a & 0xff) << 32) | ((b & 0xff) << 24) | ((c & 0xff) << 16) | ((d & 0xff) << 8) | (e & 0xff);
}

std::uint64_t memfrob(std::uint64_t p, std::uint64_t n, std::uint64_t, std::uint64_t, std::uint64_t) {
    auto* bytes = reinterpret_cast<unsigned char*>(p);
    for (std::uint64_t i = 0; i < n; ++i) bytes[i] ^= 42;
    return 0;
}

std::uint64_t no_op(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) { return 0; }

std::uint64_t isqrt(std::uint64_t x, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    return static_cast<std::uint64_t>(std::sqrt(static_cast<double>(x)));
}

std::uint64_t str_cmp(std::uint64_t a, std::uint64_t b, std::uint64_t, std::uint64_t, std::uint64_t) {
    // strcmp's int result, sign-extended to 64 bits as uBPF's plugin returns it.
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(
        std::strcmp(reinterpret_cast<const char*>(a), reinterpret_cast<const char*>(b))));
}

std::uint64_t unwind(std::uint64_t a, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) { return a; }

}  // namespace

HelperTable helpers() {
    HelperTable t;
    const auto any = Arg::scalar;
    t.set(0, {.name = "gather_bytes", .fn = gather_bytes}).value();
    t.set(1, {.name = "memfrob", .fn = memfrob, .args = {Arg::mem, Arg::size, Arg::none, Arg::none, Arg::none}})
        .value();
    t.set(2, {.name = "no_op", .fn = no_op}).value();
    t.set(3, {.name = "sqrt", .fn = isqrt, .args = {any, Arg::none, Arg::none, Arg::none, Arg::none}}).value();
    t.set(4, {.name = "strcmp", .fn = str_cmp, .args = {Arg::cstr, Arg::cstr, Arg::none, Arg::none, Arg::none}})
        .value();
    t.set(5, {.name = "unwind",
              .fn = unwind,
              .args = {any, Arg::none, Arg::none, Arg::none, Arg::none},
              .unwind_on_zero = true})
        .value();
    return t;
}

}  // namespace ebpfrt::conformance
