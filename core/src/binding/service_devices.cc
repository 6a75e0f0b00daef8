// The binding engine's device inventory: transports, what they report (discovery records
// written in batches), presence, provisioning and resets, and delegated control.
#include <Poco/JSON/Object.h>
#include <Poco/UTF8Encoding.h>

#include "binding/service.h"
#include "control/params.h"

namespace hearth::binding {
namespace {

// Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool isUtf8(const std::string& s) {
  Poco::UTF8Encoding utf8;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const int n = utf8.sequenceLength(p, static_cast<int>(end - p));
    if (n <= 0 || n > end - p || !Poco::UTF8Encoding::isLegal(p, n)) return false;
    p += n;
  }
  return true;
}

}  // namespace

// ---- Devices (transport plugins) --------------------------------------------------------------

Status BindingService::registerTransport(const std::string& transport, DeviceTransport* t,
                                         const std::string& owner) {
  if (t == nullptr || !isValidIdentifier(transport)) {
    return Status::error(ErrorCode::kInvalidRequest, "invalid transport registration");
  }
  auto [it, inserted] = transports_.try_emplace(transport, Transport{t, owner});
  if (!inserted) {
    return Status::error(ErrorCode::kConflict,
                         "transport " + transport + " is served by " + it->second.owner);
  }
  return Status::ok();
}

void BindingService::unregisterOwner(const std::string& owner) {
  std::erase_if(transports_, [&](const auto& kv) { return kv.second.owner == owner; });
  std::erase_if(detailProviders_, [&](const auto& kv) { return kv.second.owner == owner; });
}

Status BindingService::addDetailProvider(const std::string& key, DetailProvider fn,
                                         const std::string& owner) {
  static const std::set<std::string> kCoreKeys = {"deviceId", "model",  "name",       "transport",
                                                  "bindMode", "online", "relAccounts"};
  if (!fn || !isValidIdentifier(key) || kCoreKeys.count(key)) {
    return Status::error(ErrorCode::kInvalidRequest, "invalid detail key " + key);
  }
  auto [it, inserted] = detailProviders_.try_emplace(key, Detail{std::move(fn), owner});
  if (!inserted) {
    return Status::error(ErrorCode::kConflict,
                         "detail " + key + " is served by " + it->second.owner);
  }
  return Status::ok();
}

Status BindingService::report(const DeviceReport& r) {
  if (!isValidIdentifier(r.deviceId) || !isValidIdentifier(r.transport)) {
    return Status::error(ErrorCode::kInvalidRequest, "invalid device or transport id");
  }
  if (r.model.size() > 128 || r.name.size() > 128 || r.firmware.size() > 64) {
    return Status::error(ErrorCode::kInvalidRequest, "model/name/firmware too long");
  }
  // They end up in JSON answers (devices, getBoundDevices, ...); one byte that is not UTF-8
  // would turn every such answer into INTERNAL, and transports see raw network bytes (SSDP).
  if (!isUtf8(r.model) || !isUtf8(r.name) || !isUtf8(r.firmware)) {
    return Status::error(ErrorCode::kInvalidRequest, "model/name/firmware must be UTF-8");
  }
  int64_t now = deps_.clock.nowMs();
  DeviceEntry* entry = devices_.find(r.deviceId);
  bool isNew = entry == nullptr;
  if (!isNew && entry->device.transport != r.transport) {
    return Status::error(ErrorCode::kConflict, "device " + r.deviceId + " belongs to transport " +
                                                   entry->device.transport);
  }
  Device d = isNew ? Device{} : entry->device;
  DeviceMeta m = isNew ? DeviceMeta{} : entry->meta;
  bool persist = isNew || d.model != r.model || d.name != r.name || m.firmware != r.firmware ||
                 m.inventoryOnly != r.inventoryOnly;
  if (isNew) {
    d.deviceId = r.deviceId;
    d.transport = r.transport;
    // The mode is resolved once, at discovery, and fixed in the record (SPEC §3).
    d.mode = resolveMode(r.model, r.transport, products_, defaults_);
    m.firstSeenMs = now;
  }
  d.model = r.model;
  d.name = r.name;
  m.firmware = r.firmware;
  m.inventoryOnly = r.inventoryOnly;
  m.lastSeenMs = now;
  // The window is the device's current word, kept in memory; it is persisted only with other
  // changes, since presence must be re-learned after a restart anyway.
  d.bindWindowMs =
      r.inventoryOnly || r.bindWindowSec < 0 ? kBindWindowClosed : int64_t{r.bindWindowSec} * 1000;
  d.bindWindowReportedAtMs = now;
  bool cameOnline = !d.online;
  d.online = true;
  if (persist) {
    // Discovery is not a user's change: records are written in batches (one commit per
    // 100 ms), so that a LAN full of new devices costs a few commits, not one fsync each. A
    // record lost to a crash in between is simply discovered again.
    discoveredDirty_.insert(r.deviceId);
    if (discoveredTimer_ == 0) {
      discoveredTimer_ = deps_.loop.startTimer(std::chrono::milliseconds(100), [this] {
        discoveredTimer_ = 0;
        flushDiscovered();
      });
    }
  }
  if (isNew) {
    entry = devices_.insert(std::move(d), std::move(m)).first;
  } else {
    unindex(entry->device);
    DeviceTable::replace(*entry, std::move(d));
    entry->meta = std::move(m);
  }
  index(entry->device);
  if (cameOnline && !isNew)
    notifyBoundUsers(r.deviceId, "deviceOnline", deviceEventData(r.deviceId));
  if (persist && !isNew && publishBus_) {
    publishBus_(events::kDeviceChanged, deviceEventData(r.deviceId));
  }
  return Status::ok();
}

void BindingService::flushDiscovered() {
  if (discoveredDirty_.empty()) return;
  std::set<std::string> ids;
  ids.swap(discoveredDirty_);
  Status s = deps_.db.transaction([&] {
    for (const auto& id : ids) {
      const DeviceEntry* e = devices_.find(id);
      if (e == nullptr) continue;
      if (Status saved = store_.saveDevice(e->device, e->meta, {}); !saved) return saved;
    }
    return Status::ok();
  });
  // A full disk was said once by the database's monitor; the records come again with the
  // devices' next announcements.
  if (!s && s.code() != ErrorCode::kStorageFull) {
    deps_.logger.error("could not store discovered devices: " + s.message());
  }
}

std::string BindingService::deviceEventData(const std::string& deviceId) const {
  Poco::JSON::Object o;
  o.set("deviceId", deviceId);
  return toJson(o);
}

void BindingService::setOnline(const std::string& deviceId, bool online) {
  DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr || e->device.online == online) return;
  e->device.online = online;
  notifyBoundUsers(deviceId, online ? "deviceOnline" : "deviceOffline", deviceEventData(deviceId));
}

Result<std::string> BindingService::presentProvisionToken(const std::string& deviceId,
                                                          const std::string& token) {
  auto tok = tokens_.find(hashSecret(token));
  if (tok == tokens_.end()) {
    return Status::error(ErrorCode::kTokenInvalid, "unknown provisioning token");
  }
  if (devices_.find(deviceId) == nullptr) {
    return Status::error(ErrorCode::kNotFound, "device " + deviceId + " was never reported");
  }
  ProvisionToken spent = tok->second;
  Outcome out = mutate(
      deviceId, [&](Device& d) { return policy_.provision(d, spent, deps_.clock.nowMs()); },
      &spent);
  if (!out.isOk()) {
    Poco::JSON::Object data;
    data.set("deviceId", deviceId);
    data.set("reason", errorCodeName(out.status.code()));
    data.set("message", out.status.message());
    deps_.notifyUser(tok->second.userId, "provisionFailed", toJson(data));
    return out.status;
  }
  // The device acts on this answer at once: the change must be on disk first.
  if (out.changed && !settle()) {
    return Status::error(ErrorCode::kInternal, "could not store the change");
  }
  if (!out.changed && spent != tok->second) {
    // The token was spent without a device change (re-provisioning by the bound user).
    if (Status s = store_.saveToken(spent); !s) return s;
  }
  tok->second = spent;
  return tok->second.userId;
}

Status BindingService::refuseProvisionToken(const std::string& deviceId, const std::string& token) {
  auto tok = tokens_.find(hashSecret(token));
  if (tok == tokens_.end()) {
    return Status::error(ErrorCode::kTokenInvalid, "unknown provisioning token");
  }
  const ProvisionToken& t = tok->second;
  // Only a token that could still have bound the device earns its user the news: a used,
  // expired or misdirected one tells nobody anything.
  if (t.used) return Status::error(ErrorCode::kTokenUsed, "provisioning token was already used");
  if (!t.deviceId.empty() && t.deviceId != deviceId) {
    return Status::error(ErrorCode::kTokenInvalid,
                         "provisioning token was issued for another device");
  }
  if (deps_.clock.nowMs() >= t.expiresAtMs) {
    return Status::error(ErrorCode::kTokenExpired, "provisioning token has expired");
  }
  const DeviceEntry* dev = devices_.find(deviceId);
  if (dev == nullptr) {
    return Status::error(ErrorCode::kNotFound, "device " + deviceId + " was never reported");
  }
  if (findBinding(dev->device, t.userId) != nullptr) {
    return Status::error(ErrorCode::kConflict, "the token's user is bound to the device already");
  }
  Poco::JSON::Object data;
  data.set("deviceId", deviceId);
  data.set("reason", "taken");
  data.set("message",
           "device " + deviceId + " was set up by someone else first and is bound to them");
  deps_.notifyUser(t.userId, "provisionFailed", toJson(data));
  return Status::ok();
}

Status BindingService::reportReset(const std::string& deviceId) {
  Outcome out =
      mutate(deviceId, [&](Device& d) { return policy_.deviceReset(d, deps_.clock.nowMs()); });
  if (out.changed && !settle()) {
    return Status::error(ErrorCode::kInternal, "could not store the change");
  }
  return out.status;
}

}  // namespace hearth::binding
