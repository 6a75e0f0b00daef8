#pragma once
// Loads plugin modules, checks their ABI before anything else, hands each its PluginContext,
// and keeps what hub/status shows about them. A refused or failing plugin is logged (file and
// both versions) and reported; the others keep running. Hub loop only.

#include <Poco/JSON/Object.h>
#include <Poco/SharedLibrary.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "binding/service.h"
#include "config/config.h"
#include "control/router.h"
#include "hearth/plugin.h"
#include "loop/event_bus.h"
#include "loop/hub_loop.h"
#include "loop/logger.h"
#include "identity/identity.h"
#include "store/database.h"

namespace hearth {

// What the core offers plugin contexts; the Hub implements it.
class CoreServices {
 public:
  virtual ~CoreServices() = default;
  virtual HubLoop& loop() = 0;
  virtual const Clock& clock() const = 0;
  virtual LogSink& logSink() = 0;
  virtual Database& database() = 0;
  virtual RequestRouter& router() = 0;
  virtual IdentityService& identity() = 0;
  virtual EventBus& bus() = 0;
  virtual binding::BindingService& bindings() = 0;
  virtual size_t sendEvent(const std::string& userId, const std::string& clientId,
                           const std::string& event, const std::string& dataJson) = 0;
  virtual void statusChanged() = 0;
  // PluginContext::localBroker / setBrokerAccount; without a broker (tests): none.
  virtual LocalBrokerInfo localBroker() const { return {}; }
  virtual void setBrokerAccount(const std::string& username, const std::string& password,
                                const std::vector<BrokerAcl>& acls,
                                std::function<void(Status)> done) {
    done(Status::error(ErrorCode::kUnavailable, "no broker accounts here"));
  }
  // hub.state_dir of the configuration the hub runs with.
  virtual std::string stateDir() const { return {}; }
};

class PluginHost {
 public:
  PluginHost(CoreServices& core, Logger& logger) : core_(core), logger_(logger) {}
  ~PluginHost();

  // Loads every *.so in dir and checks its descriptor. Refusals are recorded, not fatal.
  void discover(const std::string& dir);
  // Validates the plugins: subtrees of the config against the discovered descriptors. A
  // subtree naming no discovered plugin is an error.
  std::vector<config::ConfigError> validate(
      const config::HubConfig& cfg, std::map<std::string, config::PluginConfigResult>* out) const;
  // Creates and starts every enabled plugin (in name order).
  void startAll(std::map<std::string, config::PluginConfigResult> configs);
  // Restarts the plugins whose configuration changed (SIGHUP), with their new views.
  void reconfigure(const config::HubConfig& oldCfg, const config::HubConfig& newCfg,
                   std::map<std::string, config::PluginConfigResult> configs);
  void stopAll();

  // {"plugins":{name: state}, "details":{name: {...}}}
  void fillStatus(Poco::JSON::Object& status) const;
  std::vector<std::string> names() const;
  bool hasPlugin(const std::string& name) const { return plugins_.count(name) > 0; }

 private:
  class Context;
  struct Loaded {
    std::string file;
    std::unique_ptr<Poco::SharedLibrary> library;
    const hearth_plugin_descriptor* descriptor = nullptr;
    std::shared_ptr<Context> context;  // shared_ptr: Context is complete only in the .cc
    Plugin* instance = nullptr;
    PluginState state = PluginState::kStopped;
    std::string detailJson;
    std::string error;
  };
  struct Refused {
    std::string file;
    std::string reason;
  };

  void startOne(const std::string& name, Loaded& p, config::PluginConfigResult cfg);
  void stopOne(const std::string& name, Loaded& p);

  CoreServices& core_;
  Logger& logger_;
  std::map<std::string, Loaded> plugins_;
  std::vector<Refused> refused_;
};

}  // namespace hearth
