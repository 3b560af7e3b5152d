// An object that uses the libbpf conventions the ELF loader must handle: BTF-defined maps (with
// initial prog_array slots and a map-in-map), globals in .rodata/.data/.bss, a kconfig extern,
// bpf-to-bpf calls shared by two programs, two programs in one section, a static entry function,
// a callback passed to bpf_loop, and a host hook section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct value {
    __u64 count;
    __u32 last;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 128);
    __type(key, __u32);
    __type(value, struct value);
} counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
    __uint(map_flags, BPF_F_MMAPABLE);
} stats SEC(".maps");

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 3);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps");

int tail_target(void* ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __array(values, int(void*));
} jumps SEC(".maps") = {
    .values = {[5] = (void*)&tail_target},
};

const volatile __u32 threshold = 7;
__u64 data_counter = 3;
__u64 bss_counter;
extern int LINUX_KERNEL_VERSION __kconfig;

static __noinline __u64 scale(__u64 x) {
    return x * threshold + data_counter;
}

static __noinline __u64 twice_scaled(__u64 x) {
    return scale(x) + scale(x + 1);
}

static int add_one(__u32 index, void* ctx) {
    *(__u64*)ctx += index;
    return 0;
}

SEC("uprobe")
int on_entry(void* ctx) {
    __u32 key = 1;
    struct value* v = bpf_map_lookup_elem(&counts, &key);
    if (v) v->count++;
    bss_counter += twice_scaled(2);
    return LINUX_KERNEL_VERSION > 0;
}

SEC("uprobe")
int on_entry_too(void* ctx) {
    __u64 sum = 0;
    bpf_loop(4, add_one, &sum, 0);
    return scale(sum);
}

SEC("uretprobe/libc.so.6:malloc")
int tail_target(void* ctx) {
    __u32 k = 0;
    __u64* s = bpf_map_lookup_elem(&stats, &k);
    if (s) __sync_fetch_and_add(s, 1);
    bpf_tail_call(ctx, &jumps, 5);
    return 0;
}

SEC("ext/on_request")
__attribute__((used)) static int decide(void* ctx) {
    return bpf_map_lookup_elem(&outer, &(__u32){0}) != 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
