#include "exposures.h"

#include "hearth/util/json.h"

namespace hearth::home_assistant {
namespace {
constexpr const char* kCollection = "exposed";
}

Status Exposures::load(size_t* unreadable) {
  byDevice_.clear();
  size_t bad = 0;
  Status s = store_.scan(kCollection, "", 0, [&](const std::string& key, const std::string& value) {
    try {
      auto o = json::parseObject(value);
      Exposure e;
      e.owner = o->getValue<std::string>("owner");
      e.sinceMs = o->getValue<int64_t>("since");
      if (!isValidIdentifier(key) || !isValidIdentifier(e.owner)) throw std::runtime_error("id");
      byDevice_[key] = e;
    } catch (const std::exception&) {
      ++bad;
    }
    return true;
  });
  if (unreadable != nullptr) *unreadable = bad;
  return s;
}

Status Exposures::expose(const std::string& deviceId, const Exposure& e) {
  json::Object o;
  o.set("owner", e.owner);
  o.set("since", e.sinceMs);
  if (Status s = store_.put(kCollection, deviceId, json::text(o)); !s) return s;
  byDevice_[deviceId] = e;
  return Status::ok();
}

Status Exposures::withdraw(const std::string& deviceId) {
  if (!byDevice_.count(deviceId)) return Status::ok();
  if (Status s = store_.erase(kCollection, deviceId); !s) return s;
  byDevice_.erase(deviceId);
  return Status::ok();
}

const Exposure* Exposures::find(const std::string& deviceId) const {
  auto it = byDevice_.find(deviceId);
  return it == byDevice_.end() ? nullptr : &it->second;
}

}  // namespace hearth::home_assistant
