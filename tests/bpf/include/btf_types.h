// Types shared by tests/bpf/btf_types.bpf.c (compiled with -g, so clang emits their BTF) and
// tests/btf/btf_test.cpp (compiled natively, so sizeof/offsetof give the expected layout).
#pragma once

#ifdef __cplusplus
#define BTF_TEST_BOOL bool
#else
#define BTF_TEST_BOOL _Bool
#endif

enum color { red = 0, green = 1, blue = 7 };
enum big64 { big_low = 1, big_high = 0x100000000ULL };

struct inner {
    unsigned short port;
    unsigned char proto;
};

struct event {
    int pid;
    char comm[16];
    unsigned int flags : 3;
    unsigned int level : 5;
    enum color color;
    struct inner addr;
    union {
        unsigned int u32v;
        unsigned char bytes[4];
    } raw;
    unsigned long long* ptr;
    BTF_TEST_BOOL ok;
    long long delta;
    enum big64 big;
    unsigned int counts[3];
};
