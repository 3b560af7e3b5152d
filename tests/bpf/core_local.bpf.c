// CO-RE: the program reads fields of `struct task` as it was when compiled (pid at 0, comm at 4,
// flags at 20); core_target.bpf.c describes the "running kernel" where the layout differs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task {
    int pid;
    char comm[16];
    unsigned int flags;
    int gone;  // not in the target: reading it must be guarded by bpf_core_field_exists
} __attribute__((preserve_access_index));

enum state { st_idle = 1, st_busy = 2 };

SEC("uprobe")
long read_task(struct task* t) {
    long r = t->pid + t->flags * 1000;
    if (bpf_core_field_exists(t->gone)) r += 1000000;
    r += bpf_core_field_size(t->flags) * 100000;
    r += bpf_core_enum_value(enum state, st_busy) * 10000000L;
    return r;
}

char LICENSE[] SEC("license") = "GPL";
