#include <ebpfrt/helpers.hpp>

#include <gtest/gtest.h>

namespace ebpfrt {
namespace {

std::uint64_t add2(std::uint64_t a, std::uint64_t b, std::uint64_t, std::uint64_t, std::uint64_t) { return a + b; }

TEST(HelperTable, AddFindAndDuplicate) {
    HelperTable t;
    ASSERT_TRUE(t.add(7, {.name = "add2", .fn = add2}));
    const HelperProto* h = t.find(7);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->name, "add2");
    EXPECT_EQ(h->fn(2, 3, 0, 0, 0), 5u);
    EXPECT_EQ(t.find(8), nullptr);

    auto dup = t.add(7, {.name = "other", .fn = add2});
    ASSERT_FALSE(dup);
    EXPECT_EQ(dup.error().code(), Errc::already_exists);
    EXPECT_EQ(dup.error().message(), "register helper 7 (\"other\"): id already taken by \"add2\"");

    ASSERT_TRUE(t.set(7, {.name = "replaced", .fn = add2}));
    EXPECT_EQ(t.find(7)->name, "replaced");
    EXPECT_EQ(t.helpers().size(), 1u);
}

TEST(HelperTable, RejectsBadPrototypes) {
    HelperTable t;
    auto no_fn = t.add(1, {.name = "nothing"});
    ASSERT_FALSE(no_fn);
    EXPECT_EQ(no_fn.error().message(), "register helper 1 (\"nothing\"): no function");

    auto lone_size = t.add(2, {.name = "bad", .fn = add2, .args = {Arg::size, Arg::none, Arg::none, Arg::none, Arg::none}});
    ASSERT_FALSE(lone_size);
    EXPECT_EQ(lone_size.error().message(), "register helper 2 (\"bad\"): argument 1 is a size but follows no memory argument");

    auto unsized = t.add(3, {.name = "unsized", .fn = add2,
                             .args = {Arg::mem, Arg::scalar, Arg::none, Arg::none, Arg::none}});
    ASSERT_FALSE(unsized);
    EXPECT_EQ(unsized.error().message(), "register helper 3 (\"unsized\"): argument 2 must be the size of argument 1");

    EXPECT_TRUE(t.add(4, {.name = "ok", .fn = add2, .args = {Arg::mem_ro, Arg::size, Arg::cstr, Arg::none, Arg::none}}));
    EXPECT_EQ(t.find(1), nullptr);
}

TEST(HelperTable, KfuncsAreSeparate) {
    HelperTable t;
    ASSERT_TRUE(t.add_kfunc(1234, {.name = "bpf_kfunc", .fn = add2}));
    EXPECT_NE(t.find_kfunc(1234), nullptr);
    EXPECT_EQ(t.find(1234), nullptr);
    EXPECT_EQ(t.add_kfunc(1234, {.name = "again", .fn = add2}).error().code(), Errc::already_exists);
}

}  // namespace
}  // namespace ebpfrt
