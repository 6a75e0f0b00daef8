// The binding engine's request methods (docs/mqtt-api.md): each gets the router's parsed
// params and answers through the durable commit (durableResponder).
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "binding/service.h"
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
  o->set("model", d.model.str());
  o->set("name", d.name);
  o->set("fromUser", s.fromUser);
  o->set("way", shareWayName(s.way));
  if (!s.guest.empty()) o->set("guest", s.guest);
  o->set("state", shareStateName(s.state));
  o->set("createdAt", s.createdAtMs);
  o->set("expiresAt", s.expiresAtMs);
  return o;
}

}  // namespace

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
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  // Presence is the transport's call (BLE: seen within its window); no transport, no presence.
  auto t = transports_.find(e->device.transport);
  bool present = e->device.online && t != transports_.end() && t->second.impl->present(deviceId);
  Outcome out = mutate(deviceId, [&](Device& d) {
    d.online = present;
    Outcome o = policy_.bindDevice(d, req.userId, deps_.clock.nowMs());
    d.online = e->device.online;
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
  const Device& d = devices_.find(deviceId)->device;  // the key's device: it is never erased
  Poco::JSON::Object r;
  r.set("deviceId", deviceId);
  r.set("model", d.model.str());
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
    o->set("model", d->model.str());
    o->set("name", d->name);
    o->set("transport", d->transport.str());
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
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  const Device& d = e->device;
  auto members = visibleMembers(d, req.userId);
  if (!members) return res.error(members.status().code(), members.status().message());
  Poco::JSON::Array::Ptr rel = new Poco::JSON::Array;
  for (const auto& b : members.value()) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("userId", b.userId.str());
    o->set("role", roleName(b.role));
    o->set("boundAt", b.boundAtMs);
    rel->add(o);
  }
  Poco::JSON::Object r;
  r.set("deviceId", d.deviceId);
  r.set("model", d.model.str());
  r.set("name", d.name);
  r.set("transport", d.transport.str());
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
  const DeviceEntry* e = devices_.find(deviceId);
  if (e == nullptr) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  const Device& d = e->device;
  // Only bound users command a device through the hub (closing the LAN gap of 004 §3.2).
  if (findBinding(d, req.userId) == nullptr) {
    return res.error(ErrorCode::kForbidden, "you are not bound to " + deviceId);
  }
  auto t = transports_.find(d.transport);
  if (t == transports_.end()) {
    return res.error(ErrorCode::kUnavailable,
                     "the " + d.transport + " transport plugin is not running");
  }
  if (!d.online) return res.error(ErrorCode::kOffline, deviceId + " is offline");
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
  for (const DeviceEntry& e : devices_) {
    const Device& d = e.device;
    const DeviceMeta& m = e.meta;
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
    o->set("deviceId", d.deviceId);
    o->set("transport", d.transport.str());
    o->set("model", d.model.str());
    o->set("name", d.name);
    o->set("firmware", m.firmware.str());
    o->set("bindMode", modeName(d.mode));
    o->set("bindable", !m.inventoryOnly && inBindWindow(d, deps_.clock.nowMs()));
    o->set("inventoryOnly", m.inventoryOnly);
    o->set("online", d.online);
    o->set("lastSeen", m.lastSeenMs);
    o->set("bindings", d.bindings.size());
    const Binding* owner = findOwner(d);
    if (owner) o->set("owner", owner->userId.str());
    list->add(o);
  }
  Poco::JSON::Object r;
  r.set("devices", list);
  res.ok(toJson(r));
}

}  // namespace hearth::binding
