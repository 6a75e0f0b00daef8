#pragma once
// The pieces every part of the hearth.yaml loader shares: YAML text to a node, where a node is
// in the file, how a value is shown in a message, the sink that collects every error of a file,
// and the typed readers (string, identifier, enum, bool, integer, number, duration) that the
// core keys (config/core_loader.cc) and the plugin keys (config/plugin_config.cc) go through.
// Internal to core/src/config.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "hearth/status.h"

namespace hearth::config::detail {

using std::chrono::milliseconds;

// Every YAML text (the file, --set values, declared defaults) goes through loadYamlDocument,
// which always ends (config/yaml_load.h).
YAML::Node parseYaml(const std::string& text);

// Nodes that came from an override (or were built in code) carry no mark, so errors about
// them report line 0: there is no line in the file to point at.
int lineOf(const YAML::Node& node);

// The line to blame for a `key: value` entry. A missing value ("port:") is marked by yaml-cpp
// where the parser noticed it, often the next line, so the key's line is the better pointer.
int entryLine(const YAML::Node& key, const YAML::Node& value);

std::string describe(const YAML::Node& node);

// Whole numbers in plain form ("100000", not the shortest form "1e+05"), others shortest.
std::string formatNumber(double value);

// The largest unit that shows the value exactly, so bounds read the way a user writes them.
std::string formatDuration(int64_t ms);

std::string joinKey(const std::string& prefix, const std::string& name);

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

}  // namespace hearth::config::detail
