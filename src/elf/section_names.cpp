// Program type and attach point from a SEC() name, following libbpf's section_defs table.

#include "elf/elf_internal.hpp"

#include <array>

#include <fmt/format.h>

namespace ebpfrt {
namespace {

struct SectionDef {
    std::string_view prefix;
    ProgType type;
    AttachKind attach;
    bool exact_or_slash;  ///< matches "prefix" exactly or "prefix/..." (true), or any string starting with it (false)
};

// Longer prefixes first where one is a prefix of another ("uretprobe" before "uprobe" is not needed
// since matching is by full component; "kretprobe/" vs "kprobe/" differ at the first letter).
constexpr std::array section_defs{
    SectionDef{"socket", ProgType::socket_filter, AttachKind::socket, false},
    SectionDef{"sk_reuseport/migrate", ProgType::sk_reuseport, AttachKind::other, true},
    SectionDef{"sk_reuseport", ProgType::sk_reuseport, AttachKind::other, true},
    SectionDef{"kprobe.multi", ProgType::kprobe, AttachKind::kprobe, true},
    SectionDef{"kretprobe.multi", ProgType::kprobe, AttachKind::kretprobe, true},
    SectionDef{"kprobe", ProgType::kprobe, AttachKind::kprobe, true},
    SectionDef{"kretprobe", ProgType::kprobe, AttachKind::kretprobe, true},
    SectionDef{"ksyscall", ProgType::kprobe, AttachKind::kprobe, true},
    SectionDef{"kretsyscall", ProgType::kprobe, AttachKind::kretprobe, true},
    SectionDef{"uprobe.multi.s", ProgType::kprobe, AttachKind::uprobe, true},
    SectionDef{"uprobe.multi", ProgType::kprobe, AttachKind::uprobe, true},
    SectionDef{"uretprobe.multi.s", ProgType::kprobe, AttachKind::uretprobe, true},
    SectionDef{"uretprobe.multi", ProgType::kprobe, AttachKind::uretprobe, true},
    SectionDef{"uprobe.s", ProgType::kprobe, AttachKind::uprobe, true},
    SectionDef{"uprobe", ProgType::kprobe, AttachKind::uprobe, true},
    SectionDef{"uretprobe.s", ProgType::kprobe, AttachKind::uretprobe, true},
    SectionDef{"uretprobe", ProgType::kprobe, AttachKind::uretprobe, true},
    SectionDef{"usdt.s", ProgType::kprobe, AttachKind::usdt, true},
    SectionDef{"usdt", ProgType::kprobe, AttachKind::usdt, true},
    SectionDef{"tc/ingress", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"tc/egress", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"tcx/ingress", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"tcx/egress", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"netkit/primary", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"netkit/peer", ProgType::sched_cls, AttachKind::tc, true},
    SectionDef{"tc", ProgType::sched_cls, AttachKind::tc, false},
    SectionDef{"classifier", ProgType::sched_cls, AttachKind::tc, false},
    SectionDef{"action", ProgType::sched_act, AttachKind::tc, false},
    SectionDef{"tracepoint", ProgType::tracepoint, AttachKind::tracepoint, true},
    SectionDef{"tp", ProgType::tracepoint, AttachKind::tracepoint, true},
    SectionDef{"raw_tracepoint.w", ProgType::raw_tracepoint_writable, AttachKind::raw_tracepoint, true},
    SectionDef{"raw_tp.w", ProgType::raw_tracepoint_writable, AttachKind::raw_tracepoint, true},
    SectionDef{"raw_tracepoint", ProgType::raw_tracepoint, AttachKind::raw_tracepoint, true},
    SectionDef{"raw_tp", ProgType::raw_tracepoint, AttachKind::raw_tracepoint, true},
    SectionDef{"tp_btf", ProgType::tracing, AttachKind::tp_btf, true},
    SectionDef{"fentry.s", ProgType::tracing, AttachKind::fentry, true},
    SectionDef{"fentry", ProgType::tracing, AttachKind::fentry, true},
    SectionDef{"fmod_ret.s", ProgType::tracing, AttachKind::other, true},
    SectionDef{"fmod_ret", ProgType::tracing, AttachKind::other, true},
    SectionDef{"fexit.s", ProgType::tracing, AttachKind::fexit, true},
    SectionDef{"fexit", ProgType::tracing, AttachKind::fexit, true},
    SectionDef{"iter.s", ProgType::tracing, AttachKind::other, true},
    SectionDef{"iter", ProgType::tracing, AttachKind::other, true},
    SectionDef{"freplace", ProgType::ext, AttachKind::other, true},
    SectionDef{"ext", ProgType::ext, AttachKind::host_hook, true},
    SectionDef{"lsm.s", ProgType::lsm, AttachKind::other, true},
    SectionDef{"lsm_cgroup", ProgType::lsm, AttachKind::other, true},
    SectionDef{"lsm", ProgType::lsm, AttachKind::other, true},
    SectionDef{"xdp.frags/devmap", ProgType::xdp, AttachKind::xdp, true},
    SectionDef{"xdp/devmap", ProgType::xdp, AttachKind::xdp, true},
    SectionDef{"xdp.frags/cpumap", ProgType::xdp, AttachKind::xdp, true},
    SectionDef{"xdp/cpumap", ProgType::xdp, AttachKind::xdp, true},
    SectionDef{"xdp.frags", ProgType::xdp, AttachKind::xdp, true},
    SectionDef{"xdp", ProgType::xdp, AttachKind::xdp, false},
    SectionDef{"perf_event", ProgType::perf_event, AttachKind::perf_event, true},
    SectionDef{"lwt_in", ProgType::lwt_in, AttachKind::other, true},
    SectionDef{"lwt_out", ProgType::lwt_out, AttachKind::other, true},
    SectionDef{"lwt_xmit", ProgType::lwt_xmit, AttachKind::other, true},
    SectionDef{"lwt_seg6local", ProgType::lwt_seg6local, AttachKind::other, true},
    SectionDef{"sockops", ProgType::sock_ops, AttachKind::other, true},
    SectionDef{"sk_skb", ProgType::sk_skb, AttachKind::other, false},
    SectionDef{"sk_msg", ProgType::sk_msg, AttachKind::other, true},
    SectionDef{"lirc_mode2", ProgType::lirc_mode2, AttachKind::other, true},
    SectionDef{"flow_dissector", ProgType::flow_dissector, AttachKind::other, true},
    SectionDef{"cgroup_skb", ProgType::cgroup_skb, AttachKind::other, true},
    SectionDef{"cgroup/skb", ProgType::cgroup_skb, AttachKind::other, true},
    SectionDef{"cgroup/dev", ProgType::cgroup_device, AttachKind::other, true},
    SectionDef{"cgroup/sysctl", ProgType::cgroup_sysctl, AttachKind::other, true},
    SectionDef{"cgroup/getsockopt", ProgType::cgroup_sockopt, AttachKind::other, true},
    SectionDef{"cgroup/setsockopt", ProgType::cgroup_sockopt, AttachKind::other, true},
    SectionDef{"cgroup/sock", ProgType::cgroup_sock, AttachKind::other, false},
    SectionDef{"cgroup/post_bind", ProgType::cgroup_sock, AttachKind::other, false},
    SectionDef{"cgroup/", ProgType::cgroup_sock_addr, AttachKind::other, false},
    SectionDef{"struct_ops.s", ProgType::struct_ops, AttachKind::other, true},
    SectionDef{"struct_ops", ProgType::struct_ops, AttachKind::other, true},
    SectionDef{"sk_lookup", ProgType::sk_lookup, AttachKind::other, true},
    SectionDef{"syscall", ProgType::syscall, AttachKind::other, true},
    SectionDef{"netfilter", ProgType::netfilter, AttachKind::other, true},
};

}  // namespace

std::string to_string(ProgType type) {
    static constexpr std::string_view names[] = {
        "unspec",         "socket_filter", "kprobe",       "sched_cls",        "sched_act",
        "tracepoint",     "xdp",           "perf_event",   "cgroup_skb",       "cgroup_sock",
        "lwt_in",         "lwt_out",       "lwt_xmit",     "sock_ops",         "sk_skb",
        "cgroup_device",  "sk_msg",        "raw_tracepoint", "cgroup_sock_addr", "lwt_seg6local",
        "lirc_mode2",     "sk_reuseport",  "flow_dissector", "cgroup_sysctl",  "raw_tracepoint_writable",
        "cgroup_sockopt", "tracing",       "struct_ops",   "ext",              "lsm",
        "sk_lookup",      "syscall",       "netfilter"};
    const auto i = static_cast<std::size_t>(type);
    return i < std::size(names) ? std::string(names[i]) : fmt::format("unknown({})", i);
}

std::string_view to_string(AttachKind kind) noexcept {
    static constexpr std::string_view names[] = {
        "none",   "uprobe",  "uretprobe", "usdt", "kprobe", "kretprobe",  "tracepoint", "raw_tracepoint", "tp_btf",
        "fentry", "fexit",   "xdp",       "tc",   "socket", "perf_event", "host_hook",  "other"};
    const auto i = static_cast<std::size_t>(kind);
    return i < std::size(names) ? names[i] : "unknown";
}

namespace detail {

SectionKind classify_section(std::string_view name) {
    for (const auto& d : section_defs) {
        if (name.substr(0, d.prefix.size()) != d.prefix) continue;
        const std::string_view rest = name.substr(d.prefix.size());
        if (d.exact_or_slash && !rest.empty() && rest[0] != '/') continue;
        std::string_view target = rest;
        if (!target.empty() && target[0] == '/')
            target.remove_prefix(1);
        else
            target = {};  // "xdp_prog": a prefix match with no attach target
        return {d.type, d.attach, std::string(target)};
    }
    return {ProgType::unspec, AttachKind::none, ""};
}

}  // namespace detail
}  // namespace ebpfrt
