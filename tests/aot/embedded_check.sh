#!/usr/bin/env bash
# embedded_check.sh BINARY: runs examples/aot_embedded as built against an ebpfrt without LLVM, checks
# its result, and checks that it does not link libLLVM (the point of loading AOT objects ourselves).
set -eu
bin=$1
out=$("$bin")
echo "$out"
case "$out" in
*"aot sum = 550"*"built without LLVM"*) ;;
*) echo "FAIL: unexpected output from $bin"; exit 1 ;;
esac
deps=$(ldd "$bin")
echo "$deps"
if grep -qi 'libLLVM' <<<"$deps"; then
    echo "FAIL: $bin links libLLVM"
    exit 1
fi
echo "ok: $bin runs its AOT program without libLLVM"
