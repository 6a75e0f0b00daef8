#pragma once
// hearthd --set KEY=VALUE: each override is placed into the parsed file before the schema check,
// so a value given on the command line is checked exactly like one in the file (its errors say
// line 0: it was on no line of the file). Internal to core/src/config.

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/yaml_reader.h"

namespace hearth::config::detail {

// Applies "dotted.key=yaml-value" pairs to `root` in order; a malformed or unknown key, a value
// that is not YAML, or a path through a non-map is an error in `sink` and that override is
// skipped.
void applyOverrides(YAML::Node& root, const std::vector<std::string>& overrides, ErrorSink& sink);

}  // namespace hearth::config::detail
