// The verifier: a worklist abstract interpreter over (call string, instruction) points. States are
// kept at block heads (jump targets, fall-throughs of branches, call returns); straight-line code runs
// from a head to the next one. Where flows meet, states are joined; at loop heads, after a few rounds,
// scalar bounds are widened to the next constant the program compares against, so that loops like
// `for (i = 0; i != 64; i++)` keep their bound and every loop reaches a fixed point.
//
// Ids: a lookup result that may be null, and a packet pointer with a variable offset, carry an id so
// that a null check or a packet-end comparison on one copy applies to every copy. Ids are derived from
// the instruction that made the pointer (so a state reaches a fixed point); when that instruction runs
// again, copies of the old pointer get the "orphan" id, which never spreads a check to anything else.

#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <ebpfrt/verifier.hpp>

#include "domain.hpp"
#include "protos.hpp"

namespace ebpfrt {

namespace verifier {
namespace {

namespace isa = ebpfrt::isa;

constexpr std::uint32_t orphan = 0xffffffffu;
constexpr int stack_bytes = static_cast<int>(isa::stack_size);
constexpr int stack_slots = stack_bytes / 8;
constexpr std::int64_t max_var_off = 1ll << 29;  // the kernel's BPF_MAX_VAR_OFF
constexpr std::uint32_t callback_bit = 0x80000000u;

enum class Kind : std::uint8_t { uninit, scalar, ctx, stack, map_value, map_ptr, pkt, pkt_end, pkt_meta, mem, func };

std::string_view kind_name(Kind k, bool null) {
    switch (k) {
        case Kind::uninit: return "uninit";
        case Kind::scalar: return "scalar";
        case Kind::ctx: return "ctx";
        case Kind::stack: return "fp";
        case Kind::map_value: return null ? "map_value_or_null" : "map_value";
        case Kind::map_ptr: return null ? "map_ptr_or_null" : "map_ptr";
        case Kind::pkt: return "pkt";
        case Kind::pkt_end: return "pkt_end";
        case Kind::pkt_meta: return "pkt_meta";
        case Kind::mem: return null ? "mem_or_null" : "mem";
        case Kind::func: return "func";
    }
    return "?";
}

struct Reg {
    Kind kind = Kind::uninit;
    bool maybe_null = false;
    bool rdonly = false;
    bool inner = false;          // map_ptr/map_value: the inner map of map-in-map `map`
    // scalar: may be a kernel-object pointer (BTF-typed context argument, socket, task) that the
    // program may read through, as the kernel does with probe reads; writes through it are refused.
    bool probe = false;
    std::int32_t map = -1;       // map index (map_ptr, map_value)
    std::uint32_t id = 0;        // null-check group, or packet variable-offset group
    std::uint32_t frame = 0;     // stack: frame index
    std::int64_t off = 0;        // pointers: constant part of the offset
    std::int64_t range = 0;      // pkt/pkt_meta: bytes known in bounds from the pointer's base
    std::uint64_t size = 0;      // mem: bytes; func: target instruction
    Scalar v = Scalar::constant(0);  // scalar: the value; pointers: the variable part of the offset

    bool is_ptr() const noexcept { return kind != Kind::uninit && kind != Kind::scalar; }
    friend bool operator==(const Reg&, const Reg&) = default;

    static Reg scalar(Scalar s) {
        Reg r;
        r.kind = Kind::scalar;
        r.v = s;
        return r;
    }
    static Reg unknown() { return scalar(Scalar::unknown()); }
    static Reg probe_ptr() {
        Reg r = unknown();
        r.probe = true;
        return r;
    }
};

// Stack byte states.
enum : std::uint8_t { sb_invalid = 0, sb_misc = 1, sb_zero = 2, sb_spill = 3 };

// Registers spilled to stack slots. Few slots hold one, so only those are stored (sorted by slot):
// a state is then about 2 KiB instead of 8, which is what bounds memory on large programs.
class SpillSlots {
public:
    Reg& operator[](int slot) {
        auto it = find(slot);
        if (it != regs_.end() && it->first == slot) return it->second;
        return regs_.insert(it, {static_cast<std::uint8_t>(slot), Reg{}})->second;
    }
    const Reg& operator[](int slot) const {
        static const Reg none{};
        auto it = std::lower_bound(regs_.begin(), regs_.end(), slot,
                                   [](const auto& e, int s) { return e.first < s; });
        return it != regs_.end() && it->first == slot ? it->second : none;
    }
    void reset(int slot) {
        auto it = find(slot);
        if (it != regs_.end() && it->first == slot) regs_.erase(it);
    }
    friend bool operator==(const SpillSlots& a, const SpillSlots& b) {
        for (int i = 0; i < stack_slots; ++i)
            if (!(a[i] == b[i])) return false;
        return true;
    }

private:
    std::vector<std::pair<std::uint8_t, Reg>>::iterator find(int slot) {
        return std::lower_bound(regs_.begin(), regs_.end(), slot, [](const auto& e, int s) { return e.first < s; });
    }
    std::vector<std::pair<std::uint8_t, Reg>> regs_;
};

struct Frame {
    std::array<Reg, isa::num_registers> r{};
    std::array<std::uint8_t, isa::stack_size> bytes{};
    SpillSlots spill{};
    friend bool operator==(const Frame&, const Frame&) = default;
};

// Spilled registers in stack bytes [first, last) that are overwritten become plain data.
void forget_spills(Frame& fr, int first, int last) {
    for (int sl = first / 8; sl <= (last - 1) / 8; ++sl)
        if (fr.bytes[sl * 8] == sb_spill) {
            for (int b = sl * 8; b < sl * 8 + 8; ++b) fr.bytes[b] = sb_misc;
            fr.spill.reset(sl);
        }
}

// Bytes of a load or store (the size field of its opcode).
int access_size(std::uint8_t opcode) {
    static constexpr int sizes[] = {4, 2, 1, 8};
    return sizes[(opcode >> 3) & 3];
}

struct State {
    std::vector<Frame> frames;
    Frame& cur() { return frames.back(); }
    const Frame& cur() const { return frames.back(); }
};

struct Rejection {
    std::size_t pc;
    std::string reason;
};

// Context layouts.
enum class CtxKind : std::uint8_t { unknown, skb, skb_nopkt, xdp, regs, btf_args, sk_msg, sk_reuseport, sockopt, other };

struct CtxDesc {
    CtxKind kind = CtxKind::unknown;
    std::int64_t size = 0;  // 0: unknown, bounds left to the engine
    std::int64_t data = -1, data_end = -1, data_meta = -1;  // offsets of packet pointer fields
    bool read_only = false;
    int ptr_size = 4;  // bytes of a packet pointer field (__u32, or __bpf_md_ptr's 8)
};

CtxDesc ctx_desc(ProgType t) {
    CtxDesc d;
    switch (t) {
        case ProgType::socket_filter:  // has the fields, but may not read them
            d = {CtxKind::skb_nopkt, sizeof(__sk_buff), offsetof(__sk_buff, data), offsetof(__sk_buff, data_end),
                 offsetof(__sk_buff, data_meta)};
            break;
        case ProgType::sched_cls:
        case ProgType::sched_act:
        case ProgType::lwt_xmit:
            d = {CtxKind::skb, sizeof(__sk_buff), offsetof(__sk_buff, data), offsetof(__sk_buff, data_end),
                 offsetof(__sk_buff, data_meta)};
            break;
        case ProgType::cgroup_skb:
        case ProgType::lwt_in:
        case ProgType::lwt_out:
        case ProgType::lwt_seg6local:
        case ProgType::sk_skb:
        case ProgType::flow_dissector:
            d = {CtxKind::skb, sizeof(__sk_buff), offsetof(__sk_buff, data), offsetof(__sk_buff, data_end)};
            break;
        case ProgType::xdp:
            d = {CtxKind::xdp, sizeof(xdp_md), offsetof(xdp_md, data), offsetof(xdp_md, data_end),
                 offsetof(xdp_md, data_meta), true};
            break;
        case ProgType::kprobe:
#if defined(__x86_64__)
            d = {CtxKind::regs, 21 * 8, -1, -1, -1, true};
#elif defined(__aarch64__)
            d = {CtxKind::regs, 34 * 8, -1, -1, -1, true};
#else
            d = {CtxKind::regs, 0, -1, -1, -1, true};
#endif
            break;
        case ProgType::perf_event:
            d = {CtxKind::regs, 0, -1, -1, -1, true};
            break;
        case ProgType::tracepoint:
        case ProgType::raw_tracepoint:
        case ProgType::raw_tracepoint_writable:
            d = {CtxKind::regs, 0, -1, -1, -1, t != ProgType::raw_tracepoint_writable};
            break;
        case ProgType::tracing:
        case ProgType::lsm:
        case ProgType::struct_ops:
            d = {CtxKind::btf_args, 0, -1, -1, -1, true};
            break;
        case ProgType::sk_msg:
            d = {CtxKind::sk_msg, sizeof(sk_msg_md), offsetof(sk_msg_md, data), offsetof(sk_msg_md, data_end)};
            d.ptr_size = 8;
            break;
        case ProgType::sk_reuseport:
            d = {CtxKind::sk_reuseport, sizeof(sk_reuseport_md), offsetof(sk_reuseport_md, data),
                 offsetof(sk_reuseport_md, data_end), -1, true};
            d.ptr_size = 8;
            break;
        case ProgType::cgroup_sockopt:
            d = {CtxKind::sockopt, sizeof(bpf_sockopt), offsetof(bpf_sockopt, optval),
                 offsetof(bpf_sockopt, optval_end)};
            d.ptr_size = 8;
            break;
        case ProgType::cgroup_sock: d = {CtxKind::other, sizeof(bpf_sock)}; break;
        case ProgType::cgroup_sock_addr: d = {CtxKind::other, sizeof(bpf_sock_addr)}; break;
        case ProgType::sock_ops: d = {CtxKind::other, sizeof(bpf_sock_ops)}; break;
        case ProgType::cgroup_device: d = {CtxKind::other, sizeof(bpf_cgroup_dev_ctx), -1, -1, -1, true}; break;
        case ProgType::cgroup_sysctl: d = {CtxKind::other, sizeof(bpf_sysctl)}; break;
        case ProgType::sk_lookup: d = {CtxKind::other, sizeof(bpf_sk_lookup)}; break;
        default: break;  // unspec, ext (host hooks), syscall, netfilter: the host decides the layout
    }
    return d;
}

// Which helpers a map type goes with (the kernel's check_map_func_compatibility, both directions).
bool map_fits_helper(MapType t, std::uint32_t helper) {
    auto any_of = [&](std::initializer_list<std::uint32_t> ids) {
        for (auto i : ids)
            if (i == helper) return true;
        return false;
    };
    switch (t) {
        case MapType::ringbuf: return any_of({130, 131, 134, 198});
        case MapType::user_ringbuf: return any_of({209});
        case MapType::prog_array: return any_of({12});
        case MapType::perf_event_array: return any_of({22, 25, 55, 111, 121});
        case MapType::stack_trace: return any_of({27});
        case MapType::queue:
        case MapType::stack: return any_of({87, 88, 89});
        case MapType::bloom_filter: return any_of({87, 89});
        default: break;
    }
    // Helpers that need one kind of map.
    switch (helper) {
        case 12: case 22: case 25: case 55: case 111: case 121: case 27: case 88:
        case 130: case 131: case 134: case 198: case 209:
            return false;  // their map types returned above
        case 87: case 89: return false;
        default: return true;
    }
}

// Helpers after which packet pointers are invalid (the kernel's bpf_helper_changes_pkt_data).
bool changes_packet(std::uint32_t id) {
    switch (id) {
        case 9: case 10: case 11: case 13: case 18: case 19: case 31: case 32: case 38: case 39:
        case 43: case 44: case 50: case 54: case 63: case 65: case 73: case 74: case 75: case 76:
        case 90: case 91: case 143: case 144: case 190:
            return true;
        default: return false;
    }
}

bool is_callback_helper(std::uint32_t id) { return id == 164 || id == 170 || id == 180 || id == 181 || id == 209; }

struct Verifier {
    std::string_view name;
    std::span<const Insn> code;
    const VerifyOptions& opt;
    CtxDesc ctx;

    std::vector<bool> head;
    std::vector<bool> loop_head;
    std::vector<std::uint64_t> thresholds_u;
    std::vector<std::int64_t> thresholds_s;

    std::map<std::vector<std::uint32_t>, std::uint32_t> ctx_ids;
    std::vector<std::vector<std::uint32_t>> ctx_strings;

    std::vector<std::uint16_t> live_in;  // registers r0-r9 read before written from each instruction on
    std::vector<bool> unproved;          // a memory access here was not proved in bounds on some path

    // Each program point keeps up to max_states_per_point states (paths are told apart, which keeps
    // facts like "r1 is 14 and r4 is 18" together); past that, new states are joined into the last one.
    struct Node {
        State st;
        std::uint32_t joins = 0;
    };
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<Node>> nodes;
    std::set<std::tuple<std::uint32_t, std::uint32_t, std::uint32_t>> work;
    std::size_t state_count = 0;

    std::size_t visits = 0;
    bool joined = false;  // some states were joined (so a rejection may be an imprecision)
    std::optional<Rejection> rejected;

    // Current position (for messages and ids).
    std::uint32_t cur_ctx = 0;
    std::size_t pc = 0;

    Verifier(std::string_view n, std::span<const Insn> c, const VerifyOptions& o)
        : name(n), code(c), opt(o), ctx(ctx_desc(o.type)) {
        if (o.ctx_size) ctx.size = static_cast<std::int64_t>(o.ctx_size);
    }

    // ---------------------------------------------------------------- errors
    bool fail(std::string reason) {
        if (opt.log) opt.log(fmt::format("{}: rejected: {}", pc, reason));
        if (!rejected) rejected = Rejection{pc, std::move(reason)};
        return false;
    }

    // ---------------------------------------------------------------- setup
    void analyse_cfg() {
        head.assign(code.size() + 1, false);
        loop_head.assign(code.size() + 1, false);
        head[0] = true;
        std::set<std::int64_t> consts{0};
        for (std::size_t i = 0; i < code.size(); ++i) {
            const Insn& in = code[i];
            std::uint8_t c = isa::cls(in.opcode);
            if (in.opcode == isa::opcode_lddw) {
                if (in.src == isa::pseudo_func) {
                    std::size_t t = i + 1 + static_cast<std::size_t>(static_cast<std::int64_t>(in.imm));
                    if (t < code.size()) head[t] = true;
                }
                ++i;
                continue;
            }
            if (c != isa::cls_jmp && c != isa::cls_jmp32) continue;
            std::uint8_t op = in.opcode & 0xf0;
            if (op == isa::op_exit) continue;
            if (op == isa::op_call) {
                if (in.src == isa::call_local) {
                    std::size_t t = i + 1 + static_cast<std::size_t>(static_cast<std::int64_t>(in.imm));
                    if (t < code.size()) head[t] = true;
                }
                // A helper with a callback comes back to its own call: that point loops.
                if (in.src == isa::call_helper && is_callback_helper(static_cast<std::uint32_t>(in.imm))) {
                    head[i] = true;
                    loop_head[i] = true;
                }
                head[i + 1] = true;
                continue;
            }
            std::int64_t off = (c == isa::cls_jmp32 && op == isa::op_ja) ? in.imm : in.offset;  // gotol: imm
            auto t = static_cast<std::size_t>(static_cast<std::int64_t>(i) + 1 + off);
            if (t < code.size()) {
                head[t] = true;
                if (t <= i) loop_head[t] = true;
            }
            head[i + 1] = true;
            if (op != isa::op_ja && !(in.opcode & isa::src_x)) {
                std::int64_t k = in.imm;
                if (c == isa::cls_jmp32) k = static_cast<std::uint32_t>(in.imm);
                consts.insert(k - 1);
                consts.insert(k);
                consts.insert(k + 1);
            }
        }
        for (auto k : consts) {
            thresholds_s.push_back(k);
            thresholds_u.push_back(static_cast<std::uint64_t>(k));
        }
        std::sort(thresholds_u.begin(), thresholds_u.end());
        std::sort(thresholds_s.begin(), thresholds_s.end());
    }

    std::uint32_t ctx_of(std::vector<std::uint32_t> s) {
        auto [it, added] = ctx_ids.emplace(std::move(s), static_cast<std::uint32_t>(ctx_strings.size()));
        if (added) ctx_strings.push_back(it->first);
        return it->second;
    }

    // ---------------------------------------------------------------- joins
    Scalar widen(const Scalar& old, const Scalar& n) const {
        Scalar w = n;
        if (n.umax > old.umax) {
            auto it = std::lower_bound(thresholds_u.begin(), thresholds_u.end(), n.umax);
            w.umax = it == thresholds_u.end() ? ~0ull : *it;
        }
        if (n.umin < old.umin) {
            auto it = std::upper_bound(thresholds_u.begin(), thresholds_u.end(), n.umin);
            w.umin = it == thresholds_u.begin() ? 0 : *(it - 1);
        }
        if (n.smax > old.smax) {
            auto it = std::lower_bound(thresholds_s.begin(), thresholds_s.end(), n.smax);
            w.smax = it == thresholds_s.end() ? std::numeric_limits<std::int64_t>::max() : *it;
        }
        if (n.smin < old.smin) {
            auto it = std::upper_bound(thresholds_s.begin(), thresholds_s.end(), n.smin);
            w.smin = it == thresholds_s.begin() ? std::numeric_limits<std::int64_t>::min() : *(it - 1);
        }
        // Known bits come from the join (a union, which only ever loses bits): they stay, so an
        // induction variable stepping by 2 stays even.
        if (!normalize(w)) w = Scalar::unknown();
        return w;
    }

    static bool same_object(const Reg& a, const Reg& b) {
        return a.kind == b.kind && a.map == b.map && a.inner == b.inner && a.frame == b.frame &&
               (a.kind != Kind::func || a.size == b.size);
    }

    bool same_shape(const Reg& a, const Reg& b) const {
        const MapSpec* x = map_spec(a);
        const MapSpec* y = map_spec(b);
        if (!x || !y) return false;
        bool inner_same = (!x->inner && !y->inner) ||
                          (x->inner && y->inner && x->inner->key_size == y->inner->key_size &&
                           x->inner->value_size == y->inner->value_size && x->inner->type == y->inner->type);
        return x->type == y->type && x->key_size == y->key_size && x->value_size == y->value_size &&
               x->flags == y->flags && inner_same;
    }

    // Joins b into a; `widening` widens scalar bounds that grew.
    Reg join_reg(const Reg& a, const Reg& b, bool widening) const {
        if (a == b) return a;
        if (a.kind == Kind::uninit || b.kind == Kind::uninit) return Reg{};
        auto jv = [&](const Scalar& x, const Scalar& y) {
            Scalar j = join(x, y);
            return widening ? widen(x, j) : j;
        };
        if (a.kind == Kind::scalar && b.kind == Kind::scalar) {
            Reg r = Reg::scalar(jv(a.v, b.v));
            r.probe = a.probe || b.probe;
            return r;
        }
        // NULL on one side, a pointer on the other: a pointer that may be null.
        if ((a.kind == Kind::scalar && a.v.is_const(0)) || (b.kind == Kind::scalar && b.v.is_const(0))) {
            const Reg& p = a.kind == Kind::scalar ? b : a;
            if (p.kind == Kind::map_value || p.kind == Kind::mem || p.kind == Kind::map_ptr) {
                Reg r = p;
                if (!r.maybe_null) r.id = orphan;
                r.maybe_null = true;
                return r;
            }
            return Reg::unknown();
        }
        // Two maps of the same shape: checks depend only on the shape, so either stands for both.
        if ((a.kind == Kind::map_ptr || a.kind == Kind::map_value) && a.kind == b.kind && a.map != b.map &&
            same_shape(a, b)) {
            Reg bb = b;
            bb.map = a.map;
            bb.inner = a.inner;
            return join_reg(a, bb, widening);
        }
        if (a.kind == Kind::scalar || b.kind == Kind::scalar || !same_object(a, b)) {
            // Different kinds of value meet: nothing is known that makes it usable as a pointer.
            return Reg::unknown();
        }
        Reg r = a;
        r.maybe_null = a.maybe_null || b.maybe_null;
        r.rdonly = a.rdonly || b.rdonly;
        r.size = std::min(a.size, b.size);
        if (a.kind == Kind::func) r.size = a.size;
        if (a.id != b.id) r.id = orphan;
        if (a.off == b.off) {
            r.v = jv(a.v, b.v);
        } else {
            // Fold the differing constant parts into the variable part.
            std::int64_t lo = std::min(a.off, b.off);
            Scalar da = alu(AluOp::add, a.v, Scalar::constant(static_cast<std::uint64_t>(a.off - lo)), false);
            Scalar db = alu(AluOp::add, b.v, Scalar::constant(static_cast<std::uint64_t>(b.off - lo)), false);
            r.off = lo;
            r.v = jv(da, db);
            if (r.kind == Kind::pkt || r.kind == Kind::pkt_meta) r.id = orphan;
        }
        if (r.kind == Kind::pkt || r.kind == Kind::pkt_meta)
            r.range = (a.id == b.id && a.off == b.off) ? std::min(a.range, b.range) : 0;
        return r;
    }

    bool join_into(State& old, const State& n, bool widening) const {
        bool changed = false;
        for (std::size_t f = 0; f < old.frames.size(); ++f) {
            Frame& o = old.frames[f];
            const Frame& x = n.frames[f];
            for (std::size_t i = 0; i < isa::num_registers; ++i) {
                Reg j = join_reg(o.r[i], x.r[i], widening);
                if (!(j == o.r[i])) {
                    o.r[i] = j;
                    changed = true;
                }
            }
            for (int s = 0; s < stack_slots; ++s) {
                bool o_spill = o.bytes[s * 8] == sb_spill, x_spill = x.bytes[s * 8] == sb_spill;
                if (o_spill && x_spill) {
                    Reg j = join_reg(o.spill[s], x.spill[s], widening);
                    if (!(j == o.spill[s])) {
                        o.spill[s] = j;
                        changed = true;
                    }
                    continue;
                }
                for (int b = s * 8; b < s * 8 + 8; ++b) {
                    std::uint8_t ob = o.bytes[b], xb = x.bytes[b];
                    std::uint8_t nb = ob;
                    if (ob == xb) continue;
                    if (ob == sb_invalid || xb == sb_invalid) nb = sb_invalid;
                    else nb = sb_misc;
                    if (nb != ob) {
                        o.bytes[b] = nb;
                        changed = true;
                    }
                }
                if (o_spill && o.bytes[s * 8] != sb_spill) {
                    // The spill became plain bytes: clear the stale register and its other bytes.
                    o.spill.reset(s);
                    for (int b = s * 8; b < s * 8 + 8; ++b)
                        if (o.bytes[b] == sb_spill) o.bytes[b] = sb_misc;
                    changed = true;
                }
            }
        }
        return changed;
    }

    // True if every concrete state `n` describes is described by `o` (so exploring `n` finds nothing new).
    bool covers(const State& o, const State& n) const {
        for (std::size_t f = 0; f < o.frames.size(); ++f) {
            const Frame& a = o.frames[f];
            const Frame& b = n.frames[f];
            for (std::size_t i = 0; i < isa::num_registers; ++i)
                if (!(a.r[i] == b.r[i]) && !(join_reg(a.r[i], b.r[i], false) == a.r[i])) return false;
            for (int sl = 0; sl < stack_slots; ++sl) {
                if (a.bytes[sl * 8] == sb_spill) {
                    if (b.bytes[sl * 8] != sb_spill) return false;
                    if (!(a.spill[sl] == b.spill[sl]) && !(join_reg(a.spill[sl], b.spill[sl], false) == a.spill[sl]))
                        return false;
                    continue;
                }
                for (int x = sl * 8; x < sl * 8 + 8; ++x) {
                    std::uint8_t ab = a.bytes[x], bb = b.bytes[x];
                    if (ab == sb_invalid || ab == bb) continue;
                    if (bb == sb_invalid) return false;
                    if (ab == sb_zero) return false;  // b holds something other than zero
                    if (bb == sb_spill && b.spill[sl].kind != Kind::scalar) return false;  // a pointer, not data
                }
            }
        }
        return true;
    }

    // Registers nobody reads again are forgotten, so that states differing only in them are equal.
    void forget_dead(std::uint32_t c, std::size_t target, State& s) const {
        auto clear = [](Frame& f, std::uint16_t live) {
            for (int r = 0; r < 10; ++r)
                if (!((live >> r) & 1)) f.r[static_cast<std::size_t>(r)] = Reg{};
        };
        clear(s.cur(), live_in[target]);
        const auto& chain = ctx_strings[c];
        for (std::size_t k = 0; k + 1 < s.frames.size() && k < chain.size(); ++k) {
            std::uint32_t site = chain[k];
            if (site & callback_bit) {
                clear(s.frames[k], live_in[site & ~callback_bit]);
            } else {
                // After the call returns, r0 is the result and r1-r5 are clobbered.
                clear(s.frames[k], static_cast<std::uint16_t>(live_in[site + 1] & ~0x3fu));
            }
        }
    }

    void propagate(std::uint32_t c, std::size_t target, State&& s) {
        if (target >= code.size()) {
            fail("jump out of the program");
            return;
        }
        forget_dead(c, target, s);
        auto key = std::make_pair(c, static_cast<std::uint32_t>(target));
        auto& list = nodes[key];
        for (const Node& n : list)
            if (covers(n.st, s)) return;
        if (list.size() < opt.max_states_per_point) {
            if (state_count >= opt.max_states) {
                fail(fmt::format("program too complex: more than {} states kept", opt.max_states));
                return;
            }
            list.push_back(Node{std::move(s), 0});
            ++state_count;
            work.insert({c, static_cast<std::uint32_t>(target), static_cast<std::uint32_t>(list.size() - 1)});
            return;
        }
        // Join into the state that differs least in its registers: states of the same loop iteration
        // (same induction variables) merge with each other, not with other iterations.
        auto distance = [](const State& a, const State& b) {
            int d = 0;
            const Frame& x = a.cur();
            const Frame& y = b.cur();
            for (std::size_t i = 0; i < isa::num_registers; ++i) {
                if (x.r[i] == y.r[i]) continue;
                d += (x.r[i].kind == y.r[i].kind) ? 1 : 3;
                if (x.r[i].kind == Kind::scalar && x.r[i].v.is_const() && y.r[i].v.is_const()) d += 2;
            }
            return d;
        };
        std::size_t best = list.size() - 1;
        int best_d = distance(list[best].st, s);
        for (std::size_t i = 0; i + 1 < list.size() && best_d > 0; ++i) {
            int d = distance(list[i].st, s);
            if (d < best_d) {
                best_d = d;
                best = i;
            }
        }
        Node& n = list[best];
        joined = true;
        ++n.joins;
        bool widening = loop_head[target] && n.joins > 3;
        if (join_into(n.st, s, widening))
            work.insert({c, static_cast<std::uint32_t>(target), static_cast<std::uint32_t>(best)});
    }

    // Backward data flow: which of r0-r9 each instruction may read before they are written.
    void compute_liveness() {
        std::size_t n = code.size();
        std::vector<std::uint16_t> use(n, 0), def(n, 0);
        std::vector<std::array<std::size_t, 2>> succ(n, {SIZE_MAX, SIZE_MAX});
        auto bit = [](unsigned r) { return static_cast<std::uint16_t>(r < 10 ? 1u << r : 0u); };
        for (std::size_t i = 0; i < n; ++i) {
            const Insn& in = code[i];
            std::uint8_t c = isa::cls(in.opcode), op = in.opcode & 0xf0, mode = in.opcode & 0xe0;
            bool x = (in.opcode & isa::src_x) != 0;
            switch (c) {
                case isa::cls_alu:
                case isa::cls_alu64:
                    if (op != isa::op_mov) use[i] |= bit(in.dst);
                    if (x && op != isa::op_end && op != isa::op_neg) use[i] |= bit(in.src);
                    def[i] = bit(in.dst);
                    succ[i][0] = i + 1;
                    break;
                case isa::cls_ld:
                    if (in.opcode == isa::opcode_lddw) {
                        def[i] = bit(in.dst);
                        succ[i][0] = i + 2;
                        if (i + 1 < n) succ[i + 1] = {SIZE_MAX, SIZE_MAX};
                    } else {
                        use[i] = static_cast<std::uint16_t>(bit(6) | (mode == isa::mode_ind ? bit(in.src) : 0));
                        def[i] = 0x3f;
                        succ[i][0] = i + 1;
                    }
                    break;
                case isa::cls_ldx:
                    use[i] = bit(in.src);
                    def[i] = bit(in.dst);
                    succ[i][0] = i + 1;
                    break;
                case isa::cls_st:
                    use[i] = bit(in.dst);
                    succ[i][0] = i + 1;
                    break;
                case isa::cls_stx:
                    use[i] = static_cast<std::uint16_t>(bit(in.dst) | bit(in.src));
                    if (mode == isa::mode_atomic) {
                        if (in.imm == isa::atomic_cmpxchg) {
                            use[i] |= bit(0);
                            def[i] = bit(0);
                        } else if (in.imm & isa::atomic_fetch) {
                            def[i] = bit(in.src);
                        }
                    }
                    succ[i][0] = i + 1;
                    break;
                default:  // jumps
                    if (op == isa::op_exit) {
                        use[i] = bit(0);
                    } else if (op == isa::op_call) {
                        use[i] = 0x3e;  // r1-r5
                        if (x) use[i] |= bit(in.dst);
                        def[i] = 0x3f;
                        succ[i][0] = i + 1;
                    } else {
                        std::int64_t off = (c == isa::cls_jmp32 && op == isa::op_ja) ? in.imm : in.offset;
                        succ[i][0] = static_cast<std::size_t>(static_cast<std::int64_t>(i) + 1 + off);
                        if (op != isa::op_ja) {
                            succ[i][1] = i + 1;
                            use[i] = static_cast<std::uint16_t>(bit(in.dst) | (x ? bit(in.src) : 0));
                        }
                    }
                    break;
            }
            if (in.opcode == isa::opcode_lddw) ++i;
        }
        live_in.assign(n + 1, 0);
        for (bool changed = true; changed;) {
            changed = false;
            for (std::size_t i = n; i-- > 0;) {
                std::uint16_t out = 0;
                for (std::size_t t : succ[i])
                    if (t < n) out |= live_in[t];
                auto in_set = static_cast<std::uint16_t>(use[i] | (out & ~def[i]));
                if (in_set != live_in[i]) {
                    live_in[i] = in_set;
                    changed = true;
                }
            }
        }
    }

    // ---------------------------------------------------------------- helpers on registers
    bool read_reg(const State& s, int r) {
        if (s.cur().r[r].kind == Kind::uninit) return fail(fmt::format("r{} is read before it is written", r));
        return true;
    }

    // Applies `f` to every register and spilled register of every frame.
    template <class F> static void for_each_reg(State& s, F&& f) {
        for (auto& fr : s.frames) {
            for (auto& r : fr.r) f(r);
            for (int k = 0; k < stack_slots; ++k)
                if (fr.bytes[k * 8] == sb_spill) f(fr.spill[k]);
        }
    }

    // A new id made at this instruction: older copies of a pointer with this id become orphans.
    std::uint32_t fresh_id(State& s, std::uint32_t salt) {
        std::uint32_t id = static_cast<std::uint32_t>(pc * 16 + salt + 1) & 0x7fffffffu;
        for_each_reg(s, [&](Reg& r) {
            if (r.id == id) r.id = orphan;
        });
        return id;
    }

    const MapSpec* map_spec(const Reg& r) const {
        if (r.map < 0 || static_cast<std::size_t>(r.map) >= opt.maps.size()) return nullptr;
        const MapSpec* m = &opt.maps[static_cast<std::size_t>(r.map)];
        if (r.inner) return m->inner.get();
        return m;
    }

    // ---------------------------------------------------------------- memory
    // Bounds of an access through `p`: [lo, hi) relative to the object's start (constant and variable part).
    static std::pair<std::int64_t, std::int64_t> bounds(const Reg& p, std::int64_t off, std::int64_t size) {
        std::int64_t lo = p.off + off + p.v.smin, hi = p.off + off + p.v.smax + size;
        return {lo, hi};
    }

    bool var_ok(const Reg& p, int regno) {
        if (p.v.smin < -max_var_off || p.v.smax > max_var_off)
            return fail(fmt::format("r{} {} pointer has an unbounded variable offset", regno, kind_name(p.kind, false)));
        return true;
    }

    static Reg loaded_scalar(int size, bool sign_extend) {
        if (size == 8) return Reg::unknown();
        std::uint64_t max = (1ull << (size * 8)) - 1;
        Scalar s = Scalar::urange(0, max);
        if (sign_extend) s = sext(s, static_cast<unsigned>(size * 8));
        return Reg::scalar(s);
    }

    // Checks a load (dst != nullptr), a store (val != nullptr or store of a scalar), or an atomic through
    // register `regno`. `val`: the stored register (nullptr: an immediate `imm`).
    bool access(State& s, int regno, std::int64_t off, int size, bool write, bool read, Reg* dst,
                const Reg* val, bool sign_extend) {
        Reg p = s.cur().r[regno];
        if (p.kind == Kind::uninit) return fail(fmt::format("r{} is read before it is written", regno));
        if (p.maybe_null)
            return fail(fmt::format("r{} may be null (compare it with 0 before using it as a {} pointer)", regno,
                                    kind_name(p.kind, false)));
        // Only stack, map value and sized-memory accesses are proved in bounds for the engines: the
        // others depend on what the host hands in (context size, packet pointers, kernel-object reads).
        if (p.kind != Kind::stack && p.kind != Kind::map_value && p.kind != Kind::mem) unproved[pc] = true;
        switch (p.kind) {
            case Kind::stack: return access_stack(s, p, regno, off, size, write, read, dst, val);
            case Kind::map_value:
            case Kind::mem: {
                if (!var_ok(p, regno)) return false;
                std::int64_t limit;
                std::string what;
                if (p.kind == Kind::map_value) {
                    const MapSpec* m = map_spec(p);
                    if (!m) return fail(fmt::format("r{} points into an unknown map", regno));
                    limit = m->value_size;
                    what = fmt::format("map \"{}\" value of {} bytes", m->name, m->value_size);
                    if (write && (p.rdonly || (m->flags & map_flags::rdonly_prog)))
                        return fail(fmt::format("write into read-only map \"{}\"", m->name));
                } else {
                    limit = static_cast<std::int64_t>(p.size);
                    what = fmt::format("memory of {} bytes", p.size);
                    if (write && p.rdonly) return fail(fmt::format("write into read-only memory through r{}", regno));
                }
                auto [lo, hi] = bounds(p, off, size);
                if (lo < 0 || hi > limit)
                    return fail(fmt::format("r{} access of {} bytes at offset [{}, {}] is outside the {}", regno, size,
                                            lo, hi - size, what));
                if (dst) {
                    *dst = loaded_scalar(size, sign_extend);
                    // A read-only map's bytes are known at load time (libbpf freezes .rodata, and the
                    // kernel reads such loads as constants): `const volatile` switches prune code.
                    const MapSpec* m = p.kind == Kind::map_value ? map_spec(p) : nullptr;
                    if (m && opt.fold_readonly_maps && (m->flags & map_flags::rdonly_prog) && p.v.is_const() &&
                        m->initial_value.size() == m->value_size) {
                        std::uint64_t v = 0;
                        for (int i = size - 1; i >= 0; --i)
                            v = (v << 8) | std::to_integer<std::uint64_t>(
                                               m->initial_value[static_cast<std::size_t>(lo) + static_cast<std::size_t>(i)]);
                        if (sign_extend && size < 8 && (v >> (size * 8 - 1)) & 1) v |= ~0ull << (size * 8);
                        *dst = Reg::scalar(Scalar::constant(v));
                    }
                }
                return true;
            }
            case Kind::ctx: return access_ctx(s, p, regno, off, size, write, dst, sign_extend, val != nullptr || !read);
            case Kind::pkt:
            case Kind::pkt_meta: {
                if (!var_ok(p, regno)) return false;
                if (write && ctx.kind == CtxKind::skb_nopkt) return fail("this program type cannot write packets");
                std::int64_t lo = p.off + off, hi = p.off + off + size;
                if (p.v.smin < 0 || lo < 0 || hi > p.range)
                    return fail(fmt::format("invalid access to packet through r{}: offset {} size {}, but only {} "
                                            "bytes are checked against the packet end",
                                            regno, lo, size, p.range));
                if (dst) *dst = loaded_scalar(size, sign_extend);
                return true;
            }
            case Kind::scalar:
                if (!p.probe)
                    return fail(fmt::format("invalid memory access through r{} (a scalar, not a pointer)", regno));
                if (write) return fail(fmt::format("write through kernel-object pointer r{}", regno));
                if (dst) *dst = size == 8 ? Reg::probe_ptr() : loaded_scalar(size, sign_extend);
                return true;
            default:
                return fail(fmt::format("invalid memory access through r{} ({})", regno, kind_name(p.kind, false)));
        }
    }

    bool access_stack(State& s, const Reg& p, int regno, std::int64_t off, int size, bool write, bool read, Reg* dst,
                      const Reg* val) {
        if (p.frame >= s.frames.size()) return fail(fmt::format("r{} points into a stack frame that has returned", regno));
        Frame& fr = s.frames[p.frame];
        if (!var_ok(p, regno)) return false;
        auto [lo, hi] = bounds(p, off, size);
        if (lo < -stack_bytes || hi > 0)
            return fail(fmt::format("r{} stack access of {} bytes at offset [{}, {}] is outside the 512-byte frame",
                                    regno, size, lo, hi - size));
        bool exact = p.v.is_const();
        int first = static_cast<int>(lo + stack_bytes), last = static_cast<int>(hi + stack_bytes);  // [first, last)
        if (read) {
            for (int b = first; b < last; ++b)
                if (fr.bytes[b] == sb_invalid)
                    return fail(fmt::format("r{} reads uninitialised stack at offset {} (frame offset {})", regno,
                                            b - stack_bytes, lo));
        }
        Reg loaded = loaded_scalar(size, false);
        if (read && exact) {
            int slot = first / 8;
            if (size == 8 && first % 8 == 0 && fr.bytes[first] == sb_spill) {
                loaded = fr.spill[slot];
            } else {
                bool all_zero = true;
                for (int b = first; b < last; ++b) all_zero = all_zero && fr.bytes[b] == sb_zero;
                if (all_zero) loaded = Reg::scalar(Scalar::constant(0));
                else if (fr.bytes[first] == sb_spill && fr.spill[slot].kind == Kind::scalar &&
                         fr.spill[slot].v.is_const() && last <= slot * 8 + 8) {
                    // Part of a spilled constant (little-endian).
                    std::uint64_t v = fr.spill[slot].v.umin >> ((first - slot * 8) * 8);
                    if (size < 8) v &= (1ull << (size * 8)) - 1;
                    loaded = Reg::scalar(Scalar::constant(v));
                }
            }
        }
        if (write) {
            if (exact) {
                // Bytes of spilled registers that are partly overwritten become plain data.
                forget_spills(fr, first, last);
                bool spill = val && size == 8 && first % 8 == 0 && (val->kind != Kind::scalar || read == false);
                if (spill && !read) {
                    for (int b = first; b < last; ++b) fr.bytes[b] = sb_spill;
                    fr.spill[first / 8] = *val;
                } else {
                    bool zero = !read && val && val->kind == Kind::scalar && val->v.is_const(0);
                    for (int b = first; b < last; ++b) fr.bytes[b] = zero ? sb_zero : sb_misc;
                }
            } else {
                // A store somewhere in [first, last): spilled registers there are no longer known.
                forget_spills(fr, first, last);
                for (int b = first; b < last; ++b)
                    if (fr.bytes[b] == sb_zero) fr.bytes[b] = sb_misc;
            }
        }
        if (dst) *dst = loaded;
        return true;
    }

    bool access_ctx(State&, const Reg& p, int regno, std::int64_t off, int size, bool write, Reg* dst,
                    bool sign_extend, bool is_store) {
        (void)is_store;
        if (ctx.kind == CtxKind::unknown) {
            // A context the host lays out (unspec, host hooks): plain memory, bounded by the engine's
            // checked mode at run time since its size is known only then.
            if (p.v.is_const() && p.off + off + static_cast<std::int64_t>(p.v.umin) < 0)
                return fail(fmt::format("r{} context access at negative offset {}", regno,
                                        p.off + off + static_cast<std::int64_t>(p.v.umin)));
            if (dst) *dst = loaded_scalar(size, sign_extend);
            return true;
        }
        if (!p.v.is_const())
            return fail(fmt::format("r{} context access with a variable offset", regno));
        if (p.off != 0 || !p.v.is_const(0))  // the kernel rewrites context accesses by field: r + insn offset only
            return fail(fmt::format("dereference of modified context pointer r{} (offset {})", regno,
                                    p.off + static_cast<std::int64_t>(p.v.umin)));
        std::int64_t at = p.off + off + static_cast<std::int64_t>(p.v.umin);
        if (at < 0) return fail(fmt::format("r{} context access at negative offset {}", regno, at));
        if (ctx.size && at + size > ctx.size)
            return fail(fmt::format("r{} context access of {} bytes at offset {} is outside the {}-byte context of "
                                    "a {} program",
                                    regno, size, at, ctx.size, to_string(opt.type)));
        bool pkt_field = at == ctx.data || at == ctx.data_end || at == ctx.data_meta;
        for (std::int64_t f : {ctx.data, ctx.data_end, ctx.data_meta}) {
            // A packet pointer field is read whole, with a load of its own size, or not at all.
            if (f < 0) continue;
            bool overlaps = at < f + ctx.ptr_size && f < at + size;
            if (overlaps && (at != f || size != ctx.ptr_size))
                return fail(fmt::format("r{} reads {} bytes at context offset {}, part of the packet pointer field at "
                                        "offset {} (read it with a {}-byte load)",
                                        regno, size, at, f, ctx.ptr_size));
        }
        if (write) {
            if (ctx.read_only) return fail(fmt::format("write into the context of a {} program", to_string(opt.type)));
            if (pkt_field) return fail(fmt::format("write into the packet pointer field at context offset {}", at));
            return true;
        }
        if (!dst) return true;
        if (pkt_field) {
            if (ctx.kind == CtxKind::skb_nopkt) return fail("this program type cannot access packet data directly");
            *dst = Reg{};
            dst->kind = at == ctx.data ? Kind::pkt : at == ctx.data_end ? Kind::pkt_end : Kind::pkt_meta;
            dst->v = Scalar::constant(0);
            return true;
        }
        if (ctx.kind == CtxKind::btf_args && size == 8) {
            *dst = Reg::probe_ptr();
            return true;
        }
        *dst = loaded_scalar(size, sign_extend);
        return true;
    }

    // Memory argument of a helper: readable (or writable) `size` bytes through register `regno`.
    bool helper_mem(State& s, int regno, const Scalar& size, bool write, bool nullable, std::string_view helper) {
        Reg& p = s.cur().r[regno];
        if (nullable && p.kind == Kind::scalar && p.v.is_const(0)) return true;
        if (size.umax == 0 && nullable) return true;
        if (size.umax > static_cast<std::uint64_t>(max_var_off))
            return fail(fmt::format("{}: size argument is not bounded (up to {})", helper, size.umax));
        auto sz = static_cast<std::int64_t>(size.umax);
        if (sz == 0) return true;
        switch (p.kind) {
            case Kind::stack: {
                if (p.frame >= s.frames.size()) return fail(fmt::format("r{} points into a returned frame", regno));
                if (!var_ok(p, regno)) return false;
                auto [lo, hi] = bounds(p, 0, sz);
                if (lo < -stack_bytes || hi > 0)
                    return fail(fmt::format("{}: r{} stack memory of {} bytes at offset [{}, {}] is outside the frame",
                                            helper, regno, sz, lo, hi - sz));
                Frame& fr = s.frames[p.frame];
                int first = static_cast<int>(lo + stack_bytes), last = static_cast<int>(hi + stack_bytes);
                if (!write) {
                    for (int b = first; b < last; ++b)
                        if (fr.bytes[b] == sb_invalid)
                            return fail(fmt::format("{}: r{} points to uninitialised stack at offset {}", helper,
                                                    regno, b - stack_bytes));
                } else {
                    // The helper writes the bytes: spills there are gone; the bytes it surely writes
                    // (the minimum size at the lowest offset) become initialised.
                    forget_spills(fr, first, last);
                    if (p.v.is_const()) {
                        auto n = static_cast<int>(std::min<std::uint64_t>(size.umin, static_cast<std::uint64_t>(sz)));
                        for (int b = first; b < first + n; ++b) fr.bytes[b] = sb_misc;
                    }
                    for (int b = first; b < last; ++b)
                        if (fr.bytes[b] == sb_zero) fr.bytes[b] = sb_misc;
                }
                return true;
            }
            case Kind::ctx:
                // The host's own context memory (unspec, host hooks): bounded by checked mode at run time.
                unproved[pc] = true;
                if (ctx.kind != CtxKind::unknown)
                    return fail(fmt::format("{}: r{} passes the context as memory, which a {} program may not do",
                                            helper, regno, to_string(opt.type)));
                if (p.v.is_const() && p.off + static_cast<std::int64_t>(p.v.umin) < 0)
                    return fail(fmt::format("{}: r{} points before the context", helper, regno));
                return true;
            case Kind::map_value:
            case Kind::mem:
            case Kind::pkt:
            case Kind::pkt_meta: {
                if (p.kind == Kind::pkt || p.kind == Kind::pkt_meta) unproved[pc] = true;  // host-given bounds
                if (p.maybe_null) return fail(fmt::format("{}: r{} may be null", helper, regno));
                Reg copy = p;
                // Reuse the access rules with the size as one access.
                s.cur().r[regno] = copy;
                if (sz > max_var_off) return fail(fmt::format("{}: r{} size too large", helper, regno));
                return access_span(s, regno, sz, write, helper);
            }
            default:
                return fail(fmt::format("{}: r{} ({}) is not a pointer to memory the helper may {}", helper, regno,
                                        kind_name(p.kind, p.maybe_null), write ? "write" : "read"));
        }
    }

    bool access_span(State& s, int regno, std::int64_t sz, bool write, std::string_view helper) {
        const Reg& p = s.cur().r[regno];
        if (!var_ok(p, regno)) return false;
        auto [lo, hi] = bounds(p, 0, sz);
        if (p.kind == Kind::map_value) {
            const MapSpec* m = map_spec(p);
            if (!m) return fail(fmt::format("{}: r{} points into an unknown map", helper, regno));
            if (write && (p.rdonly || (m->flags & map_flags::rdonly_prog)))
                return fail(fmt::format("{}: write into read-only map \"{}\"", helper, m->name));
            if (lo < 0 || hi > m->value_size)
                return fail(fmt::format("{}: r{} memory of {} bytes at offset [{}, {}] is outside map \"{}\" value of "
                                        "{} bytes",
                                        helper, regno, sz, lo, hi - sz, m->name, m->value_size));
            return true;
        }
        if (p.kind == Kind::mem) {
            if (write && p.rdonly) return fail(fmt::format("{}: write into read-only memory r{}", helper, regno));
            if (lo < 0 || hi > static_cast<std::int64_t>(p.size))
                return fail(fmt::format("{}: r{} memory of {} bytes at offset [{}, {}] is outside its {} bytes", helper,
                                        regno, sz, lo, hi - sz, p.size));
            return true;
        }
        // Packet: the range counts from the pointer's base (data plus its variable part).
        if (p.v.smin < 0 || p.off < 0 || p.off + sz > p.range)
            return fail(fmt::format("{}: r{} packet memory of {} bytes at offset {} is not checked against the packet "
                                    "end ({} bytes are)",
                                    helper, regno, sz, p.off, p.range));
        return true;
    }

    // ---------------------------------------------------------------- ALU
    bool do_alu(State& s, const Insn& in) {
        bool is64 = isa::cls(in.opcode) == isa::cls_alu64;
        std::uint8_t op = in.opcode & 0xf0;
        int d = in.dst;
        Frame& f = s.cur();
        Reg src;
        bool use_src = (in.opcode & isa::src_x) != 0;
        if (op == isa::op_end) {
            if (!read_reg(s, d)) return false;
            Reg& r = f.r[d];
            if (r.kind != Kind::scalar) return fail(fmt::format("byte swap of pointer r{}", d));
            unsigned bits = static_cast<unsigned>(in.imm);
            bool to_le = !is64 && !use_src;
            std::uint64_t mask = bits >= 64 ? ~0ull : (1ull << bits) - 1;
            if (to_le) {
                r.v = bits >= 64 ? r.v : alu(AluOp::band, r.v, Scalar::constant(mask), false);
            } else if (r.v.is_const()) {
                std::uint64_t v = r.v.umin, o = 0;
                for (unsigned i = 0; i < bits / 8; ++i) o |= ((v >> (8 * i)) & 0xff) << (bits - 8 - 8 * i);
                r.v = Scalar::constant(o);
            } else {
                r.v = Scalar::urange(0, mask);
            }
            return true;
        }
        if (use_src) {
            if (!read_reg(s, in.src)) return false;
            src = f.r[in.src];
        } else {
            std::uint64_t k = is64 ? static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm))
                                   : static_cast<std::uint32_t>(in.imm);
            src = Reg::scalar(Scalar::constant(k));
        }
        if (op == isa::op_mov) {
            if (src.kind != Kind::scalar) {
                if (!is64 || in.offset != 0) {
                    f.r[d] = Reg::scalar(Scalar::urange(0, is64 ? ~0ull : 0xffffffffull));  // partial copy of a pointer
                    return true;
                }
                f.r[d] = src;
                return true;
            }
            Scalar v = src.v;
            if (in.offset != 0) v = sext(v, static_cast<unsigned>(in.offset));
            if (!is64) v = low32(v);
            f.r[d] = Reg::scalar(v);
            return true;
        }
        if (!read_reg(s, d)) return false;
        Reg dst = f.r[d];
        if (op == isa::op_neg) {
            if (dst.kind != Kind::scalar) return fail(fmt::format("negation of pointer r{}", d));
            f.r[d] = Reg::scalar(alu(AluOp::sub, Scalar::constant(0), dst.v, !is64));
            return true;
        }
        if (dst.kind == Kind::scalar && src.kind == Kind::scalar) {
            AluOp aop;
            switch (op) {
                case isa::op_add: aop = AluOp::add; break;
                case isa::op_sub: aop = AluOp::sub; break;
                case isa::op_mul: aop = AluOp::mul; break;
                case isa::op_div: aop = in.offset == 1 ? AluOp::sdiv : AluOp::udiv; break;
                case isa::op_mod: aop = in.offset == 1 ? AluOp::smod : AluOp::umod; break;
                case isa::op_or: aop = AluOp::bor; break;
                case isa::op_and: aop = AluOp::band; break;
                case isa::op_lsh: aop = AluOp::lsh; break;
                case isa::op_rsh: aop = AluOp::rsh; break;
                case isa::op_arsh: aop = AluOp::arsh; break;
                case isa::op_xor: aop = AluOp::bxor; break;
                default: return fail("unknown ALU operation");
            }
            f.r[d] = Reg::scalar(alu(aop, dst.v, src.v, !is64));
            return true;
        }
        if (!is64) {
            // The kernel (privileged) lets 32-bit subtraction of pointers produce a meaningless number.
            if (op == isa::op_sub) {
                f.r[d] = Reg::scalar(Scalar::urange(0, 0xffffffffull));
                return true;
            }
            return fail(fmt::format("32-bit arithmetic on pointer r{}", dst.is_ptr() ? d : in.src));
        }
        if (op == isa::op_sub && dst.is_ptr() && src.is_ptr()) {
            if (!same_object(dst, src) && !(dst.kind == Kind::pkt && src.kind == Kind::pkt_meta) &&
                !(dst.kind == Kind::pkt_end && src.kind == Kind::pkt) &&
                !(dst.kind == Kind::pkt_end && src.kind == Kind::pkt_meta) &&
                !(dst.kind == Kind::pkt && src.kind == Kind::pkt))
                return fail(fmt::format("subtraction of pointers to different objects (r{} {}, r{} {})", d,
                                        kind_name(dst.kind, false), in.src, kind_name(src.kind, false)));
            f.r[d] = Reg::unknown();
            return true;
        }
        if (op != isa::op_add && op != isa::op_sub)
            return fail(fmt::format("arithmetic other than add/sub on pointer r{}", dst.is_ptr() ? d : in.src));
        bool ptr_is_dst = dst.is_ptr();
        if (!ptr_is_dst && op == isa::op_sub) return fail(fmt::format("subtraction of pointer r{} from a scalar", in.src));
        if (dst.is_ptr() && src.is_ptr()) return fail("addition of two pointers");
        Reg p = ptr_is_dst ? dst : src;
        Scalar k = ptr_is_dst ? src.v : dst.v;
        int preg = ptr_is_dst ? d : in.src;
        if (p.maybe_null)
            return fail(fmt::format("pointer arithmetic on r{} ({}) before it is compared with 0", preg,
                                    kind_name(p.kind, true)));
        switch (p.kind) {
            case Kind::stack:
            case Kind::map_value:
            case Kind::mem:
            case Kind::pkt:
            case Kind::pkt_meta:
            case Kind::ctx: break;
            default:
                return fail(fmt::format("pointer arithmetic on r{} ({}) is not allowed", preg, kind_name(p.kind, false)));
        }
        if (k.is_const()) {
            auto c = static_cast<std::int64_t>(k.umin);
            std::int64_t no;
            if (__builtin_add_overflow(p.off, op == isa::op_add ? c : -c, &no) || no > max_var_off ||
                no < -max_var_off) {
                return fail(fmt::format("pointer r{} moved out of any object by {}", preg, c));
            }
            p.off = no;
        } else {
            // A host-defined context may be any size (r2 holds it): bounds are the engine's checks.
            bool host_ctx = p.kind == Kind::ctx && ctx.kind == CtxKind::unknown;
            if (!host_ctx && (k.smin < -max_var_off || k.smax > max_var_off) &&
                (k.umax > static_cast<std::uint64_t>(max_var_off)))
                return fail(fmt::format("pointer r{} ({}) plus an unbounded value (r{} in [{}, {}])", preg,
                                        kind_name(p.kind, false), ptr_is_dst ? in.src : d, k.smin, k.smax));
            Scalar kk = k;
            if (kk.smin < -max_var_off || kk.smax > max_var_off) kk = Scalar::urange(kk.umin, kk.umax);
            p.v = alu(op == isa::op_add ? AluOp::add : AluOp::sub, p.v, kk, false);
            if (p.kind == Kind::pkt || p.kind == Kind::pkt_meta) {
                p.id = fresh_id(s, static_cast<std::uint32_t>(d));
                p.range = 0;
            }
        }
        f.r[d] = p;
        return true;
    }

    // ---------------------------------------------------------------- branches
    // Marks the null check of pointer id/reg: null -> scalar 0, not null -> pointer.
    static void mark_null(State& s, Reg& target, bool is_null) {
        std::uint32_t id = target.id;
        auto apply = [&](Reg& r) {
            if (is_null) r = Reg::scalar(Scalar::constant(0));
            else r.maybe_null = false;
        };
        if (id != 0 && id != orphan) {
            for_each_reg(s, [&](Reg& r) {
                if (r.maybe_null && r.id == id) apply(r);
            });
        } else {
            apply(target);
        }
    }

    static void mark_pkt_range(State& s, Reg& target, std::int64_t range) {
        if (range <= 0) return;
        Kind k = target.kind;
        std::uint32_t id = target.id;
        if (id == orphan) {
            target.range = std::max(target.range, range);
            return;
        }
        for_each_reg(s, [&](Reg& r) {
            if (r.kind == k && r.id == id) r.range = std::max(r.range, range);
        });
    }

    // Splits `s` on the jump at pc; returns the (taken, fall-through) states that are possible.
    bool branch(State& s, const Insn& in, std::optional<State>& taken, std::optional<State>& fall) {
        bool is32 = isa::cls(in.opcode) == isa::cls_jmp32;
        std::uint8_t op = in.opcode & 0xf0;
        int d = in.dst;
        if (!read_reg(s, d)) return false;
        bool use_src = (in.opcode & isa::src_x) != 0;
        if (use_src && !read_reg(s, in.src)) return false;
        Reg a = s.cur().r[d];
        Reg b = use_src ? s.cur().r[in.src]
                        : Reg::scalar(Scalar::constant(is32 ? static_cast<std::uint32_t>(in.imm)
                                                             : static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm))));
        taken = s;
        fall = s;

        // Null checks.
        auto null_check = [&](const Reg& p, int preg, const Reg& other) -> bool {
            if (!(p.is_ptr() && other.kind == Kind::scalar && other.v.is_const(0))) return false;
            if (op != isa::op_jeq && op != isa::op_jne) return false;
            if (!p.maybe_null) {
                // A valid pointer is never 0: only one side is possible.
                (op == isa::op_jeq ? taken : fall).reset();
                return true;
            }
            State* is_null = op == isa::op_jeq ? &*taken : &*fall;
            State* not_null = op == isa::op_jeq ? &*fall : &*taken;
            mark_null(*is_null, is_null->cur().r[preg], true);
            mark_null(*not_null, not_null->cur().r[preg], false);
            return true;
        };
        if (!is32 && null_check(a, d, b)) return true;
        if (!is32 && use_src && null_check(b, in.src, a)) return true;

        // Packet pointers against the packet end (or packet meta against data).
        auto is_pkt_pair = [](const Reg& x, const Reg& y) {
            return (x.kind == Kind::pkt && y.kind == Kind::pkt_end) || (x.kind == Kind::pkt_meta && y.kind == Kind::pkt);
        };
        if (!is32 && use_src && (is_pkt_pair(a, b) || is_pkt_pair(b, a))) {
            bool ptr_left = is_pkt_pair(a, b);
            const Reg& p = ptr_left ? a : b;
            int preg = ptr_left ? d : in.src;
            std::int64_t range = p.off;
            // Which side of the jump knows "p <= end"?
            State* good = nullptr;
            switch (op) {
                case isa::op_jgt: good = ptr_left ? &*fall : &*taken; break;   // p > end / end > p
                case isa::op_jge: good = ptr_left ? &*fall : &*taken; break;   // p >= end / end >= p
                case isa::op_jlt: good = ptr_left ? &*taken : &*fall; break;   // p < end / end < p
                case isa::op_jle: good = ptr_left ? &*taken : &*fall; break;   // p <= end / end <= p
                default: break;
            }
            if (good && p.v.smin >= 0) mark_pkt_range(*good, good->cur().r[preg], range);
            return true;
        }
        if (a.kind != Kind::scalar || b.kind != Kind::scalar) return true;  // nothing to learn

        Scalar x = a.v, y = b.v;
        // 32-bit jumps compare the low halves (sign-extended for signed comparisons). The refined
        // halves are written back only when they are the whole values; otherwise they still tell
        // which sides are possible.
        bool write_back = true;
        if (is32) {
            bool is_signed_op = op == isa::op_jsgt || op == isa::op_jsge || op == isa::op_jslt || op == isa::op_jsle;
            std::uint64_t lim = is_signed_op ? 0x7fffffffull : 0xffffffffull;
            write_back = x.umax <= lim && y.umax <= lim;
            if (!write_back) {
                x = is_signed_op ? sext(low32(x), 32) : low32(x);
                y = is_signed_op ? sext(low32(y), 32) : low32(y);
            }
        }
        auto refine = [&](State& st, bool cond) -> bool {
            Scalar u = x, w = y;
            bool ok = true;
            switch (op) {
                case isa::op_jeq: ok = cond ? refine_eq(u, w) : refine_ne(u, w); break;
                case isa::op_jne: ok = cond ? refine_ne(u, w) : refine_eq(u, w); break;
                case isa::op_jgt: ok = cond ? refine_less(w, u, true, false) : refine_less(u, w, false, false); break;
                case isa::op_jge: ok = cond ? refine_less(w, u, false, false) : refine_less(u, w, true, false); break;
                case isa::op_jlt: ok = cond ? refine_less(u, w, true, false) : refine_less(w, u, false, false); break;
                case isa::op_jle: ok = cond ? refine_less(u, w, false, false) : refine_less(w, u, true, false); break;
                case isa::op_jsgt: ok = cond ? refine_less(w, u, true, true) : refine_less(u, w, false, true); break;
                case isa::op_jsge: ok = cond ? refine_less(w, u, false, true) : refine_less(u, w, true, true); break;
                case isa::op_jslt: ok = cond ? refine_less(u, w, true, true) : refine_less(w, u, false, true); break;
                case isa::op_jsle: ok = cond ? refine_less(u, w, false, true) : refine_less(w, u, true, true); break;
                case isa::op_jset:
                    if (cond) {
                        if (u.is_const() && w.is_const()) ok = (u.umin & w.umin) != 0;
                        else if (w.is_const() && ((u.t.value | u.t.mask) & w.umin) == 0) ok = false;
                    } else {
                        ok = refine_jset_false(u, w);
                    }
                    break;
                default: break;
            }
            if (!ok) return false;
            if (!write_back) return true;
            st.cur().r[d].v = u;
            if (use_src) st.cur().r[in.src].v = w;
            return true;
        };
        if (!refine(*taken, true)) taken.reset();
        if (!refine(*fall, false)) fall.reset();
        return true;
    }

    // ---------------------------------------------------------------- calls
    bool helper_call(State& s, const Insn& in, std::optional<std::size_t>& callback, State& cb_entry) {
        auto id = static_cast<std::uint32_t>(in.imm);
        const Proto* kp = kernel_proto(id);
        const HelperProto* hp = opt.helpers ? opt.helpers->find(id) : nullptr;
        bool host = hp && (!kp || hp->name != kp->name);
        Proto local;
        std::string hname;
        if (host) {
            local.id = id;
            local.name = hp->name;
            for (std::size_t i = 0; i < 5; ++i) {
                switch (hp->args[i]) {
                    case Arg::none: local.args[i] = A::none; break;
                    // A host prototype's default is five scalars: unused ones may be unset.
                    case Arg::scalar: local.args[i] = A::none; break;
                    case Arg::mem: local.args[i] = A::umem; break;
                    case Arg::mem_ro: local.args[i] = A::mem; break;
                    case Arg::size: local.args[i] = A::size0; break;
                    case Arg::cstr: local.args[i] = A::cstr; break;
                }
            }
            kp = &local;
        }
        if (id == 0xbad2310)  // libbpf's marker for an instruction whose CO-RE relocation found no match
            return fail("call to an instruction poisoned by a CO-RE relocation that found no match in the target BTF");
        if (!kp) return fail(fmt::format("unknown helper {}", id));
        hname = fmt::format("helper {}#{}", kp->name, id);
        if (kp->need == NeedCtx::skb && ctx.kind != CtxKind::skb && ctx.kind != CtxKind::skb_nopkt)
            return fail(fmt::format("{} needs an __sk_buff context; a {} program has none", hname, to_string(opt.type)));
        if (kp->need == NeedCtx::skb_write &&
            (ctx.kind != CtxKind::skb || opt.type == ProgType::cgroup_skb || opt.type == ProgType::flow_dissector))
            return fail(fmt::format("{} changes the packet, which a {} program may not do", hname, to_string(opt.type)));
        if (kp->need == NeedCtx::xdp && ctx.kind != CtxKind::xdp)
            return fail(fmt::format("{} needs an xdp_md context; a {} program has none", hname, to_string(opt.type)));
        auto only = [&](ProgType t, std::string_view what) {
            return fail(fmt::format("{} is only for {} programs, not {}", hname, what, to_string(opt.type)));
            (void)t;
        };
        switch (kp->need) {
            case NeedCtx::sock_ops: if (opt.type != ProgType::sock_ops) return only(ProgType::sock_ops, "sock_ops"); break;
            case NeedCtx::sk_msg: if (opt.type != ProgType::sk_msg) return only(ProgType::sk_msg, "sk_msg"); break;
            case NeedCtx::sk_skb: if (opt.type != ProgType::sk_skb) return only(ProgType::sk_skb, "sk_skb"); break;
            case NeedCtx::sock_addr:
                if (opt.type != ProgType::cgroup_sock_addr) return only(ProgType::cgroup_sock_addr, "cgroup_sock_addr");
                break;
            case NeedCtx::kprobe:
                // The kernel allows it on kprobes; ebpfrt also on uprobes and host hooks (unspec, ext).
                if (opt.type != ProgType::kprobe && opt.type != ProgType::unspec && opt.type != ProgType::ext)
                    return only(ProgType::kprobe, "kprobe, uprobe and host-hook");
                break;
            default: break;
        }

        Frame& f = s.cur();
        const MapSpec* map = nullptr;
        Reg map_reg;
        std::optional<std::size_t> func;
        std::optional<std::uint32_t> release_id;
        for (int i = 0; i < 5; ++i) {
            A a = kp->args[static_cast<std::size_t>(i)];
            int r = i + 1;
            if (a == A::none) {
                if (host) continue;  // host prototypes may leave a scalar between pointer arguments
                break;
            }
            if (a == A::size || a == A::size0) continue;  // checked with its memory argument
            if (!read_reg(s, r)) return fail(fmt::format("{}: argument {} (r{}) is not initialised", hname, i + 1, r));
            Reg& reg = f.r[r];
            auto next_size = [&](Scalar& out) -> bool {
                if (i + 1 >= 5) return fail(fmt::format("{}: memory argument without size", hname));
                A sa = kp->args[static_cast<std::size_t>(i + 1)];
                int sr = r + 1;
                if (!read_reg(s, sr)) return false;
                const Reg& sz = f.r[sr];
                if (sz.kind != Kind::scalar)
                    return fail(fmt::format("{}: size argument r{} is a pointer", hname, sr));
                if (sz.v.smin < 0 && sz.v.umax > static_cast<std::uint64_t>(max_var_off))
                    return fail(fmt::format("{}: size argument r{} may be negative", hname, sr));
                if (sa == A::size && sz.v.umax == 0)
                    return fail(fmt::format("{}: size argument r{} is zero", hname, sr));
                out = sz.v;
                return true;
            };
            switch (a) {
                case A::any:
                case A::anynull: break;
                case A::ctx:
                    if (reg.kind != Kind::ctx || reg.off != 0 || !reg.v.is_const(0))
                        return fail(fmt::format("{}: argument {} (r{}) must be the context pointer, not {}", hname,
                                                i + 1, r, kind_name(reg.kind, reg.maybe_null)));
                    break;
                case A::map:
                    if (reg.kind != Kind::map_ptr || reg.maybe_null)
                        return fail(fmt::format("{}: argument {} (r{}) must be a map, not {}", hname, i + 1, r,
                                                kind_name(reg.kind, reg.maybe_null)));
                    map = map_spec(reg);
                    map_reg = reg;
                    if (!map) return fail(fmt::format("{}: r{} refers to an unknown map", hname, r));
                    if (!map_fits_helper(map->type, id))
                        return fail(fmt::format("{}: map \"{}\" of type {} cannot be used with this helper", hname,
                                                map->name, to_string(map->type)));
                    break;
                case A::key:
                case A::value:
                case A::uvalue: {
                    if (!map) return fail(fmt::format("{}: key or value argument without a map", hname));
                    std::uint32_t n = a == A::key ? map->key_size : map->value_size;
                    if (a != A::key && (map->type == MapType::percpu_array || map->type == MapType::percpu_hash ||
                                        map->type == MapType::lru_percpu_hash))
                        n = map->value_size;
                    if (!helper_mem(s, r, Scalar::constant(n), a == A::uvalue, false, hname)) return false;
                    break;
                }
                case A::mem:
                case A::memnull:
                case A::umem:
                case A::umemnull: {
                    Scalar sz;
                    if (!next_size(sz)) return false;
                    if (!helper_mem(s, r, sz, a == A::umem || a == A::umemnull, a == A::memnull || a == A::umemnull,
                                    hname))
                        return false;
                    break;
                }
                case A::long_:
                case A::int_:
                    if (!helper_mem(s, r, Scalar::constant(a == A::long_ ? 8 : 4), true, false, hname)) return false;
                    break;
                case A::dynptr:
                    if (reg.kind != Kind::stack)
                        return fail(fmt::format("{}: argument {} (r{}) must point to a dynptr on the stack", hname,
                                                i + 1, r));
                    if (!helper_mem(s, r, Scalar::constant(16), true, false, hname)) return false;
                    break;
                case A::cstr:
                    unproved[pc] = true;  // only its first byte is proved; checked mode finds the NUL
                    if (!helper_mem(s, r, Scalar::constant(1), false, false, hname)) return false;
                    break;
                case A::func:
                    if (reg.kind != Kind::func)
                        return fail(fmt::format("{}: argument {} (r{}) must be a function, not {}", hname, i + 1, r,
                                                kind_name(reg.kind, reg.maybe_null)));
                    func = reg.size;
                    break;
                case A::alloc:
                    if (reg.kind != Kind::mem || reg.maybe_null || reg.off != 0 || !reg.v.is_const(0))
                        return fail(fmt::format("{}: argument {} (r{}) must be a record from ringbuf_reserve, not {}",
                                                hname, i + 1, r, kind_name(reg.kind, reg.maybe_null)));
                    release_id = reg.id;
                    break;
                case A::mapval:
                    if (reg.kind != Kind::map_value || reg.maybe_null)
                        return fail(fmt::format("{}: argument {} (r{}) must point into a map value, not {}", hname,
                                                i + 1, r, kind_name(reg.kind, reg.maybe_null)));
                    break;
                default: break;
            }
        }

        // Callbacks: analysed as a call from this instruction that comes back to it.
        if (func) {
            if (*func >= code.size()) return fail(fmt::format("{}: callback outside the program", hname));
            if (s.frames.size() >= isa::max_call_depth)
                return fail(fmt::format("{}: callback would exceed {} frames", hname, isa::max_call_depth));
            cb_entry = s;
            Frame nf;
            nf.r[10].kind = Kind::stack;
            nf.r[10].frame = static_cast<std::uint32_t>(s.frames.size());
            nf.r[10].v = Scalar::constant(0);
            auto mval = [&]() {
                Reg r;
                r.kind = Kind::map_value;
                r.map = map_reg.map;
                r.inner = map_reg.inner;
                r.v = Scalar::constant(0);
                return r;
            };
            switch (id) {
                case 164: {  // for_each_map_elem(map, cb, ctx, flags): cb(map, key, value, ctx)
                    nf.r[1] = map_reg;
                    Reg key;
                    key.kind = Kind::mem;
                    key.rdonly = true;
                    key.size = map ? map->key_size : 0;
                    key.v = Scalar::constant(0);
                    nf.r[2] = key;
                    nf.r[3] = mval();
                    nf.r[4] = f.r[3];
                    break;
                }
                case 181:  // loop(n, cb, ctx, flags): cb(index, ctx)
                    nf.r[1] = Reg::scalar(Scalar::urange(0, 0xffffffffull));
                    nf.r[2] = f.r[3];
                    break;
                case 209:  // user_ringbuf_drain(map, cb, ctx, flags): cb(dynptr, ctx)
                    nf.r[1] = Reg::probe_ptr();
                    nf.r[2] = f.r[3];
                    break;
                case 180:  // find_vma(task, addr, cb, ctx, flags): cb(task, vma, ctx)
                    nf.r[1] = nf.r[2] = Reg::probe_ptr();
                    nf.r[3] = f.r[4];
                    break;
                default:  // timer_set_callback: cb(map, key, value); the timer's map is not tracked here
                    nf.r[1] = Reg::unknown();
                    nf.r[2] = Reg::unknown();
                    nf.r[3] = Reg::unknown();
                    break;
            }
            cb_entry.frames.push_back(nf);
            callback = *func;
        }

        // Result.
        Reg r0 = Reg::unknown();
        switch (kp->ret) {
            case R::none: r0 = Reg{}; break;
            case R::integer: break;
            case R::u32: r0 = Reg::scalar(Scalar::urange(0, 0xffffffffull)); break;
            case R::map_value:
            case R::map_value_or_null: {
                if (!map) return fail(fmt::format("{}: returns a map value but has no map argument", hname));
                r0 = Reg{};
                bool of_maps = map->type == MapType::array_of_maps || map->type == MapType::hash_of_maps;
                if (of_maps && !map_reg.inner) {
                    r0.kind = Kind::map_ptr;
                    r0.inner = true;
                } else if (map->type == MapType::sockmap || map->type == MapType::sockhash ||
                           map->type == MapType::xskmap || map->type == MapType::devmap ||
                           map->type == MapType::devmap_hash || map->type == MapType::cpumap) {
                    r0 = Reg::probe_ptr();  // a socket or device: a kernel object
                    break;
                } else {
                    r0.kind = Kind::map_value;
                    r0.inner = map_reg.inner;
                }
                r0.map = map_reg.map;
                r0.v = Scalar::constant(0);
                if (kp->ret == R::map_value_or_null) {
                    r0.maybe_null = true;
                    r0.id = fresh_id(s, 0);
                }
                break;
            }
            case R::mem_or_null: {
                int sr = kp->size_arg + 1;
                const Reg& sz = f.r[sr];
                if (sz.kind != Kind::scalar || !sz.v.is_const())
                    return fail(fmt::format("{}: size argument r{} must be a known constant", hname, sr));
                r0 = Reg{};
                r0.kind = Kind::mem;
                r0.size = sz.v.umin;
                r0.maybe_null = true;
                r0.v = Scalar::constant(0);
                r0.id = fresh_id(s, 0);
                break;
            }
            case R::untrusted:
            case R::untrusted_or_null:
                r0 = Reg::probe_ptr();
                break;
        }
        if (release_id && *release_id != 0 && *release_id != orphan) {
            std::uint32_t rid = *release_id;
            for_each_reg(s, [&](Reg& r) {
                if (r.kind == Kind::mem && r.id == rid) r = Reg::unknown();
            });
        } else if (release_id) {
            s.cur().r[1] = Reg::unknown();
        }
        if (changes_packet(id)) {
            // The packet may have moved or changed size: every pointer into it must be loaded again.
            for_each_reg(s, [](Reg& r) {
                if (r.kind == Kind::pkt || r.kind == Kind::pkt_end || r.kind == Kind::pkt_meta) r = Reg::unknown();
            });
        }
        Frame& ff = s.cur();
        ff.r[0] = r0;
        for (int r = 1; r <= 5; ++r) ff.r[r] = Reg{};
        return true;
    }

    // ---------------------------------------------------------------- log
    static std::string describe(const Reg& r) {
        auto range = [](const Scalar& v) {
            if (v.is_const()) return fmt::format("{}", static_cast<std::int64_t>(v.umin));
            return fmt::format("u[{:#x},{:#x}] s[{},{}]", v.umin, v.umax, v.smin, v.smax);
        };
        switch (r.kind) {
            case Kind::uninit: return "?";
            case Kind::scalar: return range(r.v);
            default: {
                std::string out = std::string(kind_name(r.kind, r.maybe_null));
                if (r.kind == Kind::stack) out += fmt::format("{}", r.frame);
                if (r.map >= 0) out += fmt::format("(map {})", r.map);
                out += fmt::format("{:+}", r.off);
                if (!r.v.is_const(0)) out += "+" + range(r.v);
                if (r.id) out += fmt::format(" id={}", r.id == orphan ? -1 : static_cast<std::int64_t>(r.id));
                if (r.kind == Kind::pkt || r.kind == Kind::pkt_meta) out += fmt::format(" r={}", r.range);
                return out;
            }
        }
    }

    void log_insn(const State& s) {
        std::string line = fmt::format("{}/{}: {:<32}", cur_ctx, pc, isa::disassemble_one(code, pc));
        for (std::size_t i = 0; i < isa::num_registers; ++i)
            if (s.cur().r[i].kind != Kind::uninit) line += fmt::format(" r{}={}", i, describe(s.cur().r[i]));
        opt.log(line);
    }

    // ---------------------------------------------------------------- main loop
    // Runs straight-line code from `start` in call context `c`; hands states to successors.
    bool run_block(std::uint32_t c, std::size_t start, State s) {
        cur_ctx = c;
        pc = start;
        bool first = true;
        for (;;) {
            if (pc >= code.size()) return fail("execution falls off the end of the program");
            if (!first && head[pc]) {
                propagate(c, pc, std::move(s));
                return true;
            }
            first = false;
            if (++visits > opt.max_visits)
                return fail(fmt::format("program too complex: more than {} instruction visits", opt.max_visits));
            const Insn& in = code[pc];
            std::uint8_t cl = isa::cls(in.opcode);
            if (opt.log) log_insn(s);
            Frame& f = s.cur();
            switch (cl) {
                case isa::cls_alu:
                case isa::cls_alu64:
                    if (!do_alu(s, in)) return false;
                    ++pc;
                    continue;
                case isa::cls_ld: {
                    if (in.opcode == isa::opcode_lddw) {
                        if (pc + 1 >= code.size()) return fail("lddw without its second slot");
                        Reg r;
                        std::int32_t imm2 = code[pc + 1].imm;
                        switch (in.src) {
                            case isa::pseudo_imm64:
                                r = Reg::scalar(Scalar::constant(static_cast<std::uint32_t>(in.imm) |
                                                                 (static_cast<std::uint64_t>(static_cast<std::uint32_t>(imm2)) << 32)));
                                break;
                            case isa::pseudo_map_idx:
                            case isa::pseudo_map_idx_value:
                                if (in.imm < 0 || static_cast<std::size_t>(in.imm) >= opt.maps.size())
                                    return fail(fmt::format("lddw refers to map {} but the program has {} maps", in.imm,
                                                            opt.maps.size()));
                                r.kind = in.src == isa::pseudo_map_idx ? Kind::map_ptr : Kind::map_value;
                                r.map = in.imm;
                                r.v = Scalar::constant(0);
                                if (in.src == isa::pseudo_map_idx_value) {
                                    r.off = imm2;
                                    const MapSpec& m = opt.maps[static_cast<std::size_t>(in.imm)];
                                    r.rdonly = (m.flags & map_flags::rdonly_prog) != 0;
                                }
                                break;
                            case isa::pseudo_func: {
                                auto t = static_cast<std::int64_t>(pc) + 1 + in.imm;
                                if (t < 0 || static_cast<std::size_t>(t) >= code.size())
                                    return fail("function reference outside the program");
                                r.kind = Kind::func;
                                r.size = static_cast<std::uint64_t>(t);
                                r.v = Scalar::constant(0);
                                break;
                            }
                            case isa::pseudo_btf_id:
                                r = Reg::probe_ptr();
                                break;
                            default:
                                return fail(fmt::format("lddw with src {} (a map fd) was not resolved to a map", in.src));
                        }
                        f.r[in.dst] = r;
                        pc += 2;
                        continue;
                    }
                    // Legacy packet loads (LD_ABS / LD_IND): r6 must be the context of a socket buffer.
                    if (ctx.kind != CtxKind::skb && ctx.kind != CtxKind::skb_nopkt)
                        return fail(fmt::format("packet load (ld_abs/ld_ind) in a {} program", to_string(opt.type)));
                    if (f.r[6].kind != Kind::ctx) return fail("packet load (ld_abs/ld_ind) needs the context in r6");
                    unproved[pc] = true;
                    if ((in.opcode & 0xe0) == isa::mode_ind && !read_reg(s, in.src)) return false;
                    int size = access_size(in.opcode);
                    f.r[0] = loaded_scalar(size, false);
                    for (int r = 1; r <= 5; ++r) f.r[r] = Reg{};
                    ++pc;
                    continue;
                }
                case isa::cls_ldx: {
                    int size = access_size(in.opcode);
                    bool sx = (in.opcode & 0xe0) == isa::mode_memsx;
                    Reg out;
                    if (!access(s, in.src, in.offset, size, false, true, &out, nullptr, sx)) return false;
                    s.cur().r[in.dst] = out;
                    ++pc;
                    continue;
                }
                case isa::cls_st:
                case isa::cls_stx: {
                    int size = access_size(in.opcode);
                    if ((in.opcode & 0xe0) == isa::mode_atomic) {
                        if (!read_reg(s, in.src)) return false;
                        if (s.cur().r[in.src].kind != Kind::scalar)
                            return fail(fmt::format("atomic operation with pointer r{} as operand", in.src));
                        Reg base = s.cur().r[in.dst];
                        if (base.kind == Kind::ctx || base.kind == Kind::pkt || base.kind == Kind::pkt_meta)
                            return fail(fmt::format("atomic operation on {} pointer r{}", kind_name(base.kind, false),
                                                    in.dst));
                        if (in.imm == isa::atomic_cmpxchg && !read_reg(s, 0)) return false;
                        Reg tmp;
                        if (!access(s, in.dst, in.offset, size, true, true, &tmp, &s.cur().r[in.src], false))
                            return false;
                        Reg result = size == 8 ? Reg::unknown() : Reg::scalar(Scalar::urange(0, 0xffffffffull));
                        if (in.imm == isa::atomic_cmpxchg) s.cur().r[0] = result;
                        else if (in.imm & isa::atomic_fetch) s.cur().r[in.src] = result;
                        ++pc;
                        continue;
                    }
                    Reg val;
                    const Reg* vp = nullptr;
                    if (cl == isa::cls_stx) {
                        if (!read_reg(s, in.src)) return false;
                        val = s.cur().r[in.src];
                        vp = &val;
                    } else {
                        val = Reg::scalar(Scalar::constant(static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm))));
                        vp = &val;
                    }
                    if (val.kind == Kind::scalar && size < 8) val.v = low32(alu(AluOp::band, val.v,
                                                                              Scalar::constant((1ull << (size * 8)) - 1), false));
                    if (!access(s, in.dst, in.offset, size, true, false, nullptr, vp, false)) return false;
                    ++pc;
                    continue;
                }
                case isa::cls_jmp:
                case isa::cls_jmp32: {
                    std::uint8_t op = in.opcode & 0xf0;
                    if (op == isa::op_exit) return do_exit(c, std::move(s));
                    if (op == isa::op_call) {
                        if (in.opcode & isa::src_x) return fail("callx (call through a register) cannot be verified");
                        if (in.src == isa::call_local) {
                            auto t = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + in.imm);
                            if (s.frames.size() >= isa::max_call_depth)
                                return fail(fmt::format("call would exceed {} frames", isa::max_call_depth));
                            const auto& chain = ctx_strings[c];
                            for (std::uint32_t site : chain) {
                                if (site & callback_bit) continue;
                                if (static_cast<std::size_t>(static_cast<std::int64_t>(site) + 1 + code[site].imm) == t)
                                    return fail(fmt::format("recursive call to insn {}", t));
                            }
                            Frame nf;
                            for (int r = 1; r <= 5; ++r) nf.r[r] = f.r[r];
                            nf.r[10].kind = Kind::stack;
                            nf.r[10].frame = static_cast<std::uint32_t>(s.frames.size());
                            nf.r[10].v = Scalar::constant(0);
                            s.frames.push_back(nf);
                            auto chain2 = chain;
                            chain2.push_back(static_cast<std::uint32_t>(pc));
                            std::uint32_t c2 = ctx_of(std::move(chain2));
                            propagate(c2, t, std::move(s));
                            return true;
                        }
                        if (in.src == isa::call_kfunc) {
                            const HelperProto* kf = opt.helpers ? opt.helpers->find_kfunc(static_cast<std::uint32_t>(in.imm)) : nullptr;
                            if (!kf) return fail(fmt::format("kfunc with BTF id {} is not known", in.imm));
                            unproved[pc] = true;  // host kfuncs: their pointer arguments are not analysed
                            for (std::size_t i = 0; i < 5; ++i)
                                if (kf->args[i] != Arg::none && !read_reg(s, static_cast<int>(i + 1))) return false;
                            s.cur().r[0] = Reg::unknown();
                            for (int r = 1; r <= 5; ++r) s.cur().r[r] = Reg{};
                            ++pc;
                            continue;
                        }
                        std::optional<std::size_t> cb;
                        State cb_entry;
                        if (!helper_call(s, in, cb, cb_entry)) return false;
                        if (cb) {
                            auto chain2 = ctx_strings[c];
                            chain2.push_back(static_cast<std::uint32_t>(pc) | callback_bit);
                            std::uint32_t c2 = ctx_of(std::move(chain2));
                            std::size_t here = pc;
                            propagate(c2, *cb, std::move(cb_entry));
                            pc = here;
                        }
                        ++pc;
                        continue;
                    }
                    if (op == isa::op_ja) {
                        std::int64_t off = cl == isa::cls_jmp32 ? in.imm : in.offset;
                        propagate(c, static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + off), std::move(s));
                        return true;
                    }
                    std::optional<State> taken, fall;
                    if (!branch(s, in, taken, fall)) return false;
                    std::size_t here = pc;
                    if (taken) propagate(c, static_cast<std::size_t>(static_cast<std::int64_t>(here) + 1 + in.offset),
                                         std::move(*taken));
                    if (fall) propagate(c, here + 1, std::move(*fall));
                    return true;
                }
                default: return fail("unknown instruction class");
            }
        }
    }

    bool do_exit(std::uint32_t c, State s) {
        if (s.cur().r[0].kind == Kind::uninit) return fail("r0 is not set at exit");
        if (s.frames.size() == 1) return true;
        const auto& chain = ctx_strings[c];
        std::uint32_t site = chain.back();
        Reg r0 = s.cur().r[0];
        auto popped = static_cast<std::uint32_t>(s.frames.size() - 1);
        if (r0.kind == Kind::stack && r0.frame == popped) return fail("a subprogram returns a pointer to its own stack");
        s.frames.pop_back();
        // Nothing may keep pointing into the frame that is gone.
        for_each_reg(s, [&](Reg& r) {
            if (r.kind == Kind::stack && r.frame >= popped) r = Reg::unknown();
        });
        auto parent = std::vector<std::uint32_t>(chain.begin(), chain.end() - 1);
        std::uint32_t pc_ctx = ctx_of(std::move(parent));
        if (site & callback_bit) {
            if (r0.kind != Kind::scalar) return fail("a callback must return a scalar");
            // bpf_loop, for_each_map_elem, find_vma, user_ringbuf_drain: 0 (go on) or 1 (stop);
            // timer callbacks: 0 (kernel's retval ranges for callbacks).
            std::uint32_t helper = static_cast<std::uint32_t>(code[site & ~callback_bit].imm);
            std::uint64_t max = helper == 170 ? 0 : 1;
            if (r0.v.umax > max)
                return fail(fmt::format("callback of helper {} returns r0 in [{}, {}], not in [0, {}]", helper,
                                        r0.v.smin, r0.v.smax, max));
            // Back to the helper call: its state now includes what the callback did.
            propagate(pc_ctx, site & ~callback_bit, std::move(s));
            return true;
        }
        Frame& f = s.cur();
        f.r[0] = r0;
        for (int r = 1; r <= 5; ++r) f.r[r] = Reg{};
        propagate(pc_ctx, site + 1, std::move(s));
        return true;
    }

    bool run() {
        unproved.assign(code.size(), false);
        analyse_cfg();
        ctx_of({});
        State s;
        s.frames.emplace_back();
        Frame& f = s.cur();
        f.r[1].kind = Kind::ctx;
        f.r[1].v = Scalar::constant(0);
        // A host-defined context comes with its size in r2 (Program::run: r1 = data, r2 = size).
        if (ctx.kind == CtxKind::unknown) f.r[2] = Reg::scalar(Scalar::urange(0, ctx.size ? ctx.size : 0xffffffffull));
        f.r[10].kind = Kind::stack;
        f.r[10].frame = 0;
        f.r[10].v = Scalar::constant(0);
        compute_liveness();
        nodes[{0u, 0u}].push_back(Node{std::move(s), 0});
        state_count = 1;
        work.insert({0u, 0u, 0u});
        while (!work.empty()) {
            auto [c, at, idx] = *work.begin();
            work.erase(work.begin());
            State copy = nodes.at({c, at})[idx].st;
            if (!run_block(c, at, std::move(copy))) return false;
            if (rejected) return false;
        }
        return !rejected;
    }
};

}  // namespace
}  // namespace verifier

Result<void> verify(std::string_view name, std::span<const Insn> code, const VerifyOptions& options,
                    VerifyReport* report) {
    auto valid = isa::validate(code);
    if (!valid) {
        if (report) {
            report->accepted = false;
            report->reason = valid.error().message();
        }
        return valid.error().wrap(fmt::format("verify \"{}\"", name));
    }
    // A rejection after states were joined may come from the join's imprecision, not from the
    // program: try again keeping more states apart (each try costs more time and memory).
    VerifyOptions attempt = options;
    std::optional<verifier::Verifier> tried;
    bool ok = false;
    for (int round = 0;; ++round) {
        tried.emplace(name, code, attempt);
        ok = tried->run();
        if (ok || !tried->joined || round == 1 || attempt.max_states_per_point >= 512) break;
        attempt.max_states_per_point *= 4;
        if (options.log)
            options.log(fmt::format("states were joined before the rejection: again with {} states per instruction",
                                    attempt.max_states_per_point));
    }
    verifier::Verifier& v = *tried;
    if (report) {
        report->accepted = ok;
        report->proved.clear();
        if (ok) {
            report->proved.resize(code.size());
            for (std::size_t i = 0; i < code.size(); ++i) {
                std::uint8_t c = isa::cls(code[i].opcode);
                bool mem = c == isa::cls_ldx || c == isa::cls_st || c == isa::cls_stx;
                report->proved[i] = mem && !v.unproved[i];
            }
            report->all_proved = std::none_of(v.unproved.begin(), v.unproved.end(), [](bool u) { return u; });
        }
        report->visits = v.visits;
        report->states = v.state_count;
        if (!ok && v.rejected) {
            report->insn = v.rejected->pc;
            report->disassembly = isa::disassemble_one(code, v.rejected->pc);
            report->reason = v.rejected->reason;
        }
    }
    if (ok) return {};
    std::string reason = v.rejected ? v.rejected->reason : "rejected";
    std::size_t at = v.rejected ? v.rejected->pc : 0;
    return Error(Errc::verifier_rejected, fmt::format("verify \"{}\": insn {} ({}): {}", name, at,
                                                      isa::disassemble_one(code, at), reason));
}

}  // namespace ebpfrt
