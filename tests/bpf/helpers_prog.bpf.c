// Programs for the helper-semantics tests (tests/runtime/helpers_test.cpp). Each ext/<name> program
// calls kernel helpers the way libbpf-style BPF C does and stores what they returned in its context,
// `struct io`, which the test declares identically. Expected values are the kernel's (man 7
// bpf-helpers, kernel/bpf/*.c); the test states them. `diff` is also loaded into the kernel (as a
// BPF_PROG_TYPE_SYSCALL program), so it passes the kernel verifier: stack buffers, constant sizes,
// const strings in .rodata.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct io {
    __u64 arg[8];      // inputs from the host
    __s64 ret[32];     // helper results
    char str[8][64];   // string outputs (and inputs)
    __u64 stack[32];   // bpf_get_stack output
};

// ---- map_lookup/update/delete flags -----------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} hmap SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} amap SEC(".maps");

SEC("ext/hash_flags")
int hash_flags(struct io* io) {
    __u32 k = 1;
    __u64 v = 10;
    io->ret[0] = bpf_map_update_elem(&hmap, &k, &v, BPF_NOEXIST);
    v = 11;
    io->ret[1] = bpf_map_update_elem(&hmap, &k, &v, BPF_NOEXIST);
    k = 2;
    io->ret[2] = bpf_map_update_elem(&hmap, &k, &v, BPF_EXIST);
    k = 1;
    v = 12;
    io->ret[3] = bpf_map_update_elem(&hmap, &k, &v, BPF_EXIST);
    __u64* p = bpf_map_lookup_elem(&hmap, &k);
    io->ret[4] = p ? (__s64)*p : -1;
    k = 2;
    io->ret[5] = bpf_map_lookup_elem(&hmap, &k) != 0;
    k = 1;
    io->ret[6] = bpf_map_update_elem(&hmap, &k, &v, 3);           // not a flag combination
    io->ret[7] = bpf_map_update_elem(&hmap, &k, &v, BPF_F_LOCK);  // the value has no bpf_spin_lock
    io->ret[8] = bpf_map_delete_elem(&hmap, &k);
    io->ret[9] = bpf_map_delete_elem(&hmap, &k);
    // Fill the map (max_entries 4), then one more.
    for (__u32 i = 0; i < 5; i++) {
        k = 10 + i;
        v = 100 + i;
        io->ret[10 + i] = bpf_map_update_elem(&hmap, &k, &v, BPF_ANY);
    }
    k = 14;
    io->ret[15] = bpf_map_update_elem(&hmap, &k, &v, BPF_EXIST);
    k = 10;
    v = 1000;
    io->ret[16] = bpf_map_update_elem(&hmap, &k, &v, BPF_ANY);  // replace while full
    io->ret[17] = bpf_map_update_elem(&hmap, &k, &v, BPF_NOEXIST);
    // Arrays: every index exists, none can be deleted.
    k = 0;
    v = 7;
    io->ret[18] = bpf_map_update_elem(&amap, &k, &v, BPF_NOEXIST);
    io->ret[19] = bpf_map_update_elem(&amap, &k, &v, BPF_EXIST);
    io->ret[20] = bpf_map_update_elem(&amap, &k, &v, BPF_ANY);
    k = 4;
    io->ret[21] = bpf_map_update_elem(&amap, &k, &v, BPF_ANY);
    io->ret[22] = bpf_map_lookup_elem(&amap, &k) != 0;
    k = 0;
    io->ret[23] = bpf_map_delete_elem(&amap, &k);
    p = bpf_map_lookup_elem(&amap, &k);
    io->ret[24] = p ? (__s64)*p : -1;
    return 0;
}

// ---- queue and stack --------------------------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(max_entries, 4);
    __type(value, __u32);
} queue SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK);
    __uint(max_entries, 4);
    __type(value, __u32);
} stack SEC(".maps");

static __always_inline void push_pop(void* map, struct io* io) {
    __u32 v = 0;
    io->ret[0] = bpf_map_peek_elem(map, &v);
    io->ret[1] = bpf_map_pop_elem(map, &v);
    for (__u32 i = 1; i <= 5; i++) {
        v = i;
        io->ret[1 + i] = bpf_map_push_elem(map, &v, 0);  // ret[2..6]
    }
    v = 6;
    io->ret[7] = bpf_map_push_elem(map, &v, BPF_NOEXIST);
    io->ret[8] = bpf_map_push_elem(map, &v, BPF_EXIST);  // full: drops the oldest
    v = 0;
    io->ret[9] = bpf_map_peek_elem(map, &v);
    io->ret[10] = v;
    for (int i = 0; i < 4; i++) {
        v = 0;
        io->ret[11 + 2 * i] = bpf_map_pop_elem(map, &v);  // ret[11], [13], [15], [17]
        io->ret[12 + 2 * i] = v;                          // ret[12], [14], [16], [18]
    }
    io->ret[19] = bpf_map_pop_elem(map, &v);
}

SEC("ext/queue_ops")
int queue_ops(struct io* io) {
    push_pop(&queue, io);
    return 0;
}

SEC("ext/stack_ops")
int stack_ops(struct io* io) {
    push_pop(&stack, io);
    return 0;
}

SEC("ext/queue_pop")
int queue_pop(struct io* io) {
    __u32 v = 0;
    io->ret[0] = bpf_map_pop_elem(&queue, &v);
    io->ret[1] = v;
    v = (__u32)io->arg[0];
    io->ret[2] = bpf_map_push_elem(&stack, &v, 0);
    return 0;
}

// ---- ring buffer ------------------------------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} rb SEC(".maps");

struct rec {
    __u64 seq;
    __u64 tag;
};

SEC("ext/rb_ops")
int rb_ops(struct io* io) {
    struct rec r = {1, 0xaaaa};
    io->ret[0] = bpf_ringbuf_output(&rb, &r, sizeof r, 0);
    struct rec* p = bpf_ringbuf_reserve(&rb, sizeof *p, 0);
    if (!p) return 1;
    p->seq = 2;
    p->tag = 0xbbbb;
    bpf_ringbuf_submit(p, 0);
    p = bpf_ringbuf_reserve(&rb, sizeof *p, 0);
    if (!p) return 2;
    p->seq = 3;
    p->tag = 0xcccc;
    bpf_ringbuf_discard(p, 0);
    p = bpf_ringbuf_reserve(&rb, sizeof *p, 0);
    if (!p) return 3;
    p->seq = 4;
    p->tag = 0xdddd;
    bpf_ringbuf_submit(p, BPF_RB_NO_WAKEUP);
    io->ret[1] = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
    io->ret[2] = bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE);
    io->ret[3] = bpf_ringbuf_query(&rb, BPF_RB_CONS_POS);
    io->ret[4] = bpf_ringbuf_query(&rb, BPF_RB_PROD_POS);
    void* big = bpf_ringbuf_reserve(&rb, 8192, 0);  // larger than the ring
    io->ret[5] = big != 0;
    if (big) bpf_ringbuf_discard(big, 0);
    io->ret[6] = bpf_ringbuf_output(&rb, &r, sizeof r, 4);  // unknown flag
    p = bpf_ringbuf_reserve(&rb, sizeof *p, 1);              // reserve takes no flags
    io->ret[7] = p != 0;
    if (p) bpf_ringbuf_discard(p, 0);
    io->ret[8] = bpf_ringbuf_query(&rb, 99);                 // unknown query
    return 0;
}

SEC("ext/rb_query")
int rb_query(struct io* io) {
    io->ret[0] = bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA);
    io->ret[1] = bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE);
    io->ret[2] = bpf_ringbuf_query(&rb, BPF_RB_CONS_POS);
    io->ret[3] = bpf_ringbuf_query(&rb, BPF_RB_PROD_POS);
    return 0;
}

SEC("ext/rb_fill")
int rb_fill(struct io* io) {
    struct rec r = {0, 0xeeee};
    for (__u32 i = 0; i < 1000; i++) {
        r.seq = i;
        long rc = bpf_ringbuf_output(&rb, &r, sizeof r, 0);
        if (rc != 0) {
            io->ret[0] = i;
            io->ret[1] = rc;
            return 0;
        }
    }
    io->ret[0] = 1000;
    return 0;
}

// ---- perf_event_output ------------------------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} perf SEC(".maps");

SEC("ext/perf_out")
int perf_out(struct io* io) {
    __u32 d[3] = {0x11111111, 0x22222222, (__u32)io->arg[1]};
    io->ret[1] = bpf_get_smp_processor_id();
    io->ret[0] = bpf_perf_event_output(io, &perf, io->arg[0], d, sizeof d);
    char odd[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    if (io->arg[2]) io->ret[2] = bpf_perf_event_output(io, &perf, io->arg[0], odd, sizeof odd);
    return 0;
}

// ---- for_each_map_elem and bpf_loop -----------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} each_arr SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} each_hash SEC(".maps");

struct each_ctx {
    __u64 calls;
    __u64 sum_keys;
    __u64 sum_vals;
    __u32 stop_at;
    __u32 last_key;
};

static long each_cb(void* map, __u32* key, __u64* val, struct each_ctx* c) {
    c->calls++;
    c->sum_keys += *key;
    c->sum_vals += *val;
    c->last_key = *key;
    *val += 1;  // callbacks may write the value
    return *key == c->stop_at ? 1 : 0;
}

SEC("ext/for_each")
int for_each(struct io* io) {
    struct each_ctx a = {.stop_at = (__u32)io->arg[0]};
    io->ret[0] = bpf_for_each_map_elem(&each_arr, each_cb, &a, 0);
    io->ret[1] = a.calls;
    io->ret[2] = a.sum_keys;
    io->ret[3] = a.sum_vals;
    struct each_ctx h = {.stop_at = (__u32)io->arg[1]};
    io->ret[4] = bpf_for_each_map_elem(&each_hash, each_cb, &h, 0);
    io->ret[5] = h.calls;
    io->ret[6] = h.sum_keys;
    io->ret[7] = h.sum_vals;
    io->ret[8] = h.last_key;
    struct each_ctx f = {.stop_at = ~0u};
    io->ret[9] = bpf_for_each_map_elem(&each_arr, each_cb, &f, 1);  // flags must be 0
    io->ret[10] = f.calls;
    return 0;
}

struct loop_ctx {
    __u64 calls;
    __u64 sum;
    __u64 stop_at;
};

static long loop_cb(__u64 index, struct loop_ctx* c) {
    c->calls++;
    c->sum += index;
    return index == c->stop_at ? 1 : 0;
}

SEC("ext/loops")
int loops(struct io* io) {
    struct loop_ctx a = {.stop_at = ~0ull};
    io->ret[0] = bpf_loop((__u32)io->arg[0], loop_cb, &a, 0);
    io->ret[1] = a.sum;
    io->ret[2] = a.calls;
    struct loop_ctx b = {.stop_at = io->arg[1]};
    io->ret[3] = bpf_loop((__u32)io->arg[0], loop_cb, &b, 0);
    io->ret[4] = b.calls;
    struct loop_ctx c = {.stop_at = ~0ull};
    io->ret[5] = bpf_loop((1u << 23) + 1, loop_cb, &c, 0);
    io->ret[6] = c.calls;
    struct loop_ctx d = {.stop_at = ~0ull};
    io->ret[7] = bpf_loop(10, loop_cb, &d, 1);  // flags must be 0
    io->ret[8] = d.calls;
    struct loop_ctx e = {.stop_at = ~0ull};
    io->ret[9] = bpf_loop(0, loop_cb, &e, 0);
    io->ret[10] = e.calls;
    return 0;
}

// ---- stacks -----------------------------------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 64);
    __type(key, __u32);
    __uint(value_size, 64 * sizeof(__u64));
} stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 1);
    __type(key, __u32);
    __uint(value_size, 64 * sizeof(__u64));
} stack1 SEC(".maps");

SEC("ext/stack_ids")
int stack_ids(struct io* io) {
    io->ret[0] = bpf_get_stackid(io, &stacks, BPF_F_USER_STACK);
    io->ret[1] = bpf_get_stackid(io, &stack1, BPF_F_USER_STACK | io->arg[0]);
    io->ret[2] = bpf_get_stack(io, io->stack, sizeof io->stack, BPF_F_USER_STACK);
    io->ret[3] = bpf_get_stack(io, io->str[0], 12, BPF_F_USER_STACK);             // not a multiple of 8
    io->ret[4] = bpf_get_stackid(io, &stacks, BPF_F_USER_STACK | (1ull << 12));   // unknown flag
    io->ret[5] = bpf_get_stack(io, io->str[1], 16, BPF_F_USER_STACK | (1ull << 12));
    return 0;
}

// Build ids (struct bpf_stack_build_id, 32 bytes a frame).
struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 16);
    __type(key, __u32);
    __uint(value_size, 8 * sizeof(struct bpf_stack_build_id));
    __uint(map_flags, BPF_F_STACK_BUILD_ID);
} build_id_stacks SEC(".maps");

SEC("ext/stack_build_ids")
int stack_build_ids(struct io* io) {
    // The same frames twice: as addresses (stack[0..3]) and as build ids (stack[4..19]).
    io->ret[0] = bpf_get_stack(io, io->stack, 4 * sizeof(__u64), BPF_F_USER_STACK);
    io->ret[1] = bpf_get_stack(io, &io->stack[4], 4 * sizeof(struct bpf_stack_build_id),
                               BPF_F_USER_STACK | BPF_F_USER_BUILD_ID);
    io->ret[2] = bpf_get_stack(io, io->str[2], 40, BPF_F_USER_STACK | BPF_F_USER_BUILD_ID);  // not whole frames
    io->ret[3] = bpf_get_stack(io, io->str[3], 32, BPF_F_USER_BUILD_ID);  // build ids of a kernel stack
    io->ret[4] = bpf_get_stackid(io, &build_id_stacks, BPF_F_USER_STACK);
    return 0;
}

// ---- spin lock --------------------------------------------------------------------------------------

struct locked_val {
    struct bpf_spin_lock lock;
    __u32 pad;
    __u64 a;
    __u64 b;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct locked_val);
} locked SEC(".maps");

SEC("ext/locked_inc")
int locked_inc(struct io* io) {
    __u32 k = 0;
    struct locked_val* v = bpf_map_lookup_elem(&locked, &k);
    if (!v) return 1;
    bpf_spin_lock(&v->lock);
    // A plain read-modify-write: only the lock makes it exact.
    __u64 a = *(volatile __u64*)&v->a;
    *(volatile __u64*)&v->a = a + 1;
    v->b += 2;
    bpf_spin_unlock(&v->lock);
    return 0;
}

// ---- per-CPU maps -----------------------------------------------------------------------------------

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} pcpu_arr SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} pcpu_hash SEC(".maps");

SEC("ext/percpu")
int percpu(struct io* io) {
    __u32 cpu = (__u32)io->arg[0];
    __u32 k = 0;
    __u64* v = bpf_map_lookup_percpu_elem(&pcpu_arr, &k, cpu);
    io->ret[0] = v != 0;
    io->ret[1] = v ? (__s64)*v : 0;
    k = 5;
    v = bpf_map_lookup_percpu_elem(&pcpu_hash, &k, cpu);
    io->ret[2] = v != 0;
    io->ret[3] = v ? (__s64)*v : 0;
    k = 6;
    io->ret[4] = bpf_map_lookup_percpu_elem(&pcpu_hash, &k, 0) != 0;  // no such key
    k = 2;
    io->ret[5] = bpf_map_lookup_percpu_elem(&pcpu_arr, &k, 0) != 0;   // index out of range
    // bpf_map_lookup_elem on a per-CPU map: the current CPU's value.
    k = 0;
    io->ret[6] = bpf_get_smp_processor_id();
    v = bpf_map_lookup_elem(&pcpu_arr, &k);
    io->ret[7] = v ? (__s64)*v : -1;
    if (v) *v += 1000;
    return 0;
}

// ---- strings: bpf_snprintf, bpf_strncmp, probe reads (also run in the kernel) -------------------------

// Copies a 64-byte stack buffer to the context (the kernel does not let helpers write the context of a
// syscall program directly).
#define TO_IO(io, slot, buf) __builtin_memcpy((io)->str[slot], buf, 64)

SEC("ext/diff")
int diff(struct io* io) {
    char out[64];
    char in[16];
    __builtin_memcpy(in, io->str[7], sizeof in);
    in[15] = 0;

    __builtin_memset(out, 0, sizeof out);
    io->ret[0] = BPF_SNPRINTF(out, sizeof out, "%d %u %x %s %llu", -42, 4000000000u, 0xbeef, "str",
                              12345678901234ull);
    TO_IO(io, 0, out);

    __builtin_memset(out, 0, sizeof out);
    io->ret[1] = BPF_SNPRINTF(out, 8, "%d-%d", 123456, 789);  // truncated
    TO_IO(io, 1, out);

    __builtin_memset(out, 0, sizeof out);
    io->ret[2] = BPF_SNPRINTF(out, sizeof out, "%5d|%-5d|%05x|%X|%i|%c|%%", 42, 42, 0xab, 0xabc, -7, 'A');
    TO_IO(io, 2, out);

    __builtin_memset(out, 0, sizeof out);
    io->ret[3] = BPF_SNPRINTF(out, sizeof out, "[%s]", (char*)8);  // unreadable string
    TO_IO(io, 3, out);

    __builtin_memset(out, 0, sizeof out);
    io->ret[4] = BPF_SNPRINTF(out, sizeof out, "%lld %llx %llu <%s>", -1ll, 0xdeadbeefcafeull,
                              18446744073709551615ull, in);
    TO_IO(io, 4, out);

    __builtin_memset(out, 'Z', sizeof out);
    io->ret[5] = BPF_SNPRINTF(out, 0, "%d", 12345);  // size 0: nothing written
    io->ret[6] = out[0];

    __builtin_memset(out, 0, sizeof out);
    io->ret[7] = BPF_SNPRINTF(out, sizeof out, "%px|%lx", 0x1234ull, 0xffull);
    TO_IO(io, 5, out);

    // bpf_strncmp(s1, s1_sz, const s2): compares at most s1_sz bytes, as unsigned chars.
    char abc[4] = "abc";
    char high[2] = "\xff";
    io->ret[10] = bpf_strncmp(abc, 4, "abc");
    io->ret[11] = bpf_strncmp(abc, 3, "abd");
    io->ret[12] = bpf_strncmp(abc, 4, "ab");
    io->ret[13] = bpf_strncmp(abc, 2, "abz");
    io->ret[14] = bpf_strncmp(high, 2, "a");
    io->ret[15] = bpf_strncmp(abc, 4, "abcd");
    io->ret[16] = bpf_strncmp(in, 16, "hello world");

    // Probe reads of user memory: arg[0] a readable string, arg[1] an unreadable address, arg[2] "abc"
    // without a NUL just before an unmapped page, arg[3] "abc\0" ending at that page.
    const void* good = (const void*)io->arg[0];
    const void* bad = (const void*)io->arg[1];
    __builtin_memset(out, 0xaa, sizeof out);
    io->ret[17] = bpf_probe_read_user(out, 16, good);
    TO_IO(io, 6, out);
    __u64 z[2] = {~0ull, ~0ull};
    io->ret[18] = bpf_probe_read_user(z, 16, bad);
    io->ret[19] = (__s64)(z[0] | z[1]);
    __builtin_memset(out, 0xaa, sizeof out);
    io->ret[20] = bpf_probe_read_user_str(out, 64, good);
    TO_IO(io, 7, out);
    __builtin_memset(out, 0xaa, sizeof out);
    io->ret[21] = bpf_probe_read_user_str(out, 4, good);
    io->ret[22] = ((__u32)(__u8)out[0]) | ((__u32)(__u8)out[1] << 8) | ((__u32)(__u8)out[2] << 16) |
                  ((__u32)(__u8)out[3] << 24) | ((__u64)(__u8)out[4] << 32);
    z[0] = ~0ull;
    z[1] = ~0ull;
    io->ret[23] = bpf_probe_read_user_str(z, 16, bad);
    io->ret[24] = (__s64)(z[0] | z[1]);
    z[0] = ~0ull;
    z[1] = ~0ull;
    io->ret[25] = bpf_probe_read_user_str(z, 16, (const void*)io->arg[2]);
    io->ret[26] = (__s64)(z[0] | z[1]);
    z[0] = ~0ull;
    z[1] = ~0ull;
    io->ret[27] = bpf_probe_read_user_str(z, 16, (const void*)io->arg[3]);
    io->ret[28] = (__s64)z[0];
    return 0;
}

// Formats the kernel verifier rejects at load time; ebpfrt, without that check, fails them at run time.
SEC("ext/bad_formats")
int bad_formats(struct io* io) {
    char out[64];
    io->ret[0] = BPF_SNPRINTF(out, sizeof out, "%n", 1);
    static const char two[] = "%d %d";
    __u64 one_arg[1] = {7};
    io->ret[1] = bpf_snprintf(out, sizeof out, two, one_arg, sizeof one_arg);  // fewer args than conversions
    __u64 args3[2] = {7, 8};
    io->ret[2] = bpf_snprintf(out, sizeof out, two, args3, 12);  // data_len not a multiple of 8
    return 0;
}

// ---- probe reads, current task, time ----------------------------------------------------------------

SEC("ext/probe")
int probe(struct io* io) {
    const void* good = (const void*)io->arg[0];
    const void* bad = (const void*)io->arg[1];
    io->ret[0] = bpf_probe_read_user(io->str[0], 16, good);
    io->ret[1] = bpf_probe_read_user(io->str[1], 16, bad);
    io->ret[2] = bpf_probe_read_kernel(io->str[2], 16, bad);
    io->ret[3] = bpf_probe_read_user_str(io->str[3], 64, good);
    io->ret[4] = bpf_probe_read_user_str(io->str[4], 4, good);
    io->ret[5] = bpf_probe_read_user_str(io->str[5], 16, bad);
    io->ret[6] = bpf_probe_read_user_str(io->str[6], 16, (const void*)io->arg[2]);
    io->ret[7] = bpf_probe_read_user_str(io->str[7], 16, (const void*)io->arg[3]);
    io->ret[8] = bpf_probe_read_kernel_str(io->stack, 16, bad);
    return 0;
}

SEC("ext/task")
int task(struct io* io) {
    io->ret[0] = bpf_get_current_pid_tgid();
    io->ret[1] = bpf_get_current_uid_gid();
    io->ret[2] = bpf_get_current_comm(io->str[0], 16);
    io->ret[3] = bpf_get_current_comm(io->str[1], 4);
    io->ret[4] = bpf_ktime_get_ns();
    io->ret[5] = bpf_ktime_get_ns();
    io->ret[6] = bpf_get_smp_processor_id();
    io->ret[7] = bpf_ktime_get_boot_ns();
    io->ret[8] = bpf_ktime_get_coarse_ns();
    io->ret[9] = bpf_get_prandom_u32();
    io->ret[10] = bpf_get_prandom_u32();
    return 0;
}

// ---- trace_printk -----------------------------------------------------------------------------------

SEC("ext/trace")
int trace(struct io* io) {
    io->ret[0] = bpf_printk("hello %d %s", 42, "x");
    io->ret[1] = bpf_printk("%d+%d+%d+%d=%d", 1, 2, 3, 4, 10);  // more than 3 args: bpf_trace_vprintk
    io->ret[2] = bpf_printk("bad %n", 1);
    static const char four[] = "%d %d %d %d";
    io->ret[3] = bpf_trace_printk(four, sizeof four, 1, 2, 3);  // 4 conversions, 3 args
    static const char unterminated[3] = {'a', 'b', 'c'};
    io->ret[4] = bpf_trace_printk(unterminated, sizeof unterminated);
    io->ret[5] = bpf_printk("x=%u", (__u32)io->arg[0]);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
