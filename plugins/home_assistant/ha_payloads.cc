#include "ha_payloads.h"

#include <cmath>

#include "hearth/util/json.h"

namespace hearth::home_assistant {
namespace {

using json::Array;
using json::Object;
using json::text;

// The actuator component of a kind: (cmps key, HA platform); empty for sensors.
std::pair<std::string, std::string> actuator(Kind kind) {
  switch (kind) {
    case Kind::kLamp:
      return {"light", "light"};
    case Kind::kPlug:
      return {"switch", "switch"};
    case Kind::kLock:
      return {"lock", "lock"};
    case Kind::kContact:
      return {"contact", "binary_sensor"};
    case Kind::kButton:
      return {"button", "button"};
    case Kind::kSensor:
      return {"", ""};
  }
  return {"", ""};
}

std::string titleCase(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  for (auto& c : s) {
    if (c == '_') c = ' ';
  }
  return s;
}

}  // namespace

std::vector<std::string> componentKeys(const Mapping& mapping) {
  std::vector<std::string> keys;
  auto [key, platform] = actuator(mapping.kind);
  if (!key.empty()) keys.push_back(key);
  for (const auto& r : mapping.readings) keys.push_back(r);
  return keys;
}

std::string deviceConfig(const DeviceInfo& device, const Mapping& mapping, const Topics& topics,
                         const Origin& origin, const DiscoveryOptions& options) {
  const std::string node = nodeId(device.deviceId);
  Object dev;
  Array::Ptr ids = new Array;
  ids->add(node);
  dev.set("ids", ids);
  dev.set("name", device.name.empty() ? device.deviceId : device.name);
  dev.set("mdl", device.model);
  dev.set("mf", mapping.manufacturer.empty() ? "hearth " + device.transport + " device"
                                             : mapping.manufacturer);
  if (!device.firmware.empty()) dev.set("sw", device.firmware);
  dev.set("via_device", origin.hubNode);

  Object o;
  o.set("name", "hearth");
  o.set("sw", origin.version);
  if (!origin.url.empty()) o.set("url", origin.url);

  // Both must say online (avty_mode all): the hub (its retained status, a JSON document whose
  // Will says offline) and the device's presence.
  Array::Ptr avty = new Array;
  Object::Ptr hub = new Object;
  hub->set("t", topics.hubStatus);
  hub->set("val_tpl", "{{ value_json.state }}");
  avty->add(hub);
  Object::Ptr own = new Object;
  own->set("t", topics.availability(node));
  avty->add(own);

  const std::string stateTopic = topics.state(node);
  const bool advertisesOnly = device.transport == "ble" && options.bleExpireAfterSec > 0;
  Object cmps;
  auto [key, platform] = actuator(mapping.kind);
  if (!key.empty()) {
    Object::Ptr c = new Object;
    c->set("p", platform);
    c->set("uniq_id", node + "_" + key);
    // null: the entity is named after the device alone ("Desk lamp", not "Desk lamp Light").
    c->set("name", Poco::Dynamic::Var());
    switch (mapping.kind) {
      case Kind::kLamp: {
        c->set("schema", "json");
        c->set("stat_t", stateTopic);
        c->set("cmd_t", topics.command(node, key));
        Array::Ptr modes = new Array;
        modes->add("brightness");
        c->set("sup_clrm", modes);
        c->set("bri_scl", 100);
        break;
      }
      case Kind::kPlug:
        c->set("stat_t", stateTopic);
        c->set("val_tpl", "{{ value_json.state }}");
        c->set("cmd_t", topics.command(node, key));
        break;
      case Kind::kLock:
        c->set("stat_t", stateTopic);
        c->set("val_tpl", "{{ value_json.lock }}");
        c->set("cmd_t", topics.command(node, key));
        break;
      case Kind::kContact:
        c->set("dev_cla", "door");
        c->set("stat_t", stateTopic);
        c->set("val_tpl", "{{ value_json.contact }}");
        if (advertisesOnly) c->set("exp_aft", options.bleExpireAfterSec);
        break;
      case Kind::kButton:
        c->set("cmd_t", topics.command(node, key));
        break;
      case Kind::kSensor:
        break;
    }
    cmps.set(key, c);
  }
  for (const auto& r : mapping.readings) {
    const Reading* reading = findReading(r);
    if (reading == nullptr) continue;
    Object::Ptr c = new Object;
    c->set("p", "sensor");
    c->set("uniq_id", node + "_" + r);
    c->set("name", titleCase(r == "co2" ? "CO2" : r));
    c->set("dev_cla", reading->deviceClass);
    c->set("unit_of_meas", reading->unit);
    c->set("stat_cla", reading->stateClass);
    c->set("stat_t", stateTopic);
    // The plugin publishes the merged state (every key last reported), so each key is there.
    c->set("val_tpl", "{{ value_json." + r + " }}");
    if (advertisesOnly) c->set("exp_aft", options.bleExpireAfterSec);
    cmps.set(r, c);
  }

  Object root;
  root.set("dev", dev);
  root.set("o", o);
  root.set("avty", avty);
  root.set("avty_mode", "all");
  root.set("qos", 1);
  root.set("cmps", cmps);
  return text(root);
}

std::string hubConfig(const Topics& topics, const Origin& origin) {
  Object dev;
  Array::Ptr ids = new Array;
  ids->add(origin.hubNode);
  dev.set("ids", ids);
  dev.set("name", origin.hubName);
  dev.set("mdl", "hearth hub");
  dev.set("mf", "hearth");
  dev.set("sw", origin.version);
  Object o;
  o.set("name", "hearth");
  o.set("sw", origin.version);
  if (!origin.url.empty()) o.set("url", origin.url);
  Object::Ptr c = new Object;
  c->set("p", "binary_sensor");
  c->set("uniq_id", origin.hubNode + "_status");
  c->set("name", "Status");
  c->set("dev_cla", "connectivity");
  c->set("ent_cat", "diagnostic");
  c->set("stat_t", topics.hubStatus);
  c->set("val_tpl", "{{ value_json.state }}");
  c->set("pl_on", "online");
  c->set("pl_off", "offline");
  Object cmps;
  cmps.set("status", c);
  Object root;
  root.set("dev", dev);
  root.set("o", o);
  root.set("qos", 1);
  root.set("cmps", cmps);
  return text(root);
}

std::optional<std::string> haState(const Mapping& mapping, const std::string& deviceStateJson) {
  auto parsed = json::tryParseObject(deviceStateJson);
  if (!parsed) return std::nullopt;
  const Object::Ptr& in = parsed.value();
  Object out;
  auto flag = [&](const char* key) -> std::optional<bool> {
    if (!in->has(key) || !in->get(key).isBoolean()) return std::nullopt;
    return in->getValue<bool>(key);
  };
  switch (mapping.kind) {
    case Kind::kLamp:
    case Kind::kPlug:
      if (auto on = flag("on")) out.set("state", *on ? "ON" : "OFF");
      if (mapping.kind == Kind::kLamp && in->has("brightness") &&
          in->get("brightness").isNumeric()) {
        double b = in->getValue<double>("brightness");
        out.set("brightness", static_cast<int>(std::lround(std::fmin(100, std::fmax(0, b)))));
      }
      break;
    case Kind::kLock:
      if (auto locked = flag("locked")) out.set("lock", *locked ? "LOCKED" : "UNLOCKED");
      break;
    case Kind::kContact:
      if (auto open = flag("open")) out.set("contact", *open ? "ON" : "OFF");
      break;
    case Kind::kButton:
    case Kind::kSensor:
      break;
  }
  for (const auto& r : mapping.readings) {
    if (in->has(r) && in->get(r).isNumeric()) out.set(r, in->getValue<double>(r));
  }
  return text(out);
}

Result<DeviceCommand> deviceCommand(const Mapping& mapping, const std::string& component,
                                    const std::string& payload) {
  auto [key, platform] = actuator(mapping.kind);
  if (key.empty() || component != key || mapping.kind == Kind::kContact) {
    return Status::error(ErrorCode::kInvalidRequest, "no command topic " + component);
  }
  Object params;
  switch (mapping.kind) {
    case Kind::kLamp: {
      // JSON schema: {"state":"ON"|"OFF", "brightness": 0..bri_scl, "transition": ...}.
      auto parsed = json::tryParseObject(payload);
      if (!parsed) {
        return Status::error(ErrorCode::kInvalidRequest, "light command is not a JSON object");
      }
      const Object::Ptr& in = parsed.value();
      if (!in->has("state") || !in->get("state").isString()) {
        return Status::error(ErrorCode::kInvalidRequest, "light command without \"state\"");
      }
      std::string state = in->getValue<std::string>("state");
      if (state != "ON" && state != "OFF") {
        return Status::error(ErrorCode::kInvalidRequest, "light state must be ON or OFF");
      }
      params.set("on", state == "ON");
      if (state == "ON" && in->has("brightness")) {
        if (!in->get("brightness").isNumeric()) {
          return Status::error(ErrorCode::kInvalidRequest, "brightness must be a number");
        }
        double b = in->getValue<double>("brightness");
        if (!(b >= 0 && b <= 100)) {
          return Status::error(ErrorCode::kInvalidRequest, "brightness must be 0..100");
        }
        params.set("brightness", static_cast<int>(std::lround(b)));
      }
      return DeviceCommand{"set", text(params)};
    }
    case Kind::kPlug:
      if (payload != "ON" && payload != "OFF") {
        return Status::error(ErrorCode::kInvalidRequest, "switch payload must be ON or OFF");
      }
      params.set("on", payload == "ON");
      return DeviceCommand{"set", text(params)};
    case Kind::kLock:
      if (payload != "LOCK" && payload != "UNLOCK") {
        return Status::error(ErrorCode::kInvalidRequest, "lock payload must be LOCK or UNLOCK");
      }
      params.set("locked", payload == "LOCK");
      return DeviceCommand{"set", text(params)};
    case Kind::kButton:
      if (payload != "PRESS") {
        return Status::error(ErrorCode::kInvalidRequest, "button payload must be PRESS");
      }
      return DeviceCommand{"press", "{}"};
    case Kind::kContact:
    case Kind::kSensor:
      break;
  }
  return Status::error(ErrorCode::kInvalidRequest, "no command topic " + component);
}

}  // namespace hearth::home_assistant
