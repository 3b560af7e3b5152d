// The JIT engine: ORC LLJIT (one per process, thread-safe) and the O3 pipeline run on each
// program's module. Runs of the compiled code are in compiled_run.cpp.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>
#include <optional>

#include <fmt/format.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/Target/TargetMachine.h>

#include <ebpfrt/jit.hpp>

#include "jit/compiled.hpp"
#include "jit/lower.hpp"
#include "jit/rt_abi.hpp"

namespace ebpfrt {

using detail::JitHelper;
using detail::JitState;

namespace {

// --- the ORC engine ---

struct OrcEngine {
    std::unique_ptr<llvm::orc::LLJIT> jit;
    std::optional<Error> init_error;
    std::mutex mu;  // serialises compilation (LLVM contexts are per module; the pipeline is cheap to lock)
    std::uint64_t next_id = 0;
    // Compile cache: programs by everything their code depends on (bytecode, resolved lddw values,
    // helper addresses, options). Weak entries find live programs; the last few stay compiled even
    // when unloaded, so that loading the same object again does not recompile.
    std::unordered_map<std::string, std::weak_ptr<const JitState>> cache;
    std::deque<std::shared_ptr<const JitState>> recent;
    static constexpr std::size_t recent_max = 64;
    // Target machines for the optimisation pipeline, by (host CPU tuning, opt level): made once
    // (detecting the host and building one costs ~0.4 ms a compile); used under `mu` only.
    struct Machine {
        std::unique_ptr<llvm::TargetMachine> tm;
        std::string cpu, features;  // the function attributes host-CPU tuning adds
    };
    std::map<std::pair<bool, unsigned>, Machine> machines;
};

template <class T> void append(std::string& key, const T& v) {
    key.append(reinterpret_cast<const char*>(&v), sizeof v);
}

OrcEngine& orc() {
    // Never destroyed: programs may be freed during static destruction.
    static OrcEngine* e = [] {
        auto* eng = new OrcEngine;
        llvm::InitializeNativeTarget();
        llvm::InitializeNativeTargetAsmPrinter();
        auto j = llvm::orc::LLJITBuilder().create();
        if (!j) {
            eng->init_error = Error(Errc::unsupported, fmt::format("start JIT: {}", llvm::toString(j.takeError())));
        } else {
            eng->jit = std::move(*j);
        }
        return eng;
    }();
    return *e;
}


jit::Callee addr(const void* p) { return jit::Callee{reinterpret_cast<std::uint64_t>(p), {}}; }


}  // namespace

bool jit_available() noexcept { return true; }

Result<JitProgram> JitProgram::create(std::span<const Insn> prog, const HelperTable& helpers, const VmOptions& options,
                                      const JitOptions& jo) {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto ok = isa::validate(prog, {.max_insns = options.max_insns}); !ok) return ok.error();
    OrcEngine& e = orc();
    if (e.init_error) return *e.init_error;

    auto st = std::make_shared<JitState>();
    st->insns.assign(prog.begin(), prog.end());
    st->options = options;

    jit::LowerRequest req;
    req.insns = st->insns;
    req.checked = options.checked;
    if (options.checked && options.proved.size() == prog.size()) req.proved = options.proved;
    req.budget = options.insn_budget != 0;
    req.helper_of_insn.assign(prog.size(), ~0u);
    req.lddw_value.assign(prog.size(), 0);
    req.lddw_array.assign(prog.size(), {});
    req.rt = {addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_check)), addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_fault)),
              addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_check_helper)),
              addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_after_helper)),
              addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_unwind)), addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_callx)),
              addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_ldabs)),
              addr(reinterpret_cast<const void*>(&jit::ebpfrt_rt_tail_entry))};
    bool has_callx = false;
    auto at = [&](std::size_t i, std::string reason) {
        return Error(Errc::invalid_argument, fmt::format("insn {} ({}): {}", i, isa::disassemble_one(prog, i), reason));
    };
    for (std::size_t i = 0; i < prog.size(); ++i) {
        const Insn& in = prog[i];
        if (in.opcode == isa::opcode_callx) has_callx = true;
        if (in.opcode == isa::opcode_call && in.src != isa::call_local) {
            const auto id = static_cast<std::uint32_t>(in.imm);
            const HelperProto* p = in.src == isa::call_kfunc ? helpers.find_kfunc(id) : helpers.find(id);
            if (p == nullptr)
                return at(i, in.src == isa::call_kfunc ? fmt::format("unknown kfunc with BTF id {}", id)
                                                       : fmt::format("unknown helper {}", id));
            req.helper_of_insn[i] = static_cast<std::uint32_t>(st->helpers.size());
            st->helpers.push_back({p->name, p->fn, p->args, p->unwind_on_zero});
            jit::HelperUse use;
            use.id = in.src == isa::call_kfunc ? ~0u : id;
            use.fn = addr(reinterpret_cast<const void*>(p->fn));
            use.args = p->args;
            use.unwind_on_zero = p->unwind_on_zero;
            use.has_pointer_args = std::any_of(p->args.begin(), p->args.end(), [](Arg a) {
                return a == Arg::mem || a == Arg::mem_ro || a == Arg::cstr;
            });
            // Unchecked, the runtime's own map helpers have nothing to check: call the map directly.
            if (!options.checked && in.src != isa::call_kfunc)
                if (const jit::DirectMapCall d = jit::direct_map_call(id, p->fn); d.entry != nullptr) {
                    use.direct = addr(d.entry);
                    use.direct_args = d.args;
                }
            req.helpers.push_back(use);
        }
        if (in.opcode == isa::opcode_lddw) {
            if (in.src != isa::pseudo_imm64 && in.src != isa::pseudo_func) {
                if (!options.resolve_lddw)
                    return Error(Errc::unsupported,
                                 fmt::format("insn {} ({}): lddw with src {} needs a resolver (load the program "
                                             "through a Runtime)",
                                             i, isa::disassemble_one(prog, i), in.src));
                auto r = options.resolve_lddw(i, in, prog[i + 1]);
                if (!r) return Error(r.error().code(), fmt::format("insn {} ({}): {}", i, isa::disassemble_one(prog, i),
                                                                   r.error().message()));
                req.lddw_value[i] = r->value;
                if (!r->region.empty()) st->regions.push_back(r->region);
                if (r->array.values != nullptr && r->array.max_entries != 0) {
                    req.lddw_array[i] = {reinterpret_cast<std::uint64_t>(r->array.values), r->array.stride,
                                         r->array.max_entries};
                    // Inlined lookups hand out element addresses without a helper to grant them.
                    st->regions.push_back(std::span(r->array.values, std::size_t(r->array.stride) * r->array.max_entries));
                }
            }
            ++i;
        }
    }
    if (has_callx)
        for (const auto& [id, p] : helpers.helpers()) st->by_id.push_back({id, {p.name, p.fn, p.args, p.unwind_on_zero}});

    // The cache key: everything the generated code depends on.
    std::string key;
    key.append(reinterpret_cast<const char*>(prog.data()), prog.size_bytes());
    for (std::size_t i = 0; i < prog.size(); ++i) {
        append(key, req.lddw_value[i]);
        append(key, req.lddw_array[i].values);
        append(key, req.lddw_array[i].stride);
        append(key, req.lddw_array[i].max_entries);
    }
    for (const auto& h : st->helpers) append(key, h.fn);
    for (const auto& [id, h] : st->by_id) {
        append(key, id);
        append(key, h.fn);
    }
    for (const auto& r : st->regions) {
        append(key, r.data());
        append(key, r.size());
    }
    append(key, options.checked);
    for (std::size_t i = 0; i < req.proved.size(); i += 64) {
        std::uint64_t word = 0;
        for (std::size_t b = 0; b < 64 && i + b < req.proved.size(); ++b)
            word |= static_cast<std::uint64_t>(req.proved[i + b]) << b;
        append(key, word);
    }
    append(key, req.proved.size());
    append(key, options.insn_budget);
    append(key, options.env);
    append(key, jo.opt_level);
    append(key, jo.host_cpu);

    std::lock_guard lock(e.mu);
    if (auto it = e.cache.find(key); it != e.cache.end()) {
        if (auto hit = it->second.lock()) {
            // Same code: share it, with this load's options.
            auto copy = std::make_shared<JitState>(*hit);
            copy->options = options;
            copy->options.resolve_lddw = nullptr;
            copy->compile_us = 0;
            return detail::JitAccess::make(std::move(copy));
        }
        e.cache.erase(it);
    }
    req.name = fmt::format("ebpf_prog{}", e.next_id++);
    auto ctx = std::make_unique<llvm::LLVMContext>();
    const bool dump = std::getenv("EBPFRT_JIT_DUMP") != nullptr;  // debugging aid
    ctx->setDiscardValueNames(!dump);  // names cost time in every pass that makes values
    auto lowered = jit::lower(*ctx, req);
    if (!lowered) return lowered.error();
    llvm::Module& m = *lowered->module;

    OrcEngine::Machine& mach = e.machines[{jo.host_cpu, std::min(jo.opt_level, 3u)}];
    if (!mach.tm) {
        auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
        if (!jtmb) return Error(Errc::unsupported, fmt::format("JIT: {}", llvm::toString(jtmb.takeError())));
        if (jo.host_cpu) {
            jtmb->setCPU(llvm::sys::getHostCPUName().str());
            llvm::SubtargetFeatures features;
            for (const auto& [name, on] : llvm::sys::getHostCPUFeatures()) features.AddFeature(name, on);
            jtmb->addFeatures(features.getFeatures());
            mach.cpu = jtmb->getCPU();
            mach.features = features.getString();
        }
        jtmb->setCodeGenOptLevel(jo.opt_level >= 3 ? llvm::CodeGenOptLevel::Aggressive
                                 : jo.opt_level == 0 ? llvm::CodeGenOptLevel::None
                                                     : llvm::CodeGenOptLevel::Default);
        auto made = jtmb->createTargetMachine();
        if (!made) return Error(Errc::unsupported, fmt::format("JIT: {}", llvm::toString(made.takeError())));
        mach.tm = std::move(*made);
    }
    if (jo.host_cpu)
        for (auto& f : m)
            if (!f.isDeclaration()) {
                f.addFnAttr("target-cpu", mach.cpu);
                f.addFnAttr("target-features", mach.features);
            }
    llvm::TargetMachine* tm = mach.tm.get();
    m.setDataLayout(tm->createDataLayout());
    m.setTargetTriple(tm->getTargetTriple().str());
    jit::optimise(m, std::min(jo.opt_level, 3u), tm);
    if (dump) m.print(llvm::errs(), nullptr);

    auto& dylib = e.jit->getMainJITDylib();
    llvm::orc::ResourceTrackerSP tracker = dylib.createResourceTracker();
    // The code lives as long as the last JitProgram handle: then its memory goes back to ORC.
    // (ORC's own session lock makes remove() thread-safe; not taking eng.mu here also lets the cache
    // drop programs while compiling.)
    st->code = std::shared_ptr<void>(tracker.get(), [tracker](void*) mutable { llvm::consumeError(tracker->remove()); });
    if (auto err = e.jit->addIRModule(tracker, llvm::orc::ThreadSafeModule(std::move(lowered->module), std::move(ctx))))
        return Error(Errc::unsupported, fmt::format("JIT: {}", llvm::toString(std::move(err))));
    for (std::size_t start : lowered->function_starts) {
        const std::string name = start == 0 ? req.name : jit::function_name(req.name, start);
        auto sym = e.jit->lookup(name);
        if (!sym) {
            // An internal function that optimisation inlined everywhere and removed: nothing calls it by address.
            llvm::consumeError(sym.takeError());
            continue;
        }
        if (start == 0) st->entry = sym->toPtr<detail::EntryFn>();
        st->functions.push_back(sym->getValue());
    }
    if (st->entry == nullptr) return Error(Errc::unsupported, fmt::format("JIT \"{}\": entry function missing", req.name));
    std::sort(st->functions.begin(), st->functions.end());
    st->compile_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    st->options.resolve_lddw = nullptr;  // not needed to run; it may hold maps alive
    if (e.cache.size() > 16 * OrcEngine::recent_max)
        std::erase_if(e.cache, [](const auto& kv) { return kv.second.expired(); });
    e.cache[std::move(key)] = st;
    e.recent.push_back(st);
    if (e.recent.size() > OrcEngine::recent_max) e.recent.pop_front();
    return detail::JitAccess::make(std::move(st));
}

}  // namespace ebpfrt
