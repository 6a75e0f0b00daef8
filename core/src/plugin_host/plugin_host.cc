#include "plugin_host/plugin_host.h"

#include <Poco/File.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Path.h>

#include <algorithm>

namespace hearth {

// The one object a plugin reaches the core through. Everything it registers is tagged with
// the plugin's name so that stopping the plugin removes it.
class PluginHost::Context : public PluginContext, private Devices {
 public:
  Context(CoreServices& core, PluginHost& host, std::string name,
          std::unique_ptr<ConfigView> config)
      : core_(core),
        host_(host),
        name_(std::move(name)),
        logger_(core.logSink(), name_),
        config_(std::move(config)),
        store_(core.database(), name_) {}

  ~Context() override { release(); }

  // Drops every registration of this plugin: methods, subscriptions, timers.
  void release() {
    core_.router().unregisterOwner(name_);
    core_.bus().unsubscribeOwner(name_);
    core_.bindings().unregisterOwner(name_);
    for (TimerId id : timers_) core_.loop().cancelTimer(id);
    timers_.clear();
  }

  const std::string& pluginName() const override { return name_; }
  Logger& logger() override { return logger_; }
  const Clock& clock() const override { return core_.clock(); }
  const ConfigView& config() const override { return *config_; }
  KvStore& store() override { return store_; }

  Status registerMethod(const std::string& method, MethodScope scope,
                        RequestHandler handler) override {
    return core_.router().registerMethod(method, scope, std::move(handler), name_);
  }
  size_t sendEvent(const std::string& userId, const std::string& clientId, const std::string& event,
                   const std::string& dataJson) override {
    return core_.sendEvent(userId, clientId, event, dataJson);
  }
  std::optional<TerminalInfo> terminal(const std::string& userId,
                                       const std::string& clientId) const override {
    return core_.identity().terminal(userId, clientId);
  }
  std::optional<TerminalInfo> terminalByOpenId(const std::string& openId) const override {
    return core_.identity().terminalByOpenId(openId);
  }
  std::vector<TerminalInfo> terminals(const std::string& userId) const override {
    return core_.identity().terminals(userId);
  }
  bool userExists(const std::string& userId) const override {
    return core_.identity().userExists(userId);
  }
  void subscribe(const std::string& topic, EventHandler handler) override {
    core_.bus().subscribe(topic, std::move(handler), name_);
  }
  void publish(const std::string& topic, const std::string& dataJson) override {
    core_.bus().publish(topic, dataJson);
  }
  TimerId startTimer(std::chrono::milliseconds delay, std::function<void()> fn) override {
    // Timers fire on the hub loop, where this runs too, so the id is set before it can fire.
    auto idBox = std::make_shared<TimerId>(0);
    TimerId id = core_.loop().startTimer(delay, [this, fn = std::move(fn), idBox] {
      timers_.erase(*idBox);
      fn();
    });
    *idBox = id;
    timers_.insert(id);
    return id;
  }
  void cancelTimer(TimerId id) override {
    core_.loop().cancelTimer(id);
    timers_.erase(id);
  }
  void post(std::function<void()> fn) override { core_.loop().post(std::move(fn)); }
  Devices& devices() override { return *this; }
  void setState(PluginState state, const std::string& detailJson) override {
    auto& p = host_.plugins_.at(name_);
    p.state = state;
    p.detailJson = detailJson;
    core_.statusChanged();
  }
  LocalBrokerInfo localBroker() const override { return core_.localBroker(); }
  void setBrokerAccount(const std::string& username, const std::string& password,
                        const std::vector<BrokerAcl>& acls,
                        std::function<void(Status)> done) override {
    core_.setBrokerAccount(username, password, acls, std::move(done));
  }
  std::string stateDir() const override { return core_.stateDir(); }

 private:
  // Devices, forwarded to the binding engine with this plugin as the owner.
  Status registerTransport(const std::string& transport, DeviceTransport* t) override {
    return core_.bindings().registerTransport(transport, t, name_);
  }
  Status report(const DeviceReport& r) override { return core_.bindings().report(r); }
  void setOnline(const std::string& deviceId, bool online) override {
    core_.bindings().setOnline(deviceId, online);
  }
  Result<std::string> presentProvisionToken(const std::string& deviceId,
                                            const std::string& token) override {
    return core_.bindings().presentProvisionToken(deviceId, token);
  }
  Status reportReset(const std::string& deviceId) override {
    return core_.bindings().reportReset(deviceId);
  }
  Status refuseProvisionToken(const std::string& deviceId, const std::string& token) override {
    return core_.bindings().refuseProvisionToken(deviceId, token);
  }
  size_t notifyBoundUsers(const std::string& deviceId, const std::string& event,
                          const std::string& dataJson) override {
    return core_.bindings().notifyBoundUsers(deviceId, event, dataJson);
  }
  std::vector<std::string> boundUsers(const std::string& deviceId) const override {
    return core_.bindings().boundUsers(deviceId);
  }
  std::optional<DeviceInfo> deviceInfo(const std::string& deviceId) const override {
    return core_.bindings().deviceInfo(deviceId);
  }
  void controlAs(const std::string& userId, const std::string& deviceId, const std::string& command,
                 const std::string& paramsJson, const std::string& via,
                 std::function<void(Result<std::string>)> done) override {
    core_.bindings().controlAs(userId, deviceId, command, paramsJson, via, std::move(done));
  }
  Status addDetailProvider(
      const std::string& key,
      std::function<std::string(const std::string&, const std::string&)> fn) override {
    return core_.bindings().addDetailProvider(key, std::move(fn), name_);
  }

  CoreServices& core_;
  PluginHost& host_;
  std::string name_;
  TaggedLogger logger_;
  std::unique_ptr<ConfigView> config_;
  PluginKvStore store_;
  std::set<TimerId> timers_;
};

PluginHost::~PluginHost() { stopAll(); }

void PluginHost::discover(const std::string& dir) {
  Poco::File d(dir);
  if (!d.exists() || !d.isDirectory()) {
    logger_.warn("plugin directory " + dir + " does not exist; no plugins loaded");
    return;
  }
  std::vector<std::string> files;
  d.list(files);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    if (f.size() < 4 || f.substr(f.size() - 3) != ".so") continue;
    std::string path = Poco::Path(dir).append(f).toString();
    auto refuse = [&](const std::string& reason) {
      logger_.error("refused plugin " + path + ": " + reason);
      refused_.push_back(Refused{path, reason});
    };
    auto lib = std::make_unique<Poco::SharedLibrary>();
    try {
      lib->load(path, Poco::SharedLibrary::SHLIB_LOCAL);
    } catch (const Poco::Exception& e) {
      refuse("cannot load: " + e.displayText());
      continue;
    }
    if (!lib->hasSymbol("hearth_plugin_entry")) {
      refuse("no hearth_plugin_entry symbol");
      continue;
    }
    auto entry = reinterpret_cast<hearth_plugin_entry_fn>(lib->getSymbol("hearth_plugin_entry"));
    const hearth_plugin_descriptor* desc = entry();
    if (desc == nullptr) {
      refuse("hearth_plugin_entry returned no descriptor");
      continue;
    }
    // abi_version and struct_size are the first two fields of every ABI version; nothing else
    // is read before they match.
    if (desc->abi_version != HEARTH_PLUGIN_ABI_VERSION) {
      refuse("plugin ABI version " + std::to_string(desc->abi_version) + ", hearthd ABI version " +
             std::to_string(HEARTH_PLUGIN_ABI_VERSION));
      continue;
    }
    if (desc->struct_size != sizeof(hearth_plugin_descriptor)) {
      refuse("descriptor size " + std::to_string(desc->struct_size) + ", hearthd expects " +
             std::to_string(sizeof(hearth_plugin_descriptor)) + " (ABI version " +
             std::to_string(HEARTH_PLUGIN_ABI_VERSION) + ")");
      continue;
    }
    std::string name = desc->name ? desc->name : "";
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
      refuse("invalid plugin name '" + name + "'");
      continue;
    }
    if (plugins_.count(name)) {
      refuse("a plugin named " + name + " is already loaded from " + plugins_[name].file);
      continue;
    }
    Loaded p;
    p.file = path;
    p.library = std::move(lib);
    p.descriptor = desc;
    plugins_.emplace(name, std::move(p));
    logger_.info("found plugin " + name + " " + (desc->version ? desc->version : "?") + " in " +
                 path);
  }
}

std::vector<config::ConfigError> PluginHost::validate(
    const config::HubConfig& cfg, std::map<std::string, config::PluginConfigResult>* out) const {
  std::vector<config::ConfigError> errors;
  for (const auto& [name, node] : cfg.pluginNodes) {
    // A disabled plugin may be absent (e.g. built with HEARTH_PLUGIN_<NAME>=OFF).
    bool disabled = node.IsMap() && node["enabled"] && node["enabled"].IsScalar() &&
                    node["enabled"].Scalar() == "false";
    if (!plugins_.count(name) && !disabled) {
      int line = cfg.pluginNodeLines.count(name) ? cfg.pluginNodeLines.at(name) : 0;
      errors.push_back({cfg.sourceFile, line, "plugins." + name,
                        "no plugin named '" + name + "' in " + cfg.pluginDir});
    }
  }
  for (const auto& [name, p] : plugins_) {
    auto r = config::validatePluginConfig(cfg, name, p.descriptor->config_keys,
                                          p.descriptor->config_key_count);
    errors.insert(errors.end(), r.errors.begin(), r.errors.end());
    if (out) out->emplace(name, std::move(r));
  }
  return errors;
}

void PluginHost::startOne(const std::string& name, Loaded& p, config::PluginConfigResult cfg) {
  if (!cfg.enabled) {
    p.state = PluginState::kStopped;
    p.error = "disabled in the configuration";
    return;
  }
  p.error.clear();
  p.detailJson.clear();
  p.state = PluginState::kStarting;
  p.context = std::make_shared<Context>(core_, *this, name, std::move(cfg.view));
  p.instance = p.descriptor->create(p.context.get());
  if (p.instance == nullptr) {
    p.state = PluginState::kFailed;
    p.error = "create() failed";
    logger_.error("plugin " + name + " (" + p.file + ") could not be created");
    p.context.reset();
    return;
  }
  Status s;
  try {
    s = p.instance->start();
  } catch (const std::exception& e) {
    s = Status::error(ErrorCode::kInternal, std::string("start() threw: ") + e.what());
  }
  if (!s) {
    p.state = PluginState::kFailed;
    p.error = s.toString();
    logger_.error("plugin " + name + " (" + p.file + ") failed to start: " + s.toString());
    p.context->release();
    p.descriptor->destroy(p.instance);
    p.instance = nullptr;
    p.context.reset();
    return;
  }
  // A plugin may already have reported e.g. "waiting" from start(); keep that.
  if (p.state == PluginState::kStarting) p.state = PluginState::kRunning;
  logger_.info("plugin " + name + " " + pluginStateName(p.state));
}

void PluginHost::stopOne(const std::string& name, Loaded& p) {
  if (p.instance == nullptr) return;
  try {
    p.instance->stop();
  } catch (const std::exception& e) {
    logger_.error("plugin " + name + " threw in stop(): " + e.what());
  }
  p.context->release();
  p.descriptor->destroy(p.instance);
  p.instance = nullptr;
  p.context.reset();
  p.state = PluginState::kStopped;
}

void PluginHost::startAll(std::map<std::string, config::PluginConfigResult> configs) {
  for (auto& [name, p] : plugins_) {
    auto it = configs.find(name);
    if (it == configs.end()) continue;
    startOne(name, p, std::move(it->second));
  }
  core_.statusChanged();
}

void PluginHost::reconfigure(const config::HubConfig& oldCfg, const config::HubConfig& newCfg,
                             std::map<std::string, config::PluginConfigResult> configs) {
  auto subtree = [](const config::HubConfig& c, const std::string& name) {
    auto it = c.pluginNodes.find(name);
    return it == c.pluginNodes.end() ? std::string() : YAML::Dump(it->second);
  };
  for (auto& [name, p] : plugins_) {
    if (subtree(oldCfg, name) == subtree(newCfg, name)) continue;
    logger_.info("configuration of plugin " + name + " changed; restarting it");
    stopOne(name, p);
    auto it = configs.find(name);
    if (it != configs.end()) startOne(name, p, std::move(it->second));
  }
  core_.statusChanged();
}

void PluginHost::stopAll() {
  // Reverse order of start.
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) stopOne(it->first, it->second);
}

void PluginHost::fillStatus(Poco::JSON::Object& status) const {
  Poco::JSON::Object::Ptr states = new Poco::JSON::Object;
  Poco::JSON::Object::Ptr details = new Poco::JSON::Object;
  for (const auto& [name, p] : plugins_) {
    states->set(name, pluginStateName(p.state));
    Poco::JSON::Object::Ptr d = new Poco::JSON::Object;
    if (!p.detailJson.empty()) {
      try {
        auto v = Poco::JSON::Parser().parse(p.detailJson);
        if (v.type() == typeid(Poco::JSON::Object::Ptr)) d = v.extract<Poco::JSON::Object::Ptr>();
      } catch (const std::exception&) {
        d->set("detail", p.detailJson);
      }
    }
    d->set("file", p.file);
    d->set("version", p.descriptor->version ? p.descriptor->version : "");
    if (!p.error.empty()) d->set("error", p.error);
    details->set(name, d);
  }
  for (const auto& r : refused_) {
    std::string key = Poco::Path(r.file).getBaseName();
    if (!states->has(key)) states->set(key, "refused");
    Poco::JSON::Object::Ptr d = new Poco::JSON::Object;
    d->set("file", r.file);
    d->set("error", r.reason);
    details->set(key, d);
  }
  status.set("plugins", states);
  status.set("details", details);
}

std::vector<std::string> PluginHost::names() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : plugins_) out.push_back(name);
  return out;
}

}  // namespace hearth
