// Collatz steps: for 64 starting values taken from the context (1..65536), the number of steps
// to reach 1 (at most 1000 each), summed.

#define COLLATZ_STARTS 64
#define COLLATZ_MAX_STEPS 1000

unsigned long long bench_collatz(unsigned char* ctx, unsigned long long len) {
    if (len < COLLATZ_STARTS * 4) return 0;
    const unsigned int* in = (const unsigned int*)ctx;
    unsigned long long total = 0;
    for (unsigned int s = 0; s < COLLATZ_STARTS; s++) {
        unsigned long long n = (in[s] & 0xffffu) + 1;
        unsigned int steps = 0;
        while (n != 1 && steps < COLLATZ_MAX_STEPS) {
            n = (n & 1) ? 3 * n + 1 : n >> 1;
            steps++;
        }
        total += steps;
    }
    return total;
}
