#pragma once
// A request envelope read for the router: `{"id": …, "params": {…}}` scanned once
// (hearth/util/json_scan.h), with no document built. The id is kept and the params object's
// text is handed on as it came, without the whitespace between its tokens: for a plugin's
// method that is Request::paramsJson, for a core method the text json::Params reads.

#include <stdexcept>
#include <string>

namespace hearth {

struct ScannedEnvelope {
  bool idIsString = false;  // "id" present and a string (the last one, if repeated)
  std::string id;
  bool hasParams = false;
  bool paramsIsObject = false;  // "params" present and an object (the last one, if repeated)
  std::string paramsJson;       // that object as compact JSON text
};

// Throws MalformedJson for text that is not JSON (saying what is wrong and where), and
// NotAnObject for JSON whose top value is not an object.
struct NotAnObject : std::runtime_error {
  NotAnObject() : std::runtime_error("the request must be a JSON object") {}
};
struct MalformedJson : std::runtime_error {
  using std::runtime_error::runtime_error;
};
ScannedEnvelope scanEnvelope(const std::string& payload);

}  // namespace hearth
