#pragma once
// The in-process event bus: the core and plugins publish named events with a JSON payload;
// handlers run on the hub loop in publication order.

#include <functional>
#include <string>

namespace hearth {

using EventHandler = std::function<void(const std::string& topic, const std::string& dataJson)>;

// Topics the core publishes.
namespace events {
// {"userId","clientId","appId","deviceModel","deviceName","openId"} after a terminal's hello.
inline constexpr const char* kTerminalHello = "terminal.hello";
// {"userId","clientId"} when a terminal's presence topic says online / offline (or its Will).
inline constexpr const char* kTerminalOnline = "terminal.online";
inline constexpr const char* kTerminalOffline = "terminal.offline";
// {"userId"} when a user account is removed.
inline constexpr const char* kUserRemoved = "user.removed";
// {} when the control plane (re)connected to the broker.
inline constexpr const char* kBrokerConnected = "broker.connected";
// {"deviceId","state":{...}} when a transport reports a device's state (deviceState).
inline constexpr const char* kDeviceState = "device.state";
// {"deviceId"} when a device's presence changes.
inline constexpr const char* kDeviceOnline = "device.online";
inline constexpr const char* kDeviceOffline = "device.offline";
// {"deviceId"} after a change to a device's bindings or shares is durable (bind, unbind,
// preemption, removal, reset, ...); Devices::deviceInfo tells the new owner.
inline constexpr const char* kBindingChanged = "binding.changed";
// {"deviceId"} when a known device reports a new model, name or firmware.
inline constexpr const char* kDeviceChanged = "device.changed";
// {"userId","clientId","via"} whenever a terminal shows it is there without a change of
// presence: via "request" after each request it publishes (the request is handled first),
// via "presence" when it publishes `online` while already online (a reconnect without a Will).
inline constexpr const char* kTerminalSeen = "terminal.seen";
}  // namespace events

}  // namespace hearth
