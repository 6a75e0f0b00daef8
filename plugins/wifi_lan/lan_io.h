#pragma once
// The wifi_lan plugin's sockets and the one I/O thread that reads them (POCO Net).
//
//   group socket   bound to <group>:<port>, joined on every chosen interface: announcements,
//                  state reports, resets (and our own probes, looped back, which are ignored)
//   unicast socket bound to 0.0.0.0:<listen_port>: sends probes (per interface), control
//                  requests and provisioning acks; receives probe answers and control replies
//   SSDP sockets   239.255.255.250:1900 joined likewise (NOTIFY), and an ephemeral one that
//                  sends M-SEARCH and receives the unicast answers
//
// Threading: open() and close() run on the hub loop; the handlers run on the I/O thread, which
// never touches plugin state (the plugin's handlers decode and post()). sendTo() is called from
// the hub loop while the I/O thread may be receiving on the same socket; a UDP send and receive
// on one descriptor from two threads are independent system calls, and neither path mutates the
// POCO socket object.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hearth/sdk/context.h"

namespace hearth::wifi_lan {

struct LanIoConfig {
  std::vector<std::string> interfaces;  // empty = every up, non-loopback IPv4 multicast interface
  std::string group = "239.255.72.1";
  uint16_t port = 47800;
  uint16_t listenPort = 0;  // 0 = any free port
  std::chrono::milliseconds probePeriod{30000};
  bool ssdp = true;
  std::chrono::milliseconds ssdpPeriod{60000};
};

// Called on the I/O thread.
struct LanIoHandlers {
  // A hearth LAN datagram (possibly truncated to kMaxDatagramBytes + 1 bytes, so oversize is
  // still recognisable) from host:port.
  std::function<void(std::string datagram, std::string host, uint16_t port)> onLan;
  // An SSDP datagram (NOTIFY or M-SEARCH answer) from host.
  std::function<void(std::string datagram, std::string host)> onSsdp;
  // The set of interfaces joined changed (names).
  std::function<void(std::vector<std::string> interfaces)> onInterfaces;
};

// The seam between the plugin logic and the network, so unit tests can run the plugin without
// sockets.
class LanIo {
 public:
  virtual ~LanIo() = default;
  // Binds the sockets and starts the I/O thread. Fails (and leaves nothing open) if a socket
  // cannot be bound or the group is not an IPv4 multicast address.
  virtual Status open(const LanIoConfig& config, LanIoHandlers handlers) = 0;
  // Stops and joins the I/O thread and closes the sockets. Idempotent.
  virtual void close() = 0;
  // Sends one unicast datagram from the unicast socket. Failures are logged, not returned: UDP
  // is lossy anyway and the caller retries where it matters.
  virtual void sendTo(const std::string& datagram, const std::string& host, uint16_t port) = 0;
  // The unicast socket's port (after open).
  virtual uint16_t localPort() const = 0;
};

// The production LanIo.
std::unique_ptr<LanIo> makePocoLanIo(Logger& logger);

// Whether group is an IPv4 multicast address (multicast_group); INVALID_REQUEST saying why not.
Status checkGroup(const std::string& group);

}  // namespace hearth::wifi_lan
