// The running kernel's names of its error detectors (enum error_detector,
// error_report:error_report_end's first argument), read from its BTF:
// kernel_error's evidence names a report's detector with them.
#pragma once

#include "detect/kernel_error.h"

namespace fp {

// Empty where the kernel's BTF cannot be read or has no such enum (then
// every detector shows as "detector#N").
ErrorDetectorNames kernel_error_detector_names();

}  // namespace fp
