// A CommandRunner that runs nothing: it records each argv and answers with a
// set exit code and output (or a failure), for SystemdControl and whatever
// drives it.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "act/systemd.h"

namespace fp::test {

class FakeRunner : public CommandRunner {
 public:
  using Argv = std::vector<std::string>;
  Result<int> run(const Argv& argv, std::chrono::milliseconds timeout, std::string* output) override {
    calls.push_back(argv);
    last_timeout = timeout;
    if (script) return script(argv, output);
    if (output) *output = output_;
    if (fail) return Error{ETIMEDOUT, "timed out"};
    return exit_code;
  }
  // When set, answers every call instead of the fixed fields below.
  std::function<Result<int>(const Argv&, std::string*)> script;
  std::vector<Argv> calls;
  std::chrono::milliseconds last_timeout{0};
  int exit_code = 0;
  std::string output_;
  bool fail = false;
};

}  // namespace fp::test
