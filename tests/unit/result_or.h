// A Result's value or a fallback, for tests that poll /proc and treat a
// vanished file as "not yet".
#pragma once

#include "util/result.h"

namespace fp::test {

template <class T>
T or_else(const Result<T>& r, T fallback) {
  return r.ok() ? r.value() : fallback;
}

}  // namespace fp::test
