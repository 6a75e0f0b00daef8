// coop_relay: construction, config keys, lifecycle, the core's terminal events (presence,
// hello, seen, user removed) and the lookups the other files share.
#include "coop_relay_plugin.h"

#include <Poco/UUID.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>

#include "coop_relay_shared.h"

namespace hearth::coop {

using namespace relay;

namespace {

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
  ctx_.setState(PluginState::kRunning, json::text(details));
  ctx_.logger().info("loaded " + std::to_string(grants_.size()) + " grants, " +
                     std::to_string(requests_.size()) + " access requests, " +
                     std::to_string(commands_.size()) + " commands in flight");
  return Status::ok();
}

void CoopRelayPlugin::stop() {
  commitDelivered();  // every sendCommand gets its answer, and its record is kept
  running_ = false;
  timer_.cancel();
  ctx_.setState(PluginState::kStopped);
}

// Every entry into the plugin (request, core event, timer) ends with deliverFreed(): a reply, a
// timeout or a removal may have made room in a delivery window. An exception that escapes is a
// bug: the host marks the plugin failed (bad params are INVALID_REQUEST, json::withParams).

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
    Status s = ctx_.registerMethod(
        name, MethodScope::kUser, [this, method = method](const Request& req, Responder res) {
          if (!running_) return res.error(ErrorCode::kUnavailable, "coop_relay is not running");
          json::withParams(req, res, [&](const json::Params& p) { (this->*method)(req, p, res); });
          deliverFreed();
        });
    if (!s) return s;
  }
  return Status::ok();
}

void CoopRelayPlugin::subscribeEvents() {
  using Handler = void (CoopRelayPlugin::*)(const std::string&);
  static const std::pair<const char*, Handler> kHandlers[] = {
      {events::kTerminalOnline, &CoopRelayPlugin::onOnline},
      {events::kTerminalOffline, &CoopRelayPlugin::onOffline},
      {events::kTerminalHello, &CoopRelayPlugin::onHello},
      {events::kTerminalSeen, &CoopRelayPlugin::onSeen},
      {events::kUserRemoved, &CoopRelayPlugin::onUserRemoved},
  };
  for (const auto& [topic, handler] : kHandlers) {
    ctx_.subscribe(topic, [this, handler = handler](const std::string&, const std::string& data) {
      (this->*handler)(data);
      deliverFreed();
    });
  }
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
  (void)commit(b);  // hints only; commit() logs a failure
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
  std::string via;
  auto key = terminalOfEvent(dataJson, &via);
  // The common case: nothing unconfirmed, nothing kept (a response the broker did not
  // acknowledge is kept for a terminal that still looks online).
  if (!key || (offered_.count(*key) == 0 && outbox_.count(*key) == 0)) return;
  flush(*key, via == "presence" ? 0 : kReofferAfterRequestMs);
}

void CoopRelayPlugin::onUserRemoved(const std::string& dataJson) {
  std::string userId;
  try {
    userId = json::parseObject(dataJson)->optValue<std::string>("userId", "");
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
    (void)commit(b);  // commit() logs a failure; the next user.removed retries nothing
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

Array::Ptr CoopRelayPlugin::deviceList(bool authorized, const TerminalKey& self) const {
  Array::Ptr devices = new Array;
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
    d->set("permissions", stringArray(g.permissions));
    devices->add(d);
  }
  return devices;
}

std::string CoopRelayPlugin::newCommandId() {
  // 122 random bits from the OS source: a commandId cannot be guessed, which is what makes
  // "only the addressed terminal may answer" meaningful before the explicit caller check.
  // getrandom(2) fills a buffer for 256 ids at a time (Poco's UUIDGenerator::createRandom
  // opens, reads and closes /dev/urandom through a stream for each id; one getrandom per id
  // was still 0.8 % of the hub's CPU per relayed command). Each byte is used once.
  if (randomUsed_ + 16 > sizeof random_) {
    size_t got = 0;
    while (got < sizeof random_) {
      ssize_t n = ::getrandom(random_ + got, sizeof random_ - got, 0);
      if (n < 0 && errno != EINTR) throw std::runtime_error("getrandom failed");
      if (n > 0) got += static_cast<size_t>(n);
    }
    randomUsed_ = 0;
  }
  unsigned char* bytes = random_ + randomUsed_;
  randomUsed_ += 16;
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4: random
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // the RFC 4122 variant
  Poco::UUID id;
  id.copyFrom(reinterpret_cast<const char*>(bytes));
  return id.toString();
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
  return json::text(o);
}

CoopRelayPlugin::Notice CoopRelayPlugin::syncHint(const TerminalKey& to, const char* type) {
  Object o;
  o.set("type", type);
  return Notice{to, kEvSync, json::text(o), 0};
}

}  // namespace hearth::coop
