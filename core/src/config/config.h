#pragma once
// hearth.yaml: loading, schema validation and the typed configuration the core uses.
//
// Every key of the file is declared in a schema (core keys in schema.cc, plugin keys in each
// plugin's descriptor). Unknown keys, wrong types and out-of-range values are errors that name
// the file, the line and the dotted key. Nothing is applied unless the whole file is valid.
//
// Where it is done: config/yaml_load.cc + yaml_syntax.cc turn text into one YAML node (always
// ending); config/yaml_reader.cc has the typed readers and the error sink; config/overrides.cc
// applies --set; config/core_loader.cc checks the core keys (schema.cc) and fills HubConfig;
// config/plugin_config.cc checks a plugin's subtree and builds its ConfigView; config.cc holds
// error text and durations.

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hearth/host.h"
#include "hearth/plugin_api.h"
#include "hearth/sdk/context.h"
#include "hearth_install_paths.h"

namespace hearth::config {

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when the error is not tied to a line (e.g. unreadable file)
  std::string key;  // dotted path, e.g. "broker.port"
  std::string message;
  // "FILE:LINE: KEY: MESSAGE"
  std::string toString() const;
};

struct ProductRule {
  std::string model;  // glob (fnmatch)
  std::string mode;   // preemptive | share_required | share_free | owner_on_share
};

struct HubConfig {
  std::string sourceFile;

  // hub:
  std::string stateDir = "/var/lib/hearth";
  std::string pluginDir = install::kPluginDir;  // follows the install prefix
  std::string logLevel = "info";  // debug | info | warn | error

  // broker:
  std::string brokerHost = "127.0.0.1";
  int brokerPort = 1883;
  std::string brokerClientId = "hearthd";
  std::string brokerUsername = "hearthd";
  std::string brokerPassword;      // inline password (discouraged), or
  std::string brokerPasswordFile;  // a file whose first line is the password
  std::chrono::milliseconds keepalive{30000};
  std::chrono::milliseconds reconnectMin{500};
  std::chrono::milliseconds reconnectMax{30000};
  std::string userManagement = "dynsec";  // dynsec | external

  // admin:
  std::vector<std::string> adminUsers;  // empty in the file = {brokerUsername}

  // binding:
  std::chrono::milliseconds provisionTtl{10 * 60 * 1000};
  std::chrono::milliseconds qrTtl{15 * 60 * 1000};  // max 30 min
  std::chrono::milliseconds inviteTtl{24 * 3600 * 1000};
  int maxMembers = 20;
  int maxFailedScans = 20;
  std::chrono::milliseconds failedScanWindow{15 * 60 * 1000};
  std::vector<ProductRule> products;
  std::string wifiDefaultMode = "preemptive";
  std::string bleDefaultMode = "share_required";

  // plugins: <name>: {enabled: bool, ...plugin keys}. Subtrees are validated when the plugin's
  // descriptor is known (validatePluginConfig).
  std::map<std::string, YAML::Node> pluginNodes;
  std::map<std::string, int> pluginNodeLines;

  // hub.backup: scheduled backups (docs/operations.md, "Back up and restore").
  std::chrono::milliseconds backupEvery{24 * 3600 * 1000};  // 0 = no scheduled backups
  int backupKeep = 7;
  std::string backupDir;  // empty = <state_dir>/backups
  // broker.dynsec_file: the broker's Dynamic Security file, which a backup includes.
  std::string brokerDynsecFile = install::kDynsecFile;  // the installed broker's, if any
};

// Loads and validates a file. `overrides` are "dotted.key=yaml-value" pairs (hearthd --set)
// applied before validation. On failure returns every error found (at least one).
struct LoadResult {
  std::optional<HubConfig> config;
  std::vector<ConfigError> errors;
};
LoadResult loadFile(const std::string& path, const std::vector<std::string>& overrides = {});
LoadResult loadString(const std::string& yamlText, const std::string& nameForErrors,
                      const std::vector<std::string>& overrides = {});

// Validates one plugin subtree against the plugin's declared keys and returns the view the
// plugin gets. The key "enabled" (bool, default true) is reserved for the core. A missing
// subtree means all defaults.
struct PluginConfigResult {
  std::unique_ptr<ConfigView> view;
  bool enabled = true;
  std::vector<ConfigError> errors;
};
PluginConfigResult validatePluginConfig(const HubConfig& config, const std::string& pluginName,
                                        const hearth_config_key* keys, size_t keyCount);

// Parses "500ms", "30s", "15m", "24h", "7d" or a bare integer (seconds).
std::optional<std::chrono::milliseconds> parseDuration(const std::string& text);

// The canonical "\n"-joined list of errors, one per line.
std::string formatErrors(const std::vector<ConfigError>& errors);

}  // namespace hearth::config
