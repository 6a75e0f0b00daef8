#include "bridge_status.h"

#include "hearth/util/json.h"

namespace hearth::cloud_bridge {

const char* cloudStateName(CloudState s) {
  switch (s) {
    case CloudState::kConnecting:
      return "connecting";
    case CloudState::kConnected:
      return "connected";
    case CloudState::kBackingOff:
      return "backing_off";
  }
  return "connecting";
}

std::string BridgeStatus::toJson() const {
  Poco::JSON::Object o;
  o.set("connected", state == CloudState::kConnected);
  o.set("state", cloudStateName(state));
  o.set("local", localConnected ? "connected" : "disconnected");
  o.set("endpoint", endpoint);
  o.set("outbox", outbox);
  o.set("outboxBytes", outboxBytes);
  o.set("dropped", dropped);
  o.set("rejected", rejected);
  o.set("forwarded", forwarded);
  o.set("deliveredIn", deliveredIn);
  o.set("inDropped", inDropped);
  o.set("attempts", attempts);
  if (state == CloudState::kBackingOff) o.set("retryDelayMs", retryDelayMs);
  o.set("lastError", lastError);
  if (!localConnected && !localError.empty()) o.set("localError", localError);
  if (storageFull) o.set("storageFull", true);
  return json::text(o);
}

PluginState BridgeStatus::pluginState() const {
  if (state == CloudState::kConnected && localConnected) return PluginState::kRunning;
  if (!lastError.empty() || (!localConnected && !localError.empty())) {
    return PluginState::kDegraded;
  }
  return PluginState::kWaiting;
}

}  // namespace hearth::cloud_bridge
