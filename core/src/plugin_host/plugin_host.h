#pragma once
// Loads plugin modules (dlopen RTLD_NOW | RTLD_LOCAL), negotiates the ABI version and checks the
// plugin's table before anything else, hands each plugin its context (the C table of
// hearth/plugin_api.h), and keeps what hub/status shows about them. A refused or failing plugin
// is logged (file, versions, the call that failed) and reported; the others keep running. Every
// call into a plugin goes through call(), the one guard. Hub loop only.

#include <Poco/JSON/Object.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "binding/service.h"
#include "config/config.h"
#include "control/router.h"
#include "hearth/plugin_api.h"
#include "hearth/sdk/context.h"
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
  // confirmed (may be empty): hearth_host_api::send_event_confirmed's done, on the hub loop.
  virtual size_t sendEvent(const std::string& userId, const std::string& clientId,
                           const std::string& event, const std::string& dataJson,
                           std::function<void(Status)> confirmed = nullptr) = 0;
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
  // Validates the plugins: subtrees of the config against the discovered plugins' declared
  // keys, then each plugin's own validate() on a subtree that passed. A subtree naming no
  // discovered plugin is an error. Starts and stops nothing (--check-config, SIGHUP).
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
  // Every plugin's counters (details.<plugin>.counters of hub/status), in order of plugin, then
  // name: what hearth_host_api::plugin_counters hands a plugin (web's /metrics).
  void forEachCounter(
      const std::function<void(const std::string& plugin, const std::string& name, int64_t value)>&
          fn) const;
  bool hasPlugin(const std::string& name) const { return plugins_.count(name) > 0; }
  PluginState state(const std::string& name) const { return plugins_.at(name).state; }

  // The ABI versions this hearthd speaks (offered to hearth_plugin_version).
  static const std::vector<int>& supportedVersions();

  // The one guard around a call into plugin `name` (`what` names the call in the log): fn gets
  // the plugin's error out and returns HEARTH_CALL_OK or HEARTH_CALL_THREW. A plugin that is not
  // running (stopped, or failed earlier) is not called. A throw marks the plugin failed and
  // stops it (from the hub loop, after the current call has unwound); the hub goes on.
  enum class Call { kRan, kSkipped, kThrew };
  Call call(const std::string& name, const std::string& what,
            const std::function<int(hearth_out error)>& fn);

  class Context;

 private:
  friend class Context;
  struct Loaded {
    std::string file;
    // The dlopen handle, closed when its last holder goes: the host, the plugin's context, or
    // a closure of the plugin the core still holds (PluginClosure).
    std::shared_ptr<void> library;
    hearth_plugin table{};    // the plugin's table, members it does not know zeroed
    std::vector<hearth_config_key> keys;  // its declared keys, in this hearthd's layout
    std::shared_ptr<Context> context;
    void* instance = nullptr;
    bool failed = false;  // threw: no more calls; being stopped
    uint64_t generation = 0;
    PluginState state = PluginState::kStopped;
    std::string detailJson;
    std::string error;
    std::map<std::string, int64_t> counters;
  };
  struct Refused {
    std::string file;
    std::string reason;
  };

  void startOne(const std::string& name, Loaded& p, config::PluginConfigResult cfg);
  void stopOne(const std::string& name, Loaded& p, bool callStop = true);
  void fail(const std::string& name, Loaded& p, const std::string& reason);
  void runValidate(const config::HubConfig& cfg, const std::string& name, const Loaded& p,
                   const config::PluginConfigResult& r,
                   std::vector<config::ConfigError>& errors) const;

  CoreServices& core_;
  Logger& logger_;
  std::map<std::string, Loaded> plugins_;
  std::vector<Refused> refused_;
  bool started_ = false;  // startAll ran: validate() also runs the plugins' own validate
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for work posted to the loop
};

}  // namespace hearth
