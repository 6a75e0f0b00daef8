#include "wifi_lan_plugin.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/RandomStream.h>

#include <algorithm>
#include <sstream>

namespace hearth::wifi_lan {
namespace {

using lan::DropReason;
using lan::Message;
using lan::MessageType;

const hearth_config_key kConfigKeys[] = {
    {"interfaces", HEARTH_CFG_JSON, "[]", 1, 0,
     "Names of the network interfaces to discover on, e.g. [wlan0, eth0]. [] = every up, "
     "non-loopback IPv4 multicast interface, rescanned every probe_period."},
    {"multicast_group", HEARTH_CFG_STRING, "\"239.255.72.1\"", 1, 0,
     "IPv4 multicast group of the hearth LAN protocol (docs/lan-protocol.md)."},
    {"multicast_port", HEARTH_CFG_INT, "47800", 1, 65535,
     "UDP port of the multicast group: announcements, state reports, resets, probes."},
    {"listen_port", HEARTH_CFG_INT, "0", 0, 65535,
     "UDP port the hub sends probes and commands from and receives replies on; 0 = any free "
     "port."},
    {"probe_period", HEARTH_CFG_DURATION, "30s", 0.1, 3600,
     "How often the hub multicasts a probe (devices answer with an announcement), rescans the "
     "interfaces and checks presence."},
    {"offline_after", HEARTH_CFG_DURATION, "90s", 0.5, 86400,
     "A device silent this long is reported offline (detected within offline_after plus "
     "probe_period)."},
    {"control_timeout", HEARTH_CFG_DURATION, "2s", 0.05, 60,
     "How long one attempt of a command waits for the device's reply."},
    {"control_retries", HEARTH_CFG_INT, "2", 0, 10,
     "Retransmissions of an unanswered command before controlDevice answers TIMEOUT."},
    {"max_devices", HEARTH_CFG_INT, "20000", 1, 1000000,
     "Most LAN and SSDP devices tracked; announcements of further devices are dropped and "
     "counted (overLimit)."},
    {"ssdp", HEARTH_CFG_BOOL, "true", 1, 0,
     "Also list UPnP devices found by SSDP (NOTIFY and M-SEARCH) as inventory-only devices."},
    {"ssdp_period", HEARTH_CFG_DURATION, "60s", 1, 86400,
     "How often the hub sends an SSDP M-SEARCH."},
};

constexpr auto kStatusPeriod = std::chrono::milliseconds(1000);
constexpr int64_t kWindowSlackMs = 2000;
// Devices reported to the core for the first time, per second at most. A new record is a
// durable commit in the core; a LAN full of devices appearing at once (a hub restart, a flood
// of forged ids) must not hold the hub loop for seconds and starve the control plane. Deferred
// devices are reported from a later announcement.
constexpr double kNewDevicesPerSecond = 200;

using Obj = Poco::JSON::Object;

std::string stringify(const Obj& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

Obj::Ptr parseObject(const std::string& text) {
  Poco::Dynamic::Var v = Poco::JSON::Parser().parse(text);
  if (v.type() != typeid(Obj::Ptr)) return nullptr;
  return v.extract<Obj::Ptr>();
}

}  // namespace

WifiLanPlugin::WifiLanPlugin(PluginContext& ctx)
    : WifiLanPlugin(ctx, makePocoLanIo(ctx.logger())) {}

WifiLanPlugin::WifiLanPlugin(PluginContext& ctx, std::unique_ptr<LanIo> io)
    : ctx_(ctx), io_(std::move(io)) {}

WifiLanPlugin::~WifiLanPlugin() {
  if (running_) stop();
  if (io_) io_->close();
}

const hearth_config_key* WifiLanPlugin::configKeys() { return kConfigKeys; }
size_t WifiLanPlugin::configKeyCount() { return sizeof(kConfigKeys) / sizeof(kConfigKeys[0]); }

// ------------------------------------------------------------------------------------------
// Lifecycle

Status WifiLanPlugin::readSettings() {
  const ConfigView& c = ctx_.config();
  Settings s;
  try {
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse(c.getJson("interfaces"));
    if (v.type() != typeid(Poco::JSON::Array::Ptr)) {
      return Status::error(ErrorCode::kInvalidRequest, "interfaces must be a list of names");
    }
    Poco::JSON::Array::Ptr list = v.extract<Poco::JSON::Array::Ptr>();
    for (size_t i = 0; i < list->size(); ++i) {
      Poco::Dynamic::Var e = list->get(static_cast<unsigned>(i));
      if (!e.isString() || e.extract<std::string>().empty() ||
          e.extract<std::string>().size() > 15) {
        return Status::error(ErrorCode::kInvalidRequest,
                             "interfaces must be a list of interface names (1-15 characters)");
      }
      s.io.interfaces.push_back(e.extract<std::string>());
    }
  } catch (const Poco::Exception& e) {
    return Status::error(ErrorCode::kInvalidRequest, "interfaces: " + e.displayText());
  }
  s.io.group = c.getString("multicast_group");
  s.io.port = static_cast<uint16_t>(c.getInt("multicast_port"));
  s.io.listenPort = static_cast<uint16_t>(c.getInt("listen_port"));
  s.io.probePeriod = c.getDuration("probe_period");
  s.io.ssdp = c.getBool("ssdp");
  s.io.ssdpPeriod = c.getDuration("ssdp_period");
  s.offlineAfter = c.getDuration("offline_after");
  s.controlTimeout = c.getDuration("control_timeout");
  s.controlRetries = static_cast<int>(c.getInt("control_retries"));
  s.maxDevices = static_cast<size_t>(c.getInt("max_devices"));
  settings_ = s;
  return Status::ok();
}

Status WifiLanPlugin::loadKeys() {
  size_t bad = 0;
  Status s = ctx_.store().scan(
      kKeyCollection, "", 0, [&](const std::string& id, const std::string& value) {
        try {
          Obj::Ptr o = parseObject(value);
          std::string key = o.isNull() ? "" : lan::fromHex(o->optValue<std::string>("key", ""));
          if (!isValidIdentifier(id) || key.size() != lan::kKeyBytes) {
            ++bad;
            return true;
          }
          LanDevice& d = devices_[id];
          d.key = key;
          d.keyTokenHash = o->optValue<std::string>("token", "");
          d.counterHighWater = o->optValue<Poco::UInt64>("ctr", 0);
        } catch (const Poco::Exception&) {
          ++bad;
        }
        return true;
      });
  if (!s) return s;
  if (bad > 0) ctx_.logger().warn("ignored " + std::to_string(bad) + " unreadable device keys");
  return Status::ok();
}

Status WifiLanPlugin::start() {
  if (Status s = readSettings(); !s) return s;
  if (Status s = loadKeys(); !s) return s;
  if (Status s = ctx_.devices().registerTransport(kTransport, this); !s) return s;
  hubCounter_ = static_cast<uint64_t>(std::max<int64_t>(0, ctx_.clock().nowMs())) * 1000;

  alive_ = std::make_shared<WifiLanPlugin*>(this);
  std::weak_ptr<WifiLanPlugin*> weak = alive_;
  LanIoHandlers handlers;
  handlers.onLan = [this](std::string datagram, std::string host, uint16_t port) {
    onLanDatagram(std::move(datagram), std::move(host), port);
  };
  handlers.onSsdp = [this](std::string datagram, std::string host) {
    onSsdpDatagram(std::move(datagram), std::move(host));
  };
  handlers.onInterfaces = [this, weak](std::vector<std::string> names) {
    ctx_.post([weak, names = std::move(names)] {
      auto self = weak.lock();
      if (!self) return;
      (*self)->interfaces_ = names;
      (*self)->publishStatus();
    });
  };
  running_ = true;
  if (Status s = io_->open(settings_.io, std::move(handlers)); !s) {
    running_ = false;
    alive_.reset();
    return s;
  }

  auto check = std::min(settings_.io.probePeriod, settings_.offlineAfter / 2);
  check = std::max(check, std::chrono::milliseconds(100));
  arm(check, &presenceTimer_, &WifiLanPlugin::checkPresence);
  arm(kStatusPeriod, &statusTimer_, &WifiLanPlugin::publishStatus);
  // No publishStatus() here: the interface scan in open() posts its result, which publishes.
  ctx_.logger().info("wifi_lan started: group " + settings_.io.group + ":" +
                     std::to_string(settings_.io.port) + ", replies on port " +
                     std::to_string(io_->localPort()) + ", " + std::to_string(devices_.size()) +
                     " device keys");
  return Status::ok();
}

void WifiLanPlugin::arm(std::chrono::milliseconds period, TimerId* slot,
                        void (WifiLanPlugin::*fn)()) {
  // A self re-arming timer: each firing schedules the next while the plugin runs. The host
  // cancels plugin timers when it releases the plugin, and stop() cancels the pending one.
  *slot = ctx_.startTimer(period, [this, period, slot, fn] {
    *slot = 0;
    (this->*fn)();
    if (running_) arm(period, slot, fn);
  });
}

void WifiLanPlugin::stop() {
  if (!running_) return;
  running_ = false;
  alive_.reset();  // closures already posted by the I/O thread now do nothing
  io_->close();
  if (presenceTimer_ != 0) ctx_.cancelTimer(presenceTimer_);
  if (statusTimer_ != 0) ctx_.cancelTimer(statusTimer_);
  presenceTimer_ = statusTimer_ = 0;
  std::map<std::string, PendingControl> pending;
  pending.swap(pending_);
  for (auto& [req, p] : pending) {
    if (p.timer != 0) ctx_.cancelTimer(p.timer);
    p.done(Status::error(ErrorCode::kUnavailable, "the wifi_lan plugin stopped"));
  }
  flushCounters();
}

// ------------------------------------------------------------------------------------------
// Key storage

void WifiLanPlugin::saveKey(const std::string& deviceId, const LanDevice& d) {
  Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("key", lan::toHex(d.key));
  o.set("token", d.keyTokenHash);
  o.set("ctr", static_cast<Poco::UInt64>(d.counterHighWater));
  Status s = ctx_.store().put(kKeyCollection, deviceId, stringify(o));
  if (!s) {
    ctx_.logger().error("could not store the LAN key of " + deviceId + ": " + s.toString());
  }
}

void WifiLanPlugin::eraseKey(const std::string& deviceId) {
  Status s = ctx_.store().erase(kKeyCollection, deviceId);
  if (!s) ctx_.logger().error("could not erase the LAN key of " + deviceId + ": " + s.toString());
}

void WifiLanPlugin::flushCounters() {
  // Counters advance with every authenticated message; they are stored at stop (and with every
  // key change) rather than per message, so a replay window opens only after a crash.
  Status s = ctx_.store().transaction([&]() -> Status {
    for (auto& [id, d] : devices_) {
      if (!d.counterDirty || d.key.empty()) continue;
      Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
      o.set("key", lan::toHex(d.key));
      o.set("token", d.keyTokenHash);
      o.set("ctr", static_cast<Poco::UInt64>(d.counterHighWater));
      if (Status w = ctx_.store().put(kKeyCollection, id, stringify(o)); !w) return w;
    }
    return Status::ok();
  });
  if (!s) {
    ctx_.logger().warn("could not store the device counters: " + s.toString());
    return;
  }
  for (auto& [id, d] : devices_) d.counterDirty = false;
}

// ------------------------------------------------------------------------------------------
// I/O thread → hub loop

void WifiLanPlugin::count(DropReason reason) {
  dropped_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t WifiLanPlugin::dropped(DropReason reason) const {
  return dropped_[static_cast<size_t>(reason)].load(std::memory_order_relaxed);
}

void WifiLanPlugin::onLanDatagram(std::string datagram, std::string host, uint16_t port) {
  // I/O thread: decode here so that garbage never reaches the hub loop.
  Message m;
  DropReason why;
  if (!lan::decode(datagram, &m, &why)) {
    count(why);
    return;
  }
  if (m.type == MessageType::kProbe) return;  // our own probe, looped back, or another hub's
  if (backlog_.load(std::memory_order_relaxed) >= settings_.maxBacklog) {
    count(DropReason::kBacklog);
    return;
  }
  received_.fetch_add(1, std::memory_order_relaxed);
  backlog_.fetch_add(1, std::memory_order_relaxed);
  std::weak_ptr<WifiLanPlugin*> weak = alive_;
  ctx_.post([weak, m = std::move(m), host = std::move(host), port] {
    auto self = weak.lock();
    if (!self) return;
    (*self)->backlog_.fetch_sub(1, std::memory_order_relaxed);
    (*self)->handleMessage(m, host, port);
  });
}

void WifiLanPlugin::onSsdpDatagram(std::string datagram, std::string host) {
  if (backlog_.load(std::memory_order_relaxed) >= settings_.maxBacklog) {
    count(DropReason::kBacklog);
    return;
  }
  backlog_.fetch_add(1, std::memory_order_relaxed);
  std::weak_ptr<WifiLanPlugin*> weak = alive_;
  ctx_.post([weak, datagram = std::move(datagram), host = std::move(host)] {
    auto self = weak.lock();
    if (!self) return;
    (*self)->backlog_.fetch_sub(1, std::memory_order_relaxed);
    (*self)->handleSsdp(datagram, host);
  });
}

// ------------------------------------------------------------------------------------------
// Messages (hub loop)

void WifiLanPlugin::handleDatagram(std::string_view datagram, const std::string& host,
                                   uint16_t port) {
  Message m;
  DropReason why;
  if (!lan::decode(datagram, &m, &why)) {
    count(why);
    return;
  }
  if (m.type == MessageType::kProbe) return;
  received_.fetch_add(1, std::memory_order_relaxed);
  handleMessage(m, host, port);
}

void WifiLanPlugin::handleMessage(const Message& m, const std::string& host, uint16_t port) {
  if (!running_) return;
  switch (m.type) {
    case MessageType::kAnnounce:
      return handleAnnounce(m, host);
    case MessageType::kReply:
      return handleReply(m);
    case MessageType::kState:
      return handleState(m, host);
    case MessageType::kReset:
      return handleReset(m);
    case MessageType::kProbe:
      return;
    case MessageType::kControl:
    case MessageType::kProvisioned:
      count(DropReason::kMessage);  // hub → device messages; a hub never takes them
      return;
  }
}

bool WifiLanPlugin::acceptCounter(LanDevice& d, uint64_t counter) {
  switch (lan::checkCounter(d.counterHighWater, counter)) {
    case lan::CounterVerdict::kFresh:
      return true;
    case lan::CounterVerdict::kDuplicate:
      count(DropReason::kDuplicate);
      return false;
    case lan::CounterVerdict::kReplay:
      count(DropReason::kReplay);
      return false;
  }
  return false;
}

WifiLanPlugin::LanDevice* WifiLanPlugin::authenticate(const Message& m) {
  auto it = devices_.find(m.id);
  if (it == devices_.end() || it->second.key.empty()) {
    count(DropReason::kUnknownDevice);
    return nullptr;
  }
  LanDevice& d = it->second;
  if (!lan::verifyMac(d.key, m.body, m.mac)) {
    count(DropReason::kMac);
    return nullptr;
  }
  // Only after the MAC: a forged counter must not move the high-water mark.
  if (!acceptCounter(d, m.ctr)) return nullptr;
  d.counterHighWater = m.ctr;
  d.counterDirty = true;
  return &d;
}

void WifiLanPlugin::handleAnnounce(const Message& m, const std::string& host) {
  auto it = devices_.find(m.id);
  LanDevice* d = it == devices_.end() ? nullptr : &it->second;
  if (!m.token.empty()) return handleProvisioning(m, host, d);
  if (d != nullptr && !d->key.empty()) {
    // A device provisioned through this hub must sign everything it says.
    if (!lan::verifyMac(d->key, m.body, m.mac)) {
      count(DropReason::kMac);
      return;
    }
    if (!acceptCounter(*d, m.ctr)) return;
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
  } else if (d == nullptr) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    d = &devices_[m.id];
  }
  // Not provisioned here: discovery is unauthenticated by nature (anyone can claim to exist);
  // nothing a bound user relies on comes from such a device.
  refresh(m.id, *d, m, host);
}

void WifiLanPlugin::handleProvisioning(const Message& m, const std::string& host, LanDevice* d) {
  // The device signs a provisioning announcement with the key derived from the token it was
  // given: proof that the sender holds the token (and that the token arrived intact).
  std::string candidate = lan::deriveKey(m.token, m.id);
  if (!lan::verifyMac(candidate, m.body, m.mac)) {
    count(DropReason::kMac);
    return;
  }
  std::string tokenHash = lan::sha256Hex(m.token);
  bool keyed = d != nullptr && !d->key.empty();
  bool coSigned = keyed && !m.prevMac.empty() && lan::verifyMac(d->key, m.body, m.prevMac);

  if (keyed && d->keyTokenHash == tokenHash) {
    // A repeat of the announcement we accepted: the device has not seen our ack yet.
    if (!acceptCounter(*d, m.ctr)) return;
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
    refresh(m.id, *d, m, host);
    sendProvisioned(m.id, *d);
    return;
  }
  if (keyed && lan::checkCounter(d->counterHighWater, m.ctr) != lan::CounterVerdict::kFresh) {
    acceptCounter(*d, m.ctr);  // counts it
    return;
  }
  if (d != nullptr && d->refusedTokenHash == tokenHash) {
    // The core refused this token; the device repeats it until its provisioning window ends.
    // The announcement still counts as one when the current key vouches for it, or when the
    // device has no key here (its plain announcements are accepted as discovery anyway).
    if (coSigned) {
      d->counterHighWater = m.ctr;
      d->counterDirty = true;
    }
    if (coSigned || !keyed) refresh(m.id, *d, m, host);
    return;
  }
  if (keyed && !coSigned && !ctx_.devices().boundUsers(m.id).empty()) {
    // Preemption is justified by physically re-provisioning the device (seed 003 §一). The
    // real device still holds its current key and co-signs; a LAN host that merely has a hub
    // account and a token of its own does not, and must not take a bound device.
    count(DropReason::kUnauthorized);
    ctx_.logger().warn("refused a provisioning announcement for bound device " + m.id + " from " +
                       host + " without its current key");
    // Two setups raced and this one lost (or a host with a token of its own tried): the token's
    // user hears provisionFailed{reason:"taken"} once, so the app stops waiting. Nothing else
    // happens: the token stays unspent, the device and its bindings are untouched.
    if (d->takenTokenHash != tokenHash) {
      d->takenTokenHash = tokenHash;
      Status told = ctx_.devices().refuseProvisionToken(m.id, m.token);
      if (!told.isOk()) ctx_.logger().debug("nobody told about " + m.id + ": " + told.toString());
    }
    return;
  }
  if (keyed && coSigned) {
    d->counterHighWater = m.ctr;
    d->counterDirty = true;
  }
  if (d == nullptr) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    d = &devices_[m.id];
  }
  // The core binds only devices it knows, and checks the bind window of this very report.
  refresh(m.id, *d, m, host);
  if (!d->reported) return;
  Result<std::string> bound = ctx_.devices().presentProvisionToken(m.id, m.token);
  if (!bound) {
    // The core told the token's user (provisionFailed); remember the token so that the
    // device's repeats do not trigger the same failure again.
    d->refusedTokenHash = tokenHash;
    ++provisionRefused_;
    ctx_.logger().info("provisioning of " + m.id + " refused: " + bound.status().toString());
    return;
  }
  d->key = candidate;
  d->keyTokenHash = tokenHash;
  d->refusedTokenHash.clear();
  d->counterHighWater = m.ctr;
  d->counterDirty = false;
  saveKey(m.id, *d);
  ++provisionAccepted_;
  ctx_.logger().info("device " + m.id + " provisioned by " + bound.value() +
                     "; its LAN key was replaced");
  sendProvisioned(m.id, *d);
}

void WifiLanPlugin::sendProvisioned(const std::string& deviceId, const LanDevice& d) {
  Message ack;
  ack.type = MessageType::kProvisioned;
  ack.id = deviceId;
  ack.ctr = nextHubCounter();
  std::string datagram = lan::encode(ack, d.key);
  if (!datagram.empty() && !d.host.empty()) io_->sendTo(datagram, d.host, d.port);
}

void WifiLanPlugin::refresh(const std::string& deviceId, LanDevice& d, const Message& m,
                            const std::string& host) {
  SteadyTime now = ctx_.clock().steadyNow();
  int64_t nowMs = ctx_.clock().nowMs();
  bool metaChanged = d.model != m.model || d.name != m.name || d.firmware != m.firmware;
  d.model = m.model;
  d.name = m.name;
  d.firmware = m.firmware;
  d.bindWindow = m.bindWindow;
  d.host = host;
  d.port = m.port;
  d.lastSeen = now;
  bool windowChanged;
  if (m.bindWindow > 0) {
    int64_t end = nowMs + int64_t{m.bindWindow} * 1000;
    windowChanged =
        d.reportedWindow <= 0 || std::llabs(end - d.reportedWindowEndMs) > kWindowSlackMs;
  } else {
    windowChanged = d.reportedWindow != m.bindWindow;
  }
  bool stale = now - d.lastReport >= settings_.io.probePeriod;
  if (d.reported && d.online && !metaChanged && !windowChanged && !stale) return;
  if (!d.reported && d.lastReport != SteadyTime{} && !stale && !metaChanged) {
    return;  // the core refused this record recently; retried once per probe_period
  }
  if (!d.reported && !admitNewDevice(now)) {
    ++deferredReports_;
    return;
  }
  d.lastReport = now;
  DeviceReport r;
  r.deviceId = deviceId;
  r.transport = kTransport;
  r.model = m.model;
  r.name = m.name;
  r.firmware = m.firmware;
  r.bindWindowSec = m.bindWindow;
  Status s = ctx_.devices().report(r);
  if (!s) {
    ++reportErrors_;
    d.reported = false;
    ctx_.logger().debug("the core refused the record of " + deviceId + ": " + s.toString());
    return;
  }
  d.reported = true;
  d.online = true;
  d.reportedWindow = m.bindWindow;
  d.reportedWindowEndMs = m.bindWindow > 0 ? nowMs + int64_t{m.bindWindow} * 1000 : 0;
}

bool WifiLanPlugin::admitNewDevice(SteadyTime now) {
  double elapsed = std::chrono::duration<double>(now - newDeviceRefill_).count();
  newDeviceRefill_ = now;
  newDeviceTokens_ =
      std::min(kNewDevicesPerSecond, newDeviceTokens_ + elapsed * kNewDevicesPerSecond);
  if (newDeviceTokens_ < 1) return false;
  newDeviceTokens_ -= 1;
  return true;
}

void WifiLanPlugin::markSeen(const std::string& deviceId, LanDevice& d, const std::string& host) {
  d.lastSeen = ctx_.clock().steadyNow();
  if (!host.empty()) d.host = host;
  if (!d.online) {
    d.online = true;
    ctx_.devices().setOnline(deviceId, true);
  }
}

void WifiLanPlugin::handleReply(const Message& m) {
  auto it = pending_.find(m.req);
  if (it == pending_.end() || it->second.deviceId != m.id || it->second.counter != m.ctr) {
    count(DropReason::kUnsolicited);
    return;
  }
  auto dev = devices_.find(m.id);
  if (dev == devices_.end() || !lan::verifyMac(dev->second.key, m.body, m.mac)) {
    count(DropReason::kMac);
    return;
  }
  markSeen(m.id, dev->second, "");
  ++controlReplies_;
  const PendingControl& p = it->second;
  Obj data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", p.deviceId);
  data.set("userId", p.userId);
  data.set("command", p.command);
  data.set("ok", m.ok);
  Obj::Ptr result;
  try {
    result = parseObject(m.json);
  } catch (const Poco::Exception&) {
    result = nullptr;  // decode() produced m.json, so this does not happen
  }
  if (m.ok) {
    data.set("result", result.isNull() ? Obj::Ptr(new Obj) : result);
  } else {
    Obj::Ptr e = new Obj;
    e->set("code", m.errorCode);
    e->set("message", m.errorMessage);
    data.set("error", e);
  }
  ctx_.devices().notifyBoundUsers(p.deviceId, "controlReply", stringify(data));
  if (m.ok) {
    finishControl(m.req, m.json);
  } else {
    finishControl(m.req,
                  Status::error(ErrorCode::kInvalidRequest,
                                "device " + m.id + " refused " + p.command + ": " + m.errorCode +
                                    (m.errorMessage.empty() ? "" : " " + m.errorMessage)));
  }
}

void WifiLanPlugin::handleState(const Message& m, const std::string& host) {
  LanDevice* d = authenticate(m);
  if (d == nullptr) return;
  markSeen(m.id, *d, host);
  ++stateReports_;
  Obj data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", m.id);
  try {
    data.set("state", parseObject(m.json));
  } catch (const Poco::Exception&) {
    return;  // decode() produced m.json, so this does not happen
  }
  ctx_.devices().notifyBoundUsers(m.id, "deviceState", stringify(data));
}

void WifiLanPlugin::handleReset(const Message& m) {
  // Signed with the key the device is about to wipe: only the device (or this hub) has it.
  LanDevice* d = authenticate(m);
  if (d == nullptr) return;
  ++resets_;
  Status s = ctx_.devices().reportReset(m.id);
  if (!s) ctx_.logger().warn("reset of " + m.id + " not applied: " + s.toString());
  ctx_.logger().info("device " + m.id + " was reset; its LAN key is forgotten");
  d->key.clear();
  d->keyTokenHash.clear();
  d->refusedTokenHash.clear();
  d->counterDirty = false;
  eraseKey(m.id);
}

// ------------------------------------------------------------------------------------------
// SSDP (hub loop)

void WifiLanPlugin::handleSsdp(std::string_view datagram, const std::string& host) {
  if (!running_) return;
  lan::SsdpSighting s;
  lan::SsdpKind kind = lan::parseSsdp(datagram, &s);
  if (kind == lan::SsdpKind::kIgnored) return;
  if (kind == lan::SsdpKind::kInvalid) {
    ssdpInvalid_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::string id = lan::ssdpDeviceId(s);
  auto it = ssdp_.find(id);
  if (s.byebye) {
    if (it != ssdp_.end() && it->second.online) {
      it->second.online = false;
      ctx_.devices().setOnline(id, false);
    }
    return;
  }
  if (it == ssdp_.end()) {
    if (devices_.size() + ssdp_.size() >= settings_.maxDevices) {
      count(DropReason::kOverLimit);
      return;
    }
    it = ssdp_.emplace(id, SsdpDevice{}).first;
  }
  SsdpDevice& d = it->second;
  SteadyTime now = ctx_.clock().steadyNow();
  // A root device sends one NOTIFY per device and service type; its device type names it best.
  std::string model = d.kind;
  if (model.empty() || (s.kind.find(":device:") != std::string::npos &&
                        model.find(":device:") == std::string::npos)) {
    model = s.kind;
  }
  std::string server = s.server.empty() ? d.server : s.server;
  bool changed = model != d.kind || server != d.server;
  bool stale = now - d.lastReport >= settings_.io.probePeriod;
  d.kind = model;
  d.server = server;
  d.lastSeen = now;
  d.maxAge = std::chrono::seconds(s.maxAgeSec);
  if (d.online && !changed && !stale) return;
  d.lastReport = now;
  DeviceReport r;
  r.deviceId = id;
  r.transport = kSsdpTransport;
  r.model = model;
  r.name = server.empty() ? host : server;
  r.bindWindowSec = -1;
  r.inventoryOnly = true;
  Status st = ctx_.devices().report(r);
  if (!st) {
    ++reportErrors_;
    ctx_.logger().debug("the core refused the SSDP record " + id + ": " + st.toString());
    return;
  }
  d.online = true;
}

// ------------------------------------------------------------------------------------------
// Presence (hub loop)

bool WifiLanPlugin::present(const std::string& deviceId) const {
  auto it = devices_.find(deviceId);
  return it != devices_.end() && it->second.online;
}

void WifiLanPlugin::checkPresence() {
  if (!running_) return;
  SteadyTime now = ctx_.clock().steadyNow();
  for (auto& [id, d] : devices_) {
    if (d.online && now - d.lastSeen > settings_.offlineAfter) {
      d.online = false;
      ctx_.devices().setOnline(id, false);
    }
  }
  for (auto& [id, d] : ssdp_) {
    if (d.online &&
        now - d.lastSeen > std::max<std::chrono::milliseconds>(d.maxAge, settings_.offlineAfter)) {
      d.online = false;
      ctx_.devices().setOnline(id, false);
    }
  }
}

// ------------------------------------------------------------------------------------------
// Control (hub loop)

uint64_t WifiLanPlugin::nextHubCounter() {
  // Wall-clock microseconds keep the counter increasing across hub restarts; +1 keeps it
  // increasing within a microsecond or when the clock steps back.
  uint64_t floor = static_cast<uint64_t>(std::max<int64_t>(0, ctx_.clock().nowMs())) * 1000;
  hubCounter_ = std::min(lan::kMaxCounter, std::max(hubCounter_ + 1, floor));
  return hubCounter_;
}

std::string WifiLanPlugin::newRequestId() {
  char bytes[8];
  Poco::RandomInputStream random;
  random.read(bytes, sizeof(bytes));
  return lan::toHex(std::string_view(bytes, sizeof(bytes)));
}

void WifiLanPlugin::control(const std::string& deviceId, const std::string& userId,
                            const std::string& command, const std::string& paramsJson,
                            std::function<void(Result<std::string>)> done) {
  if (!running_) {
    return done(Status::error(ErrorCode::kUnavailable, "the wifi_lan plugin is not running"));
  }
  auto it = devices_.find(deviceId);
  if (it == devices_.end() || !it->second.online || it->second.host.empty()) {
    return done(Status::error(ErrorCode::kOffline, deviceId + " is not present on the LAN"));
  }
  LanDevice& d = it->second;
  if (d.key.empty()) {
    return done(Status::error(ErrorCode::kUnavailable,
                              deviceId + " has no LAN key on this hub; provision it again"));
  }
  if (pending_.size() >= settings_.maxPendingControls) {
    return done(Status::error(ErrorCode::kRateLimited, "too many commands in flight"));
  }
  Message c;
  c.type = MessageType::kControl;
  c.id = deviceId;
  c.req = newRequestId();
  c.ctr = nextHubCounter();
  c.command = command;
  c.json = paramsJson;
  std::string datagram = lan::encode(c, d.key);
  if (datagram.empty()) {
    return done(Status::error(ErrorCode::kInvalidRequest,
                              "the command does not fit one LAN datagram (" +
                                  std::to_string(lan::kMaxDatagramBytes) + " bytes)"));
  }
  PendingControl p;
  p.deviceId = deviceId;
  p.userId = userId;
  p.command = command;
  p.counter = c.ctr;
  p.datagram = std::move(datagram);
  p.host = d.host;
  p.port = d.port;
  p.attemptsLeft = settings_.controlRetries + 1;
  p.done = std::move(done);
  std::string req = c.req;
  pending_.emplace(req, std::move(p));
  ++controlSent_;
  sendAttempt(req);
}

void WifiLanPlugin::sendAttempt(const std::string& req) {
  PendingControl& p = pending_.at(req);
  --p.attemptsLeft;
  // A retransmission is the identical datagram: the device answers a repeat of the request it
  // last executed from its cache instead of executing it twice.
  io_->sendTo(p.datagram, p.host, p.port);
  p.timer = ctx_.startTimer(settings_.controlTimeout, [this, req] { onControlTimeout(req); });
}

void WifiLanPlugin::onControlTimeout(const std::string& req) {
  auto it = pending_.find(req);
  if (it == pending_.end()) return;
  it->second.timer = 0;
  if (it->second.attemptsLeft > 0) {
    ++controlRetries_;
    sendAttempt(req);
    return;
  }
  ++controlTimeouts_;
  std::string deviceId = it->second.deviceId;
  int attempts = settings_.controlRetries + 1;
  finishControl(req,
                Status::error(ErrorCode::kTimeout, "no reply from " + deviceId + " after " +
                                                       std::to_string(attempts) + " attempts"));
}

void WifiLanPlugin::finishControl(const std::string& req, Result<std::string> result) {
  auto it = pending_.find(req);
  if (it == pending_.end()) return;
  PendingControl p = std::move(it->second);
  pending_.erase(it);
  if (p.timer != 0) ctx_.cancelTimer(p.timer);
  p.done(std::move(result));
}

// ------------------------------------------------------------------------------------------
// Status

std::string WifiLanPlugin::detailsJson() const {
  Obj o(Poco::JSON_PRESERVE_KEY_ORDER);
  Poco::JSON::Array::Ptr ifs = new Poco::JSON::Array;
  for (const auto& name : interfaces_) ifs->add(name);
  o.set("interfaces", ifs);
  o.set("group", settings_.io.group + ":" + std::to_string(settings_.io.port));
  o.set("listenPort", static_cast<int>(io_ ? io_->localPort() : 0));
  size_t online = 0, keyed = 0;
  for (const auto& [id, d] : devices_) {
    online += d.online ? 1 : 0;
    keyed += d.key.empty() ? 0 : 1;
  }
  o.set("devices", devices_.size());
  o.set("online", online);
  o.set("provisioned", keyed);
  o.set("ssdpDevices", ssdp_.size());
  o.set("received", static_cast<Poco::UInt64>(received_.load(std::memory_order_relaxed)));
  Obj::Ptr dropped = new Obj(Poco::JSON_PRESERVE_KEY_ORDER);
  uint64_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i) {
    uint64_t n = dropped_[i].load(std::memory_order_relaxed);
    total += n;
    dropped->set(lan::dropReasonName(static_cast<DropReason>(i)), static_cast<Poco::UInt64>(n));
  }
  o.set("dropped", dropped);
  o.set("droppedTotal", static_cast<Poco::UInt64>(total));
  o.set("ssdpInvalid", static_cast<Poco::UInt64>(ssdpInvalid_.load(std::memory_order_relaxed)));
  Obj::Ptr prov = new Obj(Poco::JSON_PRESERVE_KEY_ORDER);
  prov->set("accepted", static_cast<Poco::UInt64>(provisionAccepted_));
  prov->set("refused", static_cast<Poco::UInt64>(provisionRefused_));
  o.set("provisioning", prov);
  Obj::Ptr ctl = new Obj(Poco::JSON_PRESERVE_KEY_ORDER);
  ctl->set("sent", static_cast<Poco::UInt64>(controlSent_));
  ctl->set("retries", static_cast<Poco::UInt64>(controlRetries_));
  ctl->set("replies", static_cast<Poco::UInt64>(controlReplies_));
  ctl->set("timeouts", static_cast<Poco::UInt64>(controlTimeouts_));
  ctl->set("pending", pending_.size());
  o.set("control", ctl);
  o.set("stateReports", static_cast<Poco::UInt64>(stateReports_));
  o.set("resets", static_cast<Poco::UInt64>(resets_));
  o.set("reportErrors", static_cast<Poco::UInt64>(reportErrors_));
  o.set("deferredReports", static_cast<Poco::UInt64>(deferredReports_));
  return stringify(o);
}

void WifiLanPlugin::publishStatus() {
  if (!running_) return;
  std::string details = detailsJson();
  // Waiting: no interface to listen on yet (it is rescanned every probe_period).
  PluginState state = interfaces_.empty() ? PluginState::kWaiting : PluginState::kRunning;
  if (details == lastDetails_ && state == lastState_) return;
  lastDetails_ = details;
  lastState_ = state;
  ctx_.setState(state, details);
}

}  // namespace hearth::wifi_lan
