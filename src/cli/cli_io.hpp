#pragma once
// Small input helpers shared by the `ebpfrt` CLI and the conformance plugin (private to src/cli).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/result.hpp>

namespace ebpfrt::cli {

/// Bytes written as hex digit pairs, optionally separated by white space ("aa bb", "aabb", "aa  bb  ").
/// Errors: invalid_argument naming the offending character or an odd digit count.
Result<std::vector<std::byte>> parse_hex(std::string_view text);

/// The whole file. Errors: io_error "read \"path\": <strerror>".
Result<std::vector<std::byte>> read_file(const std::string& path);

/// Writes the bytes. Errors: io_error "write \"path\": <strerror>".
Result<void> write_file(const std::string& path, const std::vector<std::byte>& bytes);

}  // namespace ebpfrt::cli
