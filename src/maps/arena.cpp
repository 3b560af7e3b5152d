// The shared-memory arena: a Boost.Interprocess managed segment (named, or over anonymous shared memory)
// whose root object is the map registry. Boost stays in this file.

#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include <boost/interprocess/creation_tags.hpp>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/indexes/iset_index.hpp>
#include <boost/interprocess/managed_external_buffer.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/mem_algo/rbtree_best_fit.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <fmt/format.h>

#include "maps/handle.hpp"
#include "maps/layout.hpp"
#include "maps/spec.hpp"

namespace bip = boost::interprocess;

namespace ebpfrt::maps {
namespace {

// Boost's interprocess_mutex is not robust: a process killed inside the segment manager would leave it
// locked for everyone. These wrap RobustMutex in the interface rbtree_best_fit and segment_manager use. A
// dead owner's half-finished update of Boost's allocator cannot be repaired, so Boost only allocates while
// an arena is set up (the registry, then one block with the rest of the segment for the maps' Heap, whose
// every operation survives its caller's death: heap.cpp); opening an arena only looks the registry up.
class SegmentMutex {
public:
    SegmentMutex() noexcept { m_.init(false); }
    void lock() noexcept { (void)m_.lock(); }
    bool try_lock() noexcept {
        bool died = false;
        return m_.try_lock(died);
    }
    template <class TimePoint>
    bool timed_lock(const TimePoint&) noexcept {
        lock();
        return true;
    }
    void unlock() noexcept { m_.unlock(); }

private:
    RobustMutex m_;
};

class SegmentRecursiveMutex {
public:
    SegmentRecursiveMutex() noexcept { m_.init(true); }
    void lock() noexcept { (void)m_.lock(); }
    bool try_lock() noexcept {
        bool died = false;
        return m_.try_lock(died);
    }
    template <class TimePoint>
    bool timed_lock(const TimePoint&) noexcept {
        lock();
        return true;
    }
    void unlock() noexcept { m_.unlock(); }

private:
    RobustMutex m_;
};

struct RobustMutexFamily {
    using mutex_type = SegmentMutex;
    using recursive_mutex_type = SegmentRecursiveMutex;
};

using Algorithm = bip::rbtree_best_fit<RobustMutexFamily, bip::offset_ptr<void>>;
using NamedSegment = bip::basic_managed_shared_memory<char, Algorithm, bip::iset_index>;
using AnonSegment = bip::basic_managed_external_buffer<char, Algorithm, bip::iset_index>;
using SegmentManager = NamedSegment::segment_manager;
static_assert(std::is_same_v<SegmentManager, AnonSegment::segment_manager>);

constexpr std::size_t min_arena_size = 64 * 1024;

Heap* heap_of(MapHeader* m) noexcept { return m->registry->heap.get(); }

// Frees a map that is out of the registry and has no references left. Each free also takes the block off
// the map's list, so a process killed in here leaves a shorter list (the rest leaked), never a freed block
// on it.
void free_map(MapHeader* m) noexcept {
    if (const MapOps* ops = ops_for(m->type); ops && ops->release) ops->release(m);
    Heap* heap = heap_of(m);
    while (void* p = heap_owned_first(heap, m->allocs))
        heap_free(heap, p, &m->allocs, heap_owned_next(heap, p));
    m->magic = 0;
    heap_free(heap, m);
}

// Gives the rest of a new segment to the maps' heap; the caller holds the registry lock.
bool setup_heap(SegmentManager* sm, Registry* reg) noexcept {
    if (reg->heap) return true;
    std::size_t free = sm->get_free_memory();
    // Boost's own block overhead is not part of get_free_memory: ask for a little less until it fits.
    for (std::size_t slack = 64; slack < 64 * 64 && slack < free; slack += 64) {
        void* mem = nullptr;
        try {
            mem = sm->allocate(free - slack, std::nothrow);
        } catch (...) {
            mem = nullptr;
        }
        if (!mem) continue;
        Heap* h = heap_init(mem, free - slack);
        if (!h) {
            sm->deallocate(mem);
            return false;
        }
        reg->heap = h;
        return true;
    }
    return false;
}

// Lock the registry; a dead owner can only have left a created map unlinked (leaked) or a half-unlinked
// one: the list is only changed with single stores of a complete next pointer.
struct RegistryLock {
    explicit RegistryLock(Registry* r) noexcept : g(r->lock) {}
    LockGuard g;
};

MapHeader* find_locked(Registry* reg, std::string_view name) noexcept {
    for (MapHeader* m = reg->first.get(); m; m = m->next.get())
        if (std::string_view(m->name) == name) return m;
    return nullptr;
}

bool inner_matches(const MapHeader* outer, const MapHeader* inner) noexcept {
    if (inner->type != outer->inner_type || inner->key_size != outer->inner_key_size ||
        inner->value_size != outer->inner_value_size || inner->map_flags != outer->inner_flags)
        return false;
    // bpf_map_meta_equal: max_entries may differ when the template has BPF_F_INNER_MAP.
    return (outer->inner_flags & map_flags::inner_map) || inner->max_entries == outer->inner_max_entries;
}

}  // namespace

void* arena_allocate(MapHeader* owner, std::size_t bytes, std::size_t align,
                     AtomicRel<std::byte>* publish) noexcept {
    return heap_allocate(heap_of(owner), bytes, align, &owner->allocs, publish);
}

MapHeader* acquire_map_by_id(Registry* reg, std::uint32_t id) noexcept {
    RegistryLock lock(reg);
    for (MapHeader* m = reg->first.get(); m; m = m->next.get()) {
        if (m->id == id) {
            m->refs.fetch_add(1, std::memory_order_relaxed);
            return m;
        }
    }
    return nullptr;
}

void acquire_map(MapHeader* m) noexcept { m->refs.fetch_add(1, std::memory_order_relaxed); }

void release_map(MapHeader* m) noexcept {
    // The registry holds a reference while the map has a name, so reaching 0 means removed and
    // unreachable: nobody can take a new reference, and whoever drops the last one frees.
    if (m->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_map(m);
}

bool inner_map_compatible(const MapHeader* outer, const MapHeader* inner) noexcept {
    return inner_matches(outer, inner);
}

}  // namespace ebpfrt::maps

namespace ebpfrt {

using maps::MapHeader;
using maps::Registry;

namespace detail {

struct ArenaState {
    std::string name;
    std::size_t size = 0;
    std::unique_ptr<maps::NamedSegment> named;
    std::unique_ptr<maps::AnonSegment> anon;
    void* anon_base = nullptr;
    maps::SegmentManager* sm = nullptr;
    Registry* reg = nullptr;

    ~ArenaState() {
        anon.reset();
        named.reset();
        if (anon_base) munmap(anon_base, size);
    }
};

MapHandle::~MapHandle() {
    if (hdr) maps::release_map(hdr);
}

MapSpec spec_from_header(const MapHeader* h) {
    MapSpec s;
    s.name = h->name;
    s.type = h->type;
    s.key_size = h->key_size;
    s.value_size = h->value_size;
    s.max_entries = h->max_entries;
    s.flags = h->map_flags;
    s.numa_node = h->numa_node;
    s.pinning = h->pinning;
    s.origin = h->origin;
    s.btf_key_type_id = h->btf_key_type_id;
    s.btf_value_type_id = h->btf_value_type_id;
    s.spin_lock_off = h->spin_lock_off;
    if (h->has_inner) {
        auto in = std::make_shared<MapSpec>();
        in->type = h->inner_type;
        in->key_size = h->inner_key_size;
        in->value_size = h->inner_value_size;
        in->max_entries = h->inner_max_entries;
        in->flags = h->inner_flags;
        s.inner = std::move(in);
    }
    return s;
}

MapRef MapAccess::adopt(std::shared_ptr<ArenaState> arena, MapHeader* hdr) {
    auto h = std::make_shared<MapHandle>();
    h->arena = std::move(arena);
    h->hdr = hdr;
    h->ops = maps::ops_for(hdr->type);
    h->spec = spec_from_header(hdr);
    h->sys_value_size = maps::sys_value_size(hdr);
    return MapRef(std::move(h));
}

}  // namespace detail

namespace {

Error segment_error(const std::string& what, const bip::interprocess_exception& e) {
    Errc code = Errc::io_error;
    switch (e.get_error_code()) {
    case bip::not_found_error:
        code = Errc::not_found;
        break;
    case bip::security_error:
        code = Errc::permission_denied;
        break;
    case bip::already_exists_error:
        code = Errc::already_exists;
        break;
    case bip::out_of_memory_error:
    case bip::out_of_space_error:
        code = Errc::out_of_memory;
        break;
    default:
        break;
    }
    std::string msg = e.what();
    if (code == Errc::not_found) msg = "no such shared-memory object";
    return Error(code, what + ": " + msg);
}

Result<void> check_name(const std::string& what, std::string_view name) {
    if (name.size() > 200 || name.find('/') != std::string_view::npos)
        return Error(Errc::invalid_argument,
                     what + ": invalid shared-memory name (no '/', at most 200 characters)");
    return {};
}

}  // namespace

Result<Arena> Arena::create(const ArenaOptions& options) {
    std::string what = options.name.empty()
                           ? std::string("create anonymous arena")
                           : fmt::format("{} arena \"{}\"", options.create ? "create" : "open", options.name);
    auto st = std::make_shared<detail::ArenaState>();
    st->name = options.name;
    if (options.name.empty() || options.create) {
        if (options.size < maps::min_arena_size)
            return Error(Errc::invalid_argument, fmt::format("{}: size {} is too small (at least {} bytes)",
                                                             what, options.size, maps::min_arena_size));
    }
    try {
        if (options.name.empty()) {
            st->size = maps::round_up(options.size, maps::page_size);
            // MAP_SHARED so that fork() children share the maps.
            void* p = mmap(nullptr, st->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return Error(Errc::out_of_memory, fmt::format("{}: mmap of {} bytes failed", what, st->size));
            st->anon_base = p;
            st->anon = std::make_unique<maps::AnonSegment>(bip::create_only, p, st->size);
            st->sm = st->anon->get_segment_manager();
        } else {
            if (auto ok = check_name(what, options.name); !ok) return ok.error();
            if (options.create)
                st->named = std::make_unique<maps::NamedSegment>(bip::open_or_create, options.name.c_str(),
                                                                 options.size);
            else
                st->named = std::make_unique<maps::NamedSegment>(bip::open_only, options.name.c_str());
            st->size = st->named->get_size();
            st->sm = st->named->get_segment_manager();
        }
        // find_or_construct runs under the segment's lock: exactly one process builds the registry.
        auto* sm = st->sm;
        st->reg = sm->find_or_construct<Registry>(bip::unique_instance)(static_cast<void*>(sm));
        if (!st->reg) return Error(Errc::out_of_memory, what + ": no room for the map registry");
    } catch (const bip::interprocess_exception& e) {
        return segment_error(what, e);
    } catch (const std::bad_alloc&) {
        return Error(Errc::out_of_memory, what + ": no room for the map registry");
    }
    Registry* reg = st->reg;
    if (reg->magic != maps::registry_magic)
        return Error(Errc::invalid_argument, what + ": not an ebpfrt arena (bad registry)");
    if (reg->version != maps::layout_version)
        return Error(Errc::invalid_argument, fmt::format("{}: arena layout version {}, this library uses {}",
                                                         what, reg->version, maps::layout_version));
    {
        maps::LockGuard lock(reg->lock);
        if (!maps::setup_heap(st->sm, reg))
            return Error(Errc::out_of_memory, what + ": no room for the map heap");
    }
    return Arena(std::move(st));
}

Result<void> Arena::remove(std::string_view name) {
    std::string what = fmt::format("remove arena \"{}\"", name);
    if (auto ok = check_name(what, name); !ok) return ok.error();
    if (!bip::shared_memory_object::remove(std::string(name).c_str()))
        return Error(Errc::not_found, what + ": no such shared-memory object");
    return {};
}

std::size_t Arena::bytes_for(const MapSpec& spec) {
    auto norm = maps::normalize_spec(spec);
    if (!norm) return 0;
    const maps::MapOps* ops = maps::ops_for(norm->type);
    if (!ops || !ops->layout) return 0;
    maps::MapLayout l;
    ops->layout(*norm, MapRef::possible_cpus(), l);
    // Allocator overhead: a block header and alignment slack per allocation (heap.cpp), with a margin.
    std::uint64_t overhead = 64 + l.header_align + std::uint64_t(l.extra_allocs) * (128 + 64);
    return static_cast<std::size_t>(l.header_bytes + l.extra_bytes + overhead);
}

Result<MapRef> Arena::create_map(const MapSpec& spec) {
    auto norm = maps::normalize_spec(spec);
    if (!norm) return norm.error();
    const MapSpec& s = *norm;
    const maps::MapOps* ops = maps::ops_for(s.type);
    std::string what = fmt::format("create map \"{}\"", s.name);
    maps::MapLayout l;
    unsigned cpus = MapRef::possible_cpus();
    ops->layout(s, cpus, l);

    Registry* reg = s_->reg;
    maps::LockGuard lock(reg->lock);
    if (maps::find_locked(reg, s.name))
        return Error(Errc::already_exists,
                     fmt::format("{}: a map with that name already exists in the arena", what));
    auto oom = [&] {
        return Error(
            Errc::out_of_memory,
            fmt::format("{}: arena{} is out of memory (the map needs about {} bytes, {} are free)", what,
                        s_->name.empty() ? "" : " \"" + s_->name + "\"", bytes_for(s), free_bytes()));
    };
    void* mem = maps::heap_allocate(reg->heap.get(), l.header_bytes, l.header_align, nullptr, nullptr);
    if (!mem) return oom();
    std::memset(mem, 0, l.header_bytes);
    auto* h = new (mem) MapHeader();
    h->magic = maps::map_magic;
    h->type = s.type;
    h->key_size = s.key_size;
    h->value_size = s.value_size;
    h->max_entries = s.max_entries;
    h->map_flags = s.flags;
    h->numa_node = s.numa_node;
    h->btf_key_type_id = s.btf_key_type_id;
    h->btf_value_type_id = s.btf_value_type_id;
    h->spin_lock_off = s.spin_lock_off;
    h->nr_cpus = maps::is_percpu(s.type) || s.type == MapType::perf_event_array ? cpus : 1;
    h->value_stride = static_cast<std::uint32_t>(maps::round_up(s.value_size, 8));
    h->pinning = s.pinning;
    h->origin = s.origin;
    if (s.inner) {
        h->has_inner = 1;
        h->inner_type = s.inner->type;
        h->inner_key_size = s.inner->key_size;
        h->inner_value_size = s.inner->value_size;
        h->inner_max_entries = s.inner->max_entries;
        h->inner_flags = s.inner->flags;
    }
    h->refs.store(1, std::memory_order_relaxed);  // the registry's
    h->seed = 0;
    if (!(s.flags & map_flags::zero_seed) && getrandom(&h->seed, sizeof h->seed, 0) != sizeof h->seed)
        h->seed = maps::mix64(reinterpret_cast<std::uintptr_t>(h) ^ static_cast<std::uint64_t>(getpid()));
    h->registry = reg;
    std::memcpy(h->name, s.name.data(), s.name.size());
    h->name[s.name.size()] = '\0';

    if (ops->init(h, s) != 0) {
        maps::free_map(h);
        return oom();
    }
    if (!s.initial_value.empty())  // element 0 of a global-data array (normalize_spec checked the size)
        std::memcpy(maps::array_data(h, nullptr), s.initial_value.data(), s.initial_value.size());
    h->id = ++reg->next_id;
    // Publish: one store makes the complete map reachable.
    if (MapHeader* last = reg->last.get())
        last->next = h;
    else
        reg->first = h;
    reg->last = h;
    h->refs.fetch_add(1, std::memory_order_relaxed);  // the handle's, taken under the lock
    lock.unlock();
    return detail::MapAccess::adopt(s_, h);
}

Result<MapRef> Arena::map(std::string_view name) const {
    Registry* reg = s_->reg;
    maps::LockGuard lock(reg->lock);
    MapHeader* h = maps::find_locked(reg, name);
    if (!h) return Error(Errc::not_found, fmt::format("open map \"{}\": no such map in the arena", name));
    h->refs.fetch_add(1, std::memory_order_relaxed);
    lock.unlock();
    return detail::MapAccess::adopt(s_, h);
}

Result<MapRef> Arena::map_by_id(std::uint32_t id) const {
    MapHeader* h = maps::acquire_map_by_id(s_->reg, id);
    if (!h) return Error(Errc::not_found, fmt::format("open map id {}: no such map in the arena", id));
    return detail::MapAccess::adopt(s_, h);
}

std::vector<std::string> Arena::map_names() const {
    std::vector<std::string> out;
    Registry* reg = s_->reg;
    maps::LockGuard lock(reg->lock);
    for (MapHeader* m = reg->first.get(); m; m = m->next.get()) out.emplace_back(m->name);
    return out;
}

Result<void> Arena::remove_map(std::string_view name) {
    Registry* reg = s_->reg;
    MapHeader* victim = nullptr;
    {
        maps::LockGuard lock(reg->lock);
        MapHeader* prev = nullptr;
        for (MapHeader* m = reg->first.get(); m; prev = m, m = m->next.get()) {
            if (std::string_view(m->name) != name) continue;
            if (prev)
                prev->next = m->next;
            else
                reg->first = m->next;
            if (reg->last.get() == m) reg->last = prev;
            m->removed.store(1, std::memory_order_relaxed);
            victim = m;
            break;
        }
    }
    if (!victim)
        return Error(Errc::not_found, fmt::format("remove map \"{}\": no such map in the arena", name));
    maps::release_map(victim);  // the registry's reference
    return {};
}

std::size_t Arena::free_bytes() const { return maps::heap_free_bytes(s_->reg->heap.get()); }
std::size_t Arena::size() const noexcept { return s_->size; }
const std::string& Arena::name() const noexcept { return s_->name; }

}  // namespace ebpfrt
