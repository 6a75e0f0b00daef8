#include "control/router.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSONString.h>

#include "control/envelope_scan.h"
#include "control/params.h"

namespace hearth {
namespace {

bool isValidMethodName(const std::string& m) {
  if (m.empty() || m.size() > 64) return false;
  for (char c : m) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Answers one request once; the first answer wins. If nobody answered when the last Responder
// copy goes away, INTERNAL is sent so that every request gets exactly one response.
class MqttResponseSink : public ResponseSink {
 public:
  MqttResponseSink(Publisher& publisher, Logger& logger, RequestRouter::Counters& counters,
                   std::string topic, std::optional<std::string> correlation, std::string id,
                   std::string method)
      : publisher_(publisher),
        logger_(logger),
        counters_(counters),
        topic_(std::move(topic)),
        correlation_(std::move(correlation)),
        id_(std::move(id)),
        method_(std::move(method)) {}

  ~MqttResponseSink() override {
    if (!answered_.load()) {
      logger_.error("request " + method_ + " id " + id_ + " was dropped by its handler");
      sendError(ErrorCode::kInternal, "the handler did not answer");
    }
  }

  void sendOk(std::string resultJson) override {
    if (answered_.exchange(true)) return dropDuplicate();
    if (resultJson.empty()) resultJson = "{}";
    // The handler's JSON text goes into the envelope as it is (serialised once, by the
    // handler); it is only checked, without building a document from it.
    if (!isJsonText(resultJson)) {
      // A handler produced broken JSON: a bug, but the caller still gets its one answer.
      logger_.error("handler of " + method_ + " returned invalid JSON");
      answered_ = false;
      sendError(ErrorCode::kInternal, "handler returned invalid JSON");
      return;
    }
    std::string env;
    env.reserve(resultJson.size() + id_.size() + 32);
    env += "{\"id\":";
    env += Poco::toJSON(id_);
    env += ",\"ok\":true,\"result\":";
    env += resultJson;
    env += '}';
    send(env);
  }

  void sendError(ErrorCode code, std::string message) override {
    if (answered_.exchange(true)) return dropDuplicate();
    counters_.errors++;
    send(
        errorEnvelope(id_.empty() ? std::nullopt : std::optional<std::string>(id_), code, message));
  }

  static std::string errorEnvelope(const std::optional<std::string>& id, ErrorCode code,
                                   const std::string& message) {
    Poco::JSON::Object env;
    if (id) {
      env.set("id", *id);
    } else {
      env.set("id", Poco::Dynamic::Var());  // null: the request had no usable id
    }
    env.set("ok", false);
    Poco::JSON::Object::Ptr err = new Poco::JSON::Object;
    err->set("code", errorCodeName(code));
    err->set("message", message);
    env.set("error", err);
    return toJson(env);
  }

 private:
  void dropDuplicate() { logger_.warn("second answer to " + method_ + " id " + id_ + " dropped"); }
  void send(const std::string& payload) {
    publisher_.publish(topic_, payload, correlation_ ? &*correlation_ : nullptr);
  }

  Publisher& publisher_;
  Logger& logger_;
  RequestRouter::Counters& counters_;
  std::string topic_;
  std::optional<std::string> correlation_;
  std::string id_;
  std::string method_;
  std::atomic<bool> answered_{false};
};

}  // namespace

std::optional<RequestTopic> parseRequestTopic(std::string_view topic) {
  // Split on '/' into at most 8 views (one more than the longest form, to reject longer ones).
  std::string_view parts[8];
  size_t n = 0;
  for (size_t start = 0;;) {
    size_t slash = topic.find('/', start);
    if (n == 8) return std::nullopt;
    parts[n++] = topic.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (n < 5 || parts[0] != "hearth" || parts[1] != "v1") return std::nullopt;
  RequestTopic t;
  if (n == 7 && parts[2] == "u" && parts[5] == "req") {
    t.scope = MethodScope::kUser;
    t.userId = parts[3];
    t.clientId = parts[4];
    t.method = parts[6];
    t.replyTopic = "hearth/v1/u/" + t.userId + "/" + t.clientId + "/res/" + t.method;
    return t;
  }
  if (n == 5 && parts[2] == "admin" && parts[3] == "req") {
    t.scope = MethodScope::kAdmin;
    t.method = parts[4];
    t.replyTopic = "hearth/v1/admin/res/" + t.method;
    return t;
  }
  return std::nullopt;
}

Status RequestRouter::registerMethod(const std::string& method, MethodScope scope,
                                     RequestHandler handler, const std::string& owner) {
  return add(method, Entry{scope, std::move(handler), {}, owner});
}

Status RequestRouter::registerCoreMethod(const std::string& method, MethodScope scope,
                                         CoreRequestHandler handler) {
  return add(method, Entry{scope, {}, std::move(handler), "core"});
}

Status RequestRouter::add(const std::string& method, Entry entry) {
  if (!isValidMethodName(method)) {
    return Status::error(ErrorCode::kInvalidRequest, "invalid method name '" + method + "'");
  }
  // Method names are unique across scopes so that docs and logs never have to say which one.
  auto [it, inserted] = methods_.try_emplace(method, std::move(entry));
  if (!inserted) {
    return Status::error(ErrorCode::kConflict,
                         "method '" + method + "' is already registered by " + it->second.owner);
  }
  return Status::ok();
}

void RequestRouter::unregisterOwner(const std::string& owner) {
  std::erase_if(methods_, [&](const auto& kv) { return kv.second.owner == owner; });
}

void RequestRouter::handle(const MqttMessage& msg) {
  auto topic = parseRequestTopic(msg.topic);
  if (!topic) {
    counters_.requests++;
    return;  // not a request topic; the subscription filters make this unreachable
  }
  handle(msg, *topic);
}

void RequestRouter::handle(const MqttMessage& msg, const RequestTopic& t) {
  counters_.requests++;
  const RequestTopic* topic = &t;

  std::string replyTopic = topic->replyTopic;
  std::optional<std::string> correlation;
  if (msg.hasCorrelation) correlation = msg.correlationData;

  auto reject = [&](ErrorCode code, const std::string& message,
                    const std::optional<std::string>& id) {
    counters_.rejected++;
    counters_.errors++;
    logger_.debug("rejected " + msg.topic + ": " + message);
    std::string payload = MqttResponseSink::errorEnvelope(id, code, message);
    publisher_.publish(replyTopic, payload, correlation ? &*correlation : nullptr);
  };

  // A Response Topic is honoured only inside the requester's own tree: otherwise a terminal
  // could make the hub publish into another user's topics.
  if (!msg.responseTopic.empty()) {
    std::string allowedPrefix = topic->scope == MethodScope::kAdmin
                                    ? "hearth/v1/admin/"
                                    : "hearth/v1/u/" + topic->userId + "/";
    if (msg.responseTopic.rfind(allowedPrefix, 0) != 0 ||
        msg.responseTopic.find_first_of("+#") != std::string::npos) {
      return reject(ErrorCode::kInvalidRequest, "response topic must be under " + allowedPrefix,
                    std::nullopt);
    }
    replyTopic = msg.responseTopic;
  }

  if (topic->scope == MethodScope::kUser &&
      (!isValidIdentifier(topic->userId) || !isValidIdentifier(topic->clientId))) {
    return reject(ErrorCode::kInvalidRequest,
                  "user and client ids must match [A-Za-z0-9._:-]{1,64}", std::nullopt);
  }
  if (msg.payload.size() > kMaxPayloadBytes) {
    return reject(ErrorCode::kInvalidRequest,
                  "payload of " + std::to_string(msg.payload.size()) + " bytes exceeds the " +
                      std::to_string(kMaxPayloadBytes) + "-byte limit",
                  std::nullopt);
  }

  // The envelope is scanned once (control/envelope_scan.h), with no document built: a
  // plugin's method gets the params text across the plugin boundary (Request::paramsJson), a
  // core method json::Params reading that text. The checks below are the same for both.
  const bool validName = isValidMethodName(topic->method);
  auto it = validName ? methods_.find(topic->method) : methods_.end();
  const bool known = it != methods_.end() && it->second.scope == topic->scope;
  ScannedEnvelope envelope;
  try {
    envelope = scanEnvelope(msg.payload);
    if (!envelope.hasParams) envelope.paramsJson = "{}";
  } catch (const NotAnObject& e) {
    return reject(ErrorCode::kInvalidRequest, e.what(), std::nullopt);
  } catch (const MalformedJson& e) {
    return reject(ErrorCode::kInvalidRequest, std::string("malformed JSON: ") + e.what(),
                  std::nullopt);
  }
  const std::string& id = envelope.id;
  if (!envelope.idIsString || id.empty() || id.size() > 64) {
    return reject(ErrorCode::kInvalidRequest, "\"id\" must be a string of 1 to 64 characters",
                  std::nullopt);
  }
  if (envelope.hasParams && !envelope.paramsIsObject) {
    return reject(ErrorCode::kInvalidRequest, "\"params\" must be an object", id);
  }
  if (!validName) return reject(ErrorCode::kInvalidRequest, "invalid method name", id);
  if (!known) return reject(ErrorCode::kUnknownMethod, "no method '" + topic->method + "'", id);

  Request req;
  req.method = topic->method;
  req.id = id;
  req.userId = topic->userId;
  req.clientId = topic->clientId;
  const bool forCore = static_cast<bool>(it->second.core);
  if (!forCore) req.paramsJson = std::move(envelope.paramsJson);
  req.isAdmin = topic->scope == MethodScope::kAdmin;

  auto sink = std::make_shared<MqttResponseSink>(publisher_, logger_, counters_, replyTopic,
                                                 correlation, id, req.method);
  Responder responder(sink);
  try {
    if (it->second.core) {
      it->second.core(req, Params(std::move(envelope.paramsJson)), responder);
    } else {
      it->second.handler(req, responder);
    }
  } catch (const InvalidParam& e) {
    responder.error(ErrorCode::kInvalidRequest, e.what());
  } catch (const std::exception& e) {
    // Handlers validate their input; an exception here is a bug in one method, and the hub keeps
    // serving the others.
    logger_.error("handler of " + req.method + " threw: " + e.what());
    responder.error(ErrorCode::kInternal, "internal error");
  }
}

}  // namespace hearth
