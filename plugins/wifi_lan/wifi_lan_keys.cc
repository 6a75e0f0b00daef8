// wifi_lan: the devices' keys and counters in the KvStore, and authenticating a message by them.
#include "wifi_lan_plugin.h"

#include <Poco/Exception.h>

#include "wifi_lan_shared.h"

namespace hearth::wifi_lan {

using namespace detail;

namespace {

// The stored record of a device key: {"key": hex, "token": SHA-256 hex, "ctr": high-water}.
template <typename Device>
std::string keyRecord(const Device& d) {
  json::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("key", lan::toHex(d.key));
  o.set("token", d.keyTokenHash);
  o.set("ctr", static_cast<Poco::UInt64>(d.counterHighWater));
  return json::text(o);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Key storage

Status WifiLanPlugin::loadKeys() {
  size_t bad = 0;
  Status s = ctx_.store().scan(
      kKeyCollection, "", 0, [&](const std::string& id, const std::string& value) {
        try {
          json::Params record(value);  // throws InvalidParam for a record that is not an object
          std::string key =
              lan::fromHex(record.optionalString("key", 2 * lan::kKeyBytes).value_or(""));
          std::string token = record.optionalString("token").value_or("");
          int64_t ctr = record.optionalInt("ctr").value_or(0);
          if (!isValidIdentifier(id) || key.size() != lan::kKeyBytes || ctr < 0) {
            ++bad;
            return true;
          }
          LanDevice& d = devices_[id];
          d.key = key;
          d.keyTokenHash = token;
          d.counterHighWater = static_cast<uint64_t>(ctr);
        } catch (const json::InvalidParam&) {
          ++bad;
        } catch (const Poco::Exception&) {
          ++bad;  // a counter beyond int64
        }
        return true;
      });
  if (!s) return s;
  if (bad > 0) ctx_.logger().warn("ignored " + std::to_string(bad) + " unreadable device keys");
  return Status::ok();
}

void WifiLanPlugin::saveKey(const std::string& deviceId, const LanDevice& d) {
  Status s = ctx_.store().put(kKeyCollection, deviceId, keyRecord(d));
  if (!s) {
    ctx_.logger().error("could not store the LAN key of " + deviceId + ": " + s.toString());
  }
}

void WifiLanPlugin::eraseKey(const std::string& deviceId) {
  Status s = ctx_.store().erase(kKeyCollection, deviceId);
  if (!s) ctx_.logger().error("could not erase the LAN key of " + deviceId + ": " + s.toString());
}

void WifiLanPlugin::flushCounters() {
  // Counters advance with every authenticated message; they are stored at stop (and with every
  // key change) rather than per message, so a replay window opens only after a crash.
  Status s = ctx_.store().transaction([&]() -> Status {
    for (auto& [id, d] : devices_) {
      if (!d.counterDirty || d.key.empty()) continue;
      if (Status w = ctx_.store().put(kKeyCollection, id, keyRecord(d)); !w) return w;
    }
    return Status::ok();
  });
  if (!s) {
    ctx_.logger().warn("could not store the device counters: " + s.toString());
    return;
  }
  for (auto& [id, d] : devices_) d.counterDirty = false;
}

bool WifiLanPlugin::acceptCounter(LanDevice& d, uint64_t counter) {
  switch (lan::checkCounter(d.counterHighWater, counter)) {
    case lan::CounterVerdict::kFresh:
      return true;
    case lan::CounterVerdict::kDuplicate:
      count(DropReason::kDuplicate);
      return false;
    case lan::CounterVerdict::kReplay:
      count(DropReason::kReplay);
      return false;
  }
  return false;
}

WifiLanPlugin::LanDevice* WifiLanPlugin::authenticate(const Message& m) {
  auto it = devices_.find(m.id);
  if (it == devices_.end() || it->second.key.empty()) {
    count(DropReason::kUnknownDevice);
    return nullptr;
  }
  LanDevice& d = it->second;
  if (!lan::verifyMac(d.key, m.body, m.mac)) {
    count(DropReason::kMac);
    return nullptr;
  }
  // Only after the MAC: a forged counter must not move the high-water mark.
  if (!acceptCounter(d, m.ctr)) return nullptr;
  d.counterHighWater = m.ctr;
  d.counterDirty = true;
  return &d;
}

}  // namespace hearth::wifi_lan
