#include "control/envelope_scan.h"

#include "hearth/util/json_scan.h"

namespace hearth {
namespace {

// Whether a member name token is `name` (most names have no escapes: compared as they are).
bool isKey(const json::Token& key, std::string_view name) {
  if (!key.escaped) return key.text.substr(1, key.text.size() - 2) == name;
  return json::decodeString(key) == name;
}

}  // namespace

ScannedEnvelope scanEnvelope(const std::string& payload) {
  json::Scanner s(payload);
  if (!s.beginObject()) {
    // A top value that is JSON but no object (or an array, however it goes on) is reported as
    // such; anything else is not JSON.
    json::Scanner whole(payload);
    json::Token t;
    if (whole.take('[') || (json::Scanner(payload).value(t))) throw NotAnObject();
    throw MalformedJson(s.error());
  }
  ScannedEnvelope out;
  json::Token key, val, params;
  while (s.member(key, val)) {
    // The last of a repeated key counts, as in a parsed document.
    if (isKey(key, "id")) {
      out.idIsString = val.kind == json::Kind::kString;
      out.id = out.idIsString ? json::decodeString(val) : std::string();
    } else if (isKey(key, "params")) {
      out.hasParams = true;
      out.paramsIsObject = val.kind == json::Kind::kObject;
      params = val;
    }
  }
  if (!s.failed() && !s.atEnd()) s.fail("excess characters after the object");
  if (s.failed()) throw MalformedJson(s.error());
  if (out.paramsIsObject) out.paramsJson = json::compactText(params);
  return out;
}

}  // namespace hearth
