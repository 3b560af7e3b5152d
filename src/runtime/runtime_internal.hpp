#pragma once
// Private to src/runtime: the state behind Runtime, Collection and Program handles, and the
// helpers that need it (map access, tail calls, callbacks, trace output).

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include <ebpfrt/jit.hpp>
#include <ebpfrt/runtime.hpp>

namespace ebpfrt::maps {
struct StackBuildId;
}  // namespace ebpfrt::maps

namespace ebpfrt::detail {

struct ProgramState {
    std::string name, section, attach_target;
    ProgType type = ProgType::unspec;
    AttachKind attach = AttachKind::none;
    std::uint32_t id = 0;
    std::vector<Insn> insns;
    std::optional<Interpreter> interp;  // set once prepared (engine interpreter)
    std::optional<JitProgram> jit;      // set once prepared (engine jit)
    std::vector<MapRef> maps;                // keeps every map the code refers to alive
    std::shared_ptr<RuntimeState> runtime;   // for logging faults
};

struct CollectionState {
    std::string object;
    std::vector<Program> programs;
    std::vector<std::pair<std::string, MapRef>> maps;  // by the object's names, in its order
    std::map<std::string, std::pair<std::size_t, std::pair<std::uint32_t, std::uint32_t>>, std::less<>> globals;
};

struct RuntimeState {
    RuntimeOptions options;
    HelperTable helpers;
    std::optional<Arena> shared;
    // Without shared memory: the arena that loads and create_map use, made on first use with room to
    // spare (anonymous shared memory is committed only when touched), replaced by a bigger one when full.
    std::optional<Arena> private_arena;
    std::mutex private_mu;
    // An arena with at least `bytes` free for maps that are not shared.
    Result<Arena*> private_arena_for(std::size_t bytes);

    // Programs by id, for prog_array tail calls. Ids are never reused within a runtime.
    mutable std::shared_mutex programs_mu;
    std::map<std::uint32_t, std::weak_ptr<const ProgramState>> programs;
    std::atomic<std::uint32_t> next_program_id{1};

    // Map handles programs may pass to helpers (checked mode validates the `map` argument against it),
    // and the maps this runtime created or opened by name.
    mutable std::shared_mutex maps_mu;
    std::unordered_set<const void*> map_handles;  // only ever grows while the runtime lives
    // Tells this runtime from one made later at the same address (known_map's per-thread cache).
    const std::uint64_t serial = next_serial();
    static std::uint64_t next_serial() noexcept;
    std::map<std::string, MapRef, std::less<>> named_maps;

    void log(LogLevel level, std::string_view message) const;
    void trace(std::string_view line) const;
    void register_map(const MapRef& m);
    bool known_map(const void* handle) const;
    std::shared_ptr<const ProgramState> program_by_id(std::uint32_t id) const;
};

/// Each address as struct bpf_stack_build_id: the build id and file offset of the loaded object holding
/// it, or the address itself (status ip) where there is no such object or it has no build id.
void stack_build_ids(const std::uint64_t* ips, std::uint32_t n, maps::StackBuildId* out) noexcept;

/// Adds the helpers that need runtime state (maps, tail calls, bpf_loop, trace output) to `table`.
/// They find the RuntimeState through Invocation::env().
void add_runtime_helpers(HelperTable& table);
/// The runtime's bpf_map_lookup_elem (to tell it from a host override of helper 1).
HelperFn runtime_map_lookup_elem() noexcept;

}  // namespace ebpfrt::detail
