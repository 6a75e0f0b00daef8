#pragma once
// Typed access to a request's params for core handlers. A missing or ill-typed param throws
// InvalidParam, which the router turns into INVALID_REQUEST naming the param.

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "hearth/status.h"

namespace hearth {

// Compact JSON text of an object (what responses and events carry).
inline std::string toJson(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

class InvalidParam : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Whether text is one well-formed JSON value. Checks without building a document (Poco's
// parser with a handler that keeps nothing): for JSON that is passed on as it is.
bool isJsonText(const std::string& text);

class Params {
 public:
  explicit Params(const std::string& json)
      : obj_(Poco::JSON::Parser().parse(json).extract<Poco::JSON::Object::Ptr>()) {}
  // The router's parse of the request (core methods): no second parse.
  explicit Params(Poco::JSON::Object::Ptr obj) : obj_(std::move(obj)) {}

  std::string identifier(const std::string& name) const {
    std::string v = string(name, 64);
    if (!isValidIdentifier(v)) {
      throw InvalidParam("\"" + name + "\" must match [A-Za-z0-9._:-]{1,64}");
    }
    return v;
  }
  std::optional<std::string> optionalIdentifier(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    return identifier(name);
  }
  std::string string(const std::string& name, size_t maxLen = 256, size_t minLen = 1) const {
    if (!has(name)) throw InvalidParam("missing \"" + name + "\"");
    Poco::Dynamic::Var v = obj_->get(name);
    if (!v.isString()) throw InvalidParam("\"" + name + "\" must be a string");
    std::string s = v.toString();
    if (s.size() < minLen || s.size() > maxLen) {
      throw InvalidParam("\"" + name + "\" must be " + std::to_string(minLen) + " to " +
                         std::to_string(maxLen) + " characters");
    }
    return s;
  }
  std::optional<std::string> optionalString(const std::string& name, size_t maxLen = 256) const {
    if (!has(name)) return std::nullopt;
    return string(name, maxLen, 0);
  }
  std::optional<int64_t> optionalInt(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    Poco::Dynamic::Var v = obj_->get(name);
    if (!v.isInteger()) throw InvalidParam("\"" + name + "\" must be an integer");
    return v.convert<int64_t>();
  }
  bool has(const std::string& name) const { return obj_->has(name) && !obj_->isNull(name); }
  const Poco::JSON::Object::Ptr& object() const { return obj_; }

 private:
  Poco::JSON::Object::Ptr obj_;
};

}  // namespace hearth
