// faultprobe status [--json] [--socket PATH]: what the running daemon has
// attached, how full its maps are, what it dropped, its rules, policies and
// services, the actions it took, whether CRIU works here, syslog and metrics.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "server/text.h"
#include "util/text.h"

namespace fp {

int run_status(const StatusOptions& opts) {
  auto client = connect_daemon(opts.socket);
  if (!client) return 1;
  auto reply = client->request({{"cmd", "status"}}, std::chrono::seconds(10));
  if (!reply) {
    std::fprintf(stderr, "faultprobe: %s\n", reply.error().message.c_str());
    return 1;
  }
  const nlohmann::json& status = (*reply)["status"];
  // The text form goes through display_text() line by line (server/text.cpp).
  std::string out = opts.json ? safe_dump(status) + "\n" : status_to_text(status);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace fp
