#include "binding/service.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/SHA2Engine.h>
#include <Poco/UTF8Encoding.h>

#include "control/params.h"
#include "identity/random.h"

namespace hearth::binding {
namespace {

void answer(const Responder& res, const Outcome& out, const Poco::JSON::Object& result) {
  if (!out.isOk()) return res.error(out.status.code(), out.status.message());
  res.ok(toJson(result));
}

Poco::JSON::Object::Ptr shareJson(const Share& s, const Device& d) {
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
  o->set("sharingId", s.sharingId);
  o->set("deviceId", s.deviceId);
  o->set("model", d.model);
  o->set("name", d.name);
  o->set("fromUser", s.fromUser);
  o->set("way", shareWayName(s.way));
  if (!s.guest.empty()) o->set("guest", s.guest);
  o->set("state", shareStateName(s.state));
  o->set("createdAt", s.createdAtMs);
  o->set("expiresAt", s.expiresAtMs);
  return o;
}

std::string notificationJson(const NotificationData& n) {
  Poco::JSON::Object o;
  if (!n.deviceId.empty()) o.set("deviceId", n.deviceId);
  if (!n.reason.empty()) o.set("reason", n.reason);
  if (n.role) o.set("role", roleName(*n.role));
  if (!n.userId.empty()) o.set("userId", n.userId);
  if (!n.sharingId.empty()) o.set("sharingId", n.sharingId);
  if (!n.fromUser.empty()) o.set("fromUser", n.fromUser);
  if (!n.model.empty()) o.set("model", n.model);
  if (!n.name.empty()) o.set("name", n.name);
  if (n.expiresAtMs) o.set("expiresAt", *n.expiresAtMs);
  return toJson(o);
}

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
  if (Status s = store_.loadAll(&devices_, &meta_, &tokens_); !s) return s;
  for (const auto& [id, d] : devices_) index(d);
  // Shares and tokens that expired while the hub was down.
  std::vector<std::string> ids;
  for (const auto& [id, d] : devices_) ids.push_back(id);
  for (const auto& id : ids)
    mutate(id, [&](Device& d) { return policy_.expire(d, deps_.clock.nowMs()); });
  for (const auto& [id, d] : devices_) scheduleExpiry(d);
  armExpiryTimer();
  deps_.logger.info("binding engine: " + std::to_string(devices_.size()) + " devices, " +
                    std::to_string(bindingCount()) + " bindings");
  return Status::ok();
}

size_t BindingService::bindingCount() const {
  size_t n = 0;
  for (const auto& [id, d] : devices_) n += d.bindings.size();
  return n;
}

// ---- state changes ----------------------------------------------------------------------------

Outcome BindingService::mutate(const std::string& deviceId,
                               const std::function<Outcome(Device&)>& op, ProvisionToken* token) {
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) {
    Outcome out;
    out.status = Status::error(ErrorCode::kNotFound, "no device " + deviceId);
    return out;
  }
  Device copy = it->second;
  Outcome out = op(copy);
  if (!out.isOk() || !out.changed) return out;
  // A device whose discovery record is still waiting for its batch (flushDiscovered) is not on
  // disk as it is in memory: write all of it, which also settles that batch for it.
  bool pending = discoveredDirty_.count(deviceId) != 0;
  Status saved =
      store_.saveDevice(copy, meta_[deviceId], out.audit, token, pending ? nullptr : &it->second);
  if (!saved) {
    // A full disk is the household's to fix and answers so (STORAGE_FULL); the database
    // reports it once, not on every refused change.
    if (saved.code() != ErrorCode::kStorageFull) {
      deps_.logger.error("could not persist device " + deviceId + ": " + saved.message());
    }
    out.status = saved.code() == ErrorCode::kStorageFull
                     ? saved
                     : Status::error(ErrorCode::kInternal, "could not store the change");
    out.changed = false;
    out.notifications.clear();
    return out;
  }
  if (pending) discoveredDirty_.erase(deviceId);
  markUnsynced();
  unindex(it->second);
  it->second = std::move(copy);
  index(it->second);
  scheduleExpiry(it->second);
  armExpiryTimer();
  afterDurable([this, notes = out.notifications, deviceId] {
    commitNotifications(notes);
    if (publishBus_) publishBus_(events::kBindingChanged, deviceEventData(deviceId));
  });
  return out;
}

void BindingService::markUnsynced() {
  // With the hub's background sync the syncer was asked at commit; otherwise (tests, tools)
  // one sync runs once the loop has handled what it read in this turn (every request already
  // in the socket), so one fsync serves all of them.
  if (deps_.db.backgroundSync() || settlePosted_) return;
  settlePosted_ = true;
  deps_.loop.post([this] {
    settlePosted_ = false;
    if (Status s = deps_.db.settle(); !s) {
      deps_.logger.error("binding changes may not be on disk: " + s.message());
    }
  });
}

void BindingService::afterDurable(std::function<void()> run, std::function<void()> failed) {
  // Database::afterSynced keeps the order: callbacks run by commit number, then as registered.
  deps_.db.afterSynced([run = std::move(run), failed = std::move(failed)](bool ok) {
    if (ok) {
      run();
    } else if (failed) {
      failed();
    }
  });
}

bool BindingService::settle() {
  // The caller hands a result to a transport plugin that acts on it at once (a device's
  // provisioning answer): the one place the hub loop waits for the disk.
  Status s = deps_.db.syncNow();
  if (!s) deps_.logger.error("binding changes may not be on disk: " + s.message());
  return s.isOk();
}

namespace {

// Hands a binding request's answer to the service's group commit (afterDurable).
class DurableSink : public ResponseSink {
 public:
  DurableSink(std::function<void(std::function<void()>, std::function<void()>)> defer,
              Responder res)
      : defer_(std::move(defer)), res_(std::move(res)) {}
  void sendOk(std::string resultJson) override {
    defer_([res = res_, json = std::move(resultJson)] { res.ok(json); }, failed());
  }
  void sendError(ErrorCode code, std::string message) override {
    defer_([res = res_, code, msg = std::move(message)] { res.error(code, msg); }, failed());
  }

 private:
  std::function<void()> failed() const {
    return [res = res_] { res.error(ErrorCode::kInternal, "could not store the change"); };
  }
  std::function<void(std::function<void()>, std::function<void()>)> defer_;
  Responder res_;
};

}  // namespace

Responder BindingService::durableResponder(Responder res) {
  return Responder(std::make_shared<DurableSink>(
      [this](std::function<void()> run, std::function<void()> failed) {
        afterDurable(std::move(run), std::move(failed));
      },
      std::move(res)));
}

void BindingService::commitNotifications(const std::vector<Notification>& notes) {
  for (const auto& n : notes) {
    deps_.notifyUser(n.userId, eventName(n.event), notificationJson(n.data));
  }
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
  auto old = expiryOf_.find(d.deviceId);
  if (old != expiryOf_.end()) {
    auto range = expiries_.equal_range(old->second);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == d.deviceId) {
        expiries_.erase(it);
        break;
      }
    }
    expiryOf_.erase(old);
  }
  if (auto next = policy_.nextExpiryMs(d)) {
    expiries_.emplace(*next, d.deviceId);
    expiryOf_[d.deviceId] = *next;
  }
}

void BindingService::armExpiryTimer() {
  int64_t next = expiries_.empty() ? 0 : expiries_.begin()->first;
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
  std::vector<std::string> due;
  for (auto it = expiries_.begin(); it != expiries_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  for (const auto& id : due) {
    mutate(id, [&](Device& d) { return policy_.expire(d, now); });
    scheduleExpiry(devices_.at(id));
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
  auto it = devices_.find(r.deviceId);
  bool isNew = it == devices_.end();
  if (!isNew && it->second.transport != r.transport) {
    return Status::error(ErrorCode::kConflict,
                         "device " + r.deviceId + " belongs to transport " + it->second.transport);
  }
  Device d = isNew ? Device{} : it->second;
  DeviceMeta m = isNew ? DeviceMeta{} : meta_[r.deviceId];
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
  if (!isNew) unindex(it->second);
  devices_[r.deviceId] = std::move(d);
  meta_[r.deviceId] = m;
  index(devices_[r.deviceId]);
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
      auto it = devices_.find(id);
      if (it == devices_.end()) continue;
      if (Status saved = store_.saveDevice(it->second, meta_[id], {}); !saved) return saved;
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
  auto it = devices_.find(deviceId);
  if (it == devices_.end() || it->second.online == online) return;
  it->second.online = online;
  notifyBoundUsers(deviceId, online ? "deviceOnline" : "deviceOffline", deviceEventData(deviceId));
}

Result<std::string> BindingService::presentProvisionToken(const std::string& deviceId,
                                                          const std::string& token) {
  auto tok = tokens_.find(hashSecret(token));
  if (tok == tokens_.end()) {
    return Status::error(ErrorCode::kTokenInvalid, "unknown provisioning token");
  }
  if (!devices_.count(deviceId)) {
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
  auto dev = devices_.find(deviceId);
  if (dev == devices_.end()) {
    return Status::error(ErrorCode::kNotFound, "device " + deviceId + " was never reported");
  }
  if (findBinding(dev->second, t.userId) != nullptr) {
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

size_t BindingService::notifyBoundUsers(const std::string& deviceId, const std::string& event,
                                        const std::string& dataJson) {
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return 0;
  size_t n = 0;
  for (const auto& b : it->second.bindings) {
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
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return std::nullopt;
  const Device& d = it->second;
  DeviceInfo info;
  info.deviceId = d.deviceId;
  info.transport = d.transport;
  info.model = d.model;
  info.name = d.name;
  auto m = meta_.find(deviceId);
  if (m != meta_.end()) info.firmware = m->second.firmware;
  info.bindMode = modeName(d.mode);
  if (const Binding* owner = findOwner(d)) info.ownerId = owner->userId;
  info.online = d.online;
  return info;
}

void BindingService::controlAs(const std::string& userId, const std::string& deviceId,
                               const std::string& command, const std::string& paramsJson,
                               const std::string& via,
                               std::function<void(Result<std::string>)> done) {
  auto it = devices_.find(deviceId);
  if (it == devices_.end())
    return done(Status::error(ErrorCode::kNotFound, "no device " + deviceId));
  auto audit = delegatedControl(it->second, userId, command, via, deps_.clock.nowMs());
  if (!audit) return done(audit.status());
  auto t = transports_.find(it->second.transport);
  if (t == transports_.end()) {
    return done(Status::error(ErrorCode::kUnavailable,
                              "the " + it->second.transport + " transport plugin is not running"));
  }
  if (!it->second.online) return done(Status::error(ErrorCode::kOffline, deviceId + " is offline"));
  if (Status s = store_.appendAudit({audit.value()}); !s) {
    deps_.logger.error("could not record a command via " + via + ": " + s.message());
    return done(Status::error(ErrorCode::kInternal, "could not record the command"));
  }
  markUnsynced();
  t->second.impl->control(deviceId, userId, command, paramsJson, std::move(done));
}

std::vector<std::string> BindingService::boundUsers(const std::string& deviceId) const {
  std::vector<std::string> out;
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return out;
  for (const auto& b : it->second.bindings) out.push_back(b.userId);
  return out;
}

// ---- requests ---------------------------------------------------------------------------------

Status BindingService::registerMethods(RequestRouter& router) {
  struct M {
    const char* name;
    MethodScope scope;
    void (BindingService::*fn)(const Request&, const Params&, const Responder&);
  };
  const M methods[] = {
      {"provisionBegin", MethodScope::kUser, &BindingService::provisionBegin},
      {"bindDevice", MethodScope::kUser, &BindingService::bindDevice},
      {"shareDevice", MethodScope::kUser, &BindingService::shareDevice},
      {"scanShare", MethodScope::kUser, &BindingService::scanShare},
      {"listShares", MethodScope::kUser, &BindingService::listShares},
      {"unbindDevice", MethodScope::kUser, &BindingService::unbindDevice},
      {"removeMember", MethodScope::kUser, &BindingService::removeMember},
      {"getBoundDevices", MethodScope::kUser, &BindingService::getBoundDevices},
      {"getDeviceDetail", MethodScope::kUser, &BindingService::getDeviceDetail},
      {"controlDevice", MethodScope::kUser, &BindingService::controlDevice},
      {"adminUnbindDevice", MethodScope::kAdmin, &BindingService::adminUnbindDevice},
      {"auditLog", MethodScope::kAdmin, &BindingService::auditLog},
      {"devices", MethodScope::kAdmin, &BindingService::listDevices},
  };
  for (const auto& m : methods) {
    auto fn = m.fn;
    Status s = router.registerCoreMethod(
        m.name, m.scope, [this, fn](const Request& req, const Params& p, Responder res) {
          (this->*fn)(req, p, durableResponder(std::move(res)));
        });
    if (!s) return s;
  }
  for (const char* how : {"acceptShare", "rejectShare", "cancelShare"}) {
    std::string h = how;
    Status s = router.registerCoreMethod(
        how, MethodScope::kUser, [this, h](const Request& req, const Params& p, Responder res) {
          answerShare(req, p, durableResponder(std::move(res)), h);
        });
    if (!s) return s;
  }
  return Status::ok();
}

void BindingService::provisionBegin(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.optionalIdentifier("deviceId").value_or("");
  std::string token = randomHex(16);  // 128 bits
  ProvisionToken t =
      policy_.issueProvisionToken(hashSecret(token), req.userId, deviceId, deps_.clock.nowMs());
  if (Status s = store_.saveToken(t); !s) return res.error(s.code(), s.message());
  tokens_[t.tokenHash] = t;
  armExpiryTimer();
  Poco::JSON::Object r;
  r.set("token", token);
  r.set("expiresAt", t.expiresAtMs);
  if (!deviceId.empty()) r.set("deviceId", deviceId);
  res.ok(toJson(r));
}

void BindingService::bindDevice(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  // Presence is the transport's call (BLE: seen within its window); no transport, no presence.
  auto t = transports_.find(it->second.transport);
  bool present = it->second.online && t != transports_.end() && t->second.impl->present(deviceId);
  Outcome out = mutate(deviceId, [&](Device& d) {
    d.online = present;
    Outcome o = policy_.bindDevice(d, req.userId, deps_.clock.nowMs());
    d.online = it->second.online;
    return o;
  });
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  if (out.role) r.set("role", roleName(*out.role));
  answer(res, out, r);
}

void BindingService::shareDevice(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  std::string way = p.string("way", 16);
  int64_t now = deps_.clock.nowMs();
  std::string sharingId = "s-" + randomHex(12);
  Poco::JSON::Object r;
  r.set("sharingId", sharingId);
  if (way == "qr") {
    std::string key = randomHex(16);  // 128 bits, shown once, stored hashed
    Outcome out = mutate(deviceId, [&](Device& d) {
      return policy_.shareByQr(d, req.userId, sharingId, hashSecret(key), now);
    });
    r.set("qrKey", key);
    r.set("expiresAt", out.expiresAtMs);
    return answer(res, out, r);
  }
  if (way == "account") {
    std::string guest = p.identifier("guest");
    bool exists = deps_.identity.userExists(guest);
    Outcome out = mutate(deviceId, [&](Device& d) {
      return policy_.shareByAccount(d, req.userId, sharingId, guest, exists, now);
    });
    r.set("expiresAt", out.expiresAtMs);
    return answer(res, out, r);
  }
  res.error(ErrorCode::kInvalidRequest, "\"way\" must be \"qr\" or \"account\"");
}

void BindingService::scanShare(const Request& req, const Params& p, const Responder& res) {
  std::string key = p.string("qrKey", 128);
  int64_t now = deps_.clock.nowMs();
  if (Status s = limiter_.check(req.userId, now); !s) return res.error(s.code(), s.message());
  std::string hash = hashSecret(key);
  auto it = deviceByKeyHash_.find(hash);
  if (it == deviceByKeyHash_.end()) {
    limiter_.recordFailure(req.userId, now);
    return res.error(ErrorCode::kTokenInvalid, "unknown share key");
  }
  std::string deviceId = it->second;
  Outcome out =
      mutate(deviceId, [&](Device& d) { return policy_.scanShare(d, req.userId, hash, now); });
  if (!out.isOk() && countsAsFailedScan(out.status.code())) {
    limiter_.recordFailure(req.userId, now);
  }
  const Device& d = devices_.at(deviceId);
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  r.set("model", d.model);
  r.set("name", d.name);
  if (out.role) r.set("role", roleName(*out.role));
  answer(res, out, r);
}

void BindingService::listShares(const Request& req, const Params& p, const Responder& res) {
  std::string direction = p.optionalString("direction", 16).value_or("toMe");
  if (direction != "toMe" && direction != "fromMe") {
    return res.error(ErrorCode::kInvalidRequest, "\"direction\" must be \"toMe\" or \"fromMe\"");
  }
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const Device* d : devicesByUser_.devicesOf(req.userId)) {
    auto shares =
        direction == "toMe" ? sharesToUser(*d, req.userId) : sharesFromUser(*d, req.userId);
    for (const auto& s : shares) list->add(shareJson(s, *d));
  }
  Poco::JSON::Object r;
  r.set("shares", list);
  res.ok(toJson(r));
}

void BindingService::answerShare(const Request& req, const Params& p, const Responder& res,
                                 const std::string& how) {
  std::string sharingId = p.identifier("sharingId");
  auto it = deviceBySharingId_.find(sharingId);
  if (it == deviceBySharingId_.end()) {
    return res.error(ErrorCode::kNotFound, "no share " + sharingId);
  }
  std::string deviceId = it->second;
  int64_t now = deps_.clock.nowMs();
  Outcome out = mutate(deviceId, [&](Device& d) {
    if (how == "acceptShare") return policy_.acceptShare(d, req.userId, sharingId, now);
    if (how == "rejectShare") return policy_.rejectShare(d, req.userId, sharingId, now);
    return policy_.cancelShare(d, req.userId, sharingId, now);
  });
  Poco::JSON::Object r;
  r.set("sharingId", sharingId);
  r.set("deviceId", deviceId);
  if (out.role) r.set("role", roleName(*out.role));
  answer(res, out, r);
}

void BindingService::unbindDevice(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  Outcome out = mutate(
      deviceId, [&](Device& d) { return policy_.unbind(d, req.userId, deps_.clock.nowMs()); });
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  answer(res, out, r);
}

void BindingService::removeMember(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  std::string member = p.identifier("userId");
  Outcome out = mutate(deviceId, [&](Device& d) {
    return policy_.removeMember(d, req.userId, member, deps_.clock.nowMs());
  });
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  r.set("userId", member);
  answer(res, out, r);
}

void BindingService::getBoundDevices(const Request& req, const Params&, const Responder& res) {
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const Device* d : devicesByUser_.devicesOf(req.userId)) {
    const Binding* b = findBinding(*d, req.userId);
    if (b == nullptr) continue;  // only a sharer or invitee of this device
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("deviceId", d->deviceId);
    o->set("model", d->model);
    o->set("name", d->name);
    o->set("transport", d->transport);
    o->set("role", roleName(b->role));
    o->set("online", d->online);
    o->set("boundAt", b->boundAtMs);
    list->add(o);
  }
  Poco::JSON::Object r;
  r.set("devices", list);
  res.ok(toJson(r));
}

void BindingService::getDeviceDetail(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  const Device& d = it->second;
  auto members = visibleMembers(d, req.userId);
  if (!members) return res.error(members.status().code(), members.status().message());
  Poco::JSON::Array::Ptr rel = new Poco::JSON::Array;
  for (const auto& b : members.value()) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("userId", b.userId);
    o->set("role", roleName(b.role));
    o->set("boundAt", b.boundAtMs);
    rel->add(o);
  }
  Poco::JSON::Object r;
  r.set("deviceId", d.deviceId);
  r.set("model", d.model);
  r.set("name", d.name);
  r.set("transport", d.transport);
  r.set("bindMode", modeName(d.mode));
  r.set("online", d.online);
  r.set("relAccounts", rel);
  for (const auto& [key, detail] : detailProviders_) {
    std::string json = detail.fn(deviceId, req.userId);
    if (json.empty()) continue;
    try {
      r.set(key, Poco::JSON::Parser().parse(json));
    } catch (const std::exception& e) {
      deps_.logger.error("detail " + key + " of " + detail.owner + " is not JSON: " + e.what());
    }
  }
  res.ok(toJson(r));
}

void BindingService::controlDevice(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  std::string command = p.string("command", 64);
  std::string params = "{}";
  if (p.has("params")) {
    auto v = p.object()->get("params");
    if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
      return res.error(ErrorCode::kInvalidRequest, "\"params\" must be an object");
    }
    params = toJson(*v.extract<Poco::JSON::Object::Ptr>());
  }
  auto it = devices_.find(deviceId);
  if (it == devices_.end()) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  // Only bound users command a device through the hub (closing the LAN gap of 004 §3.2).
  if (findBinding(it->second, req.userId) == nullptr) {
    return res.error(ErrorCode::kForbidden, "you are not bound to " + deviceId);
  }
  auto t = transports_.find(it->second.transport);
  if (t == transports_.end()) {
    return res.error(ErrorCode::kUnavailable,
                     "the " + it->second.transport + " transport plugin is not running");
  }
  if (!it->second.online) return res.error(ErrorCode::kOffline, deviceId + " is offline");
  t->second.impl->control(deviceId, req.userId, command, params, [res](Result<std::string> r) {
    if (!r) return res.error(r.status().code(), r.status().message());
    res.ok(r.value());
  });
}

void BindingService::adminUnbindDevice(const Request& req, const Params& p, const Responder& res) {
  std::string deviceId = p.identifier("deviceId");
  Outcome out = mutate(
      deviceId, [&](Device& d) { return policy_.adminUnbind(d, "admin", deps_.clock.nowMs()); });
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  answer(res, out, r);
}

void BindingService::auditLog(const Request& req, const Params& p, const Responder& res) {
  BindingStore::AuditQuery q;
  q.deviceId = p.optionalIdentifier("deviceId");
  q.sinceMs = p.optionalInt("since");
  if (auto limit = p.optionalInt("limit")) {
    if (*limit < 1 || *limit > 10000) {
      return res.error(ErrorCode::kInvalidRequest, "\"limit\" must be 1 to 10000");
    }
    q.limit = static_cast<int>(*limit);
  }
  auto entries = store_.audit(q);
  if (!entries) return res.error(entries.status().code(), entries.status().message());
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const auto& a : entries.value()) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("at", a.atMs);
    o->set("actor", a.actor);
    o->set("deviceId", a.deviceId);
    o->set("action", a.action);
    o->set("subject", a.subject);
    o->set("reason", a.reason);
    list->add(o);
  }
  Poco::JSON::Object r;
  r.set("entries", list);
  res.ok(toJson(r));
}

void BindingService::listDevices(const Request&, const Params&, const Responder& res) {
  Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
  for (const auto& [id, d] : devices_) {
    const DeviceMeta& m = meta_.at(id);
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("deviceId", id);
    o->set("transport", d.transport);
    o->set("model", d.model);
    o->set("name", d.name);
    o->set("firmware", m.firmware);
    o->set("bindMode", modeName(d.mode));
    o->set("bindable", !m.inventoryOnly && inBindWindow(d, deps_.clock.nowMs()));
    o->set("inventoryOnly", m.inventoryOnly);
    o->set("online", d.online);
    o->set("lastSeen", m.lastSeenMs);
    o->set("bindings", d.bindings.size());
    const Binding* owner = findOwner(d);
    if (owner) o->set("owner", owner->userId);
    list->add(o);
  }
  Poco::JSON::Object r;
  r.set("devices", list);
  res.ok(toJson(r));
}

}  // namespace hearth::binding
