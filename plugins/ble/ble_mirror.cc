// ble: the link (system bus, bluetoothd, adapter) and the mirror of BlueZ's objects, kept
// current from InterfacesAdded/Removed and PropertiesChanged and re-read when BlueZ returns.
#include "ble_plugin.h"

#include <algorithm>
#include <utility>

#include "ble_shared.h"

namespace hearth::ble {

using namespace detail;

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
  const std::string text = json::text(detail);
  ctx_.logger().info(std::string("state ") + pluginStateName(state) + " " + text);
  ctx_.setState(state, text);
}

void BlePlugin::armRetry(std::function<void()> fn) {
  retryTimer_ = ctx_.after(retryInterval_, std::move(fn));
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
  if (busConnectedBefore_) ctx_.count("bus_reconnects");
  busConnectedBefore_ = true;
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
  retryTimer_.cancel();
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
  held_.clear();  // and their idle timers
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
    ctx_.count("bluez_restarts");
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
  ctx_.count("bus_disconnects");
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
    if (object.device->rssi) ctx_.count("adverts_seen");
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
      held_.erase(id);
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
    const bool advert =
        c.rssi || c.txPower || c.manufacturerData || c.serviceData || c.uuids || c.name;
    const bool advertised = advert || (c.connected && *c.connected);
    if (c.connected && !*c.connected) d.servicesResolved = false;
    if (under(path, adapterPath_)) {
      if (advert) ctx_.count("adverts_seen");
      observeDevice(path, advertised);
    }
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

}  // namespace hearth::ble
