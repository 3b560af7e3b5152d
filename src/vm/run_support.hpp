#pragma once
// Pieces the engines share: the set of memory regions a checked run may touch, and the thread's
// current Invocation.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <ebpfrt/vm.hpp>

namespace ebpfrt::detail {

/// The innermost run on this thread that is inside a helper call (Invocation::current()).
Invocation*& current_invocation() noexcept;

/// Continues a chain of tail calls in an interpreted program (`target`), for compiled code that
/// tail-called it: the target runs on `ctx` with r1 = `r1`, `tail_calls` of the chain's 33 already used and,
/// when the chain runs under a budget, `budget_left` instructions left (as one interpreted chain would).
Result<std::uint64_t> continue_tail_call(const Interpreter& target, std::span<std::byte> ctx, std::uint64_t r1,
                                         int tail_calls, std::optional<std::int64_t> budget_left) noexcept;

/// The same for an interpreted program that tail-called compiled code (compiled_run.cpp). `tail_calls` and
/// `budget_left` go in as the chain's and come back as the compiled part left them: a tail call from an
/// interpreted subprogram returns to its caller, which goes on with them.
Result<std::uint64_t> continue_tail_call(const JitProgram& target, std::span<std::byte> ctx, std::uint64_t r1,
                                         int& tail_calls, std::optional<std::int64_t>& budget_left) noexcept;

/// Allowed memory as a union of disjoint intervals [start, end), and of strided regions (a map's values:
/// one grant per map and run instead of one interval per value looked up).
class RegionSet {
public:
    void add(const StridedRegion& r) {
        if (r.count == 0 || r.size == 0 || r.stride == 0 || r.offset + r.size > r.stride) return;
        const auto base = reinterpret_cast<std::uintptr_t>(r.base);
        for (const Strided& s : strided_)
            if (s.base == base && s.stride == r.stride && s.offset == r.offset && s.size == r.size &&
                s.span >= r.count * r.stride)
                return;
        strided_.push_back({base, r.count * r.stride, r.stride, r.offset, r.size});
    }
    void add(std::uintptr_t lo, std::uintptr_t hi) {
        if (lo >= hi) return;
        // Merge with every interval that overlaps or touches [lo, hi).
        auto it = set_.upper_bound(lo);
        if (it != set_.begin()) {
            auto prev = std::prev(it);
            if (prev->second >= lo) {
                if (prev->second >= hi) return;
                lo = prev->first;
                it = prev;
            }
        }
        while (it != set_.end() && it->first <= hi) {
            hi = std::max(hi, it->second);
            it = set_.erase(it);
        }
        set_.emplace(lo, hi);
        last_lo_ = lo;
        last_hi_ = hi;
    }
    bool contains(std::uintptr_t a, std::size_t n) const {
        if (a >= last_lo_ && a <= last_hi_ && n <= last_hi_ - a) return true;
        for (const Strided& s : strided_)
            if (auto [lo, hi] = s.window(a); hi != 0 && n <= hi - a) return true;
        auto it = set_.upper_bound(a);
        if (it == set_.begin()) return false;
        --it;
        if (a < it->first || a > it->second || n > it->second - a) return false;
        last_lo_ = it->first;
        last_hi_ = it->second;
        return true;
    }
    bool empty() const noexcept { return set_.empty() && strided_.empty(); }
    // The interval holding `a`, or {0, 0}.
    std::pair<std::uintptr_t, std::uintptr_t> find(std::uintptr_t a) const {
        for (const Strided& s : strided_)
            if (auto w = s.window(a); w.second != 0) return w;
        auto it = set_.upper_bound(a);
        if (it == set_.begin()) return {0, 0};
        --it;
        if (a >= it->second) return {0, 0};
        return *it;
    }

private:
    struct Strided {
        std::uintptr_t base, span, stride, offset, size;
        // The slot window holding `a`, or {0, 0}.
        std::pair<std::uintptr_t, std::uintptr_t> window(std::uintptr_t a) const noexcept {
            const std::uintptr_t d = a - base;
            if (a < base || d >= span) return {0, 0};
            const std::uintptr_t in = (stride & (stride - 1)) == 0 ? d & (stride - 1) : d % stride;
            if (in < offset || in >= offset + size) return {0, 0};
            const std::uintptr_t lo = a - in + offset;
            return {lo, lo + size};
        }
    };
    std::vector<Strided> strided_;
    std::map<std::uintptr_t, std::uintptr_t> set_;
    mutable std::uintptr_t last_lo_ = 1, last_hi_ = 0;
};

}  // namespace ebpfrt::detail
