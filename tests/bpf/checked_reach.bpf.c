// A program the verifier rejects on purpose (a map value read at an offset from the host): the
// checked-mode tests (tests/runtime/helpers_test.cpp, CheckedModeConfinesMapValueReads) load it with
// verification off and let checked mode decide which reads may happen.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct io {
    __u64 arg[8];
    __s64 ret[32];
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} reach_hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} reach_array SEC(".maps");

// arg[0]: 0 for the hash map, 1 for the array; arg[1]: the key; arg[2]: the byte offset from the value
// to read. ret[0]: the byte; the program returns 1 when the key is missing.
SEC("ext/value_reach")
int value_reach(struct io* io) {
    __u32 k = (__u32)io->arg[1];
    __u8* v = io->arg[0] ? bpf_map_lookup_elem(&reach_array, &k) : bpf_map_lookup_elem(&reach_hash, &k);
    if (!v) return 1;
    io->ret[0] = *(volatile __u8*)(v + (__s64)io->arg[2]);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
