// The core keys of hearth.yaml: read the file (at most 1 MiB), apply the --set overrides, walk
// it against the schema (config/schema.cc) and fill HubConfig, collecting every error.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "config/config.h"
#include "config/overrides.h"
#include "config/schema.h"
#include "config/yaml_reader.h"

namespace hearth::config {

namespace fs = std::filesystem;
using namespace detail;

namespace {

// A hearth.yaml is a few KiB; anything this large is not one (and is never read whole).
constexpr size_t kMaxFileBytes = 1 << 20;

bool isPluginName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

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

}  // namespace hearth::config
