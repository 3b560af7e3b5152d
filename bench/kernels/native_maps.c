// The native stand-ins for the maps of map_common.h, shared by the gcc and
// clang builds of the map kernels; the bench fills them as it fills the maps.
#include "map_common.h"

unsigned long long bench_native_array[BENCH_ARRAY_ENTRIES];
struct bench_hash_slot bench_native_hash[BENCH_HASH_SLOTS];
