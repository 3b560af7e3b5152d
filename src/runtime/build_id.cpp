// Frames of a user stack as build id + file offset (bpf_get_stack with BPF_F_USER_BUILD_ID, stack_trace
// maps with BPF_F_STACK_BUILD_ID). The kernel finds the VMA of each address and reads the build id note
// of the file mapped there; in user space the loaded objects are listed by dl_iterate_phdr, whose program
// headers give both the segment holding the address (hence its file offset) and the PT_NOTE segments,
// which are mapped, so the note is read from memory, not from the file.

#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstring>

#include "maps/maps_internal.hpp"
#include "runtime/runtime_internal.hpp"

namespace ebpfrt::detail {
namespace {

struct Frame {
    std::uintptr_t ip;
    maps::StackBuildId* out;
    bool found = false;
};

// The NT_GNU_BUILD_ID note of a loaded object, from its mapped PT_NOTE segments; false if it has none.
bool read_build_id(const dl_phdr_info* info, unsigned char (&id)[20]) {
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        const auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
        std::size_t left = ph.p_memsz;
        while (left >= sizeof(ElfW(Nhdr))) {
            ElfW(Nhdr) n;
            std::memcpy(&n, p, sizeof n);
            const std::size_t name = (static_cast<std::size_t>(n.n_namesz) + 3) & ~std::size_t{3};
            const std::size_t desc = (static_cast<std::size_t>(n.n_descsz) + 3) & ~std::size_t{3};
            if (name > left - sizeof n || desc > left - sizeof n - name) break;
            if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(p + sizeof n, "GNU", 4) == 0 &&
                n.n_descsz != 0) {
                std::memset(id, 0, sizeof id);
                std::memcpy(id, p + sizeof n + name, std::min<std::size_t>(n.n_descsz, sizeof id));
                return true;
            }
            p += sizeof n + name + desc;
            left -= sizeof n + name + desc;
        }
    }
    return false;
}

int visit(dl_phdr_info* info, std::size_t, void* data) {
    auto* f = static_cast<Frame*>(data);
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
        if (ph.p_type != PT_LOAD || f->ip < lo || f->ip - lo >= ph.p_memsz) continue;
        f->found = true;
        if (read_build_id(info, f->out->build_id)) {
            f->out->status = maps::build_id_valid;
            f->out->offset_or_ip = ph.p_offset + (f->ip - lo);
        }
        return 1;  // the object holding ip: stop
    }
    return 0;
}

}  // namespace

void stack_build_ids(const std::uint64_t* ips, std::uint32_t n, maps::StackBuildId* out) noexcept {
    for (std::uint32_t i = 0; i < n; ++i) {
        maps::StackBuildId& e = out[i];
        std::memset(&e, 0, sizeof e);
        // No object, or one without a build id (JIT code, anonymous memory): the bare address.
        e.status = maps::build_id_ip;
        e.offset_or_ip = ips[i];
        Frame f{static_cast<std::uintptr_t>(ips[i]), &e};
        dl_iterate_phdr(visit, &f);
    }
}

}  // namespace ebpfrt::detail
