// memcpy-like: copies each 256-byte chunk of the first 2 KiB of the context, 8 bytes at a time, to
// the scratch area at 2 KiB, and checksums the copy after each chunk. The context is only read
// where it is never written, so every run computes the same result.

#define COPY_CHUNK 256
#define COPY_CHUNKS 8
#define COPY_DST 2048

unsigned long long bench_memcpy(unsigned char* ctx, unsigned long long len) {
    if (len < COPY_DST + COPY_CHUNK) return 0;
    unsigned long long* dst = (unsigned long long*)(ctx + COPY_DST);
    unsigned long long acc = 0;
    for (unsigned int c = 0; c < COPY_CHUNKS; c++) {
        const unsigned long long* src = (const unsigned long long*)(ctx + c * COPY_CHUNK);
        for (unsigned int i = 0; i < COPY_CHUNK / 8; i++) dst[i] = src[i];
        for (unsigned int i = 0; i < COPY_CHUNK / 8; i++) acc = (acc ^ dst[i]) * 0x9e3779b97f4a7c15ULL;
    }
    return acc;
}
