#pragma once
// The front door's limits and counters (SPEC §7): how many clients may be inside at once, and
// which addresses are locked out after too many failed logins. Shared by every I/O thread of
// the front door; every method is thread-safe.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace hearth::web {

// Monotonic counters and gauges; read by the status and /metrics without locking.
struct DoorCounters {
  std::atomic<int64_t> connectionsMqtts{0};  // gauge: piped mqtts:// clients
  std::atomic<int64_t> connectionsWss{0};    // gauge: piped wss:// clients
  std::atomic<int64_t> connectionsHttps{0};  // gauge: connections of the https:// listener
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> refusedFull{0};      // max_connections reached
  std::atomic<int64_t> refusedLocked{0};    // the address is locked out
  std::atomic<int64_t> tlsFailures{0};      // handshakes that failed (garbage, plain HTTP, ...)
  std::atomic<int64_t> connectTimeouts{0};  // no complete TLS handshake + CONNECT in time
  std::atomic<int64_t> oversize{0};         // packet or frame over the limit
  std::atomic<int64_t> protocolErrors{0};   // not MQTT, bad subprotocol, not a WebSocket
  std::atomic<int64_t> loginsOk{0};
  std::atomic<int64_t> loginsFailed{0};
  std::atomic<int64_t> lockouts{0};  // times an address got locked out
  std::atomic<int64_t> brokerUnreachable{0};
  std::atomic<int64_t> bytesFromClients{0};
  std::atomic<int64_t> bytesToClients{0};
  std::atomic<int64_t> httpRequests{0};
  std::atomic<int64_t> httpNotFound{0};
  std::atomic<int64_t> httpRefused{0};  // 400 / 405 (bad method, escaping path)
};

class DoorGuard {
 public:
  using Clock = std::chrono::steady_clock;

  DoorGuard(int maxConnections, int maxFailedLogins, std::chrono::milliseconds failWindow,
            std::chrono::milliseconds lockoutFor)
      : maxConnections_(maxConnections),
        maxFailedLogins_(maxFailedLogins),
        failWindow_(failWindow),
        lockoutFor_(lockoutFor) {}

  // A connection from address wants in. Returns false (and counts why) when the door is full
  // or the address is locked out; on true the caller must call leave() exactly once.
  bool enter(const std::string& address);
  void leave();

  // The broker's CONNACK for a client from address: ok = accepted, else a failed login.
  void loginResult(const std::string& address, bool ok);

  bool lockedOut(const std::string& address);
  int64_t inside() const { return inside_.load(); }
  // Addresses locked out right now.
  int64_t lockedAddresses();

  DoorCounters& counters() { return counters_; }
  int maxConnections() const { return maxConnections_; }

 private:
  struct Failures {
    std::deque<Clock::time_point> times;  // failed logins within the window
    Clock::time_point lockedUntil{};
  };
  bool lockedLocked(const std::string& address, Clock::time_point now);
  void prune(Clock::time_point now);

  const int maxConnections_;
  const int maxFailedLogins_;
  const std::chrono::milliseconds failWindow_;
  const std::chrono::milliseconds lockoutFor_;
  std::atomic<int64_t> inside_{0};
  DoorCounters counters_;
  std::mutex mutex_;
  std::map<std::string, Failures> failures_;
  Clock::time_point lastPrune_{};
};

}  // namespace hearth::web
