// Hash map lookups of present keys: 2048 lookups in a full 1024-entry u32 ->
// u64 hash map, key number (7 * i) % 1024 of the filled set, the values summed.
#include "map_common.h"

#define HASH_ITERS 2048

BENCH_PROG(bench_map_hash) {
    (void)ctx;
    unsigned long long acc = 0;
    for (unsigned int i = 0; i < HASH_ITERS; i++) {
        unsigned int key = bench_hash_key((7 * i) % BENCH_HASH_ENTRIES);
        unsigned long long* v = BENCH_HASH_LOOKUP(&key);
        if (!v) return 0;
        acc += *v;
    }
    return bench_fold32(acc);
}

BENCH_LICENSE
