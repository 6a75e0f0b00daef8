#pragma once
// The hub: owns the hub loop and everything on it (database, identity, control plane, plugins)
// and wires them together. main() builds one and runs it.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "backup/backup.h"
#include "backup/scheduler.h"
#include "control/mqtt_client.h"
#include "control/publish_confirmations.h"
#include "control/router.h"
#include "daemon/core_methods.h"
#include "daemon/output_gate.h"
#include "loop/event_bus.h"
#include "loop/hub_loop.h"
#include "loop/logger.h"
#include "identity/dynsec.h"
#include "identity/identity.h"
#include "plugin_host/plugin_host.h"
#include "store/database.h"
#include "store/storage_monitor.h"

namespace hearth {

struct HubOptions {
  std::string configPath;
  std::vector<std::string> overrides;  // --set key=value, re-applied on reload
};

class Hub : public CoreServices, private Publisher, private BrokerAccounts {
 public:
  Hub(config::HubConfig cfg, HubOptions options, LogSink& sink, const Clock& clock);
  ~Hub() override;

  // Opens the database, loads plugins, connects, runs the hub loop until SIGTERM/SIGINT.
  // Returns the process exit code.
  int run();

  // Loads the plugin descriptors from hub.plugin_dir and validates the plugin subtrees
  // (hearthd --check-config); starts nothing.
  std::vector<config::ConfigError> checkPlugins();

  // Thread-safe (signal thread).
  void requestStop();
  void requestReload();

  // CoreServices
  HubLoop& loop() override { return loop_; }
  const Clock& clock() const override { return clock_; }
  LogSink& logSink() override { return sink_; }
  Database& database() override { return *db_; }
  RequestRouter& router() override { return router_; }
  IdentityService& identity() override { return *identity_; }
  EventBus& bus() override { return bus_; }
  binding::BindingService& bindings() override { return *bindings_; }
  size_t sendEvent(const std::string& userId, const std::string& clientId, const std::string& event,
                   const std::string& dataJson,
                   std::function<void(Status)> confirmed = nullptr) override;
  void statusChanged() override;
  LocalBrokerInfo localBroker() const override;
  void setBrokerAccount(const std::string& username, const std::string& password,
                        const std::vector<BrokerAcl>& acls,
                        std::function<void(Status)> done) override;
  std::string stateDir() const override { return cfg_.stateDir; }

 private:
  // Publisher (responses)
  void publish(const std::string& topic, const std::string& payload,
               const std::string* correlationData) override;

  // BrokerAccounts (userAdd/userRemove/userList): the broker's Dynamic Security plugin
  void addUser(const std::string& userId, const std::string& password,
               std::function<void(Status)> done) override;
  void removeUser(const std::string& userId, std::function<void(Status)> done) override;
  void listUsers(std::function<void(Result<std::vector<std::string>>)> done) override;

  Status open();
  void onConnected(int rc, const std::string& reason);
  void subscribeControlTopics();
  void onMessage(const MqttMessage& msg);
  // Publishes events::kTerminalSeen (coop_relay offers unconfirmed commands again).
  void publishSeen(const std::string& userId, const std::string& clientId, const char* via);
  void onPresence(const std::string& userId, const std::string& clientId,
                  const std::string& payload);
  void publishStatus();
  std::string statusJson(bool online) const;
  void reload();
  void stop();
  void armWatchdog();
  void watchdogTick(std::chrono::milliseconds period);
  void notify(const std::string& state);
  // A database that cannot be opened: names the newest good backup and the command that
  // restores it, in the log and in a retained hub/status {"state":"failed"}.
  void reportUnopenable(const Status& error);

  config::HubConfig cfg_;
  HubOptions options_;
  LogSink& sink_;
  const Clock& clock_;
  TaggedLogger logger_;
  HubLoop loop_;
  EventBus bus_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<OutputGate> gate_;  // answers and events wait here for their commit's flush
  std::unique_ptr<IdentityService> identity_;
  std::unique_ptr<binding::BindingService> bindings_;
  std::unique_ptr<MqttClient> mqtt_;
  std::unique_ptr<DynsecAdmin> dynsec_;
  RequestRouter router_;
  std::unique_ptr<PluginHost> plugins_;
  std::unique_ptr<StorageMonitor> storage_;
  std::unique_ptr<backup::BackupScheduler> backups_;
  backup::StateLock stateLock_;
  bool ready_ = false;
  bool brokerUp_ = false;
  // The broker's PUBACKs for events whose sender asked to know (sendEvent's confirmed).
  PublishConfirmations confirmations_{[this](std::function<void()> fn) { loop_.post(std::move(fn)); }};
  bool statusPending_ = false;
  bool stopping_ = false;
  int64_t startedAtMs_ = 0;
  uint64_t connects_ = 0;
  std::atomic<int> exitCode_{0};
};

}  // namespace hearth
