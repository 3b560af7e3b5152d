// checksum: runs examples/checksum/checksum.bpf.c (compiled with clang-19 -target bpf) in the
// interpreter on the text given on the command line, and checks the result against native C.
//   checksum [TEXT] [PROGRAM.bin]

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <ebpfrt/ebpfrt.hpp>

namespace {

struct Input {
    std::uint64_t len;
    unsigned char data[256];
};

std::uint32_t native_crc32(const unsigned char* p, std::size_t n) {
    std::uint32_t crc = ~0u;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string text = argc > 1 ? argv[1] : "hello, ebpfrt";
    const std::string path = argc > 2 ? argv[2] : CHECKSUM_BPF_TEXT;

    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "checksum: read \"%s\": cannot open\n", path.c_str());
        return 1;
    }
    std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto code = ebpfrt::isa::decode(std::as_bytes(std::span(raw)));
    if (!code) {
        std::fprintf(stderr, "checksum: %s\n", code.error().wrap("load \"" + path + "\"").message().c_str());
        return 1;
    }
    auto prog = ebpfrt::Interpreter::create(*code, ebpfrt::HelperTable{});
    if (!prog) {
        std::fprintf(stderr, "checksum: %s\n", prog.error().wrap("load \"" + path + "\"").message().c_str());
        return 1;
    }

    Input in{};
    in.len = text.size() < sizeof in.data ? text.size() : sizeof in.data;
    std::memcpy(in.data, text.data(), in.len);
    auto r0 = prog->run(std::as_writable_bytes(std::span(&in, 1)));
    if (!r0) {
        std::fprintf(stderr, "checksum: %s\n", r0.error().message().c_str());
        return 1;
    }
    const std::uint32_t expect = native_crc32(in.data, in.len);
    std::printf("program: %s (%zu eBPF instructions, compiled by clang -target bpf)\n", path.c_str(),
                code->size());
    std::printf("crc32(\"%s\") = 0x%08llx in the ebpfrt interpreter\n", text.c_str(),
                static_cast<unsigned long long>(*r0));
    if (*r0 != expect) {
        std::printf("MISMATCH: native C computes 0x%08x\n", expect);
        return 1;
    }
    std::printf("matches the native result 0x%08x\n", expect);
    return 0;
}
