// wifi_lan: config keys, construction, lifecycle, the hand-over from the I/O thread, the
// dispatch of LAN messages and the status. The other seams: wifi_lan_keys.cc (device keys and
// counters), wifi_lan_devices.cc (announce, provisioning, reporting, presence),
// wifi_lan_control.cc (commands and their replies), wifi_lan_ssdp.cc (SSDP discovery).
#include "wifi_lan_plugin.h"

#include <Poco/Exception.h>

#include <algorithm>
#include <iterator>

#include "wifi_lan_shared.h"

namespace hearth::wifi_lan {

using namespace detail;

namespace {

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

// The plugin counter of each DropReason (ctx_.count names are [a-z0-9_]+; the details keys are
// lan::dropReasonName()).
constexpr const char* kDropCounters[] = {
    "dropped_oversize",    "dropped_header",       "dropped_version",        "dropped_json",
    "dropped_message",     "dropped_mac",          "dropped_replay",         "dropped_duplicate",
    "dropped_unsolicited", "dropped_unauthorized", "dropped_unknown_device", "dropped_over_limit",
    "dropped_backlog",
};
static_assert(std::size(kDropCounters) == static_cast<size_t>(DropReason::kCount),
              "one counter name per DropReason");

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

Status WifiLanPlugin::validate(const ConfigView& config) {
  Settings unused;
  return readSettings(config, &unused);
}

Status WifiLanPlugin::readSettings(const ConfigView& c, Settings* out) {
  Settings s;
  try {
    Poco::Dynamic::Var v = Poco::JSON::Parser().parse(c.getJson("interfaces"));
    if (v.type() != typeid(json::Array::Ptr)) {
      return Status::error(ErrorCode::kInvalidRequest, "interfaces must be a list of names");
    }
    json::Array::Ptr list = v.extract<json::Array::Ptr>();
    for (size_t i = 0; i < list->size(); ++i) {
      s.io.interfaces.push_back(json::Params::stringValue(
          list->get(static_cast<unsigned>(i)), "interfaces[" + std::to_string(i) + "]", 15, 1));
    }
  } catch (const json::InvalidParam&) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "interfaces must be a list of interface names (1-15 characters)");
  } catch (const Poco::Exception& e) {
    return Status::error(ErrorCode::kInvalidRequest, "interfaces: " + e.displayText());
  }
  s.io.group = c.getString("multicast_group");
  if (Status g = checkGroup(s.io.group); !g) return g;
  s.io.port = static_cast<uint16_t>(c.getInt("multicast_port"));
  s.io.listenPort = static_cast<uint16_t>(c.getInt("listen_port"));
  s.io.probePeriod = c.getDuration("probe_period");
  s.io.ssdp = c.getBool("ssdp");
  s.io.ssdpPeriod = c.getDuration("ssdp_period");
  s.offlineAfter = c.getDuration("offline_after");
  s.controlTimeout = c.getDuration("control_timeout");
  s.controlRetries = static_cast<int>(c.getInt("control_retries"));
  s.maxDevices = static_cast<size_t>(c.getInt("max_devices"));
  *out = std::move(s);
  return Status::ok();
}

Status WifiLanPlugin::start() {
  if (Status s = readSettings(ctx_.config(), &settings_); !s) return s;
  if (Status s = loadKeys(); !s) return s;
  if (Status s = ctx_.devices().registerTransport(kTransport, this); !s) return s;
  hubCounter_ = static_cast<uint64_t>(std::max<int64_t>(0, ctx_.clock().nowMs())) * 1000;

  LanIoHandlers handlers;
  // The I/O thread calls these; the work they post captures `this` (see the header).
  handlers.onLan = [this](std::string datagram, std::string host, uint16_t port) {
    onLanDatagram(std::move(datagram), std::move(host), port);
  };
  handlers.onSsdp = [this](std::string datagram, std::string host) {
    onSsdpDatagram(std::move(datagram), std::move(host));
  };
  handlers.onInterfaces = [this](std::vector<std::string> names) {
    ctx_.post([this, names = std::move(names)] {
      interfaces_ = names;
      publishStatus();
    });
  };
  running_ = true;
  if (Status s = io_->open(settings_.io, std::move(handlers)); !s) {
    running_ = false;
    return s;
  }

  auto check = std::min(settings_.io.probePeriod, settings_.offlineAfter / 2);
  check = std::max(check, std::chrono::milliseconds(100));
  repeat(presenceTimer_, check, &WifiLanPlugin::checkPresence);
  repeat(statusTimer_, kStatusPeriod, &WifiLanPlugin::publishStatus);
  // No publishStatus() here: the interface scan in open() posts its result, which publishes.
  ctx_.logger().info("wifi_lan started: group " + settings_.io.group + ":" +
                     std::to_string(settings_.io.port) + ", replies on port " +
                     std::to_string(io_->localPort()) + ", " + std::to_string(devices_.size()) +
                     " device keys");
  return Status::ok();
}

void WifiLanPlugin::repeat(Timer& slot, std::chrono::milliseconds period,
                           void (WifiLanPlugin::*fn)()) {
  // Each firing arms the next while the plugin runs; reassigning the slot from its own callback
  // is safe (the fired timer is already forgotten). stop() cancels the pending one.
  slot = ctx_.after(period, [this, &slot, period, fn] {
    (this->*fn)();
    if (running_) repeat(slot, period, fn);
  });
}

void WifiLanPlugin::stop() {
  if (!running_) return;
  running_ = false;
  // Joins the I/O thread: nothing posts any more. What it posted before runs, if at all, while
  // running_ is false (handlers check it), and the host drops it once stop() has returned.
  io_->close();
  presenceTimer_.cancel();
  statusTimer_.cancel();
  std::map<std::string, PendingControl> pending;
  pending.swap(pending_);
  for (auto& [req, p] : pending) {
    p.timer.cancel();
    p.done(Status::error(ErrorCode::kUnavailable, "the wifi_lan plugin stopped"));
  }
  flushCounters();
  reportCounts();
}

// ------------------------------------------------------------------------------------------
// I/O thread → hub loop

void WifiLanPlugin::count(DropReason reason) {
  dropped_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

void WifiLanPlugin::count(uint64_t& counter, std::string_view name) {
  ++counter;
  ctx_.count(name);
}

void WifiLanPlugin::reportCounts() {
  // The plugin counters dropped_<reason> and received (docs/lan-protocol.md, "Drops and
  // counters").
  for (size_t i = 0; i < kDropReasons; ++i) {
    uint64_t n = dropped_[i].load(std::memory_order_relaxed);
    if (n == droppedReported_[i]) continue;
    ctx_.count(kDropCounters[i], static_cast<int64_t>(n - droppedReported_[i]));
    droppedReported_[i] = n;
  }
  uint64_t received = received_.load(std::memory_order_relaxed);
  if (received != receivedReported_) {
    ctx_.count("received", static_cast<int64_t>(received - receivedReported_));
    receivedReported_ = received;
  }
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
  ctx_.post([this, m = std::move(m), host = std::move(host), port] {
    backlog_.fetch_sub(1, std::memory_order_relaxed);
    handleMessage(m, host, port);
  });
}

void WifiLanPlugin::onSsdpDatagram(std::string datagram, std::string host) {
  if (backlog_.load(std::memory_order_relaxed) >= settings_.maxBacklog) {
    count(DropReason::kBacklog);
    return;
  }
  backlog_.fetch_add(1, std::memory_order_relaxed);
  ctx_.post([this, datagram = std::move(datagram), host = std::move(host)] {
    backlog_.fetch_sub(1, std::memory_order_relaxed);
    handleSsdp(datagram, host);
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

// ------------------------------------------------------------------------------------------
// Status

std::string WifiLanPlugin::detailsJson() const {
  json::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
  json::Array::Ptr ifs = new json::Array;
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
  json::Object::Ptr dropped = new json::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  uint64_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(DropReason::kCount); ++i) {
    uint64_t n = dropped_[i].load(std::memory_order_relaxed);
    total += n;
    dropped->set(lan::dropReasonName(static_cast<DropReason>(i)), static_cast<Poco::UInt64>(n));
  }
  o.set("dropped", dropped);
  o.set("droppedTotal", static_cast<Poco::UInt64>(total));
  o.set("ssdpInvalid", static_cast<Poco::UInt64>(ssdpInvalid_));
  json::Object::Ptr prov = new json::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  prov->set("accepted", static_cast<Poco::UInt64>(provisionAccepted_));
  prov->set("refused", static_cast<Poco::UInt64>(provisionRefused_));
  o.set("provisioning", prov);
  json::Object::Ptr ctl = new json::Object(Poco::JSON_PRESERVE_KEY_ORDER);
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
  return json::text(o);
}

void WifiLanPlugin::publishStatus() {
  if (!running_) return;
  reportCounts();
  std::string details = detailsJson();
  // Waiting: no interface to listen on yet (it is rescanned every probe_period).
  PluginState state = interfaces_.empty() ? PluginState::kWaiting : PluginState::kRunning;
  if (details == lastDetails_ && state == lastState_) return;
  lastDetails_ = details;
  lastState_ = state;
  ctx_.setState(state, details);
}

}  // namespace hearth::wifi_lan
