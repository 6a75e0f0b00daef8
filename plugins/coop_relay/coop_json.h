#pragma once
// Small POCO JSON helpers shared by the coop_relay sources.

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sstream>
#include <stdexcept>
#include <string>

#include "coop_model.h"

namespace hearth::coop {

inline std::string toText(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

inline std::string toText(const Poco::JSON::Object::Ptr& o) { return toText(*o); }

// Parses text that must be a JSON object; throws std::runtime_error otherwise.
inline Poco::JSON::Object::Ptr parseObject(const std::string& text) {
  Poco::Dynamic::Var v = Poco::JSON::Parser().parse(text);
  if (v.type() != typeid(Poco::JSON::Object::Ptr)) {
    throw std::runtime_error("not a JSON object");
  }
  return v.extract<Poco::JSON::Object::Ptr>();
}

// The seed's address shape: {"appId","userId","clientIdentify"}.
inline Poco::JSON::Object::Ptr endpointJson(const Endpoint& e) {
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object;
  o->set("appId", e.appId);
  o->set("userId", e.userId);
  o->set("clientIdentify", e.clientId);
  return o;
}

}  // namespace hearth::coop
