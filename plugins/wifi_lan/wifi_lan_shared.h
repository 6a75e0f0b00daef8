#pragma once
// What the wifi_lan sources share inside the plugin: the LAN protocol's names and the plugin's
// pacing constants. JSON goes through the tree's one helper, hearth/util/json.h.
// Internal to plugins/wifi_lan.

#include <chrono>
#include <cstdint>

#include "hearth/util/json.h"
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

}  // namespace hearth::wifi_lan::detail
