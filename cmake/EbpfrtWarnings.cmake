# Warnings for our own targets only (never global flags, never a PRIVATE INTERFACE target, which would
# break the export of a static ebpfrt).
function(ebpfrt_warnings target)
    if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                 -Wno-missing-field-initializers)
    endif()
endfunction()
