#pragma once
// Pieces the engines share: the set of memory regions a checked run may touch, and the thread's
// current Invocation.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <utility>

#include <ebpfrt/vm.hpp>

namespace ebpfrt::detail {

/// The innermost run on this thread that is inside a helper call (Invocation::current()).
Invocation*& current_invocation() noexcept;

/// Allowed memory as a union of disjoint intervals [start, end).
class RegionSet {
public:
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
        auto it = set_.upper_bound(a);
        if (it == set_.begin()) return false;
        --it;
        if (a < it->first || a > it->second || n > it->second - a) return false;
        last_lo_ = it->first;
        last_hi_ = it->second;
        return true;
    }
    bool empty() const noexcept { return set_.empty(); }
    // The interval holding `a`, or {0, 0}.
    std::pair<std::uintptr_t, std::uintptr_t> find(std::uintptr_t a) const {
        auto it = set_.upper_bound(a);
        if (it == set_.begin()) return {0, 0};
        --it;
        if (a >= it->second) return {0, 0};
        return *it;
    }

private:
    std::map<std::uintptr_t, std::uintptr_t> set_;
    mutable std::uintptr_t last_lo_ = 1, last_hi_ = 0;
};

}  // namespace ebpfrt::detail
