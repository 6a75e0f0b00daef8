// coop_relay's deadlines: command expiry and reply timeout, access request expiry, outbox
// expiry, all in one deadline queue (hearth/util/deadline_queue.h) served by one hub-loop timer.
#include "coop_relay_plugin.h"

#include <algorithm>
#include <string>

#include "coop_relay_shared.h"

namespace hearth::coop {

using namespace relay;

// ------------------------------------------------------------------------------------------
// Deadlines

void CoopRelayPlugin::addDeadline(int64_t atMs, const std::string& tag) {
  deadlines_.set(tag, atMs);
}

void CoopRelayPlugin::removeDeadline(const std::string& tag) { deadlines_.erase(tag); }

void CoopRelayPlugin::armTimer() {
  if (deadlines_.empty()) {
    timer_.cancel();
    return;
  }
  int64_t at = std::max(deadlines_.earliest(), backoffUntilMs_);
  if (timer_.armed() && timerAtMs_ == at) return;
  timerAtMs_ = at;
  // One timer for the earliest deadline rather than one per record: a queue of thousands of
  // commands costs one hub-loop timer. Assigning cancels the one it replaces.
  timer_ = ctx_.after(std::chrono::milliseconds(std::max<int64_t>(0, at - nowMs())), [this] {
    expireDue();
    deliverFreed();  // a reply timeout makes room in its target's delivery window
    armTimer();
  });
}

void CoopRelayPlugin::expireDue() {
  commitDelivered();  // a deadline may concern a command whose record is still in memory only
  int64_t now = nowMs();
  if (now < backoffUntilMs_) return;
  Batch b;
  int64_t expired = 0;
  int64_t timedOut = 0;
  for (const std::string& tag : deadlines_.due(now)) {
    std::string id = tag.substr(2);
    switch (tag[0]) {
      case 'c': {
        const Command& c = commands_.at(id);
        bool delivered = c.state == CommandState::kDelivered;
        finishCommand(b, c, delivered ? CommandState::kTimeout : CommandState::kExpired, nullptr);
        ++(delivered ? timedOut : expired);
        break;
      }
      case 'r': {
        const AccessRequest& r = requests_.at(id);
        decideRequest(b, r, AccessResponseCode::kExpired, r.to);
        break;
      }
      case 'o': {
        uint64_t seq = std::stoull(id);
        b.erase(kOutbox, id);
        b.apply([this, seq] { eraseOutbox(seq); });
        break;
      }
    }
  }
  if (b.applies.empty()) return;
  if (!commit(b)) {
    backoffUntilMs_ = now + kStoreRetryMs;
    return;  // nothing ended: the same deadlines come due again
  }
  if (expired > 0) ctx_.count("commands_expired", expired);
  if (timedOut > 0) ctx_.count("commands_timed_out", timedOut);
}

}  // namespace hearth::coop
