// Every object of the shared corpus (../shared/corpus, described by INDEX.tsv): the valid ones parse
// and relocate with the program and map counts, map names/types and program sections that INDEX.tsv
// records; the broken ones in invalid/ are errors (of the ELF parser, or of the verifier for the two whose
// ELF is well formed), never crashes.

#include <ebpfrt/elf.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/verifier.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ebpfrt {
namespace {

const std::string corpus_dir = std::string(EBPFRT_SHARED_DIR) + "/corpus";

struct Entry {
    std::string path;
    std::size_t n_progs = 0, n_maps = 0;
    std::string prog_sections, maps;
    bool invalid = false;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur, sep)) out.push_back(cur);
    if (!s.empty() && s.back() == sep) out.push_back("");
    return out;
}

std::vector<Entry> read_index() {
    std::vector<Entry> out;
    std::ifstream f(corpus_dir + "/INDEX.tsv");
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
        auto c = split(line, '\t');
        if (c.size() < 9) continue;
        Entry e;
        e.path = c[0];
        e.invalid = e.path.find("/invalid/") != std::string::npos;
        e.n_progs = c[4].empty() ? 0 : std::stoul(c[4]);
        e.prog_sections = c[5];
        e.n_maps = c[6].empty() ? 0 : std::stoul(c[6]);
        e.maps = c[7];
        out.push_back(e);
    }
    return out;
}

class Corpus : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(corpus_dir + "/INDEX.tsv"))
            GTEST_SKIP() << "no corpus at " << corpus_dir << " (set -DEBPFRT_SHARED_DIR)";
        entries_ = read_index();
        ASSERT_GT(entries_.size(), 100u);
    }
    std::vector<Entry> entries_;
};

TEST_F(Corpus, ValidObjectsMatchTheIndex) {
    std::size_t checked = 0;
    for (const auto& e : entries_) {
        if (e.invalid) continue;
        SCOPED_TRACE(e.path);
        auto obj = Object::open(corpus_dir + "/" + e.path);
        ASSERT_TRUE(obj) << obj.error().message();
        EXPECT_EQ(obj->programs().size(), e.n_progs);

        // Maps by name and type, as INDEX.tsv lists them ("name:type,...").
        std::multiset<std::string> want, got;
        if (!e.maps.empty())
            for (const auto& m : split(e.maps, ',')) want.insert(m);
        for (const auto& m : obj->maps())
            if (m.origin == MapOrigin::btf_maps || m.origin == MapOrigin::legacy)
                got.insert(m.name + ":" + to_string(m.type));
        EXPECT_EQ(got.size(), e.n_maps);
        EXPECT_EQ(got, want);

        // The sections programs come from.
        std::set<std::string> want_secs, got_secs;
        if (!e.prog_sections.empty())
            for (const auto& s : split(e.prog_sections, ',')) want_secs.insert(s);
        for (const auto& p : obj->programs()) got_secs.insert(p.section);
        EXPECT_EQ(got_secs, want_secs);

        for (const auto& p : obj->programs()) {
            auto ok = isa::validate(p.insns);
            EXPECT_TRUE(ok) << p.name << ": " << ok.error().message();
            // Every map/global reference was turned into an index the loader understands.
            for (std::size_t i = 0; i < p.insns.size(); ++i) {
                const Insn& in = p.insns[i];
                if (in.opcode != isa::opcode_lddw) continue;
                if (in.src == isa::pseudo_map_idx || in.src == isa::pseudo_map_idx_value) {
                    EXPECT_LT(static_cast<std::size_t>(in.imm), obj->maps().size()) << p.name << " insn " << i;
                }
                ++i;
            }
        }
        ++checked;
    }
    EXPECT_EQ(checked, 144u);
}

TEST_F(Corpus, InvalidObjectsAreOneLineErrors) {
    std::size_t checked = 0;
    for (const auto& e : entries_) {
        if (!e.invalid) continue;
        SCOPED_TRACE(e.path);
        auto obj = Object::open(corpus_dir + "/" + e.path);
        std::string message;
        if (!obj) {
            message = obj.error().message();
            EXPECT_EQ(obj.error().code(), Errc::bad_elf);
        } else {
            // Well-formed ELF whose code is unsafe (PREVAIL's dac31099... dereferences a number read from
            // its context; timeout-29db... calls bpf_clone_redirect outside a socket-buffer program):
            // the verifier rejects it, with a one-line message.
            for (const auto& p : obj->programs()) {
                auto ok = verify(p.name, p.insns, {.type = p.type, .maps = obj->maps()});
                if (!ok && message.empty()) {
                    message = ok.error().message();
                    EXPECT_TRUE(ok.error().code() == Errc::verifier_rejected || ok.error().code() == Errc::invalid_argument)
                        << message;
                }
            }
        }
        EXPECT_FALSE(message.empty()) << "accepted a broken object";
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
        ++checked;
    }
    EXPECT_EQ(checked, 8u);
}

}  // namespace
}  // namespace ebpfrt
