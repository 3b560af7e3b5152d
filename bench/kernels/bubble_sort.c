// Bubble sort of 16 u32 copied from the context to the stack, for each of the 32 windows in the first 2 KiB of
// the context; the sorted values of every window are folded into the result.

#define SORT_N 16
#define SORT_WINDOWS 32

unsigned long long bench_bubble_sort(unsigned char* ctx, unsigned long long len) {
    if (len < SORT_N * 4 * SORT_WINDOWS) return 0;
    const unsigned int* in = (const unsigned int*)ctx;
    unsigned long long acc = 0;
    for (unsigned int w = 0; w < SORT_WINDOWS; w++) {
        unsigned int a[SORT_N];
        for (unsigned int i = 0; i < SORT_N; i++) a[i] = in[w * SORT_N + i];
        for (unsigned int i = 0; i < SORT_N - 1; i++) {
            for (unsigned int j = 0; j < SORT_N - 1 - i; j++) {
                if (a[j] > a[j + 1]) {
                    unsigned int t = a[j];
                    a[j] = a[j + 1];
                    a[j + 1] = t;
                }
            }
        }
        for (unsigned int i = 0; i < SORT_N; i++) acc = acc * 31 + a[i];
    }
    return acc;
}
