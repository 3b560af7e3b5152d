#include <ebpfrt/helpers.hpp>

#include <fmt/format.h>

namespace ebpfrt {
namespace {

Result<void> check_proto(std::string_view what, std::uint32_t id, const HelperProto& proto) {
    if (proto.fn == nullptr)
        return Error(Errc::invalid_argument, fmt::format("register {} {} (\"{}\"): no function", what, id,
                                                         proto.name));
    for (std::size_t i = 0; i < proto.args.size(); ++i) {
        const bool after_mem = i > 0 && (proto.args[i - 1] == Arg::mem || proto.args[i - 1] == Arg::mem_ro);
        if (after_mem && proto.args[i] != Arg::size)
            return Error(Errc::invalid_argument,
                         fmt::format("register {} {} (\"{}\"): argument {} must be the size of argument {}", what,
                                     id, proto.name, i + 1, i));
        if (!after_mem && proto.args[i] == Arg::size)
            return Error(Errc::invalid_argument,
                         fmt::format("register {} {} (\"{}\"): argument {} is a size but follows no memory argument",
                                     what, id, proto.name, i + 1));
    }
    return {};
}

const HelperProto* find_in(const std::map<std::uint32_t, HelperProto>& table, std::uint32_t id) noexcept {
    auto it = table.find(id);
    return it == table.end() ? nullptr : &it->second;
}

}  // namespace

Result<void> HelperTable::add(std::uint32_t id, HelperProto proto) {
    if (helpers_.count(id) != 0)
        return Error(Errc::already_exists, fmt::format("register helper {} (\"{}\"): id already taken by \"{}\"",
                                                       id, proto.name, helpers_.at(id).name));
    return set(id, std::move(proto));
}

Result<void> HelperTable::set(std::uint32_t id, HelperProto proto) {
    if (auto ok = check_proto("helper", id, proto); !ok) return ok;
    helpers_.insert_or_assign(id, std::move(proto));
    return {};
}

const HelperProto* HelperTable::find(std::uint32_t id) const noexcept { return find_in(helpers_, id); }

Result<void> HelperTable::add_kfunc(std::uint32_t btf_id, HelperProto proto) {
    if (kfuncs_.count(btf_id) != 0)
        return Error(Errc::already_exists,
                     fmt::format("register kfunc {} (\"{}\"): BTF id already taken", btf_id, proto.name));
    if (auto ok = check_proto("kfunc", btf_id, proto); !ok) return ok;
    kfuncs_.emplace(btf_id, std::move(proto));
    return {};
}

const HelperProto* HelperTable::find_kfunc(std::uint32_t btf_id) const noexcept { return find_in(kfuncs_, btf_id); }

}  // namespace ebpfrt
