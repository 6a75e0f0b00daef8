#pragma once
// The messages the plugin exchanges with Home Assistant, built from a device and its mapping:
// the device-based discovery config (homeassistant/device/<node>/config, HA 2024.11+, with
// HA's documented abbreviations), the state document in HA's JSON, and HA's commands turned
// into hearth controlDevice calls. Pure: no MQTT, no core.

#include <optional>
#include <string>

#include "ha_mapping.h"
#include "hearth/host.h"

namespace hearth::home_assistant {

// Where the plugin publishes, from the configured prefixes.
struct Topics {
  std::string discoveryPrefix = "homeassistant";
  std::string base = "hearth/v1/ha";  // state, availability and command topics live below it
  std::string hubStatus = "hearth/v1/hub/status";

  std::string config(const std::string& node) const {
    return discoveryPrefix + "/device/" + node + "/config";
  }
  std::string birth() const { return discoveryPrefix + "/status"; }
  std::string state(const std::string& node) const { return base + "/" + node + "/state"; }
  std::string availability(const std::string& node) const {
    return base + "/" + node + "/availability";
  }
  std::string command(const std::string& node, const std::string& component) const {
    return base + "/" + node + "/" + component + "/set";
  }
};

// What `o` and `via_device` say about this hub.
struct Origin {
  std::string hubNode;  // identifier of the hub's own HA device ("hearth_hub_<name>")
  std::string hubName;
  std::string version;
  std::string url;  // support_url: where the household manages the hub; empty = left out
};

struct DiscoveryOptions {
  // expire_after (seconds) on the sensors of BLE devices, which report by advertising; 0: none.
  int64_t bleExpireAfterSec = 600;
};

// The retained discovery config of one device (JSON text).
std::string deviceConfig(const DeviceInfo& device, const Mapping& mapping, const Topics& topics,
                         const Origin& origin, const DiscoveryOptions& options);

// The hub's own HA device: a connectivity binary_sensor on hearth/v1/hub/status, so that
// via_device names a device HA knows.
std::string hubConfig(const Topics& topics, const Origin& origin);

// A device state report (deviceState's "state" object, JSON text) in HA's JSON: "state"
// ON/OFF for lamps and plugs (and "brightness"), "lock" LOCKED/UNLOCKED, "contact" ON/OFF
// (ON = open), and every mapped reading under its own key. Keys the device did not report are
// left out; nullopt when the report is not a JSON object.
std::optional<std::string> haState(const Mapping& mapping, const std::string& deviceStateJson);

// A command HA sent on the command topic of `component`, as a controlDevice call.
struct DeviceCommand {
  std::string command;
  std::string paramsJson;
};
Result<DeviceCommand> deviceCommand(const Mapping& mapping, const std::string& component,
                                    const std::string& payload);

// Component keys of cmps for a mapping, in the order of the config ("light", "switch", ...).
std::vector<std::string> componentKeys(const Mapping& mapping);

}  // namespace hearth::home_assistant
