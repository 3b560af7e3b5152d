// Programs for the runtime's multi-process tests: atomic counters in a hash and an array map, and a
// ring buffer producer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} hcounts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} acounts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} events SEC(".maps");

struct input {
    __u32 key;
    __u32 producer;
    __u64 seq;
};

struct record {
    __u32 producer;
    __u32 pad;
    __u64 seq;
};

SEC("ext/count")
int count(struct input* in) {
    __u32 key = in->key;
    __u64* v = bpf_map_lookup_elem(&hcounts, &key);
    if (v) __sync_fetch_and_add(v, 1);
    v = bpf_map_lookup_elem(&acounts, &key);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}

SEC("ext/produce")
int produce(struct input* in) {
    struct record* r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
    if (!r) return 1;
    r->producer = in->producer;
    r->pad = 0;
    r->seq = in->seq;
    bpf_ringbuf_submit(r, 0);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
