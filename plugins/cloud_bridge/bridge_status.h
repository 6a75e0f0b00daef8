#pragma once
// What the bridge shows in hub/status (details.cloud_bridge) and the plugin state derived from
// it. Pure value type; JSON through hearth/util/json.h.

#include <cstdint>
#include <string>

#include "hearth/host.h"

namespace hearth::cloud_bridge {

enum class CloudState { kConnecting, kConnected, kBackingOff };

const char* cloudStateName(CloudState s);

struct BridgeStatus {
  CloudState state = CloudState::kConnecting;
  bool localConnected = false;
  std::string endpoint;  // host:port of the cloud broker
  uint64_t outbox = 0;   // records waiting for a cloud PUBACK
  uint64_t outboxBytes = 0;
  uint64_t dropped = 0;      // total dropped (bounds, damaged records), persisted with the outbox
  uint64_t rejected = 0;     // refused by the cloud broker (PUBACK reason >= 0x80), this run
  uint64_t forwarded = 0;    // acknowledged by the cloud broker, this run
  uint64_t deliveredIn = 0;  // cloud messages published locally, this run
  uint64_t inDropped = 0;    // cloud messages that could not be published locally, this run
  uint64_t attempts = 0;     // cloud connection attempts, this run
  int64_t retryDelayMs = 0;  // the current backoff delay while backing off
  std::string lastError;     // the last cloud connection error; cleared on connect
  std::string localError;    // the last local broker connection error; cleared on connect
  bool storageFull = false;  // the outbox cannot grow: the state disk is full

  // {"connected","state","local","endpoint","outbox","outboxBytes","dropped","rejected",
  //  "forwarded","deliveredIn","inDropped","attempts","retryDelayMs"?,"lastError","localError"?,
//  "storageFull"? (only while true)}
  std::string toJson() const;
  // running when both connections are up; degraded with an error; waiting otherwise.
  PluginState pluginState() const;
};

}  // namespace hearth::cloud_bridge
