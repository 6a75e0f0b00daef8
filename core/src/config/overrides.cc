#include "config/overrides.h"

#include <algorithm>
#include <sstream>

#include "config/schema.h"

namespace hearth::config::detail {

namespace {

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

// Core keys and sections are known; below plugins.<name> anything may be set because the
// plugin's declaration checks it later.
bool isOverridable(const std::string& key) {
  const SchemaIndex& ix = schemaIndex();
  if (ix.leaves.count(key) || ix.sections.count(key)) return true;
  return key.rfind("plugins.", 0) == 0 && key.size() > std::string("plugins.").size();
}

}  // namespace

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

}  // namespace hearth::config::detail
