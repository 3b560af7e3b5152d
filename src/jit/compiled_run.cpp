// Runs of compiled programs (JIT or AOT) and the run-time support generated code calls
// (rt_abi.hpp). Faults raised by generated code end the run with longjmp back to the run's entry:
// generated frames hold nothing to unwind. No LLVM here.

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "jit/compiled.hpp"
#include "jit/rt_abi.hpp"
#include "vm/run_support.hpp"

namespace ebpfrt {
namespace {

using detail::JitHelper;
using detail::JitState;
using jit::RunHeader;

constexpr int max_tail_calls = 33;
constexpr std::size_t frame_bytes = isa::stack_size;


class JitRun final : public RunHeader, public Invocation {
public:
    JitRun(const JitState* st, std::span<std::byte> ctx) : st_(st), checked_(st->options.checked) {
        ctx_lo = reinterpret_cast<std::uint64_t>(ctx.data());
        ctx_hi = ctx_lo + ctx.size();
        budget_left = static_cast<std::int64_t>(st->options.insn_budget);
    }

    void grant(std::span<std::byte> region) noexcept override {
        if (!checked_ || region.empty()) return;
        try {
            granted_.add(reinterpret_cast<std::uintptr_t>(region.data()),
                         reinterpret_cast<std::uintptr_t>(region.data()) + region.size());
        } catch (...) {
        }
    }
    void grant(const StridedRegion& region) noexcept override {
        if (!checked_) return;
        try {
            granted_.add(region);
        } catch (...) {
        }
    }
    bool allowed(const void* p, std::size_t n) const noexcept override {
        return !checked_ || access_ok(reinterpret_cast<std::uintptr_t>(p), n);
    }
    bool tail_call(const Interpreter& target) noexcept override {
        if (tail_calls_ >= max_tail_calls) return false;
        ++tail_calls_;
        tail_ = &target;
        pending = 1;
        return true;
    }
    bool tail_call(const JitProgram& target) noexcept override {
        if (tail_calls_ >= max_tail_calls) return false;
        ++tail_calls_;
        tail_jit_ = detail::JitAccess::state(target);
        pending = 1;
        return true;
    }
    Result<std::uint64_t> call_function(std::uint64_t fn, const std::array<std::uint64_t, 5>& args) override;
    void* env() const noexcept override { return st_->options.env; }
    bool checked() const noexcept override { return checked_; }

    // Frames in use: frames[0..k] where frames[k] is the running frame.
    bool in_stack(std::uintptr_t a, std::size_t n, std::uintptr_t* hi_out = nullptr) const noexcept {
        for (std::size_t k = 0; k < 8; ++k) {
            const std::uintptr_t lo = frames[k];
            if (lo != 0 && a >= lo && a <= lo + frame_bytes && n <= lo + frame_bytes - a) {
                if (hi_out) *hi_out = lo + frame_bytes;
                return true;
            }
            if (lo == stack_lo) break;
        }
        return false;
    }
    bool access_ok(std::uintptr_t a, std::size_t n) const noexcept {
        if (in_stack(a, n)) return true;
        if (ctx_hi != ctx_lo && a >= ctx_lo && a <= ctx_hi && n <= ctx_hi - a) return true;
        for (const auto& r : st_->regions) {
            const auto lo = reinterpret_cast<std::uintptr_t>(r.data());
            if (a >= lo && a <= lo + r.size() && n <= lo + r.size() - a) return true;
        }
        return !granted_.empty() && granted_.contains(a, n);
    }
    bool cstr_ok(std::uintptr_t a) const noexcept {
        std::uintptr_t hi = 0;
        if (in_stack(a, 1, &hi)) {
        } else if (a >= ctx_lo && a < ctx_hi) {
            hi = ctx_hi;
        } else {
            for (const auto& r : st_->regions) {
                const auto lo = reinterpret_cast<std::uintptr_t>(r.data());
                if (a >= lo && a < lo + r.size()) hi = lo + r.size();
            }
            if (hi == 0) hi = granted_.find(a).second;
        }
        return hi != 0 && std::memchr(reinterpret_cast<const void*>(a), 0, hi - a) != nullptr;
    }

    // Ends the run with `e` (from a support function called by generated code).
    [[noreturn]] void raise(Errc code, std::string message) {
        error_.emplace(code, std::move(message));
        std::longjmp(*jmp_, 1);
    }
    std::string where(std::uint32_t insn) const {
        const std::size_t i = std::min<std::size_t>(insn, st_->insns.size() - 1);
        return fmt::format("insn {} ({})", i, isa::disassemble_one(st_->insns, i));
    }

    Result<std::uint64_t> start(const std::array<std::uint64_t, 5>& args) noexcept;

    // Makes the pending compiled tail-call target the running program: fresh frames, the same run
    // (so the chain limit and the budget carry over). Its entry function is then called or jumped to.
    detail::EntryFn enter_tail() noexcept {
        st_ = tail_jit_;
        tail_jit_ = nullptr;
        checked_ = st_->options.checked;
        stack_lo = 0;
        std::fill(std::begin(frames), std::end(frames), 0);
        return st_->entry;
    }

    const JitState* st_;
    bool checked_;
    detail::RegionSet granted_;
    std::optional<Error> error_;
    std::jmp_buf* jmp_ = nullptr;
    const Interpreter* tail_ = nullptr;
    const JitState* tail_jit_ = nullptr;
    int tail_calls_ = 0;
    bool unwinding_ = false;
    std::uint32_t callback_depth_ = 0;
};

JitRun* run_of(void* p) { return static_cast<JitRun*>(static_cast<RunHeader*>(p)); }

// Calls `fn` (a generated function) under its own jmp_buf; returns whether it finished normally.
bool guarded_call(JitRun& r, detail::EntryFn fn, const std::array<std::uint64_t, 5>& a, std::uint32_t depth,
                  std::uint64_t& result) {
    std::jmp_buf jb;
    std::jmp_buf* volatile saved = r.jmp_;
    r.jmp_ = &jb;
    if (setjmp(jb) == 0) {
        result = fn(a[0], a[1], a[2], a[3], a[4], static_cast<RunHeader*>(&r), depth);
        r.jmp_ = saved;
        return true;
    }
    r.jmp_ = saved;
    return false;
}

Result<std::uint64_t> JitRun::start(const std::array<std::uint64_t, 5>& args) noexcept {
    Invocation*& current = detail::current_invocation();
    Invocation* saved = current;
    current = this;
    std::uint64_t r0 = 0;
    bool ok = guarded_call(*this, st_->entry, args, 0, r0);
    // A tail call to compiled code: the target starts on a fresh frame with the same r1, within
    // this run (so the chain limit and the budget carry over).
    while (!ok && tail_jit_ != nullptr && !error_ && !unwinding_)
        ok = guarded_call(*this, enter_tail(), {args[0], 0, 0, 0, 0}, 0, r0);
    current = saved;
    if (ok) return r0;
    if (error_) return std::move(*error_);
    if (unwinding_) return std::uint64_t{0};
    if (tail_ != nullptr) {
        // Continue in the interpreted target with the same r1 (bpf_tail_call's ctx argument) and context,
        // and the chain's tail-call count and budget, as if one engine ran it all.
        auto ctx = std::span(reinterpret_cast<std::byte*>(ctx_lo), ctx_hi - ctx_lo);
        std::optional<std::int64_t> budget;
        if (st_->options.insn_budget != 0) budget = budget_left;
        return detail::continue_tail_call(*tail_, ctx, args[0], tail_calls_, budget);
    }
    return Error(Errc::invalid_argument, "run: ended without a result");
}

Result<std::uint64_t> JitRun::call_function(std::uint64_t fn, const std::array<std::uint64_t, 5>& args) {
    if (!std::binary_search(st_->functions.begin(), st_->functions.end(), fn))
        return Error(Errc::invalid_argument, fmt::format("call function 0x{:x}: not a function of the running program", fn));
    if (callback_depth_ + 1 >= isa::max_call_depth)
        return Error(Errc::invalid_argument, fmt::format("call function 0x{:x}: call depth exceeds {} frames", fn,
                                                         isa::max_call_depth));
    ++callback_depth_;
    const std::uint64_t saved_lo = stack_lo;
    std::uint64_t r0 = 0;
    const bool ok = guarded_call(*this, reinterpret_cast<detail::EntryFn>(fn), args, callback_depth_, r0);
    --callback_depth_;
    stack_lo = saved_lo;
    if (ok) return r0;
    // A fault, unwind or tail call inside the callback: the caller's program ends the same way once
    // the helper returns (generated code checks `pending` after every helper).
    pending = 1;
    if (error_) return *error_;
    return Error(Errc::invalid_argument, "call function: the callback ended the program");
}

Result<void> check_helper_args(JitRun& r, const JitHelper& h, const std::uint64_t a[5]) {
    for (std::size_t i = 0; i < 5; ++i) {
        if (h.args[i] == Arg::mem || h.args[i] == Arg::mem_ro) {
            const std::uint64_t n = i + 1 < 5 ? a[i + 1] : 0;
            if (n != 0 && !r.access_ok(a[i], n))
                return Error(Errc::invalid_argument,
                             fmt::format("helper \"{}\" argument {} ({} bytes at 0x{:x}) is outside the memory the "
                                         "program may access",
                                         h.name, i + 1, n, a[i]));
        } else if (h.args[i] == Arg::cstr && !r.cstr_ok(a[i])) {
            return Error(Errc::invalid_argument,
                         fmt::format("helper \"{}\" argument {} (0x{:x}) is not a string in memory the program may "
                                     "access",
                                     h.name, i + 1, a[i]));
        }
    }
    return {};
}

}  // namespace

// --- run-time support called by generated code ---

extern "C" void ebpfrt_rt_check(void* run, std::uint64_t addr, std::uint64_t size, std::uint32_t insn,
                                std::uint32_t kind) {
    JitRun* r = run_of(run);
    if (kind == jit::access_atomic && addr % size != 0)
        r->raise(Errc::invalid_argument,
                 fmt::format("{}: atomic access at 0x{:x} is not {}-byte aligned", r->where(insn), addr, size));
    if (!r->access_ok(addr, size))
        r->raise(Errc::invalid_argument,
                 fmt::format("{}: {} of {} bytes at 0x{:x} is outside the memory the program may access",
                             r->where(insn), kind == jit::access_read ? "read" : kind == jit::access_write ? "write" : "atomic access",
                             size, addr));
}

extern "C" void ebpfrt_rt_fault(void* run, std::uint32_t insn, std::uint32_t code) {
    JitRun* r = run_of(run);
    switch (code) {
    case jit::fault_budget:
        r->raise(Errc::invalid_argument, fmt::format("{}: instruction budget of {} exhausted", r->where(insn),
                                                     r->st_->options.insn_budget));
    case jit::fault_depth:
        r->raise(Errc::invalid_argument, fmt::format("{}: call depth exceeds {} frames", r->where(insn), isa::max_call_depth));
    case jit::fault_stack:
        r->raise(Errc::invalid_argument, fmt::format("{}: stack access outside the 512-byte frame", r->where(insn)));
    default: r->raise(Errc::invalid_argument, fmt::format("{}: control leaves the function", r->where(insn)));
    }
}

extern "C" void ebpfrt_rt_check_helper(void* run, std::uint32_t insn, std::uint32_t helper, std::uint64_t r1,
                                       std::uint64_t r2, std::uint64_t r3, std::uint64_t r4, std::uint64_t r5) {
    JitRun* r = run_of(run);
    const std::uint64_t a[5] = {r1, r2, r3, r4, r5};
    if (auto ok = check_helper_args(*r, r->st_->helpers[helper], a); !ok)
        r->raise(Errc::invalid_argument, fmt::format("{}: {}", r->where(insn), ok.error().message()));
}

extern "C" void ebpfrt_rt_after_helper(void* run, std::uint32_t insn) {
    JitRun* r = run_of(run);
    (void)insn;
    r->pending = 0;
    std::longjmp(*r->jmp_, 1);  // start() sorts out fault, unwind or tail call
}

extern "C" void* ebpfrt_rt_tail_entry(void* run) {
    JitRun* r = run_of(run);
    if (r->tail_jit_ == nullptr || r->error_ || r->unwinding_) return nullptr;
    r->pending = 0;
    return reinterpret_cast<void*>(r->enter_tail());
}

extern "C" void ebpfrt_rt_unwind(void* run) {
    JitRun* r = run_of(run);
    r->unwinding_ = true;
    std::longjmp(*r->jmp_, 1);
}

extern "C" std::uint64_t ebpfrt_rt_callx(void* run, std::uint64_t target, std::uint64_t r1, std::uint64_t r2,
                                         std::uint64_t r3, std::uint64_t r4, std::uint64_t r5, std::uint32_t depth,
                                         std::uint32_t insn) {
    JitRun* r = run_of(run);
    const JitState* st = r->st_;
    if (std::binary_search(st->functions.begin(), st->functions.end(), target)) {
        if (depth + 1 >= isa::max_call_depth) ebpfrt_rt_fault(run, insn, jit::fault_depth);
        return reinterpret_cast<detail::EntryFn>(target)(r1, r2, r3, r4, r5, run, depth + 1);
    }
    auto it = std::lower_bound(st->by_id.begin(), st->by_id.end(), target,
                               [](const auto& e, std::uint64_t id) { return e.first < id; });
    if (it == st->by_id.end() || it->first != target)
        r->raise(Errc::invalid_argument,
                 fmt::format("{}: callx target 0x{:x} is neither a helper id nor a function", r->where(insn), target));
    const JitHelper& h = it->second;
    const std::uint64_t a[5] = {r1, r2, r3, r4, r5};
    if (r->checked_)
        if (auto ok = check_helper_args(*r, h, a); !ok)
            r->raise(Errc::invalid_argument, fmt::format("{}: {}", r->where(insn), ok.error().message()));
    const std::uint64_t v = h.fn(r1, r2, r3, r4, r5);
    if (h.unwind && v == 0) ebpfrt_rt_unwind(run);
    return v;
}

extern "C" std::uint64_t ebpfrt_rt_ldabs(void* run, std::uint64_t offset, std::uint32_t size) {
    JitRun* r = run_of(run);
    const std::uint64_t len = r->ctx_hi - r->ctx_lo;
    if (offset >= len || size > len - offset) {
        r->unwinding_ = true;  // out of bounds: the program ends with r0 = 0
        std::longjmp(*r->jmp_, 1);
    }
    const auto* p = reinterpret_cast<const unsigned char*>(r->ctx_lo + offset);
    std::uint64_t v = 0;
    for (std::uint32_t i = 0; i < size; ++i) v = (v << 8) | p[i];
    return v;
}

namespace detail {

Result<std::uint64_t> continue_tail_call(const JitProgram& target, std::span<std::byte> ctx, std::uint64_t r1,
                                         int& tail_calls, std::optional<std::int64_t>& budget_left) noexcept {
    const JitState* st = JitAccess::state(target);
    if (st == nullptr) return Error(Errc::invalid_argument, "tail call: an empty program");
    JitRun r(st, ctx);
    r.tail_calls_ = tail_calls;
    const bool budget = budget_left && st->options.insn_budget != 0;
    if (budget) r.budget_left = *budget_left;
    auto out = r.start({r1, 0, 0, 0, 0});
    tail_calls = r.tail_calls_;
    if (budget) budget_left = r.budget_left;
    return out;
}

}  // namespace detail

Result<std::uint64_t> JitProgram::run(std::span<std::byte> ctx) const noexcept {
    JitRun r(state_.get(), ctx);
    return r.start({reinterpret_cast<std::uint64_t>(ctx.data()), ctx.size(), 0, 0, 0});
}

Result<std::uint64_t> JitProgram::run_args(const std::array<std::uint64_t, 5>& args) const noexcept {
    JitRun r(state_.get(), {});
    return r.start(args);
}

std::size_t JitProgram::size() const noexcept { return state_->insns.size(); }
const VmOptions& JitProgram::options() const noexcept { return state_->options; }
double JitProgram::compile_us() const noexcept { return state_->compile_us; }

}  // namespace ebpfrt

