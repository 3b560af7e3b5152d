#!/usr/bin/env bash
# verify_corpus.sh EBPFRT CORPUS_DIR
# `ebpfrt verify` over the shared corpus:
#  1. where INDEX.tsv records what the kernel's verifier said (column kernel_loadall: "accept", or
#     "kernel-verifier-reject", possibly after forcing a program type for an unknown section name),
#     ebpfrt's verdict is the same (with the same forced type), except for the differences listed below;
#  2. every file of invalid/ gives exit status 1, one line per program or one error line;
#  3. no file makes it die of a signal or run over 60 s.
set -u
cli=$1 corpus=$2
if [ ! -f "$corpus/INDEX.tsv" ]; then
    echo "skipped: no corpus at $corpus (set -DEBPFRT_SHARED_DIR)"
    exit 77
fi

# Known differences from the kernel's verdict, with the reason.
known() {
    case "$1" in
    ebpf-samples/build/bpf2bpf.o)
        # The kernel saw this PREVAIL object through libbpf, which does not link subprograms of a
        # section it does not know ("test"): its error names a mem_or_null it made up. ebpfrt links
        # add1/add2 and every access is in bounds.
        echo "kernel rejects after failing to link subprograms" ;;
    ebpf-samples/new_linux/tracex7_kern.o)
        # bpf_override_return needs CONFIG_BPF_KPROBE_OVERRIDE, which this kernel lacks; ebpfrt
        # implements it for its own probes.
        echo "kernel built without CONFIG_BPF_KPROBE_OVERRIDE" ;;
    *) return 1 ;;
    esac
}

fail=0 agree=0 differ_known=0 invalid=0
# Tab is whitespace to `read`, which would merge empty columns: cut the two columns out first.
while IFS='|' read -r path kernel; do
    [ "$path" = path ] && continue
    case "$path" in
    */invalid/*)
        out=$(timeout 60 "$cli" verify "$corpus/$path" 2>&1)
        rc=$?
        bad=$(printf '%s\n' "$out" | grep -Evc '^(ebpfrt: |[^ ]+: rejected: )')
        if [ "$rc" -ne 1 ] || [ "$bad" -ne 0 ]; then
            echo "FAIL $path: exit $rc, $bad unexpected lines: $out"
            fail=$((fail + 1))
        else
            invalid=$((invalid + 1))
        fi
        continue ;;
    esac
    type=()
    case "$kernel" in
    *"type socket'"*) type=(--type socket_filter) ;;
    *"type xdp'"*) type=(--type xdp) ;;
    *"type cgroup/sock'"*) type=(--type cgroup_sock) ;;
    *"type cgroup/bind4'"*) type=(--type cgroup_sock_addr) ;;
    esac
    case "$kernel" in
    *"forced: accept" | accept) want=0 ;;
    *kernel-verifier-reject*) want=1 ;;
    *)
        # No kernel verdict: only robustness (an answer, not a signal or a hang).
        timeout 60 "$cli" verify "$corpus/$path" >/dev/null 2>&1
        rc=$?
        if [ "$rc" -gt 1 ]; then
            echo "FAIL $path: exit $rc (signal or timeout)"
            fail=$((fail + 1))
        fi
        continue ;;
    esac
    out=$(timeout 60 "$cli" verify "$corpus/$path" "${type[@]}" 2>&1)
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        agree=$((agree + 1))
    elif why=$(known "$path"); then
        echo "known difference: $path (kernel exit $want, ebpfrt $rc): $why"
        differ_known=$((differ_known + 1))
    else
        echo "FAIL $path ${type[*]}: kernel says $kernel, ebpfrt exit $rc:"
        printf '%s\n' "$out" | grep -v ': accepted' | head -3
        fail=$((fail + 1))
    fi
done < <(awk -F'\t' '{print $1 "|" $19}' "$corpus/INDEX.tsv")
echo "kernel verdicts: $agree agree, $differ_known known differences; invalid/: $invalid rejected; $fail failed"
[ "$fail" -eq 0 ] && [ "$agree" -ge 40 ] && [ "$invalid" -eq 8 ]
