#pragma once
/// \file
/// eBPF ELF objects as clang and libbpf make them: programs by SEC() name, BTF-defined `.maps` and
/// legacy `maps`, `.rodata/.data/.bss/.kconfig` globals, bpf-to-bpf calls linked into each entry
/// program, externs, and CO-RE relocations. Parsing allocates nothing outside the Object.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/btf.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>

namespace ebpfrt {

/// Program types, numbered as the kernel numbers them (enum bpf_prog_type).
enum class ProgType : std::uint32_t {
    unspec = 0,
    socket_filter = 1,
    kprobe = 2,
    sched_cls = 3,
    sched_act = 4,
    tracepoint = 5,
    xdp = 6,
    perf_event = 7,
    cgroup_skb = 8,
    cgroup_sock = 9,
    lwt_in = 10,
    lwt_out = 11,
    lwt_xmit = 12,
    sock_ops = 13,
    sk_skb = 14,
    cgroup_device = 15,
    sk_msg = 16,
    raw_tracepoint = 17,
    cgroup_sock_addr = 18,
    lwt_seg6local = 19,
    lirc_mode2 = 20,
    sk_reuseport = 21,
    flow_dissector = 22,
    cgroup_sysctl = 23,
    raw_tracepoint_writable = 24,
    cgroup_sockopt = 25,
    tracing = 26,
    struct_ops = 27,
    ext = 28,
    lsm = 29,
    sk_lookup = 30,
    syscall = 31,
    netfilter = 32,
};

/// The kernel's name without the prefix ("kprobe", "xdp", ...), or "unknown(N)".
std::string to_string(ProgType type);

/// Where a program expects to be attached, from its section name.
enum class AttachKind : std::uint8_t {
    none,            ///< no attach point in the name (".text", "test", cilium's "2/1", ...)
    uprobe,          ///< "uprobe/PATH:SYMBOL[+OFF]" or "uprobe" (target given at attach time)
    uretprobe,       ///< "uretprobe/..."
    usdt,            ///< "usdt/PATH:PROVIDER:NAME"
    kprobe,          ///< "kprobe/SYMBOL"
    kretprobe,       ///< "kretprobe/SYMBOL"
    tracepoint,      ///< "tracepoint/CATEGORY/NAME", "tp/..."
    raw_tracepoint,  ///< "raw_tracepoint/NAME", "raw_tp/..."
    tp_btf,          ///< "tp_btf/NAME"
    fentry,          ///< "fentry/FUNC"
    fexit,           ///< "fexit/FUNC"
    xdp,             ///< "xdp..."
    tc,              ///< "tc", "classifier", "action", "tcx/..."
    socket,          ///< "socket..."
    perf_event,      ///< "perf_event"
    host_hook,       ///< "ext/NAME": an extension point the host declares (Hook<Sig>)
    other,           ///< a known libbpf section kind that user space does not attach (lsm, cgroup, ...)
};

/// Name of an attach kind ("uprobe", "host_hook", ...).
std::string_view to_string(AttachKind kind) noexcept;

/// One entry program, linked: its own code followed by every subprogram it calls (transitively),
/// with bpf-to-bpf calls and function references pointing at the appended copies.
///
/// Map and global references are left for the loader in this form (resolved by Runtime::load):
///   lddw src=isa::pseudo_map_idx, imm = index into Object::maps()        (a map)
///   lddw src=isa::pseudo_map_idx_value, imm = map index, next imm = byte offset  (global data)
struct ProgramSpec {
    std::string name;            ///< function symbol (or the section name for symbol-less old objects)
    std::string section;         ///< ELF section (the SEC() string)
    ProgType type = ProgType::unspec;
    AttachKind attach = AttachKind::none;
    std::string attach_target;   ///< the part of the section name after the prefix ("" if none)
    bool global = true;          ///< STB_GLOBAL; false for static entry functions
    std::size_t section_offset = 0;  ///< first slot of the entry function in its section
    std::size_t entry_insns = 0;     ///< slots of the entry function itself (before appended subprograms)
    std::vector<Insn> insns;
    /// Undefined functions it calls (e.g. "memset"): it parses, but loading it is an error naming them.
    std::vector<std::string> unresolved_calls;
};

/// Counts of what relocation did, for `ebpfrt inspect` and tests.
struct RelocationSummary {
    std::size_t map_refs = 0;       ///< lddw -> map
    std::size_t global_refs = 0;    ///< lddw -> .rodata/.data/.bss/.kconfig
    std::size_t calls = 0;          ///< bpf-to-bpf calls and function references linked
    std::size_t extern_calls = 0;   ///< calls to undefined functions (left unresolved)
    std::size_t kconfig = 0;        ///< kconfig externs given values
    std::size_t core_applied = 0;   ///< CO-RE relocations applied
    std::size_t core_poisoned = 0;  ///< CO-RE relocations with no match in the target (instruction poisoned)
};

/// Options of Object::open / Object::parse.
struct ObjectOptions {
    /// Target BTF for CO-RE: a file path; empty = /sys/kernel/btf/vmlinux when present, else the
    /// object's own BTF (Object::notes() says so).
    std::string target_btf{};
    /// Values for kconfig externs ("CONFIG_HZ" -> 250), overriding the built-in ones.
    std::map<std::string, std::uint64_t, std::less<>> kconfig{};
};

/// A parsed and relocated eBPF ELF object: programs, map specs, global data. Nothing is created
/// until a Runtime loads it. A plain value: copy it, change its globals, load it many times.
class Object {
public:
    /// Reads and parses `path`. Errors: io_error (read), bad_elf "load \"path\": <reason>" for anything
    /// malformed (bad header, section or symbol out of range, bad relocation, bad BTF-defined map).
    static Result<Object> open(std::string_view path, const ObjectOptions& options = {});
    /// Parses an object held in memory; `name` is used in messages. Errors as for open().
    static Result<Object> parse(std::span<const std::byte> bytes, std::string_view name,
                                const ObjectOptions& options = {});

    const std::string& name() const noexcept { return name_; }
    const std::vector<ProgramSpec>& programs() const noexcept { return programs_; }
    const std::vector<MapSpec>& maps() const noexcept { return maps_; }
    /// Mutable map specs: resize a map or change flags before loading (like bpf_map__set_max_entries).
    std::vector<MapSpec>& maps() noexcept { return maps_; }
    /// The program with this name. Errors: not_found.
    Result<const ProgramSpec*> program(std::string_view name) const;
    /// The map spec with this name. Errors: not_found.
    Result<MapSpec*> map(std::string_view name);
    /// Contents of the `license` section ("" when absent).
    const std::string& license() const noexcept { return license_; }
    /// The `version` section (0 when absent).
    std::uint32_t kernel_version() const noexcept { return kernel_version_; }
    /// The object's BTF, when it has a .BTF section.
    const std::optional<Btf>& btf() const noexcept { return btf_; }
    const RelocationSummary& relocations() const noexcept { return relocations_; }
    /// Things worth knowing that are not errors (e.g. "CO-RE: no target BTF, used the object's own").
    const std::vector<std::string>& notes() const noexcept { return notes_; }

    /// The bytes of global variable `var` (a BTF VAR in .rodata/.data/.bss/.kconfig) in its map's
    /// initial value: write them before loading, as libbpf skeletons do for const volatile rodata.
    /// Errors: not_found (no such variable, or the object has no BTF).
    Result<std::span<std::byte>> global(std::string_view var);

private:
    friend class ObjectParser;
    std::string name_;
    std::vector<ProgramSpec> programs_;
    std::vector<MapSpec> maps_;
    std::string license_;
    std::uint32_t kernel_version_ = 0;
    std::optional<Btf> btf_;
    RelocationSummary relocations_;
    std::vector<std::string> notes_;
    /// Global variables by name: map index and byte range in that map's initial value.
    struct GlobalVar {
        std::size_t map = 0;
        std::uint32_t offset = 0, size = 0;
    };
    std::map<std::string, GlobalVar, std::less<>> globals_;
};

}  // namespace ebpfrt
