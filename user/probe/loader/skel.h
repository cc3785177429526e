// The bpftool skeleton of bpf/*.bpf.c, for the loader's files only, and the
// types the loader reads out of it.
#pragma once

#include <type_traits>

// the skeleton names the probe's .bss types (fp_seed_stats) without declaring them
#include "faultprobe/abi.h"
#include "faultprobe.skel.h"

namespace fp {

// The probe's .bss (fp_slots_hwm, fp_seed_stats), mmap-ed read-only by the reader.
using Bss = std::remove_pointer_t<decltype(faultprobe::bss)>;

}  // namespace fp
