// strcmp-like: 16 pairs of NUL-terminated strings of up to 127 characters; pair k is the string at
// 256 * k and the one at 256 * k + 128 (the bench makes them share a long prefix). Each comparison
// is bounded by 128 bytes; the signed results and the lengths of the common prefixes are folded.

#define STR_PAIRS 16
#define STR_MAX 128

unsigned long long bench_strcmp(unsigned char* ctx, unsigned long long len) {
    if (len < STR_PAIRS * 2 * STR_MAX) return 0;
    unsigned long long acc = 0;
    for (unsigned int k = 0; k < STR_PAIRS; k++) {
        const unsigned char* a = ctx + k * 2 * STR_MAX;
        const unsigned char* b = a + STR_MAX;
        unsigned int i = 0;
        while (i < STR_MAX - 1 && a[i] != 0 && a[i] == b[i]) i++;
        int r = (int)a[i] - (int)b[i];
        acc = acc * 131 + (unsigned long long)(long long)r + i;
    }
    return acc;
}
