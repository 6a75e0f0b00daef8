#include "coop_model.h"

#include <cstdio>

namespace hearth::coop {
namespace {

using json::Array;
using json::Object;

std::string str(const Object::Ptr& o, const char* name) {
  if (!o->has(name)) throw std::runtime_error(std::string("missing ") + name);
  return o->getValue<std::string>(name);
}

int64_t i64(const Object::Ptr& o, const char* name) {
  if (!o->has(name)) throw std::runtime_error(std::string("missing ") + name);
  return o->getValue<int64_t>(name);
}

Object::Ptr obj(const Object::Ptr& o, const char* name) {
  Object::Ptr v = o->getObject(name);
  if (!v) throw std::runtime_error(std::string("missing object ") + name);
  return v;
}

Endpoint endpointFrom(const Object::Ptr& o) {
  return Endpoint{str(o, "appId"), str(o, "userId"), str(o, "clientIdentify")};
}

std::vector<std::string> stringsFrom(const Object::Ptr& o, const char* name) {
  std::vector<std::string> out;
  Array::Ptr a = o->getArray(name);
  if (!a) return out;
  for (size_t i = 0; i < a->size(); ++i) out.push_back(a->getElement<std::string>(i));
  return out;
}

}  // namespace

Object::Ptr endpointJson(const Endpoint& e) {
  Object::Ptr o = new Object;
  o->set("appId", e.appId);
  o->set("userId", e.userId);
  o->set("clientIdentify", e.clientId);
  return o;
}

Endpoint endpointParam(const json::Params& p, const std::string& name) {
  json::Params o = p.objectParams(name);  // errors name "to.appId" etc.
  Endpoint e;
  e.appId = o.identifier("appId");
  e.userId = o.identifier("userId");
  e.clientId = o.identifier("clientIdentify");
  return e;
}

const char* commandStateName(CommandState state) {
  switch (state) {
    case CommandState::kQueued:
      return "queued";
    case CommandState::kDelivered:
      return "delivered";
    case CommandState::kReplied:
      return "replied";
    case CommandState::kExpired:
      return "expired";
    case CommandState::kTimeout:
      return "timeout";
    case CommandState::kOffered:
      return "offered";
  }
  return "expired";
}

std::optional<CommandState> commandStateFromName(const std::string& name) {
  for (auto s : {CommandState::kQueued, CommandState::kDelivered, CommandState::kReplied,
                 CommandState::kExpired, CommandState::kTimeout, CommandState::kOffered}) {
    if (name == commandStateName(s)) return s;
  }
  return std::nullopt;
}

std::string seqKey(uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

std::string toJson(const Grant& g) {
  Object o;
  o.set("granter", endpointJson(g.granter));
  o.set("grantee", endpointJson(g.grantee));
  o.set("allPermissions", g.allPermissions);
  o.set("permissions", stringArray(g.permissions));
  o.set("grantedAt", g.grantedAtMs);
  return json::text(o);
}

Grant grantFromJson(const std::string& record) {
  Object::Ptr o = json::parseObject(record);
  Grant g;
  g.granter = endpointFrom(obj(o, "granter"));
  g.grantee = endpointFrom(obj(o, "grantee"));
  g.allPermissions = o->getValue<bool>("allPermissions");
  for (auto& p : stringsFrom(o, "permissions")) g.permissions.insert(std::move(p));
  g.grantedAtMs = i64(o, "grantedAt");
  return g;
}

std::string toJson(const AccessRequest& r) {
  Object o;
  o.set("commandId", r.commandId);
  o.set("from", endpointJson(r.from));
  o.set("to", endpointJson(r.to));
  o.set("allPermissions", r.allPermissions);
  o.set("permissions", stringArray(r.permissions));
  o.set("createdAt", r.createdAtMs);
  o.set("expiresAt", r.expiresAtMs);
  return json::text(o);
}

AccessRequest accessRequestFromJson(const std::string& record) {
  Object::Ptr o = json::parseObject(record);
  AccessRequest r;
  r.commandId = str(o, "commandId");
  r.from = endpointFrom(obj(o, "from"));
  r.to = endpointFrom(obj(o, "to"));
  r.allPermissions = o->getValue<bool>("allPermissions");
  r.permissions = stringsFrom(o, "permissions");
  r.createdAtMs = i64(o, "createdAt");
  r.expiresAtMs = i64(o, "expiresAt");
  return r;
}

std::string toJson(const Command& c) {
  Object o;
  o.set("commandId", c.commandId);
  o.set("seq", c.seq);
  o.set("from", endpointJson(c.from));
  o.set("to", endpointJson(c.to));
  o.set("commandType", c.commandType);
  o.set("commandParams", json::parseObject(c.paramsJson));
  o.set("state", commandStateName(c.state));
  o.set("createdAt", c.createdAtMs);
  o.set("expiresAt", c.expiresAtMs);
  o.set("replyDeadline", c.replyDeadlineMs);
  return json::text(o);
}

Command commandFromJson(const std::string& record) {
  Object::Ptr o = json::parseObject(record);
  Command c;
  c.commandId = str(o, "commandId");
  c.seq = o->getValue<uint64_t>("seq");
  c.from = endpointFrom(obj(o, "from"));
  c.to = endpointFrom(obj(o, "to"));
  c.commandType = str(o, "commandType");
  c.paramsJson = json::text(obj(o, "commandParams"));
  auto state = commandStateFromName(str(o, "state"));
  if (!state || (*state != CommandState::kQueued && *state != CommandState::kDelivered &&
                 *state != CommandState::kOffered)) {
    throw std::runtime_error("a stored command must be queued, offered or delivered");
  }
  c.state = *state;
  c.createdAtMs = i64(o, "createdAt");
  c.expiresAtMs = i64(o, "expiresAt");
  c.replyDeadlineMs = i64(o, "replyDeadline");
  return c;
}

std::string toJson(const OutboxEntry& e) {
  Object o;
  o.set("seq", e.seq);
  o.set("userId", e.to.userId);
  o.set("clientId", e.to.clientId);
  o.set("event", e.event);
  o.set("data", json::parseObject(e.dataJson));
  o.set("expiresAt", e.expiresAtMs);
  return json::text(o);
}

OutboxEntry outboxEntryFromJson(const std::string& record) {
  Object::Ptr o = json::parseObject(record);
  OutboxEntry e;
  e.seq = o->getValue<uint64_t>("seq");
  e.to = TerminalKey{str(o, "userId"), str(o, "clientId")};
  e.event = str(o, "event");
  e.dataJson = json::text(obj(o, "data"));
  e.expiresAtMs = i64(o, "expiresAt");
  return e;
}

}  // namespace hearth::coop
