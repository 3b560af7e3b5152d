#pragma once
/// \file
/// Result<T>, Error and Errc: the error model of every ebpfrt API (see STYLE.md §2).
/// Shaped like std::expected<T, Error> so callers keep compiling when it becomes an alias.

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace ebpfrt {

/// What went wrong, coarse enough to branch on; the message says the rest.
enum class Errc {
    invalid_argument = 1,
    not_found,
    already_exists,
    bad_elf,
    verifier_rejected,
    unsupported,
    out_of_memory,
    permission_denied,
    io_error,
    busy,
};

/// Name of an Errc value ("invalid_argument", ...), or "unknown".
constexpr std::string_view to_string(Errc c) noexcept {
    switch (c) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::bad_elf: return "bad_elf";
    case Errc::verifier_rejected: return "verifier_rejected";
    case Errc::unsupported: return "unsupported";
    case Errc::out_of_memory: return "out_of_memory";
    case Errc::permission_denied: return "permission_denied";
    case Errc::io_error: return "io_error";
    case Errc::busy: return "busy";
    }
    return "unknown";
}

/// The std::error_category of Errc, for interop with std::error_code.
inline const std::error_category& error_category() noexcept {
    struct Category final : std::error_category {
        const char* name() const noexcept override { return "ebpfrt"; }
        std::string message(int v) const override { return std::string(to_string(static_cast<Errc>(v))); }
    };
    static const Category category;
    return category;
}

/// An error: a code and a one-line message shaped `<operation> <subject>: <what is wrong>`.
class Error {
public:
    Error(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

    Errc code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }

    /// The same error with `context` in front: "context: message". Each layer adds its part once.
    Error wrap(std::string_view context) const& { return Error(code_, join(context)); }
    Error wrap(std::string_view context) && {
        message_ = join(context);
        return std::move(*this);
    }

    /// The code as a std::error_code in error_category().
    std::error_code error_code() const noexcept { return {static_cast<int>(code_), error_category()}; }

    friend bool operator==(const Error&, const Error&) = default;

private:
    std::string join(std::string_view context) const {
        std::string s(context);
        s += ": ";
        s += message_;
        return s;
    }

    Errc code_;
    std::string message_;
};

/// Thrown by Result::value() on an error when exceptions are enabled.
class BadResultAccess : public std::runtime_error {
public:
    explicit BadResultAccess(Error e) : std::runtime_error(e.message()), error_(std::move(e)) {}
    const Error& error() const noexcept { return error_; }

private:
    Error error_;
};

namespace detail {
[[noreturn]] inline void bad_access(const Error& e) {
#if defined(__cpp_exceptions)
    throw BadResultAccess(e);
#else
    std::fputs(e.message().c_str(), stderr);
    std::abort();
#endif
}
template <class T> struct is_result : std::false_type {};
}  // namespace detail

template <class T> class Result;
namespace detail {
template <class T> struct is_result<Result<T>> : std::true_type {};
}  // namespace detail

/// A value of type T or an Error. Implicitly built from either.
template <class T> class [[nodiscard]] Result {
    static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
    static_assert(!std::is_same_v<std::remove_cv_t<T>, Error>, "Result<Error> is ambiguous");

public:
    using value_type = T;
    using error_type = Error;

    Result() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
    template <class U = T>
        requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, Result> &&
                 !std::is_same_v<std::remove_cvref_t<U>, Error>)
    Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    T& value() & {
        check();
        return *std::get_if<0>(&v_);
    }
    const T& value() const& {
        check();
        return *std::get_if<0>(&v_);
    }
    T&& value() && {
        check();
        return std::move(*std::get_if<0>(&v_));
    }

    /// The value, which must be present (checked only by the variant in debug builds).
    T& operator*() & noexcept { return *std::get_if<0>(&v_); }
    const T& operator*() const& noexcept { return *std::get_if<0>(&v_); }
    T&& operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
    T* operator->() noexcept { return std::get_if<0>(&v_); }
    const T* operator->() const noexcept { return std::get_if<0>(&v_); }

    /// The error; only valid when !has_value().
    Error& error() & noexcept { return *std::get_if<1>(&v_); }
    const Error& error() const& noexcept { return *std::get_if<1>(&v_); }
    Error&& error() && noexcept { return std::move(*std::get_if<1>(&v_)); }

    template <class U> T value_or(U&& fallback) const& {
        return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
    }
    template <class U> T value_or(U&& fallback) && {
        return has_value() ? std::move(**this) : static_cast<T>(std::forward<U>(fallback));
    }

    /// f(value) -> Result<U>; an error passes through unchanged.
    template <class F> auto and_then(F&& f) & { return and_then_impl(*this, std::forward<F>(f)); }
    template <class F> auto and_then(F&& f) const& { return and_then_impl(*this, std::forward<F>(f)); }
    template <class F> auto and_then(F&& f) && { return and_then_impl(std::move(*this), std::forward<F>(f)); }

    /// f(value) -> U, wrapped as Result<U> (Result<void> when f returns void).
    template <class F> auto transform(F&& f) & { return transform_impl(*this, std::forward<F>(f)); }
    template <class F> auto transform(F&& f) const& { return transform_impl(*this, std::forward<F>(f)); }
    template <class F> auto transform(F&& f) && { return transform_impl(std::move(*this), std::forward<F>(f)); }

    /// f(error) -> Result<T>; a value passes through unchanged.
    template <class F> Result or_else(F&& f) const& {
        if (has_value()) return *this;
        return std::invoke(std::forward<F>(f), error());
    }
    template <class F> Result or_else(F&& f) && {
        if (has_value()) return std::move(*this);
        return std::invoke(std::forward<F>(f), std::move(error()));
    }

private:
    void check() const {
        if (!has_value()) detail::bad_access(*std::get_if<1>(&v_));
    }

    // The value as f should receive it: like std::expected (T&& from an rvalue Result), except that an
    // rvalue Result may also feed a callable taking T& (`open(p).and_then([](auto& obj) {...})`).
    template <class Self, class F> static decltype(auto) arg_for(Self&& self) {
        if constexpr (std::is_invocable_v<F, decltype(*std::forward<Self>(self))>)
            return *std::forward<Self>(self);
        else
            return *self;
    }
    template <class Self, class F> using arg_t = decltype(arg_for<Self, F>(std::declval<Self>()));

    template <class Self, class F> static auto and_then_impl(Self&& self, F&& f) {
        using R = std::remove_cvref_t<std::invoke_result_t<F, arg_t<Self, F>>>;
        static_assert(detail::is_result<R>::value, "and_then: f must return a Result");
        if (!self.has_value()) return R(std::forward<Self>(self).error());
        return std::invoke(std::forward<F>(f), arg_for<Self, F>(std::forward<Self>(self)));
    }
    template <class Self, class F> static auto transform_impl(Self&& self, F&& f) {
        using U = std::remove_cvref_t<std::invoke_result_t<F, arg_t<Self, F>>>;
        if (!self.has_value()) return Result<U>(std::forward<Self>(self).error());
        if constexpr (std::is_void_v<U>) {
            std::invoke(std::forward<F>(f), arg_for<Self, F>(std::forward<Self>(self)));
            return Result<U>();
        } else {
            return Result<U>(std::invoke(std::forward<F>(f), arg_for<Self, F>(std::forward<Self>(self))));
        }
    }

    std::variant<T, Error> v_;
};

/// Success without a value, or an Error. `return {};` is success.
template <> class [[nodiscard]] Result<void> {
public:
    using value_type = void;
    using error_type = Error;

    Result() noexcept = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool has_value() const noexcept { return !failed_; }
    explicit operator bool() const noexcept { return !failed_; }
    void value() const {
        if (failed_) detail::bad_access(error_);
    }
    void operator*() const noexcept {}

    Error& error() & noexcept { return error_; }
    const Error& error() const& noexcept { return error_; }
    Error&& error() && noexcept { return std::move(error_); }

    /// f() -> Result<U>.
    template <class F> auto and_then(F&& f) const {
        using R = std::remove_cvref_t<std::invoke_result_t<F>>;
        static_assert(detail::is_result<R>::value, "and_then: f must return a Result");
        if (failed_) return R(error_);
        return std::invoke(std::forward<F>(f));
    }
    /// f() -> U, wrapped as Result<U>.
    template <class F> auto transform(F&& f) const {
        using U = std::remove_cvref_t<std::invoke_result_t<F>>;
        if (failed_) return Result<U>(error_);
        if constexpr (std::is_void_v<U>) {
            std::invoke(std::forward<F>(f));
            return Result<U>();
        } else {
            return Result<U>(std::invoke(std::forward<F>(f)));
        }
    }
    /// f(error) -> Result<void>.
    template <class F> Result or_else(F&& f) const {
        if (!failed_) return *this;
        return std::invoke(std::forward<F>(f), error_);
    }

private:
    Error error_{Errc::invalid_argument, {}};
    bool failed_ = false;
};

}  // namespace ebpfrt
