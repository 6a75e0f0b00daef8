#include "binding/user_id.h"

#include <mutex>
#include <unordered_set>

namespace hearth::binding {

namespace {

struct TextHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};

// The shared copies. A node set: a copy never moves once made.
struct Pool {
  std::mutex mutex;
  std::unordered_set<std::string, TextHash, std::equal_to<>> ids;
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: UserIds in static objects outlive any order
  return *p;
}

}  // namespace

const std::string& UserId::none() {
  static const std::string* e = intern("");
  return *e;
}

const std::string* UserId::intern(std::string_view id) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.ids.find(id);
  if (it == p.ids.end()) it = p.ids.emplace(id).first;
  return &*it;
}

std::optional<UserId> UserId::find(std::string_view id) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.ids.find(id);
  if (it == p.ids.end()) return std::nullopt;
  return UserId(&*it);
}

}  // namespace hearth::binding
