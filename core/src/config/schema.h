#pragma once
// The declared schema of the core keys of hearth.yaml. One row per key: the loader walks the
// file against this table (so unknown keys, wrong types and ranges are checked in one place)
// and fills HubConfig from it; the default text of each row is the default HubConfig gets.

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"

namespace hearth::config {

enum class CoreKeyType {
  kString,          // any scalar; min/max bound the length (min > max = unbounded)
  kPath,            // kString, and a relative path is resolved against the file's directory
  kIdentifier,      // [A-Za-z0-9._:-]{1,64}
  kEnum,            // one of `allowed`
  kInt,             // min..max
  kDuration,        // see parseDuration; min..max in seconds
  kIdentifierList,  // a list of identifiers
  kProductRules,    // a list of {model: glob, mode: binding mode}
  kPluginTrees,     // plugin name -> subtree, validated later against the plugin's keys
};

// Where a row's value lands in HubConfig; the alternative matches the row's type.
using CoreKeyField =
    std::variant<std::string HubConfig::*, int HubConfig::*, std::chrono::milliseconds HubConfig::*,
                 std::vector<std::string> HubConfig::*, std::vector<ProductRule> HubConfig::*,
                 std::monostate>;

struct CoreKey {
  std::string_view path;  // dotted, e.g. "broker.port"
  CoreKeyType type;
  std::string_view defaultYaml;  // YAML text
  double min;
  double max;
  std::vector<std::string_view> allowed;  // kEnum only
  std::string_view description;
  CoreKeyField field;
};

// Every core key, in the order of the shipped config/hearth.yaml.
const std::vector<CoreKey>& coreSchema();

// The schema's keys and sections by dotted path, and each section's child names in schema
// order ("" = the top level): what the loader and --set check a key against.
struct SchemaIndex {
  std::map<std::string, const CoreKey*, std::less<>> leaves;
  std::set<std::string, std::less<>> sections;
  std::map<std::string, std::vector<std::string>, std::less<>> children;  // "" = top level
};
const SchemaIndex& schemaIndex();

// The binding modes a product rule or transport default may name.
const std::vector<std::string_view>& bindingModes();

}  // namespace hearth::config
