#pragma once
// Helpers shared by the maps tests: shm names, specs, byte views.

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ebpfrt/maps.hpp>

namespace ebpfrt::test {

/// `ebpfrt-test-<pid>-<name>`, removed (if it exists) when the object dies.
struct ShmName {
    explicit ShmName(const std::string& n) : name("ebpfrt-test-" + std::to_string(getpid()) + "-" + n) {
        (void)Arena::remove(name);
    }
    ~ShmName() { (void)Arena::remove(name); }
    ShmName(const ShmName&) = delete;
    ShmName& operator=(const ShmName&) = delete;
    std::string name;
};

inline Arena anon_arena(std::size_t size = 16u << 20) {
    auto a = Arena::create({.name = "", .size = size});
    if (!a) throw std::runtime_error(a.error().message());
    return *a;
}

inline MapSpec make_spec(std::string name, MapType type, std::uint32_t key, std::uint32_t value,
                         std::uint32_t max_entries, std::uint32_t flags = 0) {
    MapSpec s;
    s.name = std::move(name);
    s.type = type;
    s.key_size = key;
    s.value_size = value;
    s.max_entries = max_entries;
    s.flags = flags;
    return s;
}

template <class T>
std::span<const std::byte> bytes(const T& v) {
    return std::span<const std::byte>(reinterpret_cast<const std::byte*>(&v), sizeof(T));
}
template <class T>
std::span<std::byte> wbytes(T& v) {
    return std::span<std::byte>(reinterpret_cast<std::byte*>(&v), sizeof(T));
}

inline std::string message_of(const Error& e) { return e.message(); }

}  // namespace ebpfrt::test
