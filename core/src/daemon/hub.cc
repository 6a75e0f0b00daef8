#include "daemon/hub.h"

#include <Poco/File.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSONString.h>
#include <Poco/Path.h>
#include <systemd/sd-daemon.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <tuple>

#include "control/params.h"

namespace hearth {
namespace {

constexpr const char* kStatusTopic = "hearth/v1/hub/status";

std::string readPassword(const config::HubConfig& cfg) {
  if (!cfg.brokerPassword.empty()) return cfg.brokerPassword;
  if (cfg.brokerPasswordFile.empty()) return "";
  std::ifstream in(cfg.brokerPasswordFile);
  std::string line;
  std::getline(in, line);
  return line;
}

unsigned seconds(std::chrono::milliseconds d) {
  return static_cast<unsigned>(std::max<int64_t>(1, (d.count() + 999) / 1000));
}

}  // namespace

Hub::Hub(config::HubConfig cfg, HubOptions options, LogSink& sink, const Clock& clock)
    : cfg_(std::move(cfg)),
      options_(std::move(options)),
      sink_(sink),
      clock_(clock),
      logger_(sink, "hub"),
      loop_(clock),
      bus_(loop_),
      router_(*this, logger_) {}

Hub::~Hub() {
  backups_.reset();
  plugins_.reset();
  storage_.reset();
  mqtt_.reset();
}

void Hub::notify(const std::string& state) { sd_notify(0, state.c_str()); }

Status Hub::open() {
  try {
    Poco::File(cfg_.stateDir).createDirectories();
  } catch (const Poco::Exception& e) {
    return Status::error(ErrorCode::kInternal,
                         "cannot create state directory " + cfg_.stateDir + ": " + e.displayText());
  }
  auto lock = backup::StateLock::acquire(cfg_.stateDir);
  if (!lock) {
    return Status::error(ErrorCode::kInternal,
                         "another " + lock.status().message() + "; one hub per state directory");
  }
  stateLock_ = std::move(lock).value();
  // PRAGMA quick_check: every page, the b-tree structure and every record, in O(N); the full
  // integrity_check also cross-checks each index against its table, O(N log N), four times the
  // time (half of the start-up with 100,000 bindings, docs/performance.md). An index that
  // disagrees with its table, what only the full check finds, loses no row: SQLite reports it
  // when a statement meets it, and REINDEX rebuilds it from the table.
  // The check runs in the background while the state is read (a third of the start-up with
  // 100,000 bindings otherwise); the first write waits for it, and a failed check refuses the
  // start as before (Database::open).
  auto db = Database::open(Poco::Path(cfg_.stateDir).append("hearth.db").toString(),
                           /*quickCheck=*/true, /*checkInBackground=*/true);
  if (!db) {
    reportUnopenable(db.status());
    return db.status();
  }
  db_ = std::move(db).value();
  // A read that failed on a damaged file is explained by the check's verdict, when it has one.
  auto unreadable = [this](const Status& s) {
    Status verdict = db_->checked();
    if (verdict) return s;
    reportUnopenable(verdict);
    return verdict;
  };
  storage_ =
      std::make_unique<StorageMonitor>(*db_, loop_, clock_, logger_, [this] { statusChanged(); });
  identity_ = std::make_unique<IdentityService>(*db_, clock_);
  if (Status s = identity_->load(); !s) return unreadable(s);
  bindings_ = std::make_unique<binding::BindingService>(binding::ServiceDeps{
      *db_, loop_, clock_, logger_, *identity_,
      [this](const std::string& userId, const std::string& event, const std::string& data) {
        sendEvent(userId, "", event, data);
      }});
  bindings_->setBusPublisher(
      [this](const std::string& topic, const std::string& data) { bus_.publish(topic, data); });
  if (Status s = bindings_->load(cfg_); !s) return unreadable(s);
  // From here on no fsync runs on the hub loop: commits go to the WAL and the syncer thread
  // flushes them; what tells someone about a commit waits in gate_ for that flush.
  gate_ = std::make_unique<OutputGate>(*db_);
  db_->setCallbackScope([this](const std::function<void()>& fn) {
    OutputGate::Unit unit(*gate_);
    fn();
  });
  db_->setSyncFailureHandler([this](const std::string& error) {
    logger_.error(error +
                  "; stopping at once: nothing more is acknowledged (systemd restarts "
                  "the hub and SQLite recovers the WAL)");
  });
  if (Status s =
          db_->startBackgroundSync([this](std::function<void()> fn) { loop_.post(std::move(fn)); });
      !s) {
    return s;
  }
  return Status::ok();
}

void Hub::reportUnopenable(const Status& error) {
  std::string dir = backup::backupDir(cfg_);
  auto good = backup::newestGood(dir);
  std::string command;
  Poco::JSON::Object s;
  s.set("state", "failed");
  s.set("version", HEARTH_VERSION);
  s.set("error", error.message());
  if (good) {
    command = "hearthctl --config " + options_.configPath + " restore " + *good;
    logger_.error("the newest good backup is " + *good + "; restore it with: " + command +
                  " (then start hearthd again)");
    Poco::JSON::Object::Ptr r = new Poco::JSON::Object;
    r->set("backup", *good);
    r->set("command", command);
    s.set("restore", r);
  } else {
    logger_.error("no good backup in " + dir + " to restore from");
  }
  // Said on the broker too, retained, for whoever looks at hub/status.
  MqttOptions mo;
  mo.host = cfg_.brokerHost;
  mo.port = cfg_.brokerPort;
  mo.clientId = cfg_.brokerClientId;
  mo.username = cfg_.brokerUsername;
  mo.password = readPassword(cfg_);
  mo.reconnectMaxSec = 1;
  MqttClient client(mo);
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::string payload = toJson(s);
  client.onConnect([&](int rc, const std::string&) {
    int mid = 0;
    if (rc != 0 || !client.publish(kStatusTopic, payload, 1, true, nullptr, &mid)) {
      std::lock_guard<std::mutex> l(m);
      done = true;
      cv.notify_all();
    }
  });
  client.onPublished([&](int, int) {
    std::lock_guard<std::mutex> l(m);
    done = true;
    cv.notify_all();
  });
  if (client.start()) {
    std::unique_lock<std::mutex> l(m);
    cv.wait_for(l, std::chrono::seconds(5), [&] { return done; });
  }
  client.stop();
}

int Hub::run() {
  startedAtMs_ = clock_.nowMs();
  if (Status s = open(); !s) {
    logger_.error(s.message());
    return 1;
  }
  logger_.info("database " + db_->path() + " ok (schema version " +
               std::to_string(db_->schemaVersion()) + ")");

  // Requests arrive only once the broker is up, when dynsec_ and plugins_ exist.
  Status registered = registerCoreMethods(
      router_, CoreMethodDeps{cfg_, logger_, bus_, *identity_, *bindings_, *this,
                              [this] { return statusJson(true); },
                              [this](Poco::JSON::Object& s) { plugins_->fillStatus(s); },
                              [this] { return connects_; }});
  if (registered) registered = bindings_->registerMethods(router_);
  if (!registered) {
    logger_.error(registered.toString());
    return 1;
  }

  plugins_ = std::make_unique<PluginHost>(*this, logger_);
  plugins_->discover(cfg_.pluginDir);
  std::map<std::string, config::PluginConfigResult> pluginConfigs;
  auto errors = plugins_->validate(cfg_, &pluginConfigs);
  if (!errors.empty()) {
    for (const auto& e : errors) logger_.error(e.toString());
    return 1;
  }
  plugins_->startAll(std::move(pluginConfigs));
  backups_ = std::make_unique<backup::BackupScheduler>(cfg_, loop_, clock_, logger_);
  backups_->start();

  MqttOptions mo;
  mo.host = cfg_.brokerHost;
  mo.port = cfg_.brokerPort;
  mo.clientId = cfg_.brokerClientId;
  mo.username = cfg_.brokerUsername;
  mo.password = readPassword(cfg_);
  mo.keepaliveSec = static_cast<int>(seconds(cfg_.keepalive));
  mo.reconnectMinSec = seconds(cfg_.reconnectMin);
  mo.reconnectMaxSec = std::max(mo.reconnectMinSec, seconds(cfg_.reconnectMax));
  mo.willTopic = kStatusTopic;
  mo.willPayload = statusJson(false);
  mo.willRetain = true;
  mqtt_ = std::make_unique<MqttClient>(mo);
  dynsec_ = std::make_unique<DynsecAdmin>(*mqtt_, loop_, logger_);
  mqtt_->onConnect([this](int rc, const std::string& reason) {
    loop_.dispatch([this, rc, reason] { onConnected(rc, reason); });
  });
  mqtt_->onPublished([this](int mid, int reasonCode) {
    loop_.dispatch([this, mid, reasonCode] { confirmations_.acknowledged(mid, reasonCode); });
  });
  mqtt_->onDisconnect([this](int rc) {
    loop_.dispatch([this, rc] {
      confirmations_.connectionLost();
      bool wasUp = brokerUp_;
      brokerUp_ = false;
      if (!stopping_ && wasUp) {
        logger_.warn("disconnected from the broker (" + MqttClient::errorString(rc) +
                     "); reconnecting with backoff");
      }
    });
  });
  mqtt_->onMessage([this](MqttMessage msg) {
    loop_.dispatch([this, msg = std::move(msg)] { onMessage(msg); });
  });
  if (Status s = mqtt_->attach(loop_); !s) {
    logger_.error(s.message());
    return 1;
  }
  logger_.info("connecting to mqtt://" + cfg_.brokerHost + ":" + std::to_string(cfg_.brokerPort) +
               " as " + cfg_.brokerUsername);
  armWatchdog();
  loop_.run();
  return exitCode_.load();
}

std::vector<config::ConfigError> Hub::checkPlugins() {
  PluginHost host(*this, logger_);
  host.discover(cfg_.pluginDir);
  return host.validate(cfg_, nullptr);
}

void Hub::armWatchdog() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
  watchdogTick(std::chrono::milliseconds(usec / 2000));
}

// Pinging from the hub loop (at half WATCHDOG_USEC) proves the loop itself is alive, not just
// the process.
void Hub::watchdogTick(std::chrono::milliseconds period) {
  notify("WATCHDOG=1");
  loop_.startTimer(period, [this, period] { watchdogTick(period); });
}

void Hub::requestStop() {
  loop_.post([this] { stop(); });
}

void Hub::requestReload() {
  loop_.post([this] { reload(); });
}

void Hub::stop() {
  if (stopping_) return;
  stopping_ = true;
  notify("STOPPING=1");
  logger_.info("stopping");
  plugins_->stopAll();
  bindings_->flushDiscovered();
  // What is held for the disk goes out once it is there; the loop stops after this turn.
  if (Status s = db_->syncNow(); s) {
    gate_->releaseAll();
  } else {
    logger_.error("stopping with changes that may not be on disk: " + s.message());
  }
  // A clean stop says so in the retained status; the Will covers crashes.
  int mid = 0;
  mqtt_->publish(kStatusTopic, statusJson(false), 1, true, nullptr, &mid);
  mqtt_->stop();
  loop_.stop();
}

void Hub::reload() {
  notify("RELOADING=1");
  logger_.info("reloading " + options_.configPath);
  auto loaded = config::loadFile(options_.configPath, options_.overrides);
  std::vector<config::ConfigError> errors = loaded.errors;
  std::map<std::string, config::PluginConfigResult> pluginConfigs;
  if (loaded.config) {
    auto perr = plugins_->validate(*loaded.config, &pluginConfigs);
    errors.insert(errors.end(), perr.begin(), perr.end());
  }
  if (!errors.empty()) {
    for (const auto& e : errors) logger_.error(e.toString());
    logger_.error("new configuration rejected; keeping the running one");
    notify("READY=1");
    return;
  }
  config::HubConfig old = cfg_;
  cfg_ = std::move(*loaded.config);
  // The connection, the state and the plugin set need a restart; they keep their running
  // values (and say so) while everything else takes effect now.
  bool needsRestart = std::tie(cfg_.brokerHost, cfg_.brokerPort, cfg_.brokerClientId,
                               cfg_.brokerUsername, cfg_.brokerPassword, cfg_.brokerPasswordFile,
                               cfg_.userManagement, cfg_.stateDir, cfg_.pluginDir) !=
                      std::tie(old.brokerHost, old.brokerPort, old.brokerClientId,
                               old.brokerUsername, old.brokerPassword, old.brokerPasswordFile,
                               old.userManagement, old.stateDir, old.pluginDir);
  if (needsRestart) {
    logger_.warn("changes to broker.*, hub.state_dir and hub.plugin_dir take effect on restart");
  }
  std::tie(cfg_.brokerHost, cfg_.brokerPort, cfg_.brokerClientId, cfg_.brokerUsername,
           cfg_.brokerPassword, cfg_.brokerPasswordFile, cfg_.keepalive, cfg_.reconnectMin,
           cfg_.reconnectMax, cfg_.userManagement, cfg_.stateDir, cfg_.pluginDir) =
      std::tie(old.brokerHost, old.brokerPort, old.brokerClientId, old.brokerUsername,
               old.brokerPassword, old.brokerPasswordFile, old.keepalive, old.reconnectMin,
               old.reconnectMax, old.userManagement, old.stateDir, old.pluginDir);
  LogLevel level;
  if (LogSink::parseLevel(cfg_.logLevel, &level)) sink_.setLevel(level);
  bindings_->configure(cfg_);
  if (backups_) backups_->reconfigure(cfg_);
  plugins_->reconfigure(old, cfg_, std::move(pluginConfigs));
  logger_.info("configuration reloaded");
  notify("READY=1");
}

void Hub::onConnected(int rc, const std::string& reason) {
  if (stopping_) return;
  if (rc != 0) {
    logger_.error("broker refused the connection: " + reason + " (check broker.username and " +
                  "the password file); retrying");
    return;
  }
  ++connects_;
  brokerUp_ = true;
  logger_.info("connected to the broker");
  if (cfg_.userManagement == "dynsec") {
    mqtt_->subscribe({DynsecAdmin::kResponseTopic}, 1);
    std::vector<std::string> admins = cfg_.adminUsers;
    if (admins.empty()) admins.push_back(cfg_.brokerUsername);
    dynsec_->ensureRoles(cfg_.brokerUsername, admins, [this](Status s) {
      if (!s) logger_.error("dynamic security: " + s.message());
      subscribeControlTopics();
    });
  } else {
    subscribeControlTopics();
  }
}

void Hub::subscribeControlTopics() {
  // Re-subscribing on every connect: the session is clean, so the broker forgot them.
  mqtt_->subscribe({"hearth/v1/u/+/+/req/+", "hearth/v1/u/+/+/presence", "hearth/v1/admin/req/+"},
                   1);
  publishStatus();
  bus_.publish(events::kBrokerConnected, "{}");
  if (!ready_) {
    ready_ = true;
    notify("READY=1\nSTATUS=serving");
    logger_.info("ready");
  }
}

void Hub::onMessage(const MqttMessage& msg) {
  if (msg.topic == DynsecAdmin::kResponseTopic) {
    dynsec_->handleResponse(msg.payload);
    return;
  }
  // The topic is split once: a request goes to the router with its parts.
  static constexpr std::string_view kUserTree = "hearth/v1/u/";
  static constexpr std::string_view kPresence = "/presence";
  std::string_view topic = msg.topic;
  if (topic.size() > kUserTree.size() + kPresence.size() && topic.rfind(kUserTree, 0) == 0 &&
      topic.substr(topic.size() - kPresence.size()) == kPresence) {
    std::string_view ids =
        topic.substr(kUserTree.size(), topic.size() - kUserTree.size() - kPresence.size());
    size_t slash = ids.find('/');
    if (slash != std::string_view::npos && ids.find('/', slash + 1) == std::string_view::npos) {
      onPresence(std::string(ids.substr(0, slash)), std::string(ids.substr(slash + 1)),
                 msg.payload);
      return;
    }
  }
  auto request = parseRequestTopic(topic);
  if (!request) return;  // the subscriptions make this unreachable
  OutputGate::Unit unit(*gate_);
  router_.handle(msg, *request);
  if (request->scope == MethodScope::kUser) {
    publishSeen(request->userId, request->clientId, "request");
  }
}

void Hub::publishSeen(const std::string& userId, const std::string& clientId, const char* via) {
  if (!isValidIdentifier(userId) || !isValidIdentifier(clientId)) return;
  // Validated identifiers need no escaping: the event's JSON is written directly (this runs
  // for every request, for coop_relay's re-offer).
  std::string data;
  data.reserve(userId.size() + clientId.size() + 48);
  data.append("{\"userId\":\"").append(userId).append("\",\"clientId\":\"").append(clientId);
  data.append("\",\"via\":\"").append(via).append("\"}");
  bus_.publish(events::kTerminalSeen, data);
}

void Hub::onPresence(const std::string& userId, const std::string& clientId,
                     const std::string& payload) {
  if (!isValidIdentifier(userId) || !isValidIdentifier(clientId)) return;
  if (payload != "online" && payload != "offline") {
    logger_.debug("ignored presence '" + payload.substr(0, 32) + "' of " + userId + "/" + clientId);
    return;
  }
  bool online = payload == "online";
  if (!identity_->setOnline(userId, clientId, online)) {
    // Already online: a terminal that reconnected after a plain DISCONNECT (no Will) says
    // `online` again. Its new session has not seen what was offered to the old one (SPEC §4a).
    if (online) publishSeen(userId, clientId, "presence");
    return;
  }
  Poco::JSON::Object data;
  data.set("userId", userId);
  data.set("clientId", clientId);
  bus_.publish(online ? events::kTerminalOnline : events::kTerminalOffline, toJson(data));
}

size_t Hub::sendEvent(const std::string& userId, const std::string& clientId,
                      const std::string& event, const std::string& dataJson,
                      std::function<void(Status)> confirmed) {
  // The data goes into the envelope as the sender wrote it (serialised once), checked only.
  static const std::string kEmpty = "{}";
  const std::string& data = dataJson.empty() ? kEmpty : dataJson;
  if (!isJsonText(data)) {
    logger_.error("event " + event + " has invalid JSON data");
    return 0;
  }
  std::string env;
  env.reserve(data.size() + event.size() + 48);
  env += "{\"data\":";
  env += data;
  env += ",\"event\":";
  env += Poco::toJSON(event);
  env += ",\"ts\":";
  env += std::to_string(clock_.nowMs());
  env += '}';
  auto payload = std::make_shared<const std::string>(std::move(env));
  std::vector<std::string> to;
  for (const auto& t : identity_->onlineTerminals(userId)) {
    if (clientId.empty() || t.clientId == clientId) to.push_back(t.clientId);
  }
  PublishConfirmations::GroupPtr group;
  if (confirmed && !to.empty()) group = confirmations_.open(to.size(), std::move(confirmed));
  size_t sent = 0;
  for (const auto& client : to) {
    std::string topic = "hearth/v1/u/" + userId + "/" + client + "/evt/" + event;
    std::optional<bool> now = gate_->send(userId + "/" + client, [this, topic, payload, group] {
      int mid = 0;
      bool ok = mqtt_->publish(topic, *payload, 1, false, nullptr, group ? &mid : nullptr);
      mqtt_->flush();
      if (group) confirmations_.sent(group, ok, mid);
      return ok;
    });
    // Held for the disk: counted as sent while the broker connection is up.
    if (now ? *now : brokerUp_) ++sent;
  }
  if (group && sent == 0) PublishConfirmations::cancel(group);
  return sent;
}

void Hub::publish(const std::string& topic, const std::string& payload,
                  const std::string* correlationData) {
  // Responders may answer from a plugin's own thread; the socket belongs to the hub loop.
  std::optional<std::string> corr;
  if (correlationData != nullptr) corr = *correlationData;
  loop_.dispatch([this, topic, payload, corr] {
    // hearth/v1/u/U/C/... or hearth/v1/admin/...: the terminal whose order it keeps.
    std::string terminal = "admin";
    if (topic.rfind("hearth/v1/u/", 0) == 0) {
      size_t user = topic.find('/', 12);
      size_t client = user == std::string::npos ? user : topic.find('/', user + 1);
      terminal = topic.substr(12, client == std::string::npos ? client : client - 12);
    }
    gate_->send(terminal, [this, topic, payload, corr] {
      bool ok = mqtt_->publish(topic, payload, 1, false, corr ? &*corr : nullptr);
      // Out of the process before anything later is committed (docs/coop-api.md, crashes).
      mqtt_->flush();
      if (ok) return true;
      logger_.warn("could not publish the response on " + topic);
      return false;
    });
  });
}

std::string Hub::statusJson(bool online) const {
  Poco::JSON::Object s;
  s.set("state", online ? "online" : "offline");
  s.set("version", HEARTH_VERSION);
  if (online) {
    s.set("startedAt", startedAtMs_);
    s.set("userManagement", cfg_.userManagement);
    if (plugins_) plugins_->fillStatus(s);
    if (storage_) storage_->fillStatus(s);
    if (backups_) backups_->fillStatus(s);
  }
  return toJson(s);
}

void Hub::statusChanged() {
  // Coalesce bursts (every plugin starting) into one retained publish.
  if (statusPending_) return;
  statusPending_ = true;
  loop_.post([this] {
    statusPending_ = false;
    publishStatus();
  });
}

void Hub::publishStatus() {
  if (!mqtt_ || stopping_) return;
  mqtt_->publish(kStatusTopic, statusJson(true), 1, true);
}

void Hub::addUser(const std::string& userId, const std::string& password,
                  std::function<void(Status)> done) {
  dynsec_->addUser(userId, password, std::move(done));
}

void Hub::removeUser(const std::string& userId, std::function<void(Status)> done) {
  dynsec_->removeUser(userId, std::move(done));
}

void Hub::listUsers(std::function<void(Result<std::vector<std::string>>)> done) {
  dynsec_->listUsers(std::move(done));
}

LocalBrokerInfo Hub::localBroker() const {
  return LocalBrokerInfo{cfg_.brokerHost, cfg_.brokerPort, cfg_.userManagement == "dynsec"};
}

void Hub::setBrokerAccount(const std::string& username, const std::string& password,
                           const std::vector<BrokerAcl>& acls, std::function<void(Status)> done) {
  if (cfg_.userManagement != "dynsec" || !dynsec_) {
    return done(Status::error(ErrorCode::kUnavailable,
                              "broker accounts are managed by the broker operator "
                              "(broker.user_management: external)"));
  }
  std::vector<std::string> reserved = cfg_.adminUsers;
  reserved.push_back(cfg_.brokerUsername);
  if (!isValidIdentifier(username) || identity_->userExists(username) ||
      std::find(reserved.begin(), reserved.end(), username) != reserved.end()) {
    return done(Status::error(ErrorCode::kConflict,
                              "account " + username + " is a hearth user or admin account"));
  }
  if (password.size() < 8) {
    return done(Status::error(ErrorCode::kInvalidRequest, "password shorter than 8 characters"));
  }
  dynsec_->setAccount(username, password, std::string("hearth-p-") + username, acls,
                      std::move(done));
}

}  // namespace hearth
