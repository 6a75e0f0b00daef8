// Fuzzes hearth.yaml loading (config::loadString): YAML parsing, the core schema, --set
// overrides and the validation of every plugins.<name> subtree against declared keys of every
// type. Lines at the top starting with "#set " are --set overrides ("#set broker.port=1").
//
// Every input is loaded, commas and all: yaml-cpp 0.7's flow-entry loop (jbeder/yaml-cpp#1040)
// is kept out by the libyaml syntax pass (config/yaml_syntax.h), and the corpus holds its shapes
// as regress-yaml-cpp-*. A load that does not end fails on libFuzzer's -timeout and
// -rss_limit_mb.
//
// Checked: nothing throws; a load either yields a config and no errors or errors and no
// config, every error names the file; a valid plugin subtree yields a view in which every
// declared key can be read (the ConfigView contract).

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.h"

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "config_fuzzer: %s\n", what.c_str());
  std::abort();
}

// One key of every type, with and without defaults and bounds, as plugins declare them.
const hearth_config_key kKeys[] = {
    {"flag", HEARTH_CFG_BOOL, "false", 1, 0, "a bool"},
    {"count", HEARTH_CFG_INT, "5", 1, 100, "a bounded int"},
    {"free_int", HEARTH_CFG_INT, "0", 1, 0, "an unbounded int"},
    {"ratio", HEARTH_CFG_DOUBLE, "0.5", 0, 1, "a bounded double"},
    {"name", HEARTH_CFG_STRING, "x", 1, 0, "a string"},
    {"ttl", HEARTH_CFG_DURATION, "30s", 1, 86400, "a bounded duration"},
    {"rules", HEARTH_CFG_JSON, "[]", 1, 0, "a list or map as JSON"},
    {"needed", HEARTH_CFG_STRING, nullptr, 1, 0, "a required string"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  while (text.rfind("#set ", 0) == 0 && overrides.size() < 8) {
    size_t end = text.find('\n');
    overrides.push_back(text.substr(5, end == std::string::npos ? end : end - 5));
    text = end == std::string::npos ? "" : text.substr(end + 1);
  }

  auto loaded = hearth::config::loadString(text, "/etc/hearth/fuzz.yaml", overrides);
  if (loaded.config.has_value() == !loaded.errors.empty()) {
    fail("a load must give a config or errors, not both or neither");
  }
  for (const auto& e : loaded.errors) {
    if (e.file != "/etc/hearth/fuzz.yaml" || e.line < 0)
      fail("error without its file: " + e.toString());
    if (e.toString().empty()) fail("an empty error");
  }
  (void)hearth::config::formatErrors(loaded.errors);
  if (!loaded.config) return 0;

  for (const auto& [name, node] : loaded.config->pluginNodes) {
    auto r = hearth::config::validatePluginConfig(*loaded.config, name, kKeys,
                                                  sizeof(kKeys) / sizeof(kKeys[0]));
    if ((r.view != nullptr) == !r.errors.empty()) fail("plugin " + name + ": view and errors");
    if (!r.view) continue;
    const hearth::ConfigView& v = *r.view;
    (void)v.getBool("flag");
    int64_t count = v.getInt("count");
    if (count < 1 || count > 100) fail("count out of its declared range");
    (void)v.getInt("free_int");
    double ratio = v.getDouble("ratio");
    if (!(ratio >= 0 && ratio <= 1)) fail("ratio out of its declared range");
    (void)v.getString("name");
    auto ttl = v.getDuration("ttl");
    if (ttl.count() < 1000 || ttl.count() > 86400 * 1000) fail("ttl out of its declared range");
    (void)v.getJson("rules");
    (void)v.getString("needed");
  }
  return 0;
}
