#pragma once
// A user id held by every binding: one shared copy of each distinct id, so a binding stores a
// pointer (8 bytes) instead of a std::string (32 bytes, and a heap block of its own for an id of
// more than 15 characters, such as a UUID). With 100,000 bindings a binding is 24 bytes instead
// of 48: 2.4 MB less resident memory for short ids, more for UUIDs (docs/performance.md).
//
// A value like any other: copies are pointer copies, equality is pointer equality (two UserIds
// with the same text share the one copy), order is the text's order. The copies live for the
// process (a few dozen bytes per distinct id ever held); any thread may make one.

#include <compare>
#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace hearth::binding {

class UserId {
 public:
  UserId() : s_(&none()) {}
  UserId(std::string_view id) : s_(intern(id)) {}  // NOLINT: implicit, like the string it was
  UserId(const std::string& id) : UserId(std::string_view(id)) {}  // NOLINT
  UserId(const char* id) : UserId(std::string_view(id)) {}         // NOLINT

  // The UserId of `id` if one was ever made, else nullopt: a lookup that adds nothing.
  static std::optional<UserId> find(std::string_view id);

  const std::string& str() const { return *s_; }
  operator const std::string&() const { return *s_; }  // NOLINT: reads as the string
  bool empty() const { return s_->empty(); }
  const char* c_str() const { return s_->c_str(); }

  friend bool operator==(const UserId& a, const UserId& b) { return a.s_ == b.s_; }
  friend bool operator==(const UserId& a, const std::string& b) { return *a.s_ == b; }
  friend bool operator==(const UserId& a, const char* b) { return *a.s_ == b; }
  friend std::strong_ordering operator<=>(const UserId& a, const UserId& b) {
    return *a.s_ <=> *b.s_;
  }
  friend std::ostream& operator<<(std::ostream& os, const UserId& id) { return os << *id.s_; }

  // Hashes the shared copy's address (ids are compared by it).
  struct Hash {
    size_t operator()(const UserId& id) const { return std::hash<const void*>()(id.s_); }
  };

 private:
  explicit UserId(const std::string* shared) : s_(shared) {}
  static const std::string& none();
  static const std::string* intern(std::string_view id);
  const std::string* s_;
};

}  // namespace hearth::binding
