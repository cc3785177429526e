// What this kernel offers the probe, asked of its BTF, tracefs and the BPF
// helper probe: the facts plan_attach() (probe/attach.h) chooses from. The
// privilege and BTF checks and the slot sizing of probe.h live here too.
#pragma once

#include "probe/attach.h"
#include "util/result.h"

namespace fp {

Result<KernelOffer> read_kernel_offer();

}  // namespace fp
