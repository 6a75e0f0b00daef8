#pragma once
// Keyed deadlines, earliest first: at most one deadline per key, moved by set() and dropped by
// erase(), and the due ones taken in (deadline, key) order. What a component with many records
// that each expire (commands, requests, timers) needs to arm one timer for the earliest of them
// instead of one per record. Header-only, standard library only, so the core and plugins share
// it. Not thread-safe; use it from one thread (the hub loop).
//
//   DeadlineQueue<std::string> q;
//   q.set("c:42", nowMs + 30000);
//   if (!q.empty()) armTimerAt(q.earliest());
//   for (const std::string& key : q.due(nowMs)) expire(key);  // then erase() what ended

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace hearth::util {

template <typename Key, typename Time = int64_t>
class DeadlineQueue {
 public:
  // Sets key's deadline, replacing the one it had.
  void set(const Key& key, Time at) {
    auto [it, inserted] = byKey_.try_emplace(key, at);
    if (!inserted) {
      if (it->second == at) return;
      byTime_.erase({it->second, key});
      it->second = at;
    }
    byTime_.emplace(at, key);
  }

  // Removes key's deadline; false if it had none.
  bool erase(const Key& key) {
    const auto it = byKey_.find(key);
    if (it == byKey_.end()) return false;
    byTime_.erase({it->second, key});
    byKey_.erase(it);
    return true;
  }

  bool contains(const Key& key) const { return byKey_.count(key) != 0; }
  // key's deadline; `fallback` when it has none.
  Time deadlineOf(const Key& key, Time fallback = Time{}) const {
    const auto it = byKey_.find(key);
    return it == byKey_.end() ? fallback : it->second;
  }

  bool empty() const { return byTime_.empty(); }
  size_t size() const { return byTime_.size(); }
  void clear() {
    byTime_.clear();
    byKey_.clear();
  }

  // The earliest deadline and its key. The queue must not be empty.
  Time earliest() const { return byTime_.begin()->first; }
  const Key& earliestKey() const { return byTime_.begin()->second; }

  // The keys whose deadline is at or before `now`, in (deadline, key) order. They stay queued:
  // the caller erases (or moves) what it handled.
  std::vector<Key> due(Time now) const {
    std::vector<Key> out;
    for (auto it = byTime_.begin(); it != byTime_.end() && !(now < it->first); ++it) {
      out.push_back(it->second);
    }
    return out;
  }

  // Removes the earliest deadline and returns its key. The queue must not be empty.
  Key pop() {
    auto node = byTime_.extract(byTime_.begin());
    Key key = std::move(node.value().second);
    byKey_.erase(key);
    return key;
  }

 private:
  std::set<std::pair<Time, Key>> byTime_;
  std::map<Key, Time> byKey_;
};

}  // namespace hearth::util
