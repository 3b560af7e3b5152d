#!/usr/bin/env bash
# inspect_corpus.sh EBPFRT CORPUS_DIR
set -u
cli=$1 corpus=$2
if [ ! -f "$corpus/INDEX.tsv" ]; then
    echo "skipped: no corpus at $corpus (set -DEBPFRT_SHARED_DIR)"
    exit 77
fi
# Two files of invalid/ are well-formed ELF with unsafe code (a number read from the context is
# dereferenced; bpf_clone_redirect outside a socket-buffer program): `inspect` parses them (exit 0),
# and `ebpfrt verify` rejects them: exit 1, one line per program, each a rejection.
fail=0 n=0
while IFS=$'\t' read -r path _; do
    [ "$path" = path ] && continue
    n=$((n + 1))
    err=$("$cli" inspect "$corpus/$path" 2>&1 >/dev/null)
    rc=$?
    case "$path" in
    */invalid/dac31099c3bb5b6395908c82cc8540e77a6a1849 | */invalid/timeout-29db93548c671165313b314d4f83a3eefa24df37)
        out=$("$cli" verify "$corpus/$path" 2>&1)
        vrc=$?
        bad=$(printf '%s\n' "$out" | grep -vc ': rejected: verify ')
        if [ "$rc" -ne 0 ] || [ "$vrc" -ne 1 ] || [ "$bad" -ne 0 ]; then
            echo "FAIL $path: inspect exit $rc, verify exit $vrc, $bad lines that are not rejections: $out"
            fail=$((fail + 1))
        fi ;;
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
