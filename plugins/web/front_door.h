#pragma once
// The front door's listeners (SPEC §7): mqtts:// and https:// (static files and wss:///mqtt)
// on each listen address, and the plain-HTTP /metrics listener. Connections are served on the
// front door's own worker threads (POCO TCPServer / HTTPServer over one ThreadPool), one
// thread per connection, never on the hub loop. start() and stop() run on the hub loop.

#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "connection_registry.h"
#include "door_connections.h"
#include "door_guard.h"
#include "door_metrics.h"
#include "hearth/status.h"
#include "server_tls.h"

namespace hearth::web {

struct FrontDoorConfig {
  std::vector<std::string> listen;  // addresses; "0.0.0.0" / "::" = every interface
  int mqttsPort = 8883;             // 0 = off
  int httpsPort = 8443;             // 0 = off
  int maxConnections = 256;
  size_t maxPacket = 256 * 1024;
  std::chrono::milliseconds connectTimeout{10000};
  std::chrono::milliseconds ioTimeout{30000};
  int maxFailedLogins = 20;
  std::chrono::milliseconds failedLoginWindow{15 * 60 * 1000};
  std::chrono::milliseconds lockoutDuration{15 * 60 * 1000};
  std::string metricsListen;  // host:port, "" = off
  std::string brokerHost = "127.0.0.1";
  int brokerPort = 1883;
  std::string wwwDir;
  std::string caFile;  // served as /ca.crt
};

class FrontDoor {
 public:
  explicit FrontDoor(FrontDoorConfig config);
  ~FrontDoor();

  ServerTls& tls() { return tls_; }
  DoorGuard& guard() { return guard_; }

  // Binds every listener (an address or port in use is an error that names it) and starts
  // serving. On an error nothing is left listening.
  Status start();
  // Stops accepting, ends every connection and joins the worker threads.
  void stop();

  // Gives back what a burst of connections left behind once it is over: worker threads idle
  // for a while end, and the allocator returns freed memory to the system. Any thread; the
  // plugin calls it from a hub-loop timer.
  void housekeep();

  // The plugins' counters GET /metrics serves from now on (hearth_plugin_counter), as the web
  // plugin read them on the hub loop. Any thread.
  void setPluginCounters(std::vector<PluginCounter> counters) {
    pluginCounters_.set(std::move(counters));
  }

  // "mqtts://127.0.0.1:8883" etc., as bound.
  std::vector<std::string> endpoints() const { return endpoints_; }
  // What start() could not do but went on without (no IPv6 on this host).
  std::vector<std::string> warnings() const { return warnings_; }

 private:
  Status bindAll();

  FrontDoorConfig config_;
  ServerTls tls_;
  DoorGuard guard_;
  PluginCounterSnapshot pluginCounters_;
  ConnectionRegistry registry_;
  DoorShared shared_;
  int stopFd_ = -1;
  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::ThreadPool> metricsPool_;
  std::vector<std::unique_ptr<Poco::Net::TCPServer>> servers_;
  std::vector<std::string> endpoints_;
  std::vector<std::string> warnings_;
  bool running_ = false;
  int64_t peakSinceTrim_ = 0;
  int64_t pocoRefused_ = 0;
  int threadsAtTrim_ = 0;
  int trimsDue_ = 0;
};

}  // namespace hearth::web
