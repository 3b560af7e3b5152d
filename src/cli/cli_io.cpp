#include "cli/cli_io.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace ebpfrt::cli {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

Result<std::vector<std::byte>> parse_hex(std::string_view text) {
    std::vector<std::byte> out;
    out.reserve(text.size() / 2);
    int high = -1;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (is_space(c)) {
            if (high >= 0) return Error(Errc::invalid_argument, fmt::format("hex: odd digit before offset {}", i));
            continue;
        }
        const int v = hex_value(c);
        if (v < 0) {
            const unsigned char uc = static_cast<unsigned char>(c);
            return Error(Errc::invalid_argument,
                         uc >= 0x20 && uc < 0x7f
                             ? fmt::format("hex: '{}' at offset {} is not a hex digit", c, i)
                             : fmt::format("hex: byte 0x{:02x} at offset {} is not a hex digit", uc, i));
        }
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::byte>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) return Error(Errc::invalid_argument, "hex: odd number of digits");
    return out;
}

Result<std::vector<std::byte>> read_file(const std::string& path) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (!f) return Error(Errc::io_error, fmt::format("read \"{}\": {}", path, std::strerror(errno)));
    std::vector<std::byte> out;
    std::byte buf[65536];
    for (;;) {
        const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
        out.insert(out.end(), buf, buf + n);
        if (n < sizeof buf) break;
    }
    if (std::ferror(f.get())) return Error(Errc::io_error, fmt::format("read \"{}\": {}", path, std::strerror(errno)));
    return out;
}

Result<void> write_file(const std::string& path, const std::vector<std::byte>& bytes) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
    if (!f) return Error(Errc::io_error, fmt::format("write \"{}\": {}", path, std::strerror(errno)));
    if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size() || std::fflush(f.get()) != 0)
        return Error(Errc::io_error, fmt::format("write \"{}\": {}", path, std::strerror(errno)));
    return {};
}

}  // namespace ebpfrt::cli
