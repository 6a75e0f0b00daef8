#include "config/yaml_syntax.h"

#include <yaml.h>

#include <algorithm>
#include <memory>

namespace hearth::config {

std::optional<YamlSyntaxError> checkYamlSyntax(std::string_view text) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    return YamlSyntaxError{0, 0, "out of memory while checking the YAML syntax"};
  }
  std::unique_ptr<yaml_parser_t, void (*)(yaml_parser_t*)> guard(&parser, yaml_parser_delete);
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  for (;;) {
    yaml_event_t event;
    if (!yaml_parser_parse(&parser, &event)) {
      YamlSyntaxError error;
      if (parser.error == YAML_READER_ERROR) {
        // Bad encoding: libyaml gives the byte offset only.
        const std::string_view before = text.substr(0, parser.problem_offset);
        const size_t lastNewline = before.rfind('\n');
        error.line = static_cast<int>(std::count(before.begin(), before.end(), '\n')) + 1;
        error.column =
            static_cast<int>(lastNewline == std::string_view::npos ? before.size() + 1
                                                                   : before.size() - lastNewline);
      } else {
        error.line = static_cast<int>(parser.problem_mark.line) + 1;
        error.column = static_cast<int>(parser.problem_mark.column) + 1;
      }
      error.message = parser.problem ? parser.problem : "malformed YAML";
      if (parser.context) error.message += std::string(" (") + parser.context + ")";
      return error;
    }
    const bool end = event.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&event);
    if (end) return std::nullopt;
  }
}

}  // namespace hearth::config
