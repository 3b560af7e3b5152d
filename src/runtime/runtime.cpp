// Runtime::load: maps into an arena (shared by name, or private and sized from the object), map and
// global references resolved to addresses, programs prepared for the engine and registered by id.

#include "maps/maps_internal.hpp"
#include "runtime/runtime_internal.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include <ebpfrt/aot.hpp>
#include <ebpfrt/verifier.hpp>

namespace ebpfrt {

namespace detail {

void RuntimeState::log(LogLevel level, std::string_view message) const {
    if (options.log) {
        options.log(level, message);
        return;
    }
    if (level >= LogLevel::warning)
        std::fprintf(stderr, "ebpfrt: %s: %.*s\n", level == LogLevel::error ? "error" : "warning",
                     static_cast<int>(message.size()), message.data());
}

void RuntimeState::trace(std::string_view line) const {
    if (options.trace)
        options.trace(line);
    else
        log(LogLevel::info, line);
}

void RuntimeState::register_map(const MapRef& m) {
    std::unique_lock lock(maps_mu);
    map_handles.insert(m.program_handle());
    named_maps.insert_or_assign(m.name(), m);
}

std::uint64_t RuntimeState::next_serial() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

bool RuntimeState::known_map(const void* handle) const {
    // Checked runs ask this on every map helper call, mostly about the same map: the last handle found
    // is remembered per thread (handles are never removed while the runtime lives), which saves the
    // shared lock and the set lookup (~30 ns of a checked hash lookup).
    thread_local std::uint64_t cached_serial = 0;
    thread_local const void* cached_handle = nullptr;
    if (handle == cached_handle && serial == cached_serial) return true;
    std::shared_lock lock(maps_mu);
    if (map_handles.count(handle) == 0) return false;
    cached_serial = serial;
    cached_handle = handle;
    return true;
}

std::shared_ptr<const ProgramState> RuntimeState::program_by_id(std::uint32_t id) const {
    std::shared_lock lock(programs_mu);
    auto it = programs.find(id);
    return it == programs.end() ? nullptr : it->second.lock();
}

}  // namespace detail

namespace {

bool same_shape(const MapSpec& a, const MapSpec& b) {
    return a.type == b.type && a.key_size == b.key_size && a.value_size == b.value_size &&
           a.max_entries == b.max_entries;
}

std::string base_name(std::string_view path) {
    auto slash = path.find_last_of('/');
    std::string_view b = slash == std::string_view::npos ? path : path.substr(slash + 1);
    for (std::string_view ext : {".bpf.o", ".o"})
        if (b.size() > ext.size() && b.substr(b.size() - ext.size()) == ext) return std::string(b.substr(0, b.size() - ext.size()));
    return std::string(b);
}

bool is_global_data(MapOrigin o) {
    return o == MapOrigin::rodata || o == MapOrigin::data || o == MapOrigin::bss || o == MapOrigin::kconfig;
}

// Creates `spec` in `arena`, or in a shared arena reuses the map of that name when its shape matches.
Result<MapRef> create_or_reuse(Arena& arena, const MapSpec& spec, bool shared) {
    if (shared) {
        if (auto existing = arena.map(spec.name)) {
            if (!same_shape(existing->spec(), spec))
                return Error(Errc::already_exists,
                             fmt::format("map \"{}\": the shared arena has a {} map of that name with key {} value {} "
                                         "max_entries {}, not {} / {} / {} / {}",
                                         spec.name, to_string(existing->type()), existing->key_size(),
                                         existing->value_size(), existing->max_entries(), to_string(spec.type),
                                         spec.key_size, spec.value_size, spec.max_entries));
            return existing;
        }
    }
    auto created = arena.create_map(spec);
    if (!created && shared && created.error().code() == Errc::already_exists) {
        // Another process created it between our lookup and our create: use theirs.
        if (auto again = arena.map(spec.name); again && same_shape(again->spec(), spec)) return again;
    }
    return created;
}

}  // namespace

// --- Program ------------------------------------------------------------------------------------------

const std::string& Program::name() const noexcept { return s_->name; }
const std::string& Program::section() const noexcept { return s_->section; }
ProgType Program::type() const noexcept { return s_->type; }
AttachKind Program::attach() const noexcept { return s_->attach; }
const std::string& Program::attach_target() const noexcept { return s_->attach_target; }
std::uint32_t Program::id() const noexcept { return s_->id; }
std::span<const Insn> Program::insns() const noexcept { return s_->insns; }

Result<std::uint64_t> Program::try_run(std::span<std::byte> ctx) const noexcept {
    auto r = s_->jit ? s_->jit->run(ctx) : s_->interp->run(ctx);
    if (!r) return std::move(r).error().wrap(fmt::format("run \"{}\"", s_->name));
    return r;
}

std::uint64_t Program::run(std::span<std::byte> ctx) const noexcept {
    auto r = s_->jit ? s_->jit->run(ctx) : s_->interp->run(ctx);
    if (r) return *r;
    if (s_->runtime) s_->runtime->log(LogLevel::error, fmt::format("run \"{}\": {}", s_->name, r.error().message()));
    return 0;
}

// --- Collection ---------------------------------------------------------------------------------------

Result<Program> Collection::program(std::string_view name) const {
    for (const auto& p : s_->programs)
        if (p.name() == name) return p;
    return Error(Errc::not_found, fmt::format("collection \"{}\": no program \"{}\"", s_->object, name));
}

const std::vector<Program>& Collection::programs() const noexcept { return s_->programs; }

Result<MapRef> Collection::map(std::string_view name) const {
    for (const auto& [n, m] : s_->maps)
        if (n == name) return m;
    return Error(Errc::not_found, fmt::format("collection \"{}\": no map \"{}\"", s_->object, name));
}

std::vector<std::pair<std::string, MapRef>> Collection::maps() const { return s_->maps; }

Result<std::span<std::byte>> Collection::global(std::string_view var) const {
    auto it = s_->globals.find(var);
    if (it == s_->globals.end())
        return Error(Errc::not_found, fmt::format("collection \"{}\": no global variable \"{}\"", s_->object, var));
    auto data = s_->maps[it->second.first].second.data();
    if (!data) return data.error();
    const auto [off, size] = it->second.second;
    if (std::uint64_t{off} + size > data->size())
        return Error(Errc::not_found, fmt::format("collection \"{}\": variable \"{}\" lies outside its map", s_->object, var));
    return data->subspan(off, size);
}

// --- Runtime ------------------------------------------------------------------------------------------

Result<Arena*> detail::RuntimeState::private_arena_for(std::size_t bytes) {
    std::lock_guard lock(private_mu);
    if (private_arena && private_arena->free_bytes() >= bytes) return &*private_arena;
    constexpr std::size_t reserve = std::size_t{256} << 20;
    auto a = Arena::create({.name = {}, .size = std::max(reserve, bytes * 2)});
    if (!a) return a.error();
    private_arena = std::move(*a);
    return &*private_arena;
}

Runtime::Runtime(std::shared_ptr<detail::RuntimeState> s) : s_(std::move(s)) {}
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;
Runtime::~Runtime() = default;

const HelperTable& Runtime::helpers() const noexcept { return s_->helpers; }
const RuntimeOptions& Runtime::options() const noexcept { return s_->options; }

Result<Runtime> Runtime::create(RuntimeOptions options) {
    if (options.engine != Engine::interpreter && options.engine != Engine::jit && options.engine != Engine::aot)
        return Error(Errc::invalid_argument, fmt::format("create runtime: unknown engine {}", static_cast<int>(options.engine)));
    if ((options.engine == Engine::aot && !aot::compile_available()) || (options.engine == Engine::jit && !jit_available()))
        return Error(Errc::unsupported, fmt::format("create runtime: engine \"{}\" is not available in this build",
                                                    options.engine == Engine::jit ? "jit" : "aot"));
    auto s = std::make_shared<detail::RuntimeState>();
    add_kernel_helpers(s->helpers);
    detail::add_runtime_helpers(s->helpers);
    for (const auto& [id, proto] : options.helpers.helpers())
        if (auto r = s->helpers.set(id, proto); !r) return r.error().wrap("create runtime");
    if (options.shared_memory) {
        const ShmSpec& shm = *options.shared_memory;
        auto arena = Arena::create({.name = shm.name, .size = shm.size, .create = shm.create});
        if (!arena) return arena.error().wrap(fmt::format("create runtime (shared memory \"{}\")", shm.name));
        s->shared = std::move(*arena);
        for (const auto& name : s->shared->map_names())
            if (auto m = s->shared->map(name)) s->register_map(*m);
    }
    s->options = std::move(options);
    return Runtime(std::move(s));
}

Result<MapRef> Runtime::create_map(const MapSpec& spec) {
    Result<MapRef> m = Error(Errc::invalid_argument, "");
    if (s_->shared) {
        m = create_or_reuse(*s_->shared, spec, true);
    } else {
        auto arena = s_->private_arena_for(Arena::bytes_for(spec) + (4u << 10));
        if (!arena) return arena.error().wrap(fmt::format("create map \"{}\"", spec.name));
        m = (*arena)->create_map(spec);
    }
    if (!m) return m.error();
    s_->register_map(*m);
    return m;
}

Result<MapRef> Runtime::map(std::string_view name) const {
    if (s_->shared) {
        auto m = s_->shared->map(name);
        if (m) s_->register_map(*m);
        return m;
    }
    std::shared_lock lock(s_->maps_mu);
    auto it = s_->named_maps.find(name);
    if (it == s_->named_maps.end()) return Error(Errc::not_found, fmt::format("map \"{}\": not found", name));
    return it->second;
}

std::vector<std::string> Runtime::map_names() const {
    if (s_->shared) return s_->shared->map_names();
    std::shared_lock lock(s_->maps_mu);
    std::vector<std::string> out;
    for (const auto& [n, m] : s_->named_maps) out.push_back(n);
    return out;
}

namespace {

Result<std::shared_ptr<detail::ProgramState>> prepare(const std::shared_ptr<detail::RuntimeState>& rt,
                                                      std::string_view name, std::vector<Insn> insns,
                                                      const std::vector<MapRef>& maps,
                                                      std::vector<bool> proved = {}, bool all_proved = false) {
    auto st = std::make_shared<detail::ProgramState>();
    st->name = std::string(name);
    st->insns = std::move(insns);
    st->maps = maps;
    st->runtime = rt;
    VmOptions vo{.checked = rt->options.checked, .insn_budget = rt->options.insn_budget};
    // What the verifier proved in bounds needs no run-time check in checked mode; a program in which it
    // proved everything (memory accesses and helpers' memory arguments) has nothing left to check and runs
    // unchecked: direct map calls, no argument validation in helpers, no regions to grant.
    if (vo.checked) vo.proved = std::move(proved);
    if (vo.checked && all_proved) {
        vo.checked = false;
        vo.proved.clear();
    }
    vo.env = rt.get();
    const HelperProto* lookup = rt->helpers.find(helper_ids::map_lookup_elem);
    const bool inline_arrays = lookup != nullptr && lookup->fn == detail::runtime_map_lookup_elem();
    vo.resolve_lddw = [maps, inline_arrays](std::size_t index, const Insn& lo, const Insn& hi) -> Result<ResolvedImm> {
        if (lo.src != isa::pseudo_map_idx && lo.src != isa::pseudo_map_idx_value)
            return Error(Errc::unsupported, fmt::format("insn {}: lddw with src={} is not supported", index, unsigned{lo.src}));
        const auto mi = static_cast<std::uint32_t>(lo.imm);
        if (mi >= maps.size()) return Error(Errc::invalid_argument, fmt::format("insn {}: map index {} out of range", index, mi));
        const MapRef& m = maps[mi];
        if (lo.src == isa::pseudo_map_idx) {
            ResolvedImm r{reinterpret_cast<std::uint64_t>(m.program_handle()), {}};
            // Array lookups may be inlined by compiling engines while helper 1 is the runtime's own.
            if (inline_arrays) r.array.values = maps::array_values(m.program_handle(), &r.array.stride, &r.array.max_entries);
            return r;
        }
        auto data = m.data();
        if (!data) return Error(Errc::invalid_argument, fmt::format("insn {}: map \"{}\" has no directly addressable value", index, m.name()));
        const auto off = static_cast<std::uint32_t>(hi.imm);
        if (off >= data->size())
            return Error(Errc::invalid_argument, fmt::format("insn {}: offset {} is past map \"{}\" ({} bytes)", index, off, m.name(), data->size()));
        return ResolvedImm{reinterpret_cast<std::uint64_t>(data->data() + off), *data};
    };
    if (rt->options.engine == Engine::aot) {
        // Compiled ahead of time to a relocatable object, then mapped by our own loader (the path a
        // device without LLVM takes with an object built elsewhere; here both steps run in process).
        auto obj = aot::compile(st->insns, {}, {.checked = vo.checked, .budget = vo.insn_budget != 0, .helpers = &rt->helpers});
        if (!obj) return obj.error();
        auto loaded = aot::load(*obj, rt->helpers, vo);
        if (!loaded) return loaded.error();
        st->jit.emplace(std::move(*loaded));
    } else if (rt->options.engine == Engine::jit) {
        auto jit = JitProgram::create(st->insns, rt->helpers, vo);
        if (!jit) return jit.error();
        st->jit.emplace(std::move(*jit));
    } else {
        auto interp = Interpreter::create(st->insns, rt->helpers, vo);
        if (!interp) return interp.error();
        st->interp.emplace(std::move(*interp));
    }
    st->id = rt->next_program_id.fetch_add(1);
    return st;
}

void register_program(detail::RuntimeState& rt, const std::shared_ptr<const detail::ProgramState>& p) {
    std::unique_lock lock(rt.programs_mu);
    for (auto it = rt.programs.begin(); it != rt.programs.end();) it = it->second.expired() ? rt.programs.erase(it) : std::next(it);
    rt.programs[p->id] = p;
}

}  // namespace

namespace {

// Unchecked runs rely on the verifier alone: say so when it left some accesses to run-time checks
// (a host-defined context, packets, kernel objects), which then nothing bounds.
void warn_unbounded(const detail::RuntimeState& rt, std::string_view name, std::span<const Insn> code,
                    const VerifyReport& report) {
    if (rt.options.checked || !rt.options.verify || report.proved.size() != code.size()) return;
    std::size_t open = 0;
    for (std::size_t i = 0; i < code.size(); ++i) {
        const std::uint8_t c = isa::cls(code[i].opcode);
        if ((c == isa::cls_ldx || c == isa::cls_st || c == isa::cls_stx) && !report.proved[i]) ++open;
    }
    if (open != 0)
        rt.log(LogLevel::warning,
               fmt::format("program \"{}\" runs unchecked, but the verifier could not bound {} of its memory accesses "
                           "(context, packet or kernel-object pointers): RuntimeOptions::checked keeps them safe",
                           name, open));
}

}  // namespace

Result<Program> Runtime::load_program(std::string_view name, std::span<const Insn> code, ProgType type) {
    VerifyReport report;
    if (s_->options.verify) {
        if (auto ok = verify(name, code, {.type = type, .helpers = &s_->helpers}, &report); !ok)
            return ok.error().wrap(fmt::format("load \"{}\"", name));
    }
    warn_unbounded(*s_, name, code, report);
    auto st = prepare(s_, name, std::vector<Insn>(code.begin(), code.end()), {}, std::move(report.proved),
                      s_->options.verify && report.all_proved);
    if (!st) return st.error().wrap(fmt::format("load \"{}\"", name));
    (*st)->type = type;
    register_program(*s_, *st);
    return Program(std::move(*st));
}

// --- AOT objects compiled elsewhere -------------------------------------------------------------------

namespace {

#if defined(__x86_64__)
constexpr std::string_view host_arch = "x86_64";
#elif defined(__aarch64__)
constexpr std::string_view host_arch = "aarch64";
#else
constexpr std::string_view host_arch = "";
#endif

std::string shape_of(const MapSpec& s) {
    return fmt::format("{} map with key {} value {} max_entries {}", to_string(s.type), s.key_size,
                       s.value_size, s.max_entries);
}

// Finds the map recorded at index `index` of the object (`recorded` is null when the object records none).
using AotMapFinder = std::function<Result<MapRef>(std::uint32_t index, const MapSpec* recorded)>;

Result<std::shared_ptr<detail::ProgramState>> load_aot_with(const std::shared_ptr<detail::RuntimeState>& rt,
                                                            std::string_view name,
                                                            std::span<const std::byte> object, ProgType type,
                                                            const AotMapFinder& find) {
    auto info = aot::inspect(object);
    if (!info) return info.error();
    if (info->arch != host_arch)
        return Error(Errc::unsupported, fmt::format("the object is for {}, not this host ({})", info->arch,
                                                    host_arch.empty() ? "no AOT loader" : host_arch));
    const RuntimeOptions& ro = rt->options;
    if (ro.checked && !info->checked)
        return Error(
            Errc::invalid_argument,
            fmt::format("\"{}\" was compiled unchecked but the runtime checks memory accesses "
                        "(compile it with .checked = true, or create the runtime with .checked = false)",
                        info->entry));
    if (info->budget != (ro.insn_budget != 0))
        return Error(
            Errc::invalid_argument,
            fmt::format("\"{}\" was compiled {} an instruction budget but the runtime has {} (compile it "
                        "with .budget = {})",
                        info->entry, info->budget ? "with" : "without", ro.insn_budget != 0 ? "one" : "none",
                        ro.insn_budget != 0));

    // Bind every map an lddw refers to; `maps` is indexed like the code's map indices (as load() keeps
    // them, so that aot::compile(Program) records them by index). Indices no lddw reaches repeat a bound
    // map: never used, and no map has to exist for them.
    std::vector<std::optional<MapRef>> bound;
    const auto& insns = info->insns;
    for (std::size_t i = 0; i + 1 < insns.size(); ++i) {
        const Insn& in = insns[i];
        if (in.opcode != isa::opcode_lddw) continue;
        const std::size_t at = i++;
        if (in.src == isa::pseudo_imm64 || in.src == isa::pseudo_func) continue;
        if (in.src != isa::pseudo_map_idx && in.src != isa::pseudo_map_idx_value)
            return Error(
                Errc::unsupported,
                fmt::format("insn {}: lddw with src={} (a map by fd) cannot be bound (load maps by index)",
                            at, unsigned{in.src}));
        const auto index = static_cast<std::uint32_t>(in.imm);
        if (index < bound.size() && bound[index]) continue;
        const MapSpec* recorded = nullptr;
        if (!info->maps.empty()) {
            if (index >= info->maps.size())
                return Error(Errc::bad_elf,
                             fmt::format("insn {}: map index {} is past the {} maps the object records", at,
                                         index, info->maps.size()));
            recorded = &info->maps[index];
        }
        auto m = find(index, recorded);
        if (!m) return m.error().wrap(fmt::format("insn {}", at));
        if (recorded != nullptr && !same_shape(*recorded, m->spec()))
            return Error(Errc::invalid_argument,
                         fmt::format("map \"{}\": the object was compiled for a {}, the runtime's is a {}",
                                     recorded->name, shape_of(*recorded), shape_of(m->spec())));
        if (index >= bound.size()) bound.resize(std::size_t{index} + 1);
        bound[index] = std::move(*m);
    }
    std::vector<MapRef> maps;
    if (!bound.empty()) {
        const MapRef any =
            **std::find_if(bound.begin(), bound.end(), [](const auto& m) { return m.has_value(); });
        for (auto& m : bound) maps.push_back(m ? *m : any);
    }

    if (ro.verify) {
        std::vector<MapSpec> specs;
        for (const MapRef& m : maps) specs.push_back(m.spec());
        VerifyOptions vo{.type = type, .maps = specs, .helpers = &rt->helpers};
        vo.fold_readonly_maps = false;  // as load(): the host may write .rodata after the load
        if (auto ok = verify(name, insns, vo); !ok) return ok.error();
    }

    // The code loads `ebpfrt_map_<src>_<index>` (plus the offset for src 6).
    const aot::SymbolResolver resolve = [&maps](std::string_view symbol) -> Result<ResolvedImm> {
        unsigned src = 0;
        std::uint32_t index = 0;
        const std::string s(symbol);
        char tail = 0;
        if (std::sscanf(s.c_str(), "ebpfrt_map_%u_%u%c", &src, &index, &tail) != 2 || index >= maps.size() ||
            (src != isa::pseudo_map_idx && src != isa::pseudo_map_idx_value))
            return Error(Errc::not_found, "no lddw of the program refers to it");
        const MapRef& m = maps[index];
        if (src == isa::pseudo_map_idx)
            return ResolvedImm{reinterpret_cast<std::uint64_t>(m.program_handle()), {}};
        auto data = m.data();
        if (!data)
            return Error(Errc::invalid_argument,
                         fmt::format("map \"{}\" has no directly addressable value", m.name()));
        return ResolvedImm{reinterpret_cast<std::uint64_t>(data->data()), *data};
    };
    VmOptions vo{.checked = info->checked, .insn_budget = ro.insn_budget};
    vo.env = rt.get();
    auto loaded = aot::load(object, rt->helpers, vo, resolve);
    if (!loaded) return loaded.error();

    auto st = std::make_shared<detail::ProgramState>();
    st->name = std::string(name);
    st->type = type;
    st->insns = std::move(info->insns);
    st->maps = std::move(maps);
    st->runtime = rt;
    st->jit.emplace(std::move(*loaded));
    st->id = rt->next_program_id.fetch_add(1);
    register_program(*rt, st);
    return st;
}

}  // namespace

Result<Program> Runtime::load_aot(std::string_view name, std::span<const std::byte> object, ProgType type) {
    auto p = load_aot_with(
        s_, name, object, type, [this](std::uint32_t index, const MapSpec* recorded) -> Result<MapRef> {
            if (recorded == nullptr)
                return Error(
                    Errc::invalid_argument,
                    fmt::format("the code refers to map {} but the object records no maps (compile it with "
                                "CompileOptions::maps, or load it with the Collection)",
                                index));
            auto m = map(recorded->name);
            if (!m)
                return Error(Errc::not_found,
                             fmt::format("map \"{}\": not in this runtime (load the object that defines "
                                         "it first, or pass its Collection)",
                                         recorded->name));
            return m;
        });
    if (!p) return p.error().wrap(fmt::format("load_aot \"{}\"", name));
    return Program(std::move(*p));
}

Result<Program> Runtime::load_aot(std::string_view name, std::span<const std::byte> object,
                                  const Collection& maps, ProgType type) {
    const detail::CollectionState& coll = *maps.s_;
    auto p = load_aot_with(
        s_, name, object, type, [&](std::uint32_t index, const MapSpec* recorded) -> Result<MapRef> {
            const MapRef* found = nullptr;
            if (recorded == nullptr) {
                if (index >= coll.maps.size())
                    return Error(Errc::invalid_argument,
                                 fmt::format("map index {} is past the {} maps of collection \"{}\"", index,
                                             coll.maps.size(), coll.object));
                found = &coll.maps[index].second;
            } else {
                for (const auto& [n, m] : coll.maps)
                    if (n == recorded->name) found = &m;
                for (const auto& [n, m] : coll.maps)
                    if (found == nullptr && m.name() == recorded->name) found = &m;
                if (found == nullptr)
                    return Error(Errc::not_found, fmt::format("map \"{}\": not in collection \"{}\"",
                                                              recorded->name, coll.object));
            }
            if (!s_->known_map(found->program_handle()))
                return Error(Errc::invalid_argument,
                             fmt::format("map \"{}\": collection \"{}\" was loaded by another runtime",
                                         found->name(), coll.object));
            return *found;
        });
    if (!p) return p.error().wrap(fmt::format("load_aot \"{}\"", name));
    return Program(std::move(*p));
}

namespace aot {

Result<std::vector<std::byte>> compile(const Program& prog, const Target& target) {
    const detail::ProgramState& st = *prog.s_;
    std::vector<MapSpec> maps;
    for (const MapRef& m : st.maps) maps.push_back(m.spec());
    CompileOptions o;
    if (st.runtime) {
        o.checked = st.runtime->options.checked;
        o.budget = st.runtime->options.insn_budget != 0;
        o.helpers = &st.runtime->helpers;
    }
    o.maps = maps;
    return compile(st.insns, target, o);
}

}  // namespace aot

Result<Collection> Runtime::load(const Object& object) {
    const std::string where = fmt::format("load \"{}\"", object.name());
    const std::string prefix = base_name(object.name());
    const bool shared = s_->shared.has_value();

    // 1. Maps. Global data maps are named "<object>.<section>" in the arena so that two objects never
    //    share a .bss, while the same object loaded by two processes does.
    Arena* arena = shared ? &*s_->shared : nullptr;
    if (!shared) {
        std::size_t bytes = 64u << 10;
        for (const auto& spec : object.maps()) {
            bytes += Arena::bytes_for(spec);
            if (spec.inner) bytes += Arena::bytes_for(*spec.inner) * std::max<std::size_t>(spec.initial_slots.size(), 1);
        }
        auto a = s_->private_arena_for(bytes + bytes / 8);
        if (!a) return a.error().wrap(where);
        arena = *a;
    }

    auto coll = std::make_shared<detail::CollectionState>();
    coll->object = object.name();
    std::vector<MapRef> maps;
    for (const auto& spec : object.maps()) {
        MapSpec s = spec;
        if (is_global_data(spec.origin)) s.name = prefix + spec.name;
        // A private arena holds every load of this runtime: a second load of the same object gets
        // maps of its own, as with the kernel, under a numbered name.
        if (!shared)
            for (int n = 2; arena->map(s.name); ++n) s.name = fmt::format("{}#{}", is_global_data(spec.origin) ? prefix + spec.name : spec.name, n);
        auto m = create_or_reuse(*arena, s, shared);
        if (!m) return m.error().wrap(where);
        s_->register_map(*m);
        maps.push_back(*m);
        coll->maps.emplace_back(spec.name, *m);
        if (spec.btf_value_type_id && is_global_data(spec.origin) && object.btf()) {
            const auto& ds = object.btf()->type(spec.btf_value_type_id);
            for (const auto& v : ds.vars)
                coll->globals[object.btf()->type(v.type).name] = {maps.size() - 1, {v.offset, v.size}};
        }
    }
    // Map-in-map initial slots name other maps of the object.
    for (std::size_t i = 0; i < object.maps().size(); ++i) {
        const MapSpec& spec = object.maps()[i];
        if (spec.type != MapType::array_of_maps && spec.type != MapType::hash_of_maps) continue;
        for (const auto& [slot, inner_name] : spec.initial_slots) {
            auto inner = std::find_if(coll->maps.begin(), coll->maps.end(), [&](auto& p) { return p.first == inner_name; });
            if (inner == coll->maps.end())
                return Error(Errc::invalid_argument, fmt::format("{}: map \"{}\" slot {} names unknown map \"{}\"", where, spec.name, slot, inner_name));
            const std::uint32_t key = slot;
            if (auto r = maps[i].set_map(std::as_bytes(std::span(&key, 1)), inner->second); !r) return r.error().wrap(where);
        }
    }

    // 2. Programs.
    for (const auto& ps : object.programs()) {
        if (!ps.unresolved_calls.empty())
            return Error(Errc::unsupported, fmt::format("{}: program \"{}\" calls undefined function \"{}\"", where,
                                                        ps.name, ps.unresolved_calls.front()));
        VerifyReport report;
        if (s_->options.verify) {
            // Read-only maps are not folded to constants: the host may still write .rodata through
            // Collection::global() after the load, which the kernel's frozen maps forbid.
            VerifyOptions vo{.type = ps.type, .maps = object.maps(), .helpers = &s_->helpers};
            vo.fold_readonly_maps = false;
            if (auto ok = verify(ps.name, ps.insns, vo, &report); !ok) return ok.error().wrap(where);
        }
        warn_unbounded(*s_, ps.name, ps.insns, report);
        auto st = prepare(s_, ps.name, ps.insns, maps, std::move(report.proved), s_->options.verify && report.all_proved);
        if (!st) return st.error().wrap(fmt::format("{}: program \"{}\"", where, ps.name));
        (*st)->section = ps.section;
        (*st)->type = ps.type;
        (*st)->attach = ps.attach;
        (*st)->attach_target = ps.attach_target;
        register_program(*s_, *st);
        coll->programs.push_back(Program(std::move(*st)));
    }

    // 3. prog_array initial slots (`.values = { [i] = &prog }`): the programs' ids.
    for (std::size_t i = 0; i < object.maps().size(); ++i) {
        const MapSpec& spec = object.maps()[i];
        if (spec.type != MapType::prog_array) continue;
        for (const auto& [slot, prog_name] : spec.initial_slots) {
            auto p = std::find_if(coll->programs.begin(), coll->programs.end(), [&](auto& q) { return q.name() == prog_name; });
            if (p == coll->programs.end())
                return Error(Errc::invalid_argument, fmt::format("{}: map \"{}\" slot {} names unknown program \"{}\"", where, spec.name, slot, prog_name));
            const std::uint32_t key = slot, id = p->id();
            if (auto r = maps[i].update(std::as_bytes(std::span(&key, 1)), std::as_bytes(std::span(&id, 1))); !r)
                return r.error().wrap(where);
        }
    }
    return Collection(std::move(coll));
}

Features features() {
    Features f;
    f.engines = {"interpreter"};
    if (jit_available()) f.engines.push_back("jit");
    if (aot::compile_available()) f.engines.push_back("aot");
    for (MapType t : {MapType::hash, MapType::array, MapType::prog_array, MapType::perf_event_array,
                      MapType::percpu_hash, MapType::percpu_array, MapType::stack_trace, MapType::lru_hash,
                      MapType::lru_percpu_hash, MapType::lpm_trie, MapType::array_of_maps, MapType::hash_of_maps,
                      MapType::queue, MapType::stack, MapType::ringbuf, MapType::bloom_filter})
        f.map_types.push_back(to_string(t));
    HelperTable t;
    add_kernel_helpers(t);
    detail::add_runtime_helpers(t);
    for (const auto& [id, h] : t.helpers()) f.helpers.push_back(h.name);
    return f;
}

}  // namespace ebpfrt
