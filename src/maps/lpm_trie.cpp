// lpm_trie (kernel/bpf/lpm_trie.c): the kernel's binary trie with intermediate nodes, the same update,
// delete and get_next_key algorithms (so iteration order matches the kernel's), nodes from a pool that
// grows a chunk at a time (the kernel requires BPF_F_NO_PREALLOC).
//
// Writers hold one robust lock and publish with single stores, as the kernel's RCU code does. Nodes are
// reused without an RCU grace period, so lock-free readers use a sequence counter (odd while a writer is
// inside) and retry; a reader that keeps failing, or sees a writer that died (odd forever), takes the lock,
// which repairs the trie's bookkeeping.

#include <algorithm>

#include <fmt/format.h>

#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace ebpfrt::maps {
namespace {

constexpr std::uint32_t lpm_data_size_max = 256;
constexpr std::uint32_t lpm_key_size_min = 4 + 1;
constexpr std::uint32_t lpm_key_size_max = 4 + lpm_data_size_max;
constexpr std::uint32_t lpm_val_size_max = (1u << 22) - 64;  // well below KMALLOC_MAX_SIZE - sizeof(node)
constexpr std::uint32_t flag_im = 1;                         // LPM_TREE_NODE_FLAG_IM

struct LpmNode {
    PoolLink link;
    std::atomic<std::uint32_t> child[2];  // node indices, no_index = none
    std::uint32_t prefixlen;
    std::uint32_t flags;
    // data[data_size], then the value at LpmMap::value_off
};

struct LpmMap {
    MapHeader h;
    std::uint32_t data_size;
    std::uint32_t max_prefixlen;
    std::uint32_t value_off;  // within a node
    std::uint32_t n_entries;  // under lock
    std::atomic<std::uint32_t> root;
    std::atomic<std::uint32_t> seq;  // even: stable; odd: a writer is changing the trie
    RobustMutex lock;
    Pool pool;  // last: its chunk table follows
};

LpmMap* lm(MapHeader* h) noexcept { return body<LpmMap>(h); }
LpmNode* node(LpmMap* t, std::uint32_t idx) noexcept { return reinterpret_cast<LpmNode*>(t->pool.elem(idx)); }
std::uint8_t* data_of(LpmNode* n) noexcept { return reinterpret_cast<std::uint8_t*>(n) + sizeof(LpmNode); }
std::byte* value_of(LpmMap* t, LpmNode* n) noexcept { return reinterpret_cast<std::byte*>(n) + t->value_off; }

struct Key {
    std::uint32_t prefixlen;
    const std::uint8_t* data;
};
Key key_of(const void* k) noexcept {
    Key r;
    std::memcpy(&r.prefixlen, k, 4);
    r.data = static_cast<const std::uint8_t*>(k) + 4;
    return r;
}

int extract_bit(const std::uint8_t* data, std::size_t index) noexcept {
    return !!(data[index / 8] & (1 << (7 - (index % 8))));
}

// longest_prefix_match: matching leading bits of node and key, up to the shorter prefix.
std::uint32_t longest_prefix_match(LpmMap* t, LpmNode* n, const Key& k) noexcept {
    std::uint32_t limit = n->prefixlen < k.prefixlen ? n->prefixlen : k.prefixlen;
    std::uint32_t prefixlen = 0;
    const std::uint8_t* nd = data_of(n);
    for (std::uint32_t i = 0; i < t->data_size; i++) {
        // b: matching leading bits of this byte, 8 - fls(x) in the kernel's words
        unsigned x = static_cast<unsigned>(nd[i] ^ k.data[i]);
        std::uint32_t b = x ? static_cast<std::uint32_t>(__builtin_clz(x)) - 24 : 8;
        prefixlen += b;
        if (prefixlen >= limit) return limit;
        if (b < 8) break;
    }
    return prefixlen;
}

// ---- locking, repair ----

void repair_locked(LpmMap* t) noexcept;

struct WriteGuard {
    explicit WriteGuard(LpmMap* t) noexcept : t_(t) {
        if (t->lock.lock()) repair_locked(t);
        // Odd while we change the trie; readers that saw an even value before and after saw no change.
        t->seq.fetch_add(1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
    }
    ~WriteGuard() {
        t_->seq.fetch_add(1, std::memory_order_release);
        t_->lock.unlock();
    }
    WriteGuard(const WriteGuard&) = delete;
    WriteGuard& operator=(const WriteGuard&) = delete;
    LpmMap* t_;
};

// Marks reachable nodes, counts entries; the free list is rebuilt from the rest. Caller holds the lock.
std::uint32_t mark_reachable(LpmMap* t, PoolMarker& marks, std::uint32_t* reachable,
                             std::string* problem) noexcept {
    // Depth first; the trie's depth is at most max_prefixlen + 1 and each level leaves at most one
    // sibling pending, so a fixed stack suffices.
    std::uint32_t stack[lpm_data_size_max * 8 + 2];
    std::uint32_t sp = 0, entries = 0, nodes = 0;
    std::uint32_t r = t->root.load(std::memory_order_relaxed);
    if (r != no_index) stack[sp++] = r;
    while (sp) {
        std::uint32_t idx = stack[--sp];
        if (!marks.mark(idx)) {
            if (problem && problem->empty())
                *problem = fmt::format("node {} is reachable twice, out of range or free", idx);
            continue;
        }
        ++nodes;
        LpmNode* n = node(t, idx);
        if (!(n->flags & flag_im))
            ++entries;
        else if (problem && problem->empty() &&
                 (n->child[0].load() == no_index || n->child[1].load() == no_index))
            *problem = fmt::format("intermediate node {} has fewer than two children", idx);
        for (auto& c : n->child) {
            std::uint32_t ci = c.load(std::memory_order_relaxed);
            if (ci == no_index) continue;
            if (sp >= std::size(stack)) {
                if (problem && problem->empty()) *problem = "trie deeper than the key allows";
                break;
            }
            stack[sp++] = ci;
        }
    }
    if (reachable) *reachable = nodes;
    return entries;
}

void repair_locked(LpmMap* t) noexcept {
    // A writer died holding the lock: every change it made was a single store of a complete node, so
    // the trie is well formed; only n_entries and nodes taken from the pool may be off.
    PoolMarker marks(&t->pool);
    t->n_entries = mark_reachable(t, marks, nullptr, nullptr);
    pool_rebuild_free(&t->pool);
    std::uint32_t s = t->seq.load(std::memory_order_relaxed);
    if (s & 1) t->seq.store(s + 1, std::memory_order_release);
}

// ---- lookup (trie_lookup_elem) ----

LpmNode* lookup_walk(LpmMap* t, const Key& k) noexcept {
    LpmNode* found = nullptr;
    if (k.prefixlen > t->max_prefixlen) return nullptr;
    std::uint32_t idx = t->root.load(std::memory_order_acquire);
    for (std::uint32_t depth = 0; idx != no_index && depth <= t->max_prefixlen + 1; ++depth) {
        if (!t->pool.valid(idx)) return nullptr;  // a stale index seen mid-change: the seq check retries
        LpmNode* n = node(t, idx);
        std::uint32_t matchlen = longest_prefix_match(t, n, k);
        if (matchlen == t->max_prefixlen) {
            found = n;
            break;
        }
        if (matchlen < n->prefixlen) break;
        if (!(n->flags & flag_im)) found = n;
        std::uint32_t pl = n->prefixlen;
        if (pl >= t->max_prefixlen) break;
        idx = n->child[extract_bit(k.data, pl)].load(std::memory_order_acquire);
    }
    return found;
}

// Runs `fn(found)` on a consistent snapshot; returns its result.
template <class F>
long read_consistent(LpmMap* t, const Key& k, F&& fn) noexcept {
    for (int attempt = 0; attempt < 64; ++attempt) {
        std::uint32_t s = t->seq.load(std::memory_order_acquire);
        if (s & 1) continue;
        LpmNode* n = lookup_walk(t, k);
        long rc = fn(n);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (t->seq.load(std::memory_order_relaxed) == s) return rc;
    }
    // Writers keep changing it (or one died mid-change): read under the lock, which also repairs.
    if (t->lock.lock()) repair_locked(t);
    long rc = fn(lookup_walk(t, k));
    t->lock.unlock();
    return rc;
}

void* lpm_lookup(MapHeader* h, const void* key) noexcept {
    LpmMap* t = lm(h);
    Key k = key_of(key);
    LpmNode* out = nullptr;
    read_consistent(t, k, [&](LpmNode* n) {
        out = n;
        return 0L;
    });
    return out ? value_of(t, out) : nullptr;
}

long lpm_sys_lookup(MapHeader* h, const void* key, void* value, std::uint64_t) noexcept {
    LpmMap* t = lm(h);
    Key k = key_of(key);
    return read_consistent(t, k, [&](LpmNode* n) -> long {
        if (!n) return -ENOENT;
        std::memcpy(value, value_of(t, n), h->value_size);
        return 0;
    });
}

// ---- update (trie_update_elem) ----

std::uint32_t alloc_node(LpmMap* t, const void* value, long* rc) noexcept {
    bool oom = false;
    std::uint32_t idx = pool_pop(&t->h, &t->pool, &oom);
    if (idx == no_index) {
        *rc = -ENOMEM;
        return no_index;
    }
    LpmNode* n = node(t, idx);
    n->flags = 0;
    n->child[0].store(no_index, std::memory_order_relaxed);
    n->child[1].store(no_index, std::memory_order_relaxed);
    if (value) std::memcpy(value_of(t, n), value, t->h.value_size);
    return idx;
}

long trie_check_add_elem(LpmMap* t, std::uint64_t flags) noexcept {
    if (flags == update_flags::exist) return -ENOENT;
    if (t->n_entries == t->h.max_entries) return -ENOSPC;
    t->n_entries++;
    return 0;
}

long lpm_update(MapHeader* h, const void* key, const void* value, std::uint64_t flags) noexcept {
    LpmMap* t = lm(h);
    if (flags > update_flags::exist) return -EINVAL;
    Key k = key_of(key);
    if (k.prefixlen > t->max_prefixlen) return -EINVAL;
    WriteGuard guard(t);
    long rc = 0;
    std::uint32_t new_idx = alloc_node(t, value, &rc);
    if (new_idx == no_index) return rc;
    LpmNode* new_node = node(t, new_idx);
    new_node->prefixlen = k.prefixlen;
    std::memcpy(data_of(new_node), k.data, t->data_size);

    std::atomic<std::uint32_t>* slot = &t->root;
    LpmNode* n = nullptr;
    std::uint32_t idx, matchlen = 0;
    while ((idx = slot->load(std::memory_order_relaxed)) != no_index) {
        n = node(t, idx);
        matchlen = longest_prefix_match(t, n, k);
        if (n->prefixlen != matchlen || n->prefixlen == k.prefixlen) break;
        slot = &n->child[extract_bit(k.data, n->prefixlen)];
        n = nullptr;
    }
    auto fail = [&](long err) {
        pool_push(&t->pool, new_idx);
        return err;
    };
    if (!n) {  // an empty slot: attach the new node there
        if (long err = trie_check_add_elem(t, flags)) return fail(err);
        slot->store(new_idx, std::memory_order_release);
        return 0;
    }
    if (n->prefixlen == matchlen) {  // the same prefix: replace the node
        if (!(n->flags & flag_im)) {
            if (flags == update_flags::noexist) return fail(-EEXIST);
        } else if (long err = trie_check_add_elem(t, flags)) {
            return fail(err);
        }
        new_node->child[0].store(n->child[0].load(std::memory_order_relaxed), std::memory_order_relaxed);
        new_node->child[1].store(n->child[1].load(std::memory_order_relaxed), std::memory_order_relaxed);
        slot->store(new_idx, std::memory_order_release);
        pool_push(&t->pool, idx);
        return 0;
    }
    if (long err = trie_check_add_elem(t, flags)) return fail(err);
    if (matchlen == k.prefixlen) {  // the new node is an ancestor of n
        new_node->child[extract_bit(data_of(n), matchlen)].store(idx, std::memory_order_relaxed);
        slot->store(new_idx, std::memory_order_release);
        return 0;
    }
    // Otherwise n and the new node become the children of a new intermediate node.
    std::uint32_t im_idx = alloc_node(t, nullptr, &rc);
    if (im_idx == no_index) {
        t->n_entries--;
        return fail(rc);
    }
    LpmNode* im = node(t, im_idx);
    im->prefixlen = matchlen;
    im->flags = flag_im;
    std::memcpy(data_of(im), data_of(n), t->data_size);
    if (extract_bit(k.data, matchlen)) {
        im->child[0].store(idx, std::memory_order_relaxed);
        im->child[1].store(new_idx, std::memory_order_relaxed);
    } else {
        im->child[0].store(new_idx, std::memory_order_relaxed);
        im->child[1].store(idx, std::memory_order_relaxed);
    }
    slot->store(im_idx, std::memory_order_release);
    return 0;
}

// ---- delete (trie_delete_elem) ----

long lpm_delete(MapHeader* h, const void* key) noexcept {
    LpmMap* t = lm(h);
    Key k = key_of(key);
    if (k.prefixlen > t->max_prefixlen) return -EINVAL;
    WriteGuard guard(t);
    std::atomic<std::uint32_t>* trim = &t->root;
    std::atomic<std::uint32_t>* trim2 = trim;
    LpmNode* parent = nullptr;
    std::uint32_t parent_idx = no_index;
    LpmNode* n = nullptr;
    std::uint32_t idx = no_index, matchlen = 0;
    while ((idx = trim->load(std::memory_order_relaxed)) != no_index) {
        n = node(t, idx);
        matchlen = longest_prefix_match(t, n, k);
        if (n->prefixlen != matchlen || n->prefixlen == k.prefixlen) break;
        parent = n;
        parent_idx = idx;
        trim2 = trim;
        trim = &n->child[extract_bit(k.data, n->prefixlen)];
        n = nullptr;
    }
    if (!n || n->prefixlen != k.prefixlen || n->prefixlen != matchlen || (n->flags & flag_im)) return -ENOENT;
    t->n_entries--;
    std::uint32_t c0 = n->child[0].load(std::memory_order_relaxed),
                  c1 = n->child[1].load(std::memory_order_relaxed);
    if (c0 != no_index && c1 != no_index) {
        n->flags |= flag_im;  // two children: it stays, as an intermediate node
        return 0;
    }
    if (parent && (parent->flags & flag_im) && c0 == no_index && c1 == no_index) {
        // Remove the leaf and its intermediate parent; the sibling takes the parent's place.
        std::uint32_t sibling = parent->child[0].load(std::memory_order_relaxed) == idx
                                    ? parent->child[1].load(std::memory_order_relaxed)
                                    : parent->child[0].load(std::memory_order_relaxed);
        trim2->store(sibling, std::memory_order_release);
        pool_push(&t->pool, parent_idx);
        pool_push(&t->pool, idx);
        return 0;
    }
    trim->store(c0 != no_index ? c0 : c1, std::memory_order_release);
    pool_push(&t->pool, idx);
    return 0;
}

// ---- get_next_key (trie_get_next_key): post-order, more specific prefixes first ----

long lpm_next_key(MapHeader* h, const void* key, void* next) noexcept {
    LpmMap* t = lm(h);
    // Under the lock: the walk keeps a stack of nodes, which must not be recycled meanwhile.
    if (t->lock.lock()) repair_locked(t);
    struct Unlock {
        LpmMap* t;
        ~Unlock() { t->lock.unlock(); }
    } unlock{t};
    std::uint32_t search_root = t->root.load(std::memory_order_relaxed);
    if (search_root == no_index) return -ENOENT;
    LpmNode* next_node = nullptr;
    bool leftmost = true;
    if (key) {
        Key k = key_of(key);
        if (k.prefixlen <= t->max_prefixlen) {
            std::uint32_t stack[lpm_data_size_max * 8 + 2];
            int sp = -1;
            std::uint32_t idx = search_root, matchlen = 0;
            LpmNode* n = nullptr;
            while (idx != no_index) {
                stack[++sp] = idx;
                n = node(t, idx);
                matchlen = longest_prefix_match(t, n, k);
                if (n->prefixlen != matchlen || n->prefixlen == k.prefixlen) break;
                idx = n->child[extract_bit(k.data, n->prefixlen)].load(std::memory_order_relaxed);
                n = nullptr;
            }
            if (n && n->prefixlen == matchlen && !(n->flags & flag_im) && n->prefixlen == k.prefixlen) {
                // Found: the next node in post-order.
                leftmost = false;
                std::uint32_t cur = stack[sp];
                search_root = no_index;
                while (sp > 0) {
                    LpmNode* p = node(t, stack[sp - 1]);
                    if (p->child[0].load(std::memory_order_relaxed) == cur) {
                        std::uint32_t right = p->child[1].load(std::memory_order_relaxed);
                        if (right != no_index) {
                            search_root = right;
                            leftmost = true;
                            break;
                        }
                    }
                    if (!(p->flags & flag_im)) {
                        next_node = p;
                        break;
                    }
                    cur = stack[sp - 1];
                    sp--;
                }
                if (!leftmost && !next_node) return -ENOENT;
            }
        }
    }
    if (leftmost) {
        // The leftmost non-intermediate node (intermediate nodes always have two children).
        for (std::uint32_t idx = search_root; idx != no_index;) {
            LpmNode* n = node(t, idx);
            if (n->flags & flag_im) {
                idx = n->child[0].load(std::memory_order_relaxed);
            } else {
                next_node = n;
                idx = n->child[0].load(std::memory_order_relaxed);
                if (idx == no_index) idx = n->child[1].load(std::memory_order_relaxed);
            }
        }
    }
    if (!next_node) return -ENOENT;
    std::memcpy(next, &next_node->prefixlen, 4);
    std::memcpy(static_cast<std::byte*>(next) + 4, data_of(next_node), t->data_size);
    return 0;
}

std::string lpm_check_consistency(MapHeader* h) {
    LpmMap* t = lm(h);
    WriteGuard guard(t);  // repairs after a dead owner
    std::vector<std::uint8_t> states;
    std::string problem = pool_free_states(&t->pool, states);
    std::uint32_t free_n = static_cast<std::uint32_t>(std::count(states.begin(), states.end(), 1));
    PoolMarker marks(&t->pool, &states);
    std::uint32_t reachable = 0, total = t->pool.allocated();
    std::uint32_t entries = problem.empty() ? mark_reachable(t, marks, &reachable, &problem) : 0;
    if (problem.empty() && entries != t->n_entries)
        problem = fmt::format("n_entries is {} but {} entries are reachable", t->n_entries, entries);
    if (problem.empty() && free_n + reachable != total)
        problem =
            fmt::format("{} free + {} reachable != {} allocated nodes (leak)", free_n, reachable, total);
    return problem;
}

// ---- creation (trie_alloc) ----

std::string check_lpm(const MapSpec& s, int* err) {
    if (auto why = check_nonzero(s, false, true, err); !why.empty()) return why;
    if (!(s.flags & map_flags::no_prealloc)) {
        *err = EINVAL;
        return "lpm_trie needs map_flags::no_prealloc";
    }
    if (auto why = check_flags(s, map_flags::no_prealloc | map_flags::numa_node | access_flags, err);
        !why.empty())
        return why;
    if (s.key_size < lpm_key_size_min || s.key_size > lpm_key_size_max) {
        *err = EINVAL;
        return fmt::format(
            "key size {} is invalid for lpm_trie (must be {} to {}: a u32 prefix length and 1 to {} "
            "bytes of data)",
            s.key_size, lpm_key_size_min, lpm_key_size_max, lpm_data_size_max);
    }
    if (s.value_size < 1 || s.value_size > lpm_val_size_max) {
        *err = EINVAL;
        return fmt::format("value size {} is invalid for lpm_trie (must be 1 to {})", s.value_size,
                           lpm_val_size_max);
    }
    if (s.max_entries > (1u << 29)) {
        *err = E2BIG;
        return fmt::format("max_entries {} is too large for lpm_trie", s.max_entries);
    }
    return {};
}

std::uint32_t node_size(const MapSpec& s) noexcept {
    return static_cast<std::uint32_t>(round_up(sizeof(LpmNode) + (s.key_size - 4), 8) +
                                      round_up(s.value_size, 8));
}
// Leaves, at most one intermediate node per leaf, and the two nodes an update allocates before it knows
// whether it replaces one.
std::uint32_t node_capacity(const MapSpec& s) noexcept { return 2 * s.max_entries + 2; }

void layout_lpm(const MapSpec& s, std::uint32_t, MapLayout& out) {
    std::uint32_t cap = node_capacity(s);
    std::uint32_t shift = pool_chunk_shift(cap, false);
    std::uint32_t slots = static_cast<std::uint32_t>((std::uint64_t{cap} + (1u << shift) - 1) >> shift);
    out.header_align = 64;
    out.header_bytes = offsetof(LpmMap, pool) + Pool::bytes(slots);
    out.extra_bytes = pool_chunk_bytes(node_size(s), cap, &out.extra_allocs);
}

long init_lpm(MapHeader* h, const MapSpec& s) noexcept {
    LpmMap* t = lm(h);
    t->data_size = s.key_size - 4;
    t->max_prefixlen = t->data_size * 8;
    t->value_off = static_cast<std::uint32_t>(round_up(sizeof(LpmNode) + t->data_size, 8));
    t->n_entries = 0;
    new (&t->root) std::atomic<std::uint32_t>(no_index);
    new (&t->seq) std::atomic<std::uint32_t>(0);
    t->lock.init();
    return pool_init(h, &t->pool, node_size(s), node_capacity(s), false);
}

}  // namespace

const MapOps lpm_trie_ops = {
    .check = check_lpm,
    .layout = layout_lpm,
    .init = init_lpm,
    .lookup = lpm_lookup,
    .update = lpm_update,
    .erase = lpm_delete,
    .sys_lookup = lpm_sys_lookup,
    .sys_update = lpm_update,
    .sys_delete = lpm_delete,
    .sys_next_key = lpm_next_key,
    .check_consistency = lpm_check_consistency,
};

}  // namespace ebpfrt::maps
