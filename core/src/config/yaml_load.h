#pragma once
// Loading YAML text so that it always ends, in bounded time and memory, with a line to blame.
//
// yaml-cpp 0.7 (Debian 12) loops without bound in YAML::LoadAll on a flow entry ',' after a
// complete node outside a flow collection ("[a],", "--- ,", "&a:,"; upstream
// jbeder/yaml-cpp#1040, fixed in 0.8 by PRs #1318/#1319): its parser reports an empty document
// there without consuming the ',', so LoadAll collects empty documents until memory runs out.
// Two passes keep that out:
//   1. libyaml's parser (config/yaml_syntax.h) checks the syntax first and names the line and
//      the problem for almost every malformed file;
//   2. yaml-cpp never runs LoadAll: the first document is YAML::Load (which stops after one), and
//      yaml-cpp's own parser is asked for at most one more document, so where yaml-cpp reads
//      what libyaml accepted differently, the stray text is an error at its line, not a loop.

#include <yaml-cpp/yaml.h>

#include <string>

namespace hearth::config {

// The one document of `text` (a null node for an empty text). Throws YAML::ParserException,
// whose mark is the place to blame, for a syntax error or for more than one document.
YAML::Node loadYamlDocument(const std::string& text);

}  // namespace hearth::config
