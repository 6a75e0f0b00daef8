#include "coop_params.h"

#include <Poco/JSON/Array.h>

#include <algorithm>

#include "coop_json.h"
#include "hearth/status.h"

namespace hearth::coop {
namespace {

const char* kIdentifierRule = "[A-Za-z0-9._:-]{1,64}";

std::string identifierValue(const Poco::Dynamic::Var& v, const std::string& what) {
  if (!v.isString()) throw InvalidParam("\"" + what + "\" must be a string");
  std::string s = v.toString();
  if (!isValidIdentifier(s)) {
    throw InvalidParam("\"" + what + "\" must match " + kIdentifierRule);
  }
  return s;
}

}  // namespace

ParamReader::ParamReader(const std::string& paramsJson) {
  try {
    obj_ = parseObject(paramsJson);
  } catch (const std::exception& e) {
    throw InvalidParam(std::string("params must be a JSON object: ") + e.what());
  }
}

bool ParamReader::has(const std::string& name) const {
  return obj_->has(name) && !obj_->isNull(name);
}

std::string ParamReader::identifier(const std::string& name) const {
  if (!has(name)) throw InvalidParam("missing \"" + name + "\"");
  return identifierValue(obj_->get(name), name);
}

Endpoint ParamReader::endpoint(const std::string& name) const {
  if (!has(name)) throw InvalidParam("missing \"" + name + "\"");
  Poco::JSON::Object::Ptr o = obj_->getObject(name);
  if (!o) throw InvalidParam("\"" + name + "\" must be an object");
  Endpoint e;
  const char* fields[] = {"appId", "userId", "clientIdentify"};
  std::string* targets[] = {&e.appId, &e.userId, &e.clientId};
  for (size_t i = 0; i < 3; ++i) {
    std::string what = name + "." + fields[i];
    if (!o->has(fields[i]) || o->isNull(fields[i])) throw InvalidParam("missing \"" + what + "\"");
    *targets[i] = identifierValue(o->get(fields[i]), what);
  }
  return e;
}

bool ParamReader::optionalBool(const std::string& name, bool fallback) const {
  if (!has(name)) return fallback;
  Poco::Dynamic::Var v = obj_->get(name);
  if (v.type() != typeid(bool)) throw InvalidParam("\"" + name + "\" must be true or false");
  return v.extract<bool>();
}

std::vector<std::string> ParamReader::identifierList(const std::string& name,
                                                     size_t maxItems) const {
  std::vector<std::string> out;
  if (!has(name)) return out;
  Poco::JSON::Array::Ptr a = obj_->getArray(name);
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

std::string ParamReader::objectJson(const std::string& name) const {
  if (!has(name)) return "{}";
  Poco::JSON::Object::Ptr o = obj_->getObject(name);
  if (!o) throw InvalidParam("\"" + name + "\" must be an object");
  return toText(o);
}

}  // namespace hearth::coop
