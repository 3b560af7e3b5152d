// Replays the fuzz target in the ordinary (g++) test build: deterministic pseudo-random programs made
// of valid-looking instructions, plus any files named on the command line. A crash fails the test.
// The real fuzzing run (libFuzzer, ASan) is scripts/fuzz.sh.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    std::uint64_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        std::ifstream f(argv[i], std::ios::binary);
        std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
        ++runs;
    }
    // Opcodes the ISA defines, so that most programs get past validation and actually run.
    static const std::uint8_t opcodes[] = {
        0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84,
        0x94, 0x9c, 0xa4, 0xac, 0xb4, 0xbc, 0xc4, 0xcc, 0xd4, 0xdc, 0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37,
        0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97, 0x9f, 0xa7, 0xaf, 0xb7, 0xbf, 0xc7,
        0xcf, 0xd7, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x55, 0x5d, 0x65, 0x6d, 0x75, 0x7d,
        0xa5, 0xad, 0xb5, 0xbd, 0xc5, 0xcd, 0xd5, 0xdd, 0x06, 0x16, 0x1e, 0x26, 0x56, 0x5e, 0xa6, 0xde, 0x85,
        0x8d, 0x95, 0x18, 0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73,
        0x7b, 0xc3, 0xdb};
    std::mt19937_64 rng(0xeb9f);
    const std::uint64_t count = 200000;
    std::vector<std::uint8_t> input;
    for (std::uint64_t n = 0; n < count; ++n) {
        const std::size_t insns = 1 + rng() % 24;
        input.assign(1 + 16 + insns * 8, 0);
        input[0] = static_cast<std::uint8_t>(rng() % 3);  // bytecode modes only; text below
        for (std::size_t i = 1; i < 17; ++i) input[i] = static_cast<std::uint8_t>(rng());
        for (std::size_t i = 0; i < insns; ++i) {
            std::uint8_t* s = &input[17 + i * 8];
            const std::uint64_t r = rng();
            s[0] = rng() % 16 == 0 ? static_cast<std::uint8_t>(r) : opcodes[r % sizeof opcodes];
            s[1] = static_cast<std::uint8_t>((r >> 8) % 11 | ((r >> 12) % 11) << 4);
            const std::int16_t off = static_cast<std::int16_t>(static_cast<std::int64_t>((r >> 16) % 9) - 4);
            std::memcpy(s + 2, &off, 2);
            const std::int32_t imm = (r >> 24) % 4 == 0 ? static_cast<std::int32_t>(rng())
                                                          : static_cast<std::int32_t>((r >> 26) % 17) - 8;
            std::memcpy(s + 4, &imm, 4);
        }
        // End with exit most of the time so that validation passes.
        if (rng() % 8 != 0) input[input.size() - 8] = 0x95, std::memset(&input[input.size() - 7], 0, 7);
        LLVMFuzzerTestOneInput(input.data(), input.size());
        ++runs;
    }
    // Text mode: mutated assembler lines.
    static const char* const lines[] = {"mov %r0, 1\n", "add32 %r1, -3\n", "ldxw %r2, [%r1+4]\n", "ja +1\n",
                                        "lddw %r3, 0x1122334455667788\n", "exit\n", "call 5\n", "l:\n",
                                        "jeq %r1, %r2, l\n", "lock fetch add [%r10-8], %r1\n", "garbage ,[+\n"};
    for (std::uint64_t n = 0; n < 20000; ++n) {
        std::string text(1, '\x03');
        for (int k = 0; k < 6; ++k) {
            std::string l = lines[rng() % std::size(lines)];
            if (rng() % 4 == 0) l[rng() % l.size()] = static_cast<char>(rng());
            text += l;
        }
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
        ++runs;
    }
    std::printf("fuzz smoke: %llu inputs, no crash\n", static_cast<unsigned long long>(runs));
    return 0;
}
