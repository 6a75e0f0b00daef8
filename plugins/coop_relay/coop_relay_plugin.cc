#include "coop_relay_plugin.h"

#include <Poco/JSON/Array.h>
#include <Poco/UUIDGenerator.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "coop_json.h"

namespace hearth::coop {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

// Store collections.
constexpr const char* kGrants = "grants";      // Grant::storeKey() -> Grant
constexpr const char* kRequests = "requests";  // commandId -> AccessRequest
constexpr const char* kCommands = "commands";  // seqKey -> Command (queued or delivered)
constexpr const char* kOutbox = "outbox";      // seqKey -> OutboxEntry
constexpr const char* kRemoved = "removed";    // "user/client" -> {} (removeMyDevice)

// Events to terminals.
constexpr const char* kEvAccessRequest = "accessRequest";
constexpr const char* kEvAccessResponse = "accessResponse";
constexpr const char* kEvCommand = "command";
constexpr const char* kEvCommandResponse = "commandResponse";
constexpr const char* kEvCommandState = "commandState";
constexpr const char* kEvSync = "sync";

// sync{type} values: which list to re-fetch.
constexpr const char* kSyncMyDevices = "myDevices";
constexpr const char* kSyncAuthorized = "authorizedDevices";
constexpr const char* kSyncAccessible = "accessibleDevices";

constexpr size_t kMaxPermissions = 64;
constexpr int64_t kStoreRetryMs = 1000;
// How long a command delivered at once may go without its record on disk. Most replies come
// back well within it, and then the record is never written at all; the rest share one commit.
constexpr std::chrono::milliseconds kWriteBehind{50};
// A request from a terminal shows it is there, but its session may still be the one that got
// the offer a moment ago (ackCommand itself is such a request): only offers at least this old
// are repeated then. Presence `online` and `hello` (a new session) repeat every offer.
constexpr int64_t kReofferAfterRequestMs = 1000;
constexpr size_t kMaxAckIds = 1000;

const hearth_config_key kConfigKeys[] = {
    {"command_ttl", HEARTH_CFG_DURATION, "24h", 1, 30 * 86400,
     "How long a command to an offline terminal waits for it; then it is reported expired."},
    {"reply_timeout", HEARTH_CFG_DURATION, "30s", 1, 86400,
     "How long a delivered command waits for replyCommand; then it is reported timeout."},
    {"access_request_ttl", HEARTH_CFG_DURATION, "10m", 1, 7 * 86400,
     "How long an access request waits for agree/reject; then the requester gets expired."},
    {"max_queued_per_terminal", HEARTH_CFG_INT, "1000", 1, 1000000,
     "Commands (and pending access requests) that may wait for one terminal; more are refused "
     "with LIMIT_REACHED."},
    {"delivery_window", HEARTH_CFG_INT, "50", 1, 10000,
     "Commands delivered to one terminal and not yet replied or timed out, at most; the rest of "
     "a backlog waits queued and goes out as replies and timeouts free room. Keep it below the "
     "broker's per-client queue (mosquitto max_queued_messages, 1000 by default)."},
};

const char* accessMessage(AccessResponseCode code) {
  switch (code) {
    case AccessResponseCode::kAgreed:
      return "agreed";
    case AccessResponseCode::kRejected:
      return "rejected";
    case AccessResponseCode::kExpired:
      return "expired";
    case AccessResponseCode::kRemoved:
      return "removed";
  }
  return "rejected";
}

Array::Ptr toArray(const std::vector<std::string>& items) {
  Array::Ptr a = new Array;
  for (const auto& s : items) a->add(s);
  return a;
}

Array::Ptr toArray(const std::set<std::string>& items) {
  return toArray(std::vector<std::string>(items.begin(), items.end()));
}

std::string sendResultJson(const std::string& commandId, CommandState state) {
  Object o;
  o.set("commandId", commandId);
  o.set("state", commandStateName(state));
  o.set("stateCode", static_cast<int>(state));
  return toText(o);
}

std::string commandEventJson(const Command& c) {
  Object o;
  o.set("commandId", c.commandId);
  o.set("commandType", c.commandType);
  o.set("commandParams", parseObject(c.paramsJson));
  o.set("from", endpointJson(c.from));
  return toText(o);
}

std::string accessRequestEventJson(const AccessRequest& r) {
  Object params;
  params.set("allPermissions", r.allPermissions);
  params.set("permissions", toArray(r.permissions));
  Object o;
  o.set("commandId", r.commandId);
  o.set("from", endpointJson(r.from));
  o.set("commandParams", params);
  return toText(o);
}

// The `userId`/`clientId` of a core event; nullopt if malformed (then it is ignored).
std::optional<TerminalKey> terminalOfEvent(const std::string& dataJson) {
  try {
    Object::Ptr o = parseObject(dataJson);
    TerminalKey k{o->optValue<std::string>("userId", ""), o->optValue<std::string>("clientId", "")};
    if (!isValidIdentifier(k.userId) || !isValidIdentifier(k.clientId)) return std::nullopt;
    return k;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

CoopRelayPlugin::CoopRelayPlugin(PluginContext& ctx)
    : ctx_(ctx),
      commandTtlMs_(ctx.config().getDuration("command_ttl").count()),
      replyTimeoutMs_(ctx.config().getDuration("reply_timeout").count()),
      accessRequestTtlMs_(ctx.config().getDuration("access_request_ttl").count()),
      maxQueuedPerTerminal_(static_cast<size_t>(
          std::max<int64_t>(1, ctx.config().getInt("max_queued_per_terminal")))),
      deliveryWindow_(
          static_cast<size_t>(std::max<int64_t>(1, ctx.config().getInt("delivery_window")))) {}

const hearth_config_key* CoopRelayPlugin::configKeys() { return kConfigKeys; }
size_t CoopRelayPlugin::configKeyCount() { return sizeof(kConfigKeys) / sizeof(kConfigKeys[0]); }

// ------------------------------------------------------------------------------------------
// Lifecycle

Status CoopRelayPlugin::start() {
  Status s = load();
  if (!s) return s;
  s = registerMethods();
  if (!s) return s;
  subscribeEvents();
  running_ = true;
  // Whatever fell due while the hub was down is settled before anything new happens.
  expireDue();
  armTimer();
  flushAllOnline();  // within each target's delivery window, which counts what was delivered
  deliverFreed();
  Object details;
  details.set("grants", static_cast<uint64_t>(grants_.size()));
  details.set("pendingAccessRequests", static_cast<uint64_t>(requests_.size()));
  details.set("commandsInFlight", static_cast<uint64_t>(commands_.size()));
  ctx_.setState(PluginState::kRunning, toText(details));
  ctx_.logger().info("loaded " + std::to_string(grants_.size()) + " grants, " +
                     std::to_string(requests_.size()) + " access requests, " +
                     std::to_string(commands_.size()) + " commands in flight");
  return Status::ok();
}

void CoopRelayPlugin::stop() {
  commitDelivered();  // every sendCommand gets its answer, and its record is kept
  running_ = false;
  if (timer_ != 0) ctx_.cancelTimer(timer_);
  timer_ = 0;
  ctx_.setState(PluginState::kStopped);
}

Status CoopRelayPlugin::registerMethods() {
  static const std::pair<const char*, Method> kMethods[] = {
      {"getOpenId", &CoopRelayPlugin::getOpenId},
      {"getDeviceInfo", &CoopRelayPlugin::getDeviceInfo},
      {"requestAccessTo", &CoopRelayPlugin::requestAccessTo},
      {"agreeAccessRequest", &CoopRelayPlugin::agreeAccessRequest},
      {"rejectAccessRequest", &CoopRelayPlugin::rejectAccessRequest},
      {"getMyDevices", &CoopRelayPlugin::getMyDevices},
      {"getAuthorizedDevices", &CoopRelayPlugin::getAuthorizedDevices},
      {"getAccessibleDevices", &CoopRelayPlugin::getAccessibleDevices},
      {"getAllDevices", &CoopRelayPlugin::getAllDevices},
      {"removeAuthorizedDevice", &CoopRelayPlugin::removeAuthorizedDevice},
      {"removeAccessibleDevice", &CoopRelayPlugin::removeAccessibleDevice},
      {"removeMyDevice", &CoopRelayPlugin::removeMyDevice},
      {"sendCommand", &CoopRelayPlugin::sendCommand},
      {"replyCommand", &CoopRelayPlugin::replyCommand},
      {"ackCommand", &CoopRelayPlugin::ackCommand},
  };
  for (const auto& [name, method] : kMethods) {
    std::string methodName = name;
    Status s = ctx_.registerMethod(
        methodName, MethodScope::kUser,
        [this, method = method, methodName](const Request& req, Responder res) {
          if (!running_) return res.error(ErrorCode::kUnavailable, "coop_relay is not running");
          // No exception may cross the plugin boundary: bad input is INVALID_REQUEST, anything
          // else is a bug in this method, answered INTERNAL while the hub keeps serving.
          try {
            ParamReader params(req.paramsJson);
            (this->*method)(req, params, res);
          } catch (const InvalidParam& e) {
            res.error(ErrorCode::kInvalidRequest, e.what());
          } catch (const std::exception& e) {
            ctx_.logger().error(methodName + " failed: " + e.what());
            res.error(ErrorCode::kInternal, "internal error");
          }
          deliverFreed();  // a reply (or a removal) may have made room in a delivery window
        });
    if (!s) return s;
  }
  return Status::ok();
}

void CoopRelayPlugin::subscribeEvents() {
  auto guarded = [this](std::function<void(const std::string&)> fn) {
    return [this, fn = std::move(fn)](const std::string& topic, const std::string& data) {
      if (!running_) return;
      try {
        fn(data);
      } catch (const std::exception& e) {
        ctx_.logger().error("handling " + topic + " failed: " + e.what());
      }
      deliverFreed();
    };
  };
  ctx_.subscribe(events::kTerminalOnline,
                 guarded([this](const std::string& d) { onPresence(d, true); }));
  ctx_.subscribe(events::kTerminalOffline,
                 guarded([this](const std::string& d) { onPresence(d, false); }));
  ctx_.subscribe(events::kTerminalHello, guarded([this](const std::string& d) { onHello(d); }));
  ctx_.subscribe(events::kTerminalSeen, guarded([this](const std::string& d) { onSeen(d); }));
  ctx_.subscribe(events::kUserRemoved, guarded([this](const std::string& d) { onUserRemoved(d); }));
}

// ------------------------------------------------------------------------------------------
// State in memory

Status CoopRelayPlugin::load() {
  KvStore& store = ctx_.store();
  // A record that no longer parses is logged and skipped: one bad row must not keep the whole
  // relay down, and it is never acknowledged work (we wrote it ourselves).
  auto scanAll = [&](const char* collection,
                     const std::function<void(const std::string&, const std::string&)>& fn) {
    return store.scan(collection, "", 0, [&](const std::string& key, const std::string& value) {
      try {
        fn(key, value);
      } catch (const std::exception& e) {
        ctx_.logger().error(std::string("skipping unreadable ") + collection + " record " + key +
                            ": " + e.what());
      }
      return true;
    });
  };
  Status s = scanAll(kGrants, [&](const std::string&, const std::string& v) {
    Grant g = grantFromJson(v);
    grants_[g.storeKey()] = std::move(g);
  });
  if (!s) return s;
  s = scanAll(kRequests, [&](const std::string&, const std::string& v) {
    insertRequest(accessRequestFromJson(v));
  });
  if (!s) return s;
  s = scanAll(kCommands, [&](const std::string&, const std::string& v) {
    Command c = commandFromJson(v);
    nextSeq_ = std::max(nextSeq_, c.seq + 1);
    insertCommand(c);
  });
  if (!s) return s;
  s = scanAll(kOutbox, [&](const std::string&, const std::string& v) {
    OutboxEntry e = outboxEntryFromJson(v);
    nextSeq_ = std::max(nextSeq_, e.seq + 1);
    insertOutbox(e);
  });
  if (!s) return s;
  return scanAll(kRemoved, [&](const std::string& k, const std::string&) {
    size_t slash = k.find('/');
    if (slash == std::string::npos) throw std::runtime_error("bad key");
    hidden_.insert(TerminalKey{k.substr(0, slash), k.substr(slash + 1)});
  });
}

void CoopRelayPlugin::insertCommand(const Command& c) {
  commands_[c.commandId] = c;
  if (c.state == CommandState::kQueued) queued_[c.to.key()][c.seq] = c.commandId;
  if (c.state == CommandState::kOffered) offered_[c.to.key()][c.seq] = c.commandId;
  if (c.inWindow()) ++inFlight_[c.to.key()];
  addDeadline(c.deadlineMs(), "c:" + c.commandId);
}

void CoopRelayPlugin::eraseCommand(const std::string& commandId) {
  auto it = commands_.find(commandId);
  if (it == commands_.end()) return;
  const Command& c = it->second;
  if (c.state == CommandState::kQueued) {
    auto q = queued_.find(c.to.key());
    if (q != queued_.end()) {
      q->second.erase(c.seq);
      if (q->second.empty()) queued_.erase(q);
    }
  }
  if (c.state == CommandState::kOffered) {
    auto o = offered_.find(c.to.key());
    if (o != offered_.end()) {
      o->second.erase(c.seq);
      if (o->second.empty()) offered_.erase(o);
    }
  }
  if (c.inWindow()) {
    // Replied, timed out, expired or dropped: its slot in the target's delivery window is free
    // for the next queued command (deliverFreed).
    auto f = inFlight_.find(c.to.key());
    if (f != inFlight_.end() && --f->second == 0) inFlight_.erase(f);
    freed_.insert(c.to.key());
  }
  removeDeadline(c.deadlineMs(), "c:" + commandId);
  commands_.erase(it);
  // A sender still waiting for its sendCommand answer gets INTERNAL from the core once this
  // last copy of its responder is gone (only when its user was removed meanwhile).
  unacked_.erase(commandId);
}

void CoopRelayPlugin::insertRequest(const AccessRequest& r) {
  requests_[r.commandId] = r;
  addDeadline(r.expiresAtMs, "r:" + r.commandId);
}

void CoopRelayPlugin::eraseRequest(const std::string& commandId) {
  auto it = requests_.find(commandId);
  if (it == requests_.end()) return;
  removeDeadline(it->second.expiresAtMs, "r:" + commandId);
  requests_.erase(it);
}

void CoopRelayPlugin::insertOutbox(const OutboxEntry& e) {
  outbox_[e.to][e.seq] = e;
  outboxOwner_[e.seq] = e.to;
  addDeadline(e.expiresAtMs, "o:" + seqKey(e.seq));
}

void CoopRelayPlugin::eraseOutbox(uint64_t seq) {
  auto owner = outboxOwner_.find(seq);
  if (owner == outboxOwner_.end()) return;
  auto box = outbox_.find(owner->second);
  if (box != outbox_.end()) {
    auto e = box->second.find(seq);
    if (e != box->second.end()) {
      removeDeadline(e->second.expiresAtMs, "o:" + seqKey(seq));
      box->second.erase(e);
    }
    if (box->second.empty()) outbox_.erase(box);
  }
  outboxOwner_.erase(owner);
}

// ------------------------------------------------------------------------------------------
// The change pipeline

Status CoopRelayPlugin::commit(Batch& batch, bool applyOnFailure) {
  // A durable notice for an offline terminal becomes an outbox row in the same transaction, so
  // that the change and the promise to tell someone about it are one commit.
  std::vector<OutboxEntry> staged;
  std::vector<const Notice*> direct;
  for (const Notice& n : batch.durable) {
    if (isOnline(n.to)) {
      direct.push_back(&n);
      continue;
    }
    if (!ctx_.terminal(n.to.userId, n.to.clientId)) continue;  // gone for good: nobody to tell
    OutboxEntry e{nextSeq_++, n.to, n.event, n.dataJson, n.expiresAtMs};
    batch.put(kOutbox, seqKey(e.seq), toJson(e));
    staged.push_back(std::move(e));
  }

  KvStore& store = ctx_.store();
  Status s;
  if (!batch.ops.empty()) {
    s = store.transaction([&]() -> Status {
      for (const auto& op : batch.ops) {
        Status w = op.erase ? store.erase(op.collection, op.key)
                            : store.put(op.collection, op.key, op.value);
        if (!w) return w;
      }
      return Status::ok();
    });
  }
  if (!s) {
    ctx_.logger().error("store commit failed: " + s.toString());
    if (!applyOnFailure) return s;
  }

  for (auto& fn : batch.applies) fn();
  for (const auto& e : staged) insertOutbox(e);
  for (const Notice* n : direct) sendNotice(*n);
  for (const Notice& n : batch.hints) {
    ctx_.sendEvent(n.to.userId, n.to.clientId, n.event, n.dataJson);
  }
  armTimer();
  return s;
}

void CoopRelayPlugin::sendNotice(const Notice& n) {
  if (ctx_.sendEvent(n.to.userId, n.to.clientId, n.event, n.dataJson) > 0) return;
  // The terminal dropped between our presence check and the send: keep the notice.
  OutboxEntry e{nextSeq_++, n.to, n.event, n.dataJson, n.expiresAtMs};
  Status s = ctx_.store().put(kOutbox, seqKey(e.seq), toJson(e));
  if (!s) ctx_.logger().error("could not keep a " + n.event + " notice: " + s.toString());
  insertOutbox(e);
}

void CoopRelayPlugin::decideRequest(Batch& batch, const AccessRequest& r, AccessResponseCode code,
                                    const Endpoint& decider) {
  batch.erase(kRequests, r.commandId);
  batch.apply([this, id = r.commandId] { eraseRequest(id); });
  Object data;
  data.set("commandId", r.commandId);
  data.set("code", static_cast<int>(code));
  data.set("from", endpointJson(decider));
  if (code != AccessResponseCode::kAgreed) data.set("message", accessMessage(code));
  batch.durable.push_back({r.from.key(), kEvAccessResponse, toText(data), nowMs() + commandTtlMs_});
}

void CoopRelayPlugin::finishCommand(Batch& batch, const Command& c, CommandState state,
                                    const char* reason) {
  batch.erase(kCommands, seqKey(c.seq));
  batch.apply([this, id = c.commandId] { eraseCommand(id); });
  batch.durable.push_back(
      {c.from.key(), kEvCommandState, commandStateJson(c, state, reason), nowMs() + commandTtlMs_});
}

void CoopRelayPlugin::revokeGrant(Batch& batch, const Grant& g) {
  batch.erase(kGrants, g.storeKey());
  batch.apply([this, key = g.storeKey()] { grants_.erase(key); });
  // Commands still queued from the grantee were allowed by this grant only; delivering them
  // after the granter withdrew it would bypass the check made "on every command".
  auto q = queued_.find(g.granter.key());
  if (q != queued_.end()) {
    for (const auto& [seq, id] : q->second) {
      const Command& c = commands_.at(id);
      if (c.from.key() == g.grantee.key())
        finishCommand(batch, c, CommandState::kExpired, "revoked");
    }
  }
  batch.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
  batch.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
}

void CoopRelayPlugin::purgeTerminal(Batch& batch, const TerminalKey& key, bool senderGone) {
  std::set<TerminalKey> lostGrantFrom;  // terminals whose grant to `key` disappears
  for (const auto& [storeKey, g] : grants_) {
    if (g.granter.key() != key && g.grantee.key() != key) continue;
    batch.erase(kGrants, storeKey);
    batch.apply([this, k = storeKey] { grants_.erase(k); });
    if (g.granter.key() == key) {
      batch.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
    } else {
      lostGrantFrom.insert(g.granter.key());
      batch.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
    }
  }
  for (const auto& [id, r] : requests_) {
    if (r.to.key() == key) {
      decideRequest(batch, r, AccessResponseCode::kRemoved, r.to);
    } else if (r.from.key() == key) {
      // The requester is gone; the target simply never gets an answer to give.
      batch.erase(kRequests, id);
      batch.apply([this, id = id] { eraseRequest(id); });
    }
  }
  for (const auto& [id, c] : commands_) {
    bool queued = c.state == CommandState::kQueued;
    if (c.from.key() == key && senderGone) {
      batch.erase(kCommands, seqKey(c.seq));
      batch.apply([this, id = id] { eraseCommand(id); });
    } else if ((queued || c.state == CommandState::kOffered) && c.to.key() == key) {
      // Queued, or offered but never confirmed: the removed terminal will not acknowledge it.
      finishCommand(batch, c, CommandState::kExpired, "removed");
    } else if (queued && c.from.key() == key && lostGrantFrom.count(c.to.key()) > 0) {
      // Sent by the removed terminal under a grant that is gone now.
      finishCommand(batch, c, CommandState::kExpired, "revoked");
    }
  }
  auto box = outbox_.find(key);
  if (box != outbox_.end()) {
    for (const auto& [seq, e] : box->second) {
      batch.erase(kOutbox, seqKey(seq));
      batch.apply([this, seq = seq] { eraseOutbox(seq); });
    }
  }
}

// ------------------------------------------------------------------------------------------
// Delivery

void CoopRelayPlugin::flush(const TerminalKey& key, int64_t reofferOlderThanMs) {
  if (!running_ || !isOnline(key)) return;

  auto box = outbox_.find(key);
  if (box != outbox_.end()) {
    Batch b;
    for (const auto& [seq, e] : box->second) {
      if (ctx_.sendEvent(key.userId, key.clientId, e.event, e.dataJson) == 0) break;
      b.erase(kOutbox, seqKey(seq));
      b.apply([this, seq = seq] { eraseOutbox(seq); });
    }
    // The events are out: a failed erase only means they are sent again after a restart.
    commit(b, /*applyOnFailure=*/true);
  }

  for (auto& [id, r] : requests_) {
    if (r.to.key() != key) continue;
    if (r.delivered && reofferOlderThanMs != 0) continue;  // a new session: show it again
    r.delivered =
        ctx_.sendEvent(key.userId, key.clientId, kEvAccessRequest, accessRequestEventJson(r)) > 0;
  }

  int64_t now = nowMs();
  // Offered commands the target has not confirmed go again, first (they are older than
  // anything queued to it), with the same commandId: the client drops repeats (SPEC §4a).
  auto o = offered_.find(key);
  if (reofferOlderThanMs >= 0 && o != offered_.end()) {
    for (const auto& [seq, id] : o->second) {
      Command& c = commands_.at(id);
      if (reofferOlderThanMs > 0 && c.offeredAtMs > now - reofferOlderThanMs) continue;
      if (ctx_.sendEvent(key.userId, key.clientId, kEvCommand, commandEventJson(c)) == 0) break;
      c.offeredAtMs = now;
    }
  }

  auto q = queued_.find(key);
  if (q == queued_.end()) return;
  // A backlog goes out in windows: at most deliveryWindow_ commands to one terminal await
  // their reply at any time, so that a terminal coming back to thousands of commands neither
  // drowns in them nor overflows the broker's queue for its session (mosquitto drops beyond
  // max_queued_messages). The rest stay queued, in order, until replies and timeouts make
  // room (deliverFreed); the window is shared by all senders, and the head of the queue
  // always goes first, so send order per (sender, target) holds.
  size_t busy = inFlight(key);
  size_t room = busy < deliveryWindow_ ? deliveryWindow_ - busy : 0;
  if (room == 0) return;
  Batch b;
  for (const auto& [seq, id] : q->second) {
    if (room == 0) break;
    Command c = commands_.at(id);
    if (ctx_.sendEvent(key.userId, key.clientId, kEvCommand, commandEventJson(c)) == 0) break;
    --room;
    c.state = CommandState::kOffered;
    c.offeredAtMs = now;
    b.put(kCommands, seqKey(seq), toJson(c));
    b.apply([this, c] {
      eraseCommand(c.commandId);
      insertCommand(c);
    });
    b.hints.push_back(
        {c.from.key(), kEvCommandState, commandStateJson(c, CommandState::kOffered, nullptr)});
  }
  // Delivery happened; if recording it fails the command is delivered again later (at least
  // once, deduplicated by commandId), which beats forgetting it was sent.
  commit(b, /*applyOnFailure=*/true);
}

void CoopRelayPlugin::flushAllOnline() {
  std::set<TerminalKey> keys;
  for (const auto& [k, q] : queued_) keys.insert(k);
  for (const auto& [k, box] : outbox_) keys.insert(k);
  for (const auto& [id, r] : requests_) keys.insert(r.to.key());
  for (const auto& [k, o] : offered_) keys.insert(k);
  for (const auto& k : keys) flush(k, /*reofferOlderThanMs=*/0);
}

void CoopRelayPlugin::deliverFreed() {
  if (!running_) {
    freed_.clear();
    return;
  }
  // flush() changes nothing that adds to freed_ (it only moves queued commands to delivered),
  // but loop anyway rather than rely on that.
  while (!freed_.empty()) {
    std::set<TerminalKey> keys;
    keys.swap(freed_);
    for (const auto& k : keys) {
      if (queued_.count(k) == 0) continue;  // nothing waits: the room is simply free
      try {
        flush(k, kNoReoffer);
      } catch (const std::exception& e) {
        ctx_.logger().error("delivering the backlog of " + k.str() + " failed: " + e.what());
      }
    }
  }
}

size_t CoopRelayPlugin::inFlight(const TerminalKey& target) const {
  auto it = inFlight_.find(target);
  return it == inFlight_.end() ? 0 : it->second;
}

// ------------------------------------------------------------------------------------------
// Deadlines

void CoopRelayPlugin::addDeadline(int64_t atMs, const std::string& tag) {
  deadlines_.insert({atMs, tag});
}

void CoopRelayPlugin::removeDeadline(int64_t atMs, const std::string& tag) {
  deadlines_.erase({atMs, tag});
}

void CoopRelayPlugin::armTimer() {
  if (!running_) return;
  if (deadlines_.empty()) {
    if (timer_ != 0) ctx_.cancelTimer(timer_);
    timer_ = 0;
    return;
  }
  int64_t at = std::max(deadlines_.begin()->first, backoffUntilMs_);
  if (timer_ != 0 && timerAtMs_ == at) return;
  if (timer_ != 0) ctx_.cancelTimer(timer_);
  timerAtMs_ = at;
  // One timer for the earliest deadline rather than one per record: a queue of thousands of
  // commands costs one hub-loop timer.
  timer_ = ctx_.startTimer(std::chrono::milliseconds(std::max<int64_t>(0, at - nowMs())), [this] {
    timer_ = 0;
    if (!running_) return;
    expireDue();
    deliverFreed();  // a reply timeout makes room in its target's delivery window
    armTimer();
  });
}

void CoopRelayPlugin::commitDelivered() {
  if (writeBehindTimer_ != 0) ctx_.cancelTimer(writeBehindTimer_);
  writeBehindTimer_ = 0;
  if (unacked_.empty()) return;
  std::map<std::string, Responder> acks;
  acks.swap(unacked_);
  Batch b;
  for (const auto& [id, r] : acks) {
    const Command& c = commands_.at(id);
    b.put(kCommands, seqKey(c.seq), toJson(c));
  }
  Status s = commit(b);
  for (auto& [id, r] : acks) {
    if (s) {
      r.ok(sendResultJson(id, commands_.at(id).state));  // offered, or delivered if acked
    } else {
      // Delivered but not tracked: the sender hears INTERNAL and a reply finds nothing.
      eraseCommand(id);
      r.status(s);
    }
  }
}

void CoopRelayPlugin::expireDue() {
  commitDelivered();  // a deadline may concern a command whose record is still in memory only
  int64_t now = nowMs();
  if (now < backoffUntilMs_) return;
  Batch b;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it) {
    const std::string& tag = it->second;
    std::string id = tag.substr(2);
    switch (tag[0]) {
      case 'c': {
        const Command& c = commands_.at(id);
        finishCommand(
            b, c,
            c.state == CommandState::kDelivered ? CommandState::kTimeout : CommandState::kExpired,
            nullptr);
        break;
      }
      case 'r': {
        const AccessRequest& r = requests_.at(id);
        decideRequest(b, r, AccessResponseCode::kExpired, r.to);
        break;
      }
      case 'o': {
        uint64_t seq = std::stoull(id);
        b.erase(kOutbox, id);
        b.apply([this, seq] { eraseOutbox(seq); });
        break;
      }
    }
  }
  if (b.applies.empty()) return;
  if (!commit(b)) backoffUntilMs_ = now + kStoreRetryMs;
}

// ------------------------------------------------------------------------------------------
// Presence

void CoopRelayPlugin::hintPartners(Batch& batch, const TerminalKey& key) const {
  for (const auto& [k, g] : grants_) {
    if (g.granter.key() == key) batch.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
    if (g.grantee.key() == key) batch.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
  }
}

void CoopRelayPlugin::onPresence(const std::string& dataJson, bool online) {
  auto key = terminalOfEvent(dataJson);
  if (!key) return;
  if (online) flush(*key, /*reofferOlderThanMs=*/0);
  // `online` is a field of every device list the terminal appears in.
  Batch b;
  b.hints.push_back(syncHint({key->userId, ""}, kSyncMyDevices));
  hintPartners(b, *key);
  commit(b);
}

void CoopRelayPlugin::onHello(const std::string& dataJson) {
  auto key = terminalOfEvent(dataJson);
  if (!key) return;
  Batch b;
  // A removed device that says hello again is back in its owner's list (it is still logged in
  // with the owner's account; removal is list hygiene, not a ban).
  if (hidden_.count(*key) > 0) {
    b.erase(kRemoved, key->str());
    b.apply([this, k = *key] { hidden_.erase(k); });
  }
  b.hints.push_back(syncHint({key->userId, ""}, kSyncMyDevices));
  hintPartners(b, *key);
  if (!commit(b)) return;
  flush(*key, /*reofferOlderThanMs=*/0);  // hello starts a session: offer everything again
}

void CoopRelayPlugin::onSeen(const std::string& dataJson) {
  auto key = terminalOfEvent(dataJson);
  if (!key || offered_.count(*key) == 0) return;  // the common case: nothing unconfirmed
  bool presence = false;
  try {
    presence = parseObject(dataJson)->optValue<std::string>("via", "") == "presence";
  } catch (const std::exception&) {
  }
  flush(*key, presence ? 0 : kReofferAfterRequestMs);
}

void CoopRelayPlugin::onUserRemoved(const std::string& dataJson) {
  std::string userId;
  try {
    userId = parseObject(dataJson)->optValue<std::string>("userId", "");
  } catch (const std::exception&) {
    return;
  }
  if (!isValidIdentifier(userId)) return;
  std::set<TerminalKey> keys;
  auto note = [&](const TerminalKey& k) {
    if (k.userId == userId) keys.insert(k);
  };
  for (const auto& [k, g] : grants_) {
    note(g.granter.key());
    note(g.grantee.key());
  }
  for (const auto& [id, r] : requests_) {
    note(r.from.key());
    note(r.to.key());
  }
  for (const auto& [id, c] : commands_) {
    note(c.from.key());
    note(c.to.key());
  }
  for (const auto& [k, box] : outbox_) note(k);
  for (const auto& k : hidden_) note(k);
  // One commit per terminal: purging one terminal's commands settles those between two
  // terminals of the user before the next one is looked at.
  for (const auto& k : keys) {
    Batch b;
    purgeTerminal(b, k, /*senderGone=*/true);
    if (hidden_.count(k) > 0) {
      b.erase(kRemoved, k.str());
      b.apply([this, k] { hidden_.erase(k); });
    }
    commit(b);
  }
}

// ------------------------------------------------------------------------------------------
// Helpers

bool CoopRelayPlugin::isOnline(const TerminalKey& key) const {
  auto t = ctx_.terminal(key.userId, key.clientId);
  return t && t->online;
}

std::optional<TerminalInfo> CoopRelayPlugin::visibleTerminal(const TerminalKey& key) const {
  if (hidden_.count(key) > 0) return std::nullopt;
  return ctx_.terminal(key.userId, key.clientId);
}

Result<Endpoint> CoopRelayPlugin::caller(const Request& req) const {
  auto t = visibleTerminal({req.userId, req.clientId});
  if (!t) {
    return Status::error(ErrorCode::kNotFound,
                         "this terminal is not known: send hello (after removeMyDevice too)");
  }
  return Endpoint{t->appId, t->userId, t->clientId};
}

Result<Endpoint> CoopRelayPlugin::resolveTarget(const Endpoint& to) const {
  auto t = visibleTerminal(to.key());
  if (!t || t->appId != to.appId) {
    return Status::error(ErrorCode::kNotFound, "no terminal " + to.userId + "/" + to.clientId +
                                                   " with appId " + to.appId);
  }
  return Endpoint{t->appId, t->userId, t->clientId};
}

const Grant* CoopRelayPlugin::findGrant(const TerminalKey& granter,
                                        const TerminalKey& grantee) const {
  auto it = grants_.find(Grant::storeKey(granter, grantee));
  return it == grants_.end() ? nullptr : &it->second;
}

std::string CoopRelayPlugin::deviceListJson(bool authorized, const TerminalKey& self) const {
  Array devices;
  for (const auto& [k, g] : grants_) {
    const Endpoint& mine = authorized ? g.granter : g.grantee;
    const Endpoint& other = authorized ? g.grantee : g.granter;
    if (mine.key() != self) continue;
    auto t = ctx_.terminal(other.userId, other.clientId);
    Object::Ptr d = new Object;
    d->set("appId", other.appId);
    d->set("clientIdentify", other.clientId);
    d->set("deviceModel", t ? t->deviceModel : "");
    d->set("deviceName", t ? t->deviceName : "");
    d->set("online", t ? t->online : false);
    d->set("userId", other.userId);
    d->set("allPermissions", g.allPermissions);
    d->set("permissions", toArray(g.permissions));
    devices.add(d);
  }
  std::ostringstream out;
  devices.stringify(out);
  return out.str();
}

std::string CoopRelayPlugin::newCommandId() const {
  // 122 random bits from the OS source: a commandId cannot be guessed, which is what makes
  // "only the addressed terminal may answer" meaningful before the explicit caller check.
  return Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
}

std::string CoopRelayPlugin::commandStateJson(const Command& c, CommandState state,
                                              const char* reason) const {
  Object o;
  o.set("commandId", c.commandId);
  o.set("commandType", c.commandType);
  o.set("state", commandStateName(state));
  o.set("stateCode", static_cast<int>(state));
  o.set("to", endpointJson(c.to));
  if (reason != nullptr) o.set("reason", reason);
  return toText(o);
}

CoopRelayPlugin::Notice CoopRelayPlugin::syncHint(const TerminalKey& to, const char* type) {
  Object o;
  o.set("type", type);
  return Notice{to, kEvSync, toText(o), 0};
}

// ------------------------------------------------------------------------------------------
// Requests

void CoopRelayPlugin::getOpenId(const Request& req, const ParamReader&, const Responder& res) {
  auto t = ctx_.terminal(req.userId, req.clientId);
  if (!t) return res.error(ErrorCode::kNotFound, "this terminal is not known: send hello first");
  Object o;
  o.set("openId", t->openId);
  res.ok(toText(o));
}

void CoopRelayPlugin::getDeviceInfo(const Request& req, const ParamReader& p,
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
  o.set("permissions", toArray(perms));
  res.ok(toText(o));
}

void CoopRelayPlugin::requestAccessTo(const Request& req, const ParamReader& p,
                                      const Responder& res) {
  Endpoint to = p.endpoint("to");
  bool all = p.optionalBool("allPermissions", false);
  std::vector<std::string> perms = p.identifierList("permissions", kMaxPermissions);
  if (!all && perms.empty()) {
    throw InvalidParam(
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
  // Offered now if the target is connected, else when it comes online (flush).
  flush(r.to.key(), kNoReoffer);
  Object o;
  o.set("commandId", r.commandId);
  o.set("expiresAt", r.expiresAtMs);
  res.ok(toText(o));
}

void CoopRelayPlugin::agreeAccessRequest(const Request& req, const ParamReader& p,
                                         const Responder& res) {
  std::string id = p.identifier("commandId");
  Endpoint to = p.endpoint("to");
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    return res.error(ErrorCode::kNotFound, "no pending access request " + id);
  }
  const AccessRequest& r = it->second;
  TerminalKey self{req.userId, req.clientId};
  if (r.to.key() != self) {
    return res.error(ErrorCode::kForbidden, "only the addressed terminal may answer " + id);
  }
  if (to != r.from) {
    return res.error(ErrorCode::kForbidden, "\"to\" is not the terminal that asked");
  }
  auto me = caller(req);
  if (!me) return res.status(me.status());

  Grant g;
  if (const Grant* existing = findGrant(self, r.from.key())) {
    g = *existing;  // a second agreement widens the grant, it never narrows it
  } else {
    g.grantedAtMs = nowMs();
  }
  g.granter = me.value();
  g.grantee = r.from;
  g.allPermissions = g.allPermissions || r.allPermissions;
  g.permissions.insert(r.permissions.begin(), r.permissions.end());

  Batch b;
  decideRequest(b, r, AccessResponseCode::kAgreed, me.value());
  b.put(kGrants, g.storeKey(), toJson(g));
  b.apply([this, g] { grants_[g.storeKey()] = g; });
  b.hints.push_back(syncHint(g.granter.key(), kSyncAuthorized));
  b.hints.push_back(syncHint(g.grantee.key(), kSyncAccessible));
  res.status(commit(b));
}

void CoopRelayPlugin::rejectAccessRequest(const Request& req, const ParamReader& p,
                                          const Responder& res) {
  std::string id = p.identifier("commandId");
  Endpoint to = p.endpoint("to");
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    return res.error(ErrorCode::kNotFound, "no pending access request " + id);
  }
  const AccessRequest& r = it->second;
  if (r.to.key() != TerminalKey{req.userId, req.clientId}) {
    return res.error(ErrorCode::kForbidden, "only the addressed terminal may answer " + id);
  }
  if (to != r.from) {
    return res.error(ErrorCode::kForbidden, "\"to\" is not the terminal that asked");
  }
  auto me = caller(req);
  if (!me) return res.status(me.status());
  Batch b;
  decideRequest(b, r, AccessResponseCode::kRejected, me.value());
  res.status(commit(b));
}

void CoopRelayPlugin::getMyDevices(const Request& req, const ParamReader&, const Responder& res) {
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
  res.ok(toText(o));
}

void CoopRelayPlugin::getAuthorizedDevices(const Request& req, const ParamReader&,
                                           const Responder& res) {
  Object o;
  o.set("devices", Poco::JSON::Parser().parse(deviceListJson(true, {req.userId, req.clientId})));
  res.ok(toText(o));
}

void CoopRelayPlugin::getAccessibleDevices(const Request& req, const ParamReader&,
                                           const Responder& res) {
  Object o;
  o.set("devices", Poco::JSON::Parser().parse(deviceListJson(false, {req.userId, req.clientId})));
  res.ok(toText(o));
}

void CoopRelayPlugin::getAllDevices(const Request& req, const ParamReader&, const Responder& res) {
  TerminalKey self{req.userId, req.clientId};
  Object o;
  o.set("authorizedDevices", Poco::JSON::Parser().parse(deviceListJson(true, self)));
  o.set("accessibleDevices", Poco::JSON::Parser().parse(deviceListJson(false, self)));
  res.ok(toText(o));
}

void CoopRelayPlugin::removeAuthorizedDevice(const Request& req, const ParamReader& p,
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

void CoopRelayPlugin::removeAccessibleDevice(const Request& req, const ParamReader& p,
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

void CoopRelayPlugin::removeMyDevice(const Request& req, const ParamReader& p,
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

void CoopRelayPlugin::sendCommand(const Request& req, const ParamReader& p, const Responder& res) {
  std::string commandType = p.identifier("commandType");
  Endpoint to = p.endpoint("to");
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
    c.state = CommandState::kOffered;
    c.offeredAtMs = c.createdAtMs;
    insertCommand(c);
    unacked_.emplace(c.commandId, res);
    if (writeBehindTimer_ == 0) {
      writeBehindTimer_ = ctx_.startTimer(kWriteBehind, [this] {
        writeBehindTimer_ = 0;
        commitDelivered();
        deliverFreed();  // a failed commit drops its commands, and their window slots
      });
    }
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

void CoopRelayPlugin::replyCommand(const Request& req, const ParamReader& p, const Responder& res) {
  std::string id = p.identifier("commandId");
  std::string params = p.objectJson("commandParams");
  Endpoint to = p.endpoint("to");
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

  Object data;
  data.set("commandId", c.commandId);
  data.set("commandType", c.commandType);
  data.set("commandParams", parseObject(params));
  data.set("from", endpointJson(me.value()));
  data.set("state", commandStateName(CommandState::kReplied));
  data.set("stateCode", static_cast<int>(CommandState::kReplied));

  Batch b;
  auto unacked = unacked_.find(id);
  if (unacked != unacked_.end()) {
    // Replied before its record reached the disk: nothing about it is left to make durable.
    // The sender's sendCommand is answered first, because clients learn the commandId there
    // and match the commandResponse by it.
    Responder sender = unacked->second;
    CommandState answered = c.state;  // offered (or delivered, if acknowledged first)
    eraseCommand(id);
    sender.ok(sendResultJson(id, answered));
  } else {
    b.erase(kCommands, seqKey(c.seq));
    b.apply([this, id] { eraseCommand(id); });
  }
  b.hints.push_back(
      {c.from.key(), kEvCommandState, commandStateJson(c, CommandState::kReplied, nullptr)});
  // A connected sender gets the response before the bookkeeping commit, which keeps the disk
  // off the round trip. The response is then out whatever happens: a crash before the commit
  // only brings the command back as delivered, and the sender gets a `timeout` for a command
  // it already has the answer to (final states are final; clients ignore later ones).
  if (isOnline(c.from.key()) &&
      ctx_.sendEvent(c.from.userId, c.from.clientId, kEvCommandResponse, toText(data)) > 0) {
    return res.status(commit(b, /*applyOnFailure=*/true));
  }
  b.durable.push_back({c.from.key(), kEvCommandResponse, toText(data), nowMs() + commandTtlMs_});
  res.status(commit(b));
}

void CoopRelayPlugin::ackCommand(const Request& req, const ParamReader& p, const Responder& res) {
  std::vector<std::string> ids = p.identifierList("commandIds", kMaxAckIds);
  if (ids.empty()) throw InvalidParam("commandIds: at least one commandId");
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
  res.ok(toText(o));
}

}  // namespace hearth::coop
