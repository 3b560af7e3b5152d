// Helpers that need the runtime: map access (with checked-mode validation of map and key pointers),
// tail calls through prog_array, bpf_loop and for_each_map_elem callbacks, ring buffers, perf output,
// stacks, spin locks and trace output. Each finds its RuntimeState through Invocation::env().

#include "runtime/runtime_internal.hpp"

#include <execinfo.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "helpers/helpers_internal.hpp"
#include "jit/rt_abi.hpp"
#include "maps/maps_internal.hpp"

namespace ebpfrt::jit {
namespace {

std::uint64_t neg_errno(int e) { return static_cast<std::uint64_t>(-static_cast<std::int64_t>(e)); }

}  // namespace

// The map helpers of an unchecked run (no Invocation, or one that is not checked): nothing is validated
// (unchecked mode trusts the program, normally proved safe by the verifier at load); a null map is
// refused as in checked mode. Compiled unchecked code
// calls these directly (jit::direct_map_call); the helpers below call them for every unchecked run, so
// that both paths are one code.
std::uint64_t ebpfrt_rt_map_lookup(std::uint64_t map, std::uint64_t key) {
    void* m = reinterpret_cast<void*>(map);
    return m ? reinterpret_cast<std::uint64_t>(maps::map_lookup_elem(m, reinterpret_cast<void*>(key))) : 0;
}

std::uint64_t ebpfrt_rt_map_update(std::uint64_t map, std::uint64_t key, std::uint64_t value,
                                   std::uint64_t flags) {
    void* m = reinterpret_cast<void*>(map);
    if (!m) return neg_errno(EINVAL);
    return static_cast<std::uint64_t>(
        maps::map_update_elem(m, reinterpret_cast<void*>(key), reinterpret_cast<void*>(value), flags));
}

std::uint64_t ebpfrt_rt_map_delete(std::uint64_t map, std::uint64_t key) {
    void* m = reinterpret_cast<void*>(map);
    if (!m) return neg_errno(EINVAL);
    return static_cast<std::uint64_t>(maps::map_delete_elem(m, reinterpret_cast<void*>(key)));
}

}  // namespace ebpfrt::jit

namespace ebpfrt::detail {
namespace {

using u64 = std::uint64_t;

u64 neg(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

// Whether helpers must validate their arguments: only in a checked run. Unchecked runs (and calls
// outside any run) skip every Invocation call after this one.
bool checking(Invocation* inv) { return inv != nullptr && inv->checked(); }

const RuntimeState* runtime_of(Invocation* inv) {
    return inv ? static_cast<const RuntimeState*>(inv->env()) : nullptr;
}

// In checked mode the map argument must be a map this runtime knows and the pointers must be
// accessible to the program; a helper that finds otherwise fails the way the kernel's would have
// refused to load the program: with an error value, never by touching the memory.
// `inv` is Invocation::current(), for helpers that already have it.
bool map_ok(Invocation* inv, void* map) {
    if (!inv || !inv->checked()) return map != nullptr;
    const RuntimeState* rt = runtime_of(inv);
    return rt && rt->known_map(map);
}
bool map_ok(void* map) { return map_ok(Invocation::current(), map); }

bool mem_ok(Invocation* inv, const void* p, std::size_t n) { return !inv || inv->allowed(p, n); }
bool mem_ok(const void* p, std::size_t n) { return mem_ok(Invocation::current(), p, n); }

void grant(Invocation* inv, void* p, std::size_t n) {
    if (inv) inv->grant(std::span(static_cast<std::byte*>(p), n));
}
void grant(void* p, std::size_t n) { grant(Invocation::current(), p, n); }
// A map value the program looked up: where the map's values lie at a fixed stride, all of them at once
// (one grant per map and run; every later lookup finds it already granted), else this value.
void grant_value(Invocation* inv, void* map, void* value) {
    if (!inv) return;
    if (maps::ValueWindow w; maps::value_window(map, &w)) {
        inv->grant(StridedRegion{w.base, w.count, w.stride, w.offset, w.size});
        return;
    }
    grant(inv, value, maps::map_value_size(map));
}

bool holds_maps(void* map) {
    const MapType t = maps::map_type(map);
    return t == MapType::array_of_maps || t == MapType::hash_of_maps;
}

u64 map_lookup_elem(u64 map, u64 key, u64, u64, u64) {
    Invocation* inv = Invocation::current();
    if (!checking(inv)) return jit::ebpfrt_rt_map_lookup(map, key);
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(inv, m) || !mem_ok(inv, reinterpret_cast<void*>(key), maps::map_key_size(m))) return 0;
    void* v = maps::map_lookup_elem(m, reinterpret_cast<void*>(key));
    if (!v) return 0;
    if (holds_maps(m)) {
        // An inner map: a map handle the program may pass on to map helpers.
        if (auto* rt = const_cast<RuntimeState*>(runtime_of(inv)); rt && !rt->known_map(v)) {
            std::unique_lock lock(rt->maps_mu);
            rt->map_handles.insert(v);
        }
        return reinterpret_cast<u64>(v);
    }
    grant_value(inv, m, v);
    return reinterpret_cast<u64>(v);
}

u64 map_lookup_percpu_elem(u64 map, u64 key, u64 cpu, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m) || !mem_ok(reinterpret_cast<void*>(key), maps::map_key_size(m))) return 0;
    void* v = maps::map_lookup_percpu_elem(m, reinterpret_cast<void*>(key), static_cast<std::uint32_t>(cpu));
    if (v) grant(v, maps::map_value_size(m));
    return reinterpret_cast<u64>(v);
}

u64 map_update_elem(u64 map, u64 key, u64 value, u64 flags, u64) {
    Invocation* inv = Invocation::current();
    if (!checking(inv)) return jit::ebpfrt_rt_map_update(map, key, value, flags);
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(inv, m)) return neg(EINVAL);
    if (!mem_ok(inv, reinterpret_cast<void*>(key), maps::map_key_size(m)) ||
        !mem_ok(inv, reinterpret_cast<void*>(value), maps::map_value_size(m)))
        return neg(EFAULT);
    return static_cast<u64>(maps::map_update_elem(m, reinterpret_cast<void*>(key), reinterpret_cast<void*>(value), flags));
}

u64 map_delete_elem(u64 map, u64 key, u64, u64, u64) {
    Invocation* inv = Invocation::current();
    if (!checking(inv)) return jit::ebpfrt_rt_map_delete(map, key);
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(inv, m)) return neg(EINVAL);
    if (!mem_ok(inv, reinterpret_cast<void*>(key), maps::map_key_size(m))) return neg(EFAULT);
    return static_cast<u64>(maps::map_delete_elem(m, reinterpret_cast<void*>(key)));
}

u64 map_push_elem(u64 map, u64 value, u64 flags, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return neg(EINVAL);
    if (!mem_ok(reinterpret_cast<void*>(value), maps::map_value_size(m))) return neg(EFAULT);
    return static_cast<u64>(maps::map_push_elem(m, reinterpret_cast<void*>(value), flags));
}

u64 map_pop_elem(u64 map, u64 value, u64, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return neg(EINVAL);
    if (!mem_ok(reinterpret_cast<void*>(value), maps::map_value_size(m))) return neg(EFAULT);
    return static_cast<u64>(maps::map_pop_elem(m, reinterpret_cast<void*>(value)));
}

u64 map_peek_elem(u64 map, u64 value, u64, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return neg(EINVAL);
    if (!mem_ok(reinterpret_cast<void*>(value), maps::map_value_size(m))) return neg(EFAULT);
    return static_cast<u64>(maps::map_peek_elem(m, reinterpret_cast<void*>(value)));
}

u64 tail_call(u64, u64 map, u64 index, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    Invocation* inv = Invocation::current();
    if (!inv || !map_ok(m) || maps::map_type(m) != MapType::prog_array) return neg(EINVAL);
    const std::uint32_t id = maps::prog_array_get(m, static_cast<std::uint32_t>(index));
    if (id == 0) return neg(ENOENT);  // empty slot: the caller continues, as in the kernel
    const RuntimeState* rt = runtime_of(inv);
    auto target = rt ? rt->program_by_id(id) : nullptr;
    if (!target) return neg(ENOENT);
    const bool ok = target->jit ? inv->tail_call(*target->jit) : target->interp ? inv->tail_call(*target->interp) : false;
    return ok ? 0 : neg(E2BIG);
}

u64 ringbuf_output(u64 map, u64 data, u64 size, u64 flags, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return neg(EINVAL);
    if (!mem_ok(reinterpret_cast<void*>(data), size)) return neg(EFAULT);
    return static_cast<u64>(maps::ringbuf_output(m, reinterpret_cast<void*>(data), size, flags));
}

u64 ringbuf_reserve(u64 map, u64 size, u64 flags, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return 0;
    void* p = maps::ringbuf_reserve(m, size, flags);
    if (p) grant(p, size);
    return reinterpret_cast<u64>(p);
}

u64 ringbuf_submit(u64 data, u64 flags, u64, u64, u64) {
    if (Invocation* inv = Invocation::current(); inv && inv->checked() && !inv->allowed(reinterpret_cast<void*>(data), 1))
        return 0;
    maps::ringbuf_submit(reinterpret_cast<void*>(data), flags);
    return 0;
}

u64 ringbuf_discard(u64 data, u64 flags, u64, u64, u64) {
    if (Invocation* inv = Invocation::current(); inv && inv->checked() && !inv->allowed(reinterpret_cast<void*>(data), 1))
        return 0;
    maps::ringbuf_discard(reinterpret_cast<void*>(data), flags);
    return 0;
}

u64 ringbuf_query(u64 map, u64 flags, u64, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    return map_ok(m) ? maps::ringbuf_query(m, flags) : 0;
}

u64 perf_event_output(u64, u64 map, u64 flags, u64 data, u64 size) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m)) return neg(EINVAL);
    if (!mem_ok(reinterpret_cast<void*>(data), size)) return neg(EFAULT);
    return static_cast<u64>(maps::perf_event_output(m, flags, reinterpret_cast<void*>(data), size));
}

// The native stack of the thread the program runs on (what a uprobe's user stack is here), without
// the frames of ebpfrt itself. Kernel stacks are empty in user space.
std::uint32_t capture_stack(std::uint64_t* ips, std::uint32_t max, std::uint64_t flags) {
    if (!(flags & maps::f_user_stack)) return 0;
    void* frames[128];
    const int n = backtrace(frames, 128);
    const std::uint32_t skip = static_cast<std::uint32_t>(flags & maps::f_skip_field_mask) + 2;
    std::uint32_t out = 0;
    for (int i = static_cast<int>(skip); i < n && out < max; ++i) ips[out++] = reinterpret_cast<std::uint64_t>(frames[i]);
    return out;
}

u64 get_stackid(u64, u64 map, u64 flags, u64, u64) {
    void* m = reinterpret_cast<void*>(map);
    if (!map_ok(m) || maps::map_type(m) != MapType::stack_trace) return neg(EINVAL);
    std::uint64_t ips[127];
    const bool build_ids = (maps::map_flags_of(m) & map_flags::stack_build_id) != 0;
    const std::uint32_t entry = build_ids ? sizeof(maps::StackBuildId) : 8;
    // Enough frames for the map's depth after the skipped ones.
    const std::uint32_t depth =
        std::min<std::uint32_t>(127, maps::map_value_size(m) / entry + static_cast<std::uint32_t>(flags & maps::f_skip_field_mask));
    const std::uint32_t n = capture_stack(ips, depth, flags & ~maps::f_skip_field_mask);
    if (n == 0) return neg(EFAULT);
    if (!build_ids) return static_cast<u64>(maps::get_stackid(m, ips, n, flags));
    maps::StackBuildId frames[127];
    stack_build_ids(ips, n, frames);
    return static_cast<u64>(maps::get_stackid(m, ips, n, flags, frames));
}

u64 get_stack(u64, u64 buf, u64 size, u64 flags, u64) {
    // Skip count (low 8 bits), BPF_F_USER_STACK and BPF_F_USER_BUILD_ID; anything else, or a size that
    // is not whole entries, is -EINVAL with the buffer cleared, as in the kernel.
    constexpr u64 known = maps::f_skip_field_mask | maps::f_user_stack | maps::f_user_build_id;
    auto* out = reinterpret_cast<std::byte*>(buf);
    const bool build_ids = (flags & maps::f_user_build_id) != 0;
    const u64 entry = build_ids ? sizeof(maps::StackBuildId) : 8;
    // Build ids exist only for user stacks (kernel: BPF_F_USER_BUILD_ID without BPF_F_USER_STACK clears).
    if ((flags & ~known) != 0 || size % entry != 0 || (build_ids && !(flags & maps::f_user_stack))) {
        std::memset(out, 0, size);
        return neg(EINVAL);
    }
    std::uint64_t ips[128];
    const auto max = static_cast<std::uint32_t>(std::min<u64>(size / entry, 128));
    const std::uint32_t n = capture_stack(ips, max, flags);
    if (build_ids) {
        maps::StackBuildId frames[128];
        stack_build_ids(ips, n, frames);
        std::memcpy(out, frames, n * entry);
    } else {
        std::memcpy(out, ips, n * entry);
    }
    std::memset(out + n * entry, 0, size - n * entry);
    return n * entry;
}

// bpf_spin_lock: a 4-byte word inside a map value; 0 = free. Values are in shared memory, so the lock
// must work across processes: a plain atomic word with yield, never a pthread object.
u64 spin_lock(u64 lock, u64, u64, u64, u64) {
    if (!mem_ok(reinterpret_cast<void*>(lock), 4)) return 0;
    maps::value_spin_lock(reinterpret_cast<void*>(lock));
    return 0;
}

u64 spin_unlock(u64 lock, u64, u64, u64, u64) {
    if (!mem_ok(reinterpret_cast<void*>(lock), 4)) return 0;
    maps::value_spin_unlock(reinterpret_cast<void*>(lock));
    return 0;
}

u64 loop(u64 nr_loops, u64 callback, u64 ctx, u64 flags, u64) {
    Invocation* inv = Invocation::current();
    if (!inv || flags != 0) return neg(EINVAL);
    if (nr_loops > (1u << 23)) return neg(E2BIG);  // BPF_MAX_LOOPS
    for (u64 i = 0; i < nr_loops; ++i) {
        auto r = inv->call_function(callback, {i, ctx, 0, 0, 0});
        if (!r) return neg(EINVAL);
        if (*r == 1) return i + 1;
    }
    return nr_loops;
}

struct ForEachCtx {
    Invocation* inv;
    u64 callback, ctx;
    bool failed = false;
};

long for_each_cb(void* map, const void* key, void* value, void* raw) {
    auto* c = static_cast<ForEachCtx*>(raw);
    grant(const_cast<void*>(key), maps::map_key_size(map));
    grant_value(c->inv, map, value);
    auto r = c->inv->call_function(c->callback, {reinterpret_cast<u64>(map), reinterpret_cast<u64>(key),
                                                 reinterpret_cast<u64>(value), c->ctx, 0});
    if (!r) {
        c->failed = true;
        return 1;
    }
    return static_cast<long>(*r);
}

u64 for_each_map_elem(u64 map, u64 callback, u64 ctx, u64 flags, u64) {
    void* m = reinterpret_cast<void*>(map);
    Invocation* inv = Invocation::current();
    if (!inv || !map_ok(m) || flags != 0) return neg(EINVAL);
    ForEachCtx c{inv, callback, ctx};
    const long n = maps::for_each_map_elem(m, for_each_cb, &c, 0);
    return c.failed ? neg(EINVAL) : static_cast<u64>(n);
}

// Formats and emits one trace line; returns the formatted length, or -EINVAL for a bad format (then
// nothing is printed), as the kernel's bpf_trace_printk does.
u64 emit_trace(const char* fmt_str, std::span<const u64> args) {
    std::string line;
    if (!format_printk(fmt_str, args, line)) return neg(EINVAL);
    const u64 written = line.size();
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (const RuntimeState* rt = runtime_of(Invocation::current())) rt->trace(line);
    return written;
}

u64 trace_printk(u64 fmt_ptr, u64 fmt_size, u64 a1, u64 a2, u64 a3) {
    const auto* f = reinterpret_cast<const char*>(fmt_ptr);
    if (fmt_size == 0 || f[fmt_size - 1] != '\0') return neg(EINVAL);
    const u64 args[] = {a1, a2, a3};
    return emit_trace(f, args);
}

u64 trace_vprintk(u64 fmt_ptr, u64 fmt_size, u64 data, u64 data_len, u64) {
    const auto* f = reinterpret_cast<const char*>(fmt_ptr);
    if (fmt_size == 0 || f[fmt_size - 1] != '\0' || data_len % 8 != 0 || data_len / 8 > 12) return neg(EINVAL);
    return emit_trace(f, std::span(reinterpret_cast<const u64*>(data), data_len / 8));
}

constexpr std::array<Arg, 5> args(Arg a = Arg::none, Arg b = Arg::none, Arg c = Arg::none, Arg d = Arg::none,
                                  Arg e = Arg::none) {
    return {a, b, c, d, e};
}

}  // namespace

HelperFn runtime_map_lookup_elem() noexcept { return map_lookup_elem; }

}  // namespace ebpfrt::detail

namespace ebpfrt::jit {

DirectMapCall direct_map_call(std::uint32_t id, HelperFn fn) noexcept {
    namespace hid = helper_ids;
    if (id == hid::map_lookup_elem && fn == detail::map_lookup_elem)
        return {reinterpret_cast<const void*>(&ebpfrt_rt_map_lookup), 2};
    if (id == hid::map_update_elem && fn == detail::map_update_elem)
        return {reinterpret_cast<const void*>(&ebpfrt_rt_map_update), 4};
    if (id == hid::map_delete_elem && fn == detail::map_delete_elem)
        return {reinterpret_cast<const void*>(&ebpfrt_rt_map_delete), 2};
    return {};
}

}  // namespace ebpfrt::jit

namespace ebpfrt::detail {

void add_runtime_helpers(HelperTable& t) {
    namespace id = helper_ids;
    const auto any = Arg::scalar;
    auto add = [&](std::uint32_t hid, const char* name, HelperFn fn, std::array<Arg, 5> a) {
        t.set(hid, HelperProto{.name = name, .fn = fn, .args = a}).value();
    };
    add(id::map_lookup_elem, "map_lookup_elem", map_lookup_elem, args(any, any));
    add(id::map_update_elem, "map_update_elem", map_update_elem, args(any, any, any, any));
    add(id::map_delete_elem, "map_delete_elem", map_delete_elem, args(any, any));
    add(id::trace_printk, "trace_printk", trace_printk, args(Arg::mem_ro, Arg::size, any, any, any));
    add(id::tail_call, "tail_call", tail_call, args(any, any, any));
    add(id::perf_event_output, "perf_event_output", perf_event_output, args(any, any, any, any, any));
    add(id::get_stackid, "get_stackid", get_stackid, args(any, any, any));
    add(id::get_stack, "get_stack", get_stack, args(any, Arg::mem, Arg::size, any));
    add(id::map_push_elem, "map_push_elem", map_push_elem, args(any, any, any));
    add(id::map_pop_elem, "map_pop_elem", map_pop_elem, args(any, any));
    add(id::map_peek_elem, "map_peek_elem", map_peek_elem, args(any, any));
    add(id::spin_lock, "spin_lock", spin_lock, args(any));
    add(id::spin_unlock, "spin_unlock", spin_unlock, args(any));
    add(id::ringbuf_output, "ringbuf_output", ringbuf_output, args(any, any, any, any));
    add(id::ringbuf_reserve, "ringbuf_reserve", ringbuf_reserve, args(any, any, any));
    add(id::ringbuf_submit, "ringbuf_submit", ringbuf_submit, args(any, any));
    add(id::ringbuf_discard, "ringbuf_discard", ringbuf_discard, args(any, any));
    add(id::ringbuf_query, "ringbuf_query", ringbuf_query, args(any, any));
    add(id::for_each_map_elem, "for_each_map_elem", for_each_map_elem, args(any, any, any, any));
    add(id::trace_vprintk, "trace_vprintk", trace_vprintk, args(Arg::mem_ro, Arg::size, Arg::mem_ro, Arg::size));
    add(id::loop, "loop", loop, args(any, any, any, any));
    add(id::map_lookup_percpu_elem, "map_lookup_percpu_elem", map_lookup_percpu_elem, args(any, any, any));
}

}  // namespace ebpfrt::detail
