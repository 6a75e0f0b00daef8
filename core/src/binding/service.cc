#include "binding/service.h"

#include <Poco/JSON/Object.h>
#include <Poco/SHA2Engine.h>
#include <malloc.h>

#include "control/params.h"

namespace hearth::binding {

BindingService::BindingService(ServiceDeps deps) : deps_(std::move(deps)), store_(deps_.db) {}

std::string BindingService::hashSecret(const std::string& secret) {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(secret);
  return Poco::DigestEngine::digestToHex(sha.digest());
}

void BindingService::configure(const config::HubConfig& cfg) {
  PolicyConfig pc;
  pc.provisionTtlMs = cfg.provisionTtl.count();
  pc.qrTtlMs = cfg.qrTtl.count();
  pc.inviteTtlMs = cfg.inviteTtl.count();
  pc.maxMembers = cfg.maxMembers;
  policy_ = BindingPolicy(pc);
  RateLimitConfig rc;
  rc.maxFailures = cfg.maxFailedScans;
  rc.windowMs = cfg.failedScanWindow.count();
  rc.blockMs = cfg.failedScanWindow.count();
  limiter_ = ScanRateLimiter(rc);
  products_.clear();
  for (const auto& p : cfg.products) {
    products_.push_back(ProductRule{p.model, parseMode(p.mode).value_or(Mode::kShareRequired)});
  }
  defaults_.wifi = parseMode(cfg.wifiDefaultMode).value_or(Mode::kPreemptive);
  defaults_.ble = parseMode(cfg.bleDefaultMode).value_or(Mode::kShareRequired);
}

Status BindingService::load(const config::HubConfig& cfg) {
  configure(cfg);
  if (Status s = store_.loadAll(&devices_, &tokens_); !s) return s;
  for (const DeviceEntry& e : devices_) index(e.device);
  devicesByUser_.compact();
  // Shares and tokens that expired while the hub was down. Only devices with something due are
  // copied through mutate (most devices hold no share at all). These are the load's first
  // writes: they wait for the database's integrity check, which may still be running.
  if (Status s = deps_.db.checked(); !s) return s;
  const int64_t now = deps_.clock.nowMs();
  std::vector<std::string> due;
  for (const DeviceEntry& e : devices_) {
    std::optional<int64_t> at = policy_.nextExpiryMs(e.device);
    if (at && *at <= now) due.push_back(e.device.deviceId);
  }
  for (const auto& id : due) mutate(id, [&](Device& d) { return policy_.expire(d, now); });
  for (const DeviceEntry& e : devices_) scheduleExpiry(e.device);
  armExpiryTimer();
  // The load left its garbage in the heap (rows read, lists grown then made exact): give the
  // free pages back to the system once, instead of holding the load's peak for the hub's life.
  ::malloc_trim(0);
  deps_.logger.info("binding engine: " + std::to_string(devices_.size()) + " devices, " +
                    std::to_string(bindingCount()) + " bindings");
  return Status::ok();
}

size_t BindingService::bindingCount() const {
  size_t n = 0;
  for (const DeviceEntry& e : devices_) n += e.device.bindings.size();
  return n;
}

void BindingService::index(const Device& d) {
  for (const auto& b : d.bindings) devicesByUser_.add(b.userId, &d);
  for (const auto& s : d.shares) {
    deviceBySharingId_[s.sharingId] = d.deviceId;
    if (!s.keyHash.empty()) deviceByKeyHash_[s.keyHash] = d.deviceId;
    devicesByUser_.add(s.fromUser, &d);
    if (!s.guest.empty()) devicesByUser_.add(s.guest, &d);
  }
}

void BindingService::unindex(const Device& d) {
  auto drop = [&](const std::string& user) { devicesByUser_.remove(user, &d); };
  for (const auto& b : d.bindings) drop(b.userId);
  for (const auto& s : d.shares) {
    deviceBySharingId_.erase(s.sharingId);
    if (!s.keyHash.empty()) deviceByKeyHash_.erase(s.keyHash);
    drop(s.fromUser);
    if (!s.guest.empty()) drop(s.guest);
  }
}

void BindingService::scheduleExpiry(const Device& d) {
  if (auto next = policy_.nextExpiryMs(d)) {
    expiries_.set(d.deviceId, *next);
  } else {
    expiries_.erase(d.deviceId);
  }
}

void BindingService::armExpiryTimer() {
  int64_t next = expiries_.empty() ? 0 : expiries_.earliest();
  // Tokens are swept on the same timer, at least hourly.
  int64_t now = deps_.clock.nowMs();
  int64_t hourly = now + kHourMs;
  int64_t at = next == 0 ? hourly : std::min(next, hourly);
  if (expiryTimer_ != 0 && expiryTimerAt_ == at) return;
  if (expiryTimer_ != 0) deps_.loop.cancelTimer(expiryTimer_);
  expiryTimerAt_ = at;
  expiryTimer_ =
      deps_.loop.startTimer(std::chrono::milliseconds(std::max<int64_t>(0, at - now)), [this] {
        expiryTimer_ = 0;
        runExpiry();
      });
}

void BindingService::runExpiry() {
  int64_t now = deps_.clock.nowMs();
  for (const auto& id : expiries_.due(now)) {
    mutate(id, [&](Device& d) { return policy_.expire(d, now); });
    if (const DeviceEntry* e = devices_.find(id)) scheduleExpiry(e->device);
  }
  for (auto it = tokens_.begin(); it != tokens_.end();) {
    if (policy_.tokenDisposableAtMs(it->second) <= now && store_.deleteToken(it->first)) {
      it = tokens_.erase(it);
    } else {
      ++it;
    }
  }
  limiter_.prune(now);
  armExpiryTimer();
}

void BindingService::removeUser(const std::string& userId) {
  std::vector<std::string> ids;
  for (const Device* d : devicesByUser_.devicesOf(userId)) ids.push_back(d->deviceId);
  int64_t now = deps_.clock.nowMs();
  for (const auto& id : ids) {
    mutate(id, [&](Device& d) {
      Outcome out = findBinding(d, userId) ? policy_.unbind(d, userId, now) : Outcome{};
      // Invitations to the removed user are declined on its behalf.
      for (const auto& s : std::vector<Share>(d.shares)) {
        if (s.state == ShareState::kPending && s.way == ShareWay::kAccount && s.guest == userId) {
          Outcome r = policy_.rejectShare(d, userId, s.sharingId, now);
          out.changed = out.changed || r.changed;
          out.audit.insert(out.audit.end(), r.audit.begin(), r.audit.end());
          out.notifications.insert(out.notifications.end(), r.notifications.begin(),
                                   r.notifications.end());
        }
      }
      return out;
    });
  }
  // Called while the account removal is being answered: its consequences are durable before
  // the answer (the hub holds answers until the commits before them are synced; without
  // background sync this syncs now).
  if (!ids.empty() && !deps_.db.settle()) {
    deps_.logger.error("binding changes of removing " + userId + " may not be on disk");
  }
}

size_t BindingService::notifyBoundUsers(const std::string& deviceId, const std::string& event,
                                        const std::string& dataJson) {
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return 0;
  size_t n = 0;
  for (const auto& b : e->device.bindings) {
    deps_.notifyUser(b.userId, event, dataJson);
    ++n;
  }
  // The same reports for in-process listeners (home_assistant), bound users or not.
  if (publishBus_) {
    if (event == "deviceState") publishBus_(events::kDeviceState, dataJson);
    if (event == "deviceOnline") publishBus_(events::kDeviceOnline, dataJson);
    if (event == "deviceOffline") publishBus_(events::kDeviceOffline, dataJson);
  }
  return n;
}

std::optional<DeviceInfo> BindingService::deviceInfo(const std::string& deviceId) const {
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return std::nullopt;
  const Device& d = e->device;
  DeviceInfo info;
  info.deviceId = d.deviceId;
  info.transport = d.transport;
  info.model = d.model;
  info.name = d.name;
  info.firmware = e->meta.firmware;
  info.bindMode = modeName(d.mode);
  if (const Binding* owner = findOwner(d)) info.ownerId = owner->userId;
  info.online = d.online;
  return info;
}

void BindingService::controlAs(const std::string& userId, const std::string& deviceId,
                               const std::string& command, const std::string& paramsJson,
                               const std::string& via,
                               std::function<void(Result<std::string>)> done) {
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return done(Status::error(ErrorCode::kNotFound, "no device " + deviceId));
  const Device& d = e->device;
  auto audit = delegatedControl(d, userId, command, via, deps_.clock.nowMs());
  if (!audit) return done(audit.status());
  auto t = transports_.find(d.transport);
  if (t == transports_.end()) {
    return done(Status::error(ErrorCode::kUnavailable,
                              "the " + d.transport + " transport plugin is not running"));
  }
  if (!d.online) return done(Status::error(ErrorCode::kOffline, deviceId + " is offline"));
  if (Status s = store_.appendAudit({audit.value()}); !s) {
    deps_.logger.error("could not record a command via " + via + ": " + s.message());
    return done(Status::error(ErrorCode::kInternal, "could not record the command"));
  }
  markUnsynced();
  t->second.impl->control(deviceId, userId, command, paramsJson, std::move(done));
}

std::vector<std::string> BindingService::boundUsers(const std::string& deviceId) const {
  std::vector<std::string> out;
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return out;
  for (const auto& b : e->device.bindings) out.push_back(b.userId);
  return out;
}

}  // namespace hearth::binding
