// `ebpfrt verify FILE`: runs the verifier on every program of an ELF object and prints one line per
// program: accepted, or the first reason for rejection with the instruction index.

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/verifier.hpp>

#include "commands.hpp"

namespace ebpfrt::cli {

namespace {

Result<ProgType> parse_type(const std::string& name) {
    for (std::uint32_t t = 0; t <= static_cast<std::uint32_t>(ProgType::netfilter); ++t)
        if (to_string(static_cast<ProgType>(t)) == name) return static_cast<ProgType>(t);
    return Error(Errc::invalid_argument, fmt::format("verify: unknown program type \"{}\"", name));
}

}  // namespace

int verify(const std::vector<std::string>& args) {
    std::string file, target_btf, section;
    std::optional<ProgType> type;
    bool log = false;
    std::size_t states = VerifyOptions{}.max_states_per_point;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--btf" || args[i] == "--type" || args[i] == "--section") {
            if (i + 1 >= args.size()) return fail(fmt::format("verify: {} needs a value", args[i]));
            const std::string& v = args[++i];
            if (args[i - 1] == "--btf") {
                target_btf = v;
            } else if (args[i - 1] == "--section") {
                section = v;
            } else {
                auto t = parse_type(v);
                if (!t) return fail(t.error().message());
                type = *t;
            }
        } else if (args[i] == "--states" && i + 1 < args.size()) {
            states = std::strtoul(args[++i].c_str(), nullptr, 10);
            if (states == 0) return fail("verify: --states needs a positive number");
        } else if (args[i] == "--log") {
            log = true;
        } else if (args[i].rfind("--", 0) == 0) {
            return fail(fmt::format("verify: unknown option \"{}\"", args[i]));
        } else if (file.empty()) {
            file = args[i];
        } else {
            return fail(fmt::format("verify: unexpected argument \"{}\"", args[i]));
        }
    }
    if (file.empty()) return fail("verify: no FILE given (see ebpfrt help)");
    auto obj = Object::open(file, {.target_btf = target_btf});
    if (!obj) return fail(obj.error().message());

    bool all_ok = true;
    std::size_t checked = 0;
    for (const auto& p : obj->programs()) {
        if (!section.empty() && p.section != section && p.name != section) continue;
        ++checked;
        VerifyOptions options{.type = type.value_or(p.type), .maps = obj->maps()};
        options.max_states_per_point = states;
        if (!p.unresolved_calls.empty()) {
            // The ELF loader leaves such calls unlinked; loading the program would fail on them first.
            all_ok = false;
            std::printf("%s: rejected: verify \"%s\": calls undefined function \"%s\"\n", p.name.c_str(),
                        p.name.c_str(), p.unresolved_calls.front().c_str());
            continue;
        }
        if (log) options.log = [](std::string_view line) { std::printf("%.*s\n", int(line.size()), line.data()); };
        VerifyReport report;
        auto ok = ebpfrt::verify(p.name, p.insns, options, &report);
        if (ok) {
            std::printf("%s: accepted (%zu instruction visits, %zu states)\n", p.name.c_str(), report.visits,
                        report.states);
        } else {
            all_ok = false;
            std::printf("%s: rejected: %s\n", p.name.c_str(), ok.error().message().c_str());
        }
    }
    if (checked == 0) return fail(fmt::format("verify \"{}\": no program in section \"{}\"", file, section));
    std::fflush(stdout);
    return all_ok ? 0 : 1;
}

}  // namespace ebpfrt::cli
