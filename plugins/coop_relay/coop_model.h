#pragma once
// The records coop_relay keeps: grants, access requests, commands in flight and undelivered
// notices. Each record round-trips through the plugin's KvStore as JSON text, so everything a
// terminal was told "ok" about survives a hub restart.

#include <compare>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "hearth/util/json.h"

namespace hearth::coop {

// A terminal as the core names it: (user, MQTT client id). '/' cannot occur in an identifier,
// so "user/client" is an unambiguous store key.
struct TerminalKey {
  std::string userId;
  std::string clientId;

  std::string str() const { return userId + "/" + clientId; }
  auto operator<=>(const TerminalKey&) const = default;
};

// A terminal as the seed's API addresses it: {appId, userId, clientIdentify}.
struct Endpoint {
  std::string appId;
  std::string userId;
  std::string clientId;

  TerminalKey key() const { return {userId, clientId}; }
  bool operator==(const Endpoint&) const = default;
};

// The observable life of a command. The numbers are part of the API (seed 002's lesson: a
// client switches on a stable numbered state, not on prose): new states get new numbers.
// kOffered (SPEC §4a): handed to the broker for the target's session but not yet acknowledged
// by the target (ackCommand or replyCommand); offered again whenever the target is next seen.
// kDelivered: the target acknowledged it; the reply_timeout runs from then.
enum class CommandState {
  kQueued = 1,
  kDelivered = 2,
  kReplied = 3,
  kExpired = 4,
  kTimeout = 5,
  kOffered = 6,
};
const char* commandStateName(CommandState state);
std::optional<CommandState> commandStateFromName(const std::string& name);

// Permission of one terminal (granter) for another (grantee) to send it commands.
struct Grant {
  Endpoint granter;
  Endpoint grantee;
  bool allPermissions = false;
  std::set<std::string> permissions;
  int64_t grantedAtMs = 0;

  bool covers(const std::string& commandType) const {
    return allPermissions || permissions.count(commandType) > 0;
  }
  // Grants are per terminal pair; both halves of the key are identifiers.
  static std::string storeKey(const TerminalKey& granter, const TerminalKey& grantee) {
    return granter.str() + "/" + grantee.str();
  }
  std::string storeKey() const { return storeKey(granter.key(), grantee.key()); }
};

// A pending requestAccessTo, addressed to `to`, waiting for agree/reject or expiry.
struct AccessRequest {
  std::string commandId;
  Endpoint from;
  Endpoint to;
  bool allPermissions = false;
  std::vector<std::string> permissions;
  int64_t createdAtMs = 0;
  int64_t expiresAtMs = 0;
  // In memory only: after a restart every pending request is offered again (at least once;
  // clients deduplicate by commandId).
  bool delivered = false;
};

// A sendCommand that has not reached a final state yet (queued or delivered).
struct Command {
  std::string commandId;
  uint64_t seq = 0;  // global send order; orders delivery per (sender, target)
  Endpoint from;
  Endpoint to;
  std::string commandType;
  std::string paramsJson = "{}";  // a JSON object, passed through untouched
  CommandState state = CommandState::kQueued;
  int64_t createdAtMs = 0;
  int64_t expiresAtMs = 0;      // a queued command expires here
  int64_t replyDeadlineMs = 0;  // a delivered (acknowledged) command times out here
  // In memory only: when the command was last offered to the target (0 = not since loading).
  int64_t offeredAtMs = 0;

  // Queued and offered commands expire at command_ttl (never confirmed by the target);
  // delivered ones time out waiting for the reply.
  int64_t deadlineMs() const {
    return state == CommandState::kDelivered ? replyDeadlineMs : expiresAtMs;
  }
  // Sent to the target and holding a slot of its delivery window (offered or delivered).
  bool inWindow() const {
    return state == CommandState::kOffered || state == CommandState::kDelivered;
  }
};

// An event for a terminal that was offline when it was due; sent when the terminal comes
// online, dropped at expiresAtMs.
struct OutboxEntry {
  uint64_t seq = 0;
  TerminalKey to;
  std::string event;
  std::string dataJson;
  int64_t expiresAtMs = 0;
};

// The seed's address shape, {"appId","userId","clientIdentify"}: as an event or record carries
// it, and read from the request param `name` (an object of three identifiers; throws
// json::InvalidParam naming the field, e.g. "to.userId").
json::Object::Ptr endpointJson(const Endpoint& e);
Endpoint endpointParam(const json::Params& p, const std::string& name);

// A JSON array of strings.
template <typename Container>
json::Array::Ptr stringArray(const Container& items) {
  json::Array::Ptr a = new json::Array;
  for (const auto& s : items) a->add(s);
  return a;
}

// Zero-padded so that the store's bytewise key order is numeric order (FIFO on reload).
std::string seqKey(uint64_t seq);

// JSON (de)serialisation. The parse functions throw std::exception on a malformed record.
std::string toJson(const Grant& g);
std::string toJson(const AccessRequest& r);
std::string toJson(const Command& c);
std::string toJson(const OutboxEntry& e);
Grant grantFromJson(const std::string& record);
AccessRequest accessRequestFromJson(const std::string& record);
Command commandFromJson(const std::string& record);
OutboxEntry outboxEntryFromJson(const std::string& record);

}  // namespace hearth::coop
