// ble: devices a product rule matches, reported to the core (name, model, bind window), their
// reset counters, and presence (present(), the offline sweep).
#include "ble_plugin.h"

#include <algorithm>

#include "ble_shared.h"

namespace hearth::ble {

using namespace detail;

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
    ctx_.count("device_reports");
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
    ctx_.count("device_resets");
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
  sweepTimer_ = ctx_.after(period, [this] {
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
    ctx_.count("devices_offline");
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

}  // namespace hearth::ble
