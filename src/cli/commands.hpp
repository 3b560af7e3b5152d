#pragma once
// Subcommands of the `ebpfrt` CLI that live in their own files.

#include <string>
#include <vector>

namespace ebpfrt::cli {

/// `ebpfrt inspect FILE`: programs, maps, globals and relocations of an ELF object. Exit status.
int inspect(const std::vector<std::string>& args);

/// Prints "ebpfrt: <message>" on stderr; returns 1.
int fail(const std::string& message);

}  // namespace ebpfrt::cli
