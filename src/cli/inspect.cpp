// ebpfrt inspect FILE: what an ELF object holds, after parsing and relocation. Each program's code is
// also validated, so a malformed instruction stream is reported here rather than at load time.

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/isa.hpp>

#include "cli/commands.hpp"

namespace ebpfrt::cli {
namespace {

std::string origin_name(MapOrigin o) {
    switch (o) {
    case MapOrigin::host: return "host";
    case MapOrigin::btf_maps: return ".maps";
    case MapOrigin::legacy: return "legacy maps";
    case MapOrigin::rodata: return "rodata";
    case MapOrigin::data: return "data";
    case MapOrigin::bss: return "bss";
    case MapOrigin::kconfig: return "kconfig";
    }
    return "?";
}

}  // namespace

int inspect(const std::vector<std::string>& args) {
    std::string file, target_btf;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--btf") {
            if (i + 1 >= args.size()) return fail("inspect: --btf needs a file");
            target_btf = args[++i];
        } else if (args[i].rfind("--", 0) == 0) {
            return fail(fmt::format("inspect: unknown option \"{}\"", args[i]));
        } else if (file.empty()) {
            file = args[i];
        } else {
            return fail(fmt::format("inspect: unexpected argument \"{}\"", args[i]));
        }
    }
    if (file.empty()) return fail("inspect: no FILE given (see ebpfrt help)");

    auto obj = Object::open(file, {.target_btf = target_btf});
    if (!obj) return fail(obj.error().message());
    for (const auto& p : obj->programs())
        if (auto ok = isa::validate(p.insns); !ok)
            return fail(fmt::format("load \"{}\": program \"{}\": {}", file, p.name, ok.error().message()));

    std::size_t user_maps = 0;
    for (const auto& m : obj->maps())
        if (m.origin == MapOrigin::btf_maps || m.origin == MapOrigin::legacy || m.origin == MapOrigin::host) ++user_maps;
    std::string out = fmt::format("object \"{}\": {} programs, {} maps, license \"{}\"", file, obj->programs().size(),
                                  user_maps, obj->license());
    if (obj->kernel_version()) out += fmt::format(", version 0x{:x}", obj->kernel_version());
    out += '\n';

    out += "programs:\n";
    for (const auto& p : obj->programs()) {
        out += fmt::format("  {:<28} section \"{}\" type {} attach {}", p.name, p.section, to_string(p.type),
                           to_string(p.attach));
        if (!p.attach_target.empty()) out += fmt::format(" \"{}\"", p.attach_target);
        out += fmt::format(" insns {}", p.insns.size());
        if (p.insns.size() != p.entry_insns) out += fmt::format(" ({} + subprograms)", p.entry_insns);
        if (!p.global) out += " static";
        if (!p.unresolved_calls.empty()) {
            out += " unresolved:";
            for (const auto& u : p.unresolved_calls) out += " " + u;
        }
        out += '\n';
    }
    out += "maps:\n";
    for (const auto& m : obj->maps()) {
        if (m.origin != MapOrigin::btf_maps && m.origin != MapOrigin::legacy && m.origin != MapOrigin::host) continue;
        out += fmt::format("  {:<28} type {} key {} value {} max_entries {}", m.name, to_string(m.type), m.key_size,
                           m.value_size, m.max_entries);
        if (m.flags) out += fmt::format(" flags 0x{:x}", m.flags);
        if (m.pinning != Pinning::none) out += fmt::format(" pinning {}", static_cast<unsigned>(m.pinning));
        if (m.inner)
            out += fmt::format(" inner {{type {} key {} value {} max_entries {}}}", to_string(m.inner->type),
                               m.inner->key_size, m.inner->value_size, m.inner->max_entries);
        if (!m.initial_slots.empty()) out += fmt::format(" initial slots {}", m.initial_slots.size());
        out += fmt::format(" ({})\n", origin_name(m.origin));
    }
    out += "globals:\n";
    for (const auto& m : obj->maps()) {
        if (m.origin == MapOrigin::btf_maps || m.origin == MapOrigin::legacy || m.origin == MapOrigin::host) continue;
        out += fmt::format("  {:<28} {} bytes ({})", m.name, m.value_size, origin_name(m.origin));
        if (obj->btf() && m.btf_value_type_id) {
            const auto& ds = obj->btf()->type(m.btf_value_type_id);
            std::string names;
            for (const auto& v : ds.vars) names += (names.empty() ? "" : ", ") + obj->btf()->type(v.type).name;
            if (!names.empty()) out += ": " + names;
        }
        out += '\n';
    }
    const auto& r = obj->relocations();
    out += fmt::format(
        "relocations: {} map refs, {} global refs, {} calls linked, {} extern calls, {} kconfig externs, "
        "CO-RE {} applied / {} without a match\n",
        r.map_refs, r.global_refs, r.calls, r.extern_calls, r.kconfig, r.core_applied, r.core_poisoned);
    for (const auto& n : obj->notes()) out += "note: " + n + '\n';
    std::fputs(out.c_str(), stdout);
    return 0;
}

}  // namespace ebpfrt::cli
