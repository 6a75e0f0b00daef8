// coop_relay's requests: one handler per mtl.coop method (docs/coop-api.md).
#include "coop_relay_plugin.h"

#include <algorithm>
#include <string>

#include "coop_relay_shared.h"

namespace hearth::coop {

using namespace relay;

// ------------------------------------------------------------------------------------------
// Requests

void CoopRelayPlugin::getOpenId(const Request& req, const json::Params&, const Responder& res) {
  auto t = ctx_.terminal(req.userId, req.clientId);
  if (!t) return res.error(ErrorCode::kNotFound, "this terminal is not known: send hello first");
  Object o;
  o.set("openId", t->openId);
  res.ok(json::text(o));
}

void CoopRelayPlugin::getDeviceInfo(const Request& req, const json::Params& p,
                                    const Responder& res) {
  std::string openId = p.identifier("openId");
  auto t = ctx_.terminalByOpenId(openId);
  if (!t || hidden_.count({t->userId, t->clientId}) > 0) {
    return res.error(ErrorCode::kNotFound, "no terminal has this openId");
  }
  TerminalKey self{req.userId, req.clientId};
  bool all = false;
  std::set<std::string> perms;
  if (t->userId == req.userId) {
    all = true;  // terminals of one user need no grant
  } else if (const Grant* g = findGrant({t->userId, t->clientId}, self)) {
    all = g->allPermissions;
    perms = g->permissions;
  }
  Object o;
  o.set("appId", t->appId);
  o.set("userId", t->userId);
  o.set("clientIdentify", t->clientId);
  o.set("deviceModel", t->deviceModel);
  o.set("deviceName", t->deviceName);
  o.set("online", t->online);
  o.set("allPermissions", all);
  o.set("permissions", stringArray(perms));
  res.ok(json::text(o));
}

void CoopRelayPlugin::requestAccessTo(const Request& req, const json::Params& p,
                                      const Responder& res) {
  Endpoint to = endpointParam(p, "to");
  bool all = p.optionalBool("allPermissions", false);
  std::vector<std::string> perms = p.identifierList("permissions", kMaxPermissions);
  if (!all && perms.empty()) {
    throw json::InvalidParam(
        "\"permissions\" must name at least one permission unless "
        "\"allPermissions\" is true");
  }
  auto self = caller(req);
  if (!self) return res.status(self.status());
  auto target = resolveTarget(to);
  if (!target) return res.status(target.status());
  if (target.value().key() == self.value().key()) {
    return res.error(ErrorCode::kInvalidRequest, "a terminal cannot request access to itself");
  }
  if (target.value().userId == self.value().userId) {
    return res.error(ErrorCode::kConflict, "terminals of the same user need no grant");
  }
  size_t pendingForTarget = 0;
  for (const auto& [id, r] : requests_) {
    if (r.to.key() != target.value().key()) continue;
    if (r.from.key() == self.value().key()) {
      return res.error(ErrorCode::kConflict,
                       "an access request to this terminal is already pending: " + id);
    }
    ++pendingForTarget;
  }
  if (pendingForTarget >= maxQueuedPerTerminal_) {
    return res.error(ErrorCode::kLimitReached, "the target has too many pending access requests");
  }

  AccessRequest r;
  r.commandId = newCommandId();
  r.from = self.value();
  r.to = target.value();
  r.allPermissions = all;
  r.permissions = perms;
  r.createdAtMs = nowMs();
  r.expiresAtMs = r.createdAtMs + accessRequestTtlMs_;
  Batch b;
  b.put(kRequests, r.commandId, toJson(r));
  b.apply([this, r] { insertRequest(r); });
  Status s = commit(b);
  if (!s) return res.status(s);
  ctx_.count("access_requests");
  // Offered now if the target is connected, else when it comes online (flush).
  flush(r.to.key(), kNoReoffer);
  Object o;
  o.set("commandId", r.commandId);
  o.set("expiresAt", r.expiresAtMs);
  res.ok(json::text(o));
}

Result<CoopRelayPlugin::Answerable> CoopRelayPlugin::answerableRequest(
    const Request& req, const json::Params& p) const {
  std::string id = p.identifier("commandId");
  Endpoint to = endpointParam(p, "to");
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    return Status::error(ErrorCode::kNotFound, "no pending access request " + id);
  }
  const AccessRequest& r = it->second;
  if (r.to.key() != TerminalKey{req.userId, req.clientId}) {
    return Status::error(ErrorCode::kForbidden, "only the addressed terminal may answer " + id);
  }
  if (to != r.from) {
    return Status::error(ErrorCode::kForbidden, "\"to\" is not the terminal that asked");
  }
  auto me = caller(req);
  if (!me) return me.status();
  return Answerable{&r, me.value()};
}

void CoopRelayPlugin::agreeAccessRequest(const Request& req, const json::Params& p,
                                         const Responder& res) {
  auto answerable = answerableRequest(req, p);
  if (!answerable) return res.status(answerable.status());
  const AccessRequest& r = *answerable.value().request;
  const Endpoint& me = answerable.value().me;

  Grant g;
  if (const Grant* existing = findGrant(me.key(), r.from.key())) {
    g = *existing;  // a second agreement widens the grant, it never narrows it
  } else {
    g.grantedAtMs = nowMs();
  }
  g.granter = me;
  g.grantee = r.from;
  g.allPermissions = g.allPermissions || r.allPermissions;
  g.permissions.insert(r.permissions.begin(), r.permissions.end());

  Batch b;
  decideRequest(b, r, AccessResponseCode::kAgreed, me);
  b.put(kGrants, g.storeKey(), toJson(g));
  b.apply([this, g] { grants_[g.storeKey()] = g; });
  b.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
  b.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
  res.status(commit(b));
}

void CoopRelayPlugin::rejectAccessRequest(const Request& req, const json::Params& p,
                                          const Responder& res) {
  auto answerable = answerableRequest(req, p);
  if (!answerable) return res.status(answerable.status());
  Batch b;
  decideRequest(b, *answerable.value().request, AccessResponseCode::kRejected,
                answerable.value().me);
  res.status(commit(b));
}

void CoopRelayPlugin::getMyDevices(const Request& req, const json::Params&, const Responder& res) {
  Array::Ptr devices = new Array;
  for (const auto& t : ctx_.terminals(req.userId)) {
    if (hidden_.count({t.userId, t.clientId}) > 0) continue;
    Object::Ptr d = new Object;
    d->set("appId", t.appId);
    d->set("clientIdentify", t.clientId);
    d->set("deviceModel", t.deviceModel);
    d->set("deviceName", t.deviceName);
    d->set("online", t.online);
    d->set("userId", t.userId);
    devices->add(d);
  }
  Object o;
  o.set("devices", devices);
  res.ok(json::text(o));
}

void CoopRelayPlugin::getAuthorizedDevices(const Request& req, const json::Params&,
                                           const Responder& res) {
  Object o;
  o.set("devices", deviceList(true, {req.userId, req.clientId}));
  res.ok(json::text(o));
}

void CoopRelayPlugin::getAccessibleDevices(const Request& req, const json::Params&,
                                           const Responder& res) {
  Object o;
  o.set("devices", deviceList(false, {req.userId, req.clientId}));
  res.ok(json::text(o));
}

void CoopRelayPlugin::getAllDevices(const Request& req, const json::Params&, const Responder& res) {
  TerminalKey self{req.userId, req.clientId};
  Object o;
  o.set("authorizedDevices", deviceList(true, self));
  o.set("accessibleDevices", deviceList(false, self));
  res.ok(json::text(o));
}

void CoopRelayPlugin::removeAuthorizedDevice(const Request& req, const json::Params& p,
                                             const Responder& res) {
  Endpoint other{p.identifier("appId"), p.identifier("userId"), p.identifier("clientIdentify")};
  const Grant* g = findGrant({req.userId, req.clientId}, other.key());
  if (!g || g->grantee.appId != other.appId) {
    return res.error(ErrorCode::kNotFound,
                     "this terminal has not authorized " + other.userId + "/" + other.clientId);
  }
  Batch b;
  revokeGrant(b, *g);
  res.status(commit(b));
}

void CoopRelayPlugin::removeAccessibleDevice(const Request& req, const json::Params& p,
                                             const Responder& res) {
  Endpoint other{p.identifier("appId"), p.identifier("userId"), p.identifier("clientIdentify")};
  const Grant* g = findGrant(other.key(), {req.userId, req.clientId});
  if (!g || g->granter.appId != other.appId) {
    return res.error(ErrorCode::kNotFound,
                     other.userId + "/" + other.clientId + " has not authorized this terminal");
  }
  Batch b;
  revokeGrant(b, *g);
  res.status(commit(b));
}

void CoopRelayPlugin::removeMyDevice(const Request& req, const json::Params& p,
                                     const Responder& res) {
  TerminalKey key{req.userId, p.identifier("clientIdentify")};
  if (!visibleTerminal(key)) {
    return res.error(ErrorCode::kNotFound, "no device " + key.clientId + " of this user");
  }
  Batch b;
  b.put(kRemoved, key.str(), "{}");
  b.apply([this, key] { hidden_.insert(key); });
  purgeTerminal(b, key, /*senderGone=*/false);
  b.hints.push_back(syncHint({key.userId, ""}, kSyncMyDevices));
  res.status(commit(b));
}

void CoopRelayPlugin::sendCommand(const Request& req, const json::Params& p, const Responder& res) {
  std::string commandType = p.identifier("commandType");
  Endpoint to = endpointParam(p, "to");
  std::string params = p.objectJson("commandParams");
  auto self = caller(req);
  if (!self) return res.status(self.status());
  auto target = resolveTarget(to);
  if (!target) return res.status(target.status());
  TerminalKey targetKey = target.value().key();
  if (target.value().userId != self.value().userId) {
    const Grant* g = findGrant(targetKey, self.value().key());
    if (!g || !g->covers(commandType)) {
      return res.error(ErrorCode::kForbidden,
                       "no grant from " + targetKey.str() + " covers commandType " + commandType);
    }
  }

  auto q = queued_.find(targetKey);
  size_t waiting = q == queued_.end() ? 0 : q->second.size();
  bool online = isOnline(targetKey);
  // Goes out now only if the target is connected, nothing waits ahead of it (send order) and
  // its delivery window has room; otherwise it joins the queue.
  bool deliverNow = online && waiting == 0 && inFlight(targetKey) < deliveryWindow_;
  if (!deliverNow && waiting >= maxQueuedPerTerminal_) {
    return res.error(ErrorCode::kLimitReached,
                     std::to_string(waiting) + " commands already wait for " + targetKey.str());
  }

  Command c;
  c.commandId = newCommandId();
  c.seq = nextSeq_++;
  c.from = self.value();
  c.to = target.value();
  c.commandType = commandType;
  c.paramsJson = params;
  c.createdAtMs = nowMs();
  c.expiresAtMs = c.createdAtMs + commandTtlMs_;

  // Fast path: the target is connected, nothing waits ahead of this command and the target's
  // delivery window has room (the command takes a slot in it from now on: insertCommand
  // counts it as delivered), so it goes out now. What the hub still owes is the reply
  // tracking, and the sender's answer waits until that is on disk: a group commit within
  // kWriteBehind (commitDelivered), or nothing at all if the reply comes first, since then the
  // durable state is "no record", which the disk already says (replyCommand). This keeps fsync
  // off the command round trip. Sending before recording is deliberate: a crash in between
  // loses nothing acknowledged (the sender had no answer yet), while the other order could
  // record a never-sent command as delivered.
  if (deliverNow &&
      ctx_.sendEvent(targetKey.userId, targetKey.clientId, kEvCommand, commandEventJson(c)) > 0) {
    ctx_.count("commands_relayed");
    c.state = CommandState::kOffered;
    c.offeredAtMs = c.createdAtMs;
    insertCommand(c);
    unacked_.emplace(c.commandId, res);
    armWriteBehind();
    armTimer();
    return;
  }
  // The target is offline (or others wait ahead, or its window is full): the hub takes
  // custody, durably, first.
  Batch b;
  b.put(kCommands, seqKey(c.seq), toJson(c));
  b.apply([this, c] { insertCommand(c); });
  Status s = commit(b);
  if (!s) return res.status(s);
  // A command queued behind others while the target is online goes out now, in order, if the
  // window has room; with the window full it stays queued and the answer says so.
  if (c.state == CommandState::kQueued) flush(targetKey, kNoReoffer);
  auto current = commands_.find(c.commandId);
  res.ok(sendResultJson(c.commandId, current == commands_.end() ? c.state : current->second.state));
}

void CoopRelayPlugin::replyCommand(const Request& req, const json::Params& p, const Responder& res) {
  std::string id = p.identifier("commandId");
  std::string params = p.objectJson("commandParams");
  Endpoint to = endpointParam(p, "to");
  auto it = commands_.find(id);
  if (it == commands_.end()) {
    return res.error(ErrorCode::kNotFound, "no command " + id + " awaits a reply");
  }
  Command c = it->second;
  if (c.to.key() != TerminalKey{req.userId, req.clientId}) {
    return res.error(ErrorCode::kForbidden, "only the addressed terminal may reply to " + id);
  }
  if (to != c.from) {
    return res.error(ErrorCode::kForbidden, "\"to\" is not the terminal that sent " + id);
  }
  auto me = caller(req);
  if (!me) return res.status(me.status());

  std::string response = commandResponseJson(c, params, me.value());
  // The commandResponse is the sender's news of the final state (it carries state "replied"):
  // no commandState goes with it.
  Batch b;
  std::optional<Responder> sender;  // the sender's sendCommand, if still unanswered
  auto unacked = unacked_.find(id);
  if (unacked != unacked_.end()) {
    // Replied before its record reached the disk: nothing about it is left to make durable.
    sender = unacked->second;
    eraseCommand(id);
  } else {
    b.erase(kCommands, seqKey(c.seq));
    b.apply([this, id] { eraseCommand(id); });
  }
  // A connected sender gets the response at once, which keeps the disk off the round trip. The
  // command ends (its record erased, the target answered) only once the broker has
  // acknowledged the response: a hub that dies before that still has the command, offers it
  // again, and the target's client sends the app's reply again. If the broker connection goes
  // first, the response is kept for the sender like one to an offline terminal.
  const int64_t expiresAtMs = nowMs() + commandTtlMs_;
  size_t relayed = 0;
  if (isOnline(c.from.key())) {
    relayed = ctx_.sendEventConfirmed(
        c.from.userId, c.from.clientId, kEvCommandResponse, response,
        [this, b, res, to = c.from.key(), response, expiresAtMs](Status confirmed) mutable {
          if (!confirmed) {
            ctx_.count("replies_unconfirmed");
            b.durable.push_back({to, kEvCommandResponse, response, expiresAtMs, /*keep=*/true});
          }
          res.status(commit(b, /*applyOnFailure=*/confirmed.isOk()));
          deliverFreed();  // an entry into the plugin: the reply freed a window slot
        });
  }
  // The sender's answer follows the response on the hub's one broker connection, so whatever
  // of the two reaches the broker, the response does; clients keep a response that comes
  // before the answer and match it by the answer's commandId.
  if (sender) sender->ok(sendResultJson(id, c.state));
  if (relayed > 0) {
    ctx_.count("replies_relayed");
    return;
  }
  b.durable.push_back({c.from.key(), kEvCommandResponse, response, expiresAtMs});
  Status s = commit(b);
  if (s) ctx_.count("replies_relayed");  // to the outbox: the sender gets it when back online
  res.status(s);
}

void CoopRelayPlugin::ackCommand(const Request& req, const json::Params& p, const Responder& res) {
  std::vector<std::string> ids = p.identifierList("commandIds", kMaxAckIds);
  if (ids.empty()) throw json::InvalidParam("commandIds: at least one commandId");
  auto me = caller(req);
  if (!me) return res.status(me.status());
  TerminalKey self = me.value().key();

  // Offered -> delivered. An id that is not an offered command to this terminal (already
  // confirmed, replied or ended, another terminal's, unknown) changes nothing and is listed
  // apart: a repeat acknowledgement after a lost answer is normal, not an error.
  std::vector<std::string> confirmed;
  Array::Ptr unknown = new Array;
  for (const auto& id : ids) {
    auto it = commands_.find(id);
    if (it == commands_.end() || it->second.to.key() != self ||
        it->second.state != CommandState::kOffered) {
      if (it != commands_.end() && it->second.to.key() == self &&
          it->second.state == CommandState::kDelivered) {
        continue;  // already confirmed: neither news nor an error
      }
      unknown->add(id);
      continue;
    }
    confirmed.push_back(id);
  }
  // A command delivered at once may have no record on disk yet: write those first, so the
  // confirmation below is one more write to a record that exists.
  for (const auto& id : confirmed) {
    if (unacked_.count(id) > 0) {
      commitDelivered();
      break;
    }
  }
  Batch b;
  int64_t now = nowMs();
  Array::Ptr acked = new Array;
  for (const auto& id : confirmed) {
    auto it = commands_.find(id);
    if (it == commands_.end()) continue;  // the write-behind commit failed and dropped it
    Command c = it->second;
    c.state = CommandState::kDelivered;
    c.replyDeadlineMs = now + replyTimeoutMs_;
    b.put(kCommands, seqKey(c.seq), toJson(c));
    b.apply([this, c] {
      eraseCommand(c.commandId);
      insertCommand(c);
    });
    b.hints.push_back(
        {c.from.key(), kEvCommandState, commandStateJson(c, CommandState::kDelivered, nullptr)});
    acked->add(id);
  }
  Status s = commit(b);
  if (!s) return res.status(s);
  // eraseCommand marked the target's window freed; the count did not change (offered and
  // delivered both hold a slot), so deliverFreed finds no more room than before.
  Object o;
  o.set("acknowledged", acked);
  o.set("unknown", unknown);
  res.ok(json::text(o));
}

}  // namespace hearth::coop
