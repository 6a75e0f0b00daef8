#include "config/config.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JSONString.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "config/schema.h"
#include "config/yaml_load.h"
#include "hearth/status.h"

namespace hearth::config {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string ConfigError::toString() const {
  std::string out = file + ":" + std::to_string(line) + ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

std::string formatErrors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const ConfigError& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.toString();
  }
  return out;
}

std::optional<milliseconds> parseDuration(const std::string& text) {
  struct Unit {
    std::string_view suffix;
    int64_t ms;
  };
  static constexpr Unit kUnits[] = {{"", 1000},       {"ms", 1},          {"s", 1000},
                                    {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000}};
  int64_t count = 0;
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(text.data(), end, count);
  if (ec != std::errc() || count < 0) return std::nullopt;
  const std::string_view suffix(rest, end - rest);
  for (const Unit& unit : kUnits) {
    if (suffix != unit.suffix) continue;
    if (count > std::numeric_limits<int64_t>::max() / unit.ms) return std::nullopt;
    return milliseconds(count * unit.ms);
  }
  return std::nullopt;
}

namespace {

// A hearth.yaml is a few KiB; anything this large is not one (and is never read whole).
constexpr size_t kMaxFileBytes = 1 << 20;

// Every YAML text (the file, --set values, declared defaults) goes through loadYamlDocument,
// which always ends (config/yaml_load.h).
YAML::Node parseYaml(const std::string& text) { return loadYamlDocument(text); }

bool isPluginName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Nodes that came from an override (or were built in code) carry no mark, so errors about
// them report line 0: there is no line in the file to point at.
int lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

// The line to blame for a `key: value` entry. A missing value ("port:") is marked by yaml-cpp
// where the parser noticed it, often the next line, so the key's line is the better pointer.
int entryLine(const YAML::Node& key, const YAML::Node& value) {
  if (value.Mark().is_null()) return 0;
  return value.IsNull() ? lineOf(key) : lineOf(value);
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "nothing";
  }
}

// Whole numbers in plain form ("100000", not the shortest form "1e+05"), others shortest.
std::string formatNumber(double value) {
  char buf[400];
  bool whole = std::abs(value) < 1e15 && value == std::trunc(value);
  auto [end, ec] = whole ? std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(value);
}

// The largest unit that shows the value exactly, so bounds read the way a user writes them.
std::string formatDuration(int64_t ms) {
  static constexpr std::pair<int64_t, const char*> kUnits[] = {
      {86400 * 1000, "d"}, {3600 * 1000, "h"}, {60 * 1000, "m"}, {1000, "s"}};
  if (ms == 0) return "0s";
  for (const auto& [unitMs, suffix] : kUnits) {
    if (ms % unitMs == 0) return std::to_string(ms / unitMs) + suffix;
  }
  return std::to_string(ms) + "ms";
}

std::string joinKey(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

template <typename Range>
std::string joinNames(const Range& names) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

class ErrorSink {
 public:
  explicit ErrorSink(std::string file) : file_(std::move(file)) {}

  void add(int line, std::string key, std::string message) {
    errors_.push_back({file_, line, std::move(key), std::move(message)});
  }
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  bool hasErrorFor(const std::string& key) const {
    return std::any_of(errors_.begin(), errors_.end(),
                       [&](const ConfigError& e) { return e.key == key; });
  }
  // In file order: checks run per key, not per line, and a reader fixes a file top down.
  std::vector<ConfigError> take() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

// Typed readers shared by the core schema and plugin keys. Each reports why a node does not
// fit (at `line`, under `key`) and returns nullopt, so the caller just moves on to the next
// key and every error of the file is collected.
class Reader {
 public:
  explicit Reader(ErrorSink& sink) : sink_(sink) {}

  // A missing value reads as the empty string, so `password:` means "no password".
  std::optional<std::string> string(const YAML::Node& node, int line, const std::string& key,
                                    double minLength = 1, double maxLength = 0) {
    if (node.IsNull()) return checkLength("", line, key, minLength, maxLength);
    if (!node.IsScalar()) return wrongType(node, line, key, "a string");
    return checkLength(node.Scalar(), line, key, minLength, maxLength);
  }

  std::optional<std::string> identifier(const YAML::Node& node, int line, const std::string& key) {
    auto text = string(node, line, key);
    if (!text) return std::nullopt;
    if (!isValidIdentifier(*text)) {
      sink_.add(line, key, "'" + *text + "' is not a valid identifier ([A-Za-z0-9._:-]{1,64})");
      return std::nullopt;
    }
    return text;
  }

  std::optional<std::string> oneOf(const YAML::Node& node, int line, const std::string& key,
                                   const std::vector<std::string_view>& allowed) {
    auto text = string(node, line, key);
    if (!text) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *text) == allowed.end()) {
      sink_.add(line, key, "must be one of " + joinNames(allowed) + " (got '" + *text + "')");
      return std::nullopt;
    }
    return text;
  }

  std::optional<bool> boolean(const YAML::Node& node, int line, const std::string& key) {
    bool value = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
      return wrongType(node, line, key, "true or false");
    }
    return value;
  }

  std::optional<int64_t> integer(const YAML::Node& node, int line, const std::string& key,
                                 double min, double max) {
    int64_t value = 0;
    if (!node.IsScalar() || !YAML::convert<int64_t>::decode(node, value)) {
      return wrongType(node, line, key, "an integer");
    }
    if (min <= max && (static_cast<double>(value) < min || static_cast<double>(value) > max)) {
      sink_.add(line, key,
                "must be between " + formatNumber(min) + " and " + formatNumber(max) + " (got " +
                    node.Scalar() + ")");
      return std::nullopt;
    }
    return value;
  }

  std::optional<double> number(const YAML::Node& node, int line, const std::string& key, double min,
                               double max) {
    double value = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || !std::isfinite(value)) {
      return wrongType(node, line, key, "a number");
    }
    if (min <= max && (value < min || value > max)) {
      sink_.add(line, key,
                "must be between " + formatNumber(min) + " and " + formatNumber(max) + " (got " +
                    node.Scalar() + ")");
      return std::nullopt;
    }
    return value;
  }

  // min/max are seconds (as in the schema and hearth_config_key); min > max = unbounded.
  std::optional<milliseconds> duration(const YAML::Node& node, int line, const std::string& key,
                                       double minSeconds, double maxSeconds) {
    if (!node.IsScalar()) return wrongType(node, line, key, "a duration");
    const auto value = parseDuration(node.Scalar());
    if (!value) {
      sink_.add(line, key,
                "not a duration (got '" + node.Scalar() +
                    "'); use e.g. 500ms, 30s, 15m, 24h, 7d or whole seconds");
      return std::nullopt;
    }
    if (minSeconds <= maxSeconds) {
      const auto minMs = std::llround(minSeconds * 1000);
      const auto maxMs = std::llround(maxSeconds * 1000);
      if (value->count() < minMs || value->count() > maxMs) {
        sink_.add(line, key,
                  "must be between " + formatDuration(minMs) + " and " + formatDuration(maxMs) +
                      " (got " + node.Scalar() + ")");
        return std::nullopt;
      }
    }
    return value;
  }

 private:
  std::optional<std::string> checkLength(std::string text, int line, const std::string& key,
                                         double minLength, double maxLength) {
    if (minLength > maxLength) return text;
    const auto length = static_cast<double>(text.size());
    if (minLength >= 1 && text.empty()) {
      sink_.add(line, key, "must not be empty");
      return std::nullopt;
    }
    if (length < minLength || length > maxLength) {
      sink_.add(line, key,
                "must be between " + formatNumber(minLength) + " and " + formatNumber(maxLength) +
                    " characters long (got " + std::to_string(text.size()) + ")");
      return std::nullopt;
    }
    return text;
  }

  std::nullopt_t wrongType(const YAML::Node& node, int line, const std::string& key,
                           const std::string& expected) {
    sink_.add(line, key, "expected " + expected + ", got " + describe(node));
    return std::nullopt;
  }

  ErrorSink& sink_;
};

// ---------------------------------------------------------------------------------------------
// Overrides

// A copy of `node` without source marks, so that errors about override values say line 0
// instead of pointing at a line of the file they never were on.
YAML::Node withoutMarks(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: {
      YAML::Node out(node.Scalar());
      out.SetTag(node.Tag());  // keeps quoted ("!") and plain ("?") scalars apart
      return out;
    }
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      for (const YAML::Node& item : node) out.push_back(withoutMarks(item));
      return out;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      for (const auto& item : node) {
        out.force_insert(withoutMarks(item.first), withoutMarks(item.second));
      }
      return out;
    }
    default:
      return YAML::Node(YAML::NodeType::Null);
  }
}

struct SchemaIndex {
  std::map<std::string, const CoreKey*, std::less<>> leaves;
  std::set<std::string, std::less<>> sections;
  std::map<std::string, std::vector<std::string>, std::less<>> children;  // "" = top level
};

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

// Core keys and sections are known; below plugins.<name> anything may be set because the
// plugin's declaration checks it later.
bool isOverridable(const std::string& key) {
  const SchemaIndex& ix = schemaIndex();
  if (ix.leaves.count(key) || ix.sections.count(key)) return true;
  return key.rfind("plugins.", 0) == 0 && key.size() > std::string("plugins.").size();
}

void applyOverrides(YAML::Node& root, const std::vector<std::string>& overrides, ErrorSink& sink) {
  for (const std::string& item : overrides) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      sink.add(0, item, "an override must look like KEY=VALUE (--set)");
      continue;
    }
    const std::string key = item.substr(0, eq);
    std::vector<std::string> segments;
    std::stringstream parts(key);
    for (std::string segment; std::getline(parts, segment, '.');) segments.push_back(segment);
    const bool malformed =
        key.back() == '.' || std::any_of(segments.begin(), segments.end(),
                                         [](const std::string& s) { return s.empty(); });
    if (malformed || !isOverridable(key)) {
      sink.add(0, key, "unknown key (in --set " + item + ")");
      continue;
    }
    YAML::Node value;
    try {
      value = withoutMarks(parseYaml(item.substr(eq + 1)));
    } catch (const YAML::Exception& e) {
      sink.add(0, key, "the value is not valid YAML: " + e.msg + " (in --set " + item + ")");
      continue;
    }
    // yaml-cpp's Node::operator= writes through to the referenced node; reset() rebinds the
    // handle, which is what walking down needs.
    YAML::Node cursor;
    cursor.reset(root);
    bool placed = true;
    for (size_t i = 0; i + 1 < segments.size(); ++i) {
      YAML::Node child = cursor[segments[i]];
      if (!child.IsDefined() || child.IsNull()) {
        child = YAML::Node(YAML::NodeType::Map);
      } else if (!child.IsMap()) {
        std::string parent = segments[0];
        for (size_t j = 1; j <= i; ++j) parent += "." + segments[j];
        sink.add(lineOf(child), parent, "is not a map, so --set " + item + " cannot go below it");
        placed = false;
        break;
      }
      cursor.reset(child);
    }
    if (placed) cursor[segments.back()] = value;
  }
}

// ---------------------------------------------------------------------------------------------
// Core keys

class CoreLoader {
 public:
  CoreLoader(ErrorSink& sink, fs::path baseDir)
      : sink_(sink), read_(sink), baseDir_(std::move(baseDir)) {}

  // Checks the keys of one map against the schema and remembers where each core key is.
  void walk(const YAML::Node& map, const std::string& prefix) {
    std::set<std::string> seen;
    for (const auto& item : map) {
      const YAML::Node& keyNode = item.first;
      const YAML::Node& value = item.second;
      if (!keyNode.IsScalar()) {
        sink_.add(lineOf(keyNode), prefix, "keys must be plain names, got " + describe(keyNode));
        continue;
      }
      const std::string path = joinKey(prefix, keyNode.Scalar());
      if (!seen.insert(keyNode.Scalar()).second) {
        sink_.add(lineOf(keyNode), path, "duplicate key");
        continue;
      }
      const SchemaIndex& ix = schemaIndex();
      if (ix.leaves.count(path)) {
        found_[path] = {keyNode, value};
      } else if (ix.sections.count(path)) {
        if (value.IsMap()) {
          walk(value, path);
        } else if (!value.IsNull()) {  // an empty section ("hub:") means all defaults
          sink_.add(entryLine(keyNode, value), path, "expected a map, got " + describe(value));
        }
      } else {
        sink_.add(lineOf(keyNode), path,
                  "unknown key (known here: " + joinNames(ix.children.at(prefix)) + ")");
      }
    }
  }

  void fill(HubConfig& config) {
    for (const CoreKey& spec : coreSchema()) {
      const std::string key(spec.path);
      const auto it = found_.find(key);
      if (it != found_.end()) {
        const Entry& entry = it->second;
        fillKey(spec, key, entry.value, entryLine(entry.key, entry.value),
                !entry.value.Mark().is_null(), config);
      } else {
        fillKey(spec, key, parseYaml(std::string(spec.defaultYaml)), 0, false, config);
      }
    }
    checkAcrossKeys(config);
  }

 private:
  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };

  template <typename T>
  static T& field(HubConfig& config, const CoreKey& spec) {
    return config.*std::get<T HubConfig::*>(spec.field);
  }

  void fillKey(const CoreKey& spec, const std::string& key, const YAML::Node& value, int line,
               bool fromFile, HubConfig& config) {
    switch (spec.type) {
      case CoreKeyType::kString:
        if (auto v = read_.string(value, line, key, spec.min, spec.max)) {
          field<std::string>(config, spec) = *v;
        }
        break;
      case CoreKeyType::kPath:
        if (auto v = read_.string(value, line, key, spec.min, spec.max)) {
          field<std::string>(config, spec) = resolvePath(*v, fromFile);
        }
        break;
      case CoreKeyType::kIdentifier:
        if (auto v = read_.identifier(value, line, key)) field<std::string>(config, spec) = *v;
        break;
      case CoreKeyType::kEnum:
        if (auto v = read_.oneOf(value, line, key, spec.allowed)) {
          field<std::string>(config, spec) = *v;
        }
        break;
      case CoreKeyType::kInt:
        // The schema range keeps every core int within int.
        if (auto v = read_.integer(value, line, key, spec.min, spec.max)) {
          field<int>(config, spec) = static_cast<int>(*v);
        }
        break;
      case CoreKeyType::kDuration:
        if (auto v = read_.duration(value, line, key, spec.min, spec.max)) {
          field<milliseconds>(config, spec) = *v;
        }
        break;
      case CoreKeyType::kIdentifierList:
        field<std::vector<std::string>>(config, spec) = readIdentifiers(value, line, key);
        break;
      case CoreKeyType::kProductRules:
        field<std::vector<ProductRule>>(config, spec) = readProducts(value, line, key);
        break;
      case CoreKeyType::kPluginTrees:
        readPlugins(value, line, key, config);
        break;
    }
  }

  // Relative paths in the file are relative to the file, so a config works wherever the
  // daemon is started from; relative paths given with --set are relative to the caller's cwd.
  std::string resolvePath(const std::string& text, bool fromFile) {
    const fs::path path(text);
    if (text.empty() || path.is_absolute()) return text;
    std::error_code ec;
    const fs::path base = fromFile ? baseDir_ : fs::current_path(ec);
    return (base / path).lexically_normal().string();
  }

  std::vector<std::string> readIdentifiers(const YAML::Node& value, int line,
                                           const std::string& key) {
    std::vector<std::string> out;
    if (value.IsNull()) return out;
    if (!value.IsSequence()) {
      sink_.add(line, key, "expected a list of identifiers, got " + describe(value));
      return out;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const YAML::Node& item = value[i];
      if (auto id = read_.identifier(item, lineOf(item), key + "[" + std::to_string(i) + "]")) {
        out.push_back(*id);
      }
    }
    return out;
  }

  std::vector<ProductRule> readProducts(const YAML::Node& value, int line, const std::string& key) {
    std::vector<ProductRule> out;
    if (value.IsNull()) return out;
    if (!value.IsSequence()) {
      sink_.add(line, key, "expected a list of {model, mode} rules, got " + describe(value));
      return out;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const YAML::Node& rule = value[i];
      const std::string ruleKey = key + "[" + std::to_string(i) + "]";
      if (!rule.IsMap()) {
        sink_.add(lineOf(rule), ruleKey, "expected a map {model, mode}, got " + describe(rule));
        continue;
      }
      std::optional<std::string> model, mode;
      bool seenModel = false, seenMode = false;
      for (const auto& item : rule) {
        const std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
        const std::string itemKey = ruleKey + "." + name;
        const int itemLine = entryLine(item.first, item.second);
        if (name == "model" && !seenModel) {
          seenModel = true;
          model = read_.string(item.second, itemLine, itemKey, 1, 1024);
        } else if (name == "mode" && !seenMode) {
          seenMode = true;
          mode = read_.oneOf(item.second, itemLine, itemKey, bindingModes());
        } else if (name == "model" || name == "mode") {
          sink_.add(lineOf(item.first), itemKey, "duplicate key");
        } else {
          sink_.add(lineOf(item.first), itemKey, "unknown key (known here: model, mode)");
        }
      }
      if (!seenModel) sink_.add(lineOf(rule), ruleKey + ".model", "missing (a model glob)");
      if (!seenMode) sink_.add(lineOf(rule), ruleKey + ".mode", "missing (a binding mode)");
      if (model && mode) out.push_back({*model, *mode});
    }
    return out;
  }

  void readPlugins(const YAML::Node& value, int line, const std::string& key, HubConfig& config) {
    if (value.IsNull()) return;
    if (!value.IsMap()) {
      sink_.add(line, key, "expected a map of plugin name to settings, got " + describe(value));
      return;
    }
    for (const auto& item : value) {
      const YAML::Node& nameNode = item.first;
      const std::string name = nameNode.IsScalar() ? nameNode.Scalar() : "";
      const std::string pluginKey = joinKey(key, name);
      if (!isPluginName(name)) {
        sink_.add(lineOf(nameNode), pluginKey,
                  "not a plugin name ([a-z0-9_]+), got " + describe(nameNode));
        continue;
      }
      if (config.pluginNodes.count(name)) {
        sink_.add(lineOf(nameNode), pluginKey, "duplicate key");
        continue;
      }
      if (!item.second.IsNull() && !item.second.IsMap()) {
        sink_.add(entryLine(nameNode, item.second), pluginKey,
                  "expected a map of the plugin's settings, got " + describe(item.second));
        continue;
      }
      config.pluginNodes[name] = item.second;
      config.pluginNodeLines[name] = lineOf(nameNode);
    }
  }

  int lineOfKey(const std::string& key) const {
    const auto it = found_.find(key);
    return it == found_.end() ? 0 : entryLine(it->second.key, it->second.value);
  }

  void checkAcrossKeys(HubConfig& config) {
    if (config.adminUsers.empty()) config.adminUsers = {config.brokerUsername};
    // One source of the password: an inline one makes the file irrelevant.
    if (!config.brokerPassword.empty()) config.brokerPasswordFile.clear();

    const std::string minKey = "broker.reconnect_min", maxKey = "broker.reconnect_max";
    if (!sink_.hasErrorFor(minKey) && !sink_.hasErrorFor(maxKey) &&
        config.reconnectMin > config.reconnectMax) {
      const std::string key = found_.count(minKey) ? minKey : maxKey;
      sink_.add(lineOfKey(key), key,
                "reconnect_min (" + formatDuration(config.reconnectMin.count()) +
                    ") must not exceed reconnect_max (" +
                    formatDuration(config.reconnectMax.count()) + ")");
    }
  }

  ErrorSink& sink_;
  Reader read_;
  fs::path baseDir_;
  std::map<std::string, Entry> found_;
};

LoadResult loadText(const std::string& text, const std::string& file, const fs::path& baseDir,
                    const std::vector<std::string>& overrides) {
  ErrorSink sink(file);
  if (text.size() > kMaxFileBytes) {
    sink.add(0, "", "the file is larger than 1 MiB; a hearth.yaml is a few KiB");
    return {std::nullopt, sink.take()};
  }
  YAML::Node root;
  try {
    root = parseYaml(text);
  } catch (const YAML::Exception& e) {
    sink.add(e.mark.is_null() ? 0 : e.mark.line + 1, "", e.msg);
    return {std::nullopt, sink.take()};
  }
  if (root.IsNull() || !root.IsDefined()) {
    root = YAML::Node(YAML::NodeType::Map);  // an empty file means all defaults
  } else if (!root.IsMap()) {
    sink.add(lineOf(root), "", "the top level must be a map of sections, got " + describe(root));
    return {std::nullopt, sink.take()};
  }

  applyOverrides(root, overrides, sink);
  HubConfig config;
  config.sourceFile = file;
  CoreLoader loader(sink, baseDir);
  loader.walk(root, "");
  loader.fill(config);
  if (!sink.empty()) return {std::nullopt, sink.take()};
  return {std::move(config), {}};
}

fs::path directoryOf(const std::string& file) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(file, ec);
  return ec ? fs::path() : absolute.parent_path();
}

// ---------------------------------------------------------------------------------------------
// Plugin keys

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
// relative PATH is resolved against baseDir (the config file's directory).
bool readPluginValue(const hearth_config_key& spec, const YAML::Node& node, int line,
                     const std::string& key, ErrorSink& sink, const fs::path& baseDir,
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
      const fs::path path(*v);
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

LoadResult loadFile(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return {std::nullopt, {{path, 0, "", std::string("cannot read: ") + std::strerror(errno)}}};
  }
  if (fs::is_directory(path, ec)) {
    return {std::nullopt, {{path, 0, "", "cannot read: is a directory"}}};
  }
  // At most one byte more than a config may have, so /dev/zero or a huge file is refused
  // without reading it whole.
  std::string text(kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    return {std::nullopt, {{path, 0, "", std::string("cannot read: ") + std::strerror(errno)}}};
  }
  text.resize(static_cast<size_t>(in.gcount()));
  return loadText(text, path, directoryOf(path), overrides);
}

LoadResult loadString(const std::string& yamlText, const std::string& nameForErrors,
                      const std::vector<std::string>& overrides) {
  return loadText(yamlText, nameForErrors, directoryOf(nameForErrors), overrides);
}

PluginConfigResult validatePluginConfig(const HubConfig& config, const std::string& pluginName,
                                        const hearth_config_key* keys, size_t keyCount) {
  ErrorSink sink(config.sourceFile);
  const std::string prefix = "plugins." + pluginName;
  const fs::path baseDir = directoryOf(config.sourceFile);
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
