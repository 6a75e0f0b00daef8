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
#include <unordered_map>
#include <utility>
#include <vector>

#include "hearth/sdk/context.h"
#include "hearth/sdk/status.h"
#include "hearth/util/json_scan.h"

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
// InvalidParam naming the param; a present `null` counts as absent, and of a repeated name the
// last counts (as in a parsed document).
//
// The text is read once, without building a document (json_scan.h): each top-level member is
// kept as its place in the text, a scalar decoded only when asked for, an object or array
// parsed (objectParam) or read as Params (objectParams) only when asked for, and objectJson
// hands a member's text on as it came (without the whitespace between its tokens).
class Params {
 public:
  // paramsJson must be a JSON object (the router always hands one over).
  explicit Params(std::string paramsJson) : text_(std::move(paramsJson)) { scan(); }
  // An object parsed already: read from its text.
  explicit Params(Object::Ptr obj) : text_(text(obj)), dom_(std::move(obj)) { scan(); }

  bool has(const std::string& name) const {
    const Member* m = find(name);
    return m && m->kind != Kind::kNull;
  }
  // The whole params as a document (parsed the first time it is asked for).
  const Object::Ptr& object() const {
    if (!dom_) dom_ = parseObject(text_);
    return dom_;
  }

  // A required string of minLen..maxLen bytes.
  std::string string(const std::string& name, size_t maxLen = 256, size_t minLen = 1) const {
    return checkedString(required(name), name, maxLen, minLen);
  }
  std::optional<std::string> optionalString(const std::string& name, size_t maxLen = 256) const {
    if (!has(name)) return std::nullopt;
    return string(name, maxLen, 0);
  }
  // A required string matching [A-Za-z0-9._:-]{1,64}.
  std::string identifier(const std::string& name) const {
    return checkedIdentifier(required(name), name);
  }
  std::optional<std::string> optionalIdentifier(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    return identifier(name);
  }
  // An optional integer (a JSON number without a fraction).
  std::optional<int64_t> optionalInt(const std::string& name) const {
    if (!has(name)) return std::nullopt;
    Token t = token(*find(name));
    if (t.kind != Kind::kNumber || !t.integer) {
      throw InvalidParam("\"" + what(name) + "\" must be an integer");
    }
    Poco::Int64 v = 0;
    if (!Poco::NumberParser::tryParse64(std::string(t.text), v)) {
      throw InvalidParam("\"" + what(name) + "\" is out of range");
    }
    return v;
  }
  // An optional boolean (JSON true/false only: 0/1 or "true" are type errors).
  bool optionalBool(const std::string& name, bool fallback) const {
    if (!has(name)) return fallback;
    Token t = token(*find(name));
    if (t.kind != Kind::kBool) throw InvalidParam("\"" + what(name) + "\" must be true or false");
    return t.text[0] == 't';
  }
  // A required JSON object, parsed.
  Object::Ptr objectParam(const std::string& name) const {
    return parseObject(std::string(objectToken(name).text));
  }
  // A required JSON object, read as Params: its members' errors name them "name.member".
  Params objectParams(const std::string& name) const {
    Params p(std::string(objectToken(name).text));
    p.prefix_ = what(name) + ".";
    return p;
  }
  // An optional JSON object as text ("{}" when absent).
  std::string objectJson(const std::string& name) const {
    return has(name) ? compactText(objectToken(name)) : "{}";
  }
  // An optional array of identifiers, at most maxItems, duplicates removed, order kept.
  std::vector<std::string> identifierList(const std::string& name, size_t maxItems) const {
    std::vector<std::string> out;
    if (!has(name)) return out;
    Token list = token(*find(name));
    if (list.kind != Kind::kArray) throw InvalidParam("\"" + what(name) + "\" must be an array");
    std::vector<Token> items;
    Scanner s(list.text.substr(1));  // after '[': the scan saw it is a well-formed array
    Token item;
    while (!s.take(']')) {
      if (items.size() == maxItems) {
        throw InvalidParam("\"" + what(name) + "\" has more than " + std::to_string(maxItems) +
                           " items");
      }
      if (!items.empty()) s.take(',');
      s.value(item);
      items.push_back(item);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      std::string entry = checkedIdentifier(items[i], name + "[" + std::to_string(i) + "]");
      if (std::find(out.begin(), out.end(), entry) == out.end()) out.push_back(std::move(entry));
    }
    return out;
  }

  // Checks a value found elsewhere (a nested object's field) by the same rules; `what` names it.
  static std::string identifierValue(const Poco::Dynamic::Var& v, const std::string& what) {
    return identifierChecked(stringValue(v, what, 64, 1), what);
  }
  static std::string stringValue(const Poco::Dynamic::Var& v, const std::string& what,
                                 size_t maxLen, size_t minLen) {
    if (!v.isString()) throw InvalidParam("\"" + what + "\" must be a string");
    return lengthChecked(v.toString(), what, maxLen, minLen);
  }

 private:
  struct Member {
    std::string key;
    Kind kind;
    bool spaced, escaped, integer;
    uint32_t begin, size;  // the value's place in text_
  };

  void scan() {
    Scanner s(text_);
    Token key, val;
    if (!s.beginObject()) {
      if (isJson(text_)) throw InvalidParam("not a JSON object");
      throw InvalidParam("not JSON: " + s.error());
    }
    members_.reserve(8);
    // Repeated names: looked for among the members so far, one by one for the few a request
    // has; past kLinear through an index, so that a hostile 64 KiB object of 9,000 names costs
    // what a parsed document does (one by one, that was 40 million comparisons: 100 ms).
    constexpr size_t kLinear = 16;
    std::unordered_map<std::string, size_t> index;
    while (s.member(key, val)) {
      Member m{decodeString(key), val.kind, val.spaced, val.escaped, val.integer,
               static_cast<uint32_t>(val.text.data() - text_.data()),
               static_cast<uint32_t>(val.text.size())};
      Member* seen = nullptr;
      if (members_.size() <= kLinear) {
        auto it = std::find_if(members_.begin(), members_.end(),
                               [&](const Member& x) { return x.key == m.key; });
        if (it != members_.end()) seen = &*it;
      } else {
        if (index.empty()) {
          for (size_t i = 0; i < members_.size(); ++i) index.emplace(members_[i].key, i);
        }
        auto [at, added] = index.emplace(m.key, members_.size());
        if (!added) seen = &members_[at->second];
      }
      if (seen != nullptr) {
        *seen = std::move(m);  // the last of a repeated name counts
      } else {
        members_.push_back(std::move(m));
      }
    }
    if (s.failed() || !s.atEnd()) {
      if (!s.failed()) s.fail("excess characters after the object");
      throw InvalidParam("not JSON: " + s.error());
    }
  }
  const Member* find(const std::string& name) const {
    for (const Member& m : members_) {
      if (m.key == name) return &m;
    }
    return nullptr;
  }
  Token token(const Member& m) const {
    Token t;
    t.kind = m.kind;
    t.text = std::string_view(text_).substr(m.begin, m.size);
    t.spaced = m.spaced;
    t.escaped = m.escaped;
    t.integer = m.integer;
    return t;
  }
  std::string what(const std::string& name) const { return prefix_ + name; }
  Token required(const std::string& name) const {
    if (!has(name)) throw InvalidParam("missing \"" + what(name) + "\"");
    return token(*find(name));
  }
  Token objectToken(const std::string& name) const {
    Token t = required(name);
    if (t.kind != Kind::kObject) throw InvalidParam("\"" + what(name) + "\" must be an object");
    return t;
  }
  std::string checkedString(const Token& t, const std::string& name, size_t maxLen,
                            size_t minLen) const {
    if (t.kind != Kind::kString) throw InvalidParam("\"" + what(name) + "\" must be a string");
    return lengthChecked(decodeString(t), what(name), maxLen, minLen);
  }
  std::string checkedIdentifier(const Token& t, const std::string& name) const {
    return identifierChecked(checkedString(t, name, 64, 1), what(name));
  }
  static std::string lengthChecked(std::string s, const std::string& what, size_t maxLen,
                                   size_t minLen) {
    if (s.size() < minLen || s.size() > maxLen) {
      throw InvalidParam("\"" + what + "\" must be " + std::to_string(minLen) + " to " +
                         std::to_string(maxLen) + " characters");
    }
    return s;
  }
  static std::string identifierChecked(std::string s, const std::string& what) {
    if (!isValidIdentifier(s)) {
      throw InvalidParam("\"" + what + "\" must match [A-Za-z0-9._:-]{1,64}");
    }
    return s;
  }

  std::string text_;
  std::vector<Member> members_;
  std::string prefix_;  // "to." for the Params of member "to" (objectParams)
  mutable Object::Ptr dom_;
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
