#pragma once
/// \file
/// Umbrella header: everything a host application needs from ebpfrt.

#include <ebpfrt/btf.hpp>
#include <ebpfrt/helpers.hpp>
#include <ebpfrt/isa.hpp>
#include <ebpfrt/result.hpp>
#include <ebpfrt/vm.hpp>
