// eBPF -> LLVM IR (see lower.hpp). RFC 9669 semantics: division by zero gives 0 and modulo by zero
// keeps the dividend, INT_MIN / -1 does not trap, shift amounts are masked, 32-bit operations
// zero-extend their result.

#include "jit/lower.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/raw_ostream.h>

#include "jit/rt_abi.hpp"

namespace ebpfrt::jit {
namespace {

using llvm::BasicBlock;
using llvm::Function;
using llvm::IRBuilder;
using llvm::Type;
using llvm::Value;

constexpr std::int64_t frame_bytes = 512;

std::size_t slot_after(std::span<const Insn> insns, std::size_t i) {
    return insns[i].opcode == isa::opcode_lddw ? i + 2 : i + 1;
}

class Lowering {
public:
    Lowering(llvm::LLVMContext& ctx, const LowerRequest& req)
        : ctx_(ctx), req_(req), b_(ctx), i64_(Type::getInt64Ty(ctx)), i32_(Type::getInt32Ty(ctx)),
          i16_(Type::getInt16Ty(ctx)), i8_(Type::getInt8Ty(ctx)), ptr_(llvm::PointerType::get(ctx, 0)) {}

    Result<Lowered> run() {
        auto module = std::make_unique<llvm::Module>(req_.name, ctx_);
        module_ = module.get();
        find_functions();
        fn_type_ = llvm::FunctionType::get(i64_, {i64_, i64_, i64_, i64_, i64_, ptr_, i32_}, false);
        for (std::size_t k = 0; k < starts_.size(); ++k) {
            const bool entry = k == 0;
            auto* f = Function::Create(fn_type_, Function::ExternalLinkage,
                                       entry ? req_.name : function_name(req_.name, starts_[k]), module_);
            f->addFnAttr(llvm::Attribute::NoUnwind);
            // Unwind tables (registered by ORC with the process's unwinder): stack walks from helpers
            // (bpf_get_stack, bpf_get_stackid: backtrace()) continue through the program's frames to the
            // host code that ran it, instead of stopping at the first JIT frame.
            f->setUWTableKind(llvm::UWTableKind::Async);
            functions_[starts_[k]] = f;
        }
        for (std::size_t k = 0; k < starts_.size(); ++k) {
            const std::size_t end = k + 1 < starts_.size() ? starts_[k + 1] : req_.insns.size();
            lower_function(functions_[starts_[k]], starts_[k], end);
        }
        std::string err;
        llvm::raw_string_ostream os(err);
        if (llvm::verifyModule(*module_, &os))
            return Error(Errc::invalid_argument, fmt::format("lower \"{}\": LLVM rejected the IR: {}", req_.name, os.str()));
        return Lowered{std::move(module), starts_};
    }

private:
    void find_functions() {
        std::set<std::size_t> s{0};
        const auto insns = req_.insns;
        for (std::size_t i = 0; i < insns.size(); i = slot_after(insns, i)) {
            const Insn& in = insns[i];
            if (in.opcode == isa::opcode_call && in.src == isa::call_local) s.insert(i + 1 + in.imm);
            if (in.opcode == isa::opcode_lddw && in.src == isa::pseudo_func) s.insert(i + 1 + in.imm);
        }
        starts_.assign(s.begin(), s.end());
    }

    // Whether the function reads r10 as a value (anything but the base of a load or store): only
    // then can a register hold an address inside its frame.
    bool frame_escapes(std::size_t start, std::size_t end) const {
        const auto insns = req_.insns;
        for (std::size_t i = start; i < end; i = slot_after(insns, i)) {
            const Insn& in = insns[i];
            const std::uint8_t c = isa::cls(in.opcode);
            if (in.src == 10 && c != isa::cls_ldx) return true;
            if (in.dst == 10 && c != isa::cls_st && c != isa::cls_stx) return true;
        }
        return false;
    }

    // --- helpers for emitting ---

    // A value or block name, unless the context drops them (the JIT's does, except for dumps).
    std::string label(const char* prefix, std::size_t n) const {
        return ctx_.shouldDiscardValueNames() ? std::string() : fmt::format("{}{}", prefix, n);
    }

    llvm::FunctionCallee callee(const Callee& c, llvm::FunctionType* type) {
        if (c.address == 0) return module_->getOrInsertFunction(c.symbol, type);
        Value* p = b_.CreateIntToPtr(b_.getInt64(c.address), ptr_);
        return llvm::FunctionCallee(type, p);
    }

    // Registers are SSA values built during lowering (no allocas to promote): cur_ holds the
    // variables at the insertion point, r0-r9 and, in a function whose frame does not escape (see
    // stack_slots), its stack slots; a BPF block starts with the values its predecessors' edges
    // carry, merged by phis where they differ. Predecessors come earlier in the code except for
    // backward jumps, so only the targets of those get a phi per variable up front, completed as
    // the edges are lowered. cur_[10] is r10, the frame top, computed where it is read: the
    // frame's address appears in the IR only when the program reads r10 as a value.
    static constexpr unsigned r10 = 10;
    Value* reg(unsigned r) {
        if (r == r10 && cur_[r10] == nullptr) cur_[r10] = b_.CreateAdd(frame_lo(), b_.getInt64(frame_bytes));
        return cur_[r];
    }
    void set(unsigned r, Value* v) {
        cur_[r] = v;
        stack_off_[r].reset();
        array_of_[r].reset();
    }
    Type* var_type(std::size_t k) const { return k < 11 ? i64_ : slot_types_[k - 11]; }

    struct Edge {
        BasicBlock* from;
        std::vector<Value*> values;  // cur_ along the edge
    };
    struct BlockState {
        bool loop_head = false;               // target of a backward jump
        std::vector<Edge> edges;              // incoming edges lowered before the block
        std::vector<llvm::PHINode*> phis;     // loop heads: made when the block starts
        bool started = false;
    };

    // Before a branch from the insertion point to `to`: the variables flow along the edge.
    void add_edge(BasicBlock* to) {
        auto it = state_.find(to);
        if (it == state_.end()) return;  // a fault block
        BlockState& bs = it->second;
        if (bs.started) {
            for (std::size_t k = 0; k < cur_.size(); ++k)
                if (k != r10) bs.phis[k]->addIncoming(cur_[k], b_.GetInsertBlock());
            return;
        }
        bs.edges.push_back({b_.GetInsertBlock(), cur_});
    }

    // At the start of a BPF block (insertion point at its empty LLVM block).
    void start_block(BasicBlock* bb) {
        BlockState& bs = state_.at(bb);
        bs.started = true;
        cur_[r10] = nullptr;
        if (bs.loop_head) bs.phis.assign(cur_.size(), nullptr);
        // Phis in the order mem2reg made them for the register allocas (last register first):
        // the same IR as before, down to the register allocator's choices.
        for (std::size_t k = cur_.size(); k-- > 0;) {
            if (k == r10) continue;
            if (bs.loop_head) {
                bs.phis[k] = b_.CreatePHI(var_type(k), static_cast<unsigned>(bs.edges.size()) + 1);
                for (const Edge& e : bs.edges) bs.phis[k]->addIncoming(e.values[k], e.from);
                cur_[k] = bs.phis[k];
                continue;
            }
            if (bs.edges.empty()) {  // unreachable: after an exit or jump, and no jump to it
                cur_[k] = llvm::PoisonValue::get(var_type(k));
                continue;
            }
            Value* v = bs.edges[0].values[k];
            const auto differs = [&](const Edge& e) { return e.values[k] != v; };
            if (std::any_of(bs.edges.begin(), bs.edges.end(), differs)) {
                auto* phi = b_.CreatePHI(var_type(k), static_cast<unsigned>(bs.edges.size()));
                for (const Edge& e : bs.edges) phi->addIncoming(e.values[k], e.from);
                v = phi;
            }
            cur_[k] = v;
        }
        bs.edges.clear();
    }

    // When the frame does not escape, every stack access is r10 + constant. If they are all in
    // bounds, none is atomic, and any two either are the same (offset, size) or do not overlap,
    // each slot is a variable like a register (its type the access size) and the function needs
    // no stack memory. Returns whether it is so, filling slots_ and slot_types_.
    bool stack_slots(std::size_t start, std::size_t end) {
        slots_.clear();
        slot_types_.clear();
        if (frame_escapes_) return false;
        static constexpr unsigned sizes[] = {4, 2, 1, 8};
        std::map<std::int64_t, unsigned> seen;  // offset -> size
        const auto insns = req_.insns;
        for (std::size_t i = start; i < end; i = slot_after(insns, i)) {
            const Insn& in = insns[i];
            const std::uint8_t c = isa::cls(in.opcode);
            const bool load = c == isa::cls_ldx && in.src == r10;
            const bool store = (c == isa::cls_st || c == isa::cls_stx) && in.dst == r10;
            if (!load && !store) continue;
            if (c == isa::cls_stx && (in.opcode & 0xe0) == isa::mode_atomic) return false;
            const unsigned size = sizes[(in.opcode >> 3) & 3];
            const std::int64_t o = in.offset;
            if (o < -frame_bytes || o + size > 0) return false;
            auto [it, fresh] = seen.emplace(o, size);
            if (!fresh && it->second != size) return false;
        }
        std::int64_t covered = -frame_bytes;  // slots sorted by offset must not overlap
        for (const auto& [o, size] : seen) {
            if (o < covered) return false;
            covered = o + size;
            slots_.emplace(o, static_cast<unsigned>(11 + slot_types_.size()));
            slot_types_.push_back(int_type(size));
        }
        return true;
    }
    // The frame's bottom as an integer, made once per function in its entry block.
    Value* frame_lo() {
        if (frame_lo_ == nullptr) {
            IRBuilder<> entry(entry_->getTerminator());
            frame_lo_ = entry.CreatePtrToInt(stack_, i64_);
        }
        return frame_lo_;
    }
    Value* i32(std::int64_t v) { return b_.getInt32(static_cast<std::uint32_t>(v)); }

    Value* run_field(std::size_t offset) { return b_.CreateConstGEP1_64(i8_, run_, offset); }

    // Calls rt_fault and ends the block.
    void emit_fault(std::size_t insn, FaultCode code) {
        auto* type = llvm::FunctionType::get(Type::getVoidTy(ctx_), {ptr_, i32_, i32_}, false);
        auto* call = b_.CreateCall(callee(req_.rt.fault, type), {run_, i32(insn), i32(code)});
        call->setDoesNotReturn();
        b_.CreateUnreachable();
    }

    // A checked access: inline test against the running frame, else the support function.
    void emit_check(std::size_t insn, Value* addr, unsigned size, AccessKind kind) {
        if (!req_.checked) return;
        // Proved in bounds by the verifier on every path (atomics keep their alignment check).
        if (kind != access_atomic && insn < req_.proved.size() && req_.proved[insn]) return;
        // Inside the running frame (only reachable when the function reads r10 as a value), or
        // inside the context: [ctx_lo, ctx_hi - size].
        Value* ctx_lo = b_.CreateLoad(i64_, run_field(offsetof(RunHeader, ctx_lo)));
        Value* ctx_hi = b_.CreateLoad(i64_, run_field(offsetof(RunHeader, ctx_hi)));
        Value* ctx_len = b_.CreateSub(ctx_hi, ctx_lo);
        Value* in_ctx = b_.CreateAnd(b_.CreateICmpUGE(ctx_len, b_.getInt64(size)),
                                     b_.CreateICmpULE(b_.CreateSub(addr, ctx_lo), b_.CreateSub(ctx_len, b_.getInt64(size))));
        Value* in_frame = in_ctx;
        if (frame_escapes_)
            in_frame = b_.CreateOr(
                b_.CreateICmpULE(b_.CreateSub(addr, frame_lo()), b_.getInt64(frame_bytes - size)), in_ctx);
        if (kind == access_atomic)
            in_frame = b_.CreateAnd(in_frame, b_.CreateICmpEQ(b_.CreateAnd(addr, b_.getInt64(size - 1)), b_.getInt64(0)));
        Function* f = b_.GetInsertBlock()->getParent();
        auto* slow = BasicBlock::Create(ctx_, "check.slow", f);
        auto* done = BasicBlock::Create(ctx_, "check.ok", f);
        // The slow path is cold, and the check only reads memory (or ends the run): LLVM may keep
        // values in registers across it.
        b_.CreateCondBr(in_frame, done, slow, llvm::MDBuilder(ctx_).createBranchWeights(1u << 20, 1));
        b_.SetInsertPoint(slow);
        auto* type = llvm::FunctionType::get(Type::getVoidTy(ctx_), {ptr_, i64_, i64_, i32_, i32_}, false);
        auto* call = b_.CreateCall(callee(req_.rt.check, type), {run_, addr, b_.getInt64(size), i32(insn), i32(kind)});
        call->setOnlyReadsMemory();
        call->setDoesNotThrow();
        b_.CreateBr(done);
        b_.SetInsertPoint(done);
    }

    // Address of [base + off] as a pointer: a GEP into this frame's stack when the base is known to
    // be r10 + constant (statically checked), otherwise an integer address checked at run time.
    // Returns nullptr when a statically known stack access is out of bounds (a fault was emitted).
    Value* address(std::size_t insn, unsigned base, std::int16_t off, unsigned size, AccessKind kind) {
        if (stack_off_[base]) {
            const std::int64_t o = *stack_off_[base] + off;  // relative to the frame top
            const bool aligned = kind != access_atomic || ((frame_bytes + o) % size == 0);
            if (o >= -frame_bytes && o + size <= 0 && aligned)
                return b_.CreateConstGEP1_64(i8_, stack_, static_cast<std::uint64_t>(frame_bytes + o));
            if (req_.checked) {
                emit_fault(insn, fault_stack);
                return nullptr;
            }
        }
        Value* addr = b_.CreateAdd(reg(base), b_.getInt64(static_cast<std::uint64_t>(static_cast<std::int64_t>(off))));
        emit_check(insn, addr, size, kind);
        return b_.CreateIntToPtr(addr, ptr_);
    }

    Type* int_type(unsigned bytes) {
        switch (bytes) {
        case 1: return i8_;
        case 2: return i16_;
        case 4: return i32_;
        default: return i64_;
        }
    }

    // Budget: at the start of every block, subtract its instruction count and fault when exhausted.
    void emit_budget(std::size_t block_start, std::size_t count) {
        if (!req_.budget || count == 0) return;
        Value* p = run_field(offsetof(RunHeader, budget_left));
        Value* left = b_.CreateSub(b_.CreateLoad(i64_, p), b_.getInt64(count));
        b_.CreateStore(left, p);
        Function* f = b_.GetInsertBlock()->getParent();
        auto* bad = BasicBlock::Create(ctx_, "budget.out", f);
        auto* ok = BasicBlock::Create(ctx_, "budget.ok", f);
        b_.CreateCondBr(b_.CreateICmpSLT(left, b_.getInt64(0)), bad, ok);
        b_.SetInsertPoint(bad);
        emit_fault(block_start, fault_budget);
        b_.SetInsertPoint(ok);
    }

    void emit_return(Value* r0) {
        if (req_.checked) {
            // Restore the caller's frame as the running one.
            Value* index = b_.CreateSelect(b_.CreateICmpEQ(depth_, b_.getInt32(0)), b_.getInt32(0),
                                           b_.CreateSub(depth_, b_.getInt32(1)));
            Value* prev = b_.CreateLoad(i64_, b_.CreateGEP(i64_, run_field(offsetof(RunHeader, frames)),
                                                            {b_.CreateZExt(index, i64_)}));
            b_.CreateStore(prev, run_field(offsetof(RunHeader, stack_lo)));
        }
        b_.CreateRet(r0);
    }

    // --- one function ---

    void lower_function(Function* f, std::size_t start, std::size_t end) {
        is_entry_ = start == 0;
        const auto insns = req_.insns;
        auto* entry = BasicBlock::Create(ctx_, "entry", f);
        b_.SetInsertPoint(entry);
        stack_ = b_.CreateAlloca(llvm::ArrayType::get(i8_, frame_bytes), nullptr, "stack");
        stack_->setAlignment(llvm::Align(16));
        auto arg = f->arg_begin();
        frame_escapes_ = frame_escapes(start, end);
        stack_in_ssa_ = stack_slots(start, end);
        cur_.assign(11 + slot_types_.size(), nullptr);
        // Stack slots start undefined, as SROA makes an uninitialised stack.
        for (std::size_t k = 11; k < cur_.size(); ++k) cur_[k] = llvm::UndefValue::get(slot_types_[k - 11]);
        for (unsigned r = 1; r <= 5; ++r, ++arg) cur_[r] = &*arg;
        run_ = &*arg++;
        depth_ = &*arg;
        for (unsigned r : {0u, 6u, 7u, 8u, 9u}) cur_[r] = b_.getInt64(0);
        entry_ = entry;
        frame_lo_ = nullptr;
        if (req_.checked) {
            // rt_check finds the frames of the run through these. A frame no register can point to
            // is published as ~depth: never inside any range, and still unique per depth, which
            // is how rt_check finds the running frame among frames[] (it stops at stack_lo).
            Value* lo = frame_escapes_ ? b_.CreatePtrToInt(stack_, i64_)
                                       : b_.CreateNot(b_.CreateZExt(depth_, i64_));
            if (frame_escapes_) frame_lo_ = lo;
            b_.CreateStore(lo, run_field(offsetof(RunHeader, stack_lo)));
            b_.CreateStore(lo, b_.CreateGEP(i64_, run_field(offsetof(RunHeader, frames)), {b_.CreateZExt(depth_, i64_)}));
        }

        // Blocks start at the function's first slot, at jump targets and after jumps.
        std::set<std::size_t> leaders{start}, loop_heads;
        for (std::size_t i = start; i < end; i = slot_after(insns, i)) {
            const Insn& in = insns[i];
            const std::uint8_t c = isa::cls(in.opcode), op = in.opcode & 0xf0;
            if ((c == isa::cls_jmp || c == isa::cls_jmp32) && op != isa::op_call) {
                if (op == isa::op_exit) {
                    leaders.insert(i + 1);
                    continue;
                }
                const std::int64_t rel = (c == isa::cls_jmp32 && op == isa::op_ja) ? in.imm : in.offset;
                const auto target = static_cast<std::size_t>(static_cast<std::int64_t>(i) + 1 + rel);
                leaders.insert(target);
                leaders.insert(i + 1);
                if (target <= i) loop_heads.insert(target);
            }
        }
        blocks_.clear();
        state_.clear();
        for (std::size_t l : leaders)
            if (l >= start && l < end) {
                blocks_[l] = BasicBlock::Create(ctx_, label("i", l), f);
                state_[blocks_[l]].loop_head = loop_heads.count(l) != 0;
            }
        add_edge(blocks_[start]);
        b_.CreateBr(blocks_[start]);

        bool open = false;
        for (std::size_t i = start; i < end;) {
            if (auto it = blocks_.find(i); it != blocks_.end()) {
                if (open) {
                    add_edge(it->second);
                    b_.CreateBr(it->second);
                }
                b_.SetInsertPoint(it->second);
                start_block(it->second);
                open = true;
                for (auto& s : stack_off_) s.reset();
                for (auto& a : array_of_) a.reset();
                stack_off_[10] = 0;
                auto next = std::next(it);
                const std::size_t block_end = next == blocks_.end() ? end : std::min(end, next->first);
                std::size_t count = 0;
                for (std::size_t j = i; j < block_end; j = slot_after(insns, j)) ++count;
                emit_budget(i, count);
            }
            if (!open) {  // unreachable code after an exit or jump, not a target of any jump
                i = slot_after(insns, i);
                continue;
            }
            open = lower_insn(i);
            i = slot_after(insns, i);
        }
        if (open) emit_fault(end - 1, fault_invalid);  // fell off the end (validation prevents this)
    }

    // The block of slot i; a slot outside the running function (a jump or fall-through into another
    // function, which the kernel rejects) gets a block that ends the run with an error.
    BasicBlock* block_at(std::size_t i) {
        if (auto it = blocks_.find(i); it != blocks_.end()) return it->second;
        auto saved = b_.saveIP();
        auto* bad = BasicBlock::Create(ctx_, label("outside", i), b_.GetInsertBlock()->getParent());
        b_.SetInsertPoint(bad);
        emit_fault(i < req_.insns.size() ? i : req_.insns.size() - 1, fault_invalid);
        b_.restoreIP(saved);
        blocks_[i] = bad;
        return bad;
    }

    // Lowers slot i; returns whether the block continues.
    bool lower_insn(std::size_t i) {
        const Insn& in = req_.insns[i];
        const std::uint8_t c = isa::cls(in.opcode);
        switch (c) {
        case isa::cls_alu:
        case isa::cls_alu64: lower_alu(in); return true;
        case isa::cls_jmp:
        case isa::cls_jmp32: return lower_jmp(i, in);
        case isa::cls_ldx: {
            static constexpr unsigned sizes[] = {4, 2, 1, 8};
            const unsigned size = sizes[(in.opcode >> 3) & 3];
            Value* load = nullptr;
            if (stack_in_ssa_ && in.src == r10) {
                load = cur_[slots_.at(in.offset)];
            } else {
                Value* p = address(i, in.src, in.offset, size, access_read);
                if (p == nullptr) return false;
                load = b_.CreateAlignedLoad(int_type(size), p, llvm::Align(1));
            }
            const bool sx = (in.opcode & 0xe0) == isa::mode_memsx;
            set(in.dst, size == 8 ? static_cast<Value*>(load) : sx ? b_.CreateSExt(load, i64_) : b_.CreateZExt(load, i64_));
            return true;
        }
        case isa::cls_st:
        case isa::cls_stx: {
            static constexpr unsigned sizes[] = {4, 2, 1, 8};
            const unsigned size = sizes[(in.opcode >> 3) & 3];
            if (c == isa::cls_stx && (in.opcode & 0xe0) == isa::mode_atomic) return lower_atomic(i, in, size);
            Value* v = c == isa::cls_st ? b_.getInt64(static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm)))
                                         : reg(in.src);
            if (size != 8) v = b_.CreateTrunc(v, int_type(size));
            if (stack_in_ssa_ && in.dst == r10) {
                cur_[slots_.at(in.offset)] = v;
                return true;
            }
            Value* p = address(i, in.dst, in.offset, size, access_write);
            if (p == nullptr) return false;
            b_.CreateAlignedStore(v, p, llvm::Align(1));
            return true;
        }
        default: break;
        }
        // cls_ld
        if (in.opcode == isa::opcode_lddw) {
            const Insn& hi = req_.insns[i + 1];
            Value* v = nullptr;
            if (in.src == isa::pseudo_imm64)
                v = b_.getInt64(static_cast<std::uint32_t>(in.imm) |
                                (static_cast<std::uint64_t>(static_cast<std::uint32_t>(hi.imm)) << 32));
            else if (in.src == isa::pseudo_func)
                v = b_.CreatePtrToInt(functions_.at(i + 1 + in.imm), i64_);
            else if (i < req_.lddw_symbol.size() && !req_.lddw_symbol[i].empty()) {
                auto* g = module_->getOrInsertGlobal(req_.lddw_symbol[i], i8_);
                v = b_.CreateAdd(b_.CreatePtrToInt(g, i64_), b_.getInt64(req_.lddw_value.at(i)));
            } else
                v = b_.getInt64(req_.lddw_value.at(i));
            set(in.dst, v);
            if (in.src == isa::pseudo_map_idx && i < req_.lddw_array.size() && req_.lddw_array[i].values != 0)
                array_of_[in.dst] = i;
            return true;
        }
        // Legacy packet loads.
        static constexpr unsigned sizes[] = {4, 2, 1, 8};
        Value* off = b_.getInt64(static_cast<std::uint64_t>(static_cast<std::int64_t>(in.imm)));
        if ((in.opcode & 0xe0) == isa::mode_ind) off = b_.CreateAdd(off, reg(in.src));
        auto* type = llvm::FunctionType::get(i64_, {ptr_, i64_, i32_}, false);
        set(0, b_.CreateCall(callee(req_.rt.ldabs, type), {run_, off, i32(sizes[(in.opcode >> 3) & 3])}));
        return true;
    }

    Value* divisor_guard(Value* s, bool is_signed, Type* t) {
        Value* zero = llvm::ConstantInt::get(t, 0);
        Value* bad = b_.CreateICmpEQ(s, zero);
        if (is_signed) bad = b_.CreateOr(bad, b_.CreateICmpEQ(s, llvm::ConstantInt::getSigned(t, -1)));
        return b_.CreateSelect(bad, llvm::ConstantInt::get(t, 1), s);
    }

    void lower_alu(const Insn& in) {
        const bool is64 = isa::cls(in.opcode) == isa::cls_alu64;
        const bool x = (in.opcode & isa::src_x) != 0;
        const std::uint8_t op = in.opcode & 0xf0;
        Type* t = is64 ? i64_ : i32_;
        const unsigned bits = is64 ? 64 : 32;
        const unsigned dst = in.dst;

        // Track r10 + constant through mov and add/sub of constants (64-bit only).
        std::optional<std::int64_t> new_off;
        if (is64 && op == isa::op_mov && x && in.offset == 0 && stack_off_[in.src]) new_off = stack_off_[in.src];
        if (is64 && !x && stack_off_[dst] && (op == isa::op_add || op == isa::op_sub))
            new_off = *stack_off_[dst] + (op == isa::op_add ? in.imm : -static_cast<std::int64_t>(in.imm));

        auto finish = [&](Value* v) {
            set(dst, is64 ? v : b_.CreateZExt(v, i64_));
            stack_off_[dst] = new_off;
        };

        if (op == isa::op_end) {
            const unsigned w = static_cast<unsigned>(in.imm);
            Value* v = w == 64 ? reg(dst) : b_.CreateTrunc(reg(dst), int_type(w / 8));
            if (is64 || x) v = b_.CreateUnaryIntrinsic(llvm::Intrinsic::bswap, v);
            set(dst, w == 64 ? v : b_.CreateZExt(v, i64_));
            return;
        }
        Value* d = is64 ? reg(dst) : b_.CreateTrunc(reg(dst), i32_);
        if (op == isa::op_neg) return finish(b_.CreateNeg(d));
        Value* s = nullptr;
        if (x) {
            s = is64 ? reg(in.src) : b_.CreateTrunc(reg(in.src), i32_);
        } else {
            s = llvm::ConstantInt::getSigned(t, in.imm);
        }
        switch (op) {
        case isa::op_add: return finish(b_.CreateAdd(d, s));
        case isa::op_sub: return finish(b_.CreateSub(d, s));
        case isa::op_mul: return finish(b_.CreateMul(d, s));
        case isa::op_or: return finish(b_.CreateOr(d, s));
        case isa::op_and: return finish(b_.CreateAnd(d, s));
        case isa::op_xor: return finish(b_.CreateXor(d, s));
        case isa::op_lsh: return finish(b_.CreateShl(d, b_.CreateAnd(s, llvm::ConstantInt::get(t, bits - 1))));
        case isa::op_rsh: return finish(b_.CreateLShr(d, b_.CreateAnd(s, llvm::ConstantInt::get(t, bits - 1))));
        case isa::op_arsh: return finish(b_.CreateAShr(d, b_.CreateAnd(s, llvm::ConstantInt::get(t, bits - 1))));
        case isa::op_mov:
            if (x && in.offset != 0) {
                Value* narrow = b_.CreateTrunc(reg(in.src), int_type(static_cast<unsigned>(in.offset) / 8));
                return finish(b_.CreateSExt(narrow, t));
            }
            return finish(s);
        case isa::op_div:
        case isa::op_mod: {
            const bool sg = in.offset == 1;
            Value* safe = divisor_guard(s, sg, t);
            Value* zero = llvm::ConstantInt::get(t, 0);
            Value* is_zero = b_.CreateICmpEQ(s, zero);
            if (op == isa::op_div) {
                if (!sg) return finish(b_.CreateSelect(is_zero, zero, b_.CreateUDiv(d, safe)));
                Value* q = b_.CreateSelect(b_.CreateICmpEQ(s, llvm::ConstantInt::getSigned(t, -1)), b_.CreateNeg(d),
                                           b_.CreateSDiv(d, safe));
                return finish(b_.CreateSelect(is_zero, zero, q));
            }
            if (!sg) return finish(b_.CreateSelect(is_zero, d, b_.CreateURem(d, safe)));
            Value* r = b_.CreateSelect(b_.CreateICmpEQ(s, llvm::ConstantInt::getSigned(t, -1)), zero, b_.CreateSRem(d, safe));
            return finish(b_.CreateSelect(is_zero, d, r));
        }
        default: break;
        }
    }

    bool lower_jmp(std::size_t i, const Insn& in) {
        const bool is32 = isa::cls(in.opcode) == isa::cls_jmp32;
        const bool x = (in.opcode & isa::src_x) != 0;
        const std::uint8_t op = in.opcode & 0xf0;
        if (op == isa::op_exit) {
            emit_return(reg(0));
            return false;
        }
        if (op == isa::op_ja) {
            const std::int64_t rel = is32 ? in.imm : in.offset;
            BasicBlock* to = block_at(static_cast<std::size_t>(static_cast<std::int64_t>(i) + 1 + rel));
            add_edge(to);
            b_.CreateBr(to);
            return false;
        }
        if (op == isa::op_call) return lower_call(i, in);

        Type* t = is32 ? i32_ : i64_;
        Value* d = is32 ? b_.CreateTrunc(reg(in.dst), i32_) : reg(in.dst);
        Value* s = x ? (is32 ? b_.CreateTrunc(reg(in.src), i32_) : reg(in.src)) : llvm::ConstantInt::getSigned(t, in.imm);
        Value* cond = nullptr;
        switch (op) {
        case isa::op_jeq: cond = b_.CreateICmpEQ(d, s); break;
        case isa::op_jne: cond = b_.CreateICmpNE(d, s); break;
        case isa::op_jgt: cond = b_.CreateICmpUGT(d, s); break;
        case isa::op_jge: cond = b_.CreateICmpUGE(d, s); break;
        case isa::op_jlt: cond = b_.CreateICmpULT(d, s); break;
        case isa::op_jle: cond = b_.CreateICmpULE(d, s); break;
        case isa::op_jsgt: cond = b_.CreateICmpSGT(d, s); break;
        case isa::op_jsge: cond = b_.CreateICmpSGE(d, s); break;
        case isa::op_jslt: cond = b_.CreateICmpSLT(d, s); break;
        case isa::op_jsle: cond = b_.CreateICmpSLE(d, s); break;
        case isa::op_jset: cond = b_.CreateICmpNE(b_.CreateAnd(d, s), llvm::ConstantInt::get(t, 0)); break;
        default: break;
        }
        const auto target = static_cast<std::size_t>(static_cast<std::int64_t>(i) + 1 + in.offset);
        BasicBlock* taken = block_at(target);
        BasicBlock* next = block_at(i + 1);
        add_edge(taken);
        add_edge(next);
        b_.CreateCondBr(cond, taken, next);
        return false;
    }

    // After any helper: raise what it left pending (a callee fault, an unwind, a tail call).
    // After a helper: if it asked for something (pending), either jump to a compiled tail-call target
    // (from the entry function only: a tail call replaces the whole program, so a subprogram leaves it
    // to the run loop) or let the run loop sort it out. `r1` is the helper's first argument, the
    // context a tail-called program gets.
    void emit_after_helper(std::size_t i, Value* r1) {
        Value* pending = b_.CreateLoad(i8_, run_field(offsetof(RunHeader, pending)));
        Function* f = b_.GetInsertBlock()->getParent();
        auto* slow = BasicBlock::Create(ctx_, "helper.pending", f);
        auto* done = BasicBlock::Create(ctx_, "helper.done", f);
        b_.CreateCondBr(b_.CreateICmpNE(pending, b_.getInt8(0)), slow, done);
        b_.SetInsertPoint(slow);
        if (is_entry_ && r1 != nullptr) {
            // Only when it runs as the program, not as a callback (depth 0).
            auto* attempt = BasicBlock::Create(ctx_, "tail.try", f);
            auto* skip = BasicBlock::Create(ctx_, "tail.skip", f);
            b_.CreateCondBr(b_.CreateICmpEQ(depth_, b_.getInt32(0)), attempt, skip);
            b_.SetInsertPoint(attempt);
            auto* tt = llvm::FunctionType::get(ptr_, {ptr_}, false);
            Value* target = b_.CreateCall(callee(req_.rt.tail_entry, tt), {run_});
            auto* jump = BasicBlock::Create(ctx_, "tail.jump", f);
            auto* other = BasicBlock::Create(ctx_, "tail.other", f);
            b_.CreateCondBr(b_.CreateICmpNE(target, llvm::ConstantPointerNull::get(llvm::PointerType::get(ctx_, 0))),
                            jump, other);
            b_.SetInsertPoint(jump);
            auto* call = b_.CreateCall(fn_type_, target,
                                       {r1, b_.getInt64(0), b_.getInt64(0), b_.getInt64(0), b_.getInt64(0), run_,
                                        b_.getInt32(0)});
            call->setTailCallKind(llvm::CallInst::TCK_MustTail);
            b_.CreateRet(call);
            b_.SetInsertPoint(other);
            b_.CreateBr(skip);
            b_.SetInsertPoint(skip);
        }
        auto* type = llvm::FunctionType::get(Type::getVoidTy(ctx_), {ptr_, i32_}, false);
        b_.CreateCall(callee(req_.rt.after_helper, type), {run_, i32(i)});
        b_.CreateBr(done);
        b_.SetInsertPoint(done);
    }

    bool lower_call(std::size_t i, const Insn& in) {
        Value* args[5] = {reg(1), reg(2), reg(3), reg(4), reg(5)};
        Value* r0 = nullptr;
        if ((in.opcode & isa::src_x) != 0) {
            auto* type = llvm::FunctionType::get(i64_, {ptr_, i64_, i64_, i64_, i64_, i64_, i64_, i32_, i32_}, false);
            r0 = b_.CreateCall(callee(req_.rt.callx, type),
                               {run_, reg(in.dst), args[0], args[1], args[2], args[3], args[4], depth_, i32(i)});
            set(0, r0);
            emit_after_helper(i, args[0]);
        } else if (in.src == isa::call_local) {
            Function* f = b_.GetInsertBlock()->getParent();
            auto* deep = BasicBlock::Create(ctx_, "call.deep", f);
            auto* ok = BasicBlock::Create(ctx_, "call.ok", f);
            Value* next = b_.CreateAdd(depth_, b_.getInt32(1));
            b_.CreateCondBr(b_.CreateICmpUGE(next, b_.getInt32(isa::max_call_depth)), deep, ok);
            b_.SetInsertPoint(deep);
            emit_fault(i, fault_depth);
            b_.SetInsertPoint(ok);
            r0 = b_.CreateCall(fn_type_, functions_.at(i + 1 + in.imm), {args[0], args[1], args[2], args[3], args[4], run_, next});
            set(0, r0);
        } else if (const HelperUse& hu = req_.helpers.at(req_.helper_of_insn.at(i));
                   hu.id == helper_ids::map_lookup_elem && array_of_[1]) {
            // bpf_map_lookup_elem on an array map known here: bounds check and address arithmetic.
            const auto& a = req_.lddw_array[*array_of_[1]];
            Value* kp = address(i, 2, 0, 4, access_read);
            if (kp == nullptr) return false;
            Value* key = b_.CreateZExt(b_.CreateAlignedLoad(i32_, kp, llvm::Align(1)), i64_);
            Value* elem = b_.CreateAdd(b_.getInt64(a.values), b_.CreateMul(key, b_.getInt64(a.stride)));
            r0 = b_.CreateSelect(b_.CreateICmpULT(key, b_.getInt64(a.max_entries)), elem, b_.getInt64(0));
            set(0, r0);
        } else if (const HelperUse& d = req_.helpers.at(req_.helper_of_insn.at(i));
                   !req_.checked && d.direct_args != 0 &&
                   (d.direct.address != 0 || !d.direct.symbol.empty())) {
            // A map helper of the runtime, unchecked: its map-level entry, as the kernel calls the map
            // type's function instead of the helper. Nothing can be pending after it.
            std::vector<Type*> types(d.direct_args, i64_);
            auto* type = llvm::FunctionType::get(i64_, types, false);
            auto* call = b_.CreateCall(callee(d.direct, type), llvm::ArrayRef<Value*>(args, d.direct_args));
            call->setDoesNotThrow();
            set(0, call);
        } else {
            const HelperUse& h = req_.helpers.at(req_.helper_of_insn.at(i));
            if (req_.checked && h.has_pointer_args) {
                auto* type = llvm::FunctionType::get(Type::getVoidTy(ctx_), {ptr_, i32_, i32_, i64_, i64_, i64_, i64_, i64_}, false);
                b_.CreateCall(callee(req_.rt.check_helper, type),
                              {run_, i32(i), i32(req_.helper_of_insn.at(i)), args[0], args[1], args[2], args[3], args[4]});
            }
            auto* type = llvm::FunctionType::get(i64_, {i64_, i64_, i64_, i64_, i64_}, false);
            r0 = b_.CreateCall(callee(h.fn, type), {args[0], args[1], args[2], args[3], args[4]});
            set(0, r0);
            emit_after_helper(i, args[0]);
            if (h.unwind_on_zero) {
                Function* f = b_.GetInsertBlock()->getParent();
                auto* unwind = BasicBlock::Create(ctx_, "unwind", f);
                auto* cont = BasicBlock::Create(ctx_, "unwind.no", f);
                b_.CreateCondBr(b_.CreateICmpEQ(r0, b_.getInt64(0)), unwind, cont);
                b_.SetInsertPoint(unwind);
                auto* ut = llvm::FunctionType::get(Type::getVoidTy(ctx_), {ptr_}, false);
                b_.CreateCall(callee(req_.rt.unwind, ut), {run_})->setDoesNotReturn();
                b_.CreateUnreachable();
                b_.SetInsertPoint(cont);
            }
        }
        // r1-r5 are scratch after a call.
        for (unsigned r = 1; r <= 5; ++r) stack_off_[r].reset();
        return true;
    }

    bool lower_atomic(std::size_t i, const Insn& in, unsigned size) {
        Value* p = address(i, in.dst, in.offset, size, access_atomic);
        if (p == nullptr) return false;
        Type* t = int_type(size);
        Value* v = size == 8 ? reg(in.src) : b_.CreateTrunc(reg(in.src), t);
        auto widen = [&](Value* r) { return size == 8 ? r : b_.CreateZExt(r, i64_); };
        const auto order = llvm::AtomicOrdering::SequentiallyConsistent;
        if (in.imm == isa::atomic_cmpxchg) {
            Value* expected = size == 8 ? reg(0) : b_.CreateTrunc(reg(0), t);
            auto* cx = b_.CreateAtomicCmpXchg(p, expected, v, llvm::MaybeAlign(size), order, order);
            set(0, widen(b_.CreateExtractValue(cx, 0)));
            return true;
        }
        llvm::AtomicRMWInst::BinOp bop = llvm::AtomicRMWInst::Add;
        switch (in.imm & ~isa::atomic_fetch) {
        case isa::atomic_add: bop = llvm::AtomicRMWInst::Add; break;
        case isa::atomic_or: bop = llvm::AtomicRMWInst::Or; break;
        case isa::atomic_and: bop = llvm::AtomicRMWInst::And; break;
        case isa::atomic_xor: bop = llvm::AtomicRMWInst::Xor; break;
        case (isa::atomic_xchg & ~isa::atomic_fetch): bop = llvm::AtomicRMWInst::Xchg; break;
        default: break;
        }
        Value* old = b_.CreateAtomicRMW(bop, p, v, llvm::MaybeAlign(size), order);
        if (in.imm & isa::atomic_fetch) set(in.src, widen(old));
        return true;
    }

    llvm::LLVMContext& ctx_;
    const LowerRequest& req_;
    IRBuilder<> b_;
    Type *i64_, *i32_, *i16_, *i8_;
    llvm::PointerType* ptr_;
    llvm::Module* module_ = nullptr;
    llvm::FunctionType* fn_type_ = nullptr;
    std::vector<std::size_t> starts_;
    std::map<std::size_t, Function*> functions_;
    std::map<std::size_t, BasicBlock*> blocks_;
    std::vector<Value*> cur_;  // r0-r9, r10, stack slots at the insertion point (see reg)
    std::map<std::int64_t, unsigned> slots_;  // stack slot by offset from r10 -> index in cur_
    std::vector<Type*> slot_types_;
    bool stack_in_ssa_ = false;
    std::unordered_map<BasicBlock*, BlockState> state_;  // by the BPF blocks of the function
    BasicBlock* entry_ = nullptr;
    bool frame_escapes_ = false;
    llvm::AllocaInst* stack_ = nullptr;
    Value* run_ = nullptr;
    Value* frame_lo_ = nullptr;
    Value* depth_ = nullptr;
    std::optional<std::int64_t> stack_off_[11];  // register = frame top + offset, when known
    std::optional<std::size_t> array_of_[11];     // register = an inlinable array map (its lddw slot)
    bool is_entry_ = false;                       // lowering the program's entry function
};

}  // namespace

std::string function_name(const std::string& entry, std::size_t start) { return fmt::format("{}.f{}", entry, start); }

Result<Lowered> lower(llvm::LLVMContext& ctx, const LowerRequest& req) { return Lowering(ctx, req).run(); }

void optimise(llvm::Module& m, unsigned level, llvm::TargetMachine* tm) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm);
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    const llvm::OptimizationLevel ol = level == 0   ? llvm::OptimizationLevel::O0
                                       : level == 1 ? llvm::OptimizationLevel::O1
                                       : level == 2 ? llvm::OptimizationLevel::O2
                                                    : llvm::OptimizationLevel::O3;
    llvm::ModulePassManager mpm;
    // The lowering makes registers SSA values itself, so nothing needs promoting first; the stack
    // is left to SROA.
    mpm.addPass(level == 0 ? pb.buildO0DefaultPipeline(ol) : pb.buildPerModuleDefaultPipeline(ol));
    mpm.run(m, mam);
}

}  // namespace ebpfrt::jit
