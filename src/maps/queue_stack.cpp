// queue and stack: a ring of max_entries + 1 value slots under one robust lock
// (kernel/bpf/queue_stack_maps.c). A push writes the slot, then publishes the new head with one store; so a
// process dying in the middle leaves either the old or the new state, never a torn one.

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

struct QueueMap {
    MapHeader h;
    std::uint32_t size;  // max_entries + 1: one slot stays empty to tell full from empty
    std::uint32_t stride;
    std::atomic<std::uint32_t> head;  // next slot to push
    std::atomic<std::uint32_t> tail;  // oldest element
    std::uint64_t slots_off;
    RobustMutex lock;
};

QueueMap* qm(MapHeader* h) noexcept { return body<QueueMap>(h); }
std::byte* slot(QueueMap* q, std::uint32_t i) noexcept {
    return at(q, q->slots_off) + std::size_t(i) * q->stride;
}

bool is_empty(QueueMap* q) noexcept {
    return q->head.load(std::memory_order_relaxed) == q->tail.load(std::memory_order_relaxed);
}
bool is_full(QueueMap* q) noexcept {
    std::uint32_t next = q->head.load(std::memory_order_relaxed) + 1;
    if (next >= q->size) next = 0;
    return next == q->tail.load(std::memory_order_relaxed);
}

std::string check_queue(const MapSpec& s, int* err) {
    if (auto why = check_key_size(s, 0, err); !why.empty()) return why;
    if (auto why = check_nonzero(s, true, true, err); !why.empty()) return why;
    if (auto why = check_flags(s, map_flags::numa_node | access_flags, err); !why.empty()) return why;
    if (s.max_entries == 0xffffffffu) {
        *err = E2BIG;
        return fmt::format("max_entries {} is too large for {}", s.max_entries, to_string(s.type));
    }
    return {};
}

void layout_queue(const MapSpec& s, std::uint32_t, MapLayout& out) {
    out.header_align = 64;
    out.header_bytes =
        round_up(sizeof(QueueMap), 64) + (std::uint64_t{s.max_entries} + 1) * round_up(s.value_size, 8);
}

long init_queue(MapHeader* h, const MapSpec& s) noexcept {
    QueueMap* q = qm(h);
    q->size = s.max_entries + 1;
    q->stride = static_cast<std::uint32_t>(round_up(s.value_size, 8));
    new (&q->head) std::atomic<std::uint32_t>(0);
    new (&q->tail) std::atomic<std::uint32_t>(0);
    q->slots_off = round_up(sizeof(QueueMap), 64);
    q->lock.init();
    return 0;
}

// Nothing to repair after a dead owner: head and tail are each one store, slots are rewritten before use.
struct Guard {
    explicit Guard(QueueMap* q) noexcept : g(q->lock) {}
    LockGuard g;
};

long push(MapHeader* h, const void* value, std::uint64_t flags) noexcept {
    QueueMap* q = qm(h);
    if ((flags & update_flags::noexist) || flags > update_flags::exist) return -EINVAL;
    Guard g(q);
    if (is_full(q)) {
        if (!(flags & update_flags::exist)) return -E2BIG;
        // Overwrite: drop the oldest element (queue and stack alike, as the kernel does).
        std::uint32_t t = q->tail.load(std::memory_order_relaxed) + 1;
        q->tail.store(t >= q->size ? 0 : t, std::memory_order_release);
    }
    std::uint32_t hd = q->head.load(std::memory_order_relaxed);
    std::memcpy(slot(q, hd), value, h->value_size);
    q->head.store(hd + 1 >= q->size ? 0 : hd + 1, std::memory_order_release);
    return 0;
}

long queue_take(MapHeader* h, void* value, bool remove) noexcept {
    QueueMap* q = qm(h);
    Guard g(q);
    if (is_empty(q)) {
        std::memset(value, 0, h->value_size);
        return -ENOENT;
    }
    std::uint32_t t = q->tail.load(std::memory_order_relaxed);
    std::memcpy(value, slot(q, t), h->value_size);
    if (remove) q->tail.store(t + 1 >= q->size ? 0 : t + 1, std::memory_order_release);
    return 0;
}

long stack_take(MapHeader* h, void* value, bool remove) noexcept {
    QueueMap* q = qm(h);
    Guard g(q);
    if (is_empty(q)) {
        std::memset(value, 0, h->value_size);
        return -ENOENT;
    }
    std::uint32_t hd = q->head.load(std::memory_order_relaxed);
    std::uint32_t idx = hd == 0 ? q->size - 1 : hd - 1;
    std::memcpy(value, slot(q, idx), h->value_size);
    if (remove) q->head.store(idx, std::memory_order_release);
    return 0;
}

long queue_pop(MapHeader* h, void* v) noexcept { return queue_take(h, v, true); }
long queue_peek(MapHeader* h, void* v) noexcept { return queue_take(h, v, false); }
long stack_pop(MapHeader* h, void* v) noexcept { return stack_take(h, v, true); }
long stack_peek(MapHeader* h, void* v) noexcept { return stack_take(h, v, false); }

// The syscall maps lookup to peek and update to push; keys must be absent.
long queue_sys_lookup(MapHeader* h, const void* key, void* v, std::uint64_t) noexcept {
    return key ? -EINVAL : queue_peek(h, v);
}
long stack_sys_lookup(MapHeader* h, const void* key, void* v, std::uint64_t) noexcept {
    return key ? -EINVAL : stack_peek(h, v);
}
long sys_push(MapHeader* h, const void* key, const void* v, std::uint64_t flags) noexcept {
    return key ? -EINVAL : push(h, v, flags);
}

std::string check_queue_consistency(MapHeader* h) {
    QueueMap* q = qm(h);
    Guard g(q);
    if (q->head.load() >= q->size || q->tail.load() >= q->size)
        return fmt::format("head {} or tail {} out of range {}", q->head.load(), q->tail.load(), q->size);
    return {};
}

}  // namespace

const MapOps queue_ops = {
    .check = check_queue,
    .layout = layout_queue,
    .init = init_queue,
    .push = push,
    .pop = queue_pop,
    .peek = queue_peek,
    .sys_lookup = queue_sys_lookup,
    .sys_update = sys_push,
    .check_consistency = check_queue_consistency,
};

const MapOps stack_ops = {
    .check = check_queue,
    .layout = layout_queue,
    .init = init_queue,
    .push = push,
    .pop = stack_pop,
    .peek = stack_peek,
    .sys_lookup = stack_sys_lookup,
    .sys_update = sys_push,
    .check_consistency = check_queue_consistency,
};

}  // namespace ebpfrt::maps
