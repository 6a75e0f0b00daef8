// hello_sdk: the example plugin of docs/plugin-sdk.md, built only against the installed SDK
// headers (no library of hearth's own, so it builds from package hearth-dev alone).
//
//   sdkHello      answers {"greeting": "<plugins.hello_sdk.greeting>", "userId": "<caller>"}
//   sdkHelloLater answers the same after plugins.hello_sdk.delay, from a timer
//
// It shows the parts most plugins need: declared keys (a STRING, an ENUM and a DURATION),
// validate() for what the types cannot say, a method, an RAII timer, a counter in hub/status.

#include <string>
#include <vector>

#include "hearth/sdk.h"

namespace {

// JSON string literal of s (the SDK hands JSON text over the boundary, not a JSON library).
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[(c >> 4) & 0xf];
      out += kHex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

class HelloPlugin : public hearth::Plugin {
 public:
  explicit HelloPlugin(hearth::PluginContext& ctx) : ctx_(ctx) {}

  // Runs on --check-config and before a SIGHUP stops anything: a refusal keeps the old file.
  static hearth::Status validate(const hearth::ConfigView& cfg) {
    if (cfg.getString("greeting").size() > 200) {
      return hearth::Status::error(hearth::ErrorCode::kInvalidRequest,
                                   "plugins.hello_sdk.greeting: at most 200 characters");
    }
    return hearth::Status::ok();
  }

  hearth::Status start() override {
    hearth::Status s = ctx_.registerMethod(
        "sdkHello", hearth::MethodScope::kUser,
        [this](const hearth::Request& req, hearth::Responder res) { res.ok(answer(req.userId)); });
    if (!s) return s;
    s = ctx_.registerMethod("sdkHelloLater", hearth::MethodScope::kUser,
                            [this](const hearth::Request& req, hearth::Responder res) {
                              // The timer goes with the plugin: no id to keep, no guard needed.
                              pending_.push_back(ctx_.after(
                                  ctx_.config().getDuration("delay"),
                                  [this, res, user = req.userId] { res.ok(answer(user)); }));
                            });
    if (!s) return s;
    ctx_.logger().info("hello_sdk speaks in a " + ctx_.config().getString("tone") + " tone");
    return hearth::Status::ok();
  }

  void stop() override { pending_.clear(); }

 private:
  std::string answer(const std::string& userId) {
    ctx_.count("greetings");  // hub/status: details.hello_sdk.counters.greetings
    return "{\"greeting\":" + quoted(ctx_.config().getString("greeting")) +
           ",\"userId\":" + quoted(userId) + "}";
  }

  hearth::PluginContext& ctx_;
  std::vector<hearth::Timer> pending_;
};

const hearth_config_key kKeys[] = {
    {"greeting", HEARTH_CFG_STRING, "hello from an outside plugin", 0, 0,
     "What sdkHello answers with."},
    {"tone", HEARTH_CFG_ENUM, "warm", 0, 0, "How it greets (logged at start).", "warm|dry"},
    {"delay", HEARTH_CFG_DURATION, "50ms", 0, 60, "How long sdkHelloLater waits."},
};

}  // namespace

HEARTH_PLUGIN(HelloPlugin, "hello_sdk", "0.2.0", kKeys, 3)
