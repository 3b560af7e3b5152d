#pragma once
// Process-local handles: what a MapRef points to. Private to src/maps.

#include <memory>

#include <ebpfrt/maps.hpp>

#include "maps/layout.hpp"

namespace ebpfrt::detail {

/// One process's handle on a map: holds a reference in the map header (refs) and the arena mapping.
struct MapHandle {
    std::shared_ptr<ArenaState> arena;
    maps::MapHeader* hdr = nullptr;
    const maps::MapOps* ops = nullptr;
    MapSpec spec;  // rebuilt from the header once, so spec() is a plain reference
    std::uint32_t sys_value_size = 0;
    ~MapHandle();
};

struct MapAccess {
    /// A MapRef on `hdr`, whose reference the caller has already taken (hdr->refs).
    static MapRef adopt(std::shared_ptr<ArenaState> arena, maps::MapHeader* hdr);
    static MapHandle& handle(const MapRef& r) noexcept { return *r.h_; }
};

/// The spec a header was created from.
MapSpec spec_from_header(const maps::MapHeader* h);

}  // namespace ebpfrt::detail
