#pragma once
// What the coop_relay sources share inside the plugin: the store's collections, the events to
// terminals, the limits, and the JSON bodies of the events. Internal to plugins/coop_relay.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSONString.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coop_model.h"
#include "coop_relay_plugin.h"
#include "hearth/status.h"

namespace hearth::coop::relay {

using json::Array;
using json::Object;

// Store collections.
inline constexpr const char* kGrants = "grants";      // Grant::storeKey() -> Grant
inline constexpr const char* kRequests = "requests";  // commandId -> AccessRequest
inline constexpr const char* kCommands = "commands";  // seqKey -> Command (queued or delivered)
inline constexpr const char* kOutbox = "outbox";      // seqKey -> OutboxEntry
inline constexpr const char* kRemoved = "removed";    // "user/client" -> {} (removeMyDevice)

// Events to terminals.
inline constexpr const char* kEvAccessRequest = "accessRequest";
inline constexpr const char* kEvAccessResponse = "accessResponse";
inline constexpr const char* kEvCommand = "command";
inline constexpr const char* kEvCommandResponse = "commandResponse";
inline constexpr const char* kEvCommandState = "commandState";
inline constexpr const char* kEvSync = "sync";

// sync{type} values: which list to re-fetch.
inline constexpr const char* kSyncMyDevices = "myDevices";
inline constexpr const char* kSyncAuthorized = "authorizedDevices";
inline constexpr const char* kSyncAccessible = "accessibleDevices";

inline constexpr size_t kMaxPermissions = 64;
inline constexpr int64_t kStoreRetryMs = 1000;
// How long a command delivered at once may go without its record on disk. Most replies come
// back well within it, and then the record is never written at all; the rest share one commit.
inline constexpr std::chrono::milliseconds kWriteBehind{50};
// A request from a terminal shows it is there, but its session may still be the one that got
// the offer a moment ago (ackCommand itself is such a request): only offers at least this old
// are repeated then. Presence `online` and `hello` (a new session) repeat every offer.
inline constexpr int64_t kReofferAfterRequestMs = 1000;
inline constexpr size_t kMaxAckIds = 1000;

inline const char* accessMessage(AccessResponseCode code) {
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

// The messages of every relayed command are written as text, not built as JSON documents:
// params are JSON text already (json::Params::objectJson) and go in as they are; strings are
// put in quotes by quoted(). (Keys in the order Poco's documents would print them.)

// A JSON string of s: an identifier ([A-Za-z0-9._:-], all that the ids, types and endpoints of
// a command are) needs no escapes and is only put in quotes; anything else goes through
// Poco::toJSON.
inline std::string quoted(const std::string& s) {
  if (!isValidIdentifier(s)) return Poco::toJSON(s);
  std::string q;
  q.reserve(s.size() + 2);
  q.append(1, '"').append(s).append(1, '"');
  return q;
}

inline std::string endpointText(const Endpoint& e) {
  std::string s;
  s.reserve(e.appId.size() + e.userId.size() + e.clientId.size() + 48);
  s.append("{\"appId\":").append(quoted(e.appId));
  s.append(",\"clientIdentify\":").append(quoted(e.clientId));
  s.append(",\"userId\":").append(quoted(e.userId)).append("}");
  return s;
}

inline std::string sendResultJson(const std::string& commandId, CommandState state) {
  std::string s = "{\"commandId\":" + quoted(commandId);
  s.append(",\"state\":").append(quoted(std::string(commandStateName(state))));
  s.append(",\"stateCode\":").append(std::to_string(static_cast<int>(state))).append("}");
  return s;
}

inline std::string commandEventJson(const Command& c) {
  std::string s;
  s.reserve(c.paramsJson.size() + c.commandId.size() + c.commandType.size() + 160);
  s.append("{\"commandId\":").append(quoted(c.commandId));
  s.append(",\"commandParams\":").append(c.paramsJson);
  s.append(",\"commandType\":").append(quoted(c.commandType));
  s.append(",\"from\":").append(endpointText(c.from)).append("}");
  return s;
}

// The commandResponse: the reply's params (JSON text) from `from`, the final state.
inline std::string commandResponseJson(const Command& c, const std::string& paramsJson,
                                       const Endpoint& from) {
  std::string s;
  s.reserve(paramsJson.size() + c.commandId.size() + c.commandType.size() + 200);
  s.append("{\"commandId\":").append(quoted(c.commandId));
  s.append(",\"commandParams\":").append(paramsJson);
  s.append(",\"commandType\":").append(quoted(c.commandType));
  s.append(",\"from\":").append(endpointText(from));
  s.append(",\"state\":")
      .append(quoted(std::string(commandStateName(CommandState::kReplied))));
  s.append(",\"stateCode\":").append(std::to_string(static_cast<int>(CommandState::kReplied)));
  s.append("}");
  return s;
}

inline std::string accessRequestEventJson(const AccessRequest& r) {
  Object params;
  params.set("allPermissions", r.allPermissions);
  params.set("permissions", stringArray(r.permissions));
  Object o;
  o.set("commandId", r.commandId);
  o.set("from", endpointJson(r.from));
  o.set("commandParams", params);
  return json::text(o);
}

// The `userId`/`clientId` of a core event; nullopt if malformed (then it is ignored). `via`, if
// given, gets the event's `via` field (terminal.seen), from the same scan. Runs for every
// request (terminal.seen): read with json::Params, no document built.
inline std::optional<TerminalKey> terminalOfEvent(const std::string& dataJson,
                                                  std::string* via = nullptr) {
  try {
    json::Params p(dataJson);
    TerminalKey k{p.identifier("userId"), p.identifier("clientId")};
    if (via != nullptr) *via = p.optionalString("via", 64).value_or("");
    return k;
  } catch (const json::InvalidParam&) {
    return std::nullopt;
  }
}

}  // namespace hearth::coop::relay
