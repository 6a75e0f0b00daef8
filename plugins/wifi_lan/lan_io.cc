#include "lan_io.h"

#include <Poco/Exception.h>
#include <Poco/Net/DatagramSocket.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/MulticastSocket.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetworkInterface.h>
#include <Poco/Net/Socket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Timespan.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <optional>

#include "lan_protocol.h"
#include "ssdp.h"

namespace hearth::wifi_lan {
namespace {

using Poco::Net::IPAddress;
using Poco::Net::MulticastSocket;
using Poco::Net::NetworkInterface;
using Poco::Net::SocketAddress;
using Clock = std::chrono::steady_clock;

constexpr int kReceiveBufferBytes = 1 << 20;  // absorbs bursts of announcements
constexpr int kDrainPerWakeup = 256;          // datagrams read per socket per select()
constexpr int kSsdpMx = 2;

// Announcements arrive in bursts (every device answers a probe). Root may exceed rmem_max with
// SO_RCVBUFFORCE; otherwise the kernel caps SO_RCVBUF at rmem_max.
void setLargeReceiveBuffer(Poco::Net::DatagramSocket& s) {
  try {
    s.impl()->setOption(SOL_SOCKET, SO_RCVBUFFORCE, kReceiveBufferBytes);
    return;
  } catch (const Poco::Exception&) {
    // No CAP_NET_ADMIN: fall back to the capped request.
  }
  try {
    s.setReceiveBufferSize(kReceiveBufferBytes);
  } catch (const Poco::Exception&) {
    // Keep the default size.
  }
}

// An interface we joined, identified by name and the IPv4 address used for the membership.
struct Joined {
  std::string name;
  IPAddress address;
  NetworkInterface interface;
};

class PocoLanIo : public LanIo {
 public:
  explicit PocoLanIo(Logger& logger) : logger_(logger) {}
  ~PocoLanIo() override { close(); }

  Status open(const LanIoConfig& config, LanIoHandlers handlers) override {
    close();
    config_ = config;
    handlers_ = std::move(handlers);
    if (Status s = checkGroup(config.group); !s) return s;
    group_ = IPAddress(config.group);
    try {
      // Bound to the group address so that only datagrams sent to the group arrive here.
      groupSocket_.emplace(SocketAddress(group_, config.port), true);
      unicast_.emplace(SocketAddress(IPAddress("0.0.0.0"), config.listenPort), false);
      for (Poco::Net::DatagramSocket* s : {static_cast<Poco::Net::DatagramSocket*>(&*groupSocket_),
                                           static_cast<Poco::Net::DatagramSocket*>(&*unicast_)}) {
        s->setBlocking(false);
        setLargeReceiveBuffer(*s);
      }
      unicast_->setLoopback(true);  // a simulator on this host hears our probes
    } catch (const Poco::Exception& e) {
      closeSockets();
      return Status::error(ErrorCode::kUnavailable, "cannot bind the LAN sockets (" + config.group +
                                                        ":" + std::to_string(config.port) +
                                                        "): " + e.displayText());
    }
    if (config.ssdp) {
      try {
        ssdpGroup_.emplace(SocketAddress(IPAddress(lan::kSsdpGroup), lan::kSsdpPort), true);
        ssdpSearch_.emplace(SocketAddress(IPAddress("0.0.0.0"), 0), false);
        ssdpGroup_->setBlocking(false);
        ssdpSearch_->setBlocking(false);
      } catch (const Poco::Exception& e) {
        // SSDP is inventory only; the hearth protocol works without it.
        logger_.warn("SSDP discovery disabled: cannot bind its sockets: " + e.displayText());
        ssdpGroup_.reset();
        ssdpSearch_.reset();
      }
    }
    rescanInterfaces();
    stop_ = false;
    thread_ = std::thread([this] { run(); });
    return Status::ok();
  }

  void close() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    closeSockets();
  }

  void sendTo(const std::string& datagram, const std::string& host, uint16_t port) override {
    if (!unicast_) return;
    try {
      unicast_->sendTo(datagram.data(), static_cast<int>(datagram.size()),
                       SocketAddress(host, port));
    } catch (const Poco::Exception& e) {
      logger_.debug("send to " + host + ":" + std::to_string(port) + " failed: " + e.displayText());
    }
  }

  uint16_t localPort() const override { return unicast_ ? unicast_->address().port() : 0; }

 private:
  void closeSockets() {
    for (auto* s : {&groupSocket_, &unicast_, &ssdpGroup_, &ssdpSearch_}) {
      if (*s) {
        try {
          (*s)->close();
        } catch (const Poco::Exception&) {
          // Closing cannot fail in a way we could act on.
        }
        s->reset();
      }
    }
    joined_.clear();
  }

  bool wanted(const NetworkInterface& ifc) const {
    if (!config_.interfaces.empty()) {
      return std::find(config_.interfaces.begin(), config_.interfaces.end(), ifc.name()) !=
             config_.interfaces.end();
    }
    return !ifc.isLoopback() && ifc.supportsMulticast();
  }

  // Joins the group on interfaces that appeared and forgets those that went away.
  void rescanInterfaces() {
    std::map<std::string, Joined> now;
    try {
      for (const NetworkInterface& ifc : NetworkInterface::list(true, true)) {
        if (!ifc.supportsIPv4() || !wanted(ifc)) continue;
        IPAddress addr;
        try {
          addr = ifc.firstAddress(IPAddress::IPv4);
        } catch (const Poco::Exception&) {
          continue;
        }
        now.emplace(ifc.name(), Joined{ifc.name(), addr, ifc});
      }
    } catch (const Poco::Exception& e) {
      logger_.warn("cannot list network interfaces: " + e.displayText());
      return;
    }
    bool changed = false;
    for (auto it = joined_.begin(); it != joined_.end();) {
      auto n = now.find(it->first);
      if (n != now.end() && n->second.address == it->second.address) {
        ++it;
        continue;
      }
      leave(it->second);
      it = joined_.erase(it);
      changed = true;
    }
    for (auto& [name, j] : now) {
      if (joined_.count(name)) continue;
      if (join(j)) {
        joined_.emplace(name, j);
        changed = true;
      }
    }
    if (changed && handlers_.onInterfaces) {
      std::vector<std::string> names;
      for (const auto& [name, j] : joined_) names.push_back(name);
      handlers_.onInterfaces(names);
    }
  }

  bool join(const Joined& j) {
    try {
      groupSocket_->joinGroup(group_, j.interface);
    } catch (const Poco::Exception& e) {
      logger_.warn("cannot join " + group_.toString() + " on " + j.name + ": " + e.displayText());
      return false;
    }
    if (ssdpGroup_) {
      try {
        ssdpGroup_->joinGroup(IPAddress(lan::kSsdpGroup), j.interface);
      } catch (const Poco::Exception& e) {
        logger_.warn("cannot join the SSDP group on " + j.name + ": " + e.displayText());
      }
    }
    logger_.info("listening on " + j.name + " (" + j.address.toString() + ")");
    return true;
  }

  void leave(const Joined& j) {
    try {
      groupSocket_->leaveGroup(group_, j.interface);
    } catch (const Poco::Exception&) {
      // The interface is gone; so is the membership.
    }
    if (ssdpGroup_) {
      try {
        ssdpGroup_->leaveGroup(IPAddress(lan::kSsdpGroup), j.interface);
      } catch (const Poco::Exception&) {
        // As above.
      }
    }
    logger_.info("stopped listening on " + j.name);
  }

  // Sends one multicast datagram out of every joined interface.
  void multicast(MulticastSocket& socket, const std::string& datagram, const IPAddress& group,
                 uint16_t port) {
    for (auto& [name, j] : joined_) {
      try {
        socket.setInterface(j.interface);
        socket.sendTo(datagram.data(), static_cast<int>(datagram.size()),
                      SocketAddress(group, port));
      } catch (const Poco::Exception& e) {
        logger_.debug("multicast on " + name + " failed: " + e.displayText());
      }
    }
  }

  void sendProbes() {
    lan::Message probe;
    probe.type = lan::MessageType::kProbe;
    multicast(*unicast_, lan::encode(probe), group_, config_.port);
  }

  void sendSearch() {
    if (!ssdpSearch_) return;
    multicast(*ssdpSearch_, lan::ssdpSearchRequest(kSsdpMx), IPAddress(lan::kSsdpGroup),
              lan::kSsdpPort);
  }

  void drain(Poco::Net::DatagramSocket& socket, bool ssdp) {
    char buffer[lan::kMaxSsdpBytes + 1];
    // A hearth datagram is read into kMaxDatagramBytes + 1 so that oversize stays visible.
    int capacity =
        ssdp ? static_cast<int>(sizeof(buffer)) : static_cast<int>(lan::kMaxDatagramBytes + 1);
    for (int i = 0; i < kDrainPerWakeup; ++i) {
      SocketAddress from;
      int n = 0;
      try {
        n = socket.receiveFrom(buffer, capacity, from);
      } catch (const Poco::TimeoutException&) {
        return;
      } catch (const Poco::Exception& e) {
        // ECONNREFUSED from an earlier send to a closed port, or similar: not fatal.
        if (e.code() == POCO_EWOULDBLOCK || e.code() == POCO_EAGAIN) return;
        continue;
      }
      if (n < 0) return;  // would block
      std::string data(buffer, static_cast<size_t>(n));
      if (ssdp) {
        if (handlers_.onSsdp) handlers_.onSsdp(std::move(data), from.host().toString());
      } else if (handlers_.onLan) {
        handlers_.onLan(std::move(data), from.host().toString(), from.port());
      }
    }
  }

  void run() {
    Clock::time_point nextProbe = Clock::now();
    Clock::time_point nextSearch = Clock::now();
    while (!stop_) {
      Clock::time_point now = Clock::now();
      if (now >= nextProbe) {
        rescanInterfaces();
        sendProbes();
        nextProbe = now + config_.probePeriod;
      }
      if (ssdpSearch_ && now >= nextSearch) {
        sendSearch();
        nextSearch = now + config_.ssdpPeriod;
      }
      Poco::Net::Socket::SocketList readable = {*groupSocket_, *unicast_};
      if (ssdpGroup_) readable.push_back(*ssdpGroup_);
      if (ssdpSearch_) readable.push_back(*ssdpSearch_);
      Poco::Net::Socket::SocketList writable, failed;
      int ready = 0;
      try {
        // Short, so that stop_ and the periodic work are noticed promptly.
        ready = Poco::Net::Socket::select(readable, writable, failed, Poco::Timespan(0, 100000));
      } catch (const Poco::Exception& e) {
        logger_.warn("select failed: " + e.displayText());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      if (ready <= 0) continue;
      for (const Poco::Net::Socket& s : readable) {
        if (s == *groupSocket_) drain(*groupSocket_, false);
        if (s == *unicast_) drain(*unicast_, false);
        if (ssdpGroup_ && s == *ssdpGroup_) drain(*ssdpGroup_, true);
        if (ssdpSearch_ && s == *ssdpSearch_) drain(*ssdpSearch_, true);
      }
    }
  }

  Logger& logger_;
  LanIoConfig config_;
  LanIoHandlers handlers_;
  IPAddress group_;
  std::optional<MulticastSocket> groupSocket_;
  std::optional<MulticastSocket> unicast_;
  std::optional<MulticastSocket> ssdpGroup_;
  std::optional<MulticastSocket> ssdpSearch_;
  std::map<std::string, Joined> joined_;  // I/O thread only once the thread runs
  std::atomic<bool> stop_{true};
  std::thread thread_;
};

}  // namespace

std::unique_ptr<LanIo> makePocoLanIo(Logger& logger) { return std::make_unique<PocoLanIo>(logger); }

Status checkGroup(const std::string& group) {
  IPAddress address;
  if (!IPAddress::tryParse(group, address)) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "multicast_group " + group + " is not an IPv4 address");
  }
  if (address.family() != IPAddress::IPv4 || !address.isMulticast()) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "multicast_group " + group + " is not IPv4 multicast");
  }
  return Status::ok();
}

}  // namespace hearth::wifi_lan
