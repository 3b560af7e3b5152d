// Direct map calls: unchecked compiled code calls the runtime's map-level entries for helpers 1-3
// instead of the helpers (jit/rt_abi.hpp). They must give what the helpers give on every engine and
// in both modes (values, flags, errno results, per-CPU slots, LRU eviction, map-in-map handles), a
// host override of helper 1-3 must still be called, and the JIT must actually take the direct path.

#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/runtime.hpp>

#include <sched.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "jit/rt_abi.hpp"

namespace ebpfrt {
namespace {

using u64 = std::uint64_t;

constexpr u64 missing = ~0ull;  // what a script stores for a lookup that returned NULL
u64 err(int e) { return static_cast<u64>(-static_cast<std::int64_t>(e)); }

// A script of map helper calls, assembled into one program that stores each call's result in the
// context (u64 slot i for step i): r0 of update/delete, the u64 value a lookup points to (or
// `missing`). Maps are named by their program handle in a plain lddw, so no verifier or relocation is
// involved and every engine runs exactly the same code.
class Script {
public:
    void update(const MapRef& m, std::uint32_t key, std::int32_t value, std::int32_t flags) {
        key_on_stack(key);
        emit(isa::cls_st | isa::size_dw | isa::mode_mem, 10, 0, -16, value);
        map_in_r1(m);
        stack_ptr(2, -4);
        stack_ptr(3, -16);
        emit(isa::cls_alu64 | isa::op_mov | isa::src_k, 4, 0, 0, flags);
        call(helper_ids::map_update_elem);
        store_r0();
    }
    void erase(const MapRef& m, std::uint32_t key) {
        key_on_stack(key);
        map_in_r1(m);
        stack_ptr(2, -4);
        call(helper_ids::map_delete_elem);
        store_r0();
    }
    void lookup(const MapRef& m, std::uint32_t key) {
        key_on_stack(key);
        map_in_r1(m);
        stack_ptr(2, -4);
        call(helper_ids::map_lookup_elem);
        value_or_missing();
    }
    // Looks `outer_key` up in a map-in-map, then `key` in the inner map the lookup returned.
    void lookup_inner(const MapRef& outer, std::uint32_t outer_key, std::uint32_t key) {
        key_on_stack(outer_key);
        map_in_r1(outer);
        stack_ptr(2, -4);
        call(helper_ids::map_lookup_elem);
        emit(isa::cls_jmp | isa::op_jeq | isa::src_k, 0, 0, 8, 0);  // NULL: to the `missing` mov below
        emit(isa::cls_alu64 | isa::op_mov | isa::src_x, 1, 0, 0, 0);
        key_on_stack(key);
        stack_ptr(2, -4);
        call(helper_ids::map_lookup_elem);
        value_or_missing();
    }

    std::size_t steps() const { return steps_; }
    // The program: r6 = context, the steps, r0 = 0.
    std::vector<Insn> program() const {
        std::vector<Insn> p;
        p.push_back(insn(isa::cls_alu64 | isa::op_mov | isa::src_x, 6, 1, 0, 0));
        p.insert(p.end(), body_.begin(), body_.end());
        p.push_back(insn(isa::cls_alu64 | isa::op_mov | isa::src_k, 0, 0, 0, 0));
        p.push_back(insn(isa::opcode_exit, 0, 0, 0, 0));
        return p;
    }

private:
    static Insn insn(std::uint8_t opcode, unsigned dst, unsigned src, std::int16_t off, std::int32_t imm) {
        Insn i;
        i.opcode = opcode;
        i.dst = dst & 0xf;
        i.src = src & 0xf;
        i.offset = off;
        i.imm = imm;
        return i;
    }
    void emit(std::uint8_t opcode, unsigned dst, unsigned src, std::int16_t off, std::int32_t imm) {
        body_.push_back(insn(opcode, dst, src, off, imm));
    }
    void key_on_stack(std::uint32_t key) {
        emit(isa::cls_st | isa::size_w | isa::mode_mem, 10, 0, -4, static_cast<std::int32_t>(key));
    }
    void stack_ptr(unsigned reg, std::int32_t off) {
        emit(isa::cls_alu64 | isa::op_mov | isa::src_x, reg, 10, 0, 0);
        emit(isa::cls_alu64 | isa::op_add | isa::src_k, reg, 0, 0, off);
    }
    void map_in_r1(const MapRef& m) {
        const auto h = reinterpret_cast<u64>(m.program_handle());
        emit(isa::opcode_lddw, 1, isa::pseudo_imm64, 0,
             static_cast<std::int32_t>(static_cast<std::uint32_t>(h)));
        emit(0, 0, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(h >> 32)));
    }
    void call(std::uint32_t id) {
        emit(isa::opcode_call, 0, isa::call_helper, 0, static_cast<std::int32_t>(id));
    }
    void value_or_missing() {
        emit(isa::cls_jmp | isa::op_jeq | isa::src_k, 0, 0, 2, 0);
        emit(isa::cls_ldx | isa::size_dw | isa::mode_mem, 0, 0, 0, 0);
        emit(isa::cls_jmp | isa::op_ja, 0, 0, 1, 0);
        emit(isa::cls_alu64 | isa::op_mov | isa::src_k, 0, 0, 0, -1);
        store_r0();
    }
    void store_r0() {
        emit(isa::cls_stx | isa::size_dw | isa::mode_mem, 6, 0, static_cast<std::int16_t>(8 * steps_), 0);
        ++steps_;
    }

    std::vector<Insn> body_;
    std::size_t steps_ = 0;
};

struct Mode {
    Engine engine;
    bool checked;
    std::string name() const {
        return fmt::format("{} {}",
                           engine == Engine::jit   ? "jit"
                           : engine == Engine::aot ? "aot"
                                                   : "interpreter",
                           checked ? "checked" : "unchecked");
    }
};

std::vector<Mode> modes() {
    std::vector<Mode> m;
    for (Engine e : {Engine::interpreter, Engine::jit, Engine::aot}) {
        if (e == Engine::aot && !aot::compile_available()) continue;
        for (bool checked : {true, false}) m.push_back({e, checked});
    }
    return m;
}

// Per-CPU values are this CPU's slot: keep the thread on one CPU while a script runs.
class PinnedToOneCpu {
public:
    PinnedToOneCpu() {
        ok_ = sched_getaffinity(0, sizeof saved_, &saved_) == 0;
        cpu_set_t one;
        CPU_ZERO(&one);
        const int cpu = sched_getcpu();
        CPU_SET(cpu < 0 ? 0 : cpu, &one);
        if (ok_) sched_setaffinity(0, sizeof one, &one);
    }
    ~PinnedToOneCpu() {
        if (ok_) sched_setaffinity(0, sizeof saved_, &saved_);
    }
    PinnedToOneCpu(const PinnedToOneCpu&) = delete;
    PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;

private:
    cpu_set_t saved_{};
    bool ok_ = false;
};

MapSpec spec(const std::string& name, MapType type, std::uint32_t max_entries, std::uint32_t flags = 0) {
    MapSpec s;
    s.name = name;
    s.type = type;
    s.key_size = 4;
    s.value_size = 8;
    s.max_entries = max_entries;
    s.flags = flags;
    return s;
}

// Makes a fresh runtime and map for `mode`, writes the script for that map, runs it; returns the
// stored results.
template <class Write>
std::vector<u64> run_script(const Mode& mode, const MapSpec& s, Write write, RuntimeOptions options = {}) {
    options.engine = mode.engine;
    options.checked = mode.checked;
    options.verify = false;  // maps are plain lddw constants here, which the verifier does not take as maps
    auto rt = Runtime::create(std::move(options));
    if (!rt) throw std::runtime_error(rt.error().message());
    auto m = rt->create_map(s);
    if (!m) throw std::runtime_error(m.error().message());
    Script script;
    write(script, *m);
    const auto code = script.program();
    auto prog = rt->load_program("direct_maps", code);
    if (!prog) throw std::runtime_error(prog.error().message());
    std::vector<u64> out(script.steps(), 0xabababababababab);
    PinnedToOneCpu pin;
    auto r = prog->try_run(std::as_writable_bytes(std::span(out)));
    if (!r) throw std::runtime_error(r.error().message());
    return out;
}

// The flag and errno semantics every engine must show: update with BPF_ANY / BPF_NOEXIST / BPF_EXIST
// and bad flags, lookups of present and missing keys, deletes, and a full map.
void hash_like_script(Script& s, const MapRef& m) {
    s.update(m, 1, 10, update_flags::any);      // 0: 0
    s.update(m, 1, 11, update_flags::noexist);  // 1: -EEXIST (key exists)
    s.update(m, 2, 20, update_flags::exist);    // 2: -ENOENT (key missing)
    s.update(m, 1, 12, update_flags::exist);    // 3: 0
    s.update(m, 3, 30, 8);                      // 4: -EINVAL (unknown flag)
    s.lookup(m, 1);                             // 5: 12
    s.lookup(m, 2);                             // 6: missing
    s.update(m, 2, 20, update_flags::noexist);  // 7: 0
    s.update(m, 3, 30, update_flags::any);      // 8: 0
    s.update(m, 4, 40, update_flags::any);      // 9: 0 (4 entries: full)
    s.update(m, 5, 50, update_flags::any);      // 10: -E2BIG (hash), 0 (LRU evicts)
    s.update(m, 4, 41, update_flags::any);      // 11: 0 (replaces the value of a present key)
    s.erase(m, 1);                              // 12: 0 (hash), either (LRU: key 1 may be evicted)
    s.erase(m, 1);                              // 13: -ENOENT
    s.lookup(m, 1);                             // 14: missing
    s.lookup(m, 4);                             // 15: 41
}

void array_script(Script& s, const MapRef& m) {
    s.update(m, 1, 10, update_flags::any);      // 0: 0
    s.update(m, 1, 11, update_flags::noexist);  // 1: -EEXIST (array elements always exist)
    s.update(m, 2, 20, update_flags::exist);    // 2: 0
    s.update(m, 9, 90, update_flags::any);      // 3: -E2BIG (index out of range)
    s.update(m, 3, 30, 8);                      // 4: -EINVAL
    s.lookup(m, 1);                             // 5: 10
    s.lookup(m, 2);                             // 6: 20
    s.lookup(m, 3);                             // 7: 0 (zero-filled)
    s.lookup(m, 9);                             // 8: missing
    s.erase(m, 1);                              // 9: -EINVAL (arrays cannot delete)
    s.lookup(m, 1);                             // 10: 10
}

void expect_same_everywhere(const MapSpec& s, void (*write)(Script&, const MapRef&),
                            const std::vector<u64>& expected) {
    for (const Mode& mode : modes()) {
        SCOPED_TRACE(mode.name());
        EXPECT_EQ(run_script(mode, s, write), expected);
    }
}

TEST(JitDirectMapCalls, HashSameResultsOnEveryEngine) {
    const std::vector<u64> expected{0, err(EEXIST), err(ENOENT), 0, err(EINVAL), 12,          missing, 0,
                                    0, 0,           err(E2BIG),  0, 0,           err(ENOENT), missing, 41};
    expect_same_everywhere(spec("h", MapType::hash, 4), hash_like_script, expected);
    // Per-CPU: this CPU's slot, with the same flag semantics; the interpreter's checked run (the
    // generic helper with every check) is the reference.
    const MapSpec per_cpu = spec("ph", MapType::percpu_hash, 4);
    const auto reference = run_script({Engine::interpreter, true}, per_cpu, hash_like_script);
    EXPECT_EQ(reference[1], err(EEXIST));
    EXPECT_EQ(reference[2], err(ENOENT));
    EXPECT_EQ(reference[5], 12u);
    expect_same_everywhere(per_cpu, hash_like_script, reference);
}

TEST(JitDirectMapCalls, LruSameResultsOnEveryEngine) {
    // Key 5 evicts the least recently used key; which one is the map's policy, but it must be the same
    // on every engine and mode, since all call the same map code in the same order.
    for (MapType t : {MapType::lru_hash, MapType::lru_percpu_hash}) {
        SCOPED_TRACE(to_string(t));
        const MapSpec s = spec("lru", t, 4);
        const auto reference = run_script({Engine::interpreter, true}, s, hash_like_script);
        EXPECT_EQ(reference[10], 0u);  // an LRU map is never full
        EXPECT_EQ(reference[1], err(EEXIST));
        EXPECT_EQ(reference[2], err(ENOENT));
        EXPECT_EQ(reference[15], 41u);
        expect_same_everywhere(s, hash_like_script, reference);
    }
}

TEST(JitDirectMapCalls, ArraySameResultsOnEveryEngine) {
    const std::vector<u64> expected{0,  err(EEXIST), 0,       err(E2BIG),  err(EINVAL), 10,
                                    20, 0,           missing, err(EINVAL), 10};
    expect_same_everywhere(spec("a", MapType::array, 8), array_script, expected);
    const MapSpec per_cpu = spec("pa", MapType::percpu_array, 8);
    const auto reference = run_script({Engine::interpreter, true}, per_cpu, array_script);
    EXPECT_EQ(reference[1], err(EEXIST));
    EXPECT_EQ(reference[3], err(E2BIG));
    EXPECT_EQ(reference[5], 10u);
    expect_same_everywhere(per_cpu, array_script, reference);
}

TEST(JitDirectMapCalls, ReadOnlyForProgramsRefusesUpdateAndDelete) {
    auto write = [](Script& s, const MapRef& m) {
        s.update(m, 1, 10, update_flags::any);
        s.erase(m, 1);
        s.lookup(m, 1);
    };
    for (const Mode& mode : modes()) {
        SCOPED_TRACE(mode.name());
        EXPECT_EQ(run_script(mode, spec("ro", MapType::hash, 4, map_flags::rdonly_prog), write),
                  (std::vector<u64>{err(EPERM), err(EPERM), missing}));
    }
}

TEST(JitDirectMapCalls, MapInMapLookupGivesTheInnerMap) {
    for (const Mode& mode : modes()) {
        SCOPED_TRACE(mode.name());
        auto rt = Runtime::create({.engine = mode.engine, .verify = false, .checked = mode.checked}).value();
        MapSpec inner_spec = spec("inner", MapType::hash, 4);
        auto inner = rt.create_map(inner_spec).value();
        MapSpec outer_spec = spec("outer", MapType::array_of_maps, 2);
        outer_spec.value_size = 4;
        outer_spec.inner = std::make_shared<const MapSpec>(inner_spec);
        auto outer = rt.create_map(outer_spec).value();
        const std::uint32_t zero = 0, id = inner.id(), key = 7;
        const u64 value = 77;
        ASSERT_TRUE(outer.update(std::as_bytes(std::span(&zero, 1)), std::as_bytes(std::span(&id, 1))));
        ASSERT_TRUE(inner.update(std::as_bytes(std::span(&key, 1)), std::as_bytes(std::span(&value, 1))));
        Script s;
        s.lookup_inner(outer, 0, 7);  // 77
        s.lookup_inner(outer, 0, 8);  // missing in the inner map
        s.lookup_inner(outer, 1, 7);  // empty slot
        const auto code = s.program();
        auto prog = rt.load_program("inner", code).value();
        std::vector<u64> out(s.steps());
        auto r = prog.try_run(std::as_writable_bytes(std::span(out)));
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(out, (std::vector<u64>{77, missing, missing}));
    }
}

// --- a host override of helpers 1-3 is called, never bypassed ---

std::atomic<int> override_calls{0};
u64 fake_lookup(u64, u64, u64, u64, u64) {
    ++override_calls;
    return 0;
}
u64 fake_update(u64, u64, u64, u64, u64) {
    ++override_calls;
    return 7;
}
u64 fake_delete(u64, u64, u64, u64, u64) {
    ++override_calls;
    return 9;
}

TEST(JitDirectMapCalls, HostOverridesAreStillCalled) {
    HelperTable host;
    ASSERT_TRUE(host.set(helper_ids::map_lookup_elem, {.name = "fake_lookup", .fn = fake_lookup}));
    ASSERT_TRUE(host.set(helper_ids::map_update_elem, {.name = "fake_update", .fn = fake_update}));
    ASSERT_TRUE(host.set(helper_ids::map_delete_elem, {.name = "fake_delete", .fn = fake_delete}));
    auto write = [](Script& s, const MapRef& m) {
        s.update(m, 1, 10, update_flags::any);
        s.erase(m, 1);
        s.lookup(m, 1);
    };
    for (const Mode& mode : modes()) {
        SCOPED_TRACE(mode.name());
        override_calls = 0;
        EXPECT_EQ(run_script(mode, spec("h", MapType::hash, 4), write, {.helpers = host}),
                  (std::vector<u64>{7, 9, missing}));
        EXPECT_EQ(override_calls.load(), 3);
    }
}

// --- the JIT takes the direct path: unchecked code calls the entries, checked code the helpers ---

class JitDump {
public:
    JitDump() {
        setenv("EBPFRT_JIT_DUMP", "1", 1);
        ::testing::internal::CaptureStderr();
    }
    std::string finish() {
        std::string s = ::testing::internal::GetCapturedStderr();
        unsetenv("EBPFRT_JIT_DUMP");
        return s;
    }
};

TEST(JitDirectMapCalls, UncheckedJitCallsTheMapEntries) {
    auto rt = Runtime::create({.verify = false}).value();
    auto m = rt.create_map(spec("h", MapType::hash, 4)).value();
    const auto address = [](const void* p) { return fmt::format("i64 {} to ptr", reinterpret_cast<u64>(p)); };
    const std::string lookup = address(reinterpret_cast<const void*>(&jit::ebpfrt_rt_map_lookup));
    const std::string update = address(reinterpret_cast<const void*>(&jit::ebpfrt_rt_map_update));
    const std::string erase = address(reinterpret_cast<const void*>(&jit::ebpfrt_rt_map_delete));
    const std::string helper1 = address(reinterpret_cast<const void*>(rt.helpers().find(1)->fn));
    for (bool checked : {false, true}) {
        SCOPED_TRACE(checked ? "checked" : "unchecked");
        Script s;
        s.update(m, 1, checked ? 1 : 2, update_flags::any);  // a different program per mode: no cache hit
        s.lookup(m, 1);
        s.erase(m, 1);
        JitDump dump;
        auto jit = JitProgram::create(s.program(), rt.helpers(), {.checked = checked});
        const std::string ir = dump.finish();
        ASSERT_TRUE(jit) << jit.error().message();
        for (const auto& entry : {lookup, update, erase})
            EXPECT_EQ(ir.find(entry) != std::string::npos, !checked) << entry;
        EXPECT_EQ(ir.find(helper1) != std::string::npos, checked);
        if (checked) continue;  // checked helpers need the runtime's state (VmOptions::env): see above
        std::vector<u64> out(s.steps());
        auto r = jit->run(std::as_writable_bytes(std::span(out)));
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(out, (std::vector<u64>{0, 2, 0}));
    }
}

// --- checked mode skips the run-time check of accesses the verifier proved (VmOptions::proved) ---

TEST(JitProvedAccesses, ProvedLoadsAndStoresAreNotCheckedAtRunTime) {
    // A stack slot chosen by the context (a variable address, so the JIT checks it at run time
    // unless told it was proved), written, read back, and the result stored into the context.
    auto prog = isa::assemble(R"(
ldxdw %r3, [%r1+8]
and %r3, 7
lsh %r3, 3
mov %r2, %r10
add %r2, -64
add %r2, %r3
stdw [%r2+0], 42
ldxdw %r0, [%r2+0]
stxdw [%r1+0], %r0
exit
)");
    ASSERT_TRUE(prog) << prog.error().message();
    std::vector<bool> stack_only(prog->size(), false);
    stack_only[6] = stack_only[7] = true;  // the two stack accesses, which a verifier proves in bounds
    const std::string check =
        fmt::format("i64 {} to ptr", reinterpret_cast<u64>(reinterpret_cast<const void*>(&jit::ebpfrt_rt_check)));
    std::array<std::uint64_t, 2> out[2]{{0, 5}, {0, 5}};
    std::size_t checks[2]{};
    HelperTable none;
    for (int proved = 0; proved < 2; ++proved) {
        SCOPED_TRACE(proved ? "proved" : "not proved");
        VmOptions vo{.checked = true};  // the proved bits are part of the compile-cache key
        if (proved) vo.proved = stack_only;
        JitDump dump;
        auto jit = JitProgram::create(*prog, none, vo);
        const std::string ir = dump.finish();
        ASSERT_TRUE(jit) << jit.error().message();
        for (std::size_t at = ir.find(check); at != std::string::npos; at = ir.find(check, at + 1)) ++checks[proved];
        auto r = jit->run(std::as_writable_bytes(std::span(out[proved])));
        ASSERT_TRUE(r) << r.error().message();
    }
    // The context accesses keep their check; the stack ones lose theirs.
    EXPECT_GT(checks[1], 0u);
    EXPECT_GT(checks[0], checks[1]);
    EXPECT_EQ(out[0], out[1]);
    EXPECT_EQ(out[1][0], 42u);
}

// --- a tail call from the entry function is a jump (musttail), not a return to the run loop ---

TEST(JitTailCalls, EntryFunctionJumpsToTheTarget) {
    auto rt = Runtime::create({.engine = Engine::jit}).value();
    auto prog = isa::assemble(R"(
lddw %r2, 0
mov %r3, 0
call 12
mov %r0, 7
exit
)");
    ASSERT_TRUE(prog) << prog.error().message();
    JitDump dump;
    auto jit = JitProgram::create(*prog, rt.helpers(), {.checked = false});
    const std::string ir = dump.finish();
    ASSERT_TRUE(jit) << jit.error().message();
    EXPECT_NE(ir.find("musttail call"), std::string::npos) << "no tail jump in:\n" << ir.substr(0, 2000);
}

}  // namespace
}  // namespace ebpfrt
