// The "target kernel" view of the types that core_local.bpf.c reads: different offsets and sizes.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task {
    unsigned long long start_time;
    unsigned short flags;
    char comm[16];
    int pid;
};

enum state { st_busy = 5, st_idle = 9 };

struct task target_task;
enum state target_state;

SEC("uprobe")
int keep(void* ctx) {
    return target_task.pid + target_state;
}

char LICENSE[] SEC("license") = "GPL";
