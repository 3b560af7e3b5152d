// `ebpfrt run FILE.o --section S` and `ebpfrt map list|dump`: ELF objects through the runtime, and
// the maps of a shared-memory arena (or of an object, as loaded) printed by their BTF types.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include <fmt/format.h>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/runtime.hpp>

#include "cli/commands.hpp"

namespace ebpfrt::cli {
namespace {

std::string hex(std::span<const std::byte> bytes) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size(); ++i)
        out += fmt::format("{}{:02x}", i ? " " : "", static_cast<unsigned>(bytes[i]));
    return out;
}

Result<Runtime> make_runtime(const std::string& shm, bool create, bool checked, std::uint64_t budget,
                             Engine engine = Engine::interpreter) {
    RuntimeOptions options{.engine = engine, .checked = checked, .insn_budget = budget};
    if (!shm.empty()) options.shared_memory = ShmSpec{.name = shm, .create = create};
    // Trace output of bpf_printk goes to stderr, like /sys/kernel/tracing/trace_pipe would show it.
    options.trace = [](std::string_view line) { std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data()); };
    return Runtime::create(std::move(options));
}

// A value printed by its BTF type when the object says what it is, else as hex bytes.
std::string show(const Object* obj, std::uint32_t type_id, std::span<const std::byte> bytes) {
    if (obj && obj->btf() && type_id != 0)
        if (auto s = obj->btf()->format(type_id, bytes)) return *s;
    return hex(bytes);
}

// A key: by BTF type when known; 4-byte keys without one (array indexes) in decimal.
std::string show_key(const Object* obj, std::uint32_t type_id, std::span<const std::byte> bytes) {
    if ((!obj || !obj->btf() || type_id == 0) && bytes.size() == 4) {
        std::uint32_t v = 0;
        std::memcpy(&v, bytes.data(), 4);
        return std::to_string(v);
    }
    return show(obj, type_id, bytes);
}

const MapSpec* spec_in(const Object* obj, std::string_view name) {
    if (!obj) return nullptr;
    for (const auto& s : obj->maps())
        if (s.name == name) return &s;
    return nullptr;
}

void print_map_line(const MapRef& m) {
    std::printf("%-28s %-22s key %u value %u max_entries %u\n", m.name().c_str(), to_string(m.type()).c_str(),
                m.key_size(), m.value_size(), m.max_entries());
}

int dump(const MapRef& m, const Object* obj, std::string_view object_name) {
    const MapSpec* spec = spec_in(obj, object_name);
    const std::uint32_t key_type = spec ? spec->btf_key_type_id : 0;
    const std::uint32_t value_type = spec ? spec->btf_value_type_id : 0;
    std::vector<std::byte> key(m.key_size()), next(m.key_size()), value(m.value_buffer_size());
    if (m.key_size() == 0) {
        // Queues, stacks, ring buffers, bloom filters: nothing to iterate by key.
        std::printf("map \"%s\" (%s) has no keys to dump\n", m.name().c_str(), to_string(m.type()).c_str());
        return 0;
    }
    std::size_t n = 0;
    bool first = true;
    while (true) {
        auto r = m.next_key(first ? std::span<const std::byte>{} : std::span<const std::byte>(key), next);
        if (!r) {
            if (r.error().code() == Errc::not_found) break;
            return fail(r.error().wrap("map dump").message());
        }
        first = false;
        key = next;
        auto v = m.lookup(key, value);
        if (!v) {
            if (v.error().code() == Errc::not_found) continue;  // erased meanwhile
            return fail(v.error().wrap("map dump").message());
        }
        std::string shown;
        if (m.per_cpu()) {
            const std::size_t stride = (m.value_size() + 7) / 8 * 8;
            for (std::size_t cpu = 0; cpu * stride < value.size(); ++cpu)
                shown += fmt::format("{}cpu{}: {}", cpu ? ", " : "", cpu,
                                     show(obj, value_type, std::span(value).subspan(cpu * stride, m.value_size())));
        } else {
            shown = show(obj, value_type, value);
        }
        std::printf("%s => %s\n", show_key(obj, key_type, key).c_str(), shown.c_str());
        ++n;
    }
    std::printf("%zu entries\n", n);
    return 0;
}

}  // namespace

Result<const ProgramSpec*> pick_program(const Object& obj, const std::string& section, std::string_view verb,
                                        const std::string& path) {
    const ProgramSpec* pick = nullptr;
    std::string names;
    for (const auto& p : obj.programs()) {
        if (section.empty() ? obj.programs().size() == 1 : (p.section == section || p.name == section)) pick = &p;
        names += fmt::format("{}\"{}\" ({})", names.empty() ? "" : ", ", p.section, p.name);
    }
    if (pick != nullptr) return pick;
    return Error(Errc::not_found,
                 section.empty() ? fmt::format("{} \"{}\": {} programs, choose one with --section: {}", verb, path,
                                               obj.programs().size(), names)
                                 : fmt::format("{} \"{}\": no program in section or named \"{}\" (have {})", verb, path,
                                               section, names));
}

int run_elf(const std::string& path, const RunOptions& o) {
    auto obj = Object::open(path);
    if (!obj) return fail(obj.error().message());
    auto rt = make_runtime(o.shm, true, o.checked, o.budget, o.engine);
    if (!rt) return fail(rt.error().message());
    auto coll = rt->load(*obj);
    if (!coll) return fail(coll.error().message());
    auto spec = pick_program(*obj, o.section, "run", path);
    if (!spec) return fail(spec.error().message());
    auto picked = coll->program((*spec)->name);
    if (!picked) return fail(picked.error().message());
    const Program* prog = &*picked;
    std::vector<std::byte> ctx = o.mem;
    auto r0 = prog->try_run(ctx);
    if (!r0) return fail(r0.error().message());
    std::printf("0x%llx\n", static_cast<unsigned long long>(*r0));
    if (o.repeat > 0) {
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < o.repeat; ++i) {
            auto r = prog->try_run(ctx);
            if (!r) return fail(r.error().wrap(fmt::format("repeat {}", i + 1)).message());
        }
        const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "time: %.1f ns/run over %llu runs\n", ns / static_cast<double>(o.repeat),
                     static_cast<unsigned long long>(o.repeat));
    }
    return 0;
}

int map_command(const std::vector<std::string>& args) {
    if (args.empty() || (args[0] != "list" && args[0] != "dump"))
        return fail("map: usage: ebpfrt map list (--shm NAME | FILE) | map dump MAP (--shm NAME [--object FILE] | FILE)");
    const bool list = args[0] == "list";
    std::string shm, object_path, map_name;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--shm" || a == "--object") {
            if (i + 1 >= args.size()) return fail(fmt::format("map: {} needs a value", a));
            (a == "--shm" ? shm : object_path) = args[++i];
        } else if (a.rfind("--", 0) == 0) {
            return fail(fmt::format("map: unknown option \"{}\"", a));
        } else if (!list && map_name.empty()) {
            map_name = a;
        } else if (object_path.empty()) {
            object_path = a;
        } else {
            return fail(fmt::format("map: unexpected argument \"{}\"", a));
        }
    }
    if (shm.empty() && object_path.empty()) return fail("map: give --shm NAME or an object FILE");
    if (!list && map_name.empty()) return fail("map dump: which MAP?");

    std::optional<Object> obj;
    if (!object_path.empty()) {
        auto o = Object::open(object_path);
        if (!o) return fail(o.error().message());
        obj = std::move(*o);
    }
    auto rt = make_runtime(shm, false, true, 0);
    if (!rt) return fail(rt.error().message());

    // Without shared memory the object is loaded into a private runtime: its maps as they start
    // (global data with initial values, prog arrays and map-in-map slots filled).
    std::optional<Collection> coll;
    if (shm.empty()) {
        auto c = rt->load(*obj);
        if (!c) return fail(c.error().message());
        coll = std::move(*c);
    }
    const Object* o = obj ? &*obj : nullptr;
    if (list) {
        if (coll) {
            for (const auto& [name, m] : coll->maps()) print_map_line(m);
        } else {
            for (const auto& name : rt->map_names())
                if (auto m = rt->map(name)) print_map_line(*m);
        }
        return 0;
    }
    if (coll) {
        auto m = coll->map(map_name);
        if (!m) return fail(m.error().wrap("map dump").message());
        return dump(*m, o, map_name);
    }
    auto m = rt->map(map_name);
    if (!m) return fail(m.error().wrap(fmt::format("map dump (shared memory \"{}\")", shm)).message());
    // A global-data map is named "<object><section>" in the arena; its spec in the object is the section.
    std::string in_object = map_name;
    if (o)
        for (const auto& s : o->maps())
            if (map_name.size() > s.name.size() && map_name.ends_with(s.name) && s.name.starts_with("."))
                in_object = s.name;
    return dump(*m, o, in_object);
}

}  // namespace ebpfrt::cli
