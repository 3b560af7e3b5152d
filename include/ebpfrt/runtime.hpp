#pragma once
/// \file
/// The runtime: loads parsed objects (maps created in an arena, relocations resolved, programs
/// prepared for an engine), runs programs, and gives typed access to maps and globals.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <ebpfrt/aot.hpp>
#include <ebpfrt/elf.hpp>
#include <ebpfrt/helpers.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/vm.hpp>

namespace ebpfrt {

/// A named shared-memory arena for maps that several processes use. The creator sets `create`;
/// the others open it with `create = false` and find its maps by name.
struct ShmSpec {
    std::string name;               ///< POSIX shared-memory name (/dev/shm/<name>)
    std::size_t size = 32u << 20;   ///< bytes, fixed at creation; running out is Errc::out_of_memory
    bool create = true;             ///< false: open an arena another process created
};

/// Severity of a log message.
enum class LogLevel : std::uint8_t { debug, info, warning, error };

/// Options of Runtime::create; an aggregate with defaults for designated initializers.
struct RuntimeOptions {
    /// Engine for programs loaded by this runtime.
    Engine engine = Engine::interpreter;
    /// Maps live in this named arena; without one each load gets a private arena sized from its maps.
    std::optional<ShmSpec> shared_memory{};
    /// Run the verifier on every program when it is loaded (Runtime::load, load_program): a program it
    /// cannot prove safe for its type is not loaded (Errc::verifier_rejected, naming the instruction).
    bool verify = true;
    /// Bounds-check at run time the memory accesses (and helpers' memory arguments) the verifier did not
    /// prove safe; with `verify` off, all of them. The verifier leaves the bounds of host-defined contexts
    /// (ProgType::unspec, ext) to these checks, since their size is known only when the program runs; a
    /// program in which it proved everything runs without checks. Turn this off only for programs of
    /// kernel types that the verifier accepted.
    bool checked = true;
    /// Instructions one run may execute (0 = no limit).
    std::uint64_t insn_budget = 0;
    /// Host helpers added to (and overriding) the kernel helpers, by id.
    HelperTable helpers{};
    /// Log sink; default: warnings and errors to stderr.
    std::function<void(LogLevel, std::string_view)> log{};
    /// Receives bpf_trace_printk / bpf_trace_vprintk lines; default: the log at info level.
    std::function<void(std::string_view)> trace{};
};

namespace detail {
struct RuntimeState;
struct ProgramState;
struct CollectionState;
}  // namespace detail

class Program;
namespace aot {
/// Compiles a loaded program to a relocatable object for `target` (see compile(span, ...)): its
/// runtime's checked mode, instruction budget (on or off) and helpers, and its maps' names in the
/// runtime and shapes, so that Runtime::load_aot binds the object to the maps of the same names.
/// The entry symbol is "ebpf_main". Errors: as compile(span, ...); unsupported without LLVM.
/// Thread-safe.
Result<std::vector<std::byte>> compile(const Program& prog, const Target& target = {});
}  // namespace aot

/// A loaded program: prepared for its engine, holding its maps alive. A cheap shared handle.
class Program {
public:
    const std::string& name() const noexcept;
    const std::string& section() const noexcept;
    ProgType type() const noexcept;
    AttachKind attach() const noexcept;
    const std::string& attach_target() const noexcept;
    /// Id by which prog_array maps of this runtime refer to the program (never 0).
    std::uint32_t id() const noexcept;
    /// The linked and relocated code the engine runs.
    std::span<const Insn> insns() const noexcept;

    /// Runs the program on a context; r1 = ctx.data(), r2 = ctx.size(). A run that faults (checked
    /// mode) or exceeds its budget returns 0 and reports through the runtime's log; try_run() says why.
    std::uint64_t run(std::span<std::byte> ctx) const noexcept;
    /// Runs on a typed context (trivially copyable, standard-layout).
    template <class C>
        requires(std::is_trivially_copyable_v<C> && std::is_standard_layout_v<C>)
    std::uint64_t run(C& ctx) const noexcept {
        return run(std::as_writable_bytes(std::span(&ctx, 1)));
    }
    /// Runs and returns the fault, if any. Errors: invalid_argument "run \"name\": insn N (...): reason".
    Result<std::uint64_t> try_run(std::span<std::byte> ctx) const noexcept;

private:
    friend struct detail::RuntimeState;
    friend class Runtime;
    friend class Collection;
    friend Result<std::vector<std::byte>> aot::compile(const Program&, const aot::Target&);
    explicit Program(std::shared_ptr<const detail::ProgramState> s) : s_(std::move(s)) {}
    std::shared_ptr<const detail::ProgramState> s_;
};

/// The programs and maps of one loaded object. A cheap shared handle.
class Collection {
public:
    /// The program with this name. Errors: not_found.
    Result<Program> program(std::string_view name) const;
    /// Every program, in the object's order.
    const std::vector<Program>& programs() const noexcept;
    /// The map with this name as the object names it (".rodata" etc. for global data). Errors: not_found.
    Result<MapRef> map(std::string_view name) const;
    /// A typed view of a map; sizes are checked once here. Errors: not_found, invalid_argument.
    template <MapKey K, MapValue V> Result<Map<K, V>> map(std::string_view name) const {
        auto m = map(name);
        if (!m) return m.error();
        return Map<K, V>::from(std::move(*m));
    }
    /// Every map: (name in the object, map).
    std::vector<std::pair<std::string, MapRef>> maps() const;
    /// The live bytes of a global variable in .data/.bss/.rodata (programs see writes at once).
    /// Errors: not_found (no such variable, or no BTF to find it by).
    Result<std::span<std::byte>> global(std::string_view var) const;

private:
    friend class Runtime;
    explicit Collection(std::shared_ptr<detail::CollectionState> s) : s_(std::move(s)) {}
    std::shared_ptr<detail::CollectionState> s_;
};

/// Options of Runtime::create_map for typed maps: sizes come from the key and value types.
struct MapOptions {
    std::string name;
    MapType type = MapType::hash;
    std::uint32_t max_entries = 0;
    std::uint32_t flags = 0;
};

/// Owns maps, programs and the helpers they use. Move-only; two runtimes in one process are independent.
class Runtime {
public:
    /// Errors: invalid_argument (bad options), and for shared memory io_error / out_of_memory /
    /// not_found (opening an arena that does not exist).
    static Result<Runtime> create(RuntimeOptions options = {});

    /// Creates (or, in a shared arena, reuses by name when compatible) the object's maps, resolves map,
    /// global and tail-call references, and prepares every program for the engine.
    /// Errors: verifier_rejected (RuntimeOptions::verify), unsupported (engine, unresolved extern call,
    /// unknown helper), already_exists (a shared map of the same name with another shape),
    /// out_of_memory, invalid_argument (validation).
    Result<Collection> load(const Object& object);

    /// Prepares raw bytecode as a program named `name` (no maps; helpers by id). Errors: as for load().
    Result<Program> load_program(std::string_view name, std::span<const Insn> code,
                                 ProgType type = ProgType::unspec);

    /// Loads native code compiled ahead of time (aot::compile, `ebpfrt aot`, ebpfrt_add_aot_program,
    /// possibly on another machine) as program `name`, with ebpfrt's own loader: needs no LLVM, and
    /// runs natively whatever RuntimeOptions::engine is. The program works like one from load(): run/try_run,
    /// this runtime's helpers, tail calls through prog_array (it gets an id), faults in the log.
    /// Maps: the object records the maps its code refers to by name and shape (CompileOptions::maps,
    /// or aot::compile(Program) with the runtime's names); each is bound to this runtime's map of that
    /// name (Runtime::map: created by load() or create_map, or in the shared arena) and must have the
    /// recorded type, key and value size and max_entries. Checked mode and budget are the object's:
    /// a checked object runs checked in any runtime, an unchecked one only if !options().checked; an
    /// object counts instructions iff compiled with a budget, which the runtime must then have
    /// (insn_budget != 0) and which it must not have otherwise. With RuntimeOptions::verify, the
    /// bytecode the object was compiled from is verified as a program of `type`.
    /// Errors: bad_elf (not an object made by aot::compile, malformed, entry symbol missing),
    /// unsupported (an object for another architecture, an lddw by map fd), not_found (a map the object
    /// names is not in this runtime, an undefined symbol), invalid_argument (a map of another shape,
    /// checked mode or budget, an unknown helper, map references but no recorded maps),
    /// verifier_rejected, out_of_memory, permission_denied (mmap, mprotect). Thread-safe.
    Result<Program> load_aot(std::string_view name, std::span<const std::byte> object,
                             ProgType type = ProgType::unspec);
    /// As load_aot(name, object, type), with the object's maps bound to those of `maps`, which this
    /// runtime's load() returned: a recorded name is looked up first as the object named the map
    /// (".rodata", "counts"), then as the runtime does ("probes.rodata"). An object compiled without
    /// recorded maps (CompileOptions::maps empty) is bound by index, in the object's order, unchecked.
    /// Errors: as above; invalid_argument when a map of `maps` is not of this runtime.
    Result<Program> load_aot(std::string_view name, std::span<const std::byte> object,
                             const Collection& maps, ProgType type = ProgType::unspec);

    /// Creates a map (or opens the compatible one of the same name in a shared arena).
    Result<MapRef> create_map(const MapSpec& spec);
    /// Creates a typed map: key_size = sizeof(K), value_size = sizeof(V).
    template <MapKey K, MapValue V> Result<Map<K, V>> create_map(MapOptions options) {
        MapSpec spec;
        spec.name = std::move(options.name);
        spec.type = options.type;
        spec.key_size = sizeof(K);
        spec.value_size = sizeof(V);
        spec.max_entries = options.max_entries;
        spec.flags = options.flags;
        auto m = create_map(spec);
        if (!m) return m.error();
        return Map<K, V>::from(std::move(*m));
    }
    /// A map of the shared arena by name (e.g. one another process created). Errors: not_found.
    Result<MapRef> map(std::string_view name) const;
    /// Names of the maps in the shared arena (or created by this runtime).
    std::vector<std::string> map_names() const;

    /// The helpers programs of this runtime can call.
    const HelperTable& helpers() const noexcept;
    const RuntimeOptions& options() const noexcept;

    Runtime(Runtime&&) noexcept;
    Runtime& operator=(Runtime&&) noexcept;
    ~Runtime();

private:
    explicit Runtime(std::shared_ptr<detail::RuntimeState> s);
    std::shared_ptr<detail::RuntimeState> s_;
};

/// What this build of ebpfrt can do: engines, map types, helpers (by name), attach kinds.
struct Features {
    std::vector<std::string> engines;
    std::vector<std::string> map_types;
    std::vector<std::string> helpers;
};
Features features();

}  // namespace ebpfrt
