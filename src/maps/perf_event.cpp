// perf_event_array: one perf ring buffer per index (per CPU), laid out like a perf event's mmap: a
// metadata page with data_head/data_tail at the offsets of struct perf_event_mmap_page, then the data
// pages. bpf_perf_event_output writes PERF_RECORD_SAMPLE records {perf_event_header, u32 size, raw data
// padded to 8}; when a buffer is full the sample is counted and a PERF_RECORD_LOST record reports the
// count once there is room, as the kernel does. Records may wrap around the end (perf buffers are not
// double-mapped either); the consumer copies those, as libbpf's perf_buffer does.
//
// In the kernel each buffer has one writer at a time (its CPU, preemption off); threads in user space
// can be preempted or share a CPU, so each buffer has a robust lock. data_head is published last, so a
// writer that dies leaves the buffer as it was.

#include <algorithm>

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint64_t perf_data_pages = 16;  // data bytes per buffer: 64 KiB (libbpf's page_cnt)
constexpr std::uint64_t perf_data_size = perf_data_pages * page_size;
constexpr std::size_t lock_offset = 2048;  // past the fields of perf_event_mmap_page
constexpr std::size_t lost_offset = 2112;

struct PerfMap {
    MapHeader h;
    std::uint32_t n_bufs;
    std::uint32_t reserved;
    std::uint64_t data_size;
    std::uint64_t buf_stride;
    std::uint64_t bufs_off;  // first buffer's metadata page, from the header
    std::uint64_t tags_off;  // u32 per index: what the syscall stored (event fds in the kernel)
    std::atomic<std::uint32_t> wake_seq;
    std::atomic<std::uint32_t> waiters;
};

struct PerfHeader {  // struct perf_event_header
    std::uint32_t type;
    std::uint16_t misc;
    std::uint16_t size;
};

PerfMap* pm(MapHeader* h) noexcept { return body<PerfMap>(h); }
std::byte* meta(PerfMap* p, std::uint32_t i) noexcept { return at(p, p->bufs_off + i * p->buf_stride); }
std::byte* buf_data(PerfMap* p, std::uint32_t i) noexcept { return meta(p, i) + page_size; }
std::atomic<std::uint64_t>& data_head(PerfMap* p, std::uint32_t i) noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(meta(p, i) + perf_data_head_offset);
}
std::atomic<std::uint64_t>& data_tail(PerfMap* p, std::uint32_t i) noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(meta(p, i) + perf_data_tail_offset);
}
RobustMutex& buf_lock(PerfMap* p, std::uint32_t i) noexcept {
    return *reinterpret_cast<RobustMutex*>(meta(p, i) + lock_offset);
}
std::atomic<std::uint64_t>& lost_count(PerfMap* p, std::uint32_t i) noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(meta(p, i) + lost_offset);
}
std::atomic<std::uint32_t>* tag(PerfMap* p, std::uint32_t i) noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(at(p, p->tags_off)) + i;
}

// Copies n bytes to position pos of buffer i, wrapping at the end.
void put(PerfMap* p, std::uint32_t i, std::uint64_t pos, const void* src, std::uint64_t n) noexcept {
    std::uint64_t off = pos & (p->data_size - 1);
    std::uint64_t first = std::min(n, p->data_size - off);
    std::memcpy(buf_data(p, i) + off, src, first);
    if (first < n) std::memcpy(buf_data(p, i), static_cast<const std::byte*>(src) + first, n - first);
}
void put_zero(PerfMap* p, std::uint32_t i, std::uint64_t pos, std::uint64_t n) noexcept {
    static constexpr std::byte zeros[8] = {};
    if (n) put(p, i, pos, zeros, n);
}

std::string check_perf(const MapSpec& s, int* err) {
    if (s.value_size != 4) {
        *err = EINVAL;
        return fmt::format("value size {} is invalid for perf_event_array (must be 4)", s.value_size);
    }
    if (auto why = check_key_size(s, 4, err); !why.empty()) return why;
    if (auto why = check_nonzero(s, true, true, err); !why.empty()) return why;
    return check_flags(s, map_flags::numa_node | access_flags | map_flags::preserve_elems, err);
}

void layout_perf(const MapSpec& s, std::uint32_t, MapLayout& out) {
    out.header_align = page_size;
    std::uint64_t tags = round_up(std::uint64_t{s.max_entries} * 4, page_size);
    out.header_bytes =
        round_up(sizeof(PerfMap), page_size) + tags + s.max_entries * (page_size + perf_data_size);
}

long init_perf(MapHeader* h, const MapSpec& s) noexcept {
    PerfMap* p = pm(h);
    p->n_bufs = s.max_entries;
    p->data_size = perf_data_size;
    p->buf_stride = page_size + perf_data_size;
    p->tags_off = round_up(sizeof(PerfMap), page_size);
    p->bufs_off = p->tags_off + round_up(std::uint64_t{s.max_entries} * 4, page_size);
    new (&p->wake_seq) std::atomic<std::uint32_t>(0);
    new (&p->waiters) std::atomic<std::uint32_t>(0);
    for (std::uint32_t i = 0; i < p->n_bufs; ++i) {
        new (tag(p, i)) std::atomic<std::uint32_t>(0);
        new (&data_head(p, i)) std::atomic<std::uint64_t>(0);
        new (&data_tail(p, i)) std::atomic<std::uint64_t>(0);
        std::uint64_t v = page_size;
        std::memcpy(meta(p, i) + perf_data_offset_offset, &v, 8);
        v = p->data_size;
        std::memcpy(meta(p, i) + perf_data_size_offset, &v, 8);
        buf_lock(p, i).init();
        new (&lost_count(p, i)) std::atomic<std::uint64_t>(0);
    }
    return 0;
}

long perf_sys_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    if (flags != update_flags::any) return -EINVAL;
    std::uint32_t i, v;
    std::memcpy(&i, key, 4);
    std::memcpy(&v, value, 4);
    if (i >= h->max_entries) return -E2BIG;
    if (!v) return -EBADF;
    tag(pm(h), i)->store(v, std::memory_order_relaxed);
    return 0;
}

long perf_sys_delete(MapHeader* h, const void* key) noexcept {
    std::uint32_t i;
    std::memcpy(&i, key, 4);
    if (i >= h->max_entries) return -E2BIG;
    return tag(pm(h), i)->exchange(0, std::memory_order_relaxed) ? 0 : -ENOENT;
}

long perf_sys_lookup(MapHeader*, const void*, void*, std::uint64_t) noexcept { return -EOPNOTSUPP; }

long perf_next_key(MapHeader* h, const void* key, void* next) noexcept {
    std::uint32_t i = 0, n = 0;
    if (key) std::memcpy(&i, key, 4);
    if (!key || i >= h->max_entries)
        n = 0;
    else if (i == h->max_entries - 1)
        return -ENOENT;
    else
        n = i + 1;
    std::memcpy(next, &n, 4);
    return 0;
}

}  // namespace

long perf_event_output(void* map, std::uint64_t flags, const void* src, std::uint64_t size) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (h->type != MapType::perf_event_array) return -EINVAL;
    if (flags & ~f_index_mask) return -EINVAL;
    PerfMap* p = pm(h);
    std::uint64_t idx = flags & f_index_mask;
    if (idx == f_current_cpu) idx = current_cpu(MapRef::possible_cpus());
    if (idx >= p->n_bufs) return -E2BIG;
    auto i = static_cast<std::uint32_t>(idx);
    std::uint64_t raw_size = round_up(size + 4, 8) - 4;  // u32 size + data, padded to 8 (perf_output_sample)
    std::uint64_t rec_size = sizeof(PerfHeader) + 4 + raw_size;
    if (rec_size > 0xffff || rec_size > p->data_size) return -E2BIG;
    bool woke = false;
    {
        LockGuard g(buf_lock(p, i));  // a dead owner never published its record: nothing to repair
        std::uint64_t head = data_head(p, i).load(std::memory_order_relaxed);
        std::uint64_t tail = data_tail(p, i).load(std::memory_order_acquire);
        std::uint64_t avail = p->data_size - (head - tail);
        std::uint64_t lost = lost_count(p, i).load(std::memory_order_relaxed);
        std::uint64_t need = rec_size + (lost ? 24 : 0);
        if (need > avail) {
            lost_count(p, i).fetch_add(1, std::memory_order_relaxed);
            return -ENOSPC;
        }
        if (lost) {
            PerfHeader lh{perf_record_lost, 0, 24};
            std::uint64_t id = 0;
            put(p, i, head, &lh, 8);
            put(p, i, head + 8, &id, 8);
            put(p, i, head + 16, &lost, 8);
            head += 24;
            lost_count(p, i).store(0, std::memory_order_relaxed);
        }
        PerfHeader sh{perf_record_sample, 0, static_cast<std::uint16_t>(rec_size)};
        auto raw32 = static_cast<std::uint32_t>(raw_size);
        put(p, i, head, &sh, 8);
        put(p, i, head + 8, &raw32, 4);
        put(p, i, head + 12, src, size);
        put_zero(p, i, head + 12 + size, raw_size - size);
        // Publish: the consumer's acquire of data_head sees the whole record.
        data_head(p, i).store(head + rec_size, std::memory_order_release);
        woke = p->waiters.load(std::memory_order_seq_cst) != 0;
    }
    if (woke) {
        p->wake_seq.fetch_add(1, std::memory_order_seq_cst);
        futex_wake_all(&p->wake_seq);
    }
    return 0;
}

const MapOps perf_event_array_ops = {
    .check = check_perf,
    .layout = layout_perf,
    .init = init_perf,
    .sys_lookup = perf_sys_lookup,
    .sys_update = perf_sys_update,
    .sys_delete = perf_sys_delete,
    .sys_next_key = perf_next_key,
};

}  // namespace ebpfrt::maps

namespace ebpfrt {

using maps::PerfMap;

Result<PerfBuffer> PerfBuffer::from(MapRef map) {
    if (map.type() != MapType::perf_event_array)
        return Error(Errc::invalid_argument,
                     fmt::format("perf buffer \"{}\": map type {} is not perf_event_array", map.name(),
                                 to_string(map.type())));
    return PerfBuffer(std::move(map));
}

Result<std::size_t> PerfBuffer::consume(SampleCallback on_sample, LostCallback on_lost) {
    PerfMap* p = maps::pm(static_cast<maps::MapHeader*>(map_.program_handle()));
    std::size_t n = 0;
    for (std::uint32_t i = 0; i < p->n_bufs; ++i) {
        std::uint64_t head = maps::data_head(p, i).load(std::memory_order_acquire);
        std::uint64_t tail = maps::data_tail(p, i).load(std::memory_order_relaxed);
        const std::byte* base = maps::buf_data(p, i);
        std::uint64_t mask = p->data_size - 1;
        while (tail < head) {
            maps::PerfHeader ph;
            std::uint64_t off = tail & mask;
            if (off + 8 <= p->data_size) {
                std::memcpy(&ph, base + off, 8);
            } else {
                std::uint64_t first = p->data_size - off;
                std::memcpy(&ph, base + off, first);
                std::memcpy(reinterpret_cast<std::byte*>(&ph) + first, base, 8 - first);
            }
            if (ph.size < sizeof ph || ph.size > head - tail)
                return Error(Errc::io_error,
                             fmt::format("perf buffer \"{}\": buffer {} has a bad record of {} bytes",
                                         map_.name(), i, ph.size));
            const std::byte* rec = base + off;
            if (off + ph.size > p->data_size) {  // wraps: make it contiguous, as libbpf does
                scratch_.resize(ph.size);
                std::uint64_t first = p->data_size - off;
                std::memcpy(scratch_.data(), base + off, first);
                std::memcpy(scratch_.data() + first, base, ph.size - first);
                rec = scratch_.data();
            }
            if (ph.type == maps::perf_record_sample && ph.size >= 12) {
                std::uint32_t raw;
                std::memcpy(&raw, rec + 8, 4);
                if (raw > ph.size - 12u) raw = ph.size - 12u;
                on_sample(i, std::span<const std::byte>(rec + 12, raw));
            } else if (ph.type == maps::perf_record_lost && ph.size >= 24) {
                std::uint64_t lost;
                std::memcpy(&lost, rec + 16, 8);
                on_lost(i, lost);
            }
            ++n;
            tail += ph.size;
        }
        maps::data_tail(p, i).store(tail, std::memory_order_release);
    }
    return n;
}

Result<std::size_t> PerfBuffer::poll(std::chrono::milliseconds timeout, SampleCallback on_sample,
                                     LostCallback on_lost) {
    PerfMap* p = maps::pm(static_cast<maps::MapHeader*>(map_.program_handle()));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto n = consume(on_sample, on_lost);
        if (!n || *n > 0) return n;
        auto now = std::chrono::steady_clock::now();
        if (timeout.count() >= 0 && now >= deadline) return n;
        std::uint32_t seq = p->wake_seq.load(std::memory_order_seq_cst);
        p->waiters.fetch_add(1, std::memory_order_seq_cst);
        bool ready = false;
        for (std::uint32_t i = 0; i < p->n_bufs && !ready; ++i)
            ready = maps::data_head(p, i).load(std::memory_order_seq_cst) !=
                    maps::data_tail(p, i).load(std::memory_order_relaxed);
        if (!ready) {
            auto slice = std::chrono::nanoseconds(-1);
            if (timeout.count() >= 0) slice = deadline - now;
            maps::futex_wait(&p->wake_seq, seq, slice);
        }
        p->waiters.fetch_sub(1, std::memory_order_seq_cst);
    }
}

}  // namespace ebpfrt
