#pragma once
// SeqIndex: the outbox's index, sequence number → encoded size, for sequence numbers that only
// ever grow (records are appended with fresh ones and removed anywhere: acknowledged, evicted,
// coalesced). A sorted array instead of a tree: 16 bytes a record instead of a 64-byte tree
// node (with a 10,000-message outbox, 160 KB instead of 640 KB).
//
// A removed record is marked, not moved: removals at the front (the usual case, records are
// acknowledged in order) advance a start offset, and the array is compacted once at least half
// of it is marked, so every operation is amortised O(1) or O(log n).

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace hearth::cloud_bridge {

class SeqIndex {
 public:
  struct Entry {
    uint64_t seq;
    uint64_t size;
  };

  // Adds a record; `seq` must be greater than every seq added before (else false, nothing
  // added).
  bool append(uint64_t seq, uint64_t size) {
    if (!all_.empty() && seq <= all_.back().seq) return false;
    all_.push_back({seq, size});
    ++live_;
    return true;
  }

  // The record's size, if it is held.
  std::optional<uint64_t> find(uint64_t seq) const {
    const Entry* e = locate(seq);
    if (e == nullptr) return std::nullopt;
    return e->size;
  }
  bool contains(uint64_t seq) const { return locate(seq) != nullptr; }

  // Removes a record; returns its size, or nullopt if it was not held.
  std::optional<uint64_t> erase(uint64_t seq) {
    Entry* e = const_cast<Entry*>(locate(seq));
    if (e == nullptr) return std::nullopt;
    uint64_t size = e->size;
    e->size = kRemoved;
    --live_;
    while (start_ < all_.size() && all_[start_].size == kRemoved) ++start_;
    while (!all_.empty() && all_.back().size == kRemoved) all_.pop_back();
    if (start_ >= all_.size()) {
      all_.clear();
      start_ = 0;
    } else if (all_.size() - live_ > all_.size() / 2 && all_.size() > 64) {
      compact();
    }
    return size;
  }

  void clear() {
    all_.clear();
    all_.shrink_to_fit();
    start_ = 0;
    live_ = 0;
  }

  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }
  // The oldest and newest records (the index must not be empty).
  const Entry& front() const { return all_[start_]; }
  const Entry& back() const { return all_.back(); }

  // The held records in seq order: f(const Entry&) returns false to stop.
  template <typename F>
  void forEach(F&& f) const {
    for (size_t i = start_; i < all_.size(); ++i) {
      if (all_[i].size != kRemoved && !f(all_[i])) return;
    }
  }

 private:
  static constexpr uint64_t kRemoved = std::numeric_limits<uint64_t>::max();

  const Entry* locate(uint64_t seq) const {
    auto it = std::lower_bound(all_.begin() + static_cast<std::ptrdiff_t>(start_), all_.end(), seq,
                               [](const Entry& e, uint64_t s) { return e.seq < s; });
    if (it == all_.end() || it->seq != seq || it->size == kRemoved) return nullptr;
    return &*it;
  }

  void compact() {
    std::vector<Entry> kept;
    kept.reserve(live_);
    for (size_t i = start_; i < all_.size(); ++i) {
      if (all_[i].size != kRemoved) kept.push_back(all_[i]);
    }
    all_.swap(kept);  // and the room of the removed records goes with the old array
    start_ = 0;
  }

  std::vector<Entry> all_;  // by seq; entries before start_ and marked ones are removed
  size_t start_ = 0;
  size_t live_ = 0;
};

}  // namespace hearth::cloud_bridge
