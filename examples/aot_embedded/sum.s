# Sums the little-endian u32 values of the context (r1 = its address, r2 = its size), then hands the
# sum to host helper 100 ("scale") and returns what it gives back.
    mov %r0, 0
    mov %r3, %r1
    add %r3, %r2
loop:
    jge %r1, %r3, done
    ldxw %r4, [%r1+0]
    add %r0, %r4
    add %r1, 4
    ja loop
done:
    mov %r1, %r0
    call 100
    exit
