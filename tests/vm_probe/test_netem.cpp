// VM-only (label vm): the probe's retransmit count against the kernel's own.
// sch_netem drops a share of what a sender sends over a veth pair into a
// network namespace; the retransmits the probe charges to the sender must
// match the kernel's RetransSegs delta for that time (nstat's
// TcpRetransSegs: /proc/net/snmp, the sender's namespace; less the ones the
// qdisc refused, TcpExtTCPRetransFail) within 5 %.
// The host has no sch_netem; scripts/vmtest's Debian kernel has it. Without
// it the test fails: it never skips.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

int sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }

// A field of a table of /proc/net/snmp or /proc/net/netstat (a header line
// "Tcp: Name ...", then a value line "Tcp: 1 ..."), as nstat reads them.
std::optional<uint64_t> proc_net_field(const std::string& file, const std::string& table, const std::string& field) {
  std::ifstream in(file);
  std::string header, values;
  while (std::getline(in, header)) {
    if (header.rfind(table + ":", 0) != 0) continue;
    if (!std::getline(in, values)) return std::nullopt;
    std::istringstream hs(header), vs(values);
    std::string name, value;
    while (hs >> name && vs >> value)
      if (name == field) return std::strtoull(value.c_str(), nullptr, 10);
    return std::nullopt;
  }
  return std::nullopt;
}

// A veth pair into a network namespace, with netem on the host end (what the sender sends).
class LossyLink {
 public:
  explicit LossyLink(const std::string& netem) {
    const std::string id = std::to_string(getpid() % 100000);
    ns_ = "fpvm" + id;
    host_if_ = "fpva" + id;
    peer_if_ = "fpvb" + id;
    cleanup();
    for (const std::string& step :
         {"ip netns add " + ns_, "ip link add " + host_if_ + " type veth peer name " + peer_if_,
          "ip link set " + peer_if_ + " netns " + ns_, "ip addr add 10.214.1.1/30 dev " + host_if_,
          "ip link set " + host_if_ + " up", in_ns("ip addr add 10.214.1.2/30 dev " + peer_if_),
          in_ns("ip link set " + peer_if_ + " up"), in_ns("ip link set lo up"),
          "tc qdisc add dev " + host_if_ + " root netem " + netem}) {
      if (sh(step) != 0) {
        failed_ = step;
        return;
      }
    }
  }
  ~LossyLink() { cleanup(); }
  LossyLink(const LossyLink&) = delete;
  LossyLink& operator=(const LossyLink&) = delete;
  const std::string& failed() const { return failed_; }
  std::string in_ns(const std::string& cmd) const { return "ip netns exec " + ns_ + " " + cmd; }
  static const char* peer_ip() { return "10.214.1.2"; }

 private:
  void cleanup() {
    sh("ip link del " + host_if_);
    sh("ip netns del " + ns_);
  }
  std::string ns_, host_if_, peer_if_, failed_;
};

}  // namespace

TEST(VmNet, NetemLossRetransmitsMatchTheKernelsRetransSegs) {
  probe();
  ASSERT_EQ(sh("modprobe sch_netem"), 0) << "no sch_netem module: this test runs in scripts/vmtest's guest";
  ASSERT_EQ(sh("tc -V"), 0) << "this test needs iproute2's tc";
  LossyLink link("loss 3% delay 2ms");
  ASSERT_EQ(link.failed(), "") << "`" << link.failed() << "` failed";
  const uint16_t port = 48000 + uint16_t(getpid() % 1000);

  // The reader: accepts one connection, reads it to its end, closes.
  const std::string reader = link.in_ns(
      "python3 -c \"import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
      "s.bind(('" + std::string(LossyLink::peer_ip()) + "', " + std::to_string(port) +
      ")); s.listen(1); c, _ = s.accept(); exec('while c.recv(65536): pass'); c.close()\"");
  Child server([reader] {
    execl("/bin/sh", "sh", "-c", ("exec " + reader).c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  server.release();

  // The kernel counts RetransSegs before it transmits; a retransmit the
  // qdisc refuses is also TCPRetransFail, and the probe counts only those
  // that went out (the tracepoint's err, or its absence before 6.12ish).
  auto retrans_segs = [] { return proc_net_field("/proc/net/snmp", "Tcp", "RetransSegs"); };
  auto retrans_fail = [] { return proc_net_field("/proc/net/netstat", "TcpExt", "TCPRetransFail"); };
  const std::optional<uint64_t> before = retrans_segs(), fail_before = retrans_fail();
  ASSERT_TRUE(before) << "no Tcp RetransSegs in /proc/net/snmp";
  ASSERT_TRUE(fail_before) << "no TcpExt TCPRetransFail in /proc/net/netstat";
  // The sender: 16 MiB, then its half closed, then waits for the reader's
  // close: every segment it sent was acknowledged before it exits, so no
  // retransmit of its socket comes after the probe's exit record.
  constexpr size_t kBytes = 16u << 20;
  Child sender([port] {
    int fd = -1;
    for (int i = 0; i < 500 && fd < 0; ++i) {  // until the reader listens (5 s)
      fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      inet_pton(AF_INET, LossyLink::peer_ip(), &a.sin_addr);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        fd = -1;
        usleep(10'000);
      }
    }
    if (fd < 0) return 2;
    static char buf[65536];
    std::memset(buf, 'x', sizeof buf);
    for (size_t sent = 0; sent < kBytes;) {
      const ssize_t n = send(fd, buf, std::min(sizeof buf, kBytes - sent), 0);
      if (n <= 0) return 3;
      sent += size_t(n);
    }
    shutdown(fd, SHUT_WR);
    while (recv(fd, buf, sizeof buf, 0) > 0) {
    }
    close(fd);
    return 0;
  });
  const uint32_t pid = uint32_t(sender.pid());
  sender.release();
  const int status = sender.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the sender failed: status " << status;
  auto ex = wait_exit(pid, 5s);
  ASSERT_TRUE(ex) << "no exit record of the sender";
  const std::optional<uint64_t> after = retrans_segs(), fail_after = retrans_fail();
  ASSERT_TRUE(after && fail_after);
  server.wait();

  const uint64_t failed = *fail_after - *fail_before;
  const uint64_t kernel = *after - *before - std::min(failed, *after - *before);
  const uint64_t probed = ex->final.net_retransmits;
  RecordProperty("kernel_retrans_segs", std::to_string(kernel));
  RecordProperty("kernel_retrans_fail", std::to_string(failed));
  RecordProperty("probe_retransmits", std::to_string(probed));
  RecordProperty("segs_out", std::to_string(ex->final.net_segs_out));
  std::cout << "retransmitted segments: probe " << probed << ", kernel RetransSegs delta " << kernel + failed
            << " of which TCPRetransFail " << failed << "; segments sent " << ex->final.net_segs_out << "\n";
  ASSERT_GE(kernel, 20u) << "3 % loss on 16 MiB retransmitted too little to compare";
  const double diff = std::fabs(double(probed) - double(kernel)) / double(kernel);
  EXPECT_LE(diff, 0.05) << "probe " << probed << " vs kernel RetransSegs - TCPRetransFail delta " << kernel;
  EXPECT_GE(ex->final.net_segs_out, probed) << "retransmits are segments sent too";
}
