#pragma once
// A syntax pass over YAML text with libyaml (Debian's libyaml-0-2) before yaml-cpp builds a
// tree from it: libyaml's parser is a state machine without recursion that rejects malformed
// text with a line, a column and a reason, and never loops. The first of the two passes that
// make loading always end (config/yaml_load.h); docs/reliability.md says why these and not a
// child process.

#include <optional>
#include <string>
#include <string_view>

namespace hearth::config {

struct YamlSyntaxError {
  int line = 0;         // 1-based
  int column = 0;       // 1-based
  std::string message;  // libyaml's problem and its context, e.g. "did not find expected
                        // <document start> (while parsing a block node)"
};

// Runs libyaml's event parser over the whole stream. nullopt when the text is well-formed YAML.
std::optional<YamlSyntaxError> checkYamlSyntax(std::string_view text);

}  // namespace hearth::config
