#pragma once
// JSON for code that uses POCO JSON: the core and every shipped plugin. One set of helpers for
// the whole tree — the text of a value, a parse that says what is wrong, and typed, validating
// access to a request's params — instead of one set per plugin.
//
// Optional for a plugin author: the SDK's own headers carry no JSON library (JSON crosses the
// plugin boundary as UTF-8 text), so a plugin that parses JSON some other way never includes
// this. Header-only, and nothing of it crosses the boundary, so it is not part of the ABI hash
// (cmake/HearthAbi.cmake leaves hearth/util/ out). Needs POCO JSON (libpoco-dev).

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "hearth/sdk/context.h"
#include "hearth/sdk/status.h"

namespace hearth::json {

using Object = Poco::JSON::Object;
using Array = Poco::JSON::Array;

// Compact JSON text (what responses, events and stored records carry).
inline std::string text(const Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}
inline std::string text(const Object::Ptr& o) { return text(*o); }
inline std::string text(const Array& a) {
  std::ostringstream out;
  a.stringify(out);
  return out.str();
}
inline std::string text(const Array::Ptr& a) { return text(*a); }

// A param (or a whole params text) that is missing, of the wrong type or out of range. Params
// throws it with a message naming the param; withParams() answers it as INVALID_REQUEST.
class InvalidParam : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses text that must be one JSON object; throws InvalidParam saying what is wrong.
inline Object::Ptr parseObject(const std::string& jsonText) {
  Poco::Dynamic::Var v;
  try {
    v = Poco::JSON::Parser().parse(jsonText);
  } catch (const Poco::Exception& e) {
    throw InvalidParam("not JSON: " + e.displayText());  // what() is only "JSON Exception"
  } catch (const std::exception& e) {
    throw InvalidParam(std::string("not JSON: ") + e.what());
  }
  if (v.type() != typeid(Object::Ptr)) throw InvalidParam("not a JSON object");
  return v.extract<Object::Ptr>();
}

// The same without a throw: the object, or INVALID_REQUEST saying what is wrong.
inline Result<Object::Ptr> tryParseObject(const std::string& jsonText) {
  try {
    return parseObject(jsonText);
  } catch (const InvalidParam& e) {
    return Status::error(ErrorCode::kInvalidRequest, e.what());
  }
}

// Typed access to a request's params. Every accessor checks type and range and throws
// InvalidParam naming the param; a present `null` counts as absent.
class Params {
 public:
  // paramsJson must be a JSON object (the router always hands one over).
  explicit Params(const std::string& paramsJson) : obj_(parseObject(paramsJson)) {}
  // An object parsed already (the core's router): no second parse.
  explicit Params(Object::Ptr obj) : obj_(std::move(obj)) {}

  bool has(const std::string& name) const { return obj_->has(name) && !obj_->isNull(name); }
  const Object::Ptr& object() const { return obj_; }

  // A required string of minLen..maxLen bytes.
  std::string string(const std::string& name, size_t maxLen = 256, size_t minLen = 1) const {
    return stringValue(required(name), name, maxLen, minLen);
  }
  std::optional<std::string> optionalString(const std::string& name, size_t maxLen = 256) const {
    if (!has(name)) return std::nullopt;
    return string(name, maxLen, 0);
  }
  // A required string matching [A-Za-z0-9._:-]{1,64}.
  std::string identifier(const std::string& name) const {
    return identifierValue(required(name), name);
  }
  std::optional<std::string> optionalIdentifier(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    return identifier(name);
  }
  // An optional integer (a JSON number without a fraction).
  std::optional<int64_t> optionalInt(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    Poco::Dynamic::Var v = obj_->get(name);
    if (!v.isInteger()) throw InvalidParam("\"" + name + "\" must be an integer");
    return v.convert<int64_t>();
  }
  // An optional boolean (JSON true/false only: 0/1 or "true" are type errors).
  bool optionalBool(const std::string& name, bool fallback) const {
    if (!has(name)) return fallback;
    Poco::Dynamic::Var v = obj_->get(name);
    if (v.type() != typeid(bool)) throw InvalidParam("\"" + name + "\" must be true or false");
    return v.extract<bool>();
  }
  // A required JSON object.
  Object::Ptr objectParam(const std::string& name) const {
    required(name);
    Object::Ptr o = obj_->getObject(name);
    if (!o) throw InvalidParam("\"" + name + "\" must be an object");
    return o;
  }
  // An optional JSON object as text ("{}" when absent).
  std::string objectJson(const std::string& name) const {
    return has(name) ? text(objectParam(name)) : "{}";
  }
  // An optional array of identifiers, at most maxItems, duplicates removed, order kept.
  std::vector<std::string> identifierList(const std::string& name, size_t maxItems) const {
    std::vector<std::string> out;
    if (!has(name)) return out;
    Array::Ptr a = obj_->getArray(name);
    if (!a) throw InvalidParam("\"" + name + "\" must be an array");
    if (a->size() > maxItems) {
      throw InvalidParam("\"" + name + "\" has more than " + std::to_string(maxItems) + " items");
    }
    for (size_t i = 0; i < a->size(); ++i) {
      std::string item = identifierValue(a->get(i), name + "[" + std::to_string(i) + "]");
      if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(std::move(item));
    }
    return out;
  }

  // Checks a value found elsewhere (a nested object's field) by the same rules; `what` names it.
  static std::string identifierValue(const Poco::Dynamic::Var& v, const std::string& what) {
    std::string s = stringValue(v, what, 64, 1);
    if (!isValidIdentifier(s)) {
      throw InvalidParam("\"" + what + "\" must match [A-Za-z0-9._:-]{1,64}");
    }
    return s;
  }
  static std::string stringValue(const Poco::Dynamic::Var& v, const std::string& what,
                                 size_t maxLen, size_t minLen) {
    if (!v.isString()) throw InvalidParam("\"" + what + "\" must be a string");
    std::string s = v.toString();
    if (s.size() < minLen || s.size() > maxLen) {
      throw InvalidParam("\"" + what + "\" must be " + std::to_string(minLen) + " to " +
                         std::to_string(maxLen) + " characters");
    }
    return s;
  }

 private:
  Poco::Dynamic::Var required(const std::string& name) const {
    if (!has(name)) throw InvalidParam("missing \"" + name + "\"");
    return obj_->get(name);
  }
  Object::Ptr obj_;
};

// For a plugin's request handler: runs body(params); an InvalidParam from it answers
// INVALID_REQUEST with its message. (A plugin's handler must not let an exception out: the host
// would mark the whole plugin failed, SPEC §11.) Anything else body throws goes on to the host.
template <typename Body>
void withParams(const Request& req, const Responder& res, Body&& body) {
  try {
    Params p(req.paramsJson);
    body(p);
  } catch (const InvalidParam& e) {
    res.error(ErrorCode::kInvalidRequest, e.what());
  }
}

}  // namespace hearth::json
