// A program whose only job is to make clang emit BTF for the types in btf_types.h.
#include "btf_types.h"

struct event global_event;

int use_types(struct event* e) {
    global_event = *e;
    return e->pid + (int)e->color;
}
