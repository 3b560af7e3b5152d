#pragma once
/// \file
/// Umbrella header: everything a host application needs from ebpfrt.

#include <ebpfrt/aot.hpp>
#include <ebpfrt/btf.hpp>
#include <ebpfrt/elf.hpp>
#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/jit.hpp>
#include <ebpfrt/maps.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/runtime.hpp>
#include <ebpfrt/verifier.hpp>
#include <ebpfrt/vm.hpp>
