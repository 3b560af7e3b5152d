// Array map, lookup then bpf_map_update_elem: 1024 times, the counter of key (7
// * i) % 256 is read and written back plus i with an update call; the new
// values are xor-folded.
#include "map_common.h"

#define UPDATE_ITERS 1024

BENCH_PROG(bench_map_array_update) {
    (void)ctx;
    unsigned long long acc = 0;
    for (unsigned int i = 0; i < UPDATE_ITERS; i++) {
        unsigned int key = (7 * i) % BENCH_ARRAY_ENTRIES;
        unsigned long long* v = BENCH_ARRAY_LOOKUP(&key);
        if (!v) return 0;
        unsigned long long x = *v + i;
        if (BENCH_ARRAY_UPDATE(&key, &x) != 0) return 0;
        acc = (acc << 7 | acc >> 57) ^ x;
    }
    return bench_fold32(acc);
}

BENCH_LICENSE
