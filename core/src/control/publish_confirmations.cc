#include "control/publish_confirmations.h"

#include <utility>

namespace hearth {

struct PublishConfirmations::Group {
  size_t left = 0;
  bool failed = false;
  bool cancelled = false;
  Done done;
};

PublishConfirmations::GroupPtr PublishConfirmations::open(size_t copies, Done done) {
  auto g = std::make_shared<Group>();
  g->left = copies;
  g->done = std::move(done);
  return g;
}

void PublishConfirmations::cancel(const GroupPtr& group) { group->cancelled = true; }

void PublishConfirmations::sent(const GroupPtr& group, bool handed, int mid) {
  if (!handed) {
    settle(group, false);
    return;
  }
  byMid_[mid] = group;
}

void PublishConfirmations::acknowledged(int mid, int reasonCode) {
  auto it = byMid_.find(mid);
  if (it == byMid_.end()) return;  // not one that waits (or its connection was given up)
  GroupPtr g = std::move(it->second);
  byMid_.erase(it);
  settle(g, reasonCode < 0x80);
}

void PublishConfirmations::connectionLost() {
  auto all = std::move(byMid_);
  byMid_.clear();
  for (auto& [mid, g] : all) settle(g, false);
}

void PublishConfirmations::settle(const GroupPtr& group, bool ok) {
  if (!ok) group->failed = true;
  if (group->left == 0 || --group->left > 0) return;
  post_([group] {
    if (group->cancelled) return;
    group->done(group->failed ? Status::error(ErrorCode::kUnavailable,
                                              "the broker did not acknowledge the event")
                              : Status::ok());
  });
}

}  // namespace hearth
