#!/usr/bin/env bash
# Installs, from Debian 12's archive, exactly the packages that ebpfrt's build, tests, examples and
# benchmarks need. Idempotent: does nothing (and no apt-get update) when everything is present.
set -euo pipefail

packages=(
    # build
    cmake ninja-build make g++ pkg-config
    libfmt-dev libelf-dev libboost-dev
    # BPF C programs in tests/, examples/ and bench/ (clang -target bpf -mcpu=v4, llvm-objcopy),
    # libbpf's bpf_helpers.h, and libFuzzer for tests/fuzz (make fuzz)
    clang-19 llvm-19 libclang-rt-19-dev libbpf-dev
    # the JIT engine (LLVM ORC, opaque pointers)
    llvm-19-dev
    # tests and benchmarks
    libgtest-dev libbenchmark-dev python3
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
