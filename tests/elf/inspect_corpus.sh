#!/usr/bin/env bash
# inspect_corpus.sh EBPFRT CORPUS_DIR
set -u
cli=$1 corpus=$2
if [ ! -f "$corpus/INDEX.tsv" ]; then
    echo "skipped: no corpus at $corpus (set -DEBPFRT_SHARED_DIR)"
    exit 77
fi
# Broken in ways only a data-flow verifier sees (a possibly-null map value dereferenced; a helper
# the program type may not call): ebpfrt has no verifier yet, so `inspect` accepts them. Listed here,
# and in tests/elf/corpus_test.cpp, until the verifier lands.
fail=0 n=0
while IFS=$'\t' read -r path _; do
    [ "$path" = path ] && continue
    n=$((n + 1))
    err=$("$cli" inspect "$corpus/$path" 2>&1 >/dev/null)
    rc=$?
    case "$path" in
    */invalid/dac31099c3bb5b6395908c82cc8540e77a6a1849 | */invalid/timeout-29db93548c671165313b314d4f83a3eefa24df37)
        echo "known: $path needs the verifier (inspect exit $rc)" ;;
    */invalid/*)
        lines=$(printf '%s' "$err" | grep -c '')
        if [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ]; then
            echo "FAIL $path: exit $rc, $lines stderr lines: $err"
            fail=$((fail + 1))
        fi ;;
    *)
        if [ "$rc" -ne 0 ]; then
            echo "FAIL $path: exit $rc: $err"
            fail=$((fail + 1))
        fi ;;
    esac
done < "$corpus/INDEX.tsv"
echo "$((n - fail)) passed, $fail failed"
[ "$fail" -eq 0 ]
