// The bpftool skeleton of bpf/*.bpf.c, for the loader's files only, and the
// types the loader reads out of it.
#pragma once

#include <type_traits>

#include "faultprobe.skel.h"

namespace fp {

// The probe's .bss (fp_slots_hwm), mmap-ed read-only by the reader.
using Bss = std::remove_pointer_t<decltype(faultprobe::bss)>;

}  // namespace fp
