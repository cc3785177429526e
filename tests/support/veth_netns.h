// A veth pair into a network namespace, for the BPF and e2e network tests:
// the host end 10.213.N.1/30, the peer 10.213.N.2/30 in namespace
// fptestPID, both up; torn down (namespace and pair) on destruction. Needs
// root and iproute2's ip.
//
// What the tests do with it: a TCP sender in the host namespace and a
// reader in the other, then the peer goes away while the sender sends (its
// address is flushed: what reaches it is dropped, nothing answers) and the
// sender's retransmit timer (softirq) retransmits. (Setting the peer's link
// down instead turns the host end's carrier off, and the kernel fails the
// retransmits locally (the qdisc drops them): no segment goes out.) Or the
// peer's address is flushed before anything was sent: its neighbour entry
// never resolves, and what the host sends it waits in the neighbour queue
// and is dropped there (NEIGH_QUEUEFULL, NEIGH_FAILED).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace fp::test_support {

class NetNs {
 public:
  NetNs() {
    const std::string id = std::to_string(getpid() % 100000);
    ns_ = "fptest" + id;
    host_if_ = "fpa" + id;
    peer_if_ = "fpb" + id;
    const int sub = getpid() % 250 + 1;
    host_ip_ = "10.213." + std::to_string(sub) + ".1";
    peer_ip_ = "10.213." + std::to_string(sub) + ".2";
    cleanup();
    for (const std::string& step :
         {"ip netns add " + ns_, "ip link add " + host_if_ + " type veth peer name " + peer_if_,
          "ip link set " + peer_if_ + " netns " + ns_, "ip addr add " + host_ip_ + "/30 dev " + host_if_,
          "ip link set " + host_if_ + " up", in_ns("ip addr add " + peer_ip_ + "/30 dev " + peer_if_),
          in_ns("ip link set " + peer_if_ + " up"), in_ns("ip link set lo up")}) {
      if (quiet(step) != 0) {
        failed_ = step;
        return;
      }
    }
    ok_ = true;
  }
  ~NetNs() { cleanup(); }
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  bool ok() const { return ok_; }
  // The step that failed when !ok().
  const std::string& failed() const { return failed_; }
  std::string in_ns(const std::string& cmd) const { return "ip netns exec " + ns_ + " " + cmd; }
  // The peer's address flushed: nothing answers for it any more.
  bool peer_gone() const { return quiet(in_ns("ip addr flush dev " + peer_if_)) == 0; }
  // The host end queues at most one packet per unresolved neighbour: each
  // new one pushes the one before out (dropped, NEIGH_QUEUEFULL).
  bool tiny_neighbour_queue() const {
    std::ofstream f("/proc/sys/net/ipv4/neigh/" + host_if_ + "/unres_qlen_bytes");
    f << "1\n";
    f.flush();
    return bool(f);
  }
  const std::string& peer_ip() const { return peer_ip_; }
  const std::string& host_if() const { return host_if_; }

 private:
  static int quiet(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
  void cleanup() const {
    quiet("ip netns del " + ns_);  // takes the peer end, and with it the pair
    quiet("ip link del " + host_if_);
  }
  std::string ns_, host_if_, peer_if_, host_ip_, peer_ip_, failed_;
  bool ok_ = false;
};

}  // namespace fp::test_support
