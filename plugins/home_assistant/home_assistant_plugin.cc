#include "home_assistant_plugin.h"

#include <Poco/Environment.h>
#include <Poco/StringTokenizer.h>

#include <fstream>

#include "hearth/util/json.h"

namespace hearth::home_assistant {
namespace {

using json::Array;
using json::Object;
using json::text;

constexpr const char* kVia = "Home Assistant";

// Bus events and control results are the core's JSON: one that is not an object is ignored.
Object::Ptr objectOrNull(const std::string& jsonText) {
  auto r = json::tryParseObject(jsonText);
  return r ? r.value() : nullptr;
}

bool validTopicPrefix(const std::string& t) {
  return !t.empty() && t.find_first_of("+#") == std::string::npos && t.front() != '/' &&
         t.back() != '/';
}

std::string randomPassword(std::mt19937_64& rng) {
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  std::string s;
  for (int i = 0; i < 32; ++i) s += kAlphabet[pick(rng)];  // ~190 bits
  return s;
}

Result<std::string> readFirstLine(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(ErrorCode::kInvalidRequest, "cannot read " + path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Merges the keys of `patch` (JSON object text) into `base` (JSON object text).
std::string merged(const std::string& base, const std::string& patch) {
  Object::Ptr b = objectOrNull(base.empty() ? "{}" : base);
  Object::Ptr p = objectOrNull(patch);
  if (!b) b = new Object;
  if (p) {
    for (const auto& [k, v] : *p) b->set(k, v);
  }
  return text(*b);
}

}  // namespace

HomeAssistantPlugin::HomeAssistantPlugin(PluginContext& ctx)
    : ctx_(ctx), exposures_(ctx.store()), rng_(std::random_device{}()) {}

HomeAssistantPlugin::~HomeAssistantPlugin() { stop(); }

std::vector<BrokerAcl> HomeAssistantPlugin::haAcls(const Topics& t) {
  // HA reads discovery, states, availability and the hub's status; it may only send its birth
  // and Will and commands on the command topics. Nothing else, in particular not hearth/v1/u/#.
  return {
      {"subscribePattern", t.discoveryPrefix + "/#", true},
      {"subscribePattern", t.base + "/#", true},
      {"subscribePattern", t.hubStatus, true},
      {"publishClientSend", t.birth(), true},
      {"publishClientSend", t.base + "/+/+/set", true},
  };
}

std::vector<BrokerAcl> HomeAssistantPlugin::bridgeAcls(const Topics& t) {
  return {
      {"publishClientSend", t.discoveryPrefix + "/device/+/config", true},
      {"publishClientSend", t.base + "/#", true},
      {"subscribePattern", t.birth(), true},
      {"subscribePattern", t.discoveryPrefix + "/device/+/config", true},
      {"subscribePattern", t.base + "/#", true},
  };
}

// The topics and the model rules, by the code start() uses (--check-config and SIGHUP too).
Status HomeAssistantPlugin::validate(const ConfigView& c) {
  if (!validTopicPrefix(c.getString("discovery_prefix")) ||
      !validTopicPrefix(c.getString("base_topic"))) {
    return Status::error(ErrorCode::kInvalidRequest,
                         "discovery_prefix and base_topic must be topics without +, # or a "
                         "leading/trailing /");
  }
  auto rules = parseRules(c.getJson("models"));
  if (!rules) return Status::error(rules.status().code(), "models: " + rules.status().message());
  return Status::ok();
}

Status HomeAssistantPlugin::start() {
  const ConfigView& c = ctx_.config();
  if (Status v = validate(c); !v) return v;
  topics_.discoveryPrefix = c.getString("discovery_prefix");
  topics_.base = c.getString("base_topic");
  auto rules = parseRules(c.getJson("models"));
  if (!rules) return rules.status();
  rules_ = rules.value();
  std::string hubName = c.getString("hub_name");
  if (hubName.empty()) hubName = Poco::Environment::nodeName();
  if (hubName.empty()) hubName = "hearth";
  origin_.hubName = "hearth " + hubName;
  // "hearth-hub-…", never "hearth_…": the sweep of hearth_* device nodes leaves it alone.
  origin_.hubNode = "hearth-hub-" + objectId(hubName);
  origin_.version = HEARTH_VERSION;
  origin_.url = c.getString("support_url");
  // The household web app on the hub's front door (SPEC §7) is where owners manage exposure.
  if (origin_.url.empty())
    origin_.url = "https://" + Poco::Environment::nodeName() + ".local:8443/";
  discovery_.bleExpireAfterSec = c.getDuration("ble_expire_after").count() / 1000;
  resendDelayMax_ = c.getDuration("resend_delay_max");
  external_ = !c.getString("broker_host").empty();

  size_t unreadable = 0;
  if (Status s = exposures_.load(&unreadable); !s) return s;
  if (unreadable > 0) {
    ctx_.logger().warn(std::to_string(unreadable) + " unreadable exposure records ignored");
  }

  struct M {
    const char* name;
    MethodScope scope;
    void (HomeAssistantPlugin::*fn)(const Request&, const Responder&);
  };
  for (const M& m : {M{"haExpose", MethodScope::kUser, &HomeAssistantPlugin::haExpose},
                     M{"haExposed", MethodScope::kUser, &HomeAssistantPlugin::haExposed},
                     M{"haAccount", MethodScope::kAdmin, &HomeAssistantPlugin::haAccount}}) {
    auto fn = m.fn;
    Status s = ctx_.registerMethod(
        m.name, m.scope, [this, fn](const Request& req, Responder res) { (this->*fn)(req, res); });
    if (!s) return s;
  }
  if (Status s = ctx_.devices().addDetailProvider(
          "homeAssistant",
          [this](const std::string& d, const std::string& u) { return detailOf(d, u); });
      !s) {
    return s;
  }
  ctx_.subscribe(events::kDeviceState,
                 [this](const std::string&, const std::string& d) { onDeviceState(d); });
  ctx_.subscribe(events::kDeviceOnline,
                 [this](const std::string&, const std::string& d) { onPresence(d, true); });
  ctx_.subscribe(events::kDeviceOffline,
                 [this](const std::string&, const std::string& d) { onPresence(d, false); });
  ctx_.subscribe(events::kBindingChanged,
                 [this](const std::string&, const std::string& d) { onBindingChanged(d); });
  // A new name or firmware: HA's device page follows.
  ctx_.subscribe(events::kDeviceChanged, [this](const std::string&, const std::string& d) {
    Object::Ptr o = objectOrNull(d);
    if (!o || !o->has("deviceId")) return;
    std::string id = o->getValue<std::string>("deviceId");
    if (exposures_.find(id) == nullptr) return;
    if (!stillValid(id, *exposures_.find(id))) return withdraw(id, "its model has no mapping now");
    publishDevice(id);
  });
  // Exposures whose device changed hands while the hub was down.
  std::vector<std::string> stale;
  for (const auto& [id, e] : exposures_.all()) {
    if (!stillValid(id, e)) stale.push_back(id);
  }
  for (const auto& id : stale) withdraw(id, "its owner changed while the hub was down");

  // The plugin's own account on hearthd's broker is made once hearthd is connected (it is the
  // Dynamic Security admin); an external broker or external user management uses the
  // configured account.
  std::string user = c.getString("broker_username");
  if (!external_ && user.empty() && ctx_.localBroker().dynsec) {
    state_ = LinkState::kAccount;
    ctx_.subscribe(events::kBrokerConnected,
                   [this](const std::string&, const std::string&) { setUpAccount(); });
    report();
    return Status::ok();
  }
  if (user.empty()) {
    lastError_ =
        "broker.user_management is external: set plugins.home_assistant.broker_username and "
        "broker_password_file to an account with the rights in docs/home-assistant.md";
    ctx_.logger().warn(lastError_);
    ctx_.setState(PluginState::kWaiting, "{\"reason\":\"no broker account configured\"}");
    return Status::ok();
  }
  std::string password;
  if (!c.getString("broker_password_file").empty()) {
    auto pw = readFirstLine(c.getString("broker_password_file"));
    if (!pw) return pw.status();
    password = pw.value();
  }
  connectLink(user, password);
  return Status::ok();
}

void HomeAssistantPlugin::stop() {
  resendTimer_.cancel();
  // A clean DISCONNECT fires no Will: on an external broker say so ourselves.
  if (link_ && external_ && state_ == LinkState::kLive) {
    link_->publish(topics_.hubStatus, "{\"state\":\"offline\"}", true);
  }
  if (link_) link_->stop();
  link_.reset();
  state_ = LinkState::kIdle;
}

// ---- requests -------------------------------------------------------------------------------

void HomeAssistantPlugin::haExpose(const Request& req, const Responder& res) {
  json::withParams(req, res, [&](const json::Params& p) {
    std::string deviceId = p.identifier("deviceId");
    if (!p.has("enabled")) throw json::InvalidParam("missing \"enabled\"");
    expose(req, res, deviceId, p.optionalBool("enabled", false));
  });
}

void HomeAssistantPlugin::expose(const Request& req, const Responder& res,
                                 const std::string& deviceId, bool enabled) {
  auto info = ctx_.devices().deviceInfo(deviceId);
  if (!info) return res.error(ErrorCode::kNotFound, "no device " + deviceId);
  if (info->ownerId != req.userId) {
    return res.error(ErrorCode::kNotOwner,
                     "only the owner of " + deviceId + " decides what Home Assistant sees");
  }
  Object r;
  r.set("deviceId", deviceId);
  r.set("node", nodeId(deviceId));
  if (!enabled) {
    if (exposures_.find(deviceId) != nullptr) {
      if (Status s = exposures_.withdraw(deviceId); !s) return res.error(s.code(), s.message());
      ctx_.logger().info(req.userId + " withdrew " + deviceId + " from Home Assistant");
      clearNode(nodeId(deviceId));
      report();
    }
    r.set("exposed", false);
    return res.ok(text(r));
  }
  auto mapping = mappingOf(*info);
  if (!mapping) {
    return res.error(ErrorCode::kInvalidRequest,
                     "Home Assistant has no entity type for model \"" + info->model +
                         "\" (add it to plugins.home_assistant.models)");
  }
  const Exposure* existing = exposures_.find(deviceId);
  if (existing == nullptr || existing->owner != req.userId) {
    if (Status s = exposures_.expose(deviceId, Exposure{req.userId, ctx_.clock().nowMs()}); !s) {
      return res.error(s.code(), s.message());
    }
    ctx_.logger().info(req.userId + " exposed " + deviceId + " to Home Assistant");
  }
  publishDevice(deviceId);
  report();
  r.set("exposed", true);
  r.set("kind", kindName(mapping->kind));
  Array::Ptr entities = new Array;
  for (const auto& k : componentKeys(*mapping)) entities->add(k);
  r.set("entities", entities);
  res.ok(text(r));
}

void HomeAssistantPlugin::haExposed(const Request& req, const Responder& res) {
  Array::Ptr list = new Array;
  for (const auto& [id, e] : exposures_.all()) {
    if (e.owner != req.userId) continue;
    auto info = ctx_.devices().deviceInfo(id);
    if (!info) continue;
    Object::Ptr o = new Object;
    o->set("deviceId", id);
    o->set("name", info->name);
    o->set("model", info->model);
    o->set("node", nodeId(id));
    if (auto m = mappingOf(*info)) o->set("kind", kindName(m->kind));
    o->set("since", e.sinceMs);
    list->add(o);
  }
  Object r;
  r.set("devices", list);
  r.set("connected", state_ == LinkState::kLive);
  res.ok(text(r));
}

void HomeAssistantPlugin::haAccount(const Request& req, const Responder& res) {
  json::withParams(req, res, [&](const json::Params& p) {
    std::string password = p.string("password", 256, 8);
    if (external_) {
      return res.error(ErrorCode::kUnavailable,
                       "Home Assistant uses an external broker (broker_host): its accounts are "
                       "that broker's business");
    }
    std::string user = ctx_.config().getString("ha_username");
    ctx_.setBrokerAccount(user, password, haAcls(topics_),
                          [this, user, res](Status s) {
                            if (!s) return res.error(s.code(), s.message());
                            ctx_.logger().info("Home Assistant's broker account " + user + " set");
                            Object r;
                            r.set("username", user);
                            r.set("discoveryPrefix", topics_.discoveryPrefix);
                            res.ok(text(r));
                          });
  });
}

std::string HomeAssistantPlugin::detailOf(const std::string& deviceId, const std::string&) const {
  auto info = ctx_.devices().deviceInfo(deviceId);
  if (!info) return "";
  Object o;
  const Exposure* e = exposures_.find(deviceId);
  o.set("exposed", e != nullptr);
  auto m = mappingOf(*info);
  o.set("supported", m.has_value());
  if (e != nullptr) {
    o.set("by", e->owner);
    o.set("since", e->sinceMs);
    o.set("node", nodeId(deviceId));
    if (m) {
      Array::Ptr entities = new Array;
      for (const auto& k : componentKeys(*m)) entities->add(k);
      o.set("entities", entities);
    }
  }
  return text(o);
}

// ---- core events ----------------------------------------------------------------------------

void HomeAssistantPlugin::onDeviceState(const std::string& dataJson) {
  Object::Ptr d = objectOrNull(dataJson);
  if (!d || !d->has("deviceId") || !d->getObject("state")) return;
  std::string id = d->getValue<std::string>("deviceId");
  if (exposures_.find(id) == nullptr) return;
  auto info = ctx_.devices().deviceInfo(id);
  if (!info) return;
  auto m = mappingOf(*info);
  if (!m) return;
  auto ha = haState(*m, text(*d->getObject("state")));
  if (!ha) return;
  haStates_[id] = merged(haStates_[id], *ha);
  publishState(id);
}

void HomeAssistantPlugin::onPresence(const std::string& dataJson, bool online) {
  Object::Ptr d = objectOrNull(dataJson);
  if (!d || !d->has("deviceId")) return;
  std::string id = d->getValue<std::string>("deviceId");
  if (exposures_.find(id) == nullptr || state_ != LinkState::kLive) return;
  link_->publish(topics_.availability(nodeId(id)), online ? "online" : "offline", true);
}

void HomeAssistantPlugin::onBindingChanged(const std::string& dataJson) {
  Object::Ptr d = objectOrNull(dataJson);
  if (!d || !d->has("deviceId")) return;
  std::string id = d->getValue<std::string>("deviceId");
  const Exposure* e = exposures_.find(id);
  if (e == nullptr || stillValid(id, *e)) return;
  withdraw(id, e->owner + " no longer owns it");
}

bool HomeAssistantPlugin::stillValid(const std::string& deviceId, const Exposure& e) const {
  auto info = ctx_.devices().deviceInfo(deviceId);
  return info && info->ownerId == e.owner && mappingOf(*info).has_value();
}

std::optional<Mapping> HomeAssistantPlugin::mappingOf(const DeviceInfo& info) const {
  return mapModel(rules_, info.model);
}

void HomeAssistantPlugin::withdraw(const std::string& deviceId, const std::string& why) {
  if (Status s = exposures_.withdraw(deviceId); !s) {
    // Still exposed on disk: the next start (or change) tries again; HA is cleared anyway,
    // since the owner it would act for is gone.
    ctx_.logger().error("could not withdraw " + deviceId + ": " + s.message());
  }
  ctx_.logger().info("withdrew " + deviceId + " from Home Assistant: " + why);
  haStates_.erase(deviceId);
  clearNode(nodeId(deviceId));
  report();
}

// ---- the link -------------------------------------------------------------------------------

void HomeAssistantPlugin::setUpAccount() {
  if (state_ != LinkState::kAccount || link_) return;
  std::string user = ctx_.config().getString("bridge_username");
  std::string password = randomPassword(rng_);
  ctx_.setBrokerAccount(
      user, password, bridgeAcls(topics_),
      [this, user, password](Status s) {
        if (link_) return;
        if (!s) {
          lastError_ = "broker account " + user + ": " + s.message();
          ctx_.logger().error(lastError_ + " (retried on the next connect)");
          ctx_.setState(PluginState::kDegraded, "{}");
          return;
        }
        connectLink(user, password);
      });
}

void HomeAssistantPlugin::connectLink(const std::string& username, const std::string& password) {
  const ConfigView& c = ctx_.config();
  LinkOptions o;
  LocalBrokerInfo local = ctx_.localBroker();
  o.host = external_ ? c.getString("broker_host") : local.host;
  o.tls = c.getBool("broker_tls");
  o.port = static_cast<int>(c.getInt("broker_port"));
  if (o.port == 0) o.port = external_ ? (o.tls ? 8883 : 1883) : local.port;
  o.caFile = c.getString("broker_ca_file");
  o.username = username;
  o.password = password;
  o.clientId = "hearth-ha-" + objectId(origin_.hubName.substr(7));
  if (o.clientId.size() > 64) o.clientId.resize(64);
  if (external_) {
    // On an external broker hearthd's status is not there: the plugin keeps it, with a Will.
    o.willTopic = topics_.hubStatus;
    o.willPayload = "{\"state\":\"offline\"}";
  }
  // The link's network thread hands everything to the hub loop. The host drops posted work once
  // the plugin has stopped, and stop() joins that thread before link_ goes: `this` needs no guard.
  HaLink::Handlers h;
  h.connected = [this] { ctx_.post([this] { onLinkUp(); }); };
  h.refused = [this](const std::string& why) {
    ctx_.post([this, why] {
      lastError_ = "the broker refused the connection: " + why;
      ctx_.logger().error(lastError_);
      report();
    });
  };
  h.disconnected = [this] { ctx_.post([this] { onLinkDown(); }); };
  h.message = [this](std::string topic, std::string payload, bool retained) {
    ctx_.post([this, topic = std::move(topic), payload = std::move(payload), retained] {
      onLinkMessage(topic, payload, retained);
    });
  };
  link_ = std::make_unique<HaLink>(o, std::move(h));
  state_ = LinkState::kConnecting;
  if (Status s = link_->start(); !s) {
    lastError_ = s.message();
    ctx_.logger().error("cannot connect to Home Assistant's broker: " + s.message());
  }
  ctx_.logger().info("connecting to Home Assistant's broker " + o.host + ":" +
                     std::to_string(o.port) + " as " + username);
  report();
}

void HomeAssistantPlugin::onLinkUp() {
  lastError_.clear();
  state_ = LinkState::kSyncing;
  retainedNodes_.clear();
  if (external_) link_->publish(topics_.hubStatus, "{\"state\":\"online\"}", true);
  // Retained configs and states under our prefixes arrive right after SUBACK, before the
  // marker published after the SUBSCRIBE: when the marker is back, the broker's view is read.
  link_->subscribe({topics_.birth(), topics_.discoveryPrefix + "/device/+/config",
                    topics_.base + "/+/state", topics_.base + "/+/+/set"});
  syncMarker_ = topics_.base + "/sync/" + randomPassword(rng_).substr(0, 12);
  link_->subscribe({syncMarker_}, false);
  link_->publish(syncMarker_, "", false);
  report();
}

void HomeAssistantPlugin::onLinkDown() {
  if (state_ == LinkState::kIdle) return;
  state_ = LinkState::kConnecting;
  ctx_.logger().warn("lost Home Assistant's broker; reconnecting");
  report();
}

void HomeAssistantPlugin::onLinkMessage(const std::string& topic, const std::string& payload,
                                        bool retained) {
  if (topic == syncMarker_) return finishSync();
  if (topic == topics_.birth()) {
    if (payload == "online") {
      ++counters_.births;
      ctx_.count("births");
      ctx_.logger().info("Home Assistant is online: re-sending discovery");
      scheduleResend();
      report();
    }
    return;
  }
  const std::string configPrefix = topics_.discoveryPrefix + "/device/";
  if (topic.rfind(configPrefix, 0) == 0) {
    if (state_ != LinkState::kSyncing || payload.empty()) return;
    std::string node = topic.substr(configPrefix.size());
    node = node.substr(0, node.find('/'));
    auto id = deviceIdOfNode(node);
    Object::Ptr cfg = objectOrNull(payload);
    // Only ours: another hub's devices on the same broker name another via_device.
    if (!id || !cfg || !cfg->getObject("dev") ||
        cfg->getObject("dev")->optValue<std::string>("via_device", "") != origin_.hubNode) {
      return;
    }
    retainedNodes_.insert(node);
    return;
  }
  Poco::StringTokenizer parts(topic.substr(std::min(topic.size(), topics_.base.size() + 1)), "/");
  if (topic.rfind(topics_.base + "/", 0) != 0) return;
  if (parts.count() == 2 && parts[1] == "state") {
    // Our own retained states, read back once at sync: the last state HA saw.
    if (state_ != LinkState::kSyncing || !retained) return;
    auto id = deviceIdOfNode(parts[0]);
    if (id && exposures_.find(*id) != nullptr && !haStates_.count(*id)) haStates_[*id] = payload;
    return;
  }
  // A retained command would run again at every reconnect: commands are live or nothing.
  if (parts.count() == 3 && parts[2] == "set") {
    if (retained) {
      ctx_.logger().warn("ignored and cleared a retained command on " + topic);
      link_->publish(topic, "", true);
      return;
    }
    onCommand(parts[0], parts[1], payload);
  }
}

void HomeAssistantPlugin::finishSync() {
  if (state_ != LinkState::kSyncing) return;
  link_->unsubscribe(
      {topics_.discoveryPrefix + "/device/+/config", topics_.base + "/+/state", syncMarker_});
  for (const auto& node : retainedNodes_) {
    auto id = deviceIdOfNode(node);
    const Exposure* e = id ? exposures_.find(*id) : nullptr;
    if (e == nullptr) {
      ctx_.logger().info("clearing " + node + " from Home Assistant: no longer exposed");
      clearNode(node);
    }
  }
  retainedNodes_.clear();
  state_ = LinkState::kLive;
  publishAll();
  report();
}

void HomeAssistantPlugin::onCommand(const std::string& node, const std::string& component,
                                    const std::string& payload) {
  auto id = deviceIdOfNode(node);
  const Exposure* e = id ? exposures_.find(*id) : nullptr;
  if (e == nullptr) return;  // not (or no longer) exposed: HA's entity is already cleared
  std::string deviceId = *id;
  auto info = ctx_.devices().deviceInfo(deviceId);
  auto m = info ? mappingOf(*info) : std::nullopt;
  if (!m) return;
  ++counters_.commands;
  ctx_.count("commands");
  auto cmd = deviceCommand(*m, component, payload);
  if (!cmd) {
    ++counters_.commandsRefused;
    ctx_.count("commands_refused");
    ctx_.logger().warn("Home Assistant sent " + deviceId + " an unusable command on " + component +
                       ": " + cmd.status().message());
    publishState(deviceId);
    return;
  }
  std::string owner = e->owner;
  ctx_.devices().controlAs(owner, deviceId, cmd.value().command, cmd.value().paramsJson, kVia,
                           [this, deviceId, owner,
                            command = cmd.value().command](Result<std::string> r) {
                             if (!r) {
                               ++counters_.commandsRefused;
                               ctx_.count("commands_refused");
                               ctx_.logger().warn("Home Assistant's " + command + " on " +
                                                  deviceId + " (as " + owner +
                                                  ") failed: " + errorCodeName(r.status().code()) +
                                                  " " + r.status().message());
                               // HA shows what it asked for until told otherwise: tell it what is
                               // true.
                               publishState(deviceId);
                               report();
                               return;
                             }
                             ctx_.count("commands_relayed");
                             Object::Ptr result = objectOrNull(r.value());
                             if (result && result->getObject("state")) {
                               Object data;
                               data.set("deviceId", deviceId);
                               data.set("state", result->getObject("state"));
                               onDeviceState(text(data));
                             }
                           });
}

void HomeAssistantPlugin::scheduleResend() {
  if (resendTimer_.armed()) return;  // one resend serves a burst of births
  int64_t maxMs = resendDelayMax_.count();
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(0, maxMs));
  // Spread out: every integration answering a birth at once is what HA's docs warn about.
  resendTimer_ = ctx_.after(std::chrono::milliseconds(pick(rng_)), [this] {
    publishAll();
    report();
  });
}

// ---- publishing -----------------------------------------------------------------------------

void HomeAssistantPlugin::publishAll() {
  if (state_ != LinkState::kLive) return;
  link_->publish(topics_.config(origin_.hubNode), hubConfig(topics_, origin_), true);
  // Configs first, then states, so HA has every entity when its state arrives.
  for (const auto& [id, e] : exposures_.all()) publishDevice(id);
  for (const auto& [id, e] : exposures_.all()) publishState(id);
}

void HomeAssistantPlugin::publishDevice(const std::string& deviceId) {
  if (state_ != LinkState::kLive) return;
  auto info = ctx_.devices().deviceInfo(deviceId);
  if (!info) return;
  auto m = mappingOf(*info);
  if (!m) return;
  const std::string node = nodeId(deviceId);
  link_->publish(topics_.config(node), deviceConfig(*info, *m, topics_, origin_, discovery_), true);
  link_->publish(topics_.availability(node), info->online ? "online" : "offline", true);
  ++counters_.configsPublished;
  ctx_.count("configs_published");
}

void HomeAssistantPlugin::publishState(const std::string& deviceId) {
  if (state_ != LinkState::kLive) return;
  auto it = haStates_.find(deviceId);
  if (it == haStates_.end()) return;
  link_->publish(topics_.state(nodeId(deviceId)), it->second, true);
  ++counters_.statesPublished;
  ctx_.count("states_published");
}

void HomeAssistantPlugin::clearNode(const std::string& node) {
  if (state_ != LinkState::kLive && state_ != LinkState::kSyncing) return;
  // An empty retained config removes the device and its entities from HA; the state and
  // availability go too, so nothing of it stays on the broker.
  link_->publish(topics_.config(node), "", true);
  link_->publish(topics_.state(node), "", true);
  link_->publish(topics_.availability(node), "", true);
  ++counters_.configsCleared;
  ctx_.count("configs_cleared");
}

void HomeAssistantPlugin::report() {
  Object d;
  static const char* kNames[] = {"idle", "account", "connecting", "syncing", "live"};
  d.set("link", kNames[static_cast<int>(state_)]);
  d.set("exposed", exposures_.all().size());
  d.set("configsPublished", counters_.configsPublished);
  d.set("configsCleared", counters_.configsCleared);
  d.set("statesPublished", counters_.statesPublished);
  d.set("commands", counters_.commands);
  d.set("commandsRefused", counters_.commandsRefused);
  d.set("births", counters_.births);
  if (!lastError_.empty()) d.set("error", lastError_);
  PluginState s = state_ == LinkState::kLive ? PluginState::kRunning
                  : lastError_.empty()       ? PluginState::kStarting
                                             : PluginState::kDegraded;
  ctx_.setState(s, text(d));
}

}  // namespace hearth::home_assistant
