#include "front_door.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerConnectionFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <malloc.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "door_metrics.h"

namespace hearth::web {
namespace {

using Poco::Net::HTTPResponse;

constexpr int kBacklog = 128;
// 1 MiB of address space per worker; only the pages a connection touches (tens of KiB) are
// resident. Not smaller on purpose: glibc keeps the stacks of ended threads for reuse, up to
// 40 MiB of them, with their touched pages resident; with 1 MiB stacks that cache holds at
// most 40 of them, so the RSS of a burst of connections goes back once its threads end.
constexpr int kThreadStack = 1024 * 1024;
// Worker threads beyond max_connections: refusing a connection takes a worker for a moment,
// and a full pool would queue connections instead of refusing them.
constexpr int kSpareThreads = 64;
// Worker threads idle this long (seconds) end at the next housekeeping.
constexpr int kThreadIdleSec = 10;
// Connections that must have come and gone since the last trim before the allocator is asked
// to give memory back (malloc_trim walks every arena: not for every client).
constexpr int64_t kTrimAfter = 32;
// glibc gives threads up to 8 malloc arenas per core (16 on a 2-core board), and malloc_trim
// never shrinks the top chunk of an arena other than the main one (up to 128 KiB each): after a
// burst served by hundreds of worker threads, ~2.5 MiB would stay resident for good. Two arenas
// keep that under 0.5 MiB; the door's threads allocate little per message, so sharing costs
// nothing measurable (docs/performance.md, front door). Process-wide, and only effective before
// glibc has fixed its arena limit (it does so at the 9th arena): hearthd has fewer by the time
// its plugins start.
constexpr int kMallocArenas = 2;

class MetricsHandler : public Poco::Net::HTTPRequestHandler {
 public:
  MetricsHandler(DoorGuard& guard, const PluginCounterSnapshot& plugins)
      : guard_(guard), plugins_(plugins) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    std::string uri = request.getURI();
    std::string path = uri.substr(0, uri.find('?'));
    if (path != "/metrics") {
      sendText(response, HTTPResponse::HTTP_NOT_FOUND, "only /metrics is served here");
      return;
    }
    if (request.getMethod() != "GET" && request.getMethod() != "HEAD") {
      response.set("Allow", "GET, HEAD");
      sendText(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
      return;
    }
    std::string body = prometheusText(guard_, plugins_.get());
    response.setContentType("text/plain; version=0.0.4; charset=utf-8");
    response.set("Cache-Control", "no-store");
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
  }

 private:
  DoorGuard& guard_;
  const PluginCounterSnapshot& plugins_;
};

class MetricsFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  MetricsFactory(DoorGuard& guard, const PluginCounterSnapshot& plugins)
      : guard_(guard), plugins_(plugins) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new MetricsHandler(guard_, plugins_);
  }

 private:
  DoorGuard& guard_;
  const PluginCounterSnapshot& plugins_;
};

std::string endpoint(const std::string& scheme, const Poco::Net::SocketAddress& sa) {
  return scheme + "://" + sa.toString();
}

// Each client inside the door holds three descriptors (its socket, the registry's duplicate and
// the broker connection); the rest of hearthd needs a few hundred. The soft limit is often 1024
// (systemd's default), so it is raised within the hard limit as far as max_connections needs.
void raiseOpenFileLimit(int maxConnections) {
  rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = static_cast<rlim_t>(maxConnections) * 3 + 256;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want) ? want : rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

FrontDoor::FrontDoor(FrontDoorConfig config)
    : config_(std::move(config)),
      guard_(config_.maxConnections, config_.maxFailedLogins, config_.failedLoginWindow,
             config_.lockoutDuration) {
  shared_.guard = &guard_;
  shared_.registry = &registry_;
  shared_.pipe.brokerHost = config_.brokerHost;
  shared_.pipe.brokerPort = config_.brokerPort;
  shared_.pipe.maxPacket = config_.maxPacket;
  shared_.files.root = config_.wwwDir;
  shared_.files.caFile = config_.caFile;
  shared_.connectTimeout = config_.connectTimeout;
  shared_.ioTimeout = config_.ioTimeout;
}

FrontDoor::~FrontDoor() { stop(); }

Status FrontDoor::bindAll() {
  const int threads = config_.maxConnections + kSpareThreads;
  auto bindSecure = [&](Poco::Net::SecureServerSocket& sock, const Poco::Net::SocketAddress& sa) {
    if (sa.family() == Poco::Net::SocketAddress::IPv6) {
      sock.bind6(sa, true, true);  // IPv6 only: "0.0.0.0" has its own socket
    } else {
      sock.bind(sa, true);
    }
    sock.listen(kBacklog);
  };
  for (const auto& host : config_.listen) {
    std::string current;
    try {
      Poco::Net::IPAddress ip(host);
      if (config_.mqttsPort > 0) {
        Poco::Net::SocketAddress sa(ip, static_cast<uint16_t>(config_.mqttsPort));
        current = endpoint("mqtts", sa);
        Poco::Net::SecureServerSocket sock(tls_.context());
        bindSecure(sock, sa);
        Poco::Net::TCPServerParams::Ptr params = new Poco::Net::TCPServerParams;
        params->setMaxThreads(threads);
        params->setMaxQueued(kBacklog);
        servers_.push_back(std::make_unique<Poco::Net::TCPServer>(
            new GuardedConnectionFactory(shared_, DoorProtocol::kMqtts, nullptr), *pool_, sock,
            params));
        endpoints_.push_back(current);
      }
      if (config_.httpsPort > 0) {
        Poco::Net::SocketAddress sa(ip, static_cast<uint16_t>(config_.httpsPort));
        current = endpoint("https", sa);
        Poco::Net::SecureServerSocket sock(tls_.context());
        bindSecure(sock, sa);
        Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(threads);
        params->setMaxQueued(kBacklog);
        params->setTimeout(Poco::Timespan(config_.ioTimeout.count() * 1000));
        params->setKeepAlive(true);
        params->setMaxKeepAliveRequests(100);
        params->setKeepAliveTimeout(Poco::Timespan(shared_.keepAlive.count(), 0));
        Poco::Net::TCPServerConnectionFactory::Ptr http =
            new Poco::Net::HTTPServerConnectionFactory(params,
                                                       new DoorRequestHandlerFactory(shared_));
        servers_.push_back(std::make_unique<Poco::Net::TCPServer>(
            new GuardedConnectionFactory(shared_, DoorProtocol::kHttps, http), *pool_, sock,
            params));
        endpoints_.push_back(current);
      }
    } catch (const Poco::Exception& e) {
      // The default listens on "::" too; a host without IPv6 serves IPv4 only.
      if (host == "::" && config_.listen.size() > 1 &&
          (e.code() == EAFNOSUPPORT || e.code() == EADDRNOTAVAIL ||
           e.displayText().find("not supported") != std::string::npos)) {
        warnings_.push_back("no IPv6 here (" + e.displayText() + "): listening on IPv4 only");
        continue;
      }
      return Status::error(
          ErrorCode::kUnavailable,
          "cannot listen on " + (current.empty() ? host : current) + ": " + e.displayText());
    }
  }
  if (!config_.metricsListen.empty()) {
    try {
      Poco::Net::SocketAddress sa(config_.metricsListen);
      Poco::Net::ServerSocket sock;
      if (sa.family() == Poco::Net::SocketAddress::IPv6) {
        sock.bind6(sa, true, true);
      } else {
        sock.bind(sa, true);
      }
      sock.listen(16);
      Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
      params->setMaxThreads(4);
      params->setMaxQueued(16);
      params->setTimeout(Poco::Timespan(5, 0));
      servers_.push_back(std::make_unique<Poco::Net::HTTPServer>(
          new MetricsFactory(guard_, pluginCounters_), *metricsPool_, sock, params));
      endpoints_.push_back("http://" + sa.toString() + "/metrics");
    } catch (const Poco::Exception& e) {
      return Status::error(
          ErrorCode::kUnavailable,
          "cannot listen on metrics_listen " + config_.metricsListen + ": " + e.displayText());
    }
  }
  return Status::ok();
}

Status FrontDoor::start() {
  stopFd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stopFd_ < 0) return Status::error(ErrorCode::kInternal, "eventfd failed");
  shared_.pipe.stopFd = stopFd_;
  raiseOpenFileLimit(config_.maxConnections);
  ::mallopt(M_ARENA_MAX, kMallocArenas);
  pool_ = std::make_unique<Poco::ThreadPool>("web", 2, config_.maxConnections + kSpareThreads,
                                             kThreadIdleSec, kThreadStack);
  metricsPool_ = std::make_unique<Poco::ThreadPool>("web-metrics", 1, 4, 60, kThreadStack);
  Status s = bindAll();
  if (!s) {
    servers_.clear();
    endpoints_.clear();
    return s;
  }
  for (auto& server : servers_) server->start();
  running_ = true;
  return Status::ok();
}

void FrontDoor::housekeep() {
  if (!running_) return;
  // Connections POCO's dispatcher refused because its queue was full (a flood faster than the
  // workers take them): refused at a full door, too.
  int64_t pocoRefused = 0;
  for (const auto& server : servers_) pocoRefused += server->refusedConnections();
  if (pocoRefused > pocoRefused_) {
    guard_.counters().refusedFull += pocoRefused - pocoRefused_;
    pocoRefused_ = pocoRefused;
  }
  pool_->collect();
  metricsPool_->collect();
  // The peak is kept by the guard as clients enter, so a burst between two calls counts too.
  peakSinceTrim_ = std::max(peakSinceTrim_, guard_.takePeak());
  int64_t inside = guard_.inside();
  // Worker threads end kThreadIdleSec after their client left, and what they held (their
  // arena's free chunks, OpenSSL's per-thread state) is free only then: a trim at the end of a
  // burst alone would come too early. collect() only tells them to end; they do so on their
  // own a moment later, so the next housekeeping trims once more.
  int threads = pool_->allocated();
  if (threads < threadsAtTrim_) trimsDue_ = 2;
  threadsAtTrim_ = threads;
  if (peakSinceTrim_ - inside >= kTrimAfter || trimsDue_ > 0) {
    ::malloc_trim(0);
    peakSinceTrim_ = inside;
    if (trimsDue_ > 0) --trimsDue_;
  }
}

void FrontDoor::stop() {
  if (!running_ && servers_.empty() && stopFd_ < 0) return;
  running_ = false;
  for (auto& server : servers_) server->stop();
  if (stopFd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = ::write(stopFd_, &one, sizeof one);
    (void)n;
  }
  registry_.shutdownAll();
  if (pool_) pool_->joinAll();
  if (metricsPool_) metricsPool_->joinAll();
  servers_.clear();
  pool_.reset();
  metricsPool_.reset();
  if (stopFd_ >= 0) ::close(stopFd_);
  stopFd_ = -1;
  shared_.pipe.stopFd = -1;
  endpoints_.clear();
}

}  // namespace hearth::web
