// ringbuf: the kernel's layout (positions, headers, busy/discard bits), reserve/submit/discard/output/
// query, wrap-around, a libbpf-style consumer, poll wake-ups. Cross-process tests are in multiprocess_test.

#include <thread>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::make_spec;

struct Ring {
    Arena arena = test::anon_arena();
    MapRef map;
    void* h;
    explicit Ring(std::uint32_t size = 4096)
        : map(arena.create_map(make_spec("events", MapType::ringbuf, 0, 0, size)).value()),
          h(map.program_handle()) {}
};

TEST(Ringbuf, ReserveSubmitConsume) {
    Ring r;
    auto rb = RingBuffer::from(r.map).value();
    EXPECT_EQ(maps::ringbuf_query(r.h, maps::rb_ring_size), 4096u);
    auto* p = static_cast<std::uint32_t*>(maps::ringbuf_reserve(r.h, 4, 0));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 8, 0u);
    *p = 0xabcd;
    // Reserved but not submitted: the consumer stops there.
    std::size_t seen = 0;
    auto cb = [&](std::span<const std::byte> d) {
        ++seen;
        EXPECT_EQ(d.size(), 4u);
        std::uint32_t v;
        std::memcpy(&v, d.data(), 4);
        EXPECT_EQ(v, 0xabcdu);
        return 0;
    };
    EXPECT_EQ(rb.consume(cb).value(), 0u);
    EXPECT_EQ(maps::ringbuf_query(r.h, maps::rb_avail_data), 16u);  // 8-byte header + 4 rounded up to 8
    maps::ringbuf_submit(p, 0);
    EXPECT_EQ(rb.consume(cb).value(), 1u);
    EXPECT_EQ(seen, 1u);
    EXPECT_EQ(maps::ringbuf_query(r.h, maps::rb_avail_data), 0u);
    EXPECT_EQ(maps::ringbuf_query(r.h, maps::rb_cons_pos), 16u);
    EXPECT_EQ(maps::ringbuf_query(r.h, maps::rb_prod_pos), 16u);
    EXPECT_EQ(maps::ringbuf_query(r.h, 99), 0u);
    // Discarded records are skipped.
    void* d = maps::ringbuf_reserve(r.h, 100, 0);
    ASSERT_NE(d, nullptr);
    maps::ringbuf_discard(d, 0);
    EXPECT_EQ(rb.consume(cb).value(), 0u);
    EXPECT_EQ(rb.available(), 0u);
    EXPECT_EQ(maps::ringbuf_reserve(r.h, 8, 1), nullptr);  // flags must be 0
}

TEST(Ringbuf, KernelLayout) {
    Ring r;
    auto* base = static_cast<std::byte*>(r.h);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(base) % 4096, 0u);
    std::uint32_t payload = 0x11223344;
    ASSERT_TRUE(r.map.output(test::bytes(payload)));
    // Find the data area as a libbpf consumer would: consumer page, producer page, then data, with the
    // record header's pg_off pointing back to the start of the map.
    auto* hdr = static_cast<std::byte*>(maps::ringbuf_reserve(r.h, 4, 0)) - 8;
    std::uint32_t pg_off;
    std::memcpy(&pg_off, hdr + 4, 4);
    std::uint32_t len;
    std::memcpy(&len, hdr, 4);
    EXPECT_EQ(len, 4u | maps::ringbuf_busy_bit);
    maps::ringbuf_discard(hdr + 8, 0);
    std::memcpy(&pg_off, hdr + 4, 4);
    std::memcpy(&len, hdr, 4);
    EXPECT_EQ(len, 4u | maps::ringbuf_discard_bit);
    std::byte* rb_start =
        reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(hdr) & ~std::uintptr_t{4095}) -
        std::size_t(pg_off) * 4096;
    EXPECT_EQ(rb_start, base);
    std::byte* data = hdr - 16;  // the first record: our output
    std::uint32_t first_len, first_payload;
    std::memcpy(&first_len, data, 4);
    std::memcpy(&first_payload, data + 8, 4);
    EXPECT_EQ(first_len, 4u);
    EXPECT_EQ(first_payload, payload);
    std::uint64_t cons, prod;
    std::memcpy(&cons, data - 2 * 4096, 8);
    std::memcpy(&prod, data - 4096, 8);
    EXPECT_EQ(cons, 0u);
    EXPECT_EQ(prod, 32u);
}

TEST(Ringbuf, FullAndWrapAround) {
    Ring r;  // 4096 bytes
    auto rb = RingBuffer::from(r.map).value();
    std::array<std::byte, 1000> rec{};
    int written = 0;
    while (r.map.output(rec)) ++written;
    EXPECT_EQ(written, 4);  // 4 * 1008 = 4032; a fifth would cross the 4095 limit
    auto full = r.map.output(rec);
    EXPECT_EQ(full.error().code(), Errc::out_of_memory);
    EXPECT_EQ(full.error().message(),
              "output map \"events\": the ring buffer is full (the record was dropped)");
    EXPECT_EQ(maps::ringbuf_output(r.h, rec.data(), rec.size(), 0), -EAGAIN);
    EXPECT_EQ(maps::ringbuf_output(r.h, rec.data(), rec.size(), 4), -EINVAL);
    EXPECT_EQ(maps::ringbuf_reserve(r.h, 4096, 0), nullptr);
    EXPECT_EQ(rb.consume([](auto) { return 0; }).value(), 4u);
    // Write and consume many records of varying size: they cross the end, without splitting.
    std::uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 2000; ++round) {
        std::size_t size = 8 + (round * 37) % 900;
        std::vector<std::byte> buf(size);
        std::memcpy(buf.data(), &next_in, 8);
        if (r.map.output(buf)) ++next_in;
        if (round % 3 == 0) {
            auto n = rb.consume([&](std::span<const std::byte> d) {
                std::uint64_t v;
                std::memcpy(&v, d.data(), 8);
                EXPECT_EQ(v, next_out);
                ++next_out;
                return 0;
            });
            ASSERT_TRUE(n);
        }
    }
    ASSERT_TRUE(rb.consume([&](std::span<const std::byte> d) {
        std::uint64_t v;
        std::memcpy(&v, d.data(), 8);
        EXPECT_EQ(v, next_out);
        ++next_out;
        return 0;
    }));
    EXPECT_EQ(next_out, next_in);
    EXPECT_EQ(maps::check_consistency(r.h), "");
}

TEST(Ringbuf, CallbackStops) {
    Ring r;
    auto rb = RingBuffer::from(r.map).value();
    for (std::uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(r.map.output(test::bytes(i)));
    std::vector<std::uint32_t> got;
    auto take = [&](std::span<const std::byte> d) {
        std::uint32_t v;
        std::memcpy(&v, d.data(), 4);
        got.push_back(v);
        return v == 1 ? 1 : 0;
    };
    EXPECT_EQ(rb.consume(take).value(), 2u);
    EXPECT_EQ(rb.consume(take).value(), 3u);
    EXPECT_EQ(got, (std::vector<std::uint32_t>{0, 1, 2, 3, 4}));
}

TEST(Ringbuf, PollWakesAcrossThreads) {
    Ring r(1u << 16);
    auto rb = RingBuffer::from(r.map).value();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(rb.poll(std::chrono::milliseconds(50), [](auto) { return 0; }).value(), 0u);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(45));
    std::thread producer([&] {
        for (std::uint32_t i = 0; i < 1000; ++i) {
            while (maps::ringbuf_output(r.h, &i, 4, 0) != 0) std::this_thread::yield();
            if (i % 100 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::uint32_t next = 0;
    while (next < 1000) {
        auto n = rb.poll(std::chrono::seconds(5), [&](std::span<const std::byte> d) {
            std::uint32_t v;
            std::memcpy(&v, d.data(), 4);
            EXPECT_EQ(v, next);
            ++next;
            return 0;
        });
        ASSERT_TRUE(n);
        ASSERT_GT(*n, 0u) << "poll timed out at record " << next;
    }
    producer.join();
}

TEST(Ringbuf, NotAKeyedMap) {
    Ring r;
    std::uint32_t k = 0, v = 0;
    EXPECT_EQ(r.map.raw_lookup(test::bytes(k), test::wbytes(v)), -EOPNOTSUPP);
    EXPECT_EQ(r.map.raw_update(test::bytes(k), test::bytes(v)), -EOPNOTSUPP);
    EXPECT_EQ(maps::map_lookup_elem(r.h, &k), nullptr);
    auto a = test::anon_arena();
    auto arr = a.create_map(make_spec("a", MapType::array, 4, 4, 1)).value();
    EXPECT_EQ(RingBuffer::from(arr).error().code(), Errc::invalid_argument);
    EXPECT_EQ(arr.output(test::bytes(v)).error().code(), Errc::invalid_argument);
}

}  // namespace
}  // namespace ebpfrt
