// ringbuf (kernel/bpf/ringbuf.c) in the kernel's layout: a consumer_pos page, a producer_pos page, then
// max_entries bytes of data; records are an 8-byte header {u32 len with BUSY/DISCARD bits, u32 pg_off}
// and their data, 8-byte aligned, so a consumer reads it as libbpf's ring_buffer does.
//
// The kernel maps the data area twice so that a record never wraps; a shared-memory segment cannot, so a
// record that would cross the end is preceded by a discarded padding record that fills the end, and
// starts at offset 0. Consumers skip discarded records anyway, so the layout stays the kernel's.
//
// Producers serialise reservation with a robust lock (the kernel's rb->spinlock) and commit with an atomic
// exchange of the length, without the lock. A producer that dies between reserve and commit would leave
// a BUSY record that stops the consumer forever, so each reservation takes one of 256 in-flight slots
// recording its pid; while the record is busy, pg_off's top byte names the slot (nothing reads pg_off
// before commit, which restores the kernel's value). A consumer stuck on a busy record checks the slots
// and discards the records of dead producers.

#include <pthread.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint32_t n_slots = 256;
constexpr std::uint32_t slot_shift = 24;  // pg_off bits 24..31: in-flight slot + 1 while busy
constexpr std::uint32_t pg_off_mask = (1u << slot_shift) - 1;

struct InFlight {
    std::atomic<std::int32_t> pid;
    std::uint32_t reserved;
    std::atomic<std::uint64_t> pos;
};

struct RingMap {
    MapHeader h;
    std::uint64_t mask;      // data size - 1
    std::uint64_t cons_off;  // consumer_pos page, from the header
    std::uint64_t prod_off;  // producer_pos page
    std::uint64_t data_off;
    std::atomic<std::uint32_t> wake_seq;  // futex word bumped by producers when a consumer sleeps
    std::atomic<std::uint32_t> waiters;
    RobustMutex lock;
    std::atomic<std::uint64_t> inflight_bits[n_slots / 64];
    InFlight slots[n_slots];
};

struct RecordHeader {
    std::uint32_t len;
    std::uint32_t pg_off;
};

RingMap* rm(MapHeader* h) noexcept { return body<RingMap>(h); }
std::atomic<std::uint64_t>& consumer_pos(RingMap* r) noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(at(r, r->cons_off));
}
std::atomic<std::uint64_t>& producer_pos(RingMap* r) noexcept {
    return *reinterpret_cast<std::atomic<std::uint64_t>*>(at(r, r->prod_off));
}
std::byte* data(RingMap* r) noexcept { return at(r, r->data_off); }
RecordHeader* header_at(RingMap* r, std::uint64_t pos) noexcept {
    return reinterpret_cast<RecordHeader*>(data(r) + (pos & r->mask));
}
std::atomic_ref<std::uint32_t> len_ref(RecordHeader* hdr) noexcept {
    return std::atomic_ref<std::uint32_t>(hdr->len);
}
std::uint32_t page_offset(RingMap* r, RecordHeader* hdr) noexcept {
    return static_cast<std::uint32_t>((reinterpret_cast<std::byte*>(hdr) - reinterpret_cast<std::byte*>(r)) /
                                      page_size);
}
std::uint64_t record_size(std::uint32_t len) noexcept {
    return round_up((len & ~(ringbuf_busy_bit | ringbuf_discard_bit)) + std::uint64_t{ringbuf_hdr_size}, 8);
}

// getpid() is a system call since glibc 2.25; cache it, refreshed in fork() children.
std::atomic<std::int32_t> cached_pid{0};
void reset_pid() noexcept { cached_pid.store(0, std::memory_order_relaxed); }
std::int32_t self_pid() noexcept {
    std::int32_t p = cached_pid.load(std::memory_order_relaxed);
    if (p) return p;
    static const int registered = pthread_atfork(nullptr, nullptr, reset_pid);
    (void)registered;
    p = static_cast<std::int32_t>(getpid());
    cached_pid.store(p, std::memory_order_relaxed);
    return p;
}

void wake(RingMap* r) noexcept {
    r->wake_seq.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&r->wake_seq);
}

void recover_locked(RingMap* r) noexcept {
    std::uint64_t prod = producer_pos(r).load(std::memory_order_relaxed);
    for (std::uint32_t s = 0; s < n_slots; ++s) {
        std::atomic<std::uint64_t>& word = r->inflight_bits[s / 64];
        std::uint64_t bit = std::uint64_t{1} << (s % 64);
        if (!(word.load(std::memory_order_acquire) & bit)) continue;
        std::int32_t pid = r->slots[s].pid.load(std::memory_order_relaxed);
        if (!process_dead(pid)) continue;
        std::uint64_t pos = r->slots[s].pos.load(std::memory_order_relaxed);
        if (pos < prod) {
            RecordHeader* hdr = header_at(r, pos);
            std::uint32_t len = len_ref(hdr).load(std::memory_order_acquire);
            if ((len & ringbuf_busy_bit) && (hdr->pg_off >> slot_shift) == s + 1) {
                hdr->pg_off &= pg_off_mask;
                len_ref(hdr).exchange((len & ~ringbuf_busy_bit) | ringbuf_discard_bit,
                                      std::memory_order_acq_rel);
            }
        }
        word.fetch_and(~bit, std::memory_order_acq_rel);
    }
}

std::string check_ringbuf(const MapSpec& s, int* err) {
    if (auto why = check_flags(s, 0, err); !why.empty()) return why;
    if (s.key_size != 0 || s.value_size != 0) {
        *err = EINVAL;
        return fmt::format("key size {} and value size {} are invalid for ringbuf (both must be 0)",
                           s.key_size, s.value_size);
    }
    if (!is_pow2(s.max_entries) || s.max_entries % page_size != 0) {
        *err = EINVAL;
        return fmt::format(
            "max_entries {} is invalid for ringbuf (must be a power of 2 multiple of the page size {})",
            s.max_entries, page_size);
    }
    return {};
}

std::uint64_t ctl_bytes() noexcept { return round_up(sizeof(RingMap), page_size); }

void layout_ringbuf(const MapSpec& s, std::uint32_t, MapLayout& out) {
    out.header_align = page_size;
    out.header_bytes = ctl_bytes() + 2 * page_size + s.max_entries;
}

long init_ringbuf(MapHeader* h, const MapSpec& s) noexcept {
    RingMap* r = rm(h);
    r->mask = s.max_entries - 1;
    r->cons_off = ctl_bytes();
    r->prod_off = ctl_bytes() + page_size;
    r->data_off = ctl_bytes() + 2 * page_size;
    new (&r->wake_seq) std::atomic<std::uint32_t>(0);
    new (&r->waiters) std::atomic<std::uint32_t>(0);
    r->lock.init();
    for (auto& w : r->inflight_bits) new (&w) std::atomic<std::uint64_t>(0);
    for (auto& sl : r->slots) new (&sl) InFlight{};
    new (&consumer_pos(r)) std::atomic<std::uint64_t>(0);
    new (&producer_pos(r)) std::atomic<std::uint64_t>(0);
    return 0;
}

long unsupported(MapHeader*, const void*) noexcept { return -EOPNOTSUPP; }
long unsupported_next(MapHeader*, const void*, void*) noexcept { return -EOPNOTSUPP; }
long unsupported_update(MapHeader*, const void*, const void*, std::uint64_t) noexcept { return -EOPNOTSUPP; }
long unsupported_lookup(MapHeader*, const void*, void*, std::uint64_t) noexcept { return -EOPNOTSUPP; }

std::string ringbuf_check_consistency(MapHeader* h) {
    RingMap* r = rm(h);
    LockGuard g(r->lock);
    std::uint64_t cons = consumer_pos(r).load(), prod = producer_pos(r).load();
    if (cons > prod || prod - cons > r->mask + 1)
        return fmt::format("consumer position {} and producer position {} are inconsistent", cons, prod);
    return {};
}

}  // namespace

void* ringbuf_reserve(void* map, std::uint64_t size, std::uint64_t flags) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (flags || h->type != MapType::ringbuf) return nullptr;
    RingMap* r = rm(h);
    if (size > 0xffffffffu / 4) return nullptr;  // RINGBUF_MAX_RECORD_SZ
    std::uint64_t len = round_up(size + ringbuf_hdr_size, 8);
    std::uint64_t ring = r->mask + 1;
    if (len > ring) return nullptr;
    std::uint64_t cons = consumer_pos(r).load(std::memory_order_acquire);
    LockGuard g(r->lock);
    if (g.owner_died()) recover_locked(r);  // a producer died mid-reserve: its header is not published
    std::uint64_t prod = producer_pos(r).load(std::memory_order_relaxed);
    std::uint64_t off = prod & r->mask;
    std::uint64_t pad = off + len > ring ? ring - off : 0;
    std::uint64_t new_prod = prod + pad + len;
    if (new_prod - cons > r->mask) return nullptr;  // the kernel keeps one byte free too
    std::uint32_t slot = n_slots;
    for (std::uint32_t w = 0; w < n_slots / 64 && slot == n_slots; ++w) {
        std::uint64_t bits = r->inflight_bits[w].load(std::memory_order_relaxed);
        if (~bits) {
            std::uint32_t b = static_cast<std::uint32_t>(__builtin_ctzll(~bits));
            r->slots[w * 64 + b].pid.store(self_pid(), std::memory_order_relaxed);
            r->slots[w * 64 + b].pos.store(prod + pad, std::memory_order_relaxed);
            r->inflight_bits[w].fetch_or(std::uint64_t{1} << b, std::memory_order_relaxed);
            slot = w * 64 + b;
        }
    }
    if (slot == n_slots) return nullptr;  // 256 records in flight
    if (pad) {
        RecordHeader* ph = header_at(r, prod);
        ph->pg_off = page_offset(r, ph);
        len_ref(ph).store(static_cast<std::uint32_t>(pad - ringbuf_hdr_size) | ringbuf_discard_bit,
                          std::memory_order_relaxed);
    }
    RecordHeader* hdr = header_at(r, prod + pad);
    hdr->pg_off = page_offset(r, hdr) | ((slot + 1) << slot_shift);
    len_ref(hdr).store(static_cast<std::uint32_t>(size) | ringbuf_busy_bit, std::memory_order_relaxed);
    // Pairs with the consumer's acquire of producer_pos: it sees the headers written above.
    producer_pos(r).store(new_prod, std::memory_order_release);
    return reinterpret_cast<std::byte*>(hdr) + ringbuf_hdr_size;
}

namespace {
void commit(void* sample, std::uint64_t flags, bool discard) noexcept {
    auto* hdr = reinterpret_cast<RecordHeader*>(static_cast<std::byte*>(sample) - ringbuf_hdr_size);
    std::uint32_t pg = hdr->pg_off;
    std::uint32_t slot = (pg >> slot_shift) - 1;
    // bpf_ringbuf_restore_from_rec: the map starts pg_off pages before the header's page.
    auto page = reinterpret_cast<std::uintptr_t>(hdr) & ~(std::uintptr_t{page_size} - 1);
    auto* r = reinterpret_cast<RingMap*>(page - std::uintptr_t{pg & pg_off_mask} * page_size);
    hdr->pg_off = pg & pg_off_mask;
    std::uint32_t len = len_ref(hdr).load(std::memory_order_relaxed);
    std::uint32_t new_len = (len & ~ringbuf_busy_bit) | (discard ? ringbuf_discard_bit : 0);
    len_ref(hdr).exchange(new_len, std::memory_order_acq_rel);  // full barrier, as the kernel's xchg
    if (slot < n_slots)
        r->inflight_bits[slot / 64].fetch_and(~(std::uint64_t{1} << (slot % 64)), std::memory_order_release);
    if (flags & rb_no_wakeup) return;
    if ((flags & rb_force_wakeup) || r->waiters.load(std::memory_order_seq_cst)) wake(r);
}
}  // namespace

void ringbuf_submit(void* data, std::uint64_t flags) noexcept { commit(data, flags, false); }
void ringbuf_discard(void* data, std::uint64_t flags) noexcept { commit(data, flags, true); }

long ringbuf_output(void* map, const void* src, std::uint64_t size, std::uint64_t flags) noexcept {
    if (flags & ~(rb_no_wakeup | rb_force_wakeup)) return -EINVAL;
    void* rec = ringbuf_reserve(map, size, 0);
    if (!rec) return -EAGAIN;
    std::memcpy(rec, src, size);
    commit(rec, flags, false);
    return 0;
}

std::uint64_t ringbuf_query(void* map, std::uint64_t flags) noexcept {
    auto* h = static_cast<MapHeader*>(map);
    if (h->type != MapType::ringbuf) return 0;
    RingMap* r = rm(h);
    switch (flags) {
    case rb_avail_data:
        return producer_pos(r).load(std::memory_order_acquire) -
               consumer_pos(r).load(std::memory_order_acquire);
    case rb_ring_size:
        return r->mask + 1;
    case rb_cons_pos:
        return consumer_pos(r).load(std::memory_order_acquire);
    case rb_prod_pos:
        return producer_pos(r).load(std::memory_order_acquire);
    default:
        return 0;
    }
}

const MapOps ringbuf_ops = {
    .check = check_ringbuf,
    .layout = layout_ringbuf,
    .init = init_ringbuf,
    .sys_lookup = unsupported_lookup,
    .sys_update = unsupported_update,
    .sys_delete = unsupported,
    .sys_next_key = unsupported_next,
    .check_consistency = ringbuf_check_consistency,
};

}  // namespace ebpfrt::maps

namespace ebpfrt {

using maps::RingMap;

Result<RingBuffer> RingBuffer::from(MapRef map) {
    if (map.type() != MapType::ringbuf)
        return Error(Errc::invalid_argument, fmt::format("ring buffer \"{}\": map type {} is not ringbuf",
                                                         map.name(), to_string(map.type())));
    return RingBuffer(std::move(map));
}

std::size_t RingBuffer::available() const noexcept {
    return static_cast<std::size_t>(maps::ringbuf_query(map_.program_handle(), maps::rb_avail_data));
}

Result<std::size_t> RingBuffer::consume(Callback fn) {
    RingMap* r = maps::rm(static_cast<maps::MapHeader*>(map_.program_handle()));
    std::uint64_t cons = maps::consumer_pos(r).load(std::memory_order_acquire);
    std::size_t n = 0;
    for (bool more = true; more;) {
        more = false;
        std::uint64_t prod = maps::producer_pos(r).load(std::memory_order_acquire);
        while (cons < prod) {
            maps::RecordHeader* hdr = maps::header_at(r, cons);
            std::uint32_t len = maps::len_ref(hdr).load(std::memory_order_acquire);
            if (len & maps::ringbuf_busy_bit) {
                // Not committed yet. If it stays so, its producer may have died: look after a while.
                auto now = std::chrono::steady_clock::now();
                if (stuck_pos_ != cons) {
                    stuck_pos_ = cons;
                    stuck_since_ = now;
                } else if (now - stuck_since_ > std::chrono::milliseconds(50)) {
                    {
                        maps::LockGuard g(r->lock);
                        maps::recover_locked(r);
                    }
                    stuck_since_ = now;
                    if (!(maps::len_ref(hdr).load(std::memory_order_acquire) & maps::ringbuf_busy_bit)) {
                        more = true;
                        continue;
                    }
                }
                return n;
            }
            more = true;
            cons += maps::record_size(len);
            bool stop = false;
            if (!(len & maps::ringbuf_discard_bit)) {
                auto* p = reinterpret_cast<const std::byte*>(hdr) + maps::ringbuf_hdr_size;
                ++n;
                stop = fn(std::span<const std::byte>(
                           p, len & ~(maps::ringbuf_busy_bit | maps::ringbuf_discard_bit))) != 0;
            }
            // Pairs with the producers' acquire of consumer_pos: the space is free once this is seen.
            maps::consumer_pos(r).store(cons, std::memory_order_release);
            if (stop) return n;
        }
    }
    return n;
}

Result<std::size_t> RingBuffer::poll(std::chrono::milliseconds timeout, Callback fn) {
    RingMap* r = maps::rm(static_cast<maps::MapHeader*>(map_.program_handle()));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto n = consume(fn);
        if (!n || *n > 0) return n;
        auto now = std::chrono::steady_clock::now();
        if (timeout.count() >= 0 && now >= deadline) return n;
        std::uint32_t seq = r->wake_seq.load(std::memory_order_seq_cst);
        r->waiters.fetch_add(1, std::memory_order_seq_cst);
        // Re-check after announcing ourselves: a commit before this point is seen here, one after it
        // sees waiters and bumps wake_seq, which makes futex_wait return at once.
        bool ready = maps::producer_pos(r).load(std::memory_order_seq_cst) !=
                     maps::consumer_pos(r).load(std::memory_order_relaxed);
        if (!ready) {
            // Sleep in slices so that a record left busy by a dead producer is noticed.
            auto slice = std::chrono::nanoseconds(std::chrono::milliseconds(100));
            if (timeout.count() >= 0) slice = std::min<std::chrono::nanoseconds>(slice, deadline - now);
            maps::futex_wait(&r->wake_seq, seq, slice);
        }
        r->waiters.fetch_sub(1, std::memory_order_seq_cst);
        if (ready) std::this_thread::yield();  // data is there but maybe not committed yet
    }
}

}  // namespace ebpfrt
