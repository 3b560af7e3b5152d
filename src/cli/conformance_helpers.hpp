#pragma once
// The helpers that the conformance suite's reference plugin (uBPF's) registers, ids 0-5, with the
// semantics of shared/conformance/PLUGIN-PROTOCOL.md §4. Used by ebpfrt-conformance-plugin and the
// in-process conformance test; not part of the public API.

#include <ebpfrt/helpers.hpp>

namespace ebpfrt::conformance {

/// A table holding helpers 0 (gather bytes), 1 (memfrob), 2 (no-op), 3 (integer sqrt), 4 (strcmp)
/// and 5 (unwind: a zero result ends the program with r0 = 0).
HelperTable helpers();

}  // namespace ebpfrt::conformance
