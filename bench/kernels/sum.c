// Sum loop: the 1024 little-endian u32 words of a 4 KiB context, into a 64-bit accumulator.
// Each kernel in this directory is one self-contained function, compiled both for BPF
// (clang-19 -target bpf -mcpu=v4 -O2, run by the interpreter) and natively (-O2) for comparison.
// Contract: r1 = ctx, r2 = ctx length; returns 0 when the context is too short.

#define SUM_WORDS 1024

unsigned long long bench_sum(unsigned char* ctx, unsigned long long len) {
    if (len < SUM_WORDS * 4) return 0;
    const unsigned int* w = (const unsigned int*)ctx;
    unsigned long long sum = 0;
    for (unsigned int i = 0; i < SUM_WORDS; i++) sum += w[i];
    return sum;
}
