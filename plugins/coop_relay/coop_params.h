#pragma once
// Typed, validating access to a request's params. Every accessor throws InvalidParam naming
// the param, which the plugin answers with INVALID_REQUEST before anything changes.

#include <Poco/JSON/Object.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coop_model.h"

namespace hearth::coop {

class InvalidParam : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ParamReader {
 public:
  // paramsJson is the router's params object; anything else throws InvalidParam.
  explicit ParamReader(const std::string& paramsJson);

  // A required string matching [A-Za-z0-9._:-]{1,64}.
  std::string identifier(const std::string& name) const;
  // A required {appId, userId, clientIdentify} object of identifiers.
  Endpoint endpoint(const std::string& name) const;
  // An optional boolean (JSON true/false only: 0/1 or "true" are type errors).
  bool optionalBool(const std::string& name, bool fallback) const;
  // An optional array of identifiers, at most maxItems, duplicates removed, order kept.
  std::vector<std::string> identifierList(const std::string& name, size_t maxItems) const;
  // An optional JSON object, returned as text ("{}" when absent).
  std::string objectJson(const std::string& name) const;

 private:
  bool has(const std::string& name) const;
  Poco::JSON::Object::Ptr obj_;
};

}  // namespace hearth::coop
