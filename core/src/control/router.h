#pragma once
// The request router: parses the envelope of every request message, validates it, dispatches
// to the registered handler and guarantees exactly one response per request (docs/mqtt-api.md).
//
// Runs on the hub loop. Requests are dispatched in arrival order, which per terminal is the
// order the terminal published them (MQTT keeps order per client and topic tree).

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "control/mqtt_client.h"
#include "hearth/host.h"

namespace hearth {

inline constexpr size_t kMaxPayloadBytes = 64 * 1024;

// Where responses are published; MqttClient in production, a recorder in unit tests.
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(const std::string& topic, const std::string& payload,
                       const std::string* correlationData) = 0;
};

// The parts of a request topic.
struct RequestTopic {
  MethodScope scope = MethodScope::kUser;
  std::string userId;
  std::string clientId;
  std::string method;
  std::string replyTopic;  // the default response topic
};
// Parses hearth/v1/u/U/C/req/M or hearth/v1/admin/req/M; nullopt for anything else.
std::optional<RequestTopic> parseRequestTopic(std::string_view topic);

namespace json {
class Params;  // hearth/util/json.h
}  // namespace json
using json::Params;
// A core method: handed Params reading the params text the router scanned (the payload is read
// once; a plugin's handler gets that text, Request::paramsJson, across the plugin boundary).
using CoreRequestHandler = std::function<void(const Request&, const Params&, Responder)>;

class RequestRouter {
 public:
  RequestRouter(Publisher& publisher, Logger& logger) : publisher_(publisher), logger_(logger) {}

  // owner names who registered (core or a plugin) so a plugin's methods can be dropped.
  Status registerMethod(const std::string& method, MethodScope scope, RequestHandler handler,
                        const std::string& owner);
  // The core's own methods (owner "core"): Request::paramsJson stays empty.
  Status registerCoreMethod(const std::string& method, MethodScope scope,
                            CoreRequestHandler handler);
  void unregisterOwner(const std::string& owner);

  // Handles one message that arrived on a request topic.
  void handle(const MqttMessage& msg);
  // The same, for a caller that has parsed the topic already (the hub, to route the message).
  void handle(const MqttMessage& msg, const RequestTopic& topic);

  struct Counters {
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> rejected{0};  // envelope errors (INVALID_REQUEST before dispatch)
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Entry {
    MethodScope scope;
    RequestHandler handler;  // a plugin's (or a test's): params as JSON text
    CoreRequestHandler core;  // or the core's: params as parsed
    std::string owner;
  };
  Status add(const std::string& method, Entry entry);
  Publisher& publisher_;
  Logger& logger_;
  std::map<std::string, Entry> methods_;
  Counters counters_;
};

}  // namespace hearth
