#include "config/yaml_reader.h"

#include <charconv>

#include "config/yaml_load.h"

namespace hearth::config::detail {

// Every YAML text goes through loadYamlDocument, which always ends (config/yaml_load.h).
YAML::Node parseYaml(const std::string& text) { return loadYamlDocument(text); }

int lineOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

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

std::string formatNumber(double value) {
  char buf[400];
  bool whole = std::abs(value) < 1e15 && value == std::trunc(value);
  auto [end, ec] = whole ? std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(value);
}

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

}  // namespace hearth::config::detail
