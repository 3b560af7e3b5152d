// Differential test of the three engines on real programs: every object of the shared corpus
// (EBPFRT_SHARED_DIR/corpus, INDEX.tsv; the broken files of ebpf-samples/invalid/ excluded) is loaded
// by one Runtime per engine (interpreter, JIT, AOT; checked mode, an instruction budget) and every
// loaded program runs on the same inputs on each. The interpreter is the reference: the JIT and the
// AOT engine must give the same outcome for every run (the same r0 and the same context bytes after
// the run, or a fault at the same instruction for the same reason), the same trace_printk lines, and
// leave every map with the same contents (ringbuf and perf_event_array records, queue/stack elements).
//
// Objects our runtime cannot load (unknown helper, map type that needs a kernel, ...) are skipped and
// counted by reason, but the load must fail the same way (same Errc, same reason) on all three
// engines. An object that failed only for want of helpers is then loaded a second time with a stub
// (returning -EOPNOTSUPP) for each missing helper id, so that the rest of its code is still compared.
//
// Determinism of the inputs, so that any difference is the engines':
// - Helpers whose results depend on the clock, the CPU, the process or the native stack (ktime_*,
//   get_prandom_u32, get_smp_processor_id, get_numa_node_id, get_current_pid_tgid/uid_gid/comm,
//   get_stackid, get_stack) are replaced, on every engine alike, by host helpers with the same
//   prototypes whose results are a pure function of the calls made so far in the run (their state is
//   reset before each run). Overriding them, rather than comparing only fault/no-fault for programs
//   that call them, keeps the r0, context and map comparison for the many tracing programs that read
//   the clock or the pid.
// - Hash-based maps get map_flags::zero_seed, so that buckets, iteration order and LRU eviction do not
//   depend on a random seed; the thread is pinned to one CPU while programs run, so that per-CPU map
//   slots and BPF_F_CURRENT_CPU perf buffers are the same for every engine (where pinning is refused,
//   per-CPU maps and perf buffers are not compared).
// - The context lives below 4 GiB (MAP_32BIT) at the same address for every engine, so that the
//   32-bit data/data_end fields of struct xdp_md and struct __sk_buff can point at a packet inside the
//   context: packet programs then parse real Ethernet/IP/TCP/UDP headers instead of faulting at once.
//
// Time: compiling costs the JIT and the AOT engine tens of ms per thousand instructions, so objects
// with more than `max_object_insns` instructions that load (or fail only in a program) are skipped and
// named in the output: the big cilium objects, most of the corpus's instructions, which alone take a
// minute or more. Those whose maps cannot be created (falco's probe.o, ...) cost nothing and are kept.
// EBPFRT_CORPUS_MAX_INSNS raises the cap for a manual run. Maps with more than `max_map_entries`
// entries are cut to that size, the same for every engine (creating a map zeroes it, and three copies
// of every 64K-entry map would cost more than the compiling).

#include <ebpfrt/aot.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/runtime.hpp>

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ebpfrt {
namespace {

using u64 = std::uint64_t;

const std::filesystem::path corpus_dir = std::filesystem::path(EBPFRT_SHARED_DIR) / "corpus";

constexpr u64 insn_budget = 1'000'000;       // ends the corpus's unbounded loops in a few ms
constexpr std::size_t ctx_size = 4096;       // larger than every program's context
constexpr std::size_t packet_offset = 1024;  // where the packet lies inside the context
constexpr std::size_t packet_size = 512;
constexpr int n_inputs = 4;
u64 input_seed = 0x9e37;  // EBPFRT_CORPUS_SEED changes it for a manual run
constexpr std::size_t max_object_insns = 6'000;
constexpr std::uint32_t max_map_entries = 1024;

// --- Deterministic replacements of the nondeterministic helpers ---------------------------------------

struct DetState {
    u64 clock = 0;
    u64 rng = 0;
};
DetState det;

void reset_det() { det = {1'000'000'000'000ull, 0x9e3779b97f4a7c15ull}; }

u64 det_clock(u64, u64, u64, u64, u64) { return det.clock += 1'000; }
u64 det_prandom(u64, u64, u64, u64, u64) {
    det.rng ^= det.rng << 13;
    det.rng ^= det.rng >> 7;
    det.rng ^= det.rng << 17;
    return det.rng & 0xffffffffu;
}
u64 det_zero(u64, u64, u64, u64, u64) { return 0; }
u64 det_pid_tgid(u64, u64, u64, u64, u64) { return (u64{4242} << 32) | 4243; }
u64 det_uid_gid(u64, u64, u64, u64, u64) { return (u64{1000} << 32) | 1000; }
u64 det_comm(u64 buf, u64 size, u64, u64, u64) {
    if (size == 0) return static_cast<u64>(-EINVAL);
    static constexpr char comm[] = "corpus-engines";
    std::memset(reinterpret_cast<void*>(buf), 0, size);
    std::memcpy(reinterpret_cast<void*>(buf), comm, std::min<std::size_t>(sizeof comm - 1, size - 1));
    return 0;
}
// No kernel stack in user space and no native user stack that the engines would share.
u64 det_stackid(u64, u64, u64, u64, u64) { return static_cast<u64>(-EFAULT); }
u64 det_stack(u64, u64 buf, u64 size, u64, u64) {
    std::memset(reinterpret_cast<void*>(buf), 0, size);
    return 0;
}

// The overrides, with the prototypes of the helpers they replace (so that checked mode checks the
// same arguments).
HelperTable deterministic_helpers() {
    namespace id = helper_ids;
    auto base = Runtime::create({}).value();
    HelperTable t;
    auto put = [&](std::uint32_t hid, HelperFn fn) {
        const HelperProto* p = base.helpers().find(hid);
        if (p == nullptr) return;
        HelperProto q = *p;
        q.fn = fn;
        t.set(hid, q).value();
    };
    for (auto hid : {id::ktime_get_ns, id::ktime_get_boot_ns, id::ktime_get_coarse_ns, id::ktime_get_tai_ns})
        put(hid, det_clock);
    put(id::get_prandom_u32, det_prandom);
    put(id::get_smp_processor_id, det_zero);
    put(id::get_numa_node_id, det_zero);
    put(id::get_current_pid_tgid, det_pid_tgid);
    put(id::get_current_uid_gid, det_uid_gid);
    put(id::get_current_comm, det_comm);
    put(id::get_stackid, det_stackid);
    put(id::get_stack, det_stack);
    // Should the runtime come to provide them: bpf_jiffies64 (118) and bpf_get_task_stack (141).
    put(118, det_clock);
    put(141, det_stack);
    return t;
}

// --- Inputs ---------------------------------------------------------------------------------------------

struct Rng {
    u64 s;
    u64 next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    void fill(std::byte* p, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(next() >> 24);
    }
};

enum class Layout { random, zeros, skb, xdp, raw };
enum class Proto { ipv4_tcp, ipv4_udp, ipv6_tcp };

void put16be(std::byte* p, std::uint16_t v) {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v);
}
void put32(std::byte* p, std::uint32_t v) { std::memcpy(p, &v, 4); }

// Ethernet + IP + TCP/UDP headers that pass the usual parsing checks; every other byte stays random.
void write_packet(std::byte* p, std::size_t len, Proto proto) {
    put16be(p + 12, proto == Proto::ipv6_tcp ? 0x86dd : 0x0800);
    std::byte* ip = p + 14;
    std::byte* l4 = nullptr;
    const std::uint8_t l4proto = proto == Proto::ipv4_udp ? 17 : 6;
    if (proto == Proto::ipv6_tcp) {
        ip[0] = std::byte{0x60};
        put16be(ip + 4, static_cast<std::uint16_t>(len - 14 - 40));
        ip[6] = std::byte{l4proto};
        ip[7] = std::byte{64};
        l4 = ip + 40;
    } else {
        ip[0] = std::byte{0x45};
        put16be(ip + 2, static_cast<std::uint16_t>(len - 14));
        put16be(ip + 6, 0);  // no fragment
        ip[8] = std::byte{64};
        ip[9] = std::byte{l4proto};
        l4 = ip + 20;
    }
    if (l4proto == 6) {
        l4[12] = std::byte{0x50};  // data offset 5
    } else {
        put16be(l4 + 4, static_cast<std::uint16_t>(len - static_cast<std::size_t>(l4 - p)));
    }
}

// The layouts of input i for a program of this type.
Layout layout_for(ProgType t, int i) {
    switch (t) {
    case ProgType::xdp: return i == 0 ? Layout::random : Layout::xdp;
    case ProgType::sched_cls:
    case ProgType::sched_act:
    case ProgType::cgroup_skb:
    case ProgType::lwt_in:
    case ProgType::lwt_out:
    case ProgType::lwt_xmit:
    case ProgType::sk_skb: return i == 0 ? Layout::random : Layout::skb;
    case ProgType::socket_filter: return i == 0 ? Layout::random : i == 1 ? Layout::skb : Layout::raw;
    case ProgType::unspec:  // old objects whose section names say nothing (cilium's "2/1", PREVAIL's "test")
        return std::array{Layout::random, Layout::skb, Layout::xdp, Layout::raw}[i];
    default: return i == 3 ? Layout::zeros : Layout::random;
    }
}

// Input i of a program: `base` is where the context will be when the program runs.
std::vector<std::byte> make_input(ProgType type, int i, std::uintptr_t base) {
    std::vector<std::byte> ctx(ctx_size);
    Rng rng{0x1234567ull * static_cast<u64>(i + 1) + input_seed};
    const Layout layout = layout_for(type, i);
    if (layout != Layout::zeros) rng.fill(ctx.data(), ctx.size());
    const Proto proto = std::array{Proto::ipv4_tcp, Proto::ipv4_tcp, Proto::ipv4_udp, Proto::ipv6_tcp}[i];
    const bool low = base != 0 && base + ctx_size <= 0xffffffffu;
    const auto data = static_cast<std::uint32_t>(base + packet_offset);
    const auto data_end = static_cast<std::uint32_t>(base + packet_offset + packet_size);
    switch (layout) {
    case Layout::xdp:  // struct xdp_md: data, data_end, data_meta (= data: no metadata)
        write_packet(ctx.data() + packet_offset, packet_size, proto);
        if (low) {
            put32(ctx.data() + 0, data);
            put32(ctx.data() + 4, data_end);
            put32(ctx.data() + 8, data);
        }
        break;
    case Layout::skb:  // struct __sk_buff: len @0, protocol @16, data @76, data_end @80, data_meta @140
        write_packet(ctx.data() + packet_offset, packet_size, proto);
        put32(ctx.data() + 0, packet_size);
        put16be(ctx.data() + 16, proto == Proto::ipv6_tcp ? 0x86dd : 0x0800);
        if (low) {
            put32(ctx.data() + 76, data);
            put32(ctx.data() + 80, data_end);
            put32(ctx.data() + 140, data);
        }
        break;
    case Layout::raw:  // the context is the packet (what ld_abs/ld_ind read)
        write_packet(ctx.data(), ctx_size, proto == Proto::ipv6_tcp ? Proto::ipv4_tcp : proto);
        break;
    case Layout::random:
    case Layout::zeros: break;
    }
    return ctx;
}

// A context buffer below 4 GiB where possible (so that 32-bit packet pointers reach it), else anywhere.
class CtxBuffer {
public:
    CtxBuffer() {
        void* p = MAP_FAILED;
#ifdef MAP_32BIT
        p = mmap(nullptr, ctx_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
#endif
        if (p == MAP_FAILED) p = mmap(nullptr, ctx_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p_ = p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    }
    ~CtxBuffer() {
        if (p_) munmap(p_, ctx_size);
    }
    CtxBuffer(const CtxBuffer&) = delete;
    CtxBuffer& operator=(const CtxBuffer&) = delete;
    std::span<std::byte> span() const { return {p_, ctx_size}; }
    std::uintptr_t low_base() const {
        auto a = reinterpret_cast<std::uintptr_t>(p_);
        return a + ctx_size <= 0xffffffffu ? a : 0;
    }

private:
    std::byte* p_ = nullptr;
};

// Pins the calling thread to one CPU of its affinity mask while it lives.
class PinToOneCpu {
public:
    PinToOneCpu() {
        if (sched_getaffinity(0, sizeof old_, &old_) != 0) return;
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &old_)) {
                CPU_SET(c, &one);
                break;
            }
        pinned_ = sched_setaffinity(0, sizeof one, &one) == 0;
    }
    ~PinToOneCpu() {
        if (pinned_) sched_setaffinity(0, sizeof old_, &old_);
    }
    PinToOneCpu(const PinToOneCpu&) = delete;
    PinToOneCpu& operator=(const PinToOneCpu&) = delete;
    bool pinned() const noexcept { return pinned_; }

private:
    cpu_set_t old_{};
    bool pinned_ = false;
};

// --- What a run and a load leave behind -----------------------------------------------------------------

struct RunOutcome {
    bool ok = false;
    u64 r0 = 0;
    std::string error;  // with addresses replaced by "0x?" (stack and map addresses differ by engine)
    std::vector<std::byte> ctx;
    std::vector<std::string> trace;
};

using Bytes = std::vector<std::byte>;
struct MapSnapshot {
    bool compared = true;  // false: contents not enumerable (bloom filter)
    std::vector<std::pair<Bytes, Bytes>> entries;  // sorted by key; records in order for ring/perf/queue
};

struct EngineRun {
    std::optional<Error> load_error;
    std::vector<std::string> programs;
    std::vector<ProgType> types;
    std::vector<std::vector<RunOutcome>> runs;  // [program][input]
    std::map<std::string, MapSnapshot> maps;
};

std::string hex(std::span<const std::byte> b, std::size_t max = 64) {
    std::string s;
    for (std::size_t i = 0; i < b.size() && i < max; ++i) s += fmt::format("{:02x}", static_cast<unsigned>(b[i]));
    if (b.size() > max) s += "...";
    return s;
}

std::string normalise(std::string msg) {
    static const std::regex addr("0x[0-9a-f]{6,}");
    return std::regex_replace(msg, addr, "0x?");
}

MapSnapshot snapshot(const MapRef& m) {
    MapSnapshot s;
    const std::size_t vsize = m.value_buffer_size();
    switch (m.type()) {
    case MapType::ringbuf: {
        auto rb = RingBuffer::from(m);
        if (!rb) break;
        (void)rb->consume([&](std::span<const std::byte> rec) {
            s.entries.emplace_back(Bytes{}, Bytes(rec.begin(), rec.end()));
            return 0;
        });
        return s;
    }
    case MapType::perf_event_array: {
        auto pb = PerfBuffer::from(m);
        if (!pb) break;
        (void)pb->consume(
            [&](std::uint32_t cpu, std::span<const std::byte> rec) {
                s.entries.emplace_back(Bytes{static_cast<std::byte>(cpu)}, Bytes(rec.begin(), rec.end()));
            },
            [&](std::uint32_t cpu, std::uint64_t lost) {
                s.entries.emplace_back(Bytes{static_cast<std::byte>(cpu), std::byte{0xff}},
                                       Bytes(reinterpret_cast<const std::byte*>(&lost),
                                             reinterpret_cast<const std::byte*>(&lost) + 8));
            });
        return s;
    }
    case MapType::queue:
    case MapType::stack: {
        Bytes v(vsize);
        while (m.pop(v)) s.entries.emplace_back(Bytes{}, v);
        return s;
    }
    case MapType::bloom_filter: s.compared = false; return s;
    default: break;
    }
    Bytes key(m.key_size()), next(m.key_size()), value(vsize);
    bool first = true;
    // Bounded: an LRU map or a map being iterated cannot loop us forever.
    for (std::size_t n = 0; n <= std::size_t{m.max_entries()} + 1; ++n) {
        auto r = first ? m.next_key({}, next) : m.next_key(key, next);
        if (!r) break;
        first = false;
        key = next;
        if (m.lookup(key, value)) s.entries.emplace_back(key, value);
    }
    std::sort(s.entries.begin(), s.entries.end());
    return s;
}

// --- Per-object work ------------------------------------------------------------------------------------

const char* engine_name(Engine e) { return e == Engine::jit ? "jit" : e == Engine::aot ? "aot" : "interpreter"; }

std::vector<std::string> trace_lines;

EngineRun run_on(Engine engine, const Object& obj, const HelperTable& overrides, CtxBuffer& buf) {
    EngineRun out;
    auto rt = Runtime::create({.engine = engine,
                               .checked = true,
                               .insn_budget = insn_budget,
                               .helpers = overrides,
                               .log = [](LogLevel, std::string_view) {},
                               .trace = [](std::string_view line) { trace_lines.emplace_back(line); }});
    if (!rt) {
        out.load_error = rt.error();
        return out;
    }
    auto coll = rt->load(obj);
    if (!coll) {
        out.load_error = coll.error();
        return out;
    }
    PinToOneCpu pin;
    for (const Program& p : coll->programs()) {
        out.programs.push_back(p.name());
        out.types.push_back(p.type());
        auto& runs = out.runs.emplace_back();
        for (int i = 0; i < n_inputs; ++i) {
            const auto in = make_input(p.type(), i, buf.low_base());
            std::memcpy(buf.span().data(), in.data(), in.size());
            reset_det();
            trace_lines.clear();
            auto r = p.try_run(buf.span());
            RunOutcome o;
            o.ok = r.has_value();
            if (r)
                o.r0 = *r;
            else
                o.error = fmt::format("{}: {}", to_string(r.error().code()), normalise(r.error().message()));
            o.ctx.assign(buf.span().begin(), buf.span().end());
            o.trace = std::move(trace_lines);
            runs.push_back(std::move(o));
        }
    }
    for (const auto& [name, m] : coll->maps()) {
        out.maps[name] = snapshot(m);
        // Unpinned, runs may have used several CPUs' slots and buffers, in an order no engine decides.
        if (!pin.pinned() && (m.per_cpu() || m.type() == MapType::perf_event_array)) out.maps[name].compared = false;
    }
    return out;
}

// Makes the object's maps deterministic and cheap: hash-based maps get a zero hash seed, and maps with
// more entries than the runs can fill are cut to `max_map_entries` (creating a map zeroes its memory:
// 64K-entry per-CPU maps, created three times per object, would cost more than compiling).
void prepare_maps(Object& obj) {
    for (auto& spec : obj.maps()) {
        switch (spec.type) {
        case MapType::hash:
        case MapType::lru_hash:
        case MapType::percpu_hash:
        case MapType::lru_percpu_hash:
        case MapType::bloom_filter: spec.flags |= map_flags::zero_seed; [[fallthrough]];
        case MapType::array:
        case MapType::percpu_array:
        case MapType::lpm_trie:
        case MapType::stack_trace:
        case MapType::hash_of_maps:
        case MapType::array_of_maps:
            if (spec.origin != MapOrigin::btf_maps && spec.origin != MapOrigin::legacy) break;
            spec.max_entries = std::min(spec.max_entries, max_map_entries);
            break;
        default: break;
        }
    }
}

// --- Index -----------------------------------------------------------------------------------------------

struct CorpusObject {
    std::string path;
    std::size_t n_insns = 0;
};

std::vector<CorpusObject> corpus_objects() {
    std::vector<CorpusObject> out;
    std::ifstream f(corpus_dir / "INDEX.tsv");
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
        std::vector<std::string> c;
        std::istringstream in(line);
        for (std::string cell; std::getline(in, cell, '\t');) c.push_back(cell);
        if (c.size() < 16 || c[0].find("/invalid/") != std::string::npos) continue;
        out.push_back({c[0], c[15].empty() ? 0 : std::stoul(c[15])});
    }
    return out;
}

// The part of a load error that says why, for the skip counts: "unknown helper 26", "map type ...".
std::string skip_reason(const Error& e) {
    static const std::regex helper("unknown helper [0-9]+"), kfunc("unknown kfunc"), undefined("calls undefined function");
    std::smatch m;
    const std::string& msg = e.message();
    if (msg.find("unknown helper 195896080") != std::string::npos)  // 0xbad2310: libbpf's CO-RE poison
        return "CO-RE relocation without a target (poisoned call 0xbad2310)";
    if (std::regex_search(msg, m, helper)) return m.str();
    if (std::regex_search(msg, m, kfunc)) return "unknown kfunc";
    if (std::regex_search(msg, m, undefined)) return "undefined function";
    auto colon = msg.rfind(": ");
    std::string tail = colon == std::string::npos ? msg : msg.substr(colon + 2);
    static const std::regex digits("[0-9]+");
    return fmt::format("{}: {}", to_string(e.code()), std::regex_replace(tail, digits, "N"));
}

// --- Stub helpers for a second pass -------------------------------------------------------------------

// What a stub returns: -EOPNOTSUPP, which programs treat as a failed helper call (a stub that returned
// 0 would let them read buffers the helper was meant to fill, i.e. uninitialised stack, whose bytes
// legitimately differ between engines).
u64 stub_helper(u64, u64, u64, u64, u64) { return static_cast<u64>(-EOPNOTSUPP); }

// `overrides` plus a stub for every helper id the object calls that the runtime does not provide, or
// nullopt when it calls none (then a load failure has another cause).
std::optional<HelperTable> with_stubs(const Object& obj, const HelperTable& overrides) {
    auto base = Runtime::create({.helpers = overrides}).value();
    HelperTable t = overrides;
    bool any = false;
    for (const auto& p : obj.programs())
        for (const Insn& in : p.insns)
            if (in.opcode == isa::opcode_call && in.src == isa::call_helper) {
                const auto hid = static_cast<std::uint32_t>(in.imm);
                if (base.helpers().find(hid) != nullptr || t.find(hid) != nullptr) continue;
                t.set(hid, HelperProto{.name = fmt::format("stub_{}", hid), .fn = stub_helper}).value();
                any = true;
            }
    if (!any) return std::nullopt;
    return t;
}

// --- Comparison -----------------------------------------------------------------------------------------

// Map contents that legitimately differ between engines, by object and map.
// - build/ringbuf_uninit.o (PREVAIL's INTENT.tsv: "passes uninitialized stack memory to
//   bpf_ringbuf_output"): its records are whatever the engine's stack held before; no engine defines
//   them (the interpreter's stack is not the JIT's native stack).
const std::set<std::pair<std::string, std::string>> undefined_map_contents = {
    {"ebpf-samples/build/ringbuf_uninit.o", "ring_buffer"},
};

const std::array engines{Engine::interpreter, Engine::jit, Engine::aot};

struct Counts {
    std::size_t objects = 0, programs = 0, runs = 0, faults = 0, maps = 0;
};

// Loads `obj` on every engine; the loads must fail the same way (same Errc, same reason) or all succeed.
// Returns the runs, or nullopt (with the failure in `why`) when the object did not load.
// `interpreter`: the interpreter's run when already made.
std::optional<std::array<EngineRun, 3>> load_everywhere(const Object& obj, const HelperTable& helpers, CtxBuffer& buf,
                                                        std::optional<Error>& why,
                                                        std::optional<EngineRun> interpreter = std::nullopt) {
    std::array<EngineRun, 3> r;
    for (std::size_t e = 0; e < 3; ++e)
        r[e] = e == 0 && interpreter ? std::move(*interpreter) : run_on(engines[e], obj, helpers, buf);
    for (std::size_t e = 1; e < 3; ++e) {
        SCOPED_TRACE(engine_name(engines[e]));
        EXPECT_EQ(r[e].load_error.has_value(), r[0].load_error.has_value())
            << "interpreter: " << (r[0].load_error ? r[0].load_error->message() : "loaded") << "\n"
            << engine_name(engines[e]) << ": " << (r[e].load_error ? r[e].load_error->message() : "loaded");
        if (r[0].load_error && r[e].load_error) {
            // The AOT engine words its messages differently ("compile \"ebpf_main\": ..."); the code and
            // the reason must agree.
            EXPECT_EQ(r[e].load_error->code(), r[0].load_error->code())
                << r[0].load_error->message() << "\n" << r[e].load_error->message();
            EXPECT_EQ(skip_reason(*r[e].load_error), skip_reason(*r[0].load_error))
                << r[0].load_error->message() << "\n" << r[e].load_error->message();
        }
    }
    if (r[0].load_error || r[1].load_error || r[2].load_error) {
        why = r[0].load_error ? r[0].load_error : r[1].load_error ? r[1].load_error : r[2].load_error;
        return std::nullopt;
    }
    return r;
}

// Compares every run and every map of engine `e` with the interpreter's.
void compare(const std::string& path, const EngineRun& ref, const EngineRun& got, Engine engine) {
    SCOPED_TRACE(engine_name(engine));
    const char* name = engine_name(engine);
    ASSERT_EQ(got.programs, ref.programs);
    for (std::size_t p = 0; p < ref.programs.size(); ++p) {
        for (int i = 0; i < n_inputs; ++i) {
            const RunOutcome& a = ref.runs[p][i];
            const RunOutcome& b = got.runs[p][i];
            const std::string where = fmt::format("program \"{}\" ({}), input {}", ref.programs[p],
                                                  to_string(ref.types[p]), i);
            auto show = [](const RunOutcome& o) { return o.ok ? fmt::format("r0 = {:#x}", o.r0) : o.error; };
            EXPECT_EQ(b.ok, a.ok) << where << "\ninterpreter: " << show(a) << "\n" << name << ": " << show(b);
            if (a.ok && b.ok) {
                EXPECT_EQ(b.r0, a.r0) << where;
            }
            if (!a.ok && !b.ok) {
                EXPECT_EQ(b.error, a.error) << where;
            }
            if (a.ctx != b.ctx) {
                std::size_t off = 0;
                while (a.ctx[off] == b.ctx[off]) ++off;
                const std::size_t n = std::min<std::size_t>(16, a.ctx.size() - off);
                ADD_FAILURE() << where << ": the context differs first at byte " << off << ": interpreter "
                              << hex(std::span(a.ctx).subspan(off, n)) << ", " << name << " "
                              << hex(std::span(b.ctx).subspan(off, n));
            }
            EXPECT_EQ(b.trace, a.trace) << where;
        }
    }
    ASSERT_EQ(got.maps.size(), ref.maps.size());
    for (const auto& [map, snap] : ref.maps) {
        const MapSnapshot& other = got.maps.at(map);
        if (!snap.compared || other.entries == snap.entries || undefined_map_contents.count({path, map})) continue;
        std::string first;
        for (std::size_t k = 0; k < std::max(snap.entries.size(), other.entries.size()); ++k) {
            if (k < snap.entries.size() && k < other.entries.size() && snap.entries[k] == other.entries[k]) continue;
            auto show = [&](const MapSnapshot& s) {
                return k < s.entries.size() ? hex(s.entries[k].first) + " -> " + hex(s.entries[k].second)
                                            : std::string("(none)");
            };
            first = fmt::format("entry {}: interpreter {}, {} {}", k, show(snap), name, show(other));
            break;
        }
        ADD_FAILURE() << "map \"" << map << "\": " << snap.entries.size() << " vs " << other.entries.size()
                      << " entries; " << first;
    }
}

// The interpreter's results of each program, for EBPFRT_CORPUS_VERBOSE.
std::vector<std::pair<std::string, std::string>> results_of(const EngineRun& ref) {
    std::vector<std::pair<std::string, std::string>> out;
    for (std::size_t p = 0; p < ref.programs.size(); ++p) {
        std::string line;
        for (const auto& o : ref.runs[p]) line += o.ok ? fmt::format("{:#x} ", o.r0) : "fault(" + o.error.substr(0, 80) + ") ";
        out.emplace_back(ref.programs[p], line);
    }
    return out;
}

void count(const EngineRun& ref, Counts& c) {
    ++c.objects;
    c.programs += ref.programs.size();
    for (const auto& runs : ref.runs)
        for (const auto& o : runs) {
            ++c.runs;
            c.faults += o.ok ? 0 : 1;
        }
    for (const auto& [name, snap] : ref.maps) c.maps += snap.compared ? 1 : 0;
}

// --- The test --------------------------------------------------------------------------------------------

// Knobs for investigating (not needed to run the test): EBPFRT_CORPUS_FILTER=<substring of a path> runs
// only matching objects, EBPFRT_CORPUS_MAX_INSNS=<n> changes the size cap, EBPFRT_CORPUS_SEED=<n> the
// random bytes of the inputs, and EBPFRT_CORPUS_VERBOSE=1 prints each object's time and each program's
// results on the interpreter.
TEST(CorpusEngines, EveryRunnableProgramGivesTheSameOutcomeOnEveryEngine) {
    if (!std::filesystem::exists(corpus_dir / "INDEX.tsv"))
        GTEST_SKIP() << "no corpus at " << corpus_dir.string() << " (set -DEBPFRT_SHARED_DIR)";
    if (!jit_available() || !aot::compile_available())
        GTEST_SKIP() << "built without LLVM: the interpreter has no other engine to be compared with";
    const auto objects = corpus_objects();
    ASSERT_GT(objects.size(), 100u);

    const char* filter = std::getenv("EBPFRT_CORPUS_FILTER");
    const char* max_env = std::getenv("EBPFRT_CORPUS_MAX_INSNS");
    const std::size_t max_insns = max_env ? std::stoul(max_env) : max_object_insns;
    const bool verbose = std::getenv("EBPFRT_CORPUS_VERBOSE") != nullptr;
    if (const char* seed = std::getenv("EBPFRT_CORPUS_SEED")) input_seed = std::stoull(seed);

    const HelperTable overrides = deterministic_helpers();
    CtxBuffer buf;
    ASSERT_NE(buf.span().data(), nullptr);

    Counts as_is, stubbed;
    std::map<std::string, std::size_t> skipped, stub_skipped;  // reason -> objects
    std::vector<std::string> too_large;
    const auto t0 = std::chrono::steady_clock::now();

    for (const auto& co : objects) {
        if (filter && co.path.find(filter) == std::string::npos) continue;
        SCOPED_TRACE(co.path);
        auto opened = Object::open((corpus_dir / co.path).string());
        ASSERT_TRUE(opened) << opened.error().message();
        Object obj = std::move(*opened);
        prepare_maps(obj);
        std::optional<EngineRun> interpreter;
        if (co.n_insns > max_insns) {
            // Too large to compile in the time budget, unless its load fails before any program is
            // prepared (a map the runtime cannot create): then the comparison of the failures is cheap.
            interpreter = run_on(Engine::interpreter, obj, overrides, buf);
            if (!interpreter->load_error || interpreter->load_error->message().find("program \"") != std::string::npos) {
                too_large.push_back(co.path);
                ++skipped[fmt::format("more than {} instructions (time budget)", max_insns)];
                continue;
            }
        }

        const auto t_obj = std::chrono::steady_clock::now();
        std::optional<Error> why;
        std::string outcome = "compared";
        std::vector<std::pair<std::string, std::string>> shown;
        if (auto r = load_everywhere(obj, overrides, buf, why, std::move(interpreter))) {
            for (std::size_t e = 1; e < 3; ++e) compare(co.path, (*r)[0], (*r)[e], engines[e]);
            count((*r)[0], as_is);
            shown = results_of((*r)[0]);
        } else {
            const std::string reason = skip_reason(*why);
            ++skipped[reason];
            outcome = "skipped: " + why->message();
            // Second pass: the helpers it lacks replaced by stubs, so that the rest of its code (and the
            // other programs of the object) is still compared.
            const bool helpers_missing = reason.find("unknown helper") == 0 || reason.find("CO-RE") == 0;
            if (auto stubs = helpers_missing ? with_stubs(obj, overrides) : std::nullopt) {
                std::optional<Error> why2;
                if (auto r2 = load_everywhere(obj, *stubs, buf, why2)) {
                    for (std::size_t e = 1; e < 3; ++e) compare(co.path, (*r2)[0], (*r2)[e], engines[e]);
                    count((*r2)[0], stubbed);
                    shown = results_of((*r2)[0]);
                    outcome += " (compared with stubs)";
                } else {
                    ++stub_skipped[skip_reason(*why2)];
                }
            }
        }
        if (verbose) {
            std::printf("%-66s %6zu insns %7.1f ms %s\n", co.path.c_str(), co.n_insns,
                        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_obj).count(),
                        outcome.c_str());
            for (const auto& [prog, results] : shown) std::printf("    %-40s %s\n", prog.c_str(), results.c_str());
        }
    }

    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto reasons = [](const std::map<std::string, std::size_t>& m) {
        std::string s;
        std::size_t n = 0;
        for (const auto& [why, k] : m) {
            n += k;
            s += fmt::format("\n    {:3} x {}", k, why);
        }
        return std::pair(n, s);
    };
    const auto [n_skipped, skipped_text] = reasons(skipped);
    const auto [n_stub_skipped, stub_skipped_text] = reasons(stub_skipped);
    auto line = [](const Counts& c) {
        return fmt::format("{} objects, {} programs, {} runs ({} of them faults), {} maps", c.objects, c.programs,
                           c.runs, c.faults, c.maps);
    };
    std::printf("corpus engines (%.1f s, packet pointers %s): interpreter vs jit and interpreter vs aot, each on\n"
                "  as loaded:            %s\n"
                "  with stubbed helpers: %s\n"
                "  %zu objects skipped as loaded:%s\n"
                "  %zu of those still skipped with stubbed helpers:%s\n"
                "  too large: %s\n",
                secs, buf.low_base() ? "into the context" : "garbage (no memory below 4 GiB)", line(as_is).c_str(), line(stubbed).c_str(), n_skipped, skipped_text.c_str(), n_stub_skipped,
                stub_skipped_text.c_str(), fmt::format("{}", fmt::join(too_large, ", ")).c_str());
    RecordProperty("objects_compared", static_cast<int>(as_is.objects + stubbed.objects));
    RecordProperty("programs_compared", static_cast<int>(as_is.programs + stubbed.programs));
    RecordProperty("objects_skipped", static_cast<int>(n_skipped));
    if (!filter) {
        // Not vacuous: most of the corpus really ran (199 programs of 69 objects as loaded once the runtime
        // verified programs on load; 256 before, when programs of unknown type that call socket-buffer
        // helpers, and PREVAIL's deliberately unsafe ones, still loaded).
        EXPECT_GE(as_is.objects, 60u);
        EXPECT_GE(as_is.programs, 180u);
        EXPECT_GE(as_is.runs - as_is.faults, 400u) << "most runs should complete, not fault";
    }
}

}  // namespace
}  // namespace ebpfrt
