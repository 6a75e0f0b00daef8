// hello_sdk: the smallest useful outside plugin. It adds one user method, sdkHello, that
// answers {"greeting": "<plugins.hello_sdk.greeting>", "userId": "<caller>"}. It uses only
// the SDK headers (no library of hearth's own), so it builds from package hearth-dev alone.

#include <string>

#include "hearth/plugin.h"

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

class HelloSdkPlugin : public hearth::Plugin {
 public:
  explicit HelloSdkPlugin(hearth::PluginContext& ctx) : ctx_(ctx) {}

  hearth::Status start() override {
    ctx_.registerMethod("sdkHello", hearth::MethodScope::kUser,
                        [this](const hearth::Request& req, hearth::Responder res) {
                          res.ok("{\"greeting\":" + quoted(ctx_.config().getString("greeting")) +
                                 ",\"userId\":" + quoted(req.userId) + "}");
                        });
    return hearth::Status::ok();
  }

  void stop() override {}

 private:
  hearth::PluginContext& ctx_;
};

const hearth_config_key kKeys[] = {
    {"greeting", HEARTH_CFG_STRING, "hello from an outside plugin", 0, 0,
     "What sdkHello answers with."},
};

}  // namespace

HEARTH_PLUGIN(HelloSdkPlugin, "hello_sdk", "0.1.0", kKeys, 1)
