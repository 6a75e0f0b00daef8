#pragma once
// A request envelope read for a plugin's method: `{"id": …, "params": {…}}` tokenised once by
// Poco's parser, with no document built. The id is kept and the params object is written out
// again as compact JSON text as it is read, which is what crosses the plugin boundary
// (Request::paramsJson). The core's own methods take the parsed document instead (router.cc).

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

// Throws std::exception (Poco's JSONException) for text that is not JSON, and
// NotAnObject for JSON whose top value is not an object.
struct NotAnObject : std::runtime_error {
  NotAnObject() : std::runtime_error("the request must be a JSON object") {}
};
ScannedEnvelope scanEnvelope(const std::string& payload);

}  // namespace hearth
