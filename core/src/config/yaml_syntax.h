#pragma once
// A syntax pass over YAML text with libyaml (Debian's libyaml-0-2) before yaml-cpp builds a
// tree from it. yaml-cpp 0.7, the version Debian 12 ships, never returns on some malformed
// inputs — a flow entry ',' after a complete node outside a flow collection ("[a],", "--- ,",
// upstream jbeder/yaml-cpp#1040, fixed in 0.8 by PRs #1318/#1319) — and allocates until the
// process dies. libyaml's parser is a state machine without recursion that rejects those
// inputs with a line and a reason, so only text it accepts reaches yaml-cpp.
// docs/reliability.md ("Config parsing that always ends") says why this and not a child
// process.

#include <optional>
#include <string>
#include <string_view>

namespace hearth::config {

struct YamlSyntaxError {
  int line = 0;  // 1-based
  int column = 0;  // 1-based
  std::string message;  // libyaml's problem and its context, e.g. "did not find expected
                        // <document start> (while parsing a block node)"
};

// Runs libyaml's event parser over the whole stream. nullopt when the text is well-formed YAML.
std::optional<YamlSyntaxError> checkYamlSyntax(std::string_view text);

}  // namespace hearth::config
