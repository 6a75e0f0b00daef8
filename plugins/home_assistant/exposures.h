#pragma once
// The devices owners show to Home Assistant, durable in the plugin's KvStore (collection
// "exposed", key = device id, value {"owner","since"}), mirrored in memory. Hub loop only.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "hearth/host.h"

namespace hearth::home_assistant {

struct Exposure {
  std::string owner;  // the user who exposed it; HA's commands run as this user
  int64_t sinceMs = 0;
};

class Exposures {
 public:
  explicit Exposures(KvStore& store) : store_(store) {}

  // Reads every exposure; unreadable rows are skipped (and counted).
  Status load(size_t* unreadable = nullptr);
  // Durable before it returns; the memory copy changes only when the write succeeded.
  Status expose(const std::string& deviceId, const Exposure& e);
  Status withdraw(const std::string& deviceId);

  const Exposure* find(const std::string& deviceId) const;
  const std::map<std::string, Exposure>& all() const { return byDevice_; }

 private:
  KvStore& store_;
  std::map<std::string, Exposure> byDevice_;
};

}  // namespace hearth::home_assistant
