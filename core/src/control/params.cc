#include "control/params.h"

#include "hearth/util/json_scan.h"

namespace hearth {

bool isJsonText(const std::string& text) { return json::isJson(text); }

}  // namespace hearth
