#pragma once
// Reading the public conformance suite in ../shared/conformance/tests (see its README.md): the
// `.json` companions (program_hex, memory_hex, expected_r0, expected_error, cpu_version) and the
// `-- asm` sections of the `.data` files. Shared by the isa and conformance tests; no JSON library,
// the files are flat objects whose values are strings, null or an array of strings.

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace ebpfrt::test {

/// Where the suite's test files are (EBPFRT_SHARED_DIR comes from tests/CMakeLists.txt).
inline std::filesystem::path conformance_dir() {
    return std::filesystem::path(EBPFRT_SHARED_DIR) / "conformance" / "tests";
}

/// Files in `dir` whose name ends with `ext` (".json"), sorted by name; empty when `dir` is missing.
inline std::vector<std::filesystem::path> list_files(const std::filesystem::path& dir, std::string_view ext) {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return out;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && entry.path().extension() == ext) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

/// The value of the top-level field `"key"` when it is a string; nullopt when it is null or missing.
/// Handles the escapes JSON allows in a string (none occur in the suite's hex and names).
inline std::optional<std::string> json_string(std::string_view json, std::string_view key) {
    const std::string quoted = "\"" + std::string(key) + "\"";
    std::size_t at = json.find(quoted);
    if (at == std::string_view::npos) return std::nullopt;
    at += quoted.size();
    auto skip_ws = [&] {
        while (at < json.size() && (json[at] == ' ' || json[at] == '\t' || json[at] == '\n' || json[at] == '\r')) ++at;
    };
    skip_ws();
    if (at >= json.size() || json[at] != ':') return std::nullopt;
    ++at;
    skip_ws();
    if (at >= json.size() || json[at] != '"') return std::nullopt;  // null, number, array
    ++at;
    std::string out;
    while (at < json.size() && json[at] != '"') {
        char c = json[at++];
        if (c == '\\' && at < json.size()) {
            char e = json[at++];
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            default: c = e; break;  // \" \\ \/ (no \u in the suite)
            }
        }
        out += c;
    }
    return out;
}

/// Whether the top-level field `"key"` is present with the literal value null.
inline bool json_is_null(std::string_view json, std::string_view key) {
    const std::string quoted = "\"" + std::string(key) + "\"";
    std::size_t at = json.find(quoted);
    if (at == std::string_view::npos) return false;
    at = json.find(':', at + quoted.size());
    if (at == std::string_view::npos) return false;
    ++at;
    while (at < json.size() && (json[at] == ' ' || json[at] == '\t' || json[at] == '\n' || json[at] == '\r')) ++at;
    return json.substr(at, 4) == "null";
}

/// Hex text without separators ("b400...") to bytes; nullopt on an odd length or a non-hex digit.
inline std::optional<std::vector<std::byte>> from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) return std::nullopt;
    std::vector<std::byte> out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<std::byte>(hi * 16 + lo));
    }
    return out;
}

/// The lines between a line `-- asm` and the next line beginning with `-- ` (or the end).
inline std::string asm_section(std::string_view data) {
    std::string out;
    bool in = false;
    std::size_t pos = 0;
    while (pos < data.size()) {
        std::size_t end = data.find('\n', pos);
        if (end == std::string_view::npos) end = data.size();
        std::string_view line = data.substr(pos, end - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = end + 1;
        if (line.substr(0, 3) == "-- ") {
            in = line == "-- asm";
            continue;
        }
        if (in) {
            out += line;
            out += '\n';
        }
    }
    return out;
}

/// One test of the suite, from its `.json` companion.
struct ConformanceCase {
    std::string name;                         ///< file stem ("add")
    std::vector<std::byte> program;           ///< program_hex
    std::vector<std::byte> memory;            ///< memory_hex (may be empty)
    std::optional<std::string> expected_r0;   ///< "0x..." or nullopt
    std::optional<std::string> expected_error;
    std::string cpu_version;                  ///< "v1".."v4"
};

/// Parses `path` (a `.json` of the suite); an error text instead when a field is malformed.
inline std::optional<ConformanceCase> load_case(const std::filesystem::path& path, std::string& why) {
    const std::string json = read_text(path);
    ConformanceCase c;
    c.name = path.stem().string();
    auto prog_hex = json_string(json, "program_hex");
    if (!prog_hex) {
        why = "no program_hex";
        return std::nullopt;
    }
    auto prog = from_hex(*prog_hex);
    if (!prog) {
        why = "bad program_hex";
        return std::nullopt;
    }
    c.program = std::move(*prog);
    auto mem = from_hex(json_string(json, "memory_hex").value_or(""));
    if (!mem) {
        why = "bad memory_hex";
        return std::nullopt;
    }
    c.memory = std::move(*mem);
    c.expected_r0 = json_string(json, "expected_r0");
    c.expected_error = json_string(json, "expected_error");
    c.cpu_version = json_string(json, "cpu_version").value_or("");
    return c;
}

}  // namespace ebpfrt::test
