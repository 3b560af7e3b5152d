// FNV-1a (64-bit) over each 64-byte block of a 4 KiB context, 64 hashes folded into one.

#define FNV_BLOCK 64
#define FNV_BLOCKS 64

static inline __attribute__((always_inline)) unsigned long long fnv1a64(const unsigned char* p) {
    unsigned long long h = 0xcbf29ce484222325ULL;
    for (unsigned int i = 0; i < FNV_BLOCK; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

unsigned long long bench_fnv1a(unsigned char* ctx, unsigned long long len) {
    if (len < FNV_BLOCK * FNV_BLOCKS) return 0;
    unsigned long long acc = 0;
    for (unsigned int b = 0; b < FNV_BLOCKS; b++) acc = (acc << 1 | acc >> 63) ^ fnv1a64(ctx + b * FNV_BLOCK);
    return acc;
}
