#pragma once
// The home_assistant plugin (docs/home-assistant.md): shows Home Assistant the devices their
// owners expose, with MQTT device-based discovery on the broker HA uses, and turns HA's
// commands into controlDevice calls run as the exposing owner.
//
// Lifecycle of the link to HA's broker: (account) -> connect -> subscribe, read the retained
// configs and states under our prefixes up to a marker message -> clear what is no longer
// exposed -> publish the hub's and every exposed device's config, availability and state.
// HA's birth message repeats the publishing after a random delay of up to resend_delay_max.
//
// Threading: everything runs on the hub loop except HaLink's callbacks, which post() closures
// that capture `this` as it is: the host drops them once the plugin has stopped.

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "exposures.h"
#include "ha_link.h"
#include "ha_mapping.h"
#include "ha_payloads.h"
#include "hearth/host.h"

namespace hearth::home_assistant {

class HomeAssistantPlugin : public Plugin {
 public:
  explicit HomeAssistantPlugin(PluginContext& ctx);
  ~HomeAssistantPlugin() override;

  Status start() override;
  static Status validate(const ConfigView& c);
  void stop() override;

  // What HA may do with its account (dynsec mode) and what the plugin's own account may do.
  static std::vector<BrokerAcl> haAcls(const Topics& topics);
  static std::vector<BrokerAcl> bridgeAcls(const Topics& topics);

 private:
  enum class LinkState { kIdle, kAccount, kConnecting, kSyncing, kLive };

  // Requests.
  void haExpose(const Request& req, const Responder& res);
  void expose(const Request& req, const Responder& res, const std::string& deviceId, bool enabled);
  void haExposed(const Request& req, const Responder& res);
  void haAccount(const Request& req, const Responder& res);
  std::string detailOf(const std::string& deviceId, const std::string& userId) const;

  // Core events.
  void onDeviceState(const std::string& dataJson);
  void onPresence(const std::string& dataJson, bool online);
  void onBindingChanged(const std::string& dataJson);

  // The link.
  void setUpAccount();
  void connectLink(const std::string& username, const std::string& password);
  void onLinkUp();
  void onLinkDown();
  void onLinkMessage(const std::string& topic, const std::string& payload, bool retained);
  void finishSync();
  void onCommand(const std::string& node, const std::string& component, const std::string& payload);
  void scheduleResend();

  // Publishing (no-ops while the link is not live).
  void publishAll();
  void publishDevice(const std::string& deviceId);
  void publishState(const std::string& deviceId);
  void clearNode(const std::string& node);
  // Withdraws an exposure: durable first, then HA is told (empty retained config).
  void withdraw(const std::string& deviceId, const std::string& why);
  // The exposure is still valid: the exposer still owns a device hearth can map.
  bool stillValid(const std::string& deviceId, const Exposure& e) const;
  std::optional<Mapping> mappingOf(const DeviceInfo& info) const;
  void report();

  PluginContext& ctx_;
  Topics topics_;
  Origin origin_;
  DiscoveryOptions discovery_;
  std::vector<MappingRule> rules_;
  Exposures exposures_;
  std::chrono::milliseconds resendDelayMax_{5000};
  bool external_ = false;  // plugins.home_assistant.broker_host set: not hearthd's broker
  std::unique_ptr<HaLink> link_;
  LinkState state_ = LinkState::kIdle;
  std::string syncMarker_;
  std::set<std::string> retainedNodes_;          // configs seen on the broker during the sync
  std::map<std::string, std::string> haStates_;  // device -> merged HA state (JSON text)
  Timer resendTimer_;
  std::mt19937_64 rng_;
  struct Counters {
    uint64_t configsPublished = 0;
    uint64_t configsCleared = 0;
    uint64_t statesPublished = 0;
    uint64_t commands = 0;
    uint64_t commandsRefused = 0;
    uint64_t births = 0;
  } counters_;
  std::string lastError_;
};

}  // namespace hearth::home_assistant
