#include "ble_plugin.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <utility>

#include "sdbus_bluez_client.h"

namespace hearth::ble {
namespace {

using Poco::JSON::Object;

constexpr const char* kTransport = "ble";
constexpr const char* kResetCounters = "reset_counters";  // device id -> last reset counter
// A bind window that keeps counting down on the device needs no new report; one whose end
// moved by more than this does.
constexpr std::chrono::seconds kWindowTolerance{2};
constexpr size_t kMaxNameBytes = 128;  // what the core accepts in DeviceReport::name

const hearth_config_key kConfigKeys[] = {
    {"adapter", HEARTH_CFG_STRING, "auto", 1, 0,
     "BlueZ adapter to use (hci0, hci1, ...); auto = the first one BlueZ reports."},
    {"products", HEARTH_CFG_JSON, "[]", 1, 0,
     "Product rules: a list of {model, service_uuid, manufacturer_id, name_pattern, adv_offset, "
     "default_bind_window, control{characteristic, commands, ...}} (docs/ble.md)."},
    {"scan_window", HEARTH_CFG_DURATION, "10s", 1, 3600, "How long each discovery run lasts."},
    {"scan_interval", HEARTH_CFG_DURATION, "10s", 1, 3600,
     "How often a discovery run starts; scan_window >= scan_interval scans continuously."},
    {"present_within", HEARTH_CFG_DURATION, "30s", 1, 86400,
     "A device counts as present for bindDevice if it advertised (or was connected) this "
     "recently."},
    {"offline_after", HEARTH_CFG_DURATION, "120s", 1, 86400,
     "Silence after which a device is reported offline to its bound users."},
    {"connect_timeout", HEARTH_CFG_DURATION, "15s", 1, 300,
     "Device1.Connect plus GATT service resolution, per command that needs a connection."},
    {"control_timeout", HEARTH_CFG_DURATION, "30s", 1, 600,
     "The whole controlDevice (queueing, connecting, writing, waiting for the reply)."},
    {"max_connections", HEARTH_CFG_INT, "3", 1, 32,
     "Connections the plugin keeps open at once; idle ones are closed least recently used "
     "first."},
    {"connection_idle", HEARTH_CFG_DURATION, "5s", 0, 3600,
     "How long a connection stays open after its last command (0 = close at once)."},
    {"max_queue", HEARTH_CFG_INT, "32", 1, 4096,
     "Commands waiting at once; more are refused with UNAVAILABLE."},
    {"retry_interval", HEARTH_CFG_DURATION, "5s", 1, 600,
     "How often the plugin retries the system bus or BlueZ while waiting for them."},
};

std::string toText(const Object& o) {
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(o, out);
  return out.str();
}

std::string lastSegment(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool under(const std::string& path, const std::string& parent) {
  return !parent.empty() && path.size() > parent.size() + 1 &&
         path.compare(0, parent.size(), parent) == 0 && path[parent.size()] == '/';
}

void mergeDevice(DeviceProps& into, const DeviceProps& c) {
  if (c.address) into.address = c.address;
  if (c.name) into.name = c.name;
  if (c.alias) into.alias = c.alias;
  if (c.adapter) into.adapter = c.adapter;
  if (c.rssi) into.rssi = c.rssi;
  if (c.txPower) into.txPower = c.txPower;
  if (c.uuids) into.uuids = c.uuids;
  if (c.manufacturerData) into.manufacturerData = c.manufacturerData;
  if (c.serviceData) into.serviceData = c.serviceData;
  if (c.connected) into.connected = c.connected;
  if (c.servicesResolved) into.servicesResolved = c.servicesResolved;
}

int windowCategory(int32_t w) { return w < 0 ? -1 : (w == 0 ? 0 : 1); }

bool validAdapterName(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string seconds(std::chrono::milliseconds d) {
  std::ostringstream out;
  out << static_cast<double>(d.count()) / 1000.0 << "s";
  return out.str();
}

void ignoreReply(const MaybeError&) {}

}  // namespace

const hearth_config_key* BlePlugin::configKeys() { return kConfigKeys; }
size_t BlePlugin::configKeyCount() { return sizeof(kConfigKeys) / sizeof(kConfigKeys[0]); }

BlePlugin::BlePlugin(PluginContext& ctx)
    : BlePlugin(ctx,
                std::make_unique<SdbusBluezClient>(
                    [&ctx](std::function<void()> fn) { ctx.post(std::move(fn)); }, ctx.logger())) {}

BlePlugin::BlePlugin(PluginContext& ctx, std::unique_ptr<BluezClient> client)
    : ctx_(ctx),
      client_(std::move(client)),
      adapterName_(ctx.config().getString("adapter")),
      scanWindow_(ctx.config().getDuration("scan_window")),
      scanInterval_(ctx.config().getDuration("scan_interval")),
      presentWithin_(ctx.config().getDuration("present_within")),
      offlineAfter_(ctx.config().getDuration("offline_after")),
      connectTimeout_(ctx.config().getDuration("connect_timeout")),
      controlTimeout_(ctx.config().getDuration("control_timeout")),
      connectionIdle_(ctx.config().getDuration("connection_idle")),
      retryInterval_(ctx.config().getDuration("retry_interval")),
      maxConnections_(static_cast<size_t>(ctx.config().getInt("max_connections"))),
      maxQueue_(static_cast<size_t>(ctx.config().getInt("max_queue"))) {}

BlePlugin::~BlePlugin() {
  stop();
  client_->stop();
}

// ------------------------------------------------------------------------------------------
// Lifecycle

Status BlePlugin::start() {
  if (adapterName_ != "auto" && !validAdapterName(adapterName_)) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "plugins.ble.adapter: expected auto or an adapter name like hci0");
  }
  auto rules = parseProductRules(ctx_.config().getJson("products"));
  if (!rules.isOk()) {
    return Status::error(ErrorCode::kInvalidRequest, "plugins.ble." + rules.status().message());
  }
  rules_ = std::move(rules).value();
  filterUuids_ = discoveryUuids(rules_);
  if (rules_.empty()) {
    ctx_.logger().warn(
        "no product rules configured (plugins.ble.products): no device will be "
        "reported");
  }
  Status s = loadResetCounters();
  if (!s.isOk()) return s;
  s = ctx_.devices().registerTransport(kTransport, this);
  if (!s.isOk()) return s;
  started_ = true;
  link_ = Link::kNoBluez;
  linkReported_ = false;
  setLink(Link::kNoBluez);  // until the object tree arrives
  armSweep();
  connectBus();
  return Status::ok();
}

void BlePlugin::stop() {
  if (!started_) return;
  started_ = false;
  for (TimerId* t : {&retryTimer_, &scanTimer_, &sweepTimer_, &resolveTimer_}) {
    if (*t != 0) ctx_.cancelTimer(*t);
    *t = 0;
  }
  failAllJobs(ErrorCode::kUnavailable, "the ble plugin is stopping");
  for (auto& [id, h] : held_) {
    if (h.idleTimer != 0) ctx_.cancelTimer(h.idleTimer);
    if (busUp_) client_->disconnect(h.path, ignoreReply);
  }
  held_.clear();
  stopScanning(busUp_);
  // Pending messages (Disconnect, StopDiscovery) are flushed when the connection closes.
  client_->stop();
  busUp_ = false;
}

// ------------------------------------------------------------------------------------------
// Link: system bus, bluetoothd, adapter

void BlePlugin::setLink(Link link) {
  if (linkReported_ && link == link_) return;
  link_ = link;
  linkReported_ = true;
  Object detail;
  PluginState state = PluginState::kWaiting;
  switch (link) {
    case Link::kNoBus:
      detail.set("reason", "waiting_for_system_bus");
      break;
    case Link::kNoBluez:
      detail.set("reason", "waiting_for_bluez");
      break;
    case Link::kNoAdapter:
      detail.set("reason", "waiting_for_adapter");
      if (adapterName_ != "auto") detail.set("adapter", adapterName_);
      break;
    case Link::kPoweredOff:
      detail.set("reason", "adapter_powered_off");
      detail.set("adapter", lastSegment(adapterPath_));
      break;
    case Link::kReady:
      state = PluginState::kRunning;
      detail.set("adapter", lastSegment(adapterPath_));
      break;
  }
  const std::string text = toText(detail);
  ctx_.logger().info(std::string("state ") + pluginStateName(state) + " " + text);
  ctx_.setState(state, text);
}

void BlePlugin::armRetry(std::function<void()> fn) {
  if (retryTimer_ != 0) ctx_.cancelTimer(retryTimer_);
  retryTimer_ = ctx_.startTimer(retryInterval_, [this, fn = std::move(fn)] {
    retryTimer_ = 0;
    fn();
  });
}

void BlePlugin::connectBus() {
  if (!started_) return;
  Status s = client_->start(this);
  if (!s.isOk()) {
    busUp_ = false;
    if (link_ != Link::kNoBus) ctx_.logger().warn(s.message() + "; retrying");
    setLink(Link::kNoBus);
    armRetry([this] { connectBus(); });
    return;
  }
  busUp_ = true;
  resync();
}

void BlePlugin::resync() {
  if (!started_ || !busUp_) return;
  const uint64_t gen = ++treeGen_;
  client_->getManagedObjects([this, gen](const MaybeError& err, ObjectTree tree) {
    if (gen != treeGen_ || !started_) return;
    if (err) {
      // Usually ServiceUnknown: bluetoothd is not running. NameOwnerChanged announces it;
      // the retry covers anything else (a slow or restarting daemon).
      if (link_ != Link::kNoBluez) {
        ctx_.logger().warn("cannot read BlueZ's objects: " + err->name + ": " + err->message);
      }
      dropSession("bluetoothd is not reachable");
      setLink(Link::kNoBluez);
      armRetry([this] { resync(); });
      return;
    }
    applyTree(tree);
  });
}

void BlePlugin::applyTree(const ObjectTree& tree) {
  if (retryTimer_ != 0) ctx_.cancelTimer(retryTimer_);
  retryTimer_ = 0;
  adapters_.clear();
  devices_.clear();
  services_.clear();
  characteristics_.clear();
  for (const auto& [path, object] : tree) storeObject(path, object);
  for (auto& [id, k] : known_) {
    k.path.clear();
    k.reported = false;  // a new BlueZ session: report every device again when seen
  }
  adapterPath_.clear();
  chooseAdapter();
}

void BlePlugin::chooseAdapter() {
  std::string chosen;
  if (adapterName_ == "auto") {
    if (!adapters_.empty()) chosen = adapters_.begin()->first;
  } else if (adapters_.count("/org/bluez/" + adapterName_)) {
    chosen = "/org/bluez/" + adapterName_;
  }
  adapterPath_ = chosen;
  if (chosen.empty()) {
    setLink(Link::kNoAdapter);
    return;
  }
  if (!adapters_[chosen].powered.value_or(false)) {
    setLink(Link::kPoweredOff);
    return;
  }
  setLink(Link::kReady);
  startScanning();
  for (const auto& [path, props] : devices_) {
    if (under(path, adapterPath_)) observeDevice(path, props.rssi.has_value());
  }
  pump();
}

void BlePlugin::resetConnections(const std::string& why) {
  // Discovery, connections and in-flight commands all belong to the adapter session that just
  // ended; replies still on their way are ignored (connectToken_, job ids, scanGen_).
  stopScanning(false);
  failAllJobs(ErrorCode::kUnavailable, why);
  for (auto& [id, h] : held_) {
    if (h.idleTimer != 0) ctx_.cancelTimer(h.idleTimer);
  }
  held_.clear();
  ++connectToken_;
  connectPending_ = false;
}

void BlePlugin::dropSession(const std::string& why) {
  ++treeGen_;
  resetConnections(why);
  adapters_.clear();
  devices_.clear();
  services_.clear();
  characteristics_.clear();
  adapterPath_.clear();
  for (auto& [id, k] : known_) {
    k.path.clear();
    k.reported = false;
  }
}

void BlePlugin::onBluezOwnerChanged(bool present) {
  if (!started_) return;
  if (present) {
    ctx_.logger().info("bluetoothd appeared on the bus; reading its objects");
    dropSession("bluetoothd restarted");
    resync();
  } else {
    ctx_.logger().warn("bluetoothd left the bus; waiting for it to come back");
    dropSession("bluetoothd is not running");
    setLink(Link::kNoBluez);
    // NameOwnerChanged announces its return; polling as well costs one failing call per
    // retry_interval and does not depend on that one signal.
    armRetry([this] { resync(); });
  }
}

void BlePlugin::onBusDisconnected() {
  if (!started_ || !busUp_) return;
  ctx_.logger().warn("lost the system bus; reconnecting");
  dropSession("the system bus connection was lost");
  client_->stop();
  busUp_ = false;
  setLink(Link::kNoBus);
  armRetry([this] { connectBus(); });
}

// ------------------------------------------------------------------------------------------
// BlueZ objects

void BlePlugin::storeObject(const std::string& path, const BluezObject& object) {
  if (object.adapter) adapters_[path] = *object.adapter;
  if (object.device) devices_[path] = *object.device;
  if (object.service) {
    services_[path] = GattService{canonicalUuid(object.service->uuid.value_or("")).value_or(""),
                                  object.service->device.value_or("")};
  }
  if (object.characteristic) {
    characteristics_[path] =
        GattCharacteristic{canonicalUuid(object.characteristic->uuid.value_or("")).value_or(""),
                           object.characteristic->service.value_or("")};
  }
}

void BlePlugin::onInterfacesAdded(const std::string& path, const BluezObject& object) {
  if (!started_ || !busUp_) return;
  storeObject(path, object);
  if (object.adapter && adapterPath_.empty()) {
    ctx_.logger().info("adapter " + lastSegment(path) + " appeared");
    chooseAdapter();
    return;
  }
  if (object.device && under(path, adapterPath_)) {
    observeDevice(path, object.device->rssi.has_value());
  }
}

void BlePlugin::onInterfacesRemoved(const std::string& path,
                                    const std::vector<std::string>& interfaces) {
  if (!started_ || !busUp_) return;
  for (const auto& interface : interfaces) {
    if (interface == kAdapterInterface) {
      adapters_.erase(path);
      if (path != adapterPath_) continue;
      ctx_.logger().warn("adapter " + lastSegment(path) + " was removed");
      resetConnections("the Bluetooth adapter was removed");
      adapterPath_.clear();
      chooseAdapter();
    } else if (interface == kDeviceInterface) {
      const std::string id = deviceIdAt(path);
      devices_.erase(path);
      if (id.empty()) continue;
      auto k = known_.find(id);
      if (k != known_.end() && k->second.path == path) k->second.path.clear();
      auto h = held_.find(id);
      if (h != held_.end()) {
        if (h->second.idleTimer != 0) ctx_.cancelTimer(h->second.idleTimer);
        held_.erase(h);
      }
      for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
        if (it->second.deviceId == id && it->second.phase != Job::Phase::kQueued) {
          finishJob(it->first, Status::error(ErrorCode::kOffline, "BlueZ dropped the device"));
          break;  // one active command per device; the iterator is invalid now
        }
      }
      pump();  // queued commands for it fail now (OFFLINE), not at their timeout
    } else if (interface == kGattServiceInterface) {
      services_.erase(path);
    } else if (interface == kGattCharacteristicInterface) {
      characteristics_.erase(path);
    }
  }
}

void BlePlugin::onPropertiesChanged(const std::string& path, const std::string& /*interface*/,
                                    const BluezObject& changed,
                                    const std::vector<std::string>& invalidated) {
  if (!started_ || !busUp_) return;
  if (changed.adapter) {
    auto it = adapters_.find(path);
    if (it == adapters_.end()) return;
    const bool wasPowered = it->second.powered.value_or(false);
    if (changed.adapter->powered) it->second.powered = changed.adapter->powered;
    if (changed.adapter->discovering) it->second.discovering = changed.adapter->discovering;
    const bool powered = it->second.powered.value_or(false);
    if (path != adapterPath_ || powered == wasPowered) return;
    if (powered) {
      ctx_.logger().info("adapter " + lastSegment(path) + " powered on; re-reading BlueZ");
      resync();
    } else {
      ctx_.logger().warn("adapter " + lastSegment(path) + " powered off");
      resetConnections("the Bluetooth adapter is powered off");
      setLink(Link::kPoweredOff);
    }
    return;
  }
  if (changed.device) {
    DeviceProps& d = devices_[path];
    mergeDevice(d, *changed.device);
    for (const auto& name : invalidated) {
      if (name == "RSSI") d.rssi.reset();
      if (name == "TxPower") d.txPower.reset();
    }
    const DeviceProps& c = *changed.device;
    const bool advertised = c.rssi || c.txPower || c.manufacturerData || c.serviceData || c.uuids ||
                            c.name || (c.connected && *c.connected);
    if (c.connected && !*c.connected) d.servicesResolved = false;
    if (under(path, adapterPath_)) observeDevice(path, advertised);
    const std::string id = deviceIdAt(path);
    if (c.connected && !*c.connected && !id.empty()) onDeviceDisconnected(id);
    if (c.servicesResolved && *c.servicesResolved && resolvingJob_ != 0) {
      auto it = jobs_.find(resolvingJob_);
      if (it != jobs_.end() && it->second.path == path) servicesReady(resolvingJob_);
    }
    return;
  }
  if (changed.characteristic && changed.characteristic->value) {
    onNotification(path, *changed.characteristic->value);
  }
}

std::string BlePlugin::deviceIdAt(const std::string& path) const {
  auto it = devices_.find(path);
  if (it == devices_.end() || !it->second.address) return "";
  return deviceIdForAddress(*it->second.address);
}

// ------------------------------------------------------------------------------------------
// Discovery duty cycle

void BlePlugin::startScanning() {
  if (scanning_ || adapterPath_.empty()) return;
  scanning_ = true;
  scanOn(++scanGen_);
}

void BlePlugin::stopScanning(bool tellBluez) {
  if (!scanning_) return;
  scanning_ = false;
  ++scanGen_;
  if (scanTimer_ != 0) ctx_.cancelTimer(scanTimer_);
  scanTimer_ = 0;
  if (tellBluez && !adapterPath_.empty()) client_->stopDiscovery(adapterPath_, ignoreReply);
}

void BlePlugin::scanOn(uint64_t gen) {
  const std::string adapter = adapterPath_;
  const bool continuous = scanWindow_ >= scanInterval_;
  client_->setDiscoveryFilter(
      adapter, filterUuids_, [this, gen, adapter, continuous](const MaybeError& err) {
        if (gen != scanGen_) return;
        if (err) {
          ctx_.logger().warn("SetDiscoveryFilter failed (" + err->name + ": " + err->message +
                             "); discovering without a filter");
        }
        client_->startDiscovery(adapter, [this, gen, continuous](const MaybeError& err) {
          if (gen != scanGen_) return;
          if (!err || err->name == "org.bluez.Error.InProgress") return;
          ctx_.logger().warn("StartDiscovery failed: " + err->name + ": " + err->message);
          if (continuous) {
            scanTimer_ = ctx_.startTimer(retryInterval_, [this, gen] {
              scanTimer_ = 0;
              if (gen == scanGen_) scanOn(gen);
            });
          }
        });
      });
  if (!continuous) {
    scanTimer_ = ctx_.startTimer(scanWindow_, [this, gen] {
      scanTimer_ = 0;
      if (gen == scanGen_) scanOff(gen);
    });
  }
}

void BlePlugin::scanOff(uint64_t gen) {
  client_->stopDiscovery(adapterPath_, ignoreReply);
  scanTimer_ = ctx_.startTimer(scanInterval_ - scanWindow_, [this, gen] {
    scanTimer_ = 0;
    if (gen == scanGen_) scanOn(gen);
  });
}

// ------------------------------------------------------------------------------------------
// Devices: matching, reporting, presence

void BlePlugin::observeDevice(const std::string& path, bool seenNow) {
  auto dit = devices_.find(path);
  if (dit == devices_.end() || !dit->second.address) return;
  const DeviceProps& d = dit->second;
  const std::string id = deviceIdForAddress(*d.address);
  if (id.empty()) return;

  Advertisement adv;
  // A device that advertises no name is matched by the name BlueZ shows for it (Alias: one the
  // user gave it, else its address), as docs/ble.md says.
  adv.name = d.name ? *d.name : d.alias.value_or("");
  if (d.uuids) adv.serviceUuids = *d.uuids;
  if (d.manufacturerData) adv.manufacturerData = *d.manufacturerData;
  if (d.serviceData) adv.serviceData = *d.serviceData;
  const ProductRule* rule = matchRule(rules_, adv);
  auto kit = known_.find(id);
  if (rule == nullptr && kit == known_.end()) return;
  Known& k = known_[id];
  k.path = path;
  if (rule != nullptr) k.rule = rule;
  const bool connected = d.connected.value_or(false);
  if (!seenNow && !connected) return;  // a cached object, not a sighting

  const TimePoint t = now();
  k.lastSeen = t;
  const AdvertInfo info = advertInfo(*k.rule, adv);
  const std::string name = truncateUtf8(d.name ? *d.name : d.alias.value_or(id), kMaxNameBytes);
  const TimePoint windowEnd =
      info.bindWindowSec > 0 ? t + std::chrono::seconds(info.bindWindowSec) : TimePoint{};
  const bool windowMoved =
      windowCategory(info.bindWindowSec) != windowCategory(k.reportedWindow) ||
      (info.bindWindowSec > 0 && (windowEnd > k.reportedWindowEnd + kWindowTolerance ||
                                  k.reportedWindowEnd > windowEnd + kWindowTolerance));
  if (!k.reported || !k.online || name != k.reportedName || k.rule->model != k.reportedModel ||
      windowMoved) {
    DeviceReport r;
    r.deviceId = id;
    r.transport = kTransport;
    r.model = k.rule->model;
    r.name = name;
    r.bindWindowSec = info.bindWindowSec;
    Status s = ctx_.devices().report(r);
    if (!s.isOk()) {
      ctx_.logger().warn("reporting " + id + " failed: " + s.toString());
      return;
    }
    if (!k.reported) {
      ctx_.logger().info("reported " + id + " model " + r.model + " name '" + name +
                         "' bind window " + std::to_string(info.bindWindowSec));
    }
    k.reported = true;
    k.online = true;
    k.reportedName = name;
    k.reportedModel = k.rule->model;
    k.reportedWindow = info.bindWindowSec;
    k.reportedWindowEnd = windowEnd;
  }
  if (info.resetCounter) checkResetCounter(id, *info.resetCounter);
}

Status BlePlugin::loadResetCounters() {
  resetCounters_.clear();
  return ctx_.store().scan(kResetCounters, "", 0,
                           [this](const std::string& key, const std::string& value) {
                             char* end = nullptr;
                             const unsigned long v = std::strtoul(value.c_str(), &end, 10);
                             if (end != value.c_str() && *end == '\0' && v <= 255) {
                               resetCounters_[key] = static_cast<uint8_t>(v);
                             }
                             return true;
                           });
}

void BlePlugin::checkResetCounter(const std::string& deviceId, uint8_t counter) {
  auto it = resetCounters_.find(deviceId);
  if (it != resetCounters_.end() && it->second == counter) return;
  if (it != resetCounters_.end()) {
    // Reset first, remember second: a failure in between repeats the reset at the next
    // advertisement instead of losing it.
    ctx_.logger().info(deviceId + " was factory reset (counter " + std::to_string(it->second) +
                       " -> " + std::to_string(counter) + "); clearing its bindings");
    Status s = ctx_.devices().reportReset(deviceId);
    if (!s.isOk()) {
      ctx_.logger().warn("reportReset " + deviceId + " failed: " + s.toString());
      return;
    }
  }
  Status s = ctx_.store().put(kResetCounters, deviceId, std::to_string(counter));
  if (!s.isOk()) {
    ctx_.logger().warn("storing the reset counter of " + deviceId + " failed: " + s.toString());
    return;
  }
  resetCounters_[deviceId] = counter;
}

void BlePlugin::armSweep() {
  const Ms period = std::clamp<Ms>(offlineAfter_ / 4, Ms(1000), Ms(30000));
  sweepTimer_ = ctx_.startTimer(period, [this] {
    sweepTimer_ = 0;
    sweepOffline();
    armSweep();
  });
}

void BlePlugin::sweepOffline() {
  const TimePoint t = now();
  for (auto& [id, k] : known_) {
    if (!k.online || !k.lastSeen || t - *k.lastSeen <= offlineAfter_) continue;
    auto d = devices_.find(k.path);
    if (d != devices_.end() && d->second.connected.value_or(false)) continue;
    ctx_.logger().info(id + " silent for " + seconds(offlineAfter_) + "; offline");
    k.online = false;
    ctx_.devices().setOnline(id, false);
  }
}

bool BlePlugin::present(const std::string& deviceId) const {
  if (!started_ || link_ != Link::kReady) return false;
  auto it = known_.find(deviceId);
  if (it == known_.end() || !it->second.lastSeen) return false;
  auto d = devices_.find(it->second.path);
  if (d != devices_.end() && d->second.connected.value_or(false)) return true;
  return now() - *it->second.lastSeen <= presentWithin_;
}

// ------------------------------------------------------------------------------------------
// Control

void BlePlugin::control(const std::string& deviceId, const std::string& userId,
                        const std::string& command, const std::string& paramsJson,
                        std::function<void(Result<std::string>)> done) {
  if (!started_) {
    done(Status::error(ErrorCode::kUnavailable, "the ble plugin is not running"));
    return;
  }
  auto kit = known_.find(deviceId);
  if (kit == known_.end() || kit->second.rule == nullptr) {
    done(Status::error(ErrorCode::kOffline, deviceId + " has not been seen since the hub started"));
    return;
  }
  const ProductRule& rule = *kit->second.rule;
  if (!rule.control) {
    done(Status::error(ErrorCode::kInvalidRequest,
                       "model " + rule.model + " has no control characteristic configured"));
    return;
  }
  auto payload = commandPayload(*rule.control, command, paramsJson);
  if (!payload.isOk()) {
    done(payload.status());
    return;
  }
  if (link_ != Link::kReady) {
    const char* why = link_ == Link::kPoweredOff  ? "the Bluetooth adapter is powered off"
                      : link_ == Link::kNoAdapter ? "no Bluetooth adapter"
                                                  : "BlueZ is not reachable";
    done(Status::error(ErrorCode::kUnavailable, why));
    return;
  }
  if (jobs_.size() >= maxQueue_) {
    done(Status::error(ErrorCode::kUnavailable,
                       "too many commands waiting (" + std::to_string(maxQueue_) + ")"));
    return;
  }
  const uint64_t id = nextJobId_++;
  Job job;
  job.id = id;
  job.deviceId = deviceId;
  job.command = command;
  job.userId = userId;
  job.rule = &rule;
  job.payload = std::move(payload).value();
  job.done = std::move(done);
  job.timer = ctx_.startTimer(controlTimeout_, [this, id] {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    it->second.timer = 0;
    std::string what;
    switch (it->second.phase) {
      case Job::Phase::kQueued:
        what = "still waiting for its turn";
        break;
      case Job::Phase::kConnecting:
        what = "Device1.Connect did not complete";
        break;
      case Job::Phase::kResolving:
        what = "GATT services were not resolved";
        break;
      case Job::Phase::kWriting:
        what = "the write was not acknowledged";
        break;
      case Job::Phase::kReplying:
        what = "the device sent no reply";
        break;
    }
    finishJob(id, Status::error(ErrorCode::kTimeout, what + " within " + seconds(controlTimeout_)));
  });
  ctx_.logger().debug("command " + command + " for " + deviceId + " from " + userId + " queued");
  jobs_.emplace(id, std::move(job));
  pump();
}

void BlePlugin::pump() {
  // finishJob() pumps, and pumping can finish jobs: run one pass at a time.
  if (pumping_) {
    pumpAgain_ = true;
    return;
  }
  pumping_ = true;
  do {
    pumpAgain_ = false;
    pumpOnce();
  } while (pumpAgain_);
  pumping_ = false;
}

void BlePlugin::pumpOnce() {
  if (!started_ || link_ != Link::kReady) return;
  std::vector<uint64_t> queued;
  for (const auto& [id, job] : jobs_) {
    if (job.phase == Job::Phase::kQueued) queued.push_back(id);
  }
  for (uint64_t id : queued) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kQueued) continue;
    Job& job = it->second;
    if (deviceBusy(job.deviceId)) continue;
    auto k = known_.find(job.deviceId);
    const std::string path = k == known_.end() ? "" : k->second.path;
    auto d = devices_.find(path);
    if (path.empty() || d == devices_.end()) {
      finishJob(id, Status::error(ErrorCode::kOffline,
                                  job.deviceId + " is not in range (BlueZ does not list it)"));
      continue;
    }
    job.path = path;
    if (d->second.connected.value_or(false) && d->second.servicesResolved.value_or(false)) {
      job.phase = Job::Phase::kWriting;
      auto h = held_.find(job.deviceId);
      if (h != held_.end() && h->second.idleTimer != 0) {
        ctx_.cancelTimer(h->second.idleTimer);
        h->second.idleTimer = 0;
      }
      beginWrite(id);
      continue;
    }
    if (connectPending_ || resolvingJob_ != 0) continue;  // connects are serialised
    if (!held_.count(job.deviceId) && !makeRoomForConnection()) continue;
    startConnect(job);
  }
}

bool BlePlugin::deviceBusy(const std::string& deviceId) const {
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& e) {
    return e.second.deviceId == deviceId && e.second.phase != Job::Phase::kQueued;
  });
}

bool BlePlugin::makeRoomForConnection() {
  if (held_.size() < maxConnections_) return true;
  std::string victim;
  TimePoint oldest = TimePoint::max();
  for (const auto& [id, h] : held_) {
    if (!deviceBusy(id) && h.lastUsed < oldest) {
      oldest = h.lastUsed;
      victim = id;
    }
  }
  if (victim.empty()) return false;  // every connection is in use: wait for one to finish
  ctx_.logger().debug("closing the idle connection to " + victim + " to make room");
  closeHeld(victim);
  return true;
}

void BlePlugin::startConnect(Job& job) {
  job.phase = Job::Phase::kConnecting;
  Held& h = held_[job.deviceId];
  h.path = job.path;
  if (h.idleTimer != 0) ctx_.cancelTimer(h.idleTimer);
  h.idleTimer = 0;
  connectPending_ = true;
  const uint64_t token = ++connectToken_;
  const uint64_t id = job.id;
  const std::string deviceId = job.deviceId;
  const std::string path = job.path;
  client_->connect(path, connectTimeout_, [this, id, token, deviceId, path](const MaybeError& err) {
    if (token != connectToken_) return;  // from a dropped BlueZ session
    connectPending_ = false;
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      // The command timed out meanwhile. A connection nobody holds any more (it was closed
      // while connecting, e.g. with connection_idle 0) is given back.
      if (!err && !held_.count(deviceId)) client_->disconnect(path, ignoreReply);
      pump();
      return;
    }
    if (err && err->name != "org.bluez.Error.AlreadyConnected") {
      auto h = held_.find(deviceId);
      if (h != held_.end()) {
        if (h->second.idleTimer != 0) ctx_.cancelTimer(h->second.idleTimer);
        held_.erase(h);
      }
      finishJob(id, mapBluezError(err->name, err->message));
      return;
    }
    afterConnect(id);
  });
}

void BlePlugin::afterConnect(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  job.phase = Job::Phase::kResolving;
  resolvingJob_ = id;
  if (resolveTimer_ != 0) ctx_.cancelTimer(resolveTimer_);
  resolveTimer_ = ctx_.startTimer(connectTimeout_, [this, id] {
    resolveTimer_ = 0;
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kResolving) return;
    finishJob(id, Status::error(ErrorCode::kTimeout,
                                "connected, but BlueZ did not resolve the GATT services within " +
                                    seconds(connectTimeout_)));
  });
  auto d = devices_.find(job.path);
  if (d != devices_.end() && d->second.servicesResolved.value_or(false)) {
    servicesReady(id);
    return;
  }
  // ServicesResolved may have flipped before our cache saw it (e.g. someone else connected
  // the device); ask once, and otherwise wait for the PropertiesChanged signal.
  client_->getDeviceProperties(job.path, [this, id](const MaybeError& err, DeviceProps props) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.phase != Job::Phase::kResolving || err) return;
    auto d = devices_.find(it->second.path);
    if (d != devices_.end()) mergeDevice(d->second, props);
    if (props.servicesResolved.value_or(false)) servicesReady(id);
  });
}

void BlePlugin::servicesReady(uint64_t id) {
  if (resolvingJob_ == id) {
    resolvingJob_ = 0;
    if (resolveTimer_ != 0) ctx_.cancelTimer(resolveTimer_);
    resolveTimer_ = 0;
  }
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  it->second.phase = Job::Phase::kWriting;
  beginWrite(id);
  pump();  // the connect slot is free for the next device
}

std::string BlePlugin::findCharacteristic(const std::string& devicePath,
                                          const std::string& serviceUuid,
                                          const std::string& uuid) const {
  for (const auto& [path, c] : characteristics_) {
    if (c.uuid != uuid || !under(path, devicePath)) continue;
    auto s = services_.find(c.service);
    if (!serviceUuid.empty() && (s == services_.end() || s->second.uuid != serviceUuid)) continue;
    return path;
  }
  return "";
}

void BlePlugin::beginWrite(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  const ControlSpec& spec = *job.rule->control;
  job.charPath = findCharacteristic(job.path, spec.serviceUuid, spec.characteristicUuid);
  job.replyPath = spec.reply == ReplyMode::kNone ? ""
                                                 : findCharacteristic(job.path, spec.serviceUuid,
                                                                      spec.replyCharacteristicUuid);
  if (job.charPath.empty() || (spec.reply != ReplyMode::kNone && job.replyPath.empty())) {
    if (!job.refreshedGatt) {
      // Signals for GATT objects may have been missed (e.g. resolved before a resync): read
      // the tree once more before giving up.
      job.refreshedGatt = true;
      client_->getManagedObjects([this, id](const MaybeError& err, ObjectTree tree) {
        auto it = jobs_.find(id);
        if (it == jobs_.end() || it->second.phase != Job::Phase::kWriting) return;
        if (!err) {
          for (const auto& [path, object] : tree) {
            if (!object.service && !object.characteristic) continue;
            BluezObject gatt;
            gatt.service = object.service;
            gatt.characteristic = object.characteristic;
            storeObject(path, gatt);
          }
        }
        beginWrite(id);
      });
      return;
    }
    const std::string missing =
        job.charPath.empty() ? spec.characteristicUuid : spec.replyCharacteristicUuid;
    finishJob(id, Status::error(ErrorCode::kUnavailable,
                                "characteristic " + missing + " not found on " + job.deviceId +
                                    " (check the product rule of model " + job.rule->model + ")"));
    return;
  }
  if (spec.reply != ReplyMode::kNotify) {
    writeNow(id);
    return;
  }
  const std::string replyPath = job.replyPath;
  client_->startNotify(replyPath, [this, id, replyPath](const MaybeError& err) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      if (!err) client_->stopNotify(replyPath, ignoreReply);
      return;
    }
    if (err) {
      finishJob(id, mapBluezError(err->name, err->message));
      return;
    }
    it->second.notifying = true;
    writeNow(id);
  });
}

void BlePlugin::writeNow(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  const Job& job = it->second;
  client_->writeValue(
      job.charPath, job.payload, job.rule->control->withResponse, controlTimeout_,
      [this, id](const MaybeError& err) {
        auto it = jobs_.find(id);
        if (it == jobs_.end()) return;
        Job& job = it->second;
        if (err) {
          finishJob(id, mapBluezError(err->name, err->message), kFromDevice);
          return;
        }
        job.written = true;
        switch (job.rule->control->reply) {
          case ReplyMode::kNone:
            finishJob(id, resultJson(job, std::nullopt), kFromDevice);
            return;
          case ReplyMode::kRead:
            client_->readValue(
                job.replyPath, controlTimeout_, [this, id](const MaybeError& err, Bytes value) {
                  auto it = jobs_.find(id);
                  if (it == jobs_.end()) return;
                  if (err) {
                    finishJob(id, mapBluezError(err->name, err->message), kFromDevice);
                  } else {
                    finishJob(id, resultJson(it->second, value), kFromDevice);
                  }
                });
            return;
          case ReplyMode::kNotify:
            if (job.notified) {
              finishJob(id, resultJson(job, job.notified), kFromDevice);
            } else {
              job.phase = Job::Phase::kReplying;
            }
            return;
        }
      });
}

void BlePlugin::onNotification(const std::string& path, const Bytes& value) {
  for (auto& [id, job] : jobs_) {
    if (!job.notifying || job.replyPath != path) continue;
    if (job.phase != Job::Phase::kWriting && job.phase != Job::Phase::kReplying) continue;
    if (job.written) {
      finishJob(id, resultJson(job, value), kFromDevice);
    } else if (!job.notified) {
      job.notified = value;
    }
    return;  // one active command per device, so one per characteristic
  }
}

void BlePlugin::onDeviceDisconnected(const std::string& deviceId) {
  auto h = held_.find(deviceId);
  if (h != held_.end()) {
    if (h->second.idleTimer != 0) ctx_.cancelTimer(h->second.idleTimer);
    held_.erase(h);
  }
  for (const auto& [id, job] : jobs_) {
    if (job.deviceId != deviceId) continue;
    if (job.phase == Job::Phase::kQueued || job.phase == Job::Phase::kConnecting) continue;
    finishJob(id, Status::error(ErrorCode::kOffline,
                                deviceId + " disconnected before the command completed"));
    return;  // one active command per device; the iterator is invalid now
  }
  pump();  // a connection slot may have freed up
}

std::string BlePlugin::resultJson(const Job& job, const std::optional<Bytes>& reply) const {
  Object o;
  o.set("deviceId", job.deviceId);
  o.set("command", job.command);
  o.set("written", toHex(job.payload));
  if (reply) o.set("reply", toHex(*reply));
  return toText(o);
}

void BlePlugin::finishJob(uint64_t id, Result<std::string> result, bool fromDevice) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Job job = std::move(it->second);
  jobs_.erase(it);
  if (job.timer != 0) ctx_.cancelTimer(job.timer);
  if (resolvingJob_ == id) {
    resolvingJob_ = 0;
    if (resolveTimer_ != 0) ctx_.cancelTimer(resolveTimer_);
    resolveTimer_ = 0;
  }
  if (job.notifying && busUp_) client_->stopNotify(job.replyPath, ignoreReply);
  if (job.phase != Job::Phase::kQueued) releaseHeld(job.deviceId);
  if (result.isOk()) {
    ctx_.logger().debug("command " + job.command + " for " + job.deviceId + " done");
  } else {
    ctx_.logger().info("command " + job.command + " for " + job.deviceId +
                       " failed: " + result.status().toString());
  }
  if (fromDevice) notifyControlReply(job, result);
  job.done(std::move(result));
  pump();
}

// Bound users hear every answer a device gave (controlReply, as from wifi_lan): the command's
// result, or the error the device itself answered a write or read of its characteristic with.
// No answer — TIMEOUT, OFFLINE (it disconnected), a command that never reached the device — is
// controlDevice's answer alone.
void BlePlugin::notifyControlReply(const Job& job, const Result<std::string>& result) {
  if (!result.isOk() && (result.status().code() == ErrorCode::kTimeout ||
                         result.status().code() == ErrorCode::kOffline)) {
    return;
  }
  Object data(Poco::JSON_PRESERVE_KEY_ORDER);
  data.set("deviceId", job.deviceId);
  data.set("userId", job.userId);
  data.set("command", job.command);
  data.set("ok", result.isOk());
  if (result.isOk()) {
    try {
      data.set("result", Poco::JSON::Parser().parse(result.value()));
    } catch (const Poco::Exception&) {
      return;  // resultJson() made it, so this does not happen
    }
  } else {
    Object::Ptr error = new Object;
    error->set("code", errorCodeName(result.status().code()));
    error->set("message", result.status().message());
    data.set("error", error);
  }
  ctx_.devices().notifyBoundUsers(job.deviceId, "controlReply", toText(data));
}

void BlePlugin::failAllJobs(ErrorCode code, const std::string& why) {
  // Nothing may start while the queue is being emptied.
  const bool wasPumping = pumping_;
  pumping_ = true;
  std::vector<uint64_t> ids;
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  for (uint64_t id : ids) finishJob(id, Status::error(code, why));
  pumping_ = wasPumping;
  pumpAgain_ = false;
}

void BlePlugin::releaseHeld(const std::string& deviceId) {
  auto it = held_.find(deviceId);
  if (it == held_.end() || deviceBusy(deviceId)) return;
  Held& h = it->second;
  h.lastUsed = now();
  if (h.idleTimer != 0) ctx_.cancelTimer(h.idleTimer);
  h.idleTimer = 0;
  if (connectionIdle_.count() == 0) {
    closeHeld(deviceId);
    return;
  }
  h.idleTimer = ctx_.startTimer(connectionIdle_, [this, deviceId] {
    auto it = held_.find(deviceId);
    if (it == held_.end()) return;
    it->second.idleTimer = 0;
    if (deviceBusy(deviceId)) return;
    closeHeld(deviceId);
    pump();
  });
}

void BlePlugin::closeHeld(const std::string& deviceId) {
  auto it = held_.find(deviceId);
  if (it == held_.end()) return;
  if (it->second.idleTimer != 0) ctx_.cancelTimer(it->second.idleTimer);
  if (busUp_) client_->disconnect(it->second.path, ignoreReply);
  held_.erase(it);
}

}  // namespace hearth::ble
