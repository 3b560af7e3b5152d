#pragma once
// Private to src/helpers (and its tests): safe memory access and printk-style formatting.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <ebpfrt/result.hpp>

namespace ebpfrt::detail {

/// Copies n bytes from an address that may be unmapped; false (and nothing trustworthy in dst) if
/// any byte cannot be read. Never faults.
bool safe_read(void* dst, const void* src, std::size_t n) noexcept;

/// Copies n bytes to an address that may be unmapped or read-only; false if it cannot. Never faults.
bool safe_write(void* dst, const void* src, std::size_t n) noexcept;

/// Formats like the kernel's bpf_trace_printk/bpf_snprintf: `args` are the 64-bit argument slots.
/// Errors: invalid_argument for an unsupported conversion or too few arguments.
Result<void> format_printk(const char* fmt, std::span<const std::uint64_t> args, std::string& out);

}  // namespace ebpfrt::detail
