// A transport plugin for integration tests: admin requests make it report devices, present
// provisioning tokens, report resets and flip presence, exactly as wifi_lan and ble do from
// the network. It serves the "wifi" and "ble" transports; control echoes the command back and
// records it. Test-only; never installed.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <map>
#include <set>
#include <stdexcept>
#include <sstream>

#include "hearth/plugin.h"

namespace {

std::string toJson(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

class TestTransport : public hearth::Plugin, public hearth::DeviceTransport {
 public:
  explicit TestTransport(hearth::PluginContext& ctx) : ctx_(ctx) {}

  hearth::Status start() override {
    using hearth::MethodScope;
    for (const char* t : {"wifi", "ble"}) {
      if (auto s = ctx_.devices().registerTransport(t, this); !s) return s;
    }
    reg("testReport", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      hearth::DeviceReport r;
      r.deviceId = p->getValue<std::string>("deviceId");
      r.transport = p->optValue<std::string>("transport", "ble");
      r.model = p->optValue<std::string>("model", "lock-1");
      r.name = p->optValue<std::string>("name", r.deviceId);
      r.bindWindowSec = p->optValue<int>("bindWindowSec", 0);
      r.inventoryOnly = p->optValue<bool>("inventoryOnly", false);
      if (p->optValue<bool>("present", true)) {
        present_.insert(r.deviceId);
      } else {
        present_.erase(r.deviceId);
      }
      res.status(ctx_.devices().report(r));
    });
    reg("testProvision", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      auto r = ctx_.devices().presentProvisionToken(p->getValue<std::string>("deviceId"),
                                                    p->getValue<std::string>("token"));
      if (!r) return res.error(r.status().code(), r.status().message());
      res.ok("{\"userId\":\"" + r.value() + "\"}");
    });
    reg("testReset", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      res.status(ctx_.devices().reportReset(p->getValue<std::string>("deviceId")));
    });
    reg("testOnline", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      std::string id = p->getValue<std::string>("deviceId");
      bool online = p->getValue<bool>("online");
      if (online) {
        present_.insert(id);
      } else {
        present_.erase(id);
      }
      ctx_.devices().setOnline(id, online);
      res.ok();
    });
    // A state report, as wifi_lan sends one when a device says its state changed.
    reg("testState", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      Poco::JSON::Object data;
      data.set("deviceId", p->getValue<std::string>("deviceId"));
      data.set("state", p->getObject("state"));
      ctx_.devices().notifyBoundUsers(p->getValue<std::string>("deviceId"), "deviceState",
                                      toJson(data));
      res.ok();
    });
    // From now on the device refuses (or again accepts) every command.
    reg("testRefuse", [this](Poco::JSON::Object::Ptr p, hearth::Responder res) {
      if (p->getValue<bool>("refuse")) {
        refusing_.insert(p->getValue<std::string>("deviceId"));
      } else {
        refusing_.erase(p->getValue<std::string>("deviceId"));
      }
      res.ok();
    });
    reg("testControls", [this](Poco::JSON::Object::Ptr, hearth::Responder res) {
      Poco::JSON::Object r;
      Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
      for (const auto& c : controls_) list->add(c);
      r.set("controls", list);
      res.ok(toJson(r));
    });
    return hearth::Status::ok();
  }
  void stop() override {}

  bool present(const std::string& deviceId) const override { return present_.count(deviceId) > 0; }

  void control(const std::string& deviceId, const std::string& userId, const std::string& command,
               const std::string& paramsJson,
               std::function<void(hearth::Result<std::string>)> done) override {
    controls_.push_back(userId + ":" + deviceId + ":" + command);
    if (refusing_.count(deviceId)) {
      return done(hearth::Status::error(hearth::ErrorCode::kConflict, "the device refused"));
    }
    if (command == "hang") {
      return done(hearth::Status::error(hearth::ErrorCode::kTimeout, "device did not answer"));
    }
    Poco::JSON::Object r;
    r.set("deviceId", deviceId);
    r.set("command", command);
    r.set("params", Poco::JSON::Parser().parse(paramsJson));
    done(toJson(r));
  }

 private:
  void reg(const char* name, std::function<void(Poco::JSON::Object::Ptr, hearth::Responder)> fn) {
    hearth::Status s = ctx_.registerMethod(
        name, hearth::MethodScope::kAdmin, [fn](const hearth::Request& req, hearth::Responder res) {
          fn(Poco::JSON::Parser().parse(req.paramsJson).extract<Poco::JSON::Object::Ptr>(), res);
        });
    // From start(): the host's guard marks the plugin failed with this message.
    if (!s) throw std::runtime_error("registering " + std::string(name) + ": " + s.toString());
  }

  hearth::PluginContext& ctx_;
  std::set<std::string> present_;
  std::set<std::string> refusing_;
  std::vector<std::string> controls_;
};

}  // namespace

HEARTH_PLUGIN(TestTransport, "testtransport", "1.0.0", nullptr, 0)
