#pragma once
// Typed access to a request's params for core handlers: the tree's one JSON helper
// (hearth/util/json.h), which plugins use as well. A missing or ill-typed param throws
// InvalidParam, which the router turns into INVALID_REQUEST naming the param.

#include <string>

#include "hearth/util/json.h"

namespace hearth {

using json::InvalidParam;
using json::Params;

// Compact JSON text of an object (what responses and events carry).
inline std::string toJson(const Poco::JSON::Object& o) { return json::text(o); }

// Whether text is one well-formed JSON value. Checks without building a document (one scan,
// hearth/util/json_scan.h, accepting what Poco's parser accepts): for JSON passed on as it is.
bool isJsonText(const std::string& text);

}  // namespace hearth
