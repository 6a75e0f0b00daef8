#pragma once
// What the ble sources share inside the plugin: the transport's name, the store collection,
// reporting limits and small helpers for BlueZ paths and properties. JSON goes through the
// tree's one helper, hearth/util/json.h. Internal to plugins/ble.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "bluez_client.h"
#include "hearth/util/json.h"

namespace hearth::ble::detail {

using json::Object;

inline constexpr const char* kTransport = "ble";
inline constexpr const char* kResetCounters = "reset_counters";  // device id -> last reset counter
// A bind window that keeps counting down on the device needs no new report; one whose end
// moved by more than this does.
inline constexpr std::chrono::seconds kWindowTolerance{2};
inline constexpr size_t kMaxNameBytes = 128;  // what the core accepts in DeviceReport::name

inline std::string lastSegment(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

inline bool under(const std::string& path, const std::string& parent) {
  return !parent.empty() && path.size() > parent.size() + 1 &&
         path.compare(0, parent.size(), parent) == 0 && path[parent.size()] == '/';
}

inline void mergeDevice(DeviceProps& into, const DeviceProps& c) {
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

inline int windowCategory(int32_t w) { return w < 0 ? -1 : (w == 0 ? 0 : 1); }

inline bool validAdapterName(const std::string& name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

inline std::string seconds(std::chrono::milliseconds d) {
  std::ostringstream out;
  out << static_cast<double>(d.count()) / 1000.0 << "s";
  return out.str();
}

inline void ignoreReply(const MaybeError&) {}

}  // namespace hearth::ble::detail
