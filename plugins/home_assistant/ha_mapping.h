#pragma once
// What a hearth device is to Home Assistant: the mapping table of docs/home-assistant.md (model
// glob -> kind and readings) and the mapping of device ids onto HA's object id alphabet. Pure.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hearth/status.h"

namespace hearth::home_assistant {

// The kind decides the actuator component; readings add sensors to any kind.
enum class Kind { kLamp, kPlug, kLock, kContact, kButton, kSensor };

const char* kindName(Kind kind);
std::optional<Kind> parseKind(std::string_view name);

// One measured value a device reports in its state under `key`.
struct Reading {
  const char* key;
  const char* deviceClass;  // HA sensor device class
  const char* unit;         // unit_of_measurement
  const char* stateClass;   // measurement | total_increasing
};
// The readings hearth knows (temperature, humidity, battery, ...); nullptr if unknown.
const Reading* findReading(std::string_view key);
const std::vector<Reading>& knownReadings();

struct Mapping {
  Kind kind = Kind::kSensor;
  std::vector<std::string> readings;  // keys of knownReadings()
  std::string manufacturer;           // empty: "hearth <transport> device"
};

struct MappingRule {
  std::string modelGlob;
  Mapping mapping;
};

// The built-in rules (docs/home-assistant.md, "Mapping table").
const std::vector<MappingRule>& defaultRules();

// Parses the `models` config key: a JSON list of {model, kind, readings?, manufacturer?}.
Result<std::vector<MappingRule>> parseRules(const std::string& json);

// First rule (configured, then built-in) whose glob matches the model; nullopt: not mappable.
std::optional<Mapping> mapModel(const std::vector<MappingRule>& configured,
                                const std::string& model);

// HA object ids allow [a-zA-Z0-9_-]; hearth device ids [A-Za-z0-9._:-]. Letters, digits and
// '-' stay; '_', '.' and ':' become "_5f", "_2e", "_3a". Every escape starts with '_', which
// is itself escaped, so two device ids never map to the same object id.
std::string objectId(std::string_view deviceId);
// "hearth_" + objectId(deviceId): the node id of the device's discovery topic.
std::string nodeId(std::string_view deviceId);
// The inverse of nodeId, or nullopt for a node id hearth did not make.
std::optional<std::string> deviceIdOfNode(std::string_view nodeId);

}  // namespace hearth::home_assistant
