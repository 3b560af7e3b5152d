// Sieve of Eratosthenes on a 3008-bit bitset on the stack (376 bytes; the BPF stack is 512), up to
// a limit between 2000 and 2999 taken from the context; returns the count and the sum of the primes.

#define SIEVE_WORDS 47  // 47 * 64 = 3008 bits

unsigned long long bench_sieve(unsigned char* ctx, unsigned long long len) {
    if (len < 2) return 0;
    unsigned int limit = 2000 + (ctx[0] | (unsigned int)ctx[1] << 8) % 1000;
    unsigned long long composite[SIEVE_WORDS];
    for (unsigned int i = 0; i < SIEVE_WORDS; i++) composite[i] = 0;
    for (unsigned int p = 2; p * p <= limit; p++) {
        if (composite[p >> 6] & (1ULL << (p & 63))) continue;
        for (unsigned int m = p * p; m <= limit; m += p) composite[m >> 6] |= 1ULL << (m & 63);
    }
    unsigned long long count = 0, sum = 0;
    for (unsigned int p = 2; p <= limit; p++) {
        if (!(composite[p >> 6] & (1ULL << (p & 63)))) {
            count++;
            sum += p;
        }
    }
    return count << 32 | (sum & 0xffffffffu);
}
