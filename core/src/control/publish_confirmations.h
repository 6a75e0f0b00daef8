#pragma once
// Which of the hub's QoS 1 publishes the broker has acknowledged, for senders that must know
// (hearth_host_api::send_event_confirmed). A group is one event sent to some terminals: it is
// confirmed once the broker has sent a PUBACK for each copy, and fails if a copy could not be
// handed to the broker, the broker refused it (a reason code of 0x80 or more), or the connection
// went before its PUBACK (a clean session: nothing is resent for a lost connection). The answer
// is posted, so it never runs inside the call that sent the event. Hub loop only.

#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_map>

#include "hearth/status.h"

namespace hearth {

class PublishConfirmations {
 public:
  using Done = std::function<void(Status)>;
  using Post = std::function<void(std::function<void()>)>;
  struct Group;
  using GroupPtr = std::shared_ptr<Group>;

  explicit PublishConfirmations(Post post) : post_(std::move(post)) {}

  // A group of `copies` publishes; done runs once all of them are settled.
  GroupPtr open(size_t copies, Done done);
  // The group's answer is never given (the event went to nobody after all).
  static void cancel(const GroupPtr& group);
  // One copy handed to the broker under `mid` (handed = true), or not handed (false).
  void sent(const GroupPtr& group, bool handed, int mid);
  // The broker's PUBACK for mid, with its reason code.
  void acknowledged(int mid, int reasonCode);
  // The connection went: every copy still waiting fails.
  void connectionLost();
  size_t waiting() const { return byMid_.size(); }

 private:
  void settle(const GroupPtr& group, bool ok);

  Post post_;
  std::unordered_map<int, GroupPtr> byMid_;
};

}  // namespace hearth
