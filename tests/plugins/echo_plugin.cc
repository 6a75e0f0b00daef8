// A small plugin that proves the plugin host end to end: methods, config view, store
// namespace, timers, events to terminals, the event bus, status and the plugins' counters. Test-only; never installed.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sstream>

#include "hearth/plugin.h"

namespace {

std::string toJson(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

Poco::JSON::Object::Ptr parse(const std::string& json) {
  return Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>();
}

class EchoPlugin : public hearth::Plugin {
 public:
  explicit EchoPlugin(hearth::PluginContext& ctx) : ctx_(ctx) {}

  hearth::Status start() override {
    using hearth::MethodScope;
    must(ctx_.registerMethod("echo", MethodScope::kUser,
                        [this](const hearth::Request& req, hearth::Responder res) {
                          Poco::JSON::Object r;
                          r.set("params", parse(req.paramsJson));
                          r.set("greeting", ctx_.config().getString("greeting"));
                          r.set("userId", req.userId);
                          r.set("clientId", req.clientId);
                          res.ok(toJson(r));
                        }));
    must(ctx_.registerMethod(
        "kvPut", MethodScope::kUser, [this](const hearth::Request& req, hearth::Responder res) {
          auto p = parse(req.paramsJson);
          res.status(ctx_.store().put("kv", req.userId + "/" + p->getValue<std::string>("key"),
                                      p->getValue<std::string>("value")));
        }));
    must(ctx_.registerMethod(
        "kvGet", MethodScope::kUser, [this](const hearth::Request& req, hearth::Responder res) {
          auto p = parse(req.paramsJson);
          auto v = ctx_.store().get("kv", req.userId + "/" + p->getValue<std::string>("key"));
          if (!v) return res.error(v.status().code(), v.status().message());
          if (!v.value()) return res.error(hearth::ErrorCode::kNotFound, "no such key");
          Poco::JSON::Object r;
          r.set("value", *v.value());
          res.ok(toJson(r));
        }));
    // Answers after `delayMs` from a hub-loop timer, and sends an event to the caller first.
    must(ctx_.registerMethod("later", MethodScope::kUser,
                        [this](const hearth::Request& req, hearth::Responder res) {
                          auto p = parse(req.paramsJson);
                          auto delay = std::chrono::milliseconds(p->optValue<int>("delayMs", 10));
                          std::string user = req.userId, client = req.clientId;
                          ctx_.startTimer(delay, [this, res, user, client] {
                            ctx_.sendEvent(user, client, "tick", "{\"n\":1}");
                            res.ok("{\"late\":true}");
                          });
                        }));
    // Never answers: the core must answer INTERNAL for it.
    must(ctx_.registerMethod("forget", MethodScope::kUser,
                        [](const hearth::Request&, hearth::Responder) {}));
    must(ctx_.registerMethod("echoAdmin", MethodScope::kAdmin,
                        [](const hearth::Request&, hearth::Responder res) { res.ok(); }));
    ctx_.subscribe(hearth::events::kTerminalHello,
                   [this](const std::string&, const std::string&) { ++hellos_; });
    must(ctx_.registerMethod("hellosSeen", MethodScope::kUser,
                        [this](const hearth::Request&, hearth::Responder res) {
                          res.ok("{\"hellos\":" + std::to_string(hellos_) + "}");
                        }));
    // Every plugin's counters as the host hands them over (hearth_host_api::plugin_counters).
    must(ctx_.registerMethod("pluginCounters", MethodScope::kUser,
                        [this](const hearth::Request&, hearth::Responder res) {
                          Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
                          for (const auto& c : ctx_.pluginCounters()) {
                            Poco::JSON::Array::Ptr row = new Poco::JSON::Array;
                            row->add(c.plugin);
                            row->add(c.name);
                            row->add(c.value);
                            list->add(row);
                          }
                          Poco::JSON::Object r;
                          r.set("counters", list);
                          res.ok(toJson(r));
                        }));
    ctx_.setState(hearth::PluginState::kRunning,
                  "{\"greeting\":\"" + ctx_.config().getString("greeting") + "\"}");
    return failed_;
  }
  void stop() override {}

 private:
  // Keeps the first failed registration; start() returns it.
  void must(hearth::Status s) {
    if (!s && failed_.isOk()) failed_ = std::move(s);
  }
  hearth::Status failed_;
  hearth::PluginContext& ctx_;
  int hellos_ = 0;
};

const hearth_config_key kKeys[] = {
    {"greeting", HEARTH_CFG_STRING, "hello", 1, 0, "what echo answers with"},
    {"limit", HEARTH_CFG_INT, "5", 1, 10, "a bounded integer"},
};

}  // namespace

HEARTH_PLUGIN(EchoPlugin, "echo", "1.0.0", kKeys, 2)
