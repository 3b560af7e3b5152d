# Compiling BPF C sources at build time with clang-19 (-target bpf), so that no unexplained binaries
# live in git.
#
#   ebpfrt_add_bpf_object(NAME SOURCE [CFLAGS ...])
#     builds ${CMAKE_CURRENT_BINARY_DIR}/NAME.bpf.o and a target NAME_bpf; sets NAME_BPF_OBJECT.
#   ebpfrt_add_bpf_text(NAME SOURCE [CFLAGS ...])
#     as above, plus NAME.bin: the raw bytes of .text (for self-contained programs without relocations,
#     runnable as raw bytecode); sets NAME_BPF_TEXT.
find_program(EBPFRT_BPF_CLANG NAMES clang-19 PATHS /usr/lib/llvm-19/bin
             DOC "clang able to emit -target bpf -mcpu=v4 code")
find_program(EBPFRT_LLVM_OBJCOPY NAMES llvm-objcopy-19 llvm-objcopy PATHS /usr/lib/llvm-19/bin)
if(NOT EBPFRT_BPF_CLANG OR NOT EBPFRT_LLVM_OBJCOPY)
    message(FATAL_ERROR "clang-19 and llvm-objcopy-19 are needed to build BPF test programs "
                        "(run scripts/install-deps.sh, or configure with -DEBPFRT_BUILD_TESTS=OFF "
                        "-DEBPFRT_BUILD_EXAMPLES=OFF -DEBPFRT_BUILD_BENCH=OFF)")
endif()

# -I for <asm/types.h>, which <linux/types.h> includes, in the multiarch include directory.
set(EBPFRT_BPF_CFLAGS -target bpf -mcpu=v4 -O2 -Wall -Werror -fno-stack-protector
    -I${PROJECT_SOURCE_DIR}/tests/bpf/include -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE})

function(ebpfrt_add_bpf_object name source)
    cmake_parse_arguments(ARG "" "" "CFLAGS" ${ARGN})
    get_filename_component(src "${source}" ABSOLUTE)
    set(out "${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o")
    add_custom_command(OUTPUT "${out}"
        COMMAND "${EBPFRT_BPF_CLANG}" ${EBPFRT_BPF_CFLAGS} ${ARG_CFLAGS} -c "${src}" -o "${out}"
        DEPENDS "${src}" IMPLICIT_DEPENDS C "${src}"
        COMMENT "BPF ${name}.bpf.o" VERBATIM)
    add_custom_target(${name}_bpf ALL DEPENDS "${out}")
    set(${name}_BPF_OBJECT "${out}" PARENT_SCOPE)
endfunction()

function(ebpfrt_add_bpf_text name source)
    ebpfrt_add_bpf_object(${name} ${source} ${ARGN})
    set(obj "${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o")
    set(out "${CMAKE_CURRENT_BINARY_DIR}/${name}.bin")
    add_custom_command(OUTPUT "${out}"
        COMMAND "${EBPFRT_LLVM_OBJCOPY}" -O binary --only-section=.text "${obj}" "${out}"
        DEPENDS "${obj}" COMMENT "BPF ${name}.bin (.text)" VERBATIM)
    add_custom_target(${name}_bin ALL DEPENDS "${out}")
    add_dependencies(${name}_bin ${name}_bpf)
    set(${name}_BPF_OBJECT "${obj}" PARENT_SCOPE)
    set(${name}_BPF_TEXT "${out}" PARENT_SCOPE)
endfunction()
