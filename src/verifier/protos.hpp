#pragma once
// The kernel's helper prototypes as the verifier needs them: what each argument register must hold
// and what r0 holds afterwards. Private to src/verifier.

#include <array>
#include <cstdint>
#include <string_view>

namespace ebpfrt::verifier {

enum class A : std::uint8_t {
    none,
    any,       // any initialised value
    anynull,   // any initialised value (a pointer the helper may get as NULL)
    ctx,       // the program's context pointer
    map,       // a map (lddw of a map)
    key,       // readable memory of the map's key size
    value,     // readable memory of the map's value size
    uvalue,    // writable memory of the map's value size
    mem,       // readable memory; its size is the next argument
    memnull,   // as mem, or NULL
    umem,      // writable memory (need not be initialised); its size is the next argument
    umemnull,  // as umem, or NULL
    size,      // byte count > 0 of the preceding memory argument
    size0,     // byte count >= 0 of the preceding memory argument
    long_,     // writable 8 bytes
    int_,      // writable 4 bytes
    func,      // a callback (lddw of a function)
    alloc,     // a ring buffer record from ringbuf_reserve
    mapval,    // a pointer into a map value (spin lock, timer)
    dynptr,    // 16 bytes of stack holding a dynptr
    cstr,      // a readable, NUL-terminated string
};

enum class R : std::uint8_t {
    none,         // void: r0 is not set
    integer,
    u32,          // an integer below 2^32
    map_value,    // map value of the map argument, never NULL
    map_value_or_null,
    mem_or_null,  // memory whose size is the constant of argument `size_arg`
    untrusted,
    untrusted_or_null,
};

// Context a helper needs besides "a context": the packet helpers only make sense on their own.
enum class NeedCtx : std::uint8_t { any, skb, skb_write, xdp, sock_ops, sk_msg, sk_skb, sock_addr, kprobe };

struct Proto {
    std::uint32_t id = 0;
    std::string_view name;
    R ret = R::integer;
    std::array<A, 5> args{};
    NeedCtx need = NeedCtx::any;
    std::uint8_t size_arg = 0;  // for R::mem_or_null: index of the constant size argument
};

/// The kernel prototype of helper `id`, or nullptr when the kernel has no such helper.
const Proto* kernel_proto(std::uint32_t id) noexcept;

}  // namespace ebpfrt::verifier
