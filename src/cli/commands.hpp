#pragma once
// Subcommands of the `ebpfrt` CLI that live in their own files.

#include <cstdint>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <ebpfrt/elf.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/vm.hpp>

namespace ebpfrt::cli {

/// `ebpfrt inspect FILE`: programs, maps, globals and relocations of an ELF object. Exit status.
int inspect(const std::vector<std::string>& args);

/// `ebpfrt verify FILE [--type T] [--section S] [--btf VMLINUX]`: one line per program. Exit status
/// 0 when every program is accepted, 1 otherwise.
int verify(const std::vector<std::string>& args);

/// Options of `ebpfrt run` that apply to ELF objects.
struct RunOptions {
    std::string section;          ///< section or program name (may be empty when there is one program)
    std::string shm;              ///< shared-memory arena for the maps (empty: private)
    std::vector<std::byte> mem;   ///< context memory
    std::uint64_t repeat = 0;
    std::uint64_t budget = 0;
    bool checked = true;
    Engine engine = Engine::interpreter;
};

/// `ebpfrt run FILE.o [--section S]`: loads the object into a runtime and runs one program. Exit status.
int run_elf(const std::string& path, const RunOptions& options);

/// The program of `obj` in section or named `section` (or its only program when `section` is empty).
/// Errors: not_found "<verb> \"<path>\": ..." naming the programs there are.
Result<const ProgramSpec*> pick_program(const Object& obj, const std::string& section, std::string_view verb,
                                        const std::string& path);

/// `ebpfrt map list|dump ...`. Exit status.
int map_command(const std::vector<std::string>& args);

/// Prints "ebpfrt: <message>" on stderr; returns 1.
int fail(const std::string& message);

}  // namespace ebpfrt::cli
