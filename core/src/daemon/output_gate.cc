#include "daemon/output_gate.h"

namespace hearth {

std::optional<bool> OutputGate::send(const std::string& terminal, Publish publish) {
  uint64_t committed = db_.committedGen();
  // The commit this message may depend on: the unit's own, or anything outside a unit.
  bool dependsOnUnsynced =
      mark_ >= 0 ? committed > static_cast<uint64_t>(mark_) && !db_.allSynced() : !db_.allSynced();
  auto queued = heldPerTerminal_.find(terminal);
  if (!dependsOnUnsynced && queued == heldPerTerminal_.end()) return publish();
  // Behind the terminal's earlier messages (whose gen is at most this one) or its own commit.
  uint64_t gen = dependsOnUnsynced ? committed : held_.back().gen;
  held_.push_back({gen, terminal, std::move(publish)});
  ++heldPerTerminal_[terminal];
  ++heldTotal_;
  if (!waiting_) {
    waiting_ = true;
    db_.whenSynced(held_.front().gen, [this](bool) { release(); });
  }
  return std::nullopt;
}

void OutputGate::release() {
  waiting_ = false;
  // Released messages are not sent again through the rule: they were decided already.
  while (!held_.empty() && held_.front().gen <= db_.syncedGen()) {
    Held h = std::move(held_.front());
    held_.pop_front();
    auto it = heldPerTerminal_.find(h.terminal);
    if (it != heldPerTerminal_.end() && --it->second == 0) heldPerTerminal_.erase(it);
    h.publish();
  }
  if (!held_.empty()) {
    waiting_ = true;
    db_.whenSynced(held_.front().gen, [this](bool) { release(); });
  }
}

void OutputGate::releaseAll() {
  while (!held_.empty()) {
    Held h = std::move(held_.front());
    held_.pop_front();
    h.publish();
  }
  heldPerTerminal_.clear();
}

}  // namespace hearth
