// Maps for the map-heavy kernels (map_*.c), one source for both builds:
//   BPF (clang -target bpf): BTF-defined maps in ".maps" and the kernel's
//   helpers, so that the same
//     object runs on ebpfrt (Runtime::load) and in the kernel (BPF_PROG_LOAD
//     with map fds);
//   native: the same kernels over plain C data structures of the same shape,
//   defined in
//     native_maps.c and filled by the bench exactly as the maps are: a u64
//     array for the array map, and an open-addressing table (linear probing,
//     2048 slots for 1024 keys) for the hash map.
// The native build is the "how fast is the same work in C" baseline; it has
// none of a map's semantics beyond lookup and update (no concurrency, no RCU,
// no per-element locking).
#pragma once

#define BENCH_ARRAY_ENTRIES 256
#define BENCH_HASH_ENTRIES 1024
#define BENCH_HASH_SLOTS 2048

// The hash keys the bench fills: key_of(j) for j < BENCH_HASH_ENTRIES (all
// distinct: an odd multiplier is a bijection on u32), with value j * j + 1.
static inline unsigned int bench_hash_key(unsigned int j) { return j * 2654435761u + 1u; }

// A u32 fold of a u64 result: BPF_PROG_TEST_RUN reports only the low 32 bits of
// r0.
static inline unsigned long long bench_fold32(unsigned long long x) { return (x ^ (x >> 32)) & 0xffffffffu; }

#ifdef __bpf__
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, BENCH_ARRAY_ENTRIES);
    __type(key, unsigned int);
    __type(value, unsigned long long);
} bench_array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BENCH_HASH_ENTRIES);
    __type(key, unsigned int);
    __type(value, unsigned long long);
} bench_hash SEC(".maps");

#define BENCH_PROG(name) SEC("tc") unsigned long long name(unsigned char* ctx)
#define BENCH_ARRAY_LOOKUP(key) ((unsigned long long*)bpf_map_lookup_elem(&bench_array, (key)))
#define BENCH_ARRAY_UPDATE(key, value) bpf_map_update_elem(&bench_array, (key), (value), BPF_ANY)
#define BENCH_HASH_LOOKUP(key) ((unsigned long long*)bpf_map_lookup_elem(&bench_hash, (key)))
#define BENCH_LICENSE char bench_license[] SEC("license") = "GPL";
#else
struct bench_hash_slot {
    unsigned int key;
    unsigned int used;
    unsigned long long value;
};
extern unsigned long long bench_native_array[BENCH_ARRAY_ENTRIES];
extern struct bench_hash_slot bench_native_hash[BENCH_HASH_SLOTS];

// murmur3's 32-bit finalizer, to 11 bits (2048 slots).
static inline unsigned int bench_hash_slot_of(unsigned int key) {
    key ^= key >> 16;
    key *= 0x85ebca6bu;
    key ^= key >> 13;
    key *= 0xc2b2ae35u;
    key ^= key >> 16;
    return key % BENCH_HASH_SLOTS;
}

static inline unsigned long long* bench_native_array_lookup(const unsigned int* key) {
    return *key < BENCH_ARRAY_ENTRIES ? &bench_native_array[*key] : 0;
}
static inline int bench_native_array_update(const unsigned int* key, const unsigned long long* value) {
    if (*key >= BENCH_ARRAY_ENTRIES) return -1;
    bench_native_array[*key] = *value;
    return 0;
}
static inline unsigned long long* bench_native_hash_lookup(const unsigned int* key) {
    for (unsigned int s = bench_hash_slot_of(*key), n = 0; n < BENCH_HASH_SLOTS;
         n++, s = (s + 1) % BENCH_HASH_SLOTS) {
        if (!bench_native_hash[s].used) return 0;
        if (bench_native_hash[s].key == *key) return &bench_native_hash[s].value;
    }
    return 0;
}

#define BENCH_PROG(name) unsigned long long name(unsigned char* ctx)
#define BENCH_ARRAY_LOOKUP(key) bench_native_array_lookup(key)
#define BENCH_ARRAY_UPDATE(key, value) bench_native_array_update((key), (value))
#define BENCH_HASH_LOOKUP(key) bench_native_hash_lookup(key)
#define BENCH_LICENSE
#endif
