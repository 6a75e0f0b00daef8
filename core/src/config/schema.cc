#include "config/schema.h"

#include <algorithm>

#include "hearth_install_paths.h"

namespace hearth::config {

namespace {

constexpr double kMinute = 60;
constexpr double kHour = 3600;
constexpr double kDay = 86400;
constexpr double kMaxPathLength = 4096;  // PATH_MAX

}  // namespace

const std::vector<std::string_view>& bindingModes() {
  static const std::vector<std::string_view> modes = {"preemptive", "share_required", "share_free",
                                                      "owner_on_share"};
  return modes;
}

const std::vector<CoreKey>& coreSchema() {
  using T = CoreKeyType;
  using H = HubConfig;
  // Ranges say what the rest of the core can honour: MQTT keepalive is a 16-bit number of
  // seconds and libmosquitto refuses less than 5; a QR share key lives at most 30 minutes
  // (SPEC §3); the others keep a typo ("24d" for "24h") from silently disabling a limit.
  // One row per key reads as a table; the formatter would put each field on its own line.
  // clang-format off
  static const std::vector<CoreKey> schema = {
      {"hub.state_dir", T::kPath, "/var/lib/hearth", 1, kMaxPathLength, {},
       "Directory of the hub database (SQLite) and other durable state.", &H::stateDir},
      {"hub.plugin_dir", T::kPath, install::kPluginDir, 1, kMaxPathLength, {},
       "Directory searched for plugin modules (*.so).", &H::pluginDir},
      {"hub.log_level", T::kEnum, "info", 0, 0, {"debug", "info", "warn", "error"},
       "Least severe log level written.", &H::logLevel},
      {"hub.backup.every", T::kDuration, "1d", 0, 365 * kDay, {},
       "How often hearthd writes a backup of its state into hub.backup.dir; 0 = never.",
       &H::backupEvery},
      {"hub.backup.keep", T::kInt, "7", 1, 1000, {},
       "Scheduled backups kept; the oldest beyond this are deleted.", &H::backupKeep},
      {"hub.backup.dir", T::kPath, "\"\"", 0, kMaxPathLength, {},
       "Directory of the scheduled backups; empty = <state_dir>/backups. Another disk (a USB "
       "stick) survives a dead SD card.", &H::backupDir},

      {"broker.host", T::kString, "127.0.0.1", 1, 253, {},
       "Host name or address of the local MQTT broker.", &H::brokerHost},
      {"broker.port", T::kInt, "1883", 1, 65535, {}, "TCP port of the local MQTT broker.",
       &H::brokerPort},
      {"broker.client_id", T::kIdentifier, "hearthd", 0, 0, {},
       "MQTT client id of hearthd's own connection.", &H::brokerClientId},
      {"broker.username", T::kIdentifier, "hearthd", 0, 0, {},
       "Broker account hearthd logs in with (the Dynamic Security admin in dynsec mode).",
       &H::brokerUsername},
      {"broker.password", T::kString, "\"\"", 0, 1024, {},
       "Inline password (discouraged; prefer password_file). Non-empty wins over the file.",
       &H::brokerPassword},
      {"broker.password_file", T::kPath, "/etc/hearth/broker.pass", 0, kMaxPathLength, {},
       "File whose first line is the broker password; empty = no password.",
       &H::brokerPasswordFile},
      {"broker.keepalive", T::kDuration, "30s", 5, 65535, {}, "MQTT keepalive interval.",
       &H::keepalive},
      {"broker.reconnect_min", T::kDuration, "500ms", 0.1, kHour, {},
       "Shortest delay before reconnecting to a lost broker (back-off starts here).",
       &H::reconnectMin},
      {"broker.reconnect_max", T::kDuration, "30s", 1, kDay, {},
       "Longest delay between reconnect attempts; at least reconnect_min.", &H::reconnectMax},
      {"broker.user_management", T::kEnum, "dynsec", 0, 0, {"dynsec", "external"},
       "dynsec: hearthd manages user accounts through mosquitto's Dynamic Security plugin; "
       "external: the operator manages accounts and the ACL hearth/v1/u/%u/#.",
       &H::userManagement},
      // Default: the file of the broker the install sets up (the Debian package's), else "".
      {"broker.dynsec_file", T::kPath, install::kDynsecFile[0] ? install::kDynsecFile : "\"\"",
       0, kMaxPathLength, {},
       "The broker's Dynamic Security file (plugin_opt_config_file), included in backups so "
       "that restored users keep their passwords; empty = not backed up.",
       &H::brokerDynsecFile},

      {"admin.users", T::kIdentifierList, "[]", 0, 0, {},
       "Broker accounts allowed to use hearth/v1/admin/; empty = broker.username only.",
       &H::adminUsers},

      {"binding.provision_ttl", T::kDuration, "10m", 1, kDay, {},
       "Lifetime of a WiFi provisioning token.", &H::provisionTtl},
      {"binding.share.qr_ttl", T::kDuration, "15m", 1, 30 * kMinute, {},
       "Lifetime of a QR share key (at most 30m).", &H::qrTtl},
      {"binding.share.invite_ttl", T::kDuration, "24h", 1, 30 * kDay, {},
       "Lifetime of an account share invitation.", &H::inviteTtl},
      {"binding.share.max_members", T::kInt, "20", 1, 1000, {},
       "Most users bound to one device (owner included).", &H::maxMembers},
      {"binding.share.max_failed_scans", T::kInt, "20", 1, 10000, {},
       "Failed QR scans by one user within failed_scan_window before RATE_LIMITED.",
       &H::maxFailedScans},
      {"binding.share.failed_scan_window", T::kDuration, "15m", 1, kDay, {},
       "Window for counting failed scans, and how long RATE_LIMITED lasts.",
       &H::failedScanWindow},
      {"binding.products", T::kProductRules, "[]", 0, 0, {},
       "Per-product binding modes: a list of {model: glob, mode: ...}; first match wins.",
       &H::products},
      {"binding.transport_defaults.wifi", T::kEnum, "preemptive", 0, 0, bindingModes(),
       "Binding mode of WiFi devices no product rule matches.", &H::wifiDefaultMode},
      {"binding.transport_defaults.ble", T::kEnum, "share_required", 0, 0, bindingModes(),
       "Binding mode of BLE devices no product rule matches.", &H::bleDefaultMode},

      {"plugins", T::kPluginTrees, "{}", 0, 0, {},
       "Plugin name -> its settings ({enabled: bool} plus the keys the plugin declares).",
       std::monostate{}},
  };
  // clang-format on
  return schema;
}

const SchemaIndex& schemaIndex() {
  static const SchemaIndex index = [] {
    SchemaIndex ix;
    for (const CoreKey& spec : coreSchema()) {
      const std::string path(spec.path);
      ix.leaves[path] = &spec;
      std::string parent;
      size_t start = 0;
      while (true) {
        const size_t dot = path.find('.', start);
        const std::string name = path.substr(start, dot == std::string::npos ? dot : dot - start);
        auto& names = ix.children[parent];
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        if (dot == std::string::npos) break;
        parent = path.substr(0, dot);
        ix.sections.insert(parent);
        start = dot + 1;
      }
    }
    return ix;
  }();
  return index;
}

}  // namespace hearth::config
