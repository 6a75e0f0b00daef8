#include "ha_mapping.h"

#include <Poco/DigestEngine.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <fnmatch.h>


namespace hearth::home_assistant {

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::kLamp:
      return "lamp";
    case Kind::kPlug:
      return "plug";
    case Kind::kLock:
      return "lock";
    case Kind::kContact:
      return "contact";
    case Kind::kButton:
      return "button";
    case Kind::kSensor:
      return "sensor";
  }
  return "sensor";
}

std::optional<Kind> parseKind(std::string_view name) {
  for (Kind k :
       {Kind::kLamp, Kind::kPlug, Kind::kLock, Kind::kContact, Kind::kButton, Kind::kSensor}) {
    if (name == kindName(k)) return k;
  }
  return std::nullopt;
}

const std::vector<Reading>& knownReadings() {
  static const std::vector<Reading> readings = {
      {"temperature", "temperature", "°C", "measurement"},
      {"humidity", "humidity", "%", "measurement"},
      {"battery", "battery", "%", "measurement"},
      {"illuminance", "illuminance", "lx", "measurement"},
      {"pressure", "pressure", "hPa", "measurement"},
      {"co2", "carbon_dioxide", "ppm", "measurement"},
      {"power", "power", "W", "measurement"},
      {"voltage", "voltage", "V", "measurement"},
      {"energy", "energy", "kWh", "total_increasing"},
  };
  return readings;
}

const Reading* findReading(std::string_view key) {
  for (const auto& r : knownReadings()) {
    if (key == r.key) return &r;
  }
  return nullptr;
}

const std::vector<MappingRule>& defaultRules() {
  static const std::vector<MappingRule> rules = {
      {"*lamp*", {Kind::kLamp, {}, ""}},
      {"*light*", {Kind::kLamp, {}, ""}},
      {"*bulb*", {Kind::kLamp, {}, ""}},
      {"*plug*", {Kind::kPlug, {"power", "energy"}, ""}},
      {"*socket*", {Kind::kPlug, {}, ""}},
      {"*lock*", {Kind::kLock, {"battery"}, ""}},
      {"*contact*", {Kind::kContact, {"battery"}, ""}},
      {"*door*", {Kind::kContact, {"battery"}, ""}},
      {"*button*", {Kind::kButton, {"battery"}, ""}},
      {"*thermo*", {Kind::kSensor, {"temperature", "humidity", "battery"}, ""}},
      {"*sensor*", {Kind::kSensor, {"temperature", "humidity", "battery"}, ""}},
  };
  return rules;
}

Result<std::vector<MappingRule>> parseRules(const std::string& json) {
  std::vector<MappingRule> rules;
  Poco::JSON::Array::Ptr list;
  try {
    list = Poco::JSON::Parser().parse(json).extract<Poco::JSON::Array::Ptr>();
  } catch (const std::exception&) {
    return Status::error(ErrorCode::kInvalidRequest, "models must be a list");
  }
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "models[" + std::to_string(i) + "]";
    auto o = list->getObject(static_cast<unsigned>(i));
    if (!o) return Status::error(ErrorCode::kInvalidRequest, where + " must be a map");
    for (const auto& [key, value] : *o) {
      if (key != "model" && key != "kind" && key != "readings" && key != "manufacturer") {
        return Status::error(
            ErrorCode::kInvalidRequest,
            where + ": unknown key " + key + " (model, kind, readings, manufacturer)");
      }
    }
    MappingRule rule;
    if (!o->has("model") || !o->get("model").isString() ||
        o->getValue<std::string>("model").empty()) {
      return Status::error(ErrorCode::kInvalidRequest, where + ".model must be a model glob");
    }
    rule.modelGlob = o->getValue<std::string>("model");
    auto kind = o->has("kind") && o->get("kind").isString()
                    ? parseKind(o->getValue<std::string>("kind"))
                    : std::nullopt;
    if (!kind) {
      return Status::error(ErrorCode::kInvalidRequest,
                           where + ".kind must be lamp, plug, lock, contact, button or sensor");
    }
    rule.mapping.kind = *kind;
    if (o->has("readings")) {
      auto readings = o->getArray("readings");
      if (!readings) {
        return Status::error(ErrorCode::kInvalidRequest, where + ".readings must be a list");
      }
      for (size_t j = 0; j < readings->size(); ++j) {
        auto v = readings->get(static_cast<unsigned>(j));
        if (!v.isString() || findReading(v.toString()) == nullptr) {
          std::string known;
          for (const auto& r : knownReadings())
            known += std::string(known.empty() ? "" : ", ") + r.key;
          return Status::error(ErrorCode::kInvalidRequest,
                               where + ".readings: unknown reading (known: " + known + ")");
        }
        rule.mapping.readings.push_back(v.toString());
      }
    }
    if (o->has("manufacturer")) {
      if (!o->get("manufacturer").isString()) {
        return Status::error(ErrorCode::kInvalidRequest, where + ".manufacturer must be text");
      }
      rule.mapping.manufacturer = o->getValue<std::string>("manufacturer");
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::optional<Mapping> mapModel(const std::vector<MappingRule>& configured,
                                const std::string& model) {
  for (const auto* rules : {&configured, &defaultRules()}) {
    for (const auto& r : *rules) {
      if (fnmatch(r.modelGlob.c_str(), model.c_str(), 0) == 0) return r.mapping;
    }
  }
  return std::nullopt;
}

std::string objectId(std::string_view deviceId) {
  std::string out;
  out.reserve(deviceId.size());
  for (char c : deviceId) {
    bool keep =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (keep) {
      out += c;
    } else {
      out += '_';
      out += Poco::DigestEngine::digestToHex({static_cast<unsigned char>(c)});
    }
  }
  return out;
}

std::string nodeId(std::string_view deviceId) { return "hearth_" + objectId(deviceId); }

std::optional<std::string> deviceIdOfNode(std::string_view node) {
  constexpr std::string_view kPrefix = "hearth_";
  if (node.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::string out;
  for (size_t i = kPrefix.size(); i < node.size(); ++i) {
    char c = node[i];
    if (c != '_') {
      out += c;
      continue;
    }
    if (i + 2 >= node.size()) return std::nullopt;
    int value = 0;
    for (int k = 1; k <= 2; ++k) {
      char h = node[i + k];
      int d = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      value = value * 16 + d;
    }
    out += static_cast<char>(value);
    i += 2;
  }
  // Only what objectId() makes: the inverse must map back to the same node id.
  if (out.empty() || nodeId(out) != node) return std::nullopt;
  return out;
}

}  // namespace hearth::home_assistant
