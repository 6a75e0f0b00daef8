#include "config/yaml_load.h"

#include <yaml-cpp/eventhandler.h>

#include <optional>
#include <sstream>

#include "config/yaml_syntax.h"

namespace hearth::config {

namespace {

// Remembers where a document's first node is and whether it is an empty one.
class FirstNode : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> mark;
  bool empty = false;

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { first(m, true); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { first(m, false); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    first(m, false);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    first(m, false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    first(m, false);
  }
  void OnMapEnd() override {}

 private:
  void first(const YAML::Mark& m, bool isNull) {
    if (mark) return;
    mark = m;
    empty = isNull;
  }
};

YAML::ParserException errorAt(const YAML::Mark& mark, const std::string& message) {
  return YAML::ParserException(mark, message);
}

}  // namespace

YAML::Node loadYamlDocument(const std::string& text) {
  if (auto error = checkYamlSyntax(text)) {
    YAML::Mark mark;
    mark.line = error->line - 1;
    mark.column = error->column - 1;
    throw errorAt(mark, "YAML syntax error at column " + std::to_string(error->column) + ": " +
                            error->message);
  }
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  FirstNode first, second;
  if (!parser.HandleNextDocument(first)) return YAML::Node();
  if (parser.HandleNextDocument(second)) {
    const YAML::Mark at = second.mark.value_or(YAML::Mark());
    if (second.empty) {
      // What yaml-cpp 0.7 reports, without consuming it, where a ',' follows a complete node.
      throw errorAt(at, "YAML syntax error at column " + std::to_string(at.column + 1) +
                            ": unexpected text after the document (a ',' outside [...] or "
                            "{...}?)");
    }
    throw errorAt(at, "only one YAML document is allowed");
  }
  return YAML::Load(text);
}

}  // namespace hearth::config
