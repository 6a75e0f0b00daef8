#include "binding/shared_text.h"

#include <mutex>
#include <unordered_map>

namespace hearth::binding {

struct SharedText::Node {
  std::string text;
  size_t holders = 0;
};

namespace {

struct Pool {
  std::mutex mutex;
  // By the node's own text: one node per distinct text, never moved while held.
  std::unordered_map<std::string_view, SharedText::Node*> nodes;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: texts in static objects outlive any order
  return *p;
}

}  // namespace

const std::string& SharedText::str() const {
  static const std::string kEmpty;
  return node_ == nullptr ? kEmpty : node_->text;
}

SharedText::Node* SharedText::acquire(std::string_view text) {
  if (text.empty()) return nullptr;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.nodes.find(text);
  if (it == p.nodes.end()) {
    Node* n = new Node{std::string(text), 0};
    it = p.nodes.emplace(std::string_view(n->text), n).first;
  }
  ++it->second->holders;
  return it->second;
}

void SharedText::retain(Node* n) {
  if (n == nullptr) return;
  std::lock_guard<std::mutex> lock(pool().mutex);
  ++n->holders;
}

void SharedText::release(Node* n) {
  if (n == nullptr) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  if (--n->holders > 0) return;
  p.nodes.erase(std::string_view(n->text));
  delete n;
}

size_t SharedText::distinct() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  return p.nodes.size();
}

}  // namespace hearth::binding
