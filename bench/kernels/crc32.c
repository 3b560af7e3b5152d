// CRC-32 (IEEE 802.3, reflected, polynomial 0xedb88320), one bit at a time, over 256 bytes of the
// context.

#define CRC_BYTES 256

unsigned long long bench_crc32(unsigned char* ctx, unsigned long long len) {
    if (len < CRC_BYTES) return 0;
    unsigned int crc = 0xffffffffu;
    for (unsigned int i = 0; i < CRC_BYTES; i++) {
        crc ^= ctx[i];
        for (unsigned int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}
