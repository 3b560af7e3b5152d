// aot::compile: the JIT's lowering (jit/lower.hpp) with every outside reference made by symbol, the
// same O3 pipeline, then LLVM's object emitter. The large code model (x86-64, aarch64) makes every
// reference to a symbol an absolute 64-bit relocation, so the loader can place the code anywhere.

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

#include <fmt/format.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/CodeGen.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include <ebpfrt/aot.hpp>

#include "aot/meta.hpp"
#include "jit/lower.hpp"

namespace ebpfrt::aot {
namespace {


// The targets objects can be made for (libLLVM has them all; these are the ones we name).
void init_targets() {
    static std::once_flag once;
    std::call_once(once, [] {
        LLVMInitializeX86TargetInfo();
        LLVMInitializeX86Target();
        LLVMInitializeX86TargetMC();
        LLVMInitializeX86AsmPrinter();
        LLVMInitializeAArch64TargetInfo();
        LLVMInitializeAArch64Target();
        LLVMInitializeAArch64TargetMC();
        LLVMInitializeAArch64AsmPrinter();
        LLVMInitializeRISCVTargetInfo();
        LLVMInitializeRISCVTarget();
        LLVMInitializeRISCVTargetMC();
        LLVMInitializeRISCVAsmPrinter();
    });
}

jit::Callee sym(std::string name) { return jit::Callee{0, std::move(name)}; }

struct Machine {
    std::unique_ptr<llvm::TargetMachine> tm;
    std::string triple;
};

Result<Machine> make_machine(const Target& t) {
    init_targets();
    const std::string triple =
        llvm::Triple::normalize(t.triple.empty() ? llvm::sys::getDefaultTargetTriple() : t.triple);
    const llvm::Triple tt(triple);
    const auto arch = tt.getArch();
    if (arch != llvm::Triple::x86_64 && arch != llvm::Triple::aarch64 && arch != llvm::Triple::riscv64)
        return Error(Errc::unsupported,
                     fmt::format("target \"{}\": not supported (x86_64, aarch64 and riscv64 are)", triple));
    if (!tt.isOSBinFormatELF())
        return Error(Errc::unsupported, fmt::format("target \"{}\": only ELF targets are supported", triple));
    std::string err;
    const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, err);
    if (target == nullptr)
        return Error(Errc::invalid_argument, fmt::format("target \"{}\": {}", triple, err));
    std::string cpu = t.cpu.empty() ? "generic" : t.cpu;
    std::string features;
    llvm::TargetOptions opts;
    // Large code model: absolute 64-bit references to every symbol (x86-64 movabs, aarch64 movz/movk),
    // wherever the loader maps the code and the helpers live. RISC-V has no large model in LLVM 19:
    // its objects are for linking, not for our loader.
    std::optional<llvm::CodeModel::Model> cm = llvm::CodeModel::Large;
    if (arch == llvm::Triple::riscv64) {
        cm = llvm::CodeModel::Medium;
        if (cpu == "generic") cpu = "generic-rv64";
        features = "+m,+a,+f,+d,+c";  // RV64GC, what Linux distributions build for
        opts.MCOptions.ABIName = "lp64d";
    }
    std::unique_ptr<llvm::MCSubtargetInfo> sti(target->createMCSubtargetInfo(triple, cpu, features));
    if (!sti || !sti->isCPUStringValid(cpu))
        return Error(Errc::invalid_argument, fmt::format("target \"{}\": unknown CPU \"{}\"", triple, cpu));
    const auto level = t.opt_level >= 3   ? llvm::CodeGenOptLevel::Aggressive
                       : t.opt_level == 0 ? llvm::CodeGenOptLevel::None
                                          : llvm::CodeGenOptLevel::Default;
    std::unique_ptr<llvm::TargetMachine> tm(
        target->createTargetMachine(triple, cpu, features, opts, llvm::Reloc::Static, cm, level));
    if (!tm)
        return Error(Errc::unsupported,
                     fmt::format("target \"{}\": LLVM cannot make a target machine", triple));
    return Machine{std::move(tm), triple};
}

}  // namespace

bool compile_available() noexcept { return true; }

Result<std::vector<std::byte>> compile(std::span<const Insn> prog, const Target& target,
                                       const CompileOptions& o) {
    auto wrap = [&](const Error& e) { return e.wrap(fmt::format("compile \"{}\"", o.entry)); };
    // The entry must not collide with the symbols the code refers to.
    const bool identifier = !o.entry.empty() && !std::isdigit(static_cast<unsigned char>(o.entry[0])) &&
                            std::all_of(o.entry.begin(), o.entry.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
                            });
    if (!identifier || o.entry.rfind("ebpfrt_", 0) == 0 || o.entry == "memcpy" || o.entry == "memmove" ||
        o.entry == "memset")
        return Error(
            Errc::invalid_argument,
            fmt::format("compile \"{}\": the entry symbol must be an identifier (letters, digits, '_', '.') "
                        "not starting with \"ebpfrt_\"",
                        o.entry));
    if (auto ok = isa::validate(prog); !ok) return wrap(ok.error());

    detail::AotMeta meta;
    meta.checked = o.checked;
    meta.budget = o.budget;
    meta.entry = o.entry;
    meta.insns.assign(prog.begin(), prog.end());
    for (const MapSpec& m : o.maps)
        meta.maps.push_back({m.name, static_cast<std::uint32_t>(m.type), m.key_size, m.value_size,
                             m.max_entries, m.flags, static_cast<std::uint32_t>(m.origin)});

    jit::LowerRequest req;
    req.insns = meta.insns;
    req.name = o.entry;
    req.checked = o.checked;
    req.budget = o.budget;
    req.helper_of_insn.assign(prog.size(), ~0u);
    req.lddw_value.assign(prog.size(), 0);
    req.lddw_symbol.assign(prog.size(), {});
    req.rt = {sym("ebpfrt_rt_check"),        sym("ebpfrt_rt_fault"),  sym("ebpfrt_rt_check_helper"),
              sym("ebpfrt_rt_after_helper"), sym("ebpfrt_rt_unwind"), sym("ebpfrt_rt_callx"),
              sym("ebpfrt_rt_ldabs"),        sym("ebpfrt_rt_tail_entry")};
    auto at = [&](std::size_t i, Errc code, std::string reason) {
        return wrap(Error(code, fmt::format("insn {} ({}): {}", i, isa::disassemble_one(prog, i), reason)));
    };
    for (std::size_t i = 0; i < prog.size(); ++i) {
        const Insn& in = prog[i];
        if (in.opcode == isa::opcode_call && in.src != isa::call_local) {
            const bool kfunc = in.src == isa::call_kfunc;
            const auto id = static_cast<std::uint32_t>(in.imm);
            jit::HelperUse use;
            use.id = kfunc ? ~0u : id;
            use.fn = sym(fmt::format("{}_{}", kfunc ? "ebpfrt_kfunc" : "ebpfrt_helper", id));
            use.has_pointer_args = true;  // without a prototype: checked against the load-time one
            if (o.helpers != nullptr) {
                const HelperProto* p = kfunc ? o.helpers->find_kfunc(id) : o.helpers->find(id);
                if (p == nullptr)
                    return at(i, Errc::invalid_argument,
                              kfunc ? fmt::format("unknown kfunc with BTF id {}", id)
                                    : fmt::format("unknown helper {}", id));
                use.args = p->args;
                use.unwind_on_zero = p->unwind_on_zero;
                use.has_pointer_args = std::any_of(p->args.begin(), p->args.end(), [](Arg a) {
                    return a == Arg::mem || a == Arg::mem_ro || a == Arg::cstr;
                });
            }
            req.helper_of_insn[i] = static_cast<std::uint32_t>(req.helpers.size());
            req.helpers.push_back(use);
            meta.helpers.push_back({kfunc ? detail::AotHelper::kfunc : detail::AotHelper::helper, id,
                                    use.unwind_on_zero, o.checked && use.has_pointer_args});
        }
        if (in.opcode == isa::opcode_lddw) {
            switch (in.src) {
            case isa::pseudo_imm64:
            case isa::pseudo_func: break;
            case isa::pseudo_map_idx:
            case isa::pseudo_map_idx_value:
                if (!o.maps.empty() && static_cast<std::uint32_t>(in.imm) >= o.maps.size())
                    return at(i, Errc::invalid_argument,
                              fmt::format("map index {} is past the {} maps given",
                                          static_cast<std::uint32_t>(in.imm), o.maps.size()));
                [[fallthrough]];
            case isa::pseudo_map_fd:
            case isa::pseudo_map_value:
                req.lddw_symbol[i] =
                    fmt::format("ebpfrt_map_{}_{}", unsigned{in.src}, static_cast<std::uint32_t>(in.imm));
                if (in.src == isa::pseudo_map_value || in.src == isa::pseudo_map_idx_value)
                    req.lddw_value[i] = static_cast<std::uint32_t>(prog[i + 1].imm);
                break;
            default:
                return at(i, Errc::unsupported,
                          fmt::format("lddw with src {} cannot be compiled ahead of time", unsigned{in.src}));
            }
            ++i;
        }
    }

    auto machine = make_machine(target);
    if (!machine) return wrap(machine.error());
    llvm::TargetMachine& tm = *machine->tm;

    llvm::LLVMContext ctx;
    auto lowered = jit::lower(ctx, req);
    if (!lowered) return wrap(lowered.error());
    llvm::Module& m = *lowered->module;
    for (std::size_t start : lowered->function_starts)
        meta.functions.push_back(start == 0 ? o.entry : jit::function_name(o.entry, start));
    m.setDataLayout(tm.createDataLayout());
    m.setTargetTriple(machine->triple);
    jit::optimise(m, std::min(target.opt_level, 3u), &tm);

    // After optimisation, so that no pass looks at it: the metadata section, not referenced by code.
    const auto bytes = detail::encode_aot_meta(meta);
    auto* data = llvm::ConstantDataArray::get(
        ctx, llvm::ArrayRef<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    auto* g = new llvm::GlobalVariable(m, data->getType(), true, llvm::GlobalValue::ExternalLinkage, data,
                                       o.entry + ".meta");
    g->setSection(detail::aot_meta_section);
    g->setAlignment(llvm::Align(8));

    llvm::SmallVector<char, 0> buffer;
    llvm::raw_svector_ostream os(buffer);
    llvm::legacy::PassManager pm;
    if (tm.addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile))
        return wrap(Error(Errc::unsupported,
                          fmt::format("target \"{}\": LLVM cannot emit an object file", machine->triple)));
    pm.run(m);
    std::vector<std::byte> out(buffer.size());
    std::memcpy(out.data(), buffer.data(), buffer.size());
    return out;
}

}  // namespace ebpfrt::aot
