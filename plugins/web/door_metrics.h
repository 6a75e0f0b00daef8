#pragma once
// The front door's counters as hub/status shows them (a JSON object under details.web) and as
// GET /metrics serves them (Prometheus text exposition format 0.0.4), with every plugin's
// counters (PluginContext::count) as hearth_plugin_counter{plugin,name}.

#include <Poco/JSON/Object.h>

#include <mutex>
#include <string>
#include <vector>

#include "door_guard.h"
#include "hearth/sdk/context.h"

namespace hearth::web {

// The plugins' counters as of the last snapshot: set on the hub loop (the web plugin's status
// timer), read by the /metrics threads, which may not call the plugin context. Thread-safe.
class PluginCounterSnapshot {
 public:
  void set(std::vector<PluginCounter> counters) {
    std::lock_guard<std::mutex> lock(mu_);
    counters_ = std::move(counters);
  }
  std::vector<PluginCounter> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counters_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<PluginCounter> counters_;
};

Poco::JSON::Object::Ptr countersJson(DoorGuard& guard);
std::string prometheusText(DoorGuard& guard, const std::vector<PluginCounter>& plugins = {});

}  // namespace hearth::web
