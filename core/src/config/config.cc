#include "config/config.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace hearth::config {

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

}  // namespace hearth::config
