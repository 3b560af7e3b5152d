// perf_event_array: PERF_RECORD_SAMPLE records per buffer, PERF_RECORD_LOST when full, wrap-around,
// the perf_event_mmap_page offsets, the consumer.

#include <thread>

#include <gtest/gtest.h>

#include "maps/maps_internal.hpp"
#include "test_util.hpp"

namespace ebpfrt {
namespace {

using test::make_spec;

TEST(PerfEventArray, SamplesPerBuffer) {
    auto a = test::anon_arena(8u << 20);
    auto ref = a.create_map(make_spec("events", MapType::perf_event_array, 4, 4, 0)).value();
    EXPECT_EQ(ref.max_entries(), MapRef::possible_cpus());  // 0 means one buffer per CPU, as libbpf does
    void* h = ref.program_handle();
    auto pb = PerfBuffer::from(ref).value();
    std::uint32_t v = 0x1234;
    EXPECT_EQ(maps::perf_event_output(h, 0, &v, 4), 0);
    EXPECT_EQ(maps::perf_event_output(h, maps::f_current_cpu, &v, 4), 0);
    EXPECT_EQ(maps::perf_event_output(h, ref.max_entries(), &v, 4), -E2BIG);
    EXPECT_EQ(maps::perf_event_output(h, std::uint64_t{1} << 32, &v, 4), -EINVAL);
    std::vector<std::pair<std::uint32_t, std::size_t>> got;
    auto n = pb.consume(
        [&](std::uint32_t cpu, std::span<const std::byte> raw) {
            got.emplace_back(cpu, raw.size());
            std::uint32_t x;
            std::memcpy(&x, raw.data(), 4);
            EXPECT_EQ(x, 0x1234u);
        },
        [](std::uint32_t, std::uint64_t) { ADD_FAILURE() << "nothing was lost"; });
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 2u);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].first, 0u);
    EXPECT_EQ(got[0].second, 4u);  // u32 size + 4 bytes = 8: no padding needed
    // The record in the buffer: perf_event_header{9, 0, 16}, u32 4, data.
    EXPECT_EQ(maps::check_consistency(h), "");
}

TEST(PerfEventArray, LostRecordsAndWrap) {
    auto a = test::anon_arena(8u << 20);
    auto ref = a.create_map(make_spec("events", MapType::perf_event_array, 4, 4, 1)).value();
    void* h = ref.program_handle();
    auto pb = PerfBuffer::from(ref).value();
    std::array<std::byte, 1001> rec{};  // 8 + 4 + 1001 -> raw padded to 1004, record 1016 bytes
    int ok = 0;
    while (maps::perf_event_output(h, 0, rec.data(), rec.size()) == 0) ++ok;
    EXPECT_EQ(ok, 65536 / 1016);
    for (int i = 0; i < 9; ++i) EXPECT_EQ(maps::perf_event_output(h, 0, rec.data(), rec.size()), -ENOSPC);
    auto r = ref.output(rec, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(),
              "output map \"events\": the perf buffer is full (the sample is counted as lost)");
    std::size_t samples = 0;
    std::uint64_t lost = 0;
    auto on_sample = [&](std::uint32_t, std::span<const std::byte> raw) {
        EXPECT_EQ(raw.size(), 1004u);
        ++samples;
    };
    auto on_lost = [&](std::uint32_t, std::uint64_t n) { lost += n; };
    ASSERT_TRUE(pb.consume(on_sample, on_lost));
    EXPECT_EQ(samples, static_cast<std::size_t>(ok));
    // The next sample is preceded by a LOST record with the count.
    std::uint64_t seq = 0;
    ASSERT_EQ(maps::perf_event_output(h, 0, &seq, 8), 0);
    samples = 0;
    ASSERT_TRUE(pb.consume(
        [&](std::uint32_t, std::span<const std::byte> raw) {
            EXPECT_EQ(raw.size(), 12u);
            ++samples;
        },
        on_lost));
    EXPECT_EQ(lost, 11u);  // the failed call that ended the loop counts too
    EXPECT_EQ(samples, 1u);
    // Records that wrap around the end arrive whole.
    std::uint64_t next_out = 1;
    for (seq = 1; seq < 5000; ++seq) {
        std::array<std::uint64_t, 40> big{};
        big.fill(seq);
        ASSERT_EQ(maps::perf_event_output(h, 0, big.data(), 8 * (1 + seq % 40)), 0);
        if (seq % 7 != 0) continue;
        ASSERT_TRUE(pb.consume(
            [&](std::uint32_t, std::span<const std::byte> raw) {
                std::size_t n = 1 + next_out % 40;
                ASSERT_EQ(raw.size(), 8 * n + 4);  // 8n bytes + 4 padding bytes
                for (std::size_t i = 0; i < n; ++i) {
                    std::uint64_t x;
                    std::memcpy(&x, raw.data() + 8 * i, 8);
                    ASSERT_EQ(x, next_out);
                }
                ++next_out;
            },
            on_lost));
    }
    ASSERT_TRUE(pb.consume([&](std::uint32_t, std::span<const std::byte>) { ++next_out; }, on_lost));
    EXPECT_EQ(next_out, 5000u);
    EXPECT_EQ(lost, 11u);  // the failed call that ended the loop counts too
}

TEST(PerfEventArray, MmapPageOffsetsAndSyscallSlots) {
    auto a = test::anon_arena(8u << 20);
    auto ref = a.create_map(make_spec("events", MapType::perf_event_array, 4, 4, 2)).value();
    std::uint32_t k = 1, fd = 5;
    ASSERT_TRUE(ref.update(test::bytes(k), test::bytes(fd)));
    EXPECT_EQ(ref.raw_update(test::bytes(k), test::bytes(fd), update_flags::noexist), -EINVAL);
    std::uint32_t out;
    EXPECT_EQ(ref.raw_lookup(test::bytes(k), test::wbytes(out)), -EOPNOTSUPP);
    ASSERT_TRUE(ref.erase(test::bytes(k)));
    EXPECT_EQ(ref.raw_erase(test::bytes(k)), -ENOENT);
    std::uint32_t next;
    ASSERT_TRUE(ref.next_key({}, test::wbytes(next)));
    EXPECT_EQ(next, 0u);
}

TEST(PerfEventArray, PollWakes) {
    auto a = test::anon_arena(8u << 20);
    auto ref = a.create_map(make_spec("events", MapType::perf_event_array, 4, 4, 1)).value();
    auto pb = PerfBuffer::from(ref).value();
    void* h = ref.program_handle();
    std::thread t([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::uint64_t v = 9;
        EXPECT_EQ(maps::perf_event_output(h, 0, &v, 8), 0);
    });
    std::size_t n = 0;
    for (int i = 0; i < 10 && n == 0; ++i)
        n = pb.poll(
                  std::chrono::seconds(2), [](std::uint32_t, std::span<const std::byte>) {},
                  [](std::uint32_t, std::uint64_t) {})
                .value();
    EXPECT_EQ(n, 1u);
    t.join();
}

}  // namespace
}  // namespace ebpfrt
