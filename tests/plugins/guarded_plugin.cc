// A plugin that proves the guard and validate: it throws on request from a handler, a timer or
// posted work (the host must mark it failed and stop it, and serve on), refuses a bad `word` in
// validate (--check-config and SIGHUP refuse the file and keep it running), and shows PATH and
// ENUM keys and a counter. Test-only; never installed.

#include <stdexcept>
#include <string>

#include "hearth/sdk.h"

// Answers to accountLater's setBrokerAccount that reached the plugin; read by
// tests/unit/plugin_host_test.cc through dlsym (an answer after stop must not arrive).
extern "C" {
__attribute__((visibility("default"))) int guarded_account_answers = 0;
}

namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }  // test values: no escapes

class Guarded : public hearth::Plugin {
 public:
  explicit Guarded(hearth::PluginContext& ctx) : ctx_(ctx) {}

  // The same check start() relies on: a word is letters only.
  static hearth::Status validate(const hearth::ConfigView& cfg) {
    const std::string word = cfg.getString("word");
    for (char c : word) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
        return hearth::Status::error(hearth::ErrorCode::kInvalidRequest,
                                     "word '" + word + "' must be letters only");
      }
    }
    return hearth::Status::ok();
  }

  hearth::Status start() override {
    if (auto s = validate(ctx_.config()); !s) return s;
    using hearth::MethodScope;
    using hearth::Request;
    using hearth::Responder;
    auto reg = [this](const char* name, hearth::RequestHandler h) {
      return ctx_.registerMethod(name, MethodScope::kUser, std::move(h));
    };
    hearth::Status s = reg("guardedWord", [this](const Request&, Responder res) {
      ctx_.count("words");
      res.ok("{\"word\":" + quoted(ctx_.config().getString("word")) +
             ",\"mode\":" + quoted(ctx_.config().getString("mode")) +
             ",\"file\":" + quoted(ctx_.config().getString("file")) + "}");
    });
    if (s) s = reg("throwInHandler", [](const Request&, Responder) {
      throw std::runtime_error("thrown from a handler on purpose");
    });
    if (s) s = reg("throwInTimer", [this](const Request&, Responder res) {
      timer_ = ctx_.after(std::chrono::milliseconds(1),
                          [] { throw std::runtime_error("thrown from a timer on purpose"); });
      res.ok();
    });
    if (s) s = reg("throwInPost", [this](const Request&, Responder res) {
      ctx_.post([] { throw std::runtime_error("thrown from posted work on purpose"); });
      res.ok();
    });
    // Asks for a broker account; the answer comes whenever the core gives it (the test holds it
    // back until the plugin has stopped).
    if (s) s = reg("accountLater", [this](const Request&, Responder res) {
      ctx_.setBrokerAccount("late", "late-password", {}, [this](hearth::Status) {
        ++guarded_account_answers;
        ctx_.count("account_answers");
      });
      res.ok();
    });
    return s;
  }
  void stop() override { ctx_.logger().info("guarded stopped"); }

 private:
  hearth::PluginContext& ctx_;
  hearth::Timer timer_;
};

const hearth_config_key kKeys[] = {
    {"word", HEARTH_CFG_STRING, "ok", 0, 0, "letters only (validate)"},
    {"mode", HEARTH_CFG_ENUM, "calm", 0, 0, "calm or loud", "calm|loud"},
    {"file", HEARTH_CFG_PATH, "guarded.txt", 0, 0, "a path, relative to the config file"},
};

}  // namespace

HEARTH_PLUGIN(Guarded, "guarded", "1.0.0", kKeys, 3)
