#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "config/schema.h"

namespace hearth::config {

// Readable failure output for vectors of errors (found by ADL, so outside the anonymous
// namespace).
void PrintTo(const ConfigError& error, std::ostream* os) { *os << error.toString(); }

namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// Loads `text` as "test.yaml" and expects exactly one error.
ConfigError onlyError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const LoadResult result = loadString(text, "test.yaml", overrides);
  EXPECT_FALSE(result.config.has_value());
  EXPECT_THAT(result.errors, SizeIs(1)) << formatErrors(result.errors);
  return result.errors.empty() ? ConfigError{} : result.errors.front();
}

HubConfig loadOk(const std::string& text, const std::vector<std::string>& overrides = {}) {
  LoadResult result = loadString(text, "test.yaml", overrides);
  EXPECT_TRUE(result.errors.empty()) << formatErrors(result.errors);
  return result.config.value_or(HubConfig{});
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "hearth-config-XXXXXX");
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto file = path_ / name;
    std::ofstream(file) << text;
    return file.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------------
// Defaults and the shipped file

TEST(ConfigDefaults, EmptyFileGivesTheStructDefaults) {
  const HubConfig loaded = loadOk("");
  const HubConfig plain;
  // The schema's default column and HubConfig's initializers must agree.
  EXPECT_EQ(loaded.stateDir, plain.stateDir);
  EXPECT_EQ(loaded.pluginDir, plain.pluginDir);
  EXPECT_EQ(loaded.logLevel, plain.logLevel);
  EXPECT_EQ(loaded.brokerHost, plain.brokerHost);
  EXPECT_EQ(loaded.brokerPort, plain.brokerPort);
  EXPECT_EQ(loaded.brokerClientId, plain.brokerClientId);
  EXPECT_EQ(loaded.brokerUsername, plain.brokerUsername);
  EXPECT_EQ(loaded.brokerPassword, "");
  EXPECT_EQ(loaded.brokerPasswordFile, "/etc/hearth/broker.pass");
  EXPECT_EQ(loaded.keepalive, plain.keepalive);
  EXPECT_EQ(loaded.reconnectMin, plain.reconnectMin);
  EXPECT_EQ(loaded.reconnectMax, plain.reconnectMax);
  EXPECT_EQ(loaded.userManagement, plain.userManagement);
  EXPECT_EQ(loaded.provisionTtl, plain.provisionTtl);
  EXPECT_EQ(loaded.qrTtl, plain.qrTtl);
  EXPECT_EQ(loaded.inviteTtl, plain.inviteTtl);
  EXPECT_EQ(loaded.maxMembers, plain.maxMembers);
  EXPECT_EQ(loaded.maxFailedScans, plain.maxFailedScans);
  EXPECT_EQ(loaded.failedScanWindow, plain.failedScanWindow);
  EXPECT_TRUE(loaded.products.empty());
  EXPECT_EQ(loaded.wifiDefaultMode, plain.wifiDefaultMode);
  EXPECT_EQ(loaded.bleDefaultMode, plain.bleDefaultMode);
  EXPECT_TRUE(loaded.pluginNodes.empty());
  EXPECT_EQ(loaded.sourceFile, "test.yaml");
}

TEST(ConfigDefaults, AdminUsersDefaultToTheBrokerAccount) {
  EXPECT_THAT(loadOk("").adminUsers, ElementsAre("hearthd"));
  EXPECT_THAT(loadOk("broker: {username: hub1}").adminUsers, ElementsAre("hub1"));
  EXPECT_THAT(loadOk("admin: {users: [alice, bob]}").adminUsers, ElementsAre("alice", "bob"));
}

TEST(ConfigDefaults, EmptySectionMeansDefaults) {
  EXPECT_EQ(loadOk("hub:\nbroker:\n").brokerPort, 1883);
}

TEST(ShippedConfig, LoadsWithoutErrorsAndCarriesTheDefaults) {
  const std::string path = std::string(HEARTH_SOURCE_DIR) + "/config/hearth.yaml";
  const LoadResult result = loadFile(path);
  ASSERT_TRUE(result.errors.empty()) << formatErrors(result.errors);
  const HubConfig defaults = loadOk("");
  const HubConfig& shipped = *result.config;
  EXPECT_EQ(shipped.stateDir, defaults.stateDir);
  EXPECT_EQ(shipped.brokerPort, defaults.brokerPort);
  EXPECT_EQ(shipped.brokerPasswordFile, defaults.brokerPasswordFile);
  EXPECT_EQ(shipped.keepalive, defaults.keepalive);
  EXPECT_EQ(shipped.qrTtl, defaults.qrTtl);
  EXPECT_EQ(shipped.maxMembers, defaults.maxMembers);
  EXPECT_EQ(shipped.adminUsers, defaults.adminUsers);
  EXPECT_EQ(shipped.bleDefaultMode, defaults.bleDefaultMode);
}

// The file `cmake --install` puts in /etc/hearth: config/hearth.yaml with hub.plugin_dir set to
// the plugin directory of the install prefix (cmake/HearthInstall.cmake).
TEST(ShippedConfig, TheInstalledFileListsEveryKeyWithItsDefault) {
  const std::string installed = std::string(HEARTH_BUILD_DIR) + "/config/hearth.yaml";
  const YAML::Node file = YAML::LoadFile(installed);
  for (const CoreKey& spec : coreSchema()) {
    // The shipped file deliberately disables cloud_bridge (it needs an endpoint first); the
    // plugin trees are checked against the plugins' own keys, not this table.
    if (std::string(spec.path) == "plugins") continue;
    YAML::Node node;
    node.reset(file);
    const std::string path(spec.path);
    size_t start = 0;
    while (node.IsDefined()) {
      const size_t dot = path.find('.', start);
      node.reset(node[path.substr(start, dot == std::string::npos ? dot : dot - start)]);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    ASSERT_TRUE(node.IsDefined()) << spec.path << " is missing from " << installed;
    YAML::Emitter shipped, declared;
    shipped << node;
    declared << YAML::Load(std::string(spec.defaultYaml));
    EXPECT_STREQ(shipped.c_str(), declared.c_str()) << spec.path;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

TEST(ConfigValues, ReadsEverySection) {
  const HubConfig c = loadOk(R"(
hub:
  state_dir: /srv/hearth
  log_level: debug
broker:
  host: mqtt.local
  port: 8883
  keepalive: 1m
  reconnect_min: 1s
  reconnect_max: 2m
  user_management: external
admin:
  users: [root, "installer:1"]
binding:
  provision_ttl: 1h
  share:
    qr_ttl: 30m
    invite_ttl: 7d
    max_members: 5
    max_failed_scans: 3
    failed_scan_window: 600
  products:
    - model: "acme-lock-*"
      mode: share_free
    - {model: "acme-plug", mode: owner_on_share}
  transport_defaults: {wifi: share_required, ble: preemptive}
plugins:
  ble: {scan: true}
  wifi_lan:
)");
  EXPECT_EQ(c.stateDir, "/srv/hearth");
  EXPECT_EQ(c.logLevel, "debug");
  EXPECT_EQ(c.brokerHost, "mqtt.local");
  EXPECT_EQ(c.brokerPort, 8883);
  EXPECT_EQ(c.keepalive, milliseconds(60000));
  EXPECT_EQ(c.reconnectMin, milliseconds(1000));
  EXPECT_EQ(c.reconnectMax, milliseconds(120000));
  EXPECT_EQ(c.userManagement, "external");
  EXPECT_THAT(c.adminUsers, ElementsAre("root", "installer:1"));
  EXPECT_EQ(c.provisionTtl, milliseconds(3600000));
  EXPECT_EQ(c.qrTtl, milliseconds(30 * 60000));
  EXPECT_EQ(c.inviteTtl, milliseconds(7 * 86400000LL));
  EXPECT_EQ(c.maxMembers, 5);
  EXPECT_EQ(c.maxFailedScans, 3);
  EXPECT_EQ(c.failedScanWindow, milliseconds(600000));
  ASSERT_THAT(c.products, SizeIs(2));
  EXPECT_EQ(c.products[0].model, "acme-lock-*");
  EXPECT_EQ(c.products[0].mode, "share_free");
  EXPECT_EQ(c.products[1].model, "acme-plug");
  EXPECT_EQ(c.products[1].mode, "owner_on_share");
  EXPECT_EQ(c.wifiDefaultMode, "share_required");
  EXPECT_EQ(c.bleDefaultMode, "preemptive");
  ASSERT_EQ(c.pluginNodes.count("ble"), 1u);
  EXPECT_EQ(c.pluginNodeLines.at("ble"), 28);
  EXPECT_EQ(c.pluginNodes.count("wifi_lan"), 1u);
}

TEST(ConfigValues, InlinePasswordReplacesThePasswordFile) {
  const HubConfig c = loadOk("broker: {password: s3cret}");
  EXPECT_EQ(c.brokerPassword, "s3cret");
  EXPECT_EQ(c.brokerPasswordFile, "");
}

TEST(ConfigValues, RelativePathsAreRelativeToTheFile) {
  TempDir dir;
  const std::string path =
      dir.write("hearth.yaml",
                "hub: {state_dir: state, plugin_dir: ../plugins}\nbroker: {password_file: ./pw}\n");
  const LoadResult result = loadFile(path);
  ASSERT_TRUE(result.errors.empty()) << formatErrors(result.errors);
  EXPECT_EQ(result.config->stateDir, (dir.path() / "state").string());
  EXPECT_EQ(result.config->pluginDir, (dir.path().parent_path() / "plugins").string());
  EXPECT_EQ(result.config->brokerPasswordFile, (dir.path() / "pw").string());
  EXPECT_EQ(result.config->sourceFile, path);
}

// ---------------------------------------------------------------------------------------------
// Errors: each names the file, the 1-based line and the dotted key

TEST(ConfigErrors, PortOutOfRangeMessage) {
  const ConfigError e = onlyError("hub:\n  log_level: info\nbroker:\n  port: 70000\n");
  EXPECT_EQ(e.toString(), "test.yaml:4: broker.port: must be between 1 and 65535 (got 70000)");
  EXPECT_EQ(onlyError("broker:\n  port: 0\n").toString(),
            "test.yaml:2: broker.port: must be between 1 and 65535 (got 0)");
}

TEST(ConfigErrors, UnknownKeysAtEveryLevel) {
  ConfigError e = onlyError("hub: {}\nbrokr:\n  port: 1\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "brokr");
  EXPECT_THAT(e.message, HasSubstr("unknown key"));
  EXPECT_THAT(e.message, HasSubstr("broker"));  // the known keys are listed

  e = onlyError("binding:\n  share:\n    qr_tl: 5m\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "binding.share.qr_tl");

  e = onlyError(
      "binding:\n  products:\n    - model: x\n      mode: share_free\n"
      "    - model: y\n      mode: preemptive\n      colour: red\n");
  EXPECT_EQ(e.line, 7);
  EXPECT_EQ(e.key, "binding.products[1].colour");
  EXPECT_THAT(e.message, HasSubstr("unknown key"));
}

TEST(ConfigErrors, WrongTypes) {
  ConfigError e = onlyError("broker:\n  port: eighty\n");
  EXPECT_EQ(e.toString(), "test.yaml:2: broker.port: expected an integer, got 'eighty'");

  e = onlyError("broker:\n  host:\n    name: x\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "broker.host");
  EXPECT_EQ(e.message, "expected a string, got a map");

  e = onlyError("broker: 5\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.key, "broker");

  e = onlyError("admin:\n  users: root\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "admin.users");

  e = onlyError("broker:\n  port:\n");  // no value
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.message, "expected an integer, got nothing");

  e = onlyError("binding:\n  products:\n    - share_free\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "binding.products[0]");
}

TEST(ConfigErrors, OutOfRange) {
  ConfigError e = onlyError("binding:\n  share:\n    qr_ttl: 45m\n");
  EXPECT_EQ(e.toString(),
            "test.yaml:3: binding.share.qr_ttl: must be between 1s and 30m (got 45m)");

  e = onlyError("binding:\n  share:\n    max_members: 0\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "binding.share.max_members");
  EXPECT_THAT(e.message, HasSubstr("must be between 1 and"));

  e = onlyError("broker:\n  keepalive: 2s\n");
  EXPECT_EQ(e.key, "broker.keepalive");
  EXPECT_THAT(e.message, HasSubstr("got 2s"));
}

TEST(ConfigErrors, BadEnumValues) {
  ConfigError e = onlyError("hub:\n  log_level: verbose\n");
  EXPECT_EQ(e.toString(),
            "test.yaml:2: hub.log_level: must be one of debug, info, warn, error (got 'verbose')");

  e = onlyError("binding:\n  products:\n    - {model: x, mode: grab}\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "binding.products[0].mode");

  e = onlyError("binding:\n  transport_defaults:\n    ble: whatever\n");
  EXPECT_EQ(e.key, "binding.transport_defaults.ble");
}

TEST(ConfigErrors, BadDuration) {
  const ConfigError e = onlyError("binding:\n  provision_ttl: 10 parsecs\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "binding.provision_ttl");
  EXPECT_THAT(e.message, HasSubstr("not a duration (got '10 parsecs')"));
}

TEST(ConfigErrors, BadIdentifiers) {
  ConfigError e = onlyError("admin:\n  users:\n    - alice\n    - bob/1\n");
  EXPECT_EQ(e.line, 4);
  EXPECT_EQ(e.key, "admin.users[1]");
  EXPECT_THAT(e.message, HasSubstr("'bob/1' is not a valid identifier"));

  e = onlyError("broker: {username: \"a#\"}\n");
  EXPECT_EQ(e.key, "broker.username");
  e = onlyError("admin: {users: [" + std::string(65, 'a') + "]}\n");
  EXPECT_EQ(e.key, "admin.users[0]");
}

TEST(ConfigErrors, MissingProductRuleFields) {
  const LoadResult r = loadString("binding:\n  products:\n    - {}\n", "test.yaml");
  ASSERT_THAT(r.errors, SizeIs(2));
  EXPECT_EQ(r.errors[0].key, "binding.products[0].model");
  EXPECT_EQ(r.errors[1].key, "binding.products[0].mode");
  EXPECT_EQ(r.errors[0].line, 3);
}

TEST(ConfigErrors, DuplicateKey) {
  const ConfigError e = onlyError("broker:\n  port: 1\n  port: 2\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.key, "broker.port");
  EXPECT_EQ(e.message, "duplicate key");
}

TEST(ConfigErrors, ReconnectMinAboveMax) {
  const ConfigError e = onlyError("broker:\n  reconnect_min: 1m\n  reconnect_max: 10s\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "broker.reconnect_min");
}

TEST(ConfigErrors, BadPluginEntries) {
  ConfigError e = onlyError("plugins:\n  Bad-Name: {}\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "plugins.Bad-Name");
  e = onlyError("plugins:\n  ble: 3\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.key, "plugins.ble");
}

TEST(ConfigErrors, AllErrorsAreCollectedInFileOrder) {
  const LoadResult r = loadString(R"(hub:
  log_level: loud
  colour: blue
broker:
  port: 70000
  keepalive: soon
binding:
  share:
    max_members: 0
)",
                                  "test.yaml");
  EXPECT_FALSE(r.config.has_value());
  ASSERT_THAT(r.errors, SizeIs(5)) << formatErrors(r.errors);
  std::vector<int> lines;
  for (const ConfigError& e : r.errors) lines.push_back(e.line);
  EXPECT_THAT(lines, ElementsAre(2, 3, 5, 6, 9));
  EXPECT_EQ(r.errors[1].key, "hub.colour");
  EXPECT_THAT(formatErrors(r.errors), HasSubstr("\ntest.yaml:5: broker.port: "));
}

TEST(ConfigErrors, BrokenYamlIsOneErrorWithItsLine) {
  const ConfigError e = onlyError("hub:\n  state_dir: /x\nbroker: [1, 2\nadmin: {}\n");
  EXPECT_GT(e.line, 2);
  EXPECT_EQ(e.file, "test.yaml");
  EXPECT_FALSE(e.message.empty());

  EXPECT_EQ(onlyError("hub:\n  a: b\n c: d\n").line, 3);
}

TEST(ConfigErrors, TopLevelMustBeAMap) {
  const ConfigError e = onlyError("- hub\n");
  EXPECT_EQ(e.line, 1);
}

TEST(ConfigErrors, UnreadableFileIsLineZero) {
  const LoadResult r = loadFile("/nonexistent/hearth.yaml");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].file, "/nonexistent/hearth.yaml");
  EXPECT_THAT(r.errors[0].toString(), HasSubstr("/nonexistent/hearth.yaml:0: cannot read"));

  TempDir dir;
  EXPECT_EQ(loadFile(dir.path().string()).errors.at(0).line, 0);
}

TEST(ConfigErrors, FileNameAppearsAsGiven) {
  TempDir dir;
  const std::string path = dir.write("hearth.yaml", "broker:\n  port: 70000\n");
  const LoadResult r = loadFile(path);
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].toString(),
            path + ":2: broker.port: must be between 1 and 65535 (got 70000)");
}

// ---------------------------------------------------------------------------------------------
// Durations

TEST(Durations, Parse) {
  EXPECT_EQ(parseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(parseDuration("30s"), milliseconds(30000));
  EXPECT_EQ(parseDuration("15m"), milliseconds(15 * 60000));
  EXPECT_EQ(parseDuration("24h"), milliseconds(24 * 3600000LL));
  EXPECT_EQ(parseDuration("7d"), milliseconds(7 * 86400000LL));
  EXPECT_EQ(parseDuration("45"), milliseconds(45000));
  EXPECT_EQ(parseDuration("0"), milliseconds(0));
  for (const char* bad : {"", "s", "10 parsecs", "-5s", "1.5h", "10 s", "5x", "ms10", "+3s",
                          "99999999999999999999d", "9223372036854775807d"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << bad;
  }
}

TEST(Durations, BareIntegerInTheFileIsSeconds) {
  EXPECT_EQ(loadOk("broker: {keepalive: 90}").keepalive, milliseconds(90000));
}

// ---------------------------------------------------------------------------------------------
// Overrides (hearthd --set)

TEST(Overrides, ReplaceFileValuesAndAddMissingOnes) {
  const HubConfig c = loadOk("broker:\n  port: 1884\n",
                             {"broker.port=1999", "hub.log_level=warn", "binding.share.qr_ttl=5m",
                              "admin.users=[a, b]", "plugins.ble.scan=true"});
  EXPECT_EQ(c.brokerPort, 1999);
  EXPECT_EQ(c.logLevel, "warn");
  EXPECT_EQ(c.qrTtl, milliseconds(300000));
  EXPECT_THAT(c.adminUsers, ElementsAre("a", "b"));
  ASSERT_EQ(c.pluginNodes.count("ble"), 1u);
  EXPECT_EQ(c.pluginNodes.at("ble")["scan"].as<std::string>(), "true");
}

TEST(Overrides, WholeSectionAsFlowMap) {
  const HubConfig c = loadOk("", {"binding.products=[{model: 'x*', mode: share_free}]"});
  ASSERT_THAT(c.products, SizeIs(1));
  EXPECT_EQ(c.products[0].mode, "share_free");
}

TEST(Overrides, EmptyValueClearsAString) {
  EXPECT_EQ(loadOk("", {"broker.password_file="}).brokerPasswordFile, "");
}

TEST(Overrides, UnknownKeyIsAnErrorOnLineZero) {
  const ConfigError e = onlyError("broker:\n  port: 1884\n", {"broker.prot=1"});
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.key, "broker.prot");
  EXPECT_THAT(e.message, HasSubstr("unknown key"));
  EXPECT_EQ(onlyError("", {"nosuch=1"}).key, "nosuch");
  EXPECT_EQ(onlyError("", {"broker..port=1"}).line, 0);
}

TEST(Overrides, BadValuesAreOnLineZero) {
  ConfigError e = onlyError("broker:\n  port: 1884\n", {"broker.port=70000"});
  EXPECT_EQ(e.toString(), "test.yaml:0: broker.port: must be between 1 and 65535 (got 70000)");

  e = onlyError("", {"binding.products=[{model: x, mode: share_free, extra: 1}]"});
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.key, "binding.products[0].extra");

  e = onlyError("", {"broker.port=[1"});  // not YAML
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.key, "broker.port");

  e = onlyError("", {"no equals sign"});
  EXPECT_EQ(e.line, 0);
}

TEST(Overrides, CannotReachBelowAScalar) {
  // The file's own error stands; the override has nowhere to go and says so.
  const LoadResult r = loadString("broker: 5\n", "test.yaml", {"broker.port=1"});
  ASSERT_THAT(r.errors, SizeIs(2)) << formatErrors(r.errors);
  EXPECT_EQ(r.errors[0].key, "broker");
  EXPECT_THAT(r.errors[0].message, HasSubstr("--set broker.port=1"));
  EXPECT_EQ(r.errors[1].key, "broker");
  EXPECT_THAT(r.errors[1].message, HasSubstr("expected a map"));
}

// ---------------------------------------------------------------------------------------------
// Plugin subtrees

const hearth_config_key kTestKeys[] = {
    {"interval", HEARTH_CFG_DURATION, "30s", 1, 3600, "how often"},
    {"retries", HEARTH_CFG_INT, "3", 0, 10, "attempts"},
    {"ratio", HEARTH_CFG_DOUBLE, "0.5", 0, 1, "a fraction"},
    {"name", HEARTH_CFG_STRING, "\"\"", 1, 0, "a label"},
    {"verbose", HEARTH_CFG_BOOL, "false", 1, 0, "chatty"},
    {"topics", HEARTH_CFG_JSON, "[]", 1, 0, "bridged topics"},
    {"url", HEARTH_CFG_STRING, nullptr, 1, 0, "required"},
};
constexpr size_t kTestKeyCount = sizeof(kTestKeys) / sizeof(kTestKeys[0]);

PluginConfigResult validate(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  const HubConfig config = loadOk(yaml, sets);
  return validatePluginConfig(config, "demo", kTestKeys, kTestKeyCount);
}

TEST(PluginConfig, DefaultsFillEveryDeclaredKey) {
  const PluginConfigResult r = validate("plugins:\n  demo:\n    url: mqtts://cloud\n");
  ASSERT_TRUE(r.errors.empty()) << formatErrors(r.errors);
  ASSERT_NE(r.view, nullptr);
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.view->getDuration("interval"), milliseconds(30000));
  EXPECT_EQ(r.view->getInt("retries"), 3);
  EXPECT_DOUBLE_EQ(r.view->getDouble("ratio"), 0.5);
  EXPECT_EQ(r.view->getString("name"), "");
  EXPECT_FALSE(r.view->getBool("verbose"));
  EXPECT_EQ(r.view->getJson("topics"), "[]");
  EXPECT_EQ(r.view->getString("url"), "mqtts://cloud");
  EXPECT_TRUE(r.view->getBool("enabled"));
}

TEST(PluginConfig, ReadsGivenValues) {
  const PluginConfigResult r = validate(R"(plugins:
  demo:
    enabled: false
    interval: 1500ms
    retries: 10
    ratio: 1
    name: kitchen hub
    verbose: yes
    url: x
)");
  ASSERT_TRUE(r.errors.empty()) << formatErrors(r.errors);
  EXPECT_FALSE(r.enabled);
  EXPECT_EQ(r.view->getDuration("interval"), milliseconds(1500));
  EXPECT_EQ(r.view->getInt("retries"), 10);
  EXPECT_DOUBLE_EQ(r.view->getDouble("ratio"), 1.0);
  EXPECT_EQ(r.view->getString("name"), "kitchen hub");
  EXPECT_TRUE(r.view->getBool("verbose"));
}

TEST(PluginConfig, JsonKeyBecomesJsonText) {
  const PluginConfigResult r = validate(R"(plugins:
  demo:
    url: x
    topics:
      - {topic: "a/#", qos: 1, retain: false, weight: 2.5, note: null}
      - ["quoted \"text\"", "42", no, 7]
)");
  ASSERT_TRUE(r.errors.empty()) << formatErrors(r.errors);
  EXPECT_EQ(r.view->getJson("topics"),
            R"([{"topic":"a/#","qos":1,"retain":false,"weight":2.5,"note":null},)"
            R"(["quoted \"text\"","42","no",7]])");
}

TEST(PluginConfig, JsonKeyRejectsScalars) {
  const PluginConfigResult r = validate("plugins:\n  demo:\n    url: x\n    topics: a/#\n");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].key, "plugins.demo.topics");
  EXPECT_EQ(r.view, nullptr);
}

TEST(PluginConfig, RequiredKeyMissing) {
  PluginConfigResult r = validate("hub: {}\nplugins:\n  demo:\n    retries: 1\n");
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].toString(), "test.yaml:3: plugins.demo.url: required key is missing");

  r = validate("");  // no subtree at all: still required
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].key, "plugins.demo.url");
}

TEST(PluginConfig, UnknownWrongAndOutOfRangeKeysNameTheirLines) {
  const PluginConfigResult r = validate(R"(plugins:
  demo:
    url: x
    intervall: 5s
    retries: many
    ratio: 2
    interval: 2h
)");
  ASSERT_THAT(r.errors, SizeIs(4)) << formatErrors(r.errors);
  EXPECT_EQ(r.errors[0].toString(),
            "test.yaml:4: plugins.demo.intervall: unknown key (known here: enabled, interval, "
            "retries, ratio, name, verbose, topics, url)");
  EXPECT_EQ(r.errors[1].toString(),
            "test.yaml:5: plugins.demo.retries: expected an integer, got 'many'");
  EXPECT_EQ(r.errors[2].toString(),
            "test.yaml:6: plugins.demo.ratio: must be between 0 and 1 (got 2)");
  EXPECT_EQ(r.errors[3].toString(),
            "test.yaml:7: plugins.demo.interval: must be between 1s and 1h (got 2h)");
  EXPECT_EQ(r.view, nullptr);
}

TEST(PluginConfig, OverridesReachPluginKeysOnLineZero) {
  const PluginConfigResult ok = validate("", {"plugins.demo.url=y", "plugins.demo.retries=4"});
  ASSERT_TRUE(ok.errors.empty()) << formatErrors(ok.errors);
  EXPECT_EQ(ok.view->getInt("retries"), 4);

  const PluginConfigResult bad =
      validate("plugins:\n  demo:\n    url: x\n", {"plugins.demo.retries=99"});
  ASSERT_THAT(bad.errors, SizeIs(1));
  EXPECT_EQ(bad.errors[0].line, 0);
  EXPECT_EQ(bad.errors[0].key, "plugins.demo.retries");
}

TEST(PluginConfig, UndeclaredKeyThrows) {
  const PluginConfigResult r = validate("plugins: {demo: {url: x}}");
  ASSERT_NE(r.view, nullptr);
  EXPECT_THROW(r.view->getInt("nope"), std::out_of_range);
  EXPECT_THROW(r.view->getInt("name"), std::out_of_range);  // declared as a string
}

TEST(PluginConfig, UnboundedWhenMinExceedsMax) {
  const hearth_config_key keys[] = {{"n", HEARTH_CFG_INT, "0", 1, 0, "any int"}};
  const HubConfig config = loadOk("plugins: {p: {n: -123456789}}");
  const PluginConfigResult r = validatePluginConfig(config, "p", keys, 1);
  ASSERT_TRUE(r.errors.empty()) << formatErrors(r.errors);
  EXPECT_EQ(r.view->getInt("n"), -123456789);
}

TEST(PluginConfig, BoundsReadTheWayTheyAreWritten) {
  const hearth_config_key keys[] = {{"big", HEARTH_CFG_INT, "1", 1, 1000000, "a count"},
                                    {"frac", HEARTH_CFG_DOUBLE, "1", 0.25, 2.5, "a factor"}};
  const HubConfig config = loadOk("plugins: {p: {big: 0, frac: 3}}");
  const PluginConfigResult r = validatePluginConfig(config, "p", keys, 2);
  ASSERT_THAT(r.errors, SizeIs(2)) << formatErrors(r.errors);
  EXPECT_THAT(r.errors[0].message, HasSubstr("must be between 1 and 1000000 (got 0)"));
  EXPECT_THAT(r.errors[1].message, HasSubstr("must be between 0.25 and 2.5 (got 3)"));
}

TEST(PluginConfig, BrokenDeclarationsAreReported) {
  const hearth_config_key keys[] = {
      {"enabled", HEARTH_CFG_BOOL, "true", 1, 0, "reserved"},
      {"n", HEARTH_CFG_INT, "ten", 1, 0, "bad default"},
  };
  const PluginConfigResult r = validatePluginConfig(loadOk(""), "p", keys, 2);
  ASSERT_THAT(r.errors, SizeIs(2)) << formatErrors(r.errors);
  EXPECT_EQ(r.errors[0].key, "plugins.p.enabled");
  EXPECT_EQ(r.errors[1].key, "plugins.p.n");
  EXPECT_THAT(r.errors[1].message, HasSubstr("default"));
}

// ---------------------------------------------------------------------------------------------
// Parsing always ends: yaml-cpp 0.7 (Debian 12) loops, allocating without bound, on a flow entry
// after a complete node outside a flow collection (upstream jbeder/yaml-cpp#1040, PRs
// #1318/#1319). libyaml's syntax pass (config/yaml_syntax.h) rejects them first.

// Runs loadString in a child with a time limit (and, outside ASan, whose allocator reserves
// terabytes of address space up front, a 512 MiB address-space limit), so a regression fails
// this test instead of eating the machine's memory. Returns the errors, one per line.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
constexpr bool kAddressSanitizer = __has_feature(address_sanitizer);
#else
constexpr bool kAddressSanitizer = false;
#endif

std::string loadBounded(const std::string& text, const std::vector<std::string>& overrides = {}) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (!kAddressSanitizer) {
      const rlimit limit{512u << 20, 512u << 20};
      setrlimit(RLIMIT_AS, &limit);
    }
    alarm(20);
    const LoadResult r = loadString(text, "test.yaml", overrides);
    const std::string out = r.config ? "config" : formatErrors(r.errors);
    if (write(fds[1], out.data(), out.size()) != static_cast<ssize_t>(out.size())) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "the load did not end: " + (WIFSIGNALED(status)
                                           ? std::string(strsignal(WTERMSIG(status)))
                                           : "exit status " + std::to_string(WEXITSTATUS(status)));
  }
  return out;
}

TEST(YamlSyntax, UpstreamLoopShapesAreErrorsWithTheirLine) {
  struct Case {
    const char* text;
    const char* expected;
  };
  const Case cases[] = {
      {",", "test.yaml:1: YAML syntax error at column 1: did not find expected node content"},
      {"--- ,", "test.yaml:1: YAML syntax error at column 5: did not find expected node content"},
      {"[a],",
       "test.yaml:1: YAML syntax error at column 4: did not find expected <document start>"},
      {"{a: b},", "test.yaml:1: YAML syntax error at column 7"},
      {"\"a\" ,", "test.yaml:1: YAML syntax error at column 5"},
      {"&a ,", "test.yaml:1: YAML syntax error at column 4"},
      {"a: |\n  x\n,\n", "test.yaml:3: YAML syntax error at column 1"},
      // jbeder/yaml-cpp#1040 as found through a parser playground.
      {"- !+(.,.)\n", "test.yaml:1: YAML syntax error"},
      // The falcosecurity/falco#3281 rule file behind PRs #1318/#1319: a plain scalar that
      // runs on over lines starting with a quote.
      {"- macro: exclude_commands\n"
       "  condition:\n"
       "    (user.uid = 1001 and proc.args in (\n"
       "\"/usr/local/bin/script_metrics.sh\",\n"
       "    \"-c rsync\"\n"
       "    )  )\n",
       "test.yaml:4: YAML syntax error"},
      // Found by config_fuzzer: libyaml reads an anchor and the plain scalar ":,", yaml-cpp an
      // anchor, a ':' and a ',' -- which its LoadAll loops on. yaml-cpp's own parser is asked
      // for at most a second document, so this ends too.
      {"&amax_members:,",
       "test.yaml:1: YAML syntax error at column 15: unexpected text after the document"},
      // The shape a user types: a stray comma after a flow list in a real section.
      {"hub:\n  log_level: info\nadmin:\n  users: [alice, bob],\n",
       "test.yaml:4: YAML syntax error"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(loadBounded(c.text), HasSubstr(c.expected)) << "input: " << c.text;
  }
}

TEST(YamlSyntax, OverrideValuesGetTheSamePass) {
  EXPECT_THAT(
      loadBounded("", {"admin.users=[a],"}),
      HasSubstr("test.yaml:0: admin.users: the value is not valid YAML: YAML syntax error"));
}

TEST(YamlSyntax, CommasInsideFlowCollectionsAndStringsStillWork) {
  const HubConfig c = loadOk(
      "admin:\n  users: [alice, bob]  # a, comment\nbinding:\n  products:\n"
      "    - {model: 'a,b*', mode: share_free}\n");
  EXPECT_THAT(c.adminUsers, ElementsAre("alice", "bob"));
  ASSERT_THAT(c.products, SizeIs(1));
  EXPECT_EQ(c.products[0].model, "a,b*");
}

TEST(YamlSyntax, BadEncodingNamesItsLine) {
  EXPECT_THAT(loadBounded("hub:\n  log_level: info\n  state_dir: /x\xff\n"),
              HasSubstr("test.yaml:3: YAML syntax error at column 16: invalid"));
}

TEST(YamlSyntax, AFileLargerThanAMebibyteIsRefusedUnread) {
  TempDir dir;
  const std::string path = dir.write("hearth.yaml", std::string(2 << 20, '#'));
  const LoadResult r = loadFile(path);
  ASSERT_THAT(r.errors, SizeIs(1));
  EXPECT_EQ(r.errors[0].toString(),
            path + ":0: the file is larger than 1 MiB; a hearth.yaml is a few KiB");
  // /dev/zero never ends; only the first MiB and a byte are read.
  const LoadResult zero = loadFile("/dev/zero");
  ASSERT_THAT(zero.errors, SizeIs(1));
  EXPECT_THAT(zero.errors[0].message, HasSubstr("larger than 1 MiB"));
}

}  // namespace
}  // namespace hearth::config
