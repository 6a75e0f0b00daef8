#pragma once
// What the wifi_lan sources share inside the plugin: the LAN protocol's names, the plugin's
// pacing constants and the JSON text helpers. Internal to plugins/wifi_lan.

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>

#include "lan_protocol.h"

namespace hearth::wifi_lan::detail {

using lan::DropReason;
using lan::Message;
using lan::MessageType;

inline constexpr auto kStatusPeriod = std::chrono::milliseconds(1000);
inline constexpr int64_t kWindowSlackMs = 2000;
// Devices reported to the core for the first time, per second at most. A new record is a
// durable commit in the core; a LAN full of devices appearing at once (a hub restart, a flood
// of forged ids) must not hold the hub loop for seconds and starve the control plane. Deferred
// devices are reported from a later announcement.
inline constexpr double kNewDevicesPerSecond = 200;

using Obj = Poco::JSON::Object;

inline std::string stringify(const Obj& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

inline Obj::Ptr parseObject(const std::string& text) {
  Poco::Dynamic::Var v = Poco::JSON::Parser().parse(text);
  if (v.type() != typeid(Obj::Ptr)) return nullptr;
  return v.extract<Obj::Ptr>();
}

}  // namespace hearth::wifi_lan::detail
