#pragma once
// SharedText: an immutable string that every holder of the same text shares, for the device
// fields that repeat across thousands of devices (transport, model, firmware). A holder is one
// pointer (8 bytes) instead of a std::string (32 bytes); with 10,000 devices and three such
// fields that is ~0.7 MB. Unlike UserId, a text is counted and goes with its last holder, so a
// device that reports ever new models (the LAN is not trusted) cannot grow the pool.
//
// A value like std::string: copies share, equality and order are the text's. Any thread may
// make, copy or drop one (the pool has a mutex).

#include <compare>
#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>

namespace hearth::binding {

class SharedText {
 public:
  SharedText() = default;
  SharedText(std::string_view text) : node_(acquire(text)) {}  // NOLINT: reads as a string
  SharedText(const std::string& text) : SharedText(std::string_view(text)) {}  // NOLINT
  SharedText(const char* text) : SharedText(std::string_view(text)) {}         // NOLINT
  SharedText(const SharedText& o) : node_(o.node_) { retain(node_); }
  SharedText(SharedText&& o) noexcept : node_(o.node_) { o.node_ = nullptr; }
  SharedText& operator=(SharedText o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~SharedText() { release(node_); }

  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT: reads as the string
  bool empty() const { return node_ == nullptr; }
  size_t size() const { return str().size(); }
  const char* c_str() const { return str().c_str(); }

  friend bool operator==(const SharedText& a, const SharedText& b) { return a.node_ == b.node_; }
  friend bool operator==(const SharedText& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const SharedText& a, std::string_view b) { return a.str() == b; }
  friend bool operator==(const SharedText& a, const char* b) { return a.str() == b; }
  friend std::strong_ordering operator<=>(const SharedText& a, const SharedText& b) {
    return a.str() <=> b.str();
  }
  friend std::ostream& operator<<(std::ostream& os, const SharedText& t) { return os << t.str(); }
  friend std::string operator+(const std::string& a, const SharedText& b) { return a + b.str(); }
  friend std::string operator+(const char* a, const SharedText& b) { return a + b.str(); }

  // How many distinct texts are held in the process (for tests).
  static size_t distinct();

  struct Node;  // the shared text and its holder count (shared_text.cc)

 private:
  static Node* acquire(std::string_view text);  // nullptr for ""
  static void retain(Node* n);
  static void release(Node* n);
  Node* node_ = nullptr;
};

}  // namespace hearth::binding
