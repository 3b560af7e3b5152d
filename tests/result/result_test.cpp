#include <ebpfrt/result.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace ebpfrt {
namespace {

Result<int> parse_positive(int v) {
    if (v <= 0) return Error(Errc::invalid_argument, "parse \"" + std::to_string(v) + "\": not positive");
    return v;
}

TEST(Result, HoldsValueOrError) {
    Result<int> ok = parse_positive(3);
    ASSERT_TRUE(ok.has_value());
    EXPECT_TRUE(static_cast<bool>(ok));
    EXPECT_EQ(*ok, 3);
    EXPECT_EQ(ok.value(), 3);

    Result<int> bad = parse_positive(-1);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), Errc::invalid_argument);
    EXPECT_EQ(bad.error().message(), "parse \"-1\": not positive");
    EXPECT_EQ(bad.value_or(7), 7);
    EXPECT_EQ(ok.value_or(7), 3);
}

TEST(Result, ValueOnErrorThrowsWithMessage) {
    Result<int> bad = Error(Errc::not_found, "map \"x\": not found");
    try {
        (void)bad.value();
        FAIL() << "value() did not throw";
    } catch (const BadResultAccess& e) {
        EXPECT_STREQ(e.what(), "map \"x\": not found");
        EXPECT_EQ(e.error().code(), Errc::not_found);
    }
    Result<void> bad_void = Error(Errc::busy, "busy");
    EXPECT_THROW(bad_void.value(), BadResultAccess);
}

TEST(Result, WrapAddsContextOnce) {
    Error e(Errc::bad_elf, "section \"maps\": truncated");
    Error w = e.wrap("load \"a.o\"");
    EXPECT_EQ(w.message(), "load \"a.o\": section \"maps\": truncated");
    EXPECT_EQ(w.code(), Errc::bad_elf);
    EXPECT_EQ(e.message(), "section \"maps\": truncated");  // const& overload leaves the original alone
    Error moved = std::move(e).wrap("x");
    EXPECT_EQ(moved.message(), "x: section \"maps\": truncated");
}

TEST(Result, AndThenChainsAndShortCircuits) {
    auto twice = [](int& v) { return Result<int>(v * 2); };
    EXPECT_EQ(parse_positive(4).and_then(twice).value(), 8);
    auto r = parse_positive(0).and_then([](int&) -> Result<int> {
        ADD_FAILURE() << "called on error";
        return 1;
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message(), "parse \"0\": not positive");

    // and_then into another type.
    auto s = parse_positive(5).and_then([](int& v) { return Result<std::string>(std::to_string(v)); });
    EXPECT_EQ(*s, "5");
}

TEST(Result, TransformMapsValueAndVoid) {
    auto r = parse_positive(6).transform([](int v) { return v + 0.5; });
    static_assert(std::is_same_v<decltype(r), Result<double>>);
    EXPECT_DOUBLE_EQ(*r, 6.5);
    int seen = 0;
    Result<void> v = parse_positive(2).transform([&](int x) { seen = x; });
    EXPECT_TRUE(v);
    EXPECT_EQ(seen, 2);
    Result<void> e = parse_positive(-2).transform([&](int x) { seen = x; });
    EXPECT_FALSE(e);
    EXPECT_EQ(seen, 2);
}

TEST(Result, OrElseRecovers) {
    auto r = parse_positive(-3).or_else([](const Error& err) -> Result<int> {
        EXPECT_EQ(err.code(), Errc::invalid_argument);
        return 42;
    });
    EXPECT_EQ(*r, 42);
    auto kept = parse_positive(3).or_else([](const Error&) -> Result<int> { return 0; });
    EXPECT_EQ(*kept, 3);
}

TEST(Result, MoveOnlyValues) {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(9);
    ASSERT_TRUE(r);
    std::unique_ptr<int> p = std::move(r).value();
    EXPECT_EQ(*p, 9);
    auto t = Result<std::unique_ptr<int>>(std::make_unique<int>(1)).transform([](std::unique_ptr<int>&& q) {
        return *q + 1;
    });
    EXPECT_EQ(*t, 2);
}

TEST(Result, VoidResult) {
    Result<void> ok;
    EXPECT_TRUE(ok.has_value());
    EXPECT_NO_THROW(ok.value());
    int calls = 0;
    auto next = ok.and_then([&] {
        ++calls;
        return Result<int>(1);
    });
    EXPECT_EQ(*next, 1);
    Result<void> bad = Error(Errc::io_error, "read \"f\": short read");
    auto skipped = bad.and_then([&] {
        ++calls;
        return Result<int>(1);
    });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(skipped.error().code(), Errc::io_error);
    auto fixed = bad.or_else([](const Error&) { return Result<void>{}; });
    EXPECT_TRUE(fixed);
}

TEST(Result, ErrorCodeInterop) {
    Error e(Errc::permission_denied, "attach: denied");
    std::error_code ec = e.error_code();
    EXPECT_EQ(ec.value(), static_cast<int>(Errc::permission_denied));
    EXPECT_STREQ(ec.category().name(), "ebpfrt");
    EXPECT_EQ(ec.message(), "permission_denied");
    EXPECT_EQ(to_string(Errc::verifier_rejected), "verifier_rejected");
}

TEST(Result, ConstAccess) {
    const Result<std::string> r = std::string("abc");
    EXPECT_EQ(r->size(), 3u);
    EXPECT_EQ(r.value(), "abc");
    const Result<std::string> e = Error(Errc::unsupported, "no");
    EXPECT_EQ(e.value_or("dflt"), "dflt");
    EXPECT_EQ(e.error().message(), "no");
}

}  // namespace
}  // namespace ebpfrt
