// The plugin keys of hearth.yaml: a plugin's subtree checked against the keys its descriptor
// declares (plus the core's own "enabled"), and the ConfigView the plugin reads them through.
#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JSONString.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace hearth::config {

using namespace detail;

namespace {

// YAML aliases let a few lines stand for an exponentially large tree ("billion laughs") or,
// through a collection that contains an alias of itself, an endless one; a JSON value is
// expanded to at most this many values and this depth and refused beyond.
constexpr size_t kMaxJsonValues = 100000;
constexpr int kMaxJsonDepth = 64;

// YAML -> Poco JSON values. Plain scalars are resolved by the YAML 1.2 core schema (numbers,
// true/false, null); only true/false count as booleans so that a list like [yes, no, NO]
// stays strings (the YAML 1.1 "Norway" surprise). Quoted scalars are always strings.
Poco::Dynamic::Var toJson(const YAML::Node& node, const std::string& key, ErrorSink& sink,
                          size_t& budget, int depth = 0) {
  if (budget == 0) return Poco::Dynamic::Var();
  if (--budget == 0 || depth > kMaxJsonDepth) {
    budget = 0;
    sink.add(lineOf(node), key,
             "too large: more than " + std::to_string(kMaxJsonValues) + " values or " +
                 std::to_string(kMaxJsonDepth) + " levels once YAML aliases are expanded");
    return Poco::Dynamic::Var();
  }
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Poco::JSON::Object::Ptr object = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
      for (const auto& item : node) {
        if (!item.first.IsScalar()) {
          sink.add(lineOf(item.first), key,
                   "JSON object keys must be strings, got " + describe(item.first));
          continue;
        }
        const std::string& name = item.first.Scalar();
        if (object->has(name)) {
          sink.add(lineOf(item.first), key + "." + name, "duplicate key");
          continue;
        }
        object->set(name, toJson(item.second, key + "." + name, sink, budget, depth + 1));
      }
      return object;
    }
    case YAML::NodeType::Sequence: {
      Poco::JSON::Array::Ptr array = new Poco::JSON::Array();
      for (size_t i = 0; i < node.size(); ++i) {
        array->add(toJson(node[i], key + "[" + std::to_string(i) + "]", sink, budget, depth + 1));
      }
      return array;
    }
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (node.Tag() == "!") return text;
      int64_t integer = 0;
      if (YAML::convert<int64_t>::decode(node, integer)) return integer;
      double real = 0;
      if (YAML::convert<double>::decode(node, real) && std::isfinite(real)) return real;
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
      return text;
    }
    default:
      return Poco::Dynamic::Var();  // stringifies as null
  }
}

class PluginConfigView final : public ConfigView {
 public:
  struct Value {
    int type = 0;
    bool boolean = false;
    int64_t integer = 0;
    double number = 0;
    std::string text;  // STRING, or the JSON text of a JSON key
    milliseconds duration{0};
  };

  void set(const std::string& key, Value value) { values_[key] = std::move(value); }

  bool getBool(std::string_view key) const override { return at(key, HEARTH_CFG_BOOL).boolean; }
  int64_t getInt(std::string_view key) const override { return at(key, HEARTH_CFG_INT).integer; }
  double getDouble(std::string_view key) const override {
    return at(key, HEARTH_CFG_DOUBLE).number;
  }
  std::string getString(std::string_view key) const override {
    return at(key, HEARTH_CFG_STRING).text;
  }
  milliseconds getDuration(std::string_view key) const override {
    return at(key, HEARTH_CFG_DURATION).duration;
  }
  std::string getJson(std::string_view key) const override { return at(key, HEARTH_CFG_JSON).text; }

 private:
  // Asking for an undeclared key, or with the wrong type, is a plugin bug (host.h contract).
  // PATH and ENUM keys are strings to getString.
  const Value& at(std::string_view key, int type) const {
    const auto it = values_.find(key);
    if (it == values_.end()) {
      throw std::out_of_range("config key '" + std::string(key) + "' is not declared");
    }
    const int stored = it->second.type == HEARTH_CFG_PATH || it->second.type == HEARTH_CFG_ENUM
                           ? HEARTH_CFG_STRING
                           : it->second.type;
    if (stored != type) {
      throw std::out_of_range("config key '" + std::string(key) +
                              "' is declared with another type");
    }
    return it->second;
  }

  std::map<std::string, Value, std::less<>> values_;
};

bool isKnownType(int type) { return type >= HEARTH_CFG_BOOL && type <= HEARTH_CFG_ENUM; }

// The values of an ENUM key's "a|b|c".
std::vector<std::string_view> choicesOf(const hearth_config_key& spec) {
  std::vector<std::string_view> out;
  std::string_view rest = spec.choices ? spec.choices : "";
  while (!rest.empty()) {
    const size_t bar = rest.find('|');
    out.push_back(rest.substr(0, bar));
    if (bar == std::string_view::npos) break;
    rest.remove_prefix(bar + 1);
  }
  return out;
}

// Reads one plugin key into `out`; false (with an error in `sink`) when it does not fit. A
// relative PATH is resolved against baseDir (the config file's directory), like the core's paths.
bool readPluginValue(const hearth_config_key& spec, const YAML::Node& node, int line,
                     const std::string& key, ErrorSink& sink, const std::filesystem::path& baseDir,
                     PluginConfigView::Value& out) {
  Reader read(sink);
  out.type = spec.type;
  switch (spec.type) {
    case HEARTH_CFG_BOOL: {
      const auto v = read.boolean(node, line, key);
      if (v) out.boolean = *v;
      return v.has_value();
    }
    case HEARTH_CFG_INT: {
      const auto v = read.integer(node, line, key, spec.min, spec.max);
      if (v) out.integer = *v;
      return v.has_value();
    }
    case HEARTH_CFG_DOUBLE: {
      const auto v = read.number(node, line, key, spec.min, spec.max);
      if (v) out.number = *v;
      return v.has_value();
    }
    case HEARTH_CFG_STRING: {
      const auto v = read.string(node, line, key, 1, 0);
      if (v) out.text = *v;
      return v.has_value();
    }
    case HEARTH_CFG_DURATION: {
      const auto v = read.duration(node, line, key, spec.min, spec.max);
      if (v) out.duration = *v;
      return v.has_value();
    }
    case HEARTH_CFG_PATH: {
      const auto v = read.string(node, line, key, 1, 0);
      if (!v) return false;
      const std::filesystem::path path(*v);
      out.text = path.is_absolute() ? *v : (baseDir / path).lexically_normal().string();
      return true;
    }
    case HEARTH_CFG_ENUM: {
      const auto v = read.oneOf(node, line, key, choicesOf(spec));
      if (v) out.text = *v;
      return v.has_value();
    }
    case HEARTH_CFG_JSON: {
      if (!node.IsMap() && !node.IsSequence()) {
        sink.add(line, key, "expected a list or a map, got " + describe(node));
        return false;
      }
      const size_t errorsBefore = sink.size();
      size_t budget = kMaxJsonValues;
      const Poco::Dynamic::Var json = toJson(node, key, sink, budget);
      if (sink.size() != errorsBefore) return false;
      std::ostringstream text;
      Poco::JSON::Stringifier::condense(json, text);
      out.text = text.str();
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

PluginConfigResult validatePluginConfig(const HubConfig& config, const std::string& pluginName,
                                        const hearth_config_key* keys, size_t keyCount) {
  ErrorSink sink(config.sourceFile);
  const std::string prefix = "plugins." + pluginName;
  std::error_code ec;
  const std::filesystem::path baseDir =
      std::filesystem::absolute(config.sourceFile, ec).parent_path();
  static const hearth_config_key kEnabled = {
      "enabled", HEARTH_CFG_BOOL, "true", 1, 0, "Whether the hub loads this plugin.", nullptr};

  // The declaration first: a broken one is a plugin bug, reported without a line.
  std::map<std::string, const hearth_config_key*> declared = {{"enabled", &kEnabled}};
  std::vector<const hearth_config_key*> order = {&kEnabled};
  for (size_t i = 0; i < keyCount; ++i) {
    const hearth_config_key& spec = keys[i];
    const std::string name = spec.name ? spec.name : "";
    std::string problem;
    if (name.empty()) {
      problem = "the plugin declares a key without a name";
    } else if (name == "enabled") {
      problem = "the plugin declares the reserved key 'enabled'";
    } else if (!isKnownType(spec.type)) {
      problem = "the plugin declares an unknown type " + std::to_string(spec.type);
    } else if (spec.type == HEARTH_CFG_ENUM && choicesOf(spec).empty()) {
      problem = "the plugin declares an ENUM key without choices";
    } else if (!declared.emplace(name, &spec).second) {
      problem = "the plugin declares this key twice";
    }
    if (!problem.empty()) {
      sink.add(0, joinKey(prefix, name), problem);
      continue;
    }
    order.push_back(&spec);
  }

  YAML::Node subtree;
  int subtreeLine = 0;
  if (const auto it = config.pluginNodes.find(pluginName); it != config.pluginNodes.end()) {
    subtree = it->second;
    const auto line = config.pluginNodeLines.find(pluginName);
    subtreeLine = line == config.pluginNodeLines.end() ? 0 : line->second;
  }

  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };
  std::map<std::string, Entry> found;
  if (subtree.IsDefined() && subtree.IsMap()) {
    for (const auto& item : subtree) {
      const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
      const std::string key = joinKey(prefix, name);
      if (!declared.count(name)) {
        std::vector<std::string> known;
        for (const hearth_config_key* spec : order) known.push_back(spec->name);
        sink.add(lineOf(item.first), key, "unknown key (known here: " + joinNames(known) + ")");
      } else if (!found.emplace(name, Entry{item.first, item.second}).second) {
        sink.add(lineOf(item.first), key, "duplicate key");
      }
    }
  } else if (subtree.IsDefined() && !subtree.IsNull()) {
    sink.add(subtreeLine, prefix,
             "expected a map of the plugin's settings, got " + describe(subtree));
  }

  auto view = std::make_unique<PluginConfigView>();
  for (const hearth_config_key* spec : order) {
    const std::string key = joinKey(prefix, spec->name);
    PluginConfigView::Value value;
    if (const auto it = found.find(spec->name); it != found.end()) {
      const Entry& entry = it->second;
      if (readPluginValue(*spec, entry.value, entryLine(entry.key, entry.value), key, sink,
                          baseDir, value)) {
        view->set(spec->name, std::move(value));
      }
      continue;
    }
    if (!spec->default_value) {
      sink.add(subtreeLine, key, "required key is missing");
      continue;
    }
    YAML::Node defaultNode;
    try {
      defaultNode = parseYaml(spec->default_value);
    } catch (const YAML::Exception& e) {
      sink.add(0, key, "the plugin's default is not valid YAML: " + e.msg);
      continue;
    }
    ErrorSink defaultErrors(config.sourceFile);
    if (readPluginValue(*spec, defaultNode, 0, key, defaultErrors, baseDir, value)) {
      view->set(spec->name, std::move(value));
    } else {
      for (ConfigError& e : defaultErrors.take()) {
        sink.add(0, e.key, "the plugin's default does not fit its declaration: " + e.message);
      }
    }
  }

  PluginConfigResult result;
  if (!sink.empty()) {
    result.errors = sink.take();
    return result;
  }
  result.enabled = view->getBool("enabled");
  result.view = std::move(view);
  return result;
}

}  // namespace hearth::config
