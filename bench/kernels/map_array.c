// Array map, lookup and update in place: 4096 times, the u64 counter of key i %
// 256 gets i added through the pointer the lookup returns; the new values are
// summed.
#include "map_common.h"

#define ARRAY_ITERS 4096

BENCH_PROG(bench_map_array) {
    (void)ctx;
    unsigned long long acc = 0;
    for (unsigned int i = 0; i < ARRAY_ITERS; i++) {
        unsigned int key = i % BENCH_ARRAY_ENTRIES;
        unsigned long long* v = BENCH_ARRAY_LOOKUP(&key);
        if (!v) return 0;
        *v += i;
        acc += *v;
    }
    return bench_fold32(acc);
}

BENCH_LICENSE
