// CRC-32 (IEEE 802.3, bitwise, no table) of the bytes in the context: a real clang-compiled eBPF
// program run by examples/checksum. r1 = pointer to struct input.

struct input {
    unsigned long long len;
    unsigned char data[256];
};

unsigned long long checksum(struct input* in) {
    unsigned int crc = ~0u;
    unsigned long long n = in->len < sizeof in->data ? in->len : sizeof in->data;
    for (unsigned long long i = 0; i < n; i++) {
        crc ^= in->data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1));
    }
    return ~crc;
}
