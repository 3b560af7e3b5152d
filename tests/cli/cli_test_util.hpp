#pragma once
// Runs a command line through /bin/sh and captures its stdout, stderr and exit status.

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace ebpfrt::test {

struct Output {
    int status = -1;  ///< exit status, or 128 + signal
    std::string out, err;
};

inline std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

inline std::string temp_path(const std::string& name) {
    return "/tmp/ebpfrt-test-" + std::to_string(::getpid()) + "-" + name;
}

inline void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

/// Runs `cmd` (shell syntax) with stdin from `input`.
inline Output run(const std::string& cmd, const std::string& input = "") {
    const std::string in = temp_path("stdin"), out = temp_path("stdout"), err = temp_path("stderr");
    write_text(in, input);
    const int rc = std::system((cmd + " <" + in + " >" + out + " 2>" + err).c_str());
    Output o;
    o.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
    o.out = slurp(out);
    o.err = slurp(err);
    std::remove(in.c_str());
    std::remove(out.c_str());
    std::remove(err.c_str());
    return o;
}

}  // namespace ebpfrt::test
