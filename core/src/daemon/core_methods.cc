#include "daemon/core_methods.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <memory>
#include <tuple>

#include "control/params.h"

namespace hearth {
namespace {

using Deps = std::shared_ptr<const CoreMethodDeps>;

bool requireDynsec(const Deps& d, const Responder& res) {
  if (d->config.userManagement == "dynsec") return true;
  res.error(ErrorCode::kUnavailable,
            "user accounts are managed by the broker operator (broker.user_management: "
            "external)");
  return false;
}

void hello(const Deps& d, const Request& req, const Params& p, const Responder& res) {
  std::string appId = p.identifier("appId");
  std::string model = p.optionalString("deviceModel", 128).value_or("");
  std::string name = p.optionalString("deviceName", 128).value_or("");
  auto t = d->identity.hello(req.userId, req.clientId, appId, model, name);
  if (!t) return res.error(t.status().code(), t.status().message());
  Poco::JSON::Object data;
  data.set("userId", t.value().userId);
  data.set("clientId", t.value().clientId);
  data.set("appId", t.value().appId);
  data.set("deviceModel", t.value().deviceModel);
  data.set("deviceName", t.value().deviceName);
  data.set("openId", t.value().openId);
  d->bus.publish(events::kTerminalHello, toJson(data));
  Poco::JSON::Object result;
  result.set("openId", t.value().openId);
  res.ok(toJson(result));
}

void status(const Deps& d, const RequestRouter::Counters& routed, const Responder& res) {
  auto s = Poco::JSON::Parser().parse(d->statusJson()).extract<Poco::JSON::Object::Ptr>();
  Poco::JSON::Object::Ptr counters = new Poco::JSON::Object;
  counters->set("requests", routed.requests.load());
  counters->set("errors", routed.errors.load());
  counters->set("rejected", routed.rejected.load());
  counters->set("brokerConnects", d->brokerConnects());
  s->set("counters", counters);
  s->set("users", d->identity.users().size());
  s->set("terminals", d->identity.terminalCount());
  s->set("devices", d->bindings.deviceCount());
  s->set("bindings", d->bindings.bindingCount());
  res.ok(toJson(*s));
}

void userAdd(const Deps& d, const Request& req, const Params& p, const Responder& res) {
  std::string userId = p.identifier("userId");
  std::string password = p.string("password", 256, 8);
  if (!requireDynsec(d, res)) return;
  d->accounts.addUser(userId, password, [d, userId, res](Status s) {
    if (!s) return res.error(s.code(), s.message());
    if (Status i = d->identity.addUser(userId); !i) {
      // Not recorded by the hub (a full disk, say): take the broker account back, so that the
      // request changed nothing and can simply be repeated.
      d->accounts.removeUser(userId, [res, i](Status) { res.error(i.code(), i.message()); });
      return;
    }
    d->logger.info("user " + userId + " added");
    Poco::JSON::Object r;
    r.set("userId", userId);
    res.ok(toJson(r));
  });
}

void userRemove(const Deps& d, const Request& req, const Params& p, const Responder& res) {
  std::string userId = p.identifier("userId");
  std::vector<std::string> admins = d->config.adminUsers;
  admins.push_back(d->config.brokerUsername);
  if (std::find(admins.begin(), admins.end(), userId) != admins.end()) {
    return res.error(ErrorCode::kForbidden, "the hub's own and admin accounts cannot be removed");
  }
  if (!requireDynsec(d, res)) return;
  d->accounts.removeUser(userId, [d, userId, res](Status s) {
    // A user the broker no longer knows may still have hub state; clean it either way.
    if (!s && s.code() != ErrorCode::kNotFound) return res.error(s.code(), s.message());
    bool known = d->identity.userExists(userId);
    if (!s && !known) return res.error(s.code(), s.message());
    if (Status i = d->identity.removeUser(userId); !i) return res.error(i.code(), i.message());
    // The user leaves every device now, before the answer (which waits for these commits to
    // be on disk); plugins hear of it on the bus.
    d->bindings.removeUser(userId);
    Poco::JSON::Object data;
    data.set("userId", userId);
    d->bus.publish(events::kUserRemoved, toJson(data));
    d->logger.info("user " + userId + " removed");
    res.ok(toJson(data));
  });
}

void userList(const Deps& d, const Responder& res) {
  auto reply = [d, res](const std::vector<std::string>& users) {
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const auto& u : users) {
      Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
      o->set("userId", u);
      size_t online = d->identity.onlineTerminals(u).size();
      o->set("terminals", d->identity.terminals(u).size());
      o->set("online", online);
      list->add(o);
    }
    Poco::JSON::Object r;
    r.set("users", list);
    res.ok(toJson(r));
  };
  if (d->config.userManagement != "dynsec") return reply(d->identity.users());
  d->accounts.listUsers([res, reply](Result<std::vector<std::string>> r) {
    if (!r) return res.error(r.status().code(), r.status().message());
    reply(r.value());
  });
}

}  // namespace

Status registerCoreMethods(RequestRouter& router, const CoreMethodDeps& deps) {
  auto d = std::make_shared<const CoreMethodDeps>(deps);
  const RequestRouter::Counters& routed = router.counters();
  const std::vector<std::tuple<const char*, MethodScope, CoreRequestHandler>> methods = {
      {"hello", MethodScope::kUser,
       [d](const Request& req, const Params& p, Responder res) { hello(d, req, p, res); }},
      {"status", MethodScope::kAdmin,
       [d, &routed](const Request&, const Params&, Responder res) { status(d, routed, res); }},
      {"plugins", MethodScope::kAdmin,
       [d](const Request&, const Params&, Responder res) {
         Poco::JSON::Object s;
         d->pluginStatus(s);
         res.ok(toJson(s));
       }},
      {"userAdd", MethodScope::kAdmin,
       [d](const Request& req, const Params& p, Responder res) { userAdd(d, req, p, res); }},
      {"userRemove", MethodScope::kAdmin,
       [d](const Request& req, const Params& p, Responder res) { userRemove(d, req, p, res); }},
      {"userList", MethodScope::kAdmin,
       [d](const Request&, const Params&, Responder res) { userList(d, res); }},
  };
  for (const auto& [name, scope, handler] : methods) {
    if (Status s = router.registerCoreMethod(name, scope, handler); !s) return s;
  }
  return Status::ok();
}

}  // namespace hearth
